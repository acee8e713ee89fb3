//! The container images, built and run here with Debian's Docker (a private dockerd, no
//! registry): both Dockerfiles build offline `FROM scratch`; the filter image holds exactly
//! the built module; the sealer image runs as a real kube-apiserver's audit webhook receiver,
//! non-root, with a read-only root filesystem and its keys and certificates mounted like
//! Kubernetes Secrets (root-owned, group-readable by the pod's fsGroup), and what it sealed
//! verifies with the public key.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use harness::docker::Docker;
use harness::images;
use harness::kube::{Audit, ControlPlane, User};
use harness::pki::Pki;
use harness::sealer::sealer_cmd;

use crate::k8s_apiserver::{shipped_policy, webhook_kubeconfig};

/// The unprivileged user the sealer image runs as, and the pod's fsGroup.
const UID: u32 = 65532;

/// Files as a Kubernetes Secret volume with `fsGroup: 65532` and `defaultMode: 0440` shows
/// them: owned by root, readable by the group.
fn as_secret(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::os::unix::fs::chown(&path, Some(0), Some(UID)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).unwrap();
    }
    std::os::unix::fs::chown(dir, Some(0), Some(UID)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o550)).unwrap();
}

#[test]
fn both_images_build_offline_and_the_sealer_image_seals_a_real_api_servers_changes() {
    // Short paths: containerd's sockets live under the engine's directory.
    let root = tempfile::Builder::new()
        .prefix("ia-")
        .tempdir_in("/tmp")
        .unwrap();
    let docker = Docker::start(&root.path().join("d"))
        .unwrap_or_else(|e| panic!("the Docker engine did not start: {e:#}"));
    let workspace = harness::workspace_root();

    // The filter's image: exactly the built module at /plugin.wasm, in one layer.
    let wasm = crate::filter_wasm();
    let filter_ctx = images::filter_context(&root.path().join("filter-ctx"), &wasm).unwrap();
    docker
        .build(
            &workspace.join("filter/Dockerfile"),
            "ingress-audit/filter:test",
            &filter_ctx,
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    let layers = docker
        .run(&[
            "image",
            "inspect",
            "-f",
            "{{len .RootFS.Layers}}",
            "ingress-audit/filter:test",
        ])
        .expect_code(0)
        .stdout();
    assert_eq!(layers.trim(), "1");
    let id = docker
        .run(&["create", "ingress-audit/filter:test", "none"])
        .expect_code(0)
        .stdout();
    let out = root.path().join("plugin.wasm");
    docker
        .run(&[
            "cp",
            &format!("{}:/plugin.wasm", id.trim()),
            out.to_str().unwrap(),
        ])
        .expect_code(0);
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(&wasm).unwrap(),
        "the image holds the built module"
    );

    // The sealer's image: the static binary runs in it, as 65532.
    let static_sealer = images::static_sealer_bin(false).unwrap_or_else(|e| panic!("{e:#}"));
    let sealer_ctx =
        images::sealer_context(&root.path().join("sealer-ctx"), &static_sealer).unwrap();
    docker
        .build(
            &workspace.join("sealer-sidecar/Dockerfile"),
            "ingress-audit/sealer:test",
            &sealer_ctx,
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    let user = docker
        .run(&[
            "image",
            "inspect",
            "-f",
            "{{.Config.User}}",
            "ingress-audit/sealer:test",
        ])
        .expect_code(0)
        .stdout();
    assert_eq!(user.trim(), "65532:65532");
    let version = docker
        .run(&[
            "run",
            "--rm",
            "--network",
            "none",
            "ingress-audit/sealer:test",
            "--version",
        ])
        .expect_code(0)
        .stdout();
    assert!(version.starts_with("sealer "), "{version}");

    // Keys, the webhook's certificate and token, mounted read-only like Secrets.
    let keys = root.path().join("keys");
    assert!(
        sealer_cmd(&[
            "keygen",
            "--out",
            keys.to_str().unwrap(),
            "--origin",
            "e2e.test/image"
        ])
        .status()
        .unwrap()
        .success()
    );
    let public_key = root.path().join("signing.pub");
    std::fs::copy(keys.join("signing.pub"), &public_key).unwrap();
    as_secret(&keys);
    let tls = root.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    Pki::new(&tls).ca("ca", "/CN=sealer image test CA").issue(
        "ca",
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1",
    );
    let token = "image-webhook-token-0123456789abcdef0123456789";
    std::fs::write(tls.join("webhook.token"), format!("{token}\n")).unwrap();
    let apiserver_side = root.path().join("apiserver-side");
    std::fs::create_dir_all(&apiserver_side).unwrap();
    for file in ["ca.pem", "webhook.token"] {
        std::fs::copy(tls.join(file), apiserver_side.join(file)).unwrap();
    }
    for file in ["ca.key", "ca.srl", "server.csr", "server.ext"] {
        let _ = std::fs::remove_file(tls.join(file));
    }
    as_secret(&tls);
    // The data volume, writable by the pod's user.
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(UID), Some(UID)).unwrap();

    let (port, webhook_port) = (harness::free_port(), harness::free_port());
    let mount = |host: &Path, at: &str, mode: &str| format!("{}:{at}:{mode}", host.display());
    let run = [
        "run".to_owned(),
        "--name=sealer".into(),
        "--network=host".into(),
        "--read-only".into(),
        "--cap-drop=ALL".into(),
        "--security-opt=no-new-privileges".into(),
        "-v".into(),
        mount(&keys, "/etc/sealer/keys", "ro"),
        "-v".into(),
        mount(&tls, "/etc/sealer/tls", "ro"),
        "-v".into(),
        mount(&data, "/var/lib/sealer", "rw"),
        "ingress-audit/sealer:test".into(),
        "serve".into(),
        format!("--listen=127.0.0.1:{port}"),
        "--keys=/etc/sealer/keys".into(),
        "--store=/var/lib/sealer/store".into(),
        "--data-dir=/var/lib/sealer/data".into(),
        format!("--webhook-listen=127.0.0.1:{webhook_port}"),
        "--tls-cert=/etc/sealer/tls/server.pem".into(),
        "--tls-key=/etc/sealer/tls/server.key".into(),
        "--webhook-token-file=/etc/sealer/tls/webhook.token".into(),
        "--segment-max-age=100ms".into(),
        "--checkpoint-interval=200ms".into(),
    ];
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    let mut container = harness::Process::spawn(
        "the sealer container",
        docker.command(&run),
        &root.path().join("sealer.log"),
    )
    .unwrap();
    container
        .wait_http_ok(
            &format!("http://127.0.0.1:{port}/readyz"),
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));

    // The real API server, with the shipped policy and kubeconfig, sends it an Ingress.
    let plane_dir = root.path().join("control-plane");
    let kubeconfig = webhook_kubeconfig(
        webhook_port,
        &apiserver_side.join("ca.pem"),
        &apiserver_side.join("webhook.token"),
        root.path(),
    );
    let plane = ControlPlane::start(
        &plane_dir,
        &Audit {
            policy: shipped_policy(),
            webhook_kubeconfig: kubeconfig,
            flags: crate::k8s_failover::shipped_webhook_flags(),
        },
    )
    .unwrap_or_else(|e| panic!("the control plane did not start: {e:#}"));
    plane
        .kubectl(User::Admin, &["create", "namespace", "shop"])
        .expect_code(0);
    plane.create_ingress("shop", "web").expect_code(0);
    // Blocking mode: the event was sealed before kubectl got its answer.
    let status: serde_json::Value = ureq::get(&format!("http://127.0.0.1:{port}/v1/status"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert!(status["log_size"].as_u64().unwrap() >= 2, "{status}");
    // Stopped as Kubernetes stops it (SIGTERM): the last segment is stored.
    docker.run(&["stop", "-t", "30", "sealer"]).expect_code(0);
    container.stop().ok();

    let store = data.join("store");
    let verify = sealer_cmd(&[
        "verify",
        "--store",
        store.to_str().unwrap(),
        "--public-key",
        public_key.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let export = sealer_cmd(&[
        "export",
        "--store",
        store.to_str().unwrap(),
        "--public-key",
        public_key.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let created: Vec<serde_json::Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["kind"] == "k8s_audit")
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["event"]["verb"], "create");
    assert_eq!(created[0]["event"]["objectRef"]["resource"], "ingresses");
    assert_eq!(created[0]["event"]["user"]["username"], "admin");
    // Everything the container wrote belongs to its user, not root.
    for entry in std::fs::read_dir(&store).unwrap() {
        let meta = std::fs::metadata(entry.unwrap().path()).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), UID);
    }
    drop(plane);
}
