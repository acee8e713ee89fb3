//! Building the access event from what the filter learned about a request.
//!
//! Host calls are the cost inside Envoy, so the glue gathers [`RequestFacts`] with as few of
//! them as it can (one read of the request header map, the clock twice, a handful of
//! properties in `on_log`); everything here is plain Rust with no host call, tested natively.

use auditlog::event::MAX_SAFE_INTEGER;
use auditlog::event::{
    Body, Client, EndUser, Envoy, Http, HttpEvent, HttpRequest, HttpResponse, IdentitySource,
    Network, NetworkProtocol, Server, SourceRef, Url, UserAgent,
};
use auditlog::timestamp::Timestamp;
use std::borrow::Cow;

use crate::config::FilterConfig;

/// Everything known about one request when it is logged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFacts {
    pub start_unix_nanos: i64,
    pub end_unix_nanos: Option<i64>,
    pub method: String,
    /// `:path`: path and query.
    pub path: String,
    pub authority: Option<String>,
    pub scheme: Option<String>,
    /// `request.protocol`: `HTTP/1.1`, `HTTP/2`, `HTTP/3`.
    pub protocol: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub forwarded_for: Option<String>,
    /// `source.address`: `ip:port` or `[ipv6]:port`.
    pub peer_address: Option<String>,
    /// 0 when no response was sent.
    pub status: Option<u16>,
    pub response_flags: Option<u64>,
    pub response_code_details: Option<String>,
    pub route: Option<String>,
    pub upstream_cluster: Option<String>,
    pub upstream_host: Option<String>,
    pub request_body_size: Option<u64>,
    pub response_body_size: Option<u64>,
    pub request_body_sha256: Option<String>,
    pub identity: Option<(String, IdentitySource)>,
    /// Fields the host could not provide.
    pub unavailable: Vec<&'static str>,
}

/// At most `max` bytes of `s`, cut on a character boundary.
pub fn bounded_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// [`bounded_str`], owned.
pub fn bounded(s: &str, max: usize) -> String {
    bounded_str(s, max).to_owned()
}

/// Longest string field the filter sends (the sealer's default limit is 8 KiB).
pub const MAX_FIELD: usize = 4096;

/// Split `:path` into path and query, and redact secret query parameter values.
pub fn split_path(path: &str, config: &FilterConfig) -> (String, Option<String>) {
    let (p, q) = split_path_borrowed(path, config);
    (p.to_owned(), q.map(Cow::into_owned))
}

