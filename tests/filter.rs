//! The audit filter inside the real Envoy 1.40, sending to the real sealer: every request
//! becomes exactly one sealed event with the right fields, secrets never reach the store,
//! requests answered by other Envoy filters are audited too, and the failure policies hold
//! while the sealer is down.

use std::collections::BTreeMap;
use std::time::Duration;

use auditlog::timestamp::Timestamp;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use harness::Sealer;
use harness::envoy::{self, Envoy};
use harness::pki::{HttpsRequest, Pki, https};
use harness::wait;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

/// A sealer, and Envoy's shipped standalone config pointing at it with `plugin`.
fn gateway(origin: &str, plugin: Value, customize: impl Fn(String) -> String) -> (Sealer, Envoy) {
    let sealer = Sealer::start(
        origin,
        &["--segment-max-age", "200ms", "--checkpoint-interval", "1s"],
    );
    let mut plugin = plugin;
    plugin["sealer_authority"] = json!(format!("127.0.0.1:{}", sealer.port()));
    let config = crate::gateway_config(sealer.port(), &plugin.to_string());
    let envoy = Envoy::start(&customize(config));
    (sealer, envoy)
}

/// One request through the gateway: `(status, body)`.
fn request(
    agent: &ureq::Agent,
    envoy: &Envoy,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut req = agent.request(method, &envoy.url("gateway", path));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match if method == "GET" {
        req.call()
    } else {
        req.send_string("some request body")
    } {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => envoy.fail(&format!("{method} {path}: {e}")),
    };
    let status = resp.status();
    (status, resp.into_string().unwrap_or_default())
}

/// Wait until the sealer has received `n` events from gateways.
fn wait_for_events(sealer: &Sealer, envoy: &Envoy, n: u64) {
    let what = format!("the sealer to receive {n} events");
    let got = || sealer.metric("sealer_events_received_total");
    if let Err(timeout) = wait::until_true(&what, PATIENCE, || got() >= n) {
        envoy.fail(&format!(
            "{timeout}: it received {}\n{}",
            got(),
            sealer.diagnostics()
        ));
    }
}

/// How long a test waits for what should happen in well under a second.
const PATIENCE: Duration = Duration::from_secs(30);

/// The filter's counter or gauge `wasmcustom.ingress_audit.NAME` from Envoy's `/stats`; 0
/// until the filter first reports it.
fn filter_stat(envoy: &Envoy, name: &str) -> u64 {
    envoy
        .stat(&format!("wasmcustom.ingress_audit.{name}"))
        .unwrap_or(0)
}

/// Wait until `condition` holds, or fail (Envoy's log is printed) after [`PATIENCE`].
fn wait_until(envoy: &Envoy, what: &str, condition: impl FnMut() -> bool) {
    if let Err(timeout) = wait::until_true(what, PATIENCE, condition) {
        envoy.fail(&timeout.to_string());
    }
}

/// Wait until the filter has reported `n` events and holds none: each was delivered, or
/// dropped and counted.
fn wait_drained(envoy: &Envoy, n: u64) {
    wait_until(
        envoy,
        &format!("the filter to count {n} events and drain"),
        || filter_stat(envoy, "events") >= n && filter_stat(envoy, "buffered_bytes") == 0,
    );
}

/// Stop the sealer and return every entry of its verified store.
fn sealed_entries(sealer: &mut Sealer) -> Vec<Value> {
    sealer.stop();
    sealer.verify(&[]).expect_code(0);
    let store = sealer.store();
    let export = sealer.run(&[
        "export",
        "--store",
        store.to_str().unwrap(),
        "--public-key",
        sealer.public_key().to_str().unwrap(),
    ]);
    export.expect_code(0);
    export
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).expect("entries are JSON"))
        .collect()
}

