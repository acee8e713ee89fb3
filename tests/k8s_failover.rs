//! Two control-plane sealer replicas behind a load balancer, as the shipped StatefulSet runs
//! them behind their Service: a real kube-apiserver with the shipped policy, webhook
//! kubeconfig and webhook flags (`envoy-config/kubernetes/README.md`), Envoy 1.40 as the TCP
//! load balancer standing in for the Service (round robin, endpoints in and out by the
//! replicas' readiness, `GET /readyz/ingest` every second as the readinessProbe does, no
//! retries of its own). The API server keeps one connection to the replica the Service chose
//! first; that replica is killed with SIGKILL in the middle of a stream of Ingress changes.
//! Every change is sealed in one of the two logs (none lost, none twice), the other replica
//! takes over, both logs verify together as a fleet, and the latency of each write is
//! printed.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use harness::Sealer;
use harness::envoy::Envoy;
use harness::kube::{Audit, ControlPlane, User};
use harness::pki::Pki;
use serde_json::Value;

use crate::k8s_apiserver::{shipped_policy, webhook_kubeconfig};

/// The `--audit-webhook-*` flags envoy-config/kubernetes/README.md ships.
pub(crate) fn shipped_webhook_flags() -> Vec<String> {
    let readme = std::fs::read_to_string(
        harness::workspace_root().join("envoy-config/kubernetes/README.md"),
    )
    .unwrap();
    let flags: Vec<String> = readme
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("--audit-webhook-") && !l.starts_with("--audit-webhook-config-file")
        })
        .map(str::to_owned)
        .collect();
    assert!(
        flags.iter().any(|f| f.starts_with("--audit-webhook-mode=")),
        "the README names the webhook mode: {flags:?}"
    );
    flags
}

