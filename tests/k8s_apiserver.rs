//! The audit webhook against a real kube-apiserver (1.20.2, built from Debian's source
//! package; etcd 3.4 and kubectl from Debian): the API server runs the shipped
//! `audit-policy.yaml` and `audit-webhook-kubeconfig.yaml` (only the sealer's address and the
//! CA and token paths substituted) against the real sealer's TLS webhook. Through kubectl:
//! an Ingress's lifecycle, an IngressClass, the audit's own WasmPlugin and EnvoyFilter (the
//! shipped ones, applied to CRDs installed first), a Secret, an impersonated change and a
//! forbidden one. Exactly the expected entries are sealed, with the fields
//! docs/kubernetes.md shows, Secrets never reach the store, and the log verifies.

use std::path::{Path, PathBuf};

use harness::kube::{Audit, ControlPlane, User};
use serde_json::{Value, json};

use crate::k8s_webhook::{Webhook, all_bytes, contains};

/// The shipped webhook kubeconfig with the sealer's address and the test's CA and token
/// files: only those three values change, and each must have been found.
pub(crate) fn webhook_kubeconfig(port: u16, ca: &Path, token_file: &Path, dir: &Path) -> PathBuf {
    let shipped = std::fs::read_to_string(
        harness::workspace_root().join("envoy-config/kubernetes/audit-webhook-kubeconfig.yaml"),
    )
    .unwrap();
    let mut text = shipped.clone();
    for (from, to) in [
        (
            "https://10.96.120.10:8443/v1/k8s/audit".to_owned(),
            format!("https://127.0.0.1:{port}/v1/k8s/audit"),
        ),
        (
            "/etc/kubernetes/audit/sealer-ca.crt".to_owned(),
            ca.display().to_string(),
        ),
        (
            "tokenFile: /etc/kubernetes/audit/webhook.token".to_owned(),
            format!("tokenFile: {}", token_file.display()),
        ),
    ] {
        assert!(
            text.contains(&from),
            "the shipped kubeconfig has no {from:?}"
        );
        text = text.replace(&from, &to);
    }
    let path = dir.join("audit-webhook-kubeconfig.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The shipped audit policy, as it is.
pub(crate) fn shipped_policy() -> PathBuf {
    harness::workspace_root().join("envoy-config/kubernetes/audit-policy.yaml")
}

/// The kubectl commands of docs/kubernetes.md's step 8 (b), as argument lists: the test
/// runs what the guide shows.
fn documented_commands() -> Vec<Vec<String>> {
    let doc =
        std::fs::read_to_string(harness::workspace_root().join("docs/kubernetes.md")).unwrap();
    let step = &doc[doc
        .find("**(b) A change to an Ingress.**")
        .expect("step 8 (b)")..];
    let code = &step[step.find("```sh\n").expect("its commands") + 6..];
    let code = &code[..code.find("```").unwrap()];
    let commands: Vec<Vec<String>> = code
        .lines()
        .filter(|l| l.starts_with("kubectl "))
        .map(|l| shell_words(l).split_off(1))
        .collect();
    assert!(
        commands.len() >= 2,
        "step 8 (b) shows its kubectl commands: {code}"
    );
    commands
}

/// `line` split into words as a shell would for these simple commands: at spaces outside
/// double quotes, quotes removed.
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The sealed `k8s_audit` events, in log order. In blocking mode each was sealed before
/// kubectl got its answer: once the store has everything sealed, it has them all.
fn sealed_events(hook: &Webhook) -> Vec<Value> {
    hook.sealer.wait_stored();
    hook.sealer
        .export_entries()
        .into_iter()
        .filter(|e| e["kind"] == "k8s_audit")
        .map(|e| e["event"].clone())
        .collect()
}

/// What identifies an event in the assertions: verb, resource, subresource, name, user,
/// impersonated user and status code.
fn summary(e: &Value) -> Value {
    json!([
        e["verb"],
        e["objectRef"]["resource"],
        e["objectRef"]["subresource"],
        e["objectRef"]["name"],
        e["user"]["username"],
        e["impersonatedUser"]["username"],
        e["responseStatus"]["code"],
    ])
}

#[test]
fn a_real_api_server_seals_ingress_changes_and_the_audits_own_configuration() {
    let hook = Webhook::start(&[]);
    let dir = hook.sealer.root().join("control-plane");
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = webhook_kubeconfig(
        hook.port,
        &hook.file("ca.pem"),
        &hook.file("webhook.token"),
        &dir,
    );
    let plane = ControlPlane::start(
        &dir,
        &Audit {
            policy: shipped_policy(),
            webhook_kubeconfig: kubeconfig,
            flags: crate::k8s_failover::shipped_webhook_flags(),
        },
    )
    .unwrap_or_else(|e| panic!("the control plane did not start: {e:#}"));
    let admin = |args: &[&str]| plane.kubectl(User::Admin, args).expect_code(0).stdout();

    // Step 8 (b) of docs/kubernetes.md, as it shows it: the namespace, then the Ingress.
    for command in documented_commands() {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        admin(&args);
    }
    // Setup that the policy does not audit: namespaces, CRDs, RBAC.
    admin(&["create", "namespace", "istio-ingress"]);
    admin(&[
        "apply",
        "-f",
        harness::workspace_root()
            .join("tests/fixtures/k8s/istio-crds.yaml")
            .to_str()
            .unwrap(),
    ]);
    admin(&[
        "wait",
        "--for=condition=Established",
        "crd/wasmplugins.extensions.istio.io",
        "crd/envoyfilters.networking.istio.io",
    ]);
    admin(&[
        "-n",
        "shop",
        "create",
        "role",
        "ingress-editor",
        "--verb=get,patch,update",
        "--resource=ingresses.networking.k8s.io",
    ]);
    admin(&[
        "-n",
        "shop",
        "create",
        "rolebinding",
        "jane-edits-ingresses",
        "--role=ingress-editor",
        "--user=jane@example.com",
    ]);

    // The audited changes that follow.
    admin(&[
        "-n",
        "shop",
        "patch",
        "ingress",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"annotations":{"owner":"team-a"}}}"#,
    ]);
    // The controller's status update, on the status subresource.
    let status = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "shop"},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}});
    let current: Value = serde_json::from_str(&admin(&[
        "-n", "shop", "get", "ingress", "web", "-o", "json",
    ]))
    .unwrap();
    let mut with_status = current.clone();
    with_status["status"] = status["status"].clone();
    let status_file = dir.join("status.json");
    std::fs::write(&status_file, with_status.to_string()).unwrap();
    admin(&[
        "replace",
        "--raw",
        "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web/status",
        "-f",
        status_file.to_str().unwrap(),
    ]);
    // An impersonated change: admin acting as jane, whom RBAC lets edit Ingresses in shop.
    admin(&[
        "--as=jane@example.com",
        "-n",
        "shop",
        "annotate",
        "ingress",
        "web",
        "reviewed-by=jane",
    ]);
    // A forbidden change: the developer has no rights.
    let refused = plane.kubectl(User::Developer, &["-n", "shop", "delete", "ingress", "web"]);
    assert_ne!(refused.code(), 0, "the developer's delete is refused");
    assert!(
        refused.stderr().contains("forbidden"),
        "{}",
        refused.stderr()
    );
    plane
        .kubectl_manifest(
            User::Admin,
            "create",
            "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: istio\n\
             spec:\n  controller: istio.io/ingress-controller\n",
        )
        .expect_code(0);
    // The audit's own configuration, as shipped: applied, then the filter removed.
    for file in ["wasmplugin.yaml", "envoyfilter-sealer-cluster.yaml"] {
        admin(&[
            "apply",
            "-f",
            harness::workspace_root()
                .join("envoy-config/istio")
                .join(file)
                .to_str()
                .unwrap(),
        ]);
    }
    admin(&[
        "-n",
        "istio-ingress",
        "delete",
        "wasmplugin",
        "ingress-audit",
    ]);
    // A Secret: not in the policy, so never sent, never sealed.
    admin(&[
        "-n",
        "shop",
        "create",
        "secret",
        "generic",
        "shop-tls",
        "--from-literal=key=supersecret-key-material",
    ]);
    admin(&["-n", "shop", "delete", "ingress", "web"]);

    let expected = vec![
        json!(["create", "ingresses", null, "web", "admin", null, 201]),
        json!(["patch", "ingresses", null, "web", "admin", null, 200]),
        json!(["update", "ingresses", "status", "web", "admin", null, 200]),
        json!([
            "patch",
            "ingresses",
            null,
            "web",
            "admin",
            "jane@example.com",
            200
        ]),
        json!(["delete", "ingresses", null, "web", "developer", null, 403]),
        json!([
            "create",
            "ingressclasses",
            null,
            "istio",
            "admin",
            null,
            201
        ]),
        json!([
            "create",
            "wasmplugins",
            null,
            "ingress-audit",
            "admin",
            null,
            201
        ]),
        json!([
            "create",
            "envoyfilters",
            null,
            "ingress-audit-sealer-cluster",
            "admin",
            null,
            201
        ]),
        json!([
            "delete",
            "wasmplugins",
            null,
            "ingress-audit",
            "admin",
            null,
            200
        ]),
        json!(["delete", "ingresses", null, "web", "admin", null, 200]),
    ];
    let events = sealed_events(&hook);
    let got: Vec<Value> = events.iter().map(summary).collect();
    assert_eq!(got, expected, "exactly these changes are sealed, in order");
    for e in &events {
        assert_eq!(e["stage"], "ResponseComplete", "{e}");
        assert!(
            e["requestObject"].is_object() || e["verb"] == "delete",
            "{e}"
        );
        assert!(
            e["userAgent"]
                .as_str()
                .unwrap()
                .starts_with("kubectl/v1.20.2"),
            "{e}"
        );
    }

    // What kubectl really sends (docs/kubernetes.md shows this entry).
    let created = &events[0];
    assert_eq!(
        created["requestURI"],
        "/apis/networking.k8s.io/v1/namespaces/shop/ingresses?fieldManager=kubectl-create"
    );
    assert_eq!(created["objectRef"]["namespace"], "shop");
    assert_eq!(
        created["requestObject"]["spec"]["ingressClassName"],
        "istio"
    );
    assert_eq!(
        created["requestObject"]["spec"]["rules"][0]["http"]["paths"][0]["path"],
        "/admin"
    );
    assert_eq!(created["responseObject"]["metadata"]["name"], "web");
    assert_eq!(
        created["user"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );
    assert_eq!(created["sourceIPs"], json!(["127.0.0.1"]));
    assert_eq!(
        created["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    assert_eq!(
        events[2]["requestObject"]["status"]["loadBalancer"]["ingress"][0]["ip"],
        "203.0.113.10"
    );
    assert_eq!(
        events[4]["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert_eq!(events[6]["objectRef"]["apiGroup"], "extensions.istio.io");
    assert_eq!(events[6]["objectRef"]["namespace"], "istio-ingress");

    // The Secret never reached the sealer, let alone the store.
    hook.sealer.wait_stored();
    let store = all_bytes(&hook.sealer.store());
    assert!(!contains(&store, "supersecret-key-material"));
    assert!(!contains(&store, "shop-tls"));
    // Nothing was lost on the way: the API server counted no audit error.
    let metrics = plane.metrics();
    let errors: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_audit_error_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(errors, 0.0, "apiserver_audit_error_total");
    hook.sealer.verify(&[]).expect_code(0);
}
