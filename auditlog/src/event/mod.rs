//! Ingest events: what a gateway sends to the sealer, validated before anything is sealed.
//!
//! One NDJSON line (or one element of a JSON array) sent to `POST /v1/events` is an
//! [`IngestLine`]: the event's source with its per-source sequence number, and an
//! [`HttpEvent`]. Field names follow the OpenTelemetry semantic conventions, nested by
//! namespace (`http.request.method` is `{"http":{"request":{"method":..}}}`).
//!
//! Every struct here lists its fields in alphabetical order and holds no floating-point
//! numbers, so `serde_json` serializes it directly in RFC 8785 canonical form; a test checks
//! this against [`crate::jcs`]. Unknown fields are rejected so that a typo in a producer is an
//! error, not a silently dropped field.

use serde::{Deserialize, Serialize};

use crate::timestamp::Timestamp;

pub mod canonical;

/// Largest integer that survives a round trip through an IEEE double (I-JSON, RFC 7493).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Bounds on what one event may contain. The sealer applies them to every event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted string field, in bytes (paths, user agents, identities, ...).
    pub max_field_bytes: usize,
    /// Longest accepted source identifier, in bytes.
    pub max_source_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_field_bytes: 8 * 1024,
            max_source_bytes: 256,
        }
    }
}

/// Where an event came from: a gateway worker incarnation and its own sequence number.
///
/// Sequence numbers start at 1 for every new source and increase by one per event, so a
/// missing range is visible to the sealer, which records it as a `gap` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRef {
    /// Gateway identity and worker VM incarnation, e.g. `gw-7d9f/w0/01JD3...`.
    pub id: String,
    /// Per-source sequence number, from 1.
    pub seq: u64,
    /// The source dropped this many events just before this one (its buffer was full): the
    /// sealer records them as a gap `declared_by_source` rather than an unexplained jump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_before: Option<u64>,
}

/// One line of the ingest API.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestLine {
    /// Entry kind; only `http` is accepted on the events endpoint (the default).
    #[serde(default)]
    pub kind: Option<String>,
    pub source: SourceRef,
    pub event: HttpEvent,
}

/// One request that crossed the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<Client>,
    /// Time from the first request byte to the last response byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enduser: Option<EndUser>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy: Option<Envoy>,
    pub http: Http,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// The gateway's request id (`x-request-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<Server>,
    /// When the gateway received the request.
    pub start_time: Timestamp,
    /// Fields the host could not provide (a proxy-wasm host without an Envoy property).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<Vec<String>>,
    pub url: Url,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<UserAgent>,
}

/// `client.*`: the peer, or the X-Forwarded-For hop chosen by the trusted hop count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// `enduser.*`: who made the request, and which mechanism vouched for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndUser {
    pub id: String,
    pub source: IdentitySource,
}

/// The mechanism an identity came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    /// The mTLS peer certificate (URI SAN such as a SPIFFE id, or the subject).
    Mtls,
    /// Claims verified by Envoy's `jwt_authn` filter.
    Jwt,
    /// A header set by a trusted authenticator in front of the route.
    Header,
}

/// Envoy-specific outcome details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envoy {
    /// Why Envoy answered as it did (`via_upstream`, `route_not_found`, `rbac_access_denied…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_code_details: Option<String>,
    /// Envoy's short response flags (`UH`, `NR`, `RL`, ...), comma-separated, `-` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_flags: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_host: Option<String>,
}

/// `http.*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    pub request: HttpRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HttpResponse>,
}

/// `http.request.*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
    pub method: String,
}

/// `http.response.*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
    /// 0 when no response was sent (e.g. the downstream reset the stream).
    pub status_code: u16,
}

/// `http.*.body.*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    /// Lowercase hex SHA-256 of the body, when the filter hashes bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// `network.*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub protocol: NetworkProtocol,
}

/// `network.protocol.*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkProtocol {
    /// `1.1`, `2`, `3`.
    pub version: String,
}

/// `server.*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// The request authority (`:authority` / `Host`).
    pub address: String,
}

/// `url.*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Url {
    pub path: String,
    /// The query string with secret parameters already redacted by the filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
}

/// `user_agent.*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAgent {
    pub original: String,
}

/// Why an ingest line was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventError {
    /// Dotted path of the offending field inside the line; empty for the line as a whole.
    pub field: String,
    pub message: String,
    /// The line is not JSON at all (as opposed to JSON that is not a valid event).
    pub syntax: bool,
}

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for EventError {}

impl EventError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        EventError {
            field: field.to_owned(),
            message: message.into(),
            syntax: false,
        }
    }

    fn syntax(message: String) -> Self {
        EventError {
            field: String::new(),
            message,
            syntax: true,
        }
    }
}

impl IngestLine {
    /// Parse and validate one line. The error names the offending field.
    pub fn parse(line: &[u8], limits: &Limits) -> Result<IngestLine, EventError> {
        // The fast path parses directly; only a failure is parsed again with path tracking,
        // which costs more, to name the offending field.
        let parsed: IngestLine = match serde_json::from_slice(line) {
            Ok(p) => p,
            Err(first) => return Err(Self::explain(line, first)),
        };
        parsed.validate(limits)?;
        Ok(parsed)
    }

    fn explain(line: &[u8], plain: serde_json::Error) -> EventError {
        if plain.is_syntax() || plain.is_eof() {
            return EventError::syntax(strip_position(&plain.to_string()));
        }
        let mut de = serde_json::Deserializer::from_slice(line);
        match serde_path_to_error::deserialize::<_, IngestLine>(&mut de) {
            Err(e) => {
                let path = e.path().to_string();
                let field = if path == "." { String::new() } else { path };
                EventError::new(&field, strip_position(&e.into_inner().to_string()))
            }
            // The value parsed: the error is after it (trailing characters).
            Ok(_) => EventError::syntax(strip_position(&plain.to_string())),
        }
    }

