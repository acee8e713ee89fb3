//! The ingest line written straight from [`RequestFacts`].
//!
//! [`write_ingest_line`] writes exactly the bytes `ingest_line(source, seq, &build_event(..))`
//! gives, so [`crate::event`] stays the readable definition of the event, and the tests hold
//! the two byte-equal over arbitrary requests. What this path leaves out is the cost: no typed
//! event, no serde, no intermediate strings, plain text copied in whole runs rather than
//! escaped byte by byte. Inside Envoy's V8 those cost about a microsecond per request
//! (`docs/benchmarks.md`); this path allocates only the line itself (and a rebuilt query when
//! a parameter in it is redacted, and the flag names when a response flag is set).
//!
//! The output is the event's RFC 8785 form: members in key order, strings escaped by
//! [`auditlog::jcs::write_string`] (RFC 8785's escaping, which is also `serde_json`'s). The
//! sealer re-canonicalizes anyway, but a line that is already canonical is easier to check.

use auditlog::event::{IdentitySource, MAX_SAFE_INTEGER};
use auditlog::jcs::write_string;
use auditlog::timestamp::Timestamp;

use crate::config::FilterConfig;
use crate::event::{
    MAX_FIELD, RequestFacts, client_parts, method_or_dash, opt_str, response_flags_text,
    split_path_borrowed,
};

/// Append the NDJSON line (without newline) for one event to `out`.
pub fn write_ingest_line(
    out: &mut Vec<u8>,
    source: &str,
    seq: u64,
    facts: &RequestFacts,
    config: &FilterConfig,
) {
    out.extend_from_slice(b"{\"source\":{\"id\":");
    write_string(source, out);
    out.extend_from_slice(b",\"seq\":");
    uint(out, seq);
    out.extend_from_slice(b"},\"event\":");
    write_event(out, facts, config);
    out.push(b'}');
}

fn write_event(out: &mut Vec<u8>, facts: &RequestFacts, config: &FilterConfig) {
    let safe = |n: u64| n.min(MAX_SAFE_INTEGER);
    let mut event = Object::open(out);
    if let Some((address, port)) = client_parts(facts, config.trusted_hops) {
        let mut client = event.object("client");
        client.string("address", address);
        if let Some(port) = port {
            client.uint("port", u64::from(port));
        }
        client.close();
    }
    if let Some(end) = facts.end_unix_nanos {
        let duration = end.saturating_sub(facts.start_unix_nanos).max(0) as u64;
        event.uint("duration_ns", safe(duration));
    }
    if let Some((id, source)) = &facts.identity {
        let mut user = event.object("enduser");
        user.string("id", crate::event::bounded_str(id, 1024));
        user.string("source", identity_source(*source));
        user.close();
    }
    let mut envoy = event.object("envoy");
    envoy.opt_string(
        "response_code_details",
        opt_str(&facts.response_code_details, 256),
    );
    if let Some(bits) = facts.response_flags {
        if bits == 0 {
            envoy.string("response_flags", "-");
        } else {
            envoy.string("response_flags", &response_flags_text(bits));
        }
    }
    envoy.opt_string("route", opt_str(&facts.route, 256));
    envoy.opt_string("upstream_cluster", opt_str(&facts.upstream_cluster, 256));
    envoy.opt_string("upstream_host", opt_str(&facts.upstream_host, 256));
    envoy.close();

    let method = method_or_dash(&facts.method);
    let mut http = event.object("http");
    let mut request = http.object("request");
    if facts.request_body_size.is_some() || facts.request_body_sha256.is_some() {
        let mut body = request.object("body");
        body.opt_string("sha256", facts.request_body_sha256.as_deref());
        if let Some(size) = facts.request_body_size {
            body.uint("size", safe(size));
        }
        body.close();
    }
    request.string("method", method.unwrap_or("-"));
    request.close();
    if let Some(status) = facts.status {
        let mut response = http.object("response");
        if let Some(size) = facts.response_body_size {
            let mut body = response.object("body");
            body.uint("size", safe(size));
            body.close();
        }
        response.uint("status_code", u64::from(status.min(999)));
        response.close();
    }
    http.close();

    if let Some(protocol) = facts.protocol.as_deref() {
        let mut network = event.object("network");
        let mut p = network.object("protocol");
        p.string(
            "version",
            protocol.strip_prefix("HTTP/").unwrap_or(protocol),
        );
        p.close();
        network.close();
    }
    event.opt_string("request_id", opt_str(&facts.request_id, 256));
    if let Some(address) = opt_str(&facts.authority, 1024) {
        let mut server = event.object("server");
        server.string("address", address);
        server.close();
    }
    let start = Timestamp::from_unix_nanos(facts.start_unix_nanos).rfc3339();
    let out = event.key("start_time");
    out.push(b'"');
    out.extend_from_slice(&start);
    out.push(b'"');
    if !facts.unavailable.is_empty() || method.is_none() {
        let out = event.key("unavailable");
        out.push(b'[');
        let names = facts.unavailable.iter().copied();
        let method_name = method.is_none().then_some("http.request.method");
        for (i, name) in names.chain(method_name).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_string(name, out);
        }
        out.push(b']');
    }
    let (path, query) = split_path_borrowed(&facts.path, config);
    let mut url = event.object("url");
    url.string("path", path);
    url.opt_string("query", query.as_deref());
    url.opt_string("scheme", opt_str(&facts.scheme, 16));
    url.close();
    if let Some(agent) = opt_str(&facts.user_agent, MAX_FIELD) {
        let mut user_agent = event.object("user_agent");
        user_agent.string("original", agent);
        user_agent.close();
    }
    event.close();
}

