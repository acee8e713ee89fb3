//! The shipped Kubernetes and Istio manifests (`envoy-config/kubernetes/`,
//! `envoy-config/istio/`) against the real components, so they cannot drift from the code:
//!
//! - the WasmPlugin's `pluginConfig` runs in Envoy 1.40 with the built filter, dispatching to
//!   the cluster that the sealer-cluster EnvoyFilter adds, and requests come out sealed;
//! - the alternative EnvoyFilter's HTTP filter is accepted by `envoy --mode validate` and
//!   carries the same plugin configuration;
//! - the fast-path EnvoyFilter puts the same `set_filter_state` filter in front of the audit
//!   filter as the standalone gateway (which the tests run), with the members the filter
//!   reads;
//! - the audit Policy sends exactly the resources the sealer seals by default;
//! - the sealer configurations in the ConfigMaps are valid `sealer serve` configurations.
//!
//! No cluster runs here: what only a cluster can check (injection, scheduling, the API server
//! reading the policy) is not covered.

use std::path::PathBuf;
use std::time::Duration;

use auditlog::k8s::Selection;
use harness::Sealer;
use harness::envoy::{self, Envoy};
use sealer::config::ServeOptions;
use serde::Deserialize;
use serde_json::{Value, json};

fn manifest_path(relative: &str) -> PathBuf {
    harness::workspace_root()
        .join("envoy-config")
        .join(relative)
}

/// Every YAML document of a manifest file, as JSON.
fn documents(relative: &str) -> Vec<Value> {
    let path = manifest_path(relative);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// The one document of `kind` named `name` in a manifest file.
fn find(relative: &str, kind: &str, name: &str) -> Value {
    let docs = documents(relative);
    let mut found = docs
        .iter()
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name);
    let doc = found
        .next()
        .unwrap_or_else(|| panic!("{relative}: no {kind} named {name}"));
    assert!(
        found.next().is_none(),
        "{relative}: two {kind}s named {name}"
    );
    doc.clone()
}

fn plugin_config() -> Value {
    find("istio/wasmplugin.yaml", "WasmPlugin", "ingress-audit")["spec"]["pluginConfig"].clone()
}

/// The STATIC sealer cluster from the EnvoyFilter, pointed at `port`.
fn sealer_cluster(port: u16) -> Value {
    let filter = find(
        "istio/envoyfilter-sealer-cluster.yaml",
        "EnvoyFilter",
        "ingress-audit-sealer-cluster",
    );
    let patch = &filter["spec"]["configPatches"][0];
    assert_eq!(patch["applyTo"], "CLUSTER");
    assert_eq!(patch["match"]["context"], "GATEWAY");
    let mut cluster = patch["patch"]["value"].clone();
    let address =
        &mut cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
    assert_eq!(address["socket_address"]["address"], "127.0.0.1");
    address["socket_address"]["port_value"] = json!(port);
    cluster
}

/// `config` with `cluster` appended to its clusters (the last section of the shipped file).
fn with_cluster(config: &str, cluster: &Value) -> String {
    let at = config
        .find("\n  clusters:\n")
        .expect("the shipped config has static clusters");
    let after = &config[at + 1..];
    assert!(
        after
            .lines()
            .skip(1)
            .all(|l| l.trim().is_empty() || l.starts_with("  ")),
        "clusters is no longer the last section of the shipped config"
    );
    format!("{}\n  - {cluster}\n", config.trim_end())
}