    /// Check the rules that the types alone do not express.
    pub fn validate(&self, limits: &Limits) -> Result<(), EventError> {
        if let Some(kind) = &self.kind
            && kind != "http"
        {
            return Err(EventError::new(
                "kind",
                format!("unsupported kind {kind:?} on this endpoint (expected \"http\")"),
            ));
        }
        validate_source(&self.source, limits)?;
        self.event.validate(limits)
    }
}

fn validate_source(source: &SourceRef, limits: &Limits) -> Result<(), EventError> {
    let id = &source.id;
    if id.is_empty() || id.len() > limits.max_source_bytes {
        return Err(EventError::new(
            "source.id",
            format!("must be 1 to {} bytes long", limits.max_source_bytes),
        ));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EventError::new(
            "source.id",
            "must be printable ASCII without spaces",
        ));
    }
    if source.seq == 0 || source.seq > MAX_SAFE_INTEGER {
        return Err(EventError::new(
            "source.seq",
            format!("must be between 1 and {MAX_SAFE_INTEGER}"),
        ));
    }
    if let Some(n) = source.dropped_before
        && (n == 0 || n >= source.seq)
    {
        return Err(EventError::new(
            "source.dropped_before",
            "must be between 1 and source.seq - 1 (the events dropped just before this one)",
        ));
    }
    Ok(())
}

impl HttpEvent {
    /// The event's RFC 8785 canonical JSON (see the module docs for why `serde_json` gives it).
    pub fn canonical_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        serde_json::to_writer(&mut out, self).expect("events hold only strings and integers");
        out
    }

    /// Check lengths, formats and ranges of every field.
    pub fn validate(&self, limits: &Limits) -> Result<(), EventError> {
        let text = |field: &str, value: &str| check_text(field, value, limits);
        let int = |field: &str, value: u64| check_int(field, value);

        if let Some(client) = &self.client {
            text("event.client.address", &client.address)?;
        }
        if let Some(d) = self.duration_ns {
            int("event.duration_ns", d)?;
        }
        if let Some(user) = &self.enduser {
            text("event.enduser.id", &user.id)?;
        }
        if let Some(envoy) = &self.envoy {
            for (field, value) in [
                (
                    "event.envoy.response_code_details",
                    &envoy.response_code_details,
                ),
                ("event.envoy.response_flags", &envoy.response_flags),
                ("event.envoy.route", &envoy.route),
                ("event.envoy.upstream_cluster", &envoy.upstream_cluster),
                ("event.envoy.upstream_host", &envoy.upstream_host),
            ] {
                if let Some(v) = value {
                    text(field, v)?;
                }
            }
        }
        let method = &self.http.request.method;
        if method.is_empty() || method.len() > 32 || !method.bytes().all(is_token_byte) {
            return Err(EventError::new(
                "event.http.request.method",
                "must be an HTTP token of 1 to 32 characters",
            ));
        }
        if let Some(body) = &self.http.request.body {
            check_body("event.http.request.body", body)?;
        }
        if let Some(resp) = &self.http.response {
            if resp.status_code > 999 {
                return Err(EventError::new(
                    "event.http.response.status_code",
                    "must be between 0 and 999",
                ));
            }
            if let Some(body) = &resp.body {
                check_body("event.http.response.body", body)?;
            }
        }
        if let Some(net) = &self.network {
            text("event.network.protocol.version", &net.protocol.version)?;
        }
        if let Some(id) = &self.request_id {
            text("event.request_id", id)?;
        }
        if let Some(server) = &self.server {
            text("event.server.address", &server.address)?;
        }
        if let Some(fields) = &self.unavailable {
            if fields.len() > 64 {
                return Err(EventError::new(
                    "event.unavailable",
                    "lists more than 64 fields",
                ));
            }
            for f in fields {
                text("event.unavailable[]", f)?;
            }
        }
        text("event.url.path", &self.url.path)?;
        if let Some(q) = &self.url.query {
            text("event.url.query", q)?;
        }
        if let Some(s) = &self.url.scheme {
            text("event.url.scheme", s)?;
        }
        if let Some(ua) = &self.user_agent {
            text("event.user_agent.original", &ua.original)?;
        }
        Ok(())
    }
}

fn check_text(field: &str, value: &str, limits: &Limits) -> Result<(), EventError> {
    if value.len() > limits.max_field_bytes {
        return Err(EventError::new(
            field,
            format!(
                "is {} bytes long, the limit is {}",
                value.len(),
                limits.max_field_bytes
            ),
        ));
    }
    Ok(())
}

fn check_int(field: &str, value: u64) -> Result<(), EventError> {
    if value > MAX_SAFE_INTEGER {
        return Err(EventError::new(
            field,
            format!("must not exceed {MAX_SAFE_INTEGER}"),
        ));
    }
    Ok(())
}

fn check_body(field: &str, body: &Body) -> Result<(), EventError> {
    if let Some(size) = body.size {
        check_int(&format!("{field}.size"), size)?;
    }
    if let Some(sha) = &body.sha256
        && (sha.len() != 64 || !sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    {
        return Err(EventError::new(
            &format!("{field}.sha256"),
            "must be 64 lowercase hex digits",
        ));
    }
    Ok(())
}

/// RFC 9110 `tchar`.
/// A byte of an HTTP token (RFC 9110 `tchar`), as methods are made of.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// serde_json appends " at line L column C"; within one event only the column matters (the
/// caller reports the line of the batch).
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => match message[i..].rfind(" column ") {
            Some(c) => format!("{} (column {})", &message[..i], &message[i + c + 8..]),
            None => message[..i].to_owned(),
        },
        None => message.to_owned(),
    }
}