/// Every byte of every stored object, to search for secrets.
fn store_bytes(sealer: &Sealer) -> String {
    fn walk(dir: &std::path::Path, out: &mut Vec<u8>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                walk(&e.path(), out);
            } else {
                out.extend(std::fs::read(e.path()).unwrap());
            }
        }
    }
    let mut out = Vec::new();
    walk(&sealer.store(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn http_events(entries: &[Value]) -> Vec<&Value> {
    entries.iter().filter(|e| e["kind"] == "http").collect()
}

/// SHA-256 of "some request body", the body `request` sends.
const SOME_REQUEST_BODY_SHA256: &str =
    "a4584e8419d98d119f40967a44f735c2c5dee0c67d3a5c22c916b47221c5c046";

#[test]
fn every_request_becomes_one_sealed_event_and_no_secret_is_stored() {
    let plugin = json!({
        "gateway": "e2e-gw",
        "flush_interval_ms": 50,
        "identity": [{"source": "header", "name": "x-user"}],
        "redact_query_params": ["session"],
        "body_hash": {"enabled": true},
    });
    let (mut sealer, envoy) = gateway("e2e.test/filter-fields", plugin, |c| c);
    let began = Timestamp::now();
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let methods = ["GET", "POST", "PUT", "DELETE"];
    let n = 40;
    let mut sent = BTreeMap::new();
    for i in 0..n {
        let method = methods[i % methods.len()];
        let path = if i % 10 == 9 {
            "/missing".to_owned()
        } else {
            format!("/items/{i}?page=2&token=tok-SECRET-{i}&session=sess-SECRET-{i}")
        };
        let user = format!("user-{i}");
        let cookie = format!("sid=cookie-SECRET-{i}");
        let auth = format!("Bearer auth-SECRET-{i}");
        let mut headers = vec![
            ("authorization", auth.as_str()),
            ("cookie", cookie.as_str()),
            ("user-agent", "e2e-client/1.0"),
        ];
        if i % 2 == 0 {
            headers.push(("x-user", user.as_str()));
        }
        let (status, body) = request(&agent, &envoy, method, &path, &headers);
        sent.insert(
            i,
            (
                method,
                path,
                status,
                (i % 2 == 0).then_some(user),
                body.len(),
            ),
        );
    }
    let ended = Timestamp::now();
    wait_for_events(&sealer, &envoy, n as u64);
    // The filter's own counters, through the host, in Envoy's /stats.
    let stats = ureq::get(&envoy.admin_url("/stats?filter=wasmcustom"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        stats.contains(&format!("wasmcustom.ingress_audit.events: {n}")),
        "{stats}"
    );
    assert!(
        stats.contains("wasmcustom.ingress_audit.events_dropped: 0"),
        "{stats}"
    );
    let entries = sealed_entries(&mut sealer);
    let stored = store_bytes(&sealer);
    let events = http_events(&entries);
    assert_eq!(events.len(), n, "exactly one sealed event per request");

    // The filter numbers its events 1..n in the order the requests finished (one client,
    // one at a time): event i belongs to request i.
    let mut hashed = 0;
    for e in &events {
        let seq = e["source"]["seq"].as_u64().unwrap() as usize;
        let (method, path, status, user, response_len) = &sent[&(seq - 1)];
        let ev = &e["event"];
        assert_eq!(ev["http"]["request"]["method"], *method, "{e}");
        assert_eq!(ev["http"]["response"]["status_code"], *status, "{e}");
        let (p, _) = path.split_once('?').unwrap_or((path, ""));
        assert_eq!(ev["url"]["path"], p, "{e}");
        if path.contains('?') {
            assert_eq!(
                ev["url"]["query"], "page=2&token=REDACTED&session=REDACTED",
                "{e}"
            );
        }
        assert_eq!(ev["user_agent"]["original"], "e2e-client/1.0");
        assert_eq!(ev["client"]["address"], "127.0.0.1");
        assert_eq!(ev["network"]["protocol"]["version"], "1.1");
        match user {
            Some(u) => {
                assert_eq!(ev["enduser"]["id"], *u, "{e}");
                assert_eq!(ev["enduser"]["source"], "header");
            }
            None => assert!(ev.get("enduser").is_none(), "{e}"),
        }
        // Start and end come from the host's clock, within the test's own window.
        let start = Timestamp::parse(ev["start_time"].as_str().unwrap()).unwrap();
        assert!(began <= start && start <= ended, "{e}");
        let duration = ev["duration_ns"].as_u64().unwrap();
        assert!(
            start.unix_nanos() + duration as i64 <= ended.unix_nanos(),
            "{e}"
        );
        // Body sizes: the bytes that passed the filter, counted in its body callbacks.
        assert_eq!(ev["http"]["response"]["body"]["size"], *response_len, "{e}");
        let request_len = if *method == "GET" {
            0
        } else {
            "some request body".len()
        };
        assert_eq!(ev["http"]["request"]["body"]["size"], request_len, "{e}");
        let upstream = ev["envoy"]["upstream_host"].as_str().unwrap_or_default();
        assert!(upstream.starts_with("127.0.0.1:"), "{e}");
        // Bodies of mutating methods are hashed as they stream ("some request body"). A
        // request the upstream answered before the filter saw its whole body gets no hash
        // (never a hash of part of it).
        let sha = &ev["http"]["request"]["body"]["sha256"];
        if *method == "GET" {
            assert!(sha.is_null(), "{e}");
        } else if !sha.is_null() {
            assert_eq!(sha, SOME_REQUEST_BODY_SHA256, "{e}");
            hashed += 1;
        }
        assert_eq!(ev["envoy"]["upstream_cluster"], "app", "{e}");
        assert!(e["source"]["id"].as_str().unwrap().starts_with("e2e-gw/"));
    }
    assert!(hashed > 0, "no request body was hashed");
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"]["http"]["response"]["status_code"] == 404)
            .count(),
        4
    );
    for secret in ["tok-SECRET", "sess-SECRET", "cookie-SECRET", "auth-SECRET"] {
        assert!(
            !stored.contains(secret),
            "{secret} reached the store: the filter must never record it"
        );
    }
    assert!(
        stored.contains("e2e-client/1.0"),
        "the store search can find things"
    );
}

/// An HS256 JWT for the test issuer, signed with `secret`.
fn jwt(secret: &[u8], sub: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let payload = URL_SAFE_NO_PAD
        .encode(json!({"iss": "https://issuer.test", "sub": sub, "exp": exp}).to_string());
    let input = format!("{header}.{payload}");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// RBAC, jwt_authn and the local rate limiter after the audit filter, and a virtual host that
/// only serves `gateway.test`, so other hosts find no route.
fn with_guard_filters(config: String, jwt_secret: &[u8]) -> String {
    let jwks = json!({"keys": [{"kty": "oct", "alg": "HS256", "kid": "k1", "k": URL_SAFE_NO_PAD.encode(jwt_secret)}]});
    let filters = format!(
        r#"          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: DENY
                policies:
                  deny-admin:
                    permissions: [{{ url_path: {{ path: {{ prefix: "/admin" }} }} }}]
                    principals: [{{ any: true }}]
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                test:
                  issuer: https://issuer.test
                  payload_in_metadata: jwt_payload
                  local_jwks:
                    inline_string: '{jwks}'
              rules:
              - match: {{ prefix: "/api" }}
                requires: {{ provider_name: test }}
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: gateway_rl
"#
    );
    let routes = r#"              - match: { prefix: "/limited" }
                route: { cluster: app }
                typed_per_filter_config:
                  envoy.filters.http.local_ratelimit:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                    stat_prefix: gateway_rl
                    token_bucket: { max_tokens: 1, tokens_per_fill: 1, fill_interval: 3600s }
                    filter_enabled: { default_value: { numerator: 100, denominator: HUNDRED } }
                    filter_enforced: { default_value: { numerator: 100, denominator: HUNDRED } }
              - match: { prefix: "/" }
                route: { cluster: app }
"#;
    let router = "          - name: envoy.filters.http.router\n";
    let at = config.find(router).expect("the gateway's router filter");
    let mut c = format!("{}{filters}{}", &config[..at], &config[at..]);
    let default_route =
        "              - match: { prefix: \"/\" }\n                route: { cluster: app }\n";
    let at = c.find(default_route).expect("the gateway's route");
    c.replace_range(at..at + default_route.len(), routes);
    c.replacen("domains: [\"*\"]", "domains: [\"gateway.test\"]", 1)
}

/// A request (path and headers) and the status it must get.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16);

#[test]
fn requests_answered_before_the_upstream_are_audited() {
    let secret = b"e2e-jwt-secret-0123456789abcdef!";
    let plugin = json!({
        "gateway": "e2e-guarded",
        "flush_interval_ms": 50,
        "identity": [{"source": "jwt"}, {"source": "header", "name": "x-user"}],
    });
    let (mut sealer, envoy) = gateway("e2e.test/filter-guards", plugin, |c| {
        with_guard_filters(c, secret)
    });
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let host = [("host", "gateway.test")];
    let token = format!("Bearer {}", jwt(secret, "alice@example.com"));
    let cases: Vec<Case> = vec![
        ("/admin/users", host.to_vec(), 403),
        ("/api/orders", host.to_vec(), 401),
        (
            "/api/orders",
            vec![("host", "gateway.test"), ("authorization", token.as_str())],
            200,
        ),
        ("/limited", host.to_vec(), 200),
        ("/limited", host.to_vec(), 429),
        ("/anything", vec![("host", "elsewhere.test")], 404),
    ];
    for (path, headers, expected) in &cases {
        let (status, body) = request(&agent, &envoy, "GET", path, headers);
        assert_eq!(status, *expected, "GET {path} {headers:?}: {body}");
    }
    wait_for_events(&sealer, &envoy, cases.len() as u64);
    let entries = sealed_entries(&mut sealer);
    let events = http_events(&entries);
    assert_eq!(events.len(), cases.len(), "every request is audited");
    let by_seq = |seq: u64| {
        events
            .iter()
            .find(|e| e["source"]["seq"] == seq)
            .unwrap_or_else(|| panic!("no event with source seq {seq}: {events:?}"))
    };
    for (i, (path, _, status)) in cases.iter().enumerate() {
        let e = by_seq(i as u64 + 1);
        assert_eq!(e["event"]["url"]["path"], *path, "{e}");
        assert_eq!(
            e["event"]["http"]["response"]["status_code"], *status,
            "{e}"
        );
    }
    let details = |seq: u64| by_seq(seq)["event"]["envoy"]["response_code_details"].clone();
    assert!(
        details(1)
            .as_str()
            .unwrap()
            .starts_with("rbac_access_denied"),
        "{}",
        details(1)
    );
    assert!(
        details(2)
            .as_str()
            .unwrap()
            .starts_with("jwt_authn_access_denied"),
        "{}",
        details(2)
    );
    let jwt_event = by_seq(3);
    assert_eq!(
        jwt_event["event"]["enduser"]["id"], "alice@example.com",
        "{jwt_event}"
    );
    assert_eq!(jwt_event["event"]["enduser"]["source"], "jwt");
    // A plain success's details are not read (`code_details` defaults to `errors`).
    assert_eq!(jwt_event["event"]["http"]["response"]["status_code"], 200);
    assert!(
        jwt_event["event"]["envoy"]
            .get("response_code_details")
            .is_none(),
        "{jwt_event}"
    );
    assert_eq!(by_seq(5)["event"]["envoy"]["response_flags"], "RL");
    assert_eq!(by_seq(6)["event"]["envoy"]["response_flags"], "NR");
    let stored = store_bytes(&sealer);
    assert!(
        !stored.contains(&token[7..]),
        "the bearer token must never reach the store"
    );
}

/// Send one GET per path `/req/<i>`, `i` in `range`; returns the statuses.
fn traffic(envoy: &Envoy, range: std::ops::Range<usize>) -> Vec<u16> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    range
        .map(|i| request(&agent, envoy, "GET", &format!("/req/{i}"), &[]).0)
        .collect()
}

#[test]
fn fail_open_serves_through_a_sealer_crash_and_loses_nothing_silently() {
    let plugin = json!({"gateway": "e2e-open", "flush_interval_ms": 50, "retry_backoff_min_ms": 50, "retry_backoff_max_ms": 200});
    let (mut sealer, envoy) = gateway("e2e.test/filter-open", plugin, |c| c);
    let mut statuses = traffic(&envoy, 0..30);
    wait_for_events(&sealer, &envoy, 30);
    sealer.kill9();
    statuses.extend(traffic(&envoy, 30..60));
    wait_until(
        &envoy,
        "a delivery to fail while the sealer is down",
        || filter_stat(&envoy, "delivery_failures") > 0,
    );
    sealer.restart_on_same_port();
    statuses.extend(traffic(&envoy, 60..90));
    assert!(
        statuses.iter().all(|s| *s == 200),
        "fail_open: no request may fail while the sealer is away: {statuses:?}"
    );
    wait_drained(&envoy, 90);
    // Every request is sealed, or inside a gap entry: nothing is lost silently.
    let mut entries = sealed_entries(&mut sealer);
    let mut covered = [false; 90];
    for e in &entries {
        match e["kind"].as_str() {
            Some("http") => {
                let seq = e["source"]["seq"].as_u64().unwrap() as usize;
                assert_eq!(e["event"]["url"]["path"], format!("/req/{}", seq - 1));
                assert!(!covered[seq - 1], "event {seq} sealed twice");
                covered[seq - 1] = true;
            }
            Some("gap") => {
                for s in e["event"]["first_seq"].as_u64().unwrap()
                    ..=e["event"]["last_seq"].as_u64().unwrap()
                {
                    covered[s as usize - 1] = true;
                }
            }
            _ => {}
        }
    }
    let missing: Vec<usize> = (0..90).filter(|i| !covered[*i]).collect();
    entries.clear();
    assert!(
        missing.is_empty(),
        "requests neither sealed nor in a gap: {missing:?}"
    );
}

#[test]
fn a_full_batch_goes_at_once_and_a_partial_one_waits_for_the_timer() {
    // The timer fires only once a minute. A full batch must not wait for it: the filter sets
    // the timer to fire at once, and sets it back afterwards. No gathering after an answer
    // (`batch_delay_ms` 0): its short timer would send the partial batch too.
    let plugin = json!({"gateway": "e2e-batch", "flush_interval_ms": 60000, "max_batch_events": 5, "batch_delay_ms": 0});
    let (mut sealer, envoy) = gateway("e2e.test/filter-batch", plugin, |c| c);
    let statuses = traffic(&envoy, 0..5);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    wait_for_events(&sealer, &envoy, 5);
    // Once the sealer's answer is in, nothing is in flight: two more events make a partial
    // batch, which waits for the minute's timer (a timer left firing at once would send it
    // within milliseconds).
    wait_until(&envoy, "the full batch to be acknowledged", || {
        filter_stat(&envoy, "batches_delivered") == 1
    });
    traffic(&envoy, 5..7);
    let held = wait::holds_for(
        "no partial batch before the minute's timer",
        Duration::from_secs(2),
        || sealer.metric("sealer_events_received_total") == 5,
    );
    if let Err(broke) = held {
        envoy.fail(&broke.to_string());
    }
    let entries = sealed_entries(&mut sealer);
    let seqs: Vec<u64> = http_events(&entries)
        .iter()
        .map(|e| e["source"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
}

#[test]
fn fail_closed_refuses_requests_while_the_sealer_is_down() {
    let plugin = json!({"gateway": "e2e-closed", "failure_policy": "fail_closed", "flush_interval_ms": 50, "retry_backoff_min_ms": 50, "retry_backoff_max_ms": 100, "sealer_timeout_ms": 500});
    let (mut sealer, envoy) = gateway("e2e.test/filter-closed", plugin, |c| c);
    assert!(traffic(&envoy, 0..5).iter().all(|s| *s == 200));
    sealer.kill9();
    // The first failed delivery turns the gate shut; until then requests still pass (their
    // events wait in the buffer).
    let agent = ureq::AgentBuilder::new().build();
    let refused = wait::until(
        "fail_closed to refuse while the sealer is down",
        PATIENCE,
        || Some(request(&agent, &envoy, "GET", "/while-down", &[])).filter(|r| r.0 == 503),
    );
    let (_, body) = refused.unwrap_or_else(|timeout| envoy.fail(&timeout.to_string()));
    assert!(body.contains("audit log unavailable"), "{body}");
    sealer.restart_on_same_port();
    wait_until(&envoy, "the gate to reopen", || {
        request(&agent, &envoy, "GET", "/after", &[]).0 == 200
    });
    let entries = sealed_entries(&mut sealer);
    let served: Vec<_> = http_events(&entries)
        .into_iter()
        .filter(|e| e["event"]["http"]["response"]["status_code"] == 200)
        .collect();
    assert!(
        served.len() >= 5,
        "the requests served before the crash are sealed"
    );
}

#[test]
fn a_bad_plugin_configuration_is_refused_at_load() {
    let config = crate::gateway_config(harness::free_port(), r#"{"gateway":"has space"}"#);
    let run = envoy::validate(&config);
    let log = String::from_utf8_lossy(&run.output.stderr).into_owned() + &run.stdout();
    assert_ne!(run.code(), 0, "Envoy must refuse the plugin: {log}");
    assert!(
        log.contains("invalid audit filter configuration: gateway"),
        "the refusal names the field: {log}"
    );
}

/// A CA, a server certificate for 127.0.0.1, and two client certificates: one with a SPIFFE
/// URI SAN, one with a subject only.
fn mtls_certificates(dir: &std::path::Path) {
    Pki::new(dir)
        .ca("ca", "/CN=e2e test CA")
        .issue(
            "ca",
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1",
        )
        .issue(
            "ca",
            "spiffe",
            "/CN=checkout",
            "subjectAltName=URI:spiffe://cluster.local/ns/shop/sa/checkout",
        )
        .issue(
            "ca",
            "legacy",
            "/O=Example Corp/CN=legacy-client",
            "basicConstraints=CA:FALSE",
        );
}

/// GET `path` over TLS with the client certificate `name`: the status.
fn mtls_get(dir: &std::path::Path, port: u16, name: &str, path: &str) -> u16 {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    https(&HttpsRequest {
        port,
        method: "GET",
        path,
        ca: &dir.join("ca.pem"),
        client: Some((&cert, &key)),
        headers: Vec::new(),
        body: b"",
    })
    .status()
}

#[test]
fn the_mtls_peer_is_the_identity() {
    let certs = tempfile::tempdir().unwrap();
    mtls_certificates(certs.path());
    let file = |n: &str| certs.path().join(n).to_str().unwrap().to_owned();
    let tls = format!(
        "    filter_chains:\n    - transport_socket:\n        name: envoy.transport_sockets.tls\n        \
         typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n          \
         require_client_certificate: true\n          common_tls_context:\n            tls_certificates:\n            \
         - certificate_chain: {{ filename: {} }}\n              private_key: {{ filename: {} }}\n            \
         validation_context:\n              trusted_ca: {{ filename: {} }}\n      filters:\n",
        file("server.pem"),
        file("server.key"),
        file("ca.pem")
    );
    let plugin = json!({
        "gateway": "e2e-mtls",
        "flush_interval_ms": 50,
        "identity": [{"source": "mtls"}],
    });
    let (mut sealer, envoy) = gateway("e2e.test/filter-mtls", plugin, |c| {
        let gateway_chain = "    filter_chains:\n    - filters:\n";
        let at = c
            .find(gateway_chain)
            .expect("the gateway listener's filter chain");
        let mut c = c;
        c.replace_range(at..at + gateway_chain.len(), &tls);
        c
    });
    let port = envoy.listener_port("gateway");
    assert_eq!(mtls_get(certs.path(), port, "spiffe", "/orders"), 200);
    assert_eq!(mtls_get(certs.path(), port, "legacy", "/legacy"), 200);
    wait_for_events(&sealer, &envoy, 2);
    let entries = sealed_entries(&mut sealer);
    let events = http_events(&entries);
    assert_eq!(events.len(), 2);
    let by_path = |p: &str| {
        events
            .iter()
            .find(|e| e["event"]["url"]["path"] == p)
            .unwrap_or_else(|| panic!("no event for {p}: {events:?}"))
    };
    let spiffe = &by_path("/orders")["event"];
    assert_eq!(
        spiffe["enduser"]["id"], "spiffe://cluster.local/ns/shop/sa/checkout",
        "{spiffe}"
    );
    assert_eq!(spiffe["enduser"]["source"], "mtls");
    assert_eq!(spiffe["url"]["scheme"], "https");
    // Without a URI SAN, the certificate's subject names the peer.
    let legacy = &by_path("/legacy")["event"];
    let id = legacy["enduser"]["id"].as_str().unwrap_or_default();
    assert!(
        id.contains("CN=legacy-client") && id.contains("O=Example Corp"),
        "{legacy}"
    );
    assert_eq!(legacy["enduser"]["source"], "mtls");
}

#[test]
fn the_filter_sends_the_ingest_token_a_sealer_requires() {
    let mut sealer = Sealer::start_with_tokens(
        "e2e.test/filter-token",
        &["--segment-max-age", "200ms", "--checkpoint-interval", "1s"],
    );
    let (ingest, _) = sealer.tokens.clone().unwrap();
    let plugin = json!({
        "gateway": "e2e-token",
        "flush_interval_ms": 50,
        "sealer_authority": format!("127.0.0.1:{}", sealer.port()),
        "sealer_token": ingest,
    });
    let config = crate::gateway_config(sealer.port(), &plugin.to_string());
    let envoy = Envoy::start(&config);
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    for i in 0..5 {
        let (status, _) = request(&agent, &envoy, "GET", &format!("/t/{i}"), &[]);
        assert_eq!(status, 200);
    }
    wait_for_events(&sealer, &envoy, 5);
    let entries = sealed_entries(&mut sealer);
    assert_eq!(http_events(&entries).len(), 5);
    // The token is configuration, never data: it is in no sealed entry.
    assert!(!store_bytes(&sealer).contains(&ingest));
}

/// Send raw bytes as one HTTP/1.1 request on a new connection; the status Envoy answers.
fn raw_request(port: u16, head: &[u8], body: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(head).expect("send the head");
    // The body in 64 KiB chunks, as a client streams it; Envoy may answer early and close.
    for chunk in body.chunks(64 << 10) {
        if conn.write_all(chunk).is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&answer);
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {line:?}"))
}

#[test]
fn hostile_requests_never_trap_the_vm_and_what_is_sealed_stays_valid() {
    use sha2::{Digest, Sha256};
    let plugin = json!({
        "gateway": "e2e-hostile",
        "flush_interval_ms": 50,
        "identity": [{"source": "header", "name": "x-user"}],
        "body_hash": {"enabled": true, "max_bytes": 1 << 20},
    });
    let (mut sealer, envoy) = gateway("e2e.test/filter-hostile", plugin, |c| c);
    let port = envoy.listener_port("gateway");
    let get = |path: &str, extra: &[u8]| {
        let mut head = format!("GET {path} HTTP/1.1\r\nhost: hostile.test\r\n").into_bytes();
        head.extend_from_slice(extra);
        head.extend_from_slice(b"connection: close\r\n\r\n");
        raw_request(port, &head, b"")
    };
    // Invalid UTF-8 in header values (obs-text bytes), including the identity header.
    let status = get(
        "/utf8",
        b"user-agent: bad\xff\xfeagent\r\nx-user: m\xe9lanie\r\n",
    );
    assert_eq!(status, 200);
    // Percent-encoded invalid UTF-8 in the path and query.
    assert_eq!(get("/p%ff%fe?q=%c3%28&token=s3cret", b""), 200);
    // Thousands of headers: Envoy's codec refuses them (431) before any filter runs.
    let many: Vec<u8> = (0..3000)
        .flat_map(|i| format!("x-h{i}: v\r\n").into_bytes())
        .collect();
    let status = get("/many-headers", &many);
    assert!(status == 431 || status == 400, "{status}");
    // An oversized header value (100 KiB, over Envoy's 60 KiB header limit).
    let big = format!("x-big: {}\r\n", "a".repeat(100 << 10));
    let status = get("/big-header", big.as_bytes());
    assert!(status == 431 || status == 400, "{status}");
    // Bodies streamed through the hasher: 512 KiB (hashed) and 4 MiB (over the cap).
    let small: Vec<u8> = (0..512 << 10).map(|i| (i % 251) as u8).collect();
    let large = vec![7u8; 4 << 20];
    for (path, body) in [("/body/small", &small), ("/body/large", &large)] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: hostile.test\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        assert_eq!(raw_request(port, head.as_bytes(), body), 200, "{path}");
    }
    // And ordinary traffic still flows.
    assert_eq!(get("/after", b""), 200);

    // 5 requests Envoy served, 2 its codec refused.
    wait_for_events(&sealer, &envoy, 7);
    let entries = sealed_entries(&mut sealer);
    let events = http_events(&entries);
    let sources: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e["source"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        sources.len(),
        1,
        "one VM incarnation: it never trapped: {sources:?}"
    );
    let by_path = |p: &str| {
        events
            .iter()
            .find(|e| e["event"]["url"]["path"] == p)
            .unwrap_or_else(|| panic!("no event for {p}"))
    };
    let utf8 = &by_path("/utf8")["event"];
    assert_eq!(utf8["user_agent"]["original"], "bad\u{fffd}\u{fffd}agent");
    assert_eq!(utf8["enduser"]["id"], "m\u{fffd}lanie");
    let query = by_path("/p%ff%fe")["event"]["url"]["query"]
        .as_str()
        .unwrap();
    assert_eq!(query, "q=%c3%28&token=REDACTED");
    let small_event = &by_path("/body/small")["event"]["http"]["request"]["body"];
    assert_eq!(small_event["size"], small.len());
    // Hashed chunk by chunk as it streamed, or, if the upstream answered before the filter
    // saw the body's end, no hash at all: never a hash of part of it.
    if !small_event["sha256"].is_null() {
        assert_eq!(
            small_event["sha256"],
            Sha256::digest(&small)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
    }
    let large_event = &by_path("/body/large")["event"]["http"]["request"]["body"];
    assert_eq!(large_event["size"], large.len());
    assert!(large_event.get("sha256").is_none(), "over the cap: no hash");
    by_path("/after");
    // The two requests Envoy's codec refused are on the record too, with what is known: no
    // method or path reached the filter, and it says so instead of inventing them.
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e["event"]["http"]["response"]["status_code"].as_u64() != Some(200))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    for e in refused {
        assert_eq!(e["event"]["http"]["request"]["method"], "-", "{e}");
        let unavailable = e["event"]["unavailable"].as_array().unwrap();
        assert!(unavailable.contains(&json!("http.request.method")), "{e}");
        assert!(unavailable.contains(&json!("duration_ns")), "{e}");
    }
    assert!(!store_bytes(&sealer).contains("s3cret"));
}

#[test]
fn a_flood_while_the_sealer_is_down_stays_within_the_buffer_cap() {
    let cap = 64 << 10;
    let plugin = json!({
        "gateway": "e2e-flood",
        "flush_interval_ms": 50,
        "max_batch_bytes": 16 << 10,
        "max_buffer_bytes": cap,
        "retry_backoff_min_ms": 50,
        "retry_backoff_max_ms": 200,
    });
    let (mut sealer, envoy) = gateway("e2e.test/filter-flood", plugin, |c| c);
    sealer.kill9();
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let total = 2000;
    for i in 0..total {
        let (status, _) = request(&agent, &envoy, "GET", &format!("/flood/{i}"), &[]);
        assert_eq!(status, 200, "fail_open keeps serving");
    }
    // The filter reports its counters and gauge together, on its timer.
    wait_until(&envoy, "the filter to count every event", || {
        filter_stat(&envoy, "events") >= total
    });
    let buffered = filter_stat(&envoy, "buffered_bytes");
    let dropped = filter_stat(&envoy, "events_dropped");
    assert!(
        buffered <= cap as u64,
        "buffer {buffered} over its cap {cap}"
    );
    assert!(dropped > 0, "2000 events cannot fit in 64 KiB");
    sealer.restart_on_same_port();
    wait_drained(&envoy, total);
    let entries = sealed_entries(&mut sealer);
    let sealed = http_events(&entries).len() as u64;
    let in_gaps: u64 = entries
        .iter()
        .filter(|e| e["kind"] == "gap")
        .map(|e| {
            e["event"]["last_seq"].as_u64().unwrap() - e["event"]["first_seq"].as_u64().unwrap() + 1
        })
        .sum();
    assert_eq!(
        sealed + in_gaps,
        total,
        "every request sealed or inside a gap"
    );
    assert_eq!(in_gaps, dropped, "the gaps are exactly the events dropped");
    // And the filter said so itself: every gap is declared, none is an unexplained jump.
    for gap in entries.iter().filter(|e| e["kind"] == "gap") {
        assert_eq!(gap["event"]["reason"], "declared_by_source", "{gap}");
    }
}

/// Send each request (head and body) on one connection, one after the other; their
/// statuses.
fn requests_on_one_connection(port: u16, heads: &[&[u8]]) -> Vec<u16> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    heads
        .iter()
        .map(|head| {
            conn.write_all(head).expect("send the request");
            let mut status_line = String::new();
            reader.read_line(&mut status_line).expect("a status line");
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("a header line");
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).expect("the body");
            status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no HTTP status in {status_line:?}"))
        })
        .collect()
}

/// The shipped gateway with its `set_filter_state` rule moved from the listener to one route,
/// the one taken by requests with an `x-fast-path` header: the same requests, on the same
/// connection, go through the filter's fast path or through its portable path.
fn fast_path_on_one_route(config: String) -> String {
    let mut config: Value = serde_yaml_ng::from_str(&config).expect("the config is YAML");
    let hcm = &mut config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let fast_path = hcm["http_filters"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|f| f["name"] == "envoy.filters.http.set_filter_state")
        .expect("the shipped gateway has the fast path");
    let mut per_route = fast_path["typed_config"].clone();
    fast_path["typed_config"]["on_request_headers"] = json!([]);
    let routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
        .as_array_mut()
        .unwrap();
    let mut fast_route = routes.last().unwrap().clone();
    fast_route["match"]["headers"] = json!([{"name": "x-fast-path", "present_match": true}]);
    per_route["@type"] =
        json!("type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config");
    fast_route["typed_per_filter_config"] =
        json!({"envoy.filters.http.set_filter_state": per_route});
    routes.insert(routes.len() - 1, fast_route);
    // Whole request bodies reach the upstream only once read, so the filter sees the end of
    // every body it hashes, whichever path (else a quick answer may leave a hash out).
    let filters = hcm["http_filters"].as_array_mut().unwrap();
    filters.insert(
        filters.len() - 1,
        json!({"name": "envoy.filters.http.buffer", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
            "max_request_bytes": 1048576}}),
    );
    // JSON is YAML.
    config.to_string()
}

#[test]
fn the_fast_path_and_the_portable_path_record_the_same_events() {
    let plugin = json!({
        "gateway": "e2e-gw",
        "flush_interval_ms": 50,
        "identity": [{"source": "header", "name": "x-user"}],
        "redact_query_params": ["session"],
        "body_hash": {"enabled": true},
        "trusted_hops": 1,
    });
    let (mut sealer, envoy) = gateway("e2e.test/fast-path", plugin, fast_path_on_one_route);
    // Each pair on one connection, so both events have the same client port. Header values
    // include valid UTF-8 beyond ASCII and bytes that are not UTF-8 at all. Envoy makes up
    // an x-request-id for a request without one, so each pair brings its own.
    let cases: [&[u8]; 8] = [
        b"GET / HTTP/1.1\r\nhost: h\r\nx-request-id: r0\r\n",
        b"GET /items/7?page=2&token=t0k&session=s3 HTTP/1.1\r\nhost: shop.example\r\nx-user: alice\r\nx-request-id: r1\r\n",
        b"POST /orders HTTP/1.1\r\nhost: h\r\nx-request-id: r2\r\nx-forwarded-for: 198.51.100.7, 203.0.113.9\r\nuser-agent: agent \"quoted\" \\ back/slash\r\ncontent-length: 17\r\n",
        b"PUT /orders/9 HTTP/1.1\r\nhost: h\r\nx-request-id: r3\r\nx-user: bob\r\nx-user: eve\r\ncontent-length: 17\r\n",
        b"DELETE /missing HTTP/1.1\r\nhost: h\r\nx-request-id: r4\r\nuser-agent: -\r\n",
        b"GET /a%20b?q=%E2%9C%93&x=y%22 HTTP/1.1\r\nhost: h\r\nx-request-id: r5\r\naccept: */*\r\n",
        b"GET /utf8 HTTP/1.1\r\nhost: h\r\nx-request-id: r6\r\nuser-agent: caf\xc3\xa9 \xe2\x9c\x93\r\nx-user: m\xc3\xa9lanie\r\n",
        b"GET /bytes HTTP/1.1\r\nhost: h\r\nx-request-id: r7\r\nuser-agent: bad\xff\xfe \xe2\x9c agent\r\nx-user: m\xe9lanie\r\n",
    ];
    let port = envoy.listener_port("gateway");
    for head in cases {
        let body: &[u8] = if head.starts_with(b"POST") || head.starts_with(b"PUT") {
            b"some request body"
        } else {
            b""
        };
        let mut fast = head.to_vec();
        fast.extend_from_slice(b"x-fast-path: 1\r\n\r\n");
        fast.extend_from_slice(body);
        let mut portable = head.to_vec();
        portable.extend_from_slice(b"\r\n");
        portable.extend_from_slice(body);
        let statuses = requests_on_one_connection(port, &[&fast, &portable]);
        assert_eq!(
            statuses[0],
            statuses[1],
            "{}",
            String::from_utf8_lossy(head)
        );
    }
    let n = 2 * cases.len() as u64;
    wait_for_events(&sealer, &envoy, n);
    wait_until(&envoy, "the filter to report its events", || {
        filter_stat(&envoy, "events") >= n
    });
    let preformatted = filter_stat(&envoy, "requests_preformatted");
    assert_eq!(
        preformatted,
        n / 2,
        "every request with x-fast-path took the fast path"
    );
    let entries = sealed_entries(&mut sealer);
    let events = http_events(&entries);
    assert_eq!(events.len() as u64, n);
    // What both paths recorded is also right.
    let event = |path: &str| {
        &events
            .iter()
            .find(|e| e["event"]["url"]["path"] == path)
            .unwrap_or_else(|| panic!("no event for {path}"))["event"]
    };
    assert_eq!(event("/utf8")["user_agent"]["original"], "café ✓");
    assert_eq!(event("/utf8")["enduser"]["id"], "mélanie");
    assert_eq!(
        event("/bytes")["user_agent"]["original"],
        "bad\u{fffd}\u{fffd} \u{fffd} agent"
    );
    assert_eq!(event("/bytes")["enduser"]["id"], "m\u{fffd}lanie");
    assert_eq!(
        event("/orders/9")["enduser"]["id"],
        "bob",
        "a header's first value"
    );
    assert_eq!(
        event("/orders/9")["http"]["request"]["body"]["sha256"],
        SOME_REQUEST_BODY_SHA256
    );
    assert_eq!(event("/orders")["client"]["address"], "203.0.113.9");
    assert_eq!(
        event("/orders")["user_agent"]["original"],
        r#"agent "quoted" \ back/slash"#
    );
    assert_eq!(
        event("/items/7")["url"]["query"],
        "page=2&token=REDACTED&session=REDACTED"
    );
    assert_eq!(event("/items/7")["server"]["address"], "shop.example");
    assert_eq!(event("/missing")["http"]["response"]["status_code"], 404);
    assert_eq!(event("/missing")["user_agent"]["original"], "-");
    // In pairs, in the order sent: the fast path's event, then the portable path's.
    for pair in events.chunks(2) {
        let strip = |e: &Value| {
            let mut event = e["event"].clone();
            let timing = event.as_object_mut().unwrap();
            assert!(timing.remove("start_time").is_some(), "{e}");
            assert!(timing.remove("duration_ns").is_some(), "{e}");
            event
        };
        assert_eq!(
            strip(pair[0]),
            strip(pair[1]),
            "the two paths record the same facts\nfast:     {}\nportable: {}",
            pair[0],
            pair[1]
        );
    }
}

/// Load from `threads` clients with keep-alive until `stop`: how many requests were answered
/// 2xx (served) by the gateway.
fn load(
    url: String,
    threads: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<u64>> {
    use std::sync::atomic::Ordering;
    (0..threads)
        .map(|t| {
            let (url, stop) = (url.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(5))
                    .build();
                let mut served = 0;
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    match agent.get(&format!("{url}/load/{t}/{i}")).call() {
                        Ok(r) if r.status() < 300 => served += 1,
                        // Refused while draining or stopped: a client's back-off before it
                        // retries, not a wait.
                        _ => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                served
            })
        })
        .collect()
}

/// What a gateway's stop left in the log: per source, its `source_end` (if any) and how many
/// of its numbers are accounted for (events and gaps).
struct StopOutcome {
    served: u64,
    sealed: u64,
    clean_ends: usize,
    unclean_ends: usize,
    sources: usize,
}

fn stop_under_load(drain_first: bool) -> StopOutcome {
    use std::sync::atomic::{AtomicBool, Ordering};
    let plugin = json!({"gateway": "e2e-gw", "heartbeat_interval_ms": 1000});
    let (mut sealer, mut envoy) = {
        let sealer = Sealer::start(
            "e2e.test/stop",
            &[
                "--segment-max-age",
                "200ms",
                "--checkpoint-interval",
                "1s",
                "--source-silence-timeout",
                "3s",
            ],
        );
        let mut plugin = plugin;
        plugin["sealer_authority"] = json!(format!("127.0.0.1:{}", sealer.port()));
        let config = crate::gateway_config(sealer.port(), &plugin.to_string());
        // A drain period shorter than the wait before SIGTERM: the listeners close, the
        // last events go out, then Envoy stops (docs/operations.md, "Stopping a gateway").
        (
            sealer,
            Envoy::start_with_args(
                &config,
                &["--drain-time-s", "1", "--drain-strategy", "immediate"],
            ),
        )
    };
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let gateway_port = envoy.listener_port("gateway");
    let clients = load(envoy.url("gateway", ""), 4, stop.clone());
    // Under load: events from the gateway are arriving.
    wait_for_events(&sealer, &envoy, 200);
    if drain_first {
        // As Istio stops a gateway: drain the listeners gracefully, wait until they are
        // closed, then SIGTERM.
        let drained = ureq::post(&envoy.admin_url("/drain_listeners?graceful"))
            .call()
            .map(|r| r.status());
        assert_eq!(drained.ok(), Some(200));
        wait_until(&envoy, "the drained gateway listener to close", || {
            std::net::TcpStream::connect(("127.0.0.1", gateway_port)).is_err()
        });
    }
    envoy.stop();
    stop.store(true, Ordering::Relaxed);
    let served: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    // Every source ends: cleanly, or after the silence timeout.
    sealer.wait_until("every source to end", || {
        sealer.metric("sealer_sources_open") == 0
    });
    let entries = sealed_entries(&mut sealer);
    let sealed = http_events(&entries).len() as u64;
    let ends: Vec<&Value> = entries
        .iter()
        .filter(|e| e["kind"] == "source_end")
        .collect();
    let sources: std::collections::BTreeSet<&str> = http_events(&entries)
        .iter()
        .map(|e| e["source"]["id"].as_str().unwrap())
        .collect();
    // Every source's numbers 1..=last_seq are in the log, as events or gaps.
    for end in &ends {
        let id = end["source"]["id"].as_str().unwrap();
        let last = end["event"]["last_seq"].as_u64().unwrap();
        let mut covered = 0;
        for e in entries.iter().filter(|e| e["source"]["id"] == id) {
            match e["kind"].as_str() {
                Some("http") => covered += 1,
                Some("gap") => covered += e["event"]["count"].as_u64().unwrap(),
                _ => {}
            }
        }
        assert_eq!(
            covered, last,
            "source {id}: every number it gave out is accounted for"
        );
    }
    StopOutcome {
        served,
        sealed,
        clean_ends: ends.iter().filter(|e| e["event"]["clean"] == true).count(),
        unclean_ends: ends.iter().filter(|e| e["event"]["clean"] == false).count(),
        sources: sources.len(),
    }
}

/// A gateway stopped under load, with SIGTERM alone and the way Istio stops one (drain with
/// a drain time shorter than the wait, wait, SIGTERM): every source ends in the log; stopped
/// the Istio way every served request is sealed, and with SIGTERM alone a served request
/// that was not sealed is never silent: its source's end is marked unclean.
#[test]
fn a_gateway_stopped_under_load_loses_nothing_silently() {
    for drain_first in [false, true] {
        let o = stop_under_load(drain_first);
        eprintln!(
            "stop under load (drain first: {drain_first}): {} served, {} sealed, {} sources, \
             {} clean ends, {} unclean ends",
            o.served, o.sealed, o.sources, o.clean_ends, o.unclean_ends
        );
        assert!(o.served > 100, "the load ran");
        assert_eq!(
            o.clean_ends + o.unclean_ends,
            o.sources,
            "every source that sent events ended in the log"
        );
        assert!(o.sealed <= o.served + 64, "no request sealed twice");
        if drain_first {
            // The listeners closed before SIGTERM, and what the filter held went out meanwhile.
            assert!(
                o.sealed >= o.served,
                "stopped as Istio stops a gateway, yet {} served requests were not sealed",
                o.served - o.sealed
            );
        } else if o.sealed < o.served {
            assert!(
                o.unclean_ends > 0,
                "{} served requests were not sealed, and no source end says events may be missing",
                o.served - o.sealed
            );
        }
    }
}

/// The Python with Wasmtime: `AUDIT_WASMTIME_PYTHON` (set by `cargo xtask test`), else the one
/// `cargo xtask test` installs.
fn wasmtime_python() -> std::path::PathBuf {
    harness::locate::wasmtime_python().unwrap_or_else(|e| panic!("{e:#}"))
}

/// The filter on a second proxy-wasm host that offers only the plain ABI (no Envoy property,
/// no foreign function): `tests/fixtures/plain_abi_host.py`, written from the ABI, on Wasmtime.
/// The events keep what the plain ABI gives: the status from `:status`, the counted body
/// sizes; and after the first request the filter stops asking for what the host lacks.
#[test]
fn on_a_host_with_only_the_plain_abi_the_events_keep_what_it_gives() {
    use std::io::Write;
    let request = |method: &str, path: &str, status: &str, body: u64| {
        json!({
            "request_headers": [[":method", method], [":path", path], [":authority", "shop.example"],
                                [":scheme", "https"], ["user-agent", "plain/1"], ["x-user", "alice"]],
            "response_headers": [[":status", status], ["content-type", "text/plain"]],
            "response_body": body,
        })
    };
    let spec = json!({
        "wasm": crate::filter_wasm(),
        "config": json!({"gateway": "plain-gw", "identity": [{"source": "header", "name": "x-user"}]}).to_string(),
        "requests": [
            request("GET", "/a?token=t0k", "200", 7),
            request("POST", "/b", "503", 3),
            request("GET", "/c", "404", 0),
        ],
    });
    let script = harness::workspace_root().join("tests/fixtures/plain_abi_host.py");
    let mut child = std::process::Command::new(wasmtime_python())
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the plain host starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let run: Value = serde_json::from_slice(&out.stdout).expect("the host prints JSON");
    let lines: Vec<Value> = run["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{run}");
    for (line, (status, size, path)) in
        lines
            .iter()
            .zip([(200, 7, "/a"), (503, 3, "/b"), (404, 0, "/c")])
    {
        let ev = &line["event"];
        assert_eq!(ev["http"]["response"]["status_code"], status, "{line}");
        assert_eq!(ev["http"]["response"]["body"]["size"], size, "{line}");
        assert_eq!(ev["url"]["path"], path);
        assert_eq!(ev["enduser"], json!({"id": "alice", "source": "header"}));
        assert_eq!(ev["server"]["address"], "shop.example");
        assert_eq!(
            ev["unavailable"],
            json!(["client.address", "network.protocol.version"]),
            "what the host cannot give is declared"
        );
        // Every line is an event the sealer takes, by its fast path.
        assert!(
            auditlog::event::canonical::check(
                line.to_string().as_bytes(),
                &auditlog::event::Limits::default()
            )
            .is_some()
                || auditlog::event::IngestLine::parse(
                    line.to_string().as_bytes(),
                    &auditlog::event::Limits::default()
                )
                .is_ok()
        );
    }
    assert_eq!(lines[0]["event"]["url"]["query"], "token=REDACTED");
    // After the first request showed the host lacks `response.code`, the filter asks only for
    // the standard attributes it may still have: no `response.code_details` on every request.
    let asked: Vec<&str> = run["properties_asked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let later: Vec<&str> = asked
        .iter()
        .skip_while(|p| **p != "xds.route_name")
        .skip(1)
        .copied()
        .collect();
    assert_eq!(
        later,
        [
            "source.address",
            "request.protocol",
            "source.address",
            "request.protocol"
        ],
        "{asked:?}"
    );
    assert!(!asked.contains(&"response.code_details"), "{asked:?}");
    // The batch names its source and how far it has numbered.
    let call = &run["calls"][0]["headers"];
    assert_eq!(call["audit-source-seq"], "3");
    assert!(
        call["audit-source"]
            .as_str()
            .unwrap()
            .starts_with("plain-gw/")
    );
}