#[test]
fn the_wasmplugin_config_runs_in_envoy_against_the_envoyfilter_cluster() {
    let wasm_plugin = find("istio/wasmplugin.yaml", "WasmPlugin", "ingress-audit");
    let spec = &wasm_plugin["spec"];
    let plugin = plugin_config();
    // failStrategy matches the filter's own failure policy.
    let expected_strategy = match plugin["failure_policy"].as_str().unwrap_or("fail_open") {
        "fail_open" => "FAIL_OPEN",
        "fail_closed" => "FAIL_CLOSE",
        other => panic!("unknown failure_policy {other}"),
    };
    assert_eq!(spec["failStrategy"], expected_strategy);
    assert_eq!(
        spec["phase"], "AUTHN",
        "before Istio's authn/authz filters, so their refusals are audited"
    );

    let sealer = Sealer::start(
        "e2e.test/k8s-manifests",
        &[
            "--segment-max-age",
            "100ms",
            "--checkpoint-interval",
            "200ms",
        ],
    );
    let cluster = sealer_cluster(sealer.port());
    assert_eq!(
        cluster["name"], plugin["cluster"],
        "the filter dispatches to the cluster the EnvoyFilter adds"
    );
    // The shipped `audit_sealer` cluster points nowhere: only the EnvoyFilter's can deliver.
    let config = crate::gateway_config(harness::free_port(), &plugin.to_string());
    let envoy = Envoy::start(&with_cluster(&config, &cluster));
    for path in ["/", "/cart?token=s3cret", "/missing"] {
        envoy.get("gateway", path);
    }
    let delivered = harness::wait::until_true(
        "the manifest's plugin configuration to deliver 3 events to the sealer",
        Duration::from_secs(30),
        || sealer.metric("sealer_events_received_total") >= 3,
    );
    if let Err(timeout) = delivered {
        envoy.fail(&timeout.to_string());
    }
    sealer.wait_stored();
    let events: Vec<Value> = sealer
        .export_entries()
        .into_iter()
        .filter(|e| e["kind"] == "http")
        .collect();
    assert_eq!(events.len(), 3);
    let gateway = plugin["gateway"].as_str().unwrap();
    for e in &events {
        let source = e["source"]["id"].as_str().unwrap();
        assert!(
            source.starts_with(&format!("{gateway}/")),
            "{source} is not from {gateway}"
        );
    }
    let query = events
        .iter()
        .find_map(|e| e["event"]["url"]["query"].as_str())
        .expect("the request with a query");
    assert_eq!(
        query, "token=REDACTED",
        "the manifest's redact_query_params apply"
    );
}

#[test]
fn the_alternative_envoyfilter_is_accepted_by_envoy_and_configures_the_same_plugin() {
    let filter = find(
        "istio/envoyfilter-audit-filter.yaml",
        "EnvoyFilter",
        "ingress-audit-filter",
    );
    let patch = &filter["spec"]["configPatches"][0];
    assert_eq!(
        (&patch["applyTo"], &patch["patch"]["operation"]),
        (&json!("HTTP_FILTER"), &json!("INSERT_FIRST"))
    );
    let mut http_filter = patch["patch"]["value"].clone();
    let wasm = &mut http_filter["typed_config"]["config"];
    let embedded: Value = serde_json::from_str(
        wasm["configuration"]["value"]
            .as_str()
            .expect("a StringValue configuration"),
    )
    .expect("the embedded plugin configuration is JSON");
    assert_eq!(
        embedded,
        plugin_config(),
        "the EnvoyFilter and the WasmPlugin configure the filter alike"
    );
    wasm["vm_config"]["code"]["local"]["filename"] = json!(crate::filter_wasm().to_str().unwrap());

    let config = crate::required(envoy::config::without_audit_filter(&crate::gateway_config(
        harness::free_port(),
        "{}",
    )));
    let router = "          - name: envoy.filters.http.router";
    let at = config
        .find(router)
        .expect("the gateway's router filter in the shipped config");
    let mut config = config.clone();
    config.insert_str(at, &format!("          - {http_filter}\n"));
    let config = with_cluster(&config, &sealer_cluster(harness::free_port()));
    envoy::expect_valid(&config);
}

/// The `set_filter_state` filter of the shipped standalone gateway.
fn standalone_fast_path_filter() -> Value {
    let config: Value =
        serde_yaml_ng::from_str(&crate::required(envoy::config::shipped())).unwrap();
    let filters = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["http_filters"]
        .as_array()
        .expect("the gateway's HTTP filters")
        .clone();
    let names: Vec<&str> = filters.iter().filter_map(|f| f["name"].as_str()).collect();
    let at = names
        .iter()
        .position(|n| *n == "envoy.filters.http.set_filter_state")
        .expect("the standalone gateway has the fast path");
    assert_eq!(
        names.get(at + 1),
        Some(&"envoy.filters.http.wasm"),
        "set_filter_state runs right before the audit filter"
    );
    filters[at].clone()
}