fn identity_source(source: IdentitySource) -> &'static str {
    match source {
        IdentitySource::Mtls => "mtls",
        IdentitySource::Jwt => "jwt",
        IdentitySource::Header => "header",
    }
}

/// A JSON object being written: members are added in the order given (the callers give
/// them in key order), with the commas between them.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Object<'a> {
    fn open(out: &'a mut Vec<u8>) -> Object<'a> {
        out.push(b'{');
        Object { out, empty: true }
    }

    /// Start a member: writes `"key":` and returns the buffer for its value. Keys are the
    /// schema's own names, which need no escaping.
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn object(&mut self, key: &str) -> Object<'_> {
        Object::open(self.key(key))
    }

    fn string(&mut self, key: &str, value: &str) {
        write_string(value, self.key(key));
    }

    fn opt_string(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.string(key, value);
        }
    }

    fn uint(&mut self, key: &str, value: u64) {
        uint(self.key(key), value);
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

fn uint(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{build_event, ingest_line};

    fn config(extra: &str) -> FilterConfig {
        FilterConfig::parse(format!(r#"{{"gateway":"gw"{extra}}}"#).as_bytes()).unwrap()
    }

    fn written(facts: &RequestFacts, config: &FilterConfig) -> String {
        let mut out = Vec::new();
        write_ingest_line(&mut out, "gw/00ff\"\u{1}", 42, facts, config);
        String::from_utf8(out).unwrap()
    }

    fn reference(facts: &RequestFacts, config: &FilterConfig) -> String {
        ingest_line("gw/00ff\"\u{1}", 42, &build_event(facts, config))
    }

    #[test]
    fn an_empty_request_is_written_like_the_typed_event() {
        let facts = RequestFacts::default();
        assert_eq!(written(&facts, &config("")), reference(&facts, &config("")));
    }

    #[test]
    fn a_full_request_is_written_like_the_typed_event() {
        let facts = RequestFacts {
            start_unix_nanos: 1_800_000_000_000_000_000,
            end_unix_nanos: Some(1_800_000_000_002_500_000),
            method: "POST".into(),
            path: "/cart/\"items\"\\?ref=mail&token=abc&%74oken=x&page=2\u{7}".into(),
            authority: Some("shop.example.com".into()),
            scheme: Some("https".into()),
            protocol: Some("HTTP/2".into()),
            user_agent: Some("curl/8.5.0\n\t\r\u{8}\u{c}\u{1f}é".into()),
            request_id: Some("r-1".into()),
            forwarded_for: Some("198.51.100.1, 203.0.113.7".into()),
            peer_address: Some("[2001:db8::1]:443".into()),
            status: Some(201),
            response_flags: Some(0x22),
            response_code_details: Some("via_upstream".into()),
            route: Some("shop".into()),
            upstream_cluster: Some("app".into()),
            upstream_host: Some("127.0.0.1:8081".into()),
            request_body_size: Some(u64::MAX),
            response_body_size: Some(17),
            request_body_sha256: Some("ab".repeat(32)),
            identity: Some(("alice".into(), IdentitySource::Jwt)),
            unavailable: vec!["client.address"],
        };
        for c in [config(""), config(r#","trusted_hops":1"#)] {
            assert_eq!(written(&facts, &c), reference(&facts, &c));
        }
    }
}

/// Over arbitrary requests, the direct writer and the typed event give the same bytes
/// (native only: proptest does not target WASI).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod same_bytes {
    use super::*;
    use crate::event::{arbitrary_facts, build_event, ingest_line};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_writer_matches_the_typed_event(
            facts in arbitrary_facts(),
            hops in 0usize..3,
            source in any::<String>(),
            seq in any::<u64>(),
        ) {
            let config = FilterConfig::parse(
                format!(r#"{{"gateway":"gw","trusted_hops":{hops},"redact_query_params":["session"]}}"#)
                    .as_bytes(),
            )
            .unwrap();
            let mut out = Vec::new();
            write_ingest_line(&mut out, &source, seq, &facts, &config);
            let expected = ingest_line(&source, seq, &build_event(&facts, &config));
            prop_assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }
}
