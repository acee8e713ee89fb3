//! The Kubernetes audit webhook, end to end: the real sealer serving TLS with a test CA,
//! an independent TLS client (Python's `ssl`) in the API server's place, and a realistic
//! `EventList` (`fixtures/k8s-audit/ingress-lifecycle.json`: an Ingress created, patched
//! through impersonation, its status updated by the controller, deleted; a forbidden attempt
//! to delete the audit's WasmPlugin; a Panic on an HTTPRoute; an EnvoyFilter patched; and
//! events about a Deployment, a ConfigMap and a Secret, which are not sealed by default).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::Sealer;
use harness::pki::{HttpsOutcome, HttpsRequest, Pki, https};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/k8s-audit/ingress-lifecycle.json"
);
/// A Secret's key material in the fixture (base64); it must never reach the store.
const SECRET_DATA: &str = "c3VwZXJzZWNyZXQta2V5LW1hdGVyaWFs";
/// (auditID, stage) of the fixture's events that the default selection seals.
const SEALED_BY_DEFAULT: [(&str, &str); 7] = [
    ("3b0e6c61-1f1a-4c8e-9d55-0a1b2c3d4e01", "ResponseComplete"),
    ("7d2f4a10-8b3c-4e5d-a6f7-0b1c2d3e4f02", "ResponseComplete"),
    ("9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c03", "ResponseComplete"),
    ("c4b3a291-0f1e-4d2c-9b8a-7f6e5d4c3b04", "ResponseComplete"),
    ("e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a05", "ResponseComplete"),
    ("f0e1d2c3-b4a5-4968-8776-655443322106", "Panic"),
    ("0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c07", "ResponseComplete"),
];

