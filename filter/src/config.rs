//! The plugin configuration: JSON given in the `WasmPlugin` `pluginConfig` or the Envoy
//! `configuration` field, parsed once in `on_configure` and shared by every request.
//! Documented in `docs/filter-config.md`.

use serde::Deserialize;

/// What to do while the sealer cannot take events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Traffic flows; events wait in the bounded buffer, and what overflows is dropped and
    /// shows up as a gap in the log.
    #[default]
    FailOpen,
    /// While the sealer is unreachable or the buffer is full, requests get 503: no request
    /// reaches an upstream without being audited.
    FailClosed,
}

/// When Envoy's `response.code_details` is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CodeDetails {
    /// Where they explain something: a status of 400 or more, no status, or any response
    /// flag. A plain success's details are nearly always `via_upstream` or
    /// `direct_response`, and reading them costs a host call on every request.
    #[default]
    Errors,
    /// On every request.
    Always,
}

/// Where an identity can come from, tried in the configured order.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum IdentitySource {
    /// The mTLS peer certificate: the first URI SAN (e.g. a SPIFFE id), else the subject.
    Mtls,
    /// A claim verified by Envoy's `jwt_authn` filter, read from its dynamic metadata under
    /// `payload_in_metadata` (the filter's config for that provider).
    Jwt {
        #[serde(default = "default_jwt_metadata_key")]
        metadata_key: String,
        #[serde(default = "default_claim")]
        claim: String,
    },
    /// A request header set by a trusted authenticator in front of this route.
    Header { name: String },
}

fn default_jwt_metadata_key() -> String {
    "jwt_payload".into()
}
fn default_claim() -> String {
    "sub".into()
}

/// SHA-256 of request bodies, computed chunk by chunk as they stream.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyHash {
    #[serde(default)]
    pub enabled: bool,
    /// Stop hashing (and record no hash) past this many bytes.
    #[serde(default = "default_body_hash_max")]
    pub max_bytes: u64,
    /// Methods whose bodies are hashed.
    #[serde(default = "default_mutating_methods")]
    pub methods: Vec<String>,
}

fn default_body_hash_max() -> u64 {
    1 << 20
}
fn default_mutating_methods() -> Vec<String> {
    ["POST", "PUT", "PATCH", "DELETE"]
        .map(String::from)
        .to_vec()
}

impl Default for BodyHash {
    fn default() -> Self {
        BodyHash {
            enabled: false,
            max_bytes: default_body_hash_max(),
            methods: default_mutating_methods(),
        }
    }
}

/// Query parameters whose values are always replaced by `REDACTED`.
pub const DEFAULT_REDACTED_PARAMS: &[&str] = &[
    "access_token",
    "api_key",
    "apikey",
    "auth",
    "client_secret",
    "code",
    "id_token",
    "key",
    "password",
    "refresh_token",
    "secret",
    "sig",
    "signature",
    "token",
    "x-amz-credential",
    "x-amz-security-token",
    "x-amz-signature",
];

/// The whole configuration. Unknown fields are errors.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// This gateway's name; with the worker and VM incarnation it forms each event's source.
    pub gateway: String,
    /// The Envoy cluster that reaches the sealer.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// `:authority` of calls to the sealer.
    #[serde(default = "default_authority")]
    pub sealer_authority: String,
    #[serde(default = "default_path")]
    pub sealer_path: String,
    /// Bearer token of the sealer's ingest role, when its API requires one.
    #[serde(default)]
    pub sealer_token: Option<SealerToken>,
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// How often buffered events are sent.
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// After each answer from the sealer, how long events gather before the next batch goes
    /// (a full batch goes at once). Fewer, larger batches cost Envoy and the sealer less per
    /// event; 0 sends what waits right away.
    #[serde(default = "default_batch_delay_ms")]
    pub batch_delay_ms: u64,
    /// With nothing to send for this long, the worker tells the sealer it is alive (an empty
    /// batch). The sealer marks a source silent for several intervals as ended without a
    /// clean close (`docs/filter-config.md`, "Delivery and loss").
    #[serde(default = "default_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    #[serde(default = "default_max_batch_events")]
    pub max_batch_events: usize,
    #[serde(default = "default_max_batch_bytes")]
    pub max_batch_bytes: usize,
    /// Events waiting for the sealer, in bytes; past it the oldest are dropped (a gap).
    #[serde(default = "default_max_buffer_bytes")]
    pub max_buffer_bytes: usize,
    /// How long to wait for the sealer's answer.
    #[serde(default = "default_timeout_ms")]
    pub sealer_timeout_ms: u64,
    /// Retry backoff after a failed delivery: doubles from the first value up to the second.
    #[serde(default = "default_backoff_min_ms")]
    pub retry_backoff_min_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub retry_backoff_max_ms: u64,
    /// Proxies in front of this gateway whose X-Forwarded-For entries are trusted: the client
    /// address is the entry this many hops from the right. 0 uses the peer address.
    #[serde(default)]
    pub trusted_hops: usize,
    /// Where identities come from, first match wins.
    #[serde(default)]
    pub identity: Vec<IdentitySource>,
    /// Extra query parameters to redact, besides [`DEFAULT_REDACTED_PARAMS`].
    #[serde(default)]
    pub redact_query_params: Vec<String>,
    #[serde(default)]
    pub body_hash: BodyHash,
    #[serde(default)]
    pub code_details: CodeDetails,
}