/// Envoy as a Service: round robin over the replicas' webhook ports, each checked on its
/// probe port like a readinessProbe (`periodSeconds: 1`, `failureThreshold: 1`).
fn service_config(listen: u16, replicas: &[(u16, u16)]) -> String {
    let endpoints: String = replicas
        .iter()
        .map(|(webhook, probes)| {
            format!(
                "        - endpoint:\n            address: {{socket_address: {{address: 127.0.0.1, port_value: {webhook}}}}}\n            health_check_config: {{port_value: {probes}}}\n"
            )
        })
        .collect();
    format!(
        r#"admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  listeners:
  - name: service
    address: {{socket_address: {{address: 127.0.0.1, port_value: {listen}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: service
          cluster: sealers
          max_connect_attempts: 1
  clusters:
  - name: sealers
    type: STATIC
    connect_timeout: 1s
    lb_policy: ROUND_ROBIN
    health_checks:
    - timeout: 1s
      interval: 1s
      no_traffic_interval: 1s
      unhealthy_threshold: 1
      healthy_threshold: 1
      http_health_check: {{path: /readyz/ingest}}
    load_assignment:
      cluster_name: sealers
      endpoints:
      - lb_endpoints:
{endpoints}"#
    )
}

/// A replica of the control-plane sealer: its own keys, log and WAL; the webhook's TLS
/// certificate and token shared (one Secret for the StatefulSet).
fn replica(n: usize, pki: &Path, webhook: u16, probes: u16) -> Sealer {
    let p = |f: &str| pki.join(f).display().to_string();
    let args = [
        "--segment-max-age".to_owned(),
        "100ms".into(),
        "--checkpoint-interval".into(),
        "200ms".into(),
        format!("--health-listen=127.0.0.1:{probes}"),
        format!("--webhook-listen=127.0.0.1:{webhook}"),
        format!("--tls-cert={}", p("server.pem")),
        format!("--tls-key={}", p("server.key")),
        format!("--webhook-token-file={}", p("webhook.token")),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Sealer::start(&format!("e2e.test/control-plane-{n}"), &args)
}

/// The names of the Ingresses whose creation a store sealed.
fn created(s: &Sealer, store: &Path) -> Vec<String> {
    let out = s.run(&[
        "export",
        "--store",
        store.to_str().unwrap(),
        "--public-key",
        s.public_key().to_str().unwrap(),
    ]);
    out.expect_code(0)
        .stdout()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "k8s_audit" && e["event"]["verb"] == "create")
        .map(|e| e["event"]["objectRef"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn one_of_two_replicas_killed_loses_no_event() {
    let root = tempfile::tempdir().unwrap();
    let pki = root.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    Pki::new(&pki).ca("ca", "/CN=sealer webhook CA").issue(
        "ca",
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1",
    );
    let token = pki.join("webhook.token");
    std::fs::write(&token, "failover-webhook-token-0123456789abcdef0123\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let ports: Vec<(u16, u16)> = (0..2)
        .map(|_| (harness::free_port(), harness::free_port()))
        .collect();
    let mut replicas: Vec<Sealer> = ports
        .iter()
        .enumerate()
        .map(|(n, (w, h))| replica(n, &pki, *w, *h))
        .collect();
    let service_port = harness::free_port();
    let _service = Envoy::start(&service_config(service_port, &ports));

    let flags = shipped_webhook_flags();
    let kubeconfig = webhook_kubeconfig(service_port, &pki.join("ca.pem"), &token, root.path());
    let plane = ControlPlane::start(
        &root.path().join("control-plane"),
        &Audit {
            policy: shipped_policy(),
            webhook_kubeconfig: kubeconfig,
            flags: flags.clone(),
        },
    )
    .unwrap_or_else(|e| panic!("the control plane did not start: {e:#}"));
    plane
        .kubectl(User::Admin, &["create", "namespace", "shop"])
        .expect_code(0);

    let create = |name: &str| -> Duration {
        let started = Instant::now();
        plane.create_ingress("shop", name).expect_code(0);
        started.elapsed()
    };
    let before: Vec<Duration> = (0..10).map(|i| create(&format!("before-{i}"))).collect();
    // The API server keeps its connection (HTTP/2 over TLS) to the replica the Service first
    // chose: that is the one to kill.
    let received = |s: &Sealer| s.metric("sealer_k8s_audit_events_received_total");
    let active = if received(&replicas[0]) > 0 { 0 } else { 1 };
    assert_eq!(
        received(&replicas[active]),
        10,
        "one replica took the stream"
    );
    let survivor = 1 - active;
    replicas[active].kill9();
    let after: Vec<Duration> = (0..10).map(|i| create(&format!("after-{i}"))).collect();
    let ms = |d: &[Duration]| -> Vec<u128> { d.iter().map(Duration::as_millis).collect() };
    println!(
        "webhook flags {flags:?}\nwrite latency (ms) with both replicas: {:?}\nafter one was killed: {:?}",
        ms(&before),
        ms(&after)
    );

    // Every change is in exactly one of the two logs.
    replicas[survivor].stop();
    // The killed replica's WAL holds what it acknowledged: a restart stores it.
    replicas[active].restart();
    replicas[active].stop();
    let sealed_0 = created(&replicas[0], &replicas[0].store());
    let sealed_1 = created(&replicas[1], &replicas[1].store());
    let all: Vec<&String> = sealed_0.iter().chain(&sealed_1).collect();
    let unique: BTreeSet<&String> = all.iter().copied().collect();
    let expected: BTreeSet<String> = (0..10)
        .flat_map(|i| [format!("before-{i}"), format!("after-{i}")])
        .collect();
    assert_eq!(
        unique.into_iter().cloned().collect::<BTreeSet<String>>(),
        expected,
        "no change is lost (replica 0 sealed {sealed_0:?}, replica 1 {sealed_1:?})"
    );
    assert_eq!(all.len(), expected.len(), "none is sealed twice");
    let (by_active, by_survivor) = if active == 0 {
        (&sealed_0, &sealed_1)
    } else {
        (&sealed_1, &sealed_0)
    };
    assert!(
        by_active.iter().all(|n| n.starts_with("before-")),
        "the killed replica sealed only what came before: {by_active:?}"
    );
    assert!(
        by_survivor
            .iter()
            .filter(|n| n.starts_with("after-"))
            .count()
            == 10,
        "the surviving replica took over: {by_survivor:?}"
    );
    let errors: f64 = plane
        .metrics()
        .lines()
        .filter(|l| l.starts_with("apiserver_audit_error_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(errors, 0.0, "apiserver_audit_error_total");

    // Both logs verify together, as the fleet under one prefix.
    let fleet = root.path().join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    for (n, s) in replicas.iter().enumerate() {
        std::os::unix::fs::symlink(s.store(), fleet.join(format!("control-plane-{n}"))).unwrap();
    }
    let (k0, k1) = (replicas[0].public_key(), replicas[1].public_key());
    let run = replicas[0].run(&[
        "verify",
        "--store",
        fleet.to_str().unwrap(),
        "--public-key",
        k0.to_str().unwrap(),
        "--public-key",
        k1.to_str().unwrap(),
    ]);
    run.expect_code(0);
    assert!(
        run.stdout().contains("2 logs, 0 failed"),
        "{}",
        run.stdout()
    );
}