/// [`split_path`] without copying what needs no change: the query is only rebuilt when a
/// parameter in it is redacted.
pub fn split_path_borrowed<'a>(
    path: &'a str,
    config: &FilterConfig,
) -> (&'a str, Option<Cow<'a, str>>) {
    let (p, q) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let redacted = |pair: &str| {
        pair.split_once('=')
            .is_some_and(|(name, _)| redacts_name(name, config))
    };
    let query = q.map(|q| {
        if !q.split('&').any(redacted) {
            return Cow::Borrowed(bounded_str(q, MAX_FIELD));
        }
        let rebuilt = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if redacts_name(name, config) => format!("{name}=REDACTED"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        Cow::Owned(bounded(&rebuilt, MAX_FIELD))
    });
    (bounded_str(p, MAX_FIELD), query)
}

/// Whether a query parameter name, as written in the URL, is one to redact.
fn redacts_name(name: &str, config: &FilterConfig) -> bool {
    if name.bytes().any(|b| b == b'%' || b == b'+') {
        config.redacts_param(&percent_decode_lossy(name))
    } else {
        config.redacts_param(name)
    }
}

/// Decode `%XX` escapes so `%74oken=` is recognised as `token=`.
fn percent_decode_lossy(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The client address: the peer, or the X-Forwarded-For entry `trusted_hops` from the right.
pub fn client(facts: &RequestFacts, trusted_hops: usize) -> Option<Client> {
    client_parts(facts, trusted_hops).map(|(address, port)| Client {
        address: address.to_owned(),
        port,
    })
}

/// [`client`] as borrowed address (at most 128 bytes) and port.
pub fn client_parts(facts: &RequestFacts, trusted_hops: usize) -> Option<(&str, Option<u16>)> {
    if trusted_hops > 0
        && let Some(xff) = &facts.forwarded_for
    {
        let mut hops = xff.rsplit(',').map(str::trim).filter(|s| !s.is_empty());
        let count = hops.clone().count();
        if count >= trusted_hops
            && let Some(hop) = hops.nth(trusted_hops - 1)
        {
            return Some((bounded_str(hop, 128), None));
        }
    }
    let peer = facts.peer_address.as_deref()?;
    let (address, port) = split_host_port(peer);
    Some((bounded_str(address, 128), port))
}

fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[')
        && let Some((host, port)) = rest.split_once("]:")
    {
        return (host, port.parse().ok());
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().ok()),
        _ => (s, None),
    }
}

/// Envoy's short response flag names, by bit (`StreamInfo::ResponseFlag`).
const RESPONSE_FLAGS: &[&str] = &[
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
];

/// `UH,UF`-style text for a response flag bit set; `-` for none.
pub fn response_flags_text(bits: u64) -> String {
    if bits == 0 {
        return "-".into();
    }
    let mut names = Vec::new();
    for i in 0..64 {
        if bits & (1 << i) != 0 {
            match RESPONSE_FLAGS.get(i) {
                Some(name) => names.push((*name).to_owned()),
                None => names.push(format!("0x{:x}", 1u64 << i)),
            }
        }
    }
    names.join(",")
}

fn opt(s: &Option<String>, max: usize) -> Option<String> {
    opt_str(s, max).map(str::to_owned)
}

/// A field that is present and not empty, at most `max` bytes.
pub fn opt_str(s: &Option<String>, max: usize) -> Option<&str> {
    s.as_deref()
        .filter(|v| !v.is_empty())
        .map(|v| bounded_str(v, max))
}

/// `method` when it is a valid HTTP method token (1 to 32 token characters); otherwise the
/// event records `-` and declares the method unavailable. Envoy only passes valid methods,
/// but a request whose headers never reached the filter (refused by the codec) has none.
pub fn method_or_dash(method: &str) -> Option<&str> {
    let valid = !method.is_empty()
        && method.len() <= 32
        && method.bytes().all(auditlog::event::is_token_byte);
    valid.then_some(method)
}

/// The event for one request. Whatever the facts, the sealer accepts it (a property test
/// checks this): one event it refused would cost its whole batch.
pub fn build_event(facts: &RequestFacts, config: &FilterConfig) -> HttpEvent {
    let (path, query) = split_path(&facts.path, config);
    let safe = |n: u64| n.min(MAX_SAFE_INTEGER);
    let duration_ns = facts
        .end_unix_nanos
        .map(|end| safe(end.saturating_sub(facts.start_unix_nanos).max(0) as u64));
    let method = method_or_dash(&facts.method);
    let mut unavailable: Vec<String> = facts.unavailable.iter().map(|s| (*s).to_owned()).collect();
    if method.is_none() {
        unavailable.push("http.request.method".to_owned());
    }
    let envoy = Envoy {
        response_code_details: opt(&facts.response_code_details, 256),
        response_flags: facts.response_flags.map(response_flags_text),
        route: opt(&facts.route, 256),
        upstream_cluster: opt(&facts.upstream_cluster, 256),
        upstream_host: opt(&facts.upstream_host, 256),
    };
    let request_body = (facts.request_body_size.is_some() || facts.request_body_sha256.is_some())
        .then(|| Body {
            sha256: facts.request_body_sha256.clone(),
            size: facts.request_body_size.map(safe),
        });
    HttpEvent {
        client: client(facts, config.trusted_hops),
        duration_ns,
        enduser: facts.identity.as_ref().map(|(id, source)| EndUser {
            id: bounded(id, 1024),
            source: *source,
        }),
        envoy: Some(envoy),
        http: Http {
            request: HttpRequest {
                body: request_body,
                method: method.unwrap_or("-").to_owned(),
            },
            response: facts.status.map(|status_code| HttpResponse {
                body: facts.response_body_size.map(|size| Body {
                    sha256: None,
                    size: Some(safe(size)),
                }),
                status_code: status_code.min(999),
            }),
        },
        network: facts
            .protocol
            .as_deref()
            .map(|p| NetworkProtocol {
                version: p.strip_prefix("HTTP/").unwrap_or(p).to_owned(),
            })
            .map(|protocol| Network { protocol }),
        request_id: opt(&facts.request_id, 256),
        server: opt(&facts.authority, 1024).map(|address| Server { address }),
        start_time: Timestamp::from_unix_nanos(facts.start_unix_nanos),
        unavailable: (!unavailable.is_empty()).then_some(unavailable),
        url: Url {
            path,
            query,
            scheme: opt(&facts.scheme, 16),
        },
        user_agent: opt(&facts.user_agent, MAX_FIELD).map(|original| UserAgent { original }),
    }
}

/// How every line [`ingest_line`] writes begins: the delivery queue inserts a loss
/// declaration (`"dropped_before":N,`) right after it.
pub const LINE_SOURCE_PREFIX: &str = "{\"source\":{";

/// One NDJSON line (without newline) for the sealer's ingest API; it starts with
/// [`LINE_SOURCE_PREFIX`].
pub fn ingest_line(source: &str, seq: u64, event: &HttpEvent) -> String {
    let source = SourceRef {
        id: source.to_owned(),
        seq,
        dropped_before: None,
    };
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"source\":");
    serde_json::to_writer(&mut out, &source).expect("plain data serializes");
    out.extend_from_slice(b",\"event\":");
    out.extend_from_slice(&event.canonical_json());
    out.push(b'}');
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditlog::event::{IngestLine, Limits};

    fn config() -> FilterConfig {
        FilterConfig::parse(
            br#"{"gateway":"gw","trusted_hops":1,"redact_query_params":["session"]}"#,
        )
        .unwrap()
    }

    fn facts() -> RequestFacts {
        RequestFacts {
            start_unix_nanos: 1_800_000_000_000_000_000,
            end_unix_nanos: Some(1_800_000_000_002_500_000),
            method: "POST".into(),
            path: "/cart/items?ref=mail&token=abc&%74oken=x&session=s1&page=2".into(),
            authority: Some("shop.example.com".into()),
            scheme: Some("https".into()),
            protocol: Some("HTTP/2".into()),
            user_agent: Some("curl/8.5.0".into()),
            request_id: Some("r-1".into()),
            forwarded_for: Some("198.51.100.1, 203.0.113.7".into()),
            peer_address: Some("10.0.0.9:51234".into()),
            status: Some(201),
            response_flags: Some(0),
            response_code_details: Some("via_upstream".into()),
            route: Some("shop".into()),
            upstream_cluster: Some("app".into()),
            upstream_host: Some("127.0.0.1:8081".into()),
            request_body_size: Some(42),
            response_body_size: Some(17),
            request_body_sha256: None,
            identity: Some(("alice".into(), IdentitySource::Jwt)),
            unavailable: vec![],
        }
    }

    #[test]
    fn builds_a_valid_event_the_sealer_accepts() {
        let event = build_event(&facts(), &config());
        let line = ingest_line("gw/w0/1", 7, &event);
        let parsed = IngestLine::parse(line.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(parsed.source.seq, 7);
        let e = parsed.event;
        assert_eq!(e.duration_ns, Some(2_500_000));
        assert_eq!(e.http.request.method, "POST");
        assert_eq!(e.http.response.as_ref().unwrap().status_code, 201);
        assert_eq!(e.url.path, "/cart/items");
        assert_eq!(
            e.url.query.as_deref(),
            Some("ref=mail&token=REDACTED&%74oken=REDACTED&session=REDACTED&page=2")
        );
        assert_eq!(e.client.as_ref().unwrap().address, "203.0.113.7");
        assert_eq!(e.network.unwrap().protocol.version, "2");
        assert_eq!(e.envoy.unwrap().response_flags.as_deref(), Some("-"));
        assert!(!line.contains("abc"), "a secret query value leaked: {line}");
    }

    #[test]
    fn client_address_rules() {
        let mut f = facts();
        assert_eq!(client(&f, 0).unwrap().address, "10.0.0.9");
        assert_eq!(client(&f, 0).unwrap().port, Some(51234));
        assert_eq!(client(&f, 2).unwrap().address, "198.51.100.1");
        // Fewer entries than trusted hops: the peer, which is all that can be trusted.
        assert_eq!(client(&f, 3).unwrap().address, "10.0.0.9");
        f.peer_address = Some("[2001:db8::1]:443".into());
        let c = client(&f, 0).unwrap();
        assert_eq!((c.address.as_str(), c.port), ("2001:db8::1", Some(443)));
    }

    #[test]
    fn response_flags_and_bounds() {
        assert_eq!(response_flags_text(0), "-");
        assert_eq!(response_flags_text(0x2 | 0x20), "UH,UF");
        assert_eq!(response_flags_text(0x100), "NR");
        assert_eq!(response_flags_text(1 << 40), "0x10000000000");
        assert_eq!(bounded("héllo", 2), "h");
        assert_eq!(bounded("abc", 10), "abc");
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) use always_accepted::arbitrary_facts;

/// Arbitrary facts always make an event the sealer accepts (native only: proptest does not
/// target WASI).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod always_accepted {
    use super::*;
    use auditlog::event::{IngestLine, Limits};
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-zA-Z0-9/.:?=&%+ -]{0,30}",
            any::<String>()
        ]
    }

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(text())
    }

    /// Paths with queries whose parameters are often ones to redact, in any spelling.
    fn path_text() -> impl Strategy<Value = String> {
        let param = (
            prop_oneof![
                Just("token"),
                Just("Session"),
                Just("%74oken"),
                Just("api+key"),
                Just("ref"),
                Just("")
            ],
            prop_oneof![Just(None), proptest::option::of("[a-z0-9%=]{0,6}")],
        )
            .prop_map(|(name, value)| match value {
                Some(v) => format!("{name}={v}"),
                None => name.to_owned(),
            });
        prop_oneof![
            text(),
            ("[a-z/]{0,10}", proptest::collection::vec(param, 0..5))
                .prop_map(|(path, params)| format!("/{path}?{}", params.join("&"))),
        ]
    }

    fn protocol_text() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            opt_text(),
            Just(Some("HTTP/1.1".to_owned())),
            Just(Some("HTTP/2".to_owned()))
        ]
    }

    /// X-Forwarded-For lists of several hops, with stray spaces and empty entries.
    fn forwarded_text() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            opt_text(),
            "( ?[0-9a-f.:]{0,15} ?,){0,4}[0-9.]{1,15}".prop_map(Some)
        ]
    }

    fn peer_text() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            opt_text(),
            "[0-9.]{1,15}:[0-9]{1,6}".prop_map(Some),
            "\\[[0-9a-f:]{2,20}\\]:[0-9]{1,6}".prop_map(Some)
        ]
    }

    prop_compose! {
        fn strings()(
            method in text(), path in path_text(), authority in opt_text(), scheme in opt_text(),
            protocol in protocol_text(), user_agent in opt_text(), request_id in opt_text(),
            forwarded_for in forwarded_text(), peer_address in peer_text(), details in opt_text(),
            route in opt_text(), cluster in opt_text(), host in opt_text(),
        ) -> [Option<String>; 13] {
            [Some(method), Some(path), authority, scheme, protocol, user_agent, request_id,
             forwarded_for, peer_address, details, route, cluster, host]
        }
    }

    fn identity_source() -> impl Strategy<Value = IdentitySource> {
        prop_oneof![
            Just(IdentitySource::Mtls),
            Just(IdentitySource::Jwt),
            Just(IdentitySource::Header)
        ]
    }

    prop_compose! {
        /// Any request facts, including empty, over-long and non-ASCII text.
        pub(crate) fn arbitrary_facts()(
            s in strings(),
            start in any::<i64>(),
            end in proptest::option::of(any::<i64>()),
            status in proptest::option::of(any::<u16>()),
            flags in prop_oneof![Just(Some(0)), proptest::option::of(any::<u64>())],
            req_size in proptest::option::of(any::<u64>()),
            resp_size in proptest::option::of(any::<u64>()),
            identity in proptest::option::of((text(), identity_source())),
            long in proptest::option::of(".{5000,9000}"),
            sha256 in proptest::option::of("[0-9a-f]{64}"),
            unavailable in prop_oneof![Just(vec![]), Just(vec!["client.address"])],
        ) -> RequestFacts {
            let [method, path, authority, scheme, protocol, user_agent, request_id,
                 forwarded_for, peer_address, details, route, cluster, host] = s;
            RequestFacts {
                start_unix_nanos: start,
                end_unix_nanos: end,
                method: method.unwrap_or_default(),
                path: long.clone().unwrap_or_else(|| path.unwrap_or_default()),
                authority, scheme, protocol,
                user_agent: long.or(user_agent),
                request_id, forwarded_for, peer_address, status,
                response_flags: flags,
                response_code_details: details,
                route, upstream_cluster: cluster, upstream_host: host,
                request_body_size: req_size,
                response_body_size: resp_size,
                request_body_sha256: sha256,
                identity,
                unavailable,
            }
        }
    }

    proptest! {
        #[test]
        fn the_sealer_accepts_every_event_the_filter_builds(f in arbitrary_facts(), hops in 0usize..3) {
            let config = FilterConfig::parse(
                format!(r#"{{"gateway":"gw","trusted_hops":{hops}}}"#).as_bytes(),
            )
            .unwrap();
            let line = ingest_line("gw/00ff", 1, &build_event(&f, &config));
            let parsed = match IngestLine::parse(line.as_bytes(), &Limits::default()) {
                Ok(parsed) => parsed,
                Err(e) => {
                    prop_assert!(false, "refused: {e:?}\n{line}");
                    unreachable!()
                }
            };
            // The sealer's fast path takes the line as it is: the event is already canonical.
            // (Only a line longer than the limit might hold a string whose escaped text is
            // over it; the fast path leaves such lines to the slow one.)
            let fast = auditlog::event::canonical::check(line.as_bytes(), &Limits::default());
            if line.len() <= Limits::default().max_field_bytes {
                let fast = fast.expect("the fast path accepts the filter's line");
                prop_assert_eq!(fast.event, &parsed.event.canonical_json()[..]);
            } else if let Some(fast) = fast {
                prop_assert_eq!(fast.event, &parsed.event.canonical_json()[..]);
            }
        }
    }
}