impl CodeDetails {
    /// Whether to read the details of a response with this status and these flags.
    pub fn wanted(self, status: Option<u16>, flags: Option<u64>) -> bool {
        self == CodeDetails::Always
            || status.is_none_or(|s| s == 0 || s >= 400)
            || flags.is_some_and(|f| f != 0)
    }
}

/// The sealer's ingest token. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SealerToken(String);

impl SealerToken {
    /// The `authorization` header value.
    pub fn header(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl std::fmt::Debug for SealerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealerToken(<redacted>)")
    }
}

fn default_cluster() -> String {
    "audit_sealer".into()
}
fn default_authority() -> String {
    "127.0.0.1:8787".into()
}
fn default_path() -> String {
    "/v1/events".into()
}
fn default_flush_interval_ms() -> u64 {
    200
}
fn default_batch_delay_ms() -> u64 {
    10
}
fn default_heartbeat_interval_ms() -> u64 {
    10_000
}
fn default_max_batch_events() -> usize {
    1000
}
fn default_max_batch_bytes() -> usize {
    512 * 1024
}
fn default_max_buffer_bytes() -> usize {
    8 * 1024 * 1024
}
fn default_timeout_ms() -> u64 {
    2000
}
fn default_backoff_min_ms() -> u64 {
    200
}
fn default_backoff_max_ms() -> u64 {
    5000
}

impl FilterConfig {
    /// Parse and validate. The error names the field.
    pub fn parse(bytes: &[u8]) -> Result<FilterConfig, String> {
        let config: FilterConfig = serde_json::from_slice(bytes)
            .map_err(|e| format!("invalid audit filter configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let fail = |field: &str, why: &str| {
            Err(format!(
                "invalid audit filter configuration: {field}: {why}"
            ))
        };
        let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        if !printable(&self.gateway) || self.gateway.len() > 128 {
            return fail(
                "gateway",
                "must be 1 to 128 printable ASCII characters without spaces",
            );
        }
        if self.cluster.is_empty() {
            return fail("cluster", "must name the Envoy cluster of the sealer");
        }
        if !self.sealer_path.starts_with('/') {
            return fail("sealer_path", "must start with '/'");
        }
        if let Some(SealerToken(t)) = &self.sealer_token
            && (t.len() < 32 || !printable(t))
        {
            return fail(
                "sealer_token",
                "must be at least 32 printable ASCII characters without spaces (the sealer's \
                 --ingest-token-file content)",
            );
        }
        if self.flush_interval_ms == 0 || self.flush_interval_ms > 60_000 {
            return fail("flush_interval_ms", "must be between 1 and 60000");
        }
        if self.batch_delay_ms > self.flush_interval_ms {
            return fail("batch_delay_ms", "must not exceed flush_interval_ms");
        }
        if !(1000..=600_000).contains(&self.heartbeat_interval_ms) {
            return fail("heartbeat_interval_ms", "must be between 1000 and 600000");
        }
        if self.max_batch_events == 0 || self.max_batch_bytes < 1024 {
            return fail(
                "max_batch_events",
                "must be at least 1 (and max_batch_bytes at least 1024)",
            );
        }
        if self.max_buffer_bytes < self.max_batch_bytes {
            return fail("max_buffer_bytes", "must be at least max_batch_bytes");
        }
        if self.sealer_timeout_ms == 0 {
            return fail("sealer_timeout_ms", "must be at least 1");
        }
        if self.retry_backoff_min_ms == 0 || self.retry_backoff_max_ms < self.retry_backoff_min_ms {
            return fail(
                "retry_backoff_min_ms",
                "must be at least 1 and at most retry_backoff_max_ms",
            );
        }
        for id in &self.identity {
            if let IdentitySource::Header { name } = id
                && (name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase()))
            {
                return fail(
                    "identity[].name",
                    "header names must be non-empty lowercase",
                );
            }
        }
        Ok(())
    }