fn fixture() -> Value {
    serde_json::from_slice(&std::fs::read(FIXTURE).expect("fixture")).expect("fixture is JSON")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A sealer with the audit webhook on, and the certificates around it: `ca` signs the
/// server certificate, `clients` signs the API server's client certificate, `rogue` signs a
/// certificate nobody trusts.
pub(crate) struct Webhook {
    pub(crate) sealer: Sealer,
    pub(crate) port: u16,
    /// `--health-listen`: the probes, and nothing else.
    pub(crate) health_port: u16,
    pki_dir: TempDir,
    pub(crate) token: String,
}

impl Webhook {
    pub(crate) fn start(extra: &[&str]) -> Webhook {
        Webhook::start_on(extra, None)
    }

    /// [`Webhook::start`] with the sealer's data directory (its WAL) at `data`, and no
    /// ingest or read token.
    pub(crate) fn start_on(extra: &[&str], data: Option<&Path>) -> Webhook {
        let pki_dir = tempfile::tempdir().expect("temporary directory");
        Pki::new(pki_dir.path())
            .ca("ca", "/CN=sealer webhook test CA")
            .issue(
                "ca",
                "server",
                "/CN=127.0.0.1",
                "subjectAltName=IP:127.0.0.1",
            )
            .ca("clients", "/CN=kube-apiserver client CA")
            .issue(
                "clients",
                "apiserver",
                "/O=system:masters/CN=kube-apiserver-audit",
                "extendedKeyUsage=clientAuth",
            )
            .ca("rogue", "/CN=rogue CA")
            .issue(
                "rogue",
                "intruder",
                "/CN=kube-apiserver-audit",
                "extendedKeyUsage=clientAuth",
            );
        let token = format!("webhook-{}", "w".repeat(40));
        let token_file = pki_dir.path().join("webhook.token");
        std::fs::write(&token_file, format!("{token}\n")).expect("token file");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod 600");
        let port = free_port();
        let health_port = free_port();
        let p = |name: &str| pki_dir.path().join(name).to_str().unwrap().to_owned();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "--segment-max-age".to_owned(),
            "100ms".into(),
            "--checkpoint-interval".into(),
            "200ms".into(),
            "--health-listen".into(),
            format!("127.0.0.1:{health_port}"),
            "--webhook-listen".into(),
            listen,
            "--tls-cert".into(),
            p("server.pem"),
            "--tls-key".into(),
            p("server.key"),
            "--webhook-token-file".into(),
            p("webhook.token"),
            "--webhook-client-ca".into(),
            p("clients.pem"),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let sealer = match data {
            None => Sealer::start_with_tokens("e2e.test/k8s-audit", &args),
            Some(data) => {
                Sealer::start_in("e2e.test/k8s-audit", None, Some(data), Vec::new(), &args)
            }
        };
        Webhook {
            sealer,
            port,
            health_port,
            pki_dir,
            token,
        }
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.pki_dir.path().join(name)
    }

    /// POST `body` to `/v1/k8s/audit`, trusting `ca`, with `auth` (a bearer token and/or a
    /// client certificate by name).
    fn post_as(
        &self,
        ca: &str,
        token: Option<&str>,
        cert: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> HttpsOutcome {
        let ca = self.file(&format!("{ca}.pem"));
        let client = cert.map(|c| {
            (
                self.file(&format!("{c}.pem")),
                self.file(&format!("{c}.key")),
            )
        });
        let mut headers = vec![("Content-Type", content_type.to_owned())];
        if let Some(t) = token {
            headers.push(("Authorization", format!("Bearer {t}")));
        }
        https(&HttpsRequest {
            port: self.port,
            method: "POST",
            path: "/v1/k8s/audit",
            ca: &ca,
            client: client.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
            headers,
            body,
        })
    }

    /// POST a list with the webhook token: the accepted answer.
    fn post(&self, list: &Value) -> Value {
        let body = serde_json::to_vec(list).unwrap();
        let out = self.post_as("ca", Some(&self.token), None, "application/json", &body);
        if out.status() != 200 {
            self.sealer
                .fail(&format!("the webhook refused a valid list: {out:?}"));
        }
        out.json()
    }

    /// The sealed `k8s_audit` entries by (auditID, stage).
    pub(crate) fn sealed(&self) -> BTreeMap<(String, String), Value> {
        self.sealer.wait_stored();
        let mut out = BTreeMap::new();
        for e in self.sealer.export_entries() {
            if e["kind"] == "k8s_audit" {
                let key = (
                    e["event"]["auditID"].as_str().unwrap().to_owned(),
                    e["event"]["stage"].as_str().unwrap().to_owned(),
                );
                assert!(out.insert(key.clone(), e).is_none(), "{key:?} sealed twice");
            }
        }
        out
    }
}

fn key(id: &str, stage: &str) -> (String, String) {
    (id.to_owned(), stage.to_owned())
}

/// Every file under `dir`, concatenated.
pub(crate) fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

/// Once everything is stored, no stored byte holds any of `secrets` (each with its name).
pub(crate) fn assert_never_stored(hook: &Webhook, secrets: &[(&str, &str)]) {
    hook.sealer.wait_stored();
    let store = all_bytes(&hook.sealer.store());
    for (what, secret) in secrets {
        assert!(!contains(&store, secret), "{what} is in the store");
    }
}

pub(crate) fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn ingress_changes_are_sealed_once_with_who_what_where_and_when() {
    let mut hook = Webhook::start(&[]);
    let list = fixture();
    let answer = hook.post(&list);
    assert_eq!(
        answer,
        json!({"received": 11, "sealed": 7, "duplicates": 0, "ignored": 4,
               "first_seq": answer["first_seq"], "last_seq": answer["last_seq"]}),
    );
    assert_eq!(
        answer["last_seq"].as_u64().unwrap() - answer["first_seq"].as_u64().unwrap(),
        6
    );

    let sealed = hook.sealed();
    let expected: Vec<(String, String)> = SEALED_BY_DEFAULT
        .iter()
        .map(|(id, stage)| key(id, stage))
        .collect();
    assert_eq!(sealed.keys().cloned().collect::<Vec<_>>(), {
        let mut e = expected.clone();
        e.sort();
        e
    });

    // Who, from where, what, the outcome, and when: the creation of the Ingress.
    let created = &sealed[&key(SEALED_BY_DEFAULT[0].0, "ResponseComplete")]["event"];
    assert_eq!(created["verb"], "create");
    assert_eq!(created["user"]["username"], "alice@example.com");
    assert_eq!(
        created["user"]["groups"],
        json!(["platform", "system:authenticated"])
    );
    assert_eq!(created["sourceIPs"], json!(["203.0.113.41"]));
    assert_eq!(
        created["userAgent"],
        "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46"
    );
    assert_eq!(
        created["objectRef"],
        json!({"apiGroup": "networking.k8s.io", "apiVersion": "v1", "resource": "ingresses",
               "namespace": "shop", "name": "web"})
    );
    assert_eq!(created["responseStatus"]["code"], 201);
    assert_eq!(
        created["requestObject"]["spec"]["rules"][0]["http"]["paths"][0]["path"],
        "/admin"
    );
    assert_eq!(
        created["responseObject"]["metadata"]["uid"],
        "5e0c3f6a-7b8d-4e1f-9a2b-3c4d5e6f7a8b"
    );
    assert_eq!(
        created["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    assert_eq!(
        created["requestReceivedTimestamp"],
        "2026-11-28T09:14:03.112233Z"
    );
    assert_eq!(created["stageTimestamp"], "2026-11-28T09:14:03.131337Z");

    // The patch went through impersonation; the status update names its subresource.
    let patched = &sealed[&key(SEALED_BY_DEFAULT[1].0, "ResponseComplete")]["event"];
    assert_eq!(patched["verb"], "patch");
    assert_eq!(
        patched["impersonatedUser"]["username"],
        "system:serviceaccount:shop:deployer"
    );
    assert_eq!(patched["objectRef"]["resourceVersion"], "918273");
    let status = &sealed[&key(SEALED_BY_DEFAULT[2].0, "ResponseComplete")]["event"];
    assert_eq!(status["objectRef"]["subresource"], "status");
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:ingress-nginx:ingress-nginx"
    );

    // A refused attempt on the audit's own configuration is on the record too.
    let forbidden = &sealed[&key(SEALED_BY_DEFAULT[3].0, "ResponseComplete")]["event"];
    assert_eq!(forbidden["user"]["username"], "mallory@example.com");
    assert_eq!(forbidden["objectRef"]["resource"], "wasmplugins");
    assert_eq!(forbidden["responseStatus"]["code"], 403);
    assert_eq!(
        forbidden["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert_eq!(forbidden["sourceIPs"], json!(["192.0.2.66"]));
    let deleted = &sealed[&key(SEALED_BY_DEFAULT[4].0, "ResponseComplete")]["event"];
    assert_eq!(
        (
            deleted["verb"].as_str(),
            deleted["user"]["username"].as_str()
        ),
        (Some("delete"), Some("bob@example.com"))
    );
    assert_never_stored(
        &hook,
        &[
            ("a Secret's data", SECRET_DATA),
            ("an unselected ConfigMap", "web-config"),
        ],
    );

    // The API server redelivers: nothing is sealed twice, also across a restart.
    let again = hook.post(&list);
    assert_eq!(
        (&again["sealed"], &again["duplicates"], &again["ignored"]),
        (&json!(0), &json!(7), &json!(4))
    );
    hook.sealer.stop();
    hook.sealer.restart();
    let after_restart = hook.post(&list);
    assert_eq!(
        (&after_restart["sealed"], &after_restart["duplicates"]),
        (&json!(0), &json!(7)),
        "recovery must remember what was sealed"
    );
    // One new event beside a redelivered one: only the new one is sealed.
    let mut mixed = list.clone();
    let mut fresh = list["items"][1].clone();
    fresh["auditID"] = json!("5b6c7d8e-9f00-4a1b-8c2d-3e4f5a6b7c08");
    fresh["verb"] = json!("update");
    mixed["items"] = json!([list["items"][2].clone(), fresh]);
    let answer = hook.post(&mixed);
    assert_eq!(
        (&answer["sealed"], &answer["duplicates"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(hook.sealed().len(), 8);
    hook.sealer.verify(&[]).expect_code(0);
}

#[test]
fn the_webhook_refuses_what_it_cannot_authenticate_or_read() {
    let hook = Webhook::start(&[]);
    let body = serde_json::to_vec(&fixture()).unwrap();
    let json_type = "application/json";

    // Unauthenticated, a wrong token, another role's token: refused, nothing sealed.
    let (ingest, read) = hook.sealer.tokens.clone().expect("tokens");
    for (token, status, error) in [
        (None, 401, "unauthorized"),
        (Some("x".repeat(48)), 401, "unauthorized"),
        (Some(ingest), 403, "forbidden"),
        (Some(read), 403, "forbidden"),
    ] {
        let out = hook.post_as("ca", token.as_deref(), None, json_type, &body);
        assert_eq!(out.status(), status, "{out:?}");
        assert_eq!(out.json()["error"], error);
    }
    // A certificate from a CA the sealer does not trust ends the handshake.
    match hook.post_as("ca", None, Some("intruder"), json_type, &body) {
        HttpsOutcome::Refused(_) => {}
        other => panic!("an untrusted client certificate was let in: {other:?}"),
    }
    // A client that checks the server against another CA does not talk to it either.
    match hook.post_as("rogue", Some(&hook.token), None, json_type, &body) {
        HttpsOutcome::Refused(e) => assert!(e.contains("CERTIFICATE_VERIFY_FAILED"), "{e}"),
        other => panic!("the client accepted a server certificate from an untrusted CA: {other:?}"),
    }
    // Plain HTTP is not served.
    let plain = ureq::post(&format!("http://127.0.0.1:{}/v1/k8s/audit", hook.port))
        .timeout(Duration::from_secs(10))
        .set("Authorization", &format!("Bearer {}", hook.token))
        .send_bytes(&body);
    assert!(
        !matches!(plain, Ok(ref r) if r.status() == 200),
        "plain HTTP was accepted"
    );
    // Nor is the webhook on the loopback ingest listener.
    let (status, _) = hook.sealer.get("/v1/k8s/audit");
    assert!(status == 404 || status == 405, "{status}");
    assert_eq!(
        hook.sealer.metric("sealer_webhook_unauthenticated_total"),
        4
    );
    // The probe listener answers the probes, and nothing that reads or writes the log.
    let probe = |path: &str| match ureq::get(&format!(
        "http://127.0.0.1:{}{path}",
        hook.health_port
    ))
    .call()
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("GET {path} on the probe listener: {e}"),
    };
    assert_eq!((probe("/healthz"), probe("/readyz")), (200, 200));
    for path in [
        "/verify",
        "/metrics",
        "/v1/events",
        "/v1/k8s/audit",
        "/v1/checkpoint",
    ] {
        assert_eq!(probe(path), 404, "{path} on the probe listener");
    }

    // Bad input is named.
    let out = hook.post_as("ca", Some(&hook.token), None, json_type, b"{\"kind\":");
    assert_eq!(out.status(), 400);
    assert_eq!(out.json()["error"], "invalid_event_list");
    let one_event = serde_json::to_vec(&fixture()["items"][1]).unwrap();
    let out = hook.post_as("ca", Some(&hook.token), None, json_type, &one_event);
    assert_eq!(out.status(), 400);
    let message = out.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("audit.k8s.io/v1 Event"),
        "the refusal says what arrived: {message}"
    );
    let out = hook.post_as("ca", Some(&hook.token), None, "text/plain", &body);
    assert_eq!(out.status(), 415);
    assert!(hook.sealed().is_empty());

    // The API server's client certificate is enough, without a token.
    let out = hook.post_as("ca", None, Some("apiserver"), json_type, &body);
    assert_eq!(out.status(), 200, "{out:?}");
    assert_eq!(out.json()["sealed"], 7);
    assert_eq!(hook.sealed().len(), 7);
}

#[test]
fn secrets_and_large_objects_never_reach_the_log_in_clear() {
    let hook = Webhook::start(&[
        "--k8s-resources",
        "secrets,ingresses.networking.k8s.io",
        "--k8s-max-object-bytes",
        "400",
    ]);
    let list = fixture();
    let answer = hook.post(&list);
    // 4 Ingress events (create, patch, status, delete) and the Secret.
    assert_eq!(
        (&answer["sealed"], &answer["ignored"]),
        (&json!(5), &json!(6))
    );
    let sealed = hook.sealed();
    let secret = &sealed[&key("11111111-2222-4333-8444-555555555510", "ResponseComplete")];
    assert_eq!(
        secret["event"]["requestObject"],
        json!({"withheld": "secret"})
    );
    assert_eq!(
        secret["event"]["responseObject"],
        json!({"withheld": "secret"})
    );
    assert_eq!(secret["event"]["objectRef"]["name"], "shop-tls");
    assert_never_stored(
        &hook,
        &[
            ("a Secret's data", SECRET_DATA),
            ("a Secret's certificate", "LS0tLS1CRUdJTi1jZXJ0"),
        ],
    );

    // The created Ingress as the API server answered is over 400 bytes: its SHA-256 (of the
    // RFC 8785 form) and size. The request, under 400 bytes, is kept as sent.
    let created = &sealed[&key(SEALED_BY_DEFAULT[0].0, "ResponseComplete")]["event"];
    let original = &list["items"][1]["responseObject"];
    let canonical = auditlog::jcs::canonicalize(original).unwrap();
    assert!(canonical.len() > 400);
    assert_eq!(created["requestObject"], list["items"][1]["requestObject"]);
    let expected = Sha256::digest(&canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    assert_eq!(
        created["responseObject"],
        json!({"sha256": expected, "size": canonical.len()})
    );
    hook.sealer.verify(&[]).expect_code(0);
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    let hook = Webhook::start(&[]);
    let body = serde_json::to_vec(&json!({
        "kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": []
    }))
    .unwrap();
    let post = |ca: &str| hook.post_as(ca, Some(&hook.token), None, "application/json", &body);
    assert_eq!(post("ca").status(), 200);

    // A new CA and certificate, written beside the served files and renamed over them, as
    // a renewal does.
    let pki = Pki::new(hook.pki_dir.path());
    pki.ca("ca2", "/CN=renewed CA").issue(
        "ca2",
        "renewed",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1",
    );
    std::fs::rename(hook.file("renewed.key"), hook.file("server.key")).unwrap();
    std::fs::rename(hook.file("renewed.pem"), hook.file("server.pem")).unwrap();

    hook.sealer
        .wait_until("the renewed certificate to be served", || {
            matches!(post("ca2"), HttpsOutcome::Response { status: 200, .. })
        });
    assert!(
        matches!(post("ca"), HttpsOutcome::Refused(_)),
        "the old certificate is still served"
    );
    let log = std::fs::read_to_string(hook.sealer.log_path()).unwrap();
    assert!(log.contains("webhook TLS certificate reloaded"), "{log}");
}

/// An ext4 filesystem in a file, loop-mounted on a temporary directory, that the test can
/// freeze (`fsfreeze`): writes and `fdatasync` then block, as on a stalled disk. Thawed and
/// unmounted on drop, pass or fail (needs root, as CI has; a test that cannot mount fails).
struct FreezableDisk {
    dir: PathBuf,
    _parent: TempDir,
}

impl FreezableDisk {
    fn new() -> FreezableDisk {
        let parent = tempfile::tempdir().unwrap();
        let image = parent.path().join("disk.img");
        let dir = parent.path().join("fs");
        std::fs::create_dir(&dir).unwrap();
        let run = |program: &str, args: &[&str]| {
            let out = std::process::Command::new(program)
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{program} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run("truncate", &["-s", "64M", image.to_str().unwrap()]);
        run("mkfs.ext4", &["-q", image.to_str().unwrap()]);
        run(
            "mount",
            &["-o", "loop", image.to_str().unwrap(), dir.to_str().unwrap()],
        );
        FreezableDisk {
            dir,
            _parent: parent,
        }
    }

    /// Freeze it until the guard is dropped.
    fn freeze(&self) -> Frozen<'_> {
        fsfreeze("--freeze", &self.dir);
        Frozen(self)
    }
}

/// A frozen [`FreezableDisk`], thawed on drop (declare it after what writes to the disk, so
/// that a failing test thaws the disk before stopping the writer).
struct Frozen<'a>(&'a FreezableDisk);

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        fsfreeze("--unfreeze", &self.0.dir);
    }
}

fn fsfreeze(flag: &str, dir: &Path) {
    let status = std::process::Command::new("fsfreeze")
        .arg(flag)
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "fsfreeze {flag} {}", dir.display());
}

impl Drop for FreezableDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

/// The sealer's readiness to ingest, from its probe listener.
fn ready_to_ingest(hook: &Webhook) -> (u16, Value) {
    let url = format!("http://127.0.0.1:{}/readyz/ingest", hook.health_port);
    let response = match ureq::get(&url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    (response.status(), response.into_json().unwrap())
}

/// A stalled disk under the WAL: the webhook answers within `--webhook-deadline` with 503,
/// `Retry-After: 1` and `Connection: close` (the API server's retry opens a new connection,
/// which the Service may send to another replica); `GET /readyz/ingest` turns 503 once the
/// commit has waited 2 s, taking the replica out of the Service. Thawed, the disk completes
/// the write: the events are sealed, a redelivery is a duplicate, readiness returns.
#[test]
fn a_stalled_disk_fails_calls_fast_and_takes_the_replica_out() {
    let disk = FreezableDisk::new();
    let hook = Webhook::start_on(&["--webhook-deadline", "500ms"], Some(&disk.dir));
    assert_eq!(ready_to_ingest(&hook).0, 200);
    let body = serde_json::to_vec(&fixture()).unwrap();
    let frozen = disk.freeze();
    let started = std::time::Instant::now();
    let out = hook.post_as("ca", Some(&hook.token), None, "application/json", &body);
    let took = started.elapsed();
    let HttpsOutcome::Response {
        status,
        body: answer,
        headers,
    } = out
    else {
        panic!("no response: {out:?}")
    };
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("--webhook-deadline"), "{answer}");
    assert_eq!(headers.get("retry-after").map(String::as_str), Some("1"));
    assert_eq!(headers.get("connection").map(String::as_str), Some("close"));
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    hook.sealer.wait_until("readiness to report the stall", || {
        let (status, body) = ready_to_ingest(&hook);
        status == 503 && body["wal_stalled"] == true
    });
    drop(frozen);
    hook.sealer
        .wait_until("readiness to return", || ready_to_ingest(&hook).0 == 200);
    // The API server's retry: the events were sealed when the disk came back.
    let again = hook.post(&fixture());
    assert_eq!(again["sealed"], 0, "{again}");
    assert_eq!(again["duplicates"], 7, "{again}");
    assert_eq!(hook.sealed().len(), 7);
}