#[test]
fn the_fast_path_envoyfilter_writes_what_the_filter_reads_before_it_runs() {
    let filter = find(
        "istio/envoyfilter-fast-path.yaml",
        "EnvoyFilter",
        "ingress-audit-fast-path",
    );
    let audit_filter = find(
        "istio/envoyfilter-audit-filter.yaml",
        "EnvoyFilter",
        "ingress-audit-filter",
    );
    let priority = |f: &Value| f["spec"]["priority"].as_i64().unwrap_or(0);
    assert!(
        priority(&filter) > priority(&audit_filter),
        "applied after the audit filter's INSERT_FIRST, so it lands in front of it"
    );
    let patch = &filter["spec"]["configPatches"][0];
    assert_eq!(
        (
            &patch["applyTo"],
            &patch["patch"]["operation"],
            &patch["match"]["context"]
        ),
        (
            &json!("HTTP_FILTER"),
            &json!("INSERT_FIRST"),
            &json!("GATEWAY")
        )
    );
    let value = &patch["patch"]["value"];
    assert_eq!(
        value,
        &standalone_fast_path_filter(),
        "the Istio gateway and the standalone gateway run the same fast path"
    );
    // The members are the ones the filter reads with the shipped plugin configuration.
    let config = filter::config::FilterConfig::parse(plugin_config().to_string().as_bytes())
        .expect("the shipped plugin configuration");
    let rule = &value["typed_config"]["on_request_headers"][0];
    assert_eq!(rule["object_key"], filter::preformatted::FILTER_STATE_KEY);
    assert_eq!(rule["factory_key"], "envoy.string");
    let members: Vec<(String, String)> = rule["format_string"]["json_format"]
        .as_object()
        .expect("json_format")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    let mut expected = filter::preformatted::request_format(&config);
    expected.sort();
    assert_eq!(members, expected);
}

#[test]
fn the_audit_policy_sends_what_the_sealer_seals() {
    let policy = &documents("kubernetes/audit-policy.yaml")[0];
    assert_eq!(
        (&policy["apiVersion"], &policy["kind"]),
        (&json!("audit.k8s.io/v1"), &json!("Policy"))
    );
    assert_eq!(policy["omitStages"], json!(["RequestReceived"]));
    let rules = policy["rules"].as_array().unwrap();
    assert_eq!(
        rules.last().unwrap(),
        &json!({"level": "None"}),
        "nothing else is sent"
    );
    let mut sent: Vec<(String, String)> = Vec::new();
    for rule in &rules[..rules.len() - 1] {
        assert_eq!(rule["level"], "RequestResponse");
        for group in rule["resources"].as_array().unwrap() {
            for resource in group["resources"].as_array().unwrap() {
                let resource = resource.as_str().unwrap();
                let (resource, _subresource) = resource.split_once('/').unwrap_or((resource, ""));
                let pair = (
                    group["group"].as_str().unwrap().to_owned(),
                    resource.to_owned(),
                );
                if !sent.contains(&pair) {
                    sent.push(pair);
                }
            }
        }
    }
    let mut sealed = Selection::default().resources;
    sent.sort();
    sealed.sort();
    assert_eq!(sent, sealed);

    let kubeconfig = &documents("kubernetes/audit-webhook-kubeconfig.yaml")[0];
    let server = kubeconfig["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap();
    assert!(
        server.starts_with("https://") && server.ends_with("/v1/k8s/audit"),
        "{server}"
    );
    let service = find(
        "istio/control-plane-sealer.yaml",
        "Service",
        "ingress-audit-sealer",
    );
    assert!(
        server.contains(&format!(
            "{}:{}",
            service["spec"]["clusterIP"].as_str().unwrap(),
            service["spec"]["ports"][0]["port"]
        )),
        "the kubeconfig points at the sealer's Service: {server}"
    );
}

#[test]
fn the_sealer_configurations_in_the_configmaps_are_valid() {
    for (file, name, pod) in [
        (
            "istio/gateway.yaml",
            "ingress-audit-gateway-sealer",
            "ingress-gateway-0",
        ),
        (
            "istio/control-plane-sealer.yaml",
            "ingress-audit-control-plane-sealer",
            "ingress-audit-sealer-0",
        ),
    ] {
        let map = find(file, "ConfigMap", name);
        let text = map["data"]["sealer.toml"].as_str().unwrap();
        let mut options: ServeOptions =
            toml::from_str(text).unwrap_or_else(|e| panic!("{file} {name}: {e}"));
        // SEALER_KEYS and SEALER_LOG_ID come from the pod's environment: each replica is
        // its own log, with its own keys.
        assert!(options.keys.is_none() && options.log_id.is_none());
        options.keys = Some(format!("/etc/sealer/keys/{pod}").into());
        options.log_id = Some(pod.into());
        let config = options
            .resolve(None)
            .unwrap_or_else(|e| panic!("{file} {name}: {e:#}"));
        assert!(config.listen.ip().is_loopback(), "ingest stays on loopback");
        assert!(
            config.health_listen.is_some(),
            "the probes need --health-listen"
        );
        assert!(config.store.starts_with("s3://"));
    }
}

/// The container of a Deployment in a manifest, its arguments with the paths of the pod
/// replaced by `paths` (pod path → local path) and `0.0.0.0:PORT` by a free loopback port.
fn container_args(relative: &str, name: &str, paths: &[(&str, String)]) -> (Vec<String>, u16) {
    let deploy = find(relative, "Deployment", name);
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"]["runAsNonRoot"], true,
        "{name} runs as non-root"
    );
    let container = &pod["containers"][0];
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"], true,
        "{name}: read-only root filesystem"
    );
    let port = harness::free_port();
    let args = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let mut a = a.as_str().unwrap().to_owned();
            if a.starts_with("0.0.0.0:") {
                a = format!("127.0.0.1:{port}");
            }
            for (from, to) in paths {
                if let Some(rest) = a.strip_prefix(from) {
                    a = format!("{to}{rest}");
                }
            }
            a
        })
        .collect();
    (args, port)
}