    /// Whether `name` (lowercase) is a query parameter to redact.
    pub fn redacts_param(&self, name: &str) -> bool {
        DEFAULT_REDACTED_PARAMS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(name))
            || self
                .redact_query_params
                .iter()
                .any(|p| p.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_details_are_read_where_they_explain_something() {
        let errors = CodeDetails::default();
        assert!(!errors.wanted(Some(200), Some(0)));
        assert!(!errors.wanted(Some(302), None));
        assert!(errors.wanted(Some(403), Some(0)));
        assert!(errors.wanted(Some(0), Some(0)), "no response sent");
        assert!(errors.wanted(None, None), "status unknown");
        assert!(errors.wanted(Some(200), Some(0x800)), "a flagged success");
        assert!(CodeDetails::Always.wanted(Some(200), Some(0)));
        let c = FilterConfig::parse(br#"{"gateway":"g","code_details":"always"}"#).unwrap();
        assert_eq!(c.code_details, CodeDetails::Always);
        assert!(FilterConfig::parse(br#"{"gateway":"g","code_details":"some"}"#).is_err());
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = FilterConfig::parse(br#"{"gateway":"gw-1"}"#).unwrap();
        assert_eq!(c.cluster, "audit_sealer");
        assert_eq!(c.failure_policy, FailurePolicy::FailOpen);
        assert_eq!(c.flush_interval_ms, 200);
        assert!(c.redacts_param("Token"));
        assert!(!c.body_hash.enabled);
    }

    #[test]
    fn full_config_parses() {
        let c = FilterConfig::parse(
            br#"{"gateway":"gw-1","failure_policy":"fail_closed","trusted_hops":1,
                 "identity":[{"source":"mtls"},{"source":"jwt","claim":"email"},{"source":"header","name":"x-auth-user"}],
                 "redact_query_params":["session"],"body_hash":{"enabled":true,"max_bytes":4096}}"#,
        )
        .unwrap();
        assert_eq!(c.failure_policy, FailurePolicy::FailClosed);
        assert_eq!(c.identity.len(), 3);
        assert!(c.redacts_param("session"));
        assert_eq!(c.body_hash.methods, default_mutating_methods());
    }

    #[test]
    fn the_sealer_token_is_sent_but_never_shown() {
        let token = "t0k3n-".repeat(8);
        let c = FilterConfig::parse(
            format!(r#"{{"gateway":"gw-1","sealer_token":"{token}"}}"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(
            c.sealer_token.as_ref().unwrap().header(),
            format!("Bearer {token}")
        );
        assert!(!format!("{c:?}").contains(&token));
    }

    #[test]
    fn bad_configs_name_the_field() {
        for (json, field) in [
            (r#"{}"#, "gateway"),
            (r#"{"gateway":"has space"}"#, "gateway"),
            (r#"{"gateway":"g","failure_policy":"maybe"}"#, "maybe"),
            (
                r#"{"gateway":"g","flush_interval_ms":0}"#,
                "flush_interval_ms",
            ),
            (r#"{"gateway":"g","unknown":1}"#, "unknown"),
            (
                r#"{"gateway":"g","identity":[{"source":"header","name":"X-User"}]}"#,
                "identity",
            ),
            (r#"not json"#, "configuration"),
            (r#"{"gateway":"g","sealer_token":"short"}"#, "sealer_token"),
        ] {
            let err = FilterConfig::parse(json.as_bytes()).unwrap_err();
            assert!(err.contains(field), "{json}: {err}");
        }
    }
}
