//! docs/kubernetes.md, followed step by step against a real kube-apiserver 1.20.2: the shell
//! blocks of steps 3 (keys), 4 (the webhook's certificate and token), 5 (namespaces and
//! Secrets) and 6 (the manifests) run as the guide shows them, with bash, `sealer` on the
//! PATH and kubectl pointed at the test's API server (`KUBECONFIG`). The API server then
//! holds every object of the manifests, validated by it. What needs a kubelet, a scheduler
//! or Istio does not run here: the lines that wait for pods (`rollout status`) and create a
//! kind cluster are left out, and `gateway.yaml` is applied with `--validate=false`, because
//! its native sidecar (`restartPolicy: Always` on an init container) needs Kubernetes 1.29
//! and this API server is 1.20, which drops that field.

use std::path::Path;

use harness::kube::{Audit, ControlPlane, User};
use serde_json::Value;

use crate::k8s_apiserver::{shipped_policy, webhook_kubeconfig};

/// The first ```sh block after `heading` in docs/kubernetes.md (after `after`, if given,
/// within that section).
fn block(doc: &str, heading: &str, after: Option<&str>) -> String {
    let mut rest = &doc[doc
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"))..];
    if let Some(marker) = after {
        rest = &rest[rest.find(marker).unwrap_or_else(|| panic!("no {marker:?}"))..];
    }
    let start = rest.find("```sh\n").expect("a shell block") + 6;
    let end = rest[start..].find("```").unwrap();
    rest[start..start + end].to_owned()
}

/// Run `script` with bash in `dir`; what it printed.
fn bash(dir: &Path, kubeconfig: &Path, script: &str) -> String {
    let sealer_dir = harness::sealer::sealer_bin().parent().unwrap().to_owned();
    let kubectl_dir = harness::kube::kubectl_bin()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}:{}",
        sealer_dir.display(),
        kubectl_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the guide's commands failed:\n{script}\n---\n{text}"
    );
    text
}

#[test]
fn the_guide_runs_against_a_real_api_server() {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let repo = harness::workspace_root();
    std::os::unix::fs::symlink(repo.join("envoy-config"), work.join("envoy-config")).unwrap();
    // The API server's webhook points nowhere the test needs: the audit policy is loaded,
    // and nothing in these steps is audited but the Istio resources of step 6.
    let hook = crate::k8s_webhook::Webhook::start(&[]);
    let kubeconfig = webhook_kubeconfig(
        hook.port,
        &hook.file("ca.pem"),
        &hook.file("webhook.token"),
        root.path(),
    );
    let plane = ControlPlane::start(
        &root.path().join("control-plane"),
        &Audit {
            policy: shipped_policy(),
            webhook_kubeconfig: kubeconfig,
            flags: crate::k8s_failover::shipped_webhook_flags(),
        },
    )
    .unwrap_or_else(|e| panic!("the control plane did not start: {e:#}"));
    let admin = root.path().join("control-plane/admin.kubeconfig");
    // Istio's CRDs, which `istioctl install` would bring.
    plane
        .kubectl(
            User::Admin,
            &[
                "apply",
                "-f",
                repo.join("tests/fixtures/k8s/istio-crds.yaml")
                    .to_str()
                    .unwrap(),
            ],
        )
        .expect_code(0);
    plane
        .kubectl(
            User::Admin,
            &[
                "wait",
                "--for=condition=Established",
                "crd/wasmplugins.extensions.istio.io",
                "crd/envoyfilters.networking.istio.io",
            ],
        )
        .expect_code(0);

    let doc = std::fs::read_to_string(repo.join("docs/kubernetes.md")).unwrap();
    let keep = |script: String| -> String {
        script
            .lines()
            .filter(|l| !l.contains("rollout status") && !l.starts_with("kind create"))
            .map(|l| {
                if l.contains("apply -f envoy-config/istio/gateway.yaml") {
                    l.replace("apply -f", "apply --validate=false -f")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    bash(&work, &admin, &block(&doc, "## 3. Keys", None));
    bash(
        &work,
        &admin,
        &block(&doc, "## 4. The webhook's certificate", None),
    );
    bash(
        &work,
        &admin,
        &keep(block(
            &doc,
            "## 5. The cluster",
            Some("Then, on any cluster:"),
        )),
    );
    bash(
        &work,
        &admin,
        &keep(block(&doc, "## 6. Apply the manifests", None)),
    );

    // What the API server now holds, as the manifests say.
    let get = |args: &[&str]| -> Value {
        let mut a = vec!["get"];
        a.extend(args);
        a.extend(["-o", "json"]);
        serde_json::from_str(&plane.kubectl(User::Admin, &a).expect_code(0).stdout()).unwrap()
    };
    let sealers = get(&["-n", "ingress-audit", "statefulset", "ingress-audit-sealer"]);
    assert_eq!(sealers["spec"]["replicas"], 2);
    let container = &sealers["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"],
        "/readyz/ingest"
    );
    let service = get(&["-n", "ingress-audit", "service", "ingress-audit-sealer"]);
    assert_eq!(service["spec"]["clusterIP"], "10.96.120.10");
    let keys = get(&[
        "-n",
        "ingress-audit",
        "secret",
        "ingress-audit-control-plane-keys",
    ]);
    for n in 0..2 {
        for key in ["signing.key", "hmac.key"] {
            let name = format!("ingress-audit-sealer-{n}.{key}");
            assert!(keys["data"][&name].is_string(), "{name} in the Secret");
        }
    }
    let gateway = get(&["-n", "istio-ingress", "statefulset", "ingress-gateway"]);
    assert_eq!(gateway["spec"]["replicas"], 2);
    get(&["-n", "istio-ingress", "wasmplugin", "ingress-audit"]);
    get(&[
        "-n",
        "istio-ingress",
        "envoyfilter",
        "ingress-audit-sealer-cluster",
    ]);
    // The keys of step 3 and the certificate of step 4 work with the sealer.
    for n in 0..2 {
        assert!(work.join(format!("pub/cp-{n}.pub")).is_file());
        assert!(work.join(format!("pub/ig-{n}.pub")).is_file());
    }
    let san = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(work.join("audit/tls.crt"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&san.stdout).contains("10.96.120.10"));
}