/// The witness and the monitor start with the arguments their manifest gives them (pod paths
/// replaced by files of a real log and real keys, the S3 store by a local copy) and serve
/// their probes; the monitor verifies the log.
#[test]
fn the_witness_and_monitor_manifests_start_with_their_arguments() {
    const FILE: &str = "kubernetes/witness-and-monitor.yaml";
    let mut s = Sealer::start("e2e.test/k8s-witness", &["--segment-max-age", "200ms"]);
    s.seal(&harness::sealer::events("gw/k", 1, 5));
    s.stop();
    let root = s.root().to_owned();
    let keys = root.join("witness-keys");
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    assert!(
        harness::sealer::sealer_cmd(&["keygen", "--witness", "--out", keys.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    std::fs::copy(s.public_key(), logs.join("gateway.pub")).unwrap();
    std::fs::copy(keys.join("witness.pub"), logs.join("witness.pub")).unwrap();
    let state = |n: &str| root.join(n).display().to_string();
    let dir = |p: &std::path::Path| p.display().to_string();

    let (args, port) = container_args(
        FILE,
        "audit-witness",
        &[
            ("/etc/witness/key", dir(&keys)),
            ("/etc/witness/logs", dir(&logs)),
            ("/var/lib/witness", state("witness-state")),
        ],
    );
    let mut cmd = harness::sealer::sealer_cmd(&[]);
    cmd.args(&args);
    let mut witness =
        harness::Process::spawn("the witness", cmd, &root.join("witness.log")).unwrap();
    witness
        .wait_http_ok(
            &format!("http://127.0.0.1:{port}/healthz"),
            Duration::from_secs(30),
        )
        .unwrap();

    let store = s.store().display().to_string();
    let (mut args, port) = container_args(
        FILE,
        "audit-monitor",
        &[
            ("/etc/monitor/logs", dir(&logs)),
            ("/var/lib/monitor", state("monitor-state")),
        ],
    );
    let at = args.iter().position(|a| a == "--store").unwrap() + 1;
    assert!(args[at].starts_with("s3://"), "{args:?}");
    args[at] = store;
    let mut cmd = harness::sealer::sealer_cmd(&[]);
    cmd.args(&args);
    let mut monitor =
        harness::Process::spawn("the monitor", cmd, &root.join("monitor.log")).unwrap();
    let url = format!("http://127.0.0.1:{port}");
    monitor
        .wait_http_ok(&format!("{url}/healthz"), Duration::from_secs(30))
        .unwrap();
    s.wait_until("the monitor ran", || {
        ureq::get(&format!("{url}/metrics"))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .is_some_and(|m| {
                m.lines().any(|l| l == "audit_monitor_runs_total 1")
                    && m.lines().any(|l| l == "audit_monitor_log_entries 6")
            })
    });
    witness.stop().unwrap();
    monitor.stop().unwrap();
}
