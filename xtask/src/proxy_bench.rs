//! `cargo xtask bench proxy`: what the audit filter costs Envoy.
//!
//! One run, same settings for every variant: Envoy 1.40 (`--concurrency 1`) loaded by
//! `wrk -t1 -c32`, in two scenarios:
//!
//! - **direct**: the gateway answers every request itself (a direct response), so only the
//!   gateway's own work is measured;
//! - **ingress**: TLS from the client, and the gateway proxying over keep-alive to an upstream
//!   (a second Envoy) that answers at once: what a real ingress gateway does per request.
//!
//! Variants: no filter; Envoy's native JSON file access log; a no-op Rust wasm filter; the
//! same filter making only the audit filter's host calls, portable (every fact its own call)
//! and fast (Envoy's `set_filter_state` in front, one CEL list), the floor of each design;
//! the audit filter sending to a sink that only counts; the audit filter with the sealer
//! running beside it, fast and portable. Throughput and latency are reported as ratios, and
//! for the audit filter whether every served request was delivered (to the sink) or sealed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::null_sink::NullSink;
use harness::envoy::Envoy;
use harness::sealer::Serve;
use harness::{Process, free_port, wait};

use crate::process::{self, cpu_seconds};
use crate::{tasks, tools};

/// What runs in the gateway's filter chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    NoFilter,
    NativeAccessLog,
    NoopWasm,
    /// The no-op filter making the audit filter's portable host calls, nothing else.
    HostCallsPortable,
    /// The no-op filter making the fast path's host calls, behind `set_filter_state`.
    HostCallsFast,
    /// The audit filter (fast path) delivering to [`NullSink`].
    AuditNullSink,
    /// The audit filter (fast path) with the sealer.
    AuditFilter,
    /// The audit filter without `set_filter_state` in front, with the sealer.
    AuditPortable,
    /// The no-op filter with this plugin configuration (`bench hostcalls`).
    Probe(&'static str),
    /// The same behind Envoy's `set_filter_state` filter.
    ProbeFilterState(&'static str),
}

/// Where the gateway's requests go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// Plain HTTP, answered by the gateway itself.
    Direct,
    /// TLS from the client, proxied over keep-alive to an upstream Envoy.
    Ingress,
}

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::Direct => "direct response, plain HTTP",
            Scenario::Ingress => "ingress: TLS from the client, proxied to an upstream",
        }
    }
}

impl Variant {
    const ALL: [Variant; 8] = [
        Variant::NoFilter,
        Variant::NativeAccessLog,
        Variant::NoopWasm,
        Variant::HostCallsPortable,
        Variant::HostCallsFast,
        Variant::AuditNullSink,
        Variant::AuditFilter,
        Variant::AuditPortable,
    ];

    fn label(self) -> &'static str {
        match self {
            Variant::NoFilter => "no filter",
            Variant::NativeAccessLog => "native JSON file access log",
            Variant::NoopWasm => "no-op Rust wasm filter",
            Variant::HostCallsPortable => "host calls only, portable",
            Variant::HostCallsFast => "host calls only, fast path",
            Variant::AuditNullSink => "audit filter → null sink",
            Variant::AuditFilter => "audit filter + sealer",
            Variant::AuditPortable => "audit, portable, + sealer",
            Variant::Probe(config) | Variant::ProbeFilterState(config) => config,
        }
    }

    fn is_audit(self) -> bool {
        matches!(
            self,
            Variant::AuditNullSink | Variant::AuditFilter | Variant::AuditPortable
        )
    }

    fn has_sealer(self) -> bool {
        matches!(self, Variant::AuditFilter | Variant::AuditPortable)
    }
}

/// One wrk run.
#[derive(Clone, Copy, Debug, Default)]
struct Load {
    requests: u64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

struct Options {
    seconds: u64,
    rounds: usize,
    /// Only this scenario (`--scenario direct|ingress`).
    scenario: Option<Scenario>,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options {
        seconds: 8,
        rounds: 2,
        scenario: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || tasks::number_after(a, &mut it);
        match a.as_str() {
            "--seconds" => o.seconds = value()?,
            "--rounds" => o.rounds = value()?.max(1) as usize,
            "--scenario" => {
                o.scenario = match it.next().map(String::as_str) {
                    Some("direct") => Some(Scenario::Direct),
                    Some("ingress") => Some(Scenario::Ingress),
                    other => bail!("--scenario takes direct or ingress (got {other:?})"),
                }
            }
            other => bail!(
                "unknown bench proxy option {other:?} (--seconds N, --rounds N, --scenario direct|ingress)"
            ),
        }
    }
    Ok(o)
}

const WASM_FILTER: &str = r#"          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: NAME
                root_id: NAME
                vm_config:
                  vm_id: NAME
                  runtime: envoy.wasm.runtime.v8
                  code: { local: { filename: WASM } }
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: 'PLUGIN'
"#;

/// Envoy's native `set_filter_state` filter writing the request's facts for the audit
/// filter's fast path: the object `filter::preformatted` reads, as the shipped
/// configurations write it.
fn set_filter_state() -> String {
    let mut yaml = String::from(
        r#"          - name: envoy.filters.http.set_filter_state
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config
              on_request_headers:
              - object_key: io.ingress_audit.request
                factory_key: envoy.string
                format_string:
                  json_format:
"#,
    );
    for (name, command) in filter::preformatted::REQUEST_FORMAT {
        yaml.push_str(&format!("                    {name}: \"{command}\"\n"));
    }
    yaml
}

const ACCESS_LOG: &str = r#"          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: LOGPATH
              log_format:
                json_format:
                  start_time: "%START_TIME%"
                  method: "%REQ(:METHOD)%"
                  path: "%REQ(:PATH)%"
                  protocol: "%PROTOCOL%"
                  status: "%RESPONSE_CODE%"
                  flags: "%RESPONSE_FLAGS%"
                  details: "%RESPONSE_CODE_DETAILS%"
                  bytes_in: "%BYTES_RECEIVED%"
                  bytes_out: "%BYTES_SENT%"
                  duration: "%DURATION%"
                  authority: "%REQ(:AUTHORITY)%"
                  client: "%DOWNSTREAM_REMOTE_ADDRESS%"
                  user_agent: "%REQ(USER-AGENT)%"
                  request_id: "%REQ(X-REQUEST-ID)%"
                  route: "%ROUTE_NAME%"
                  upstream: "%UPSTREAM_HOST%"
"#;

const BOOTSTRAP: &str = r#"admin:
  address: { socket_address: { address: 127.0.0.1, port_value: ADMIN } }
static_resources:
  listeners:
  - name: gateway
    address: { socket_address: { address: 127.0.0.1, port_value: PORT } }
    filter_chains:
    - TLS
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
ACCESSLOG          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                ROUTE
          http_filters:
FILTERS          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: app
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: UPSTREAM } } }
  - name: audit_sealer
    type: STATIC
    connect_timeout: 0.25s
    load_assignment:
      cluster_name: audit_sealer
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: SEALER } } }
"#;

/// The ingress scenario's TLS on the gateway's listener.
const DOWNSTREAM_TLS: &str = r#"transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: CERT }
              private_key: { filename: KEY }
"#;

/// The ingress scenario's upstream: a second Envoy that answers every request at once.
const UPSTREAM: &str = r#"admin:
  address: { socket_address: { address: 127.0.0.1, port_value: ADMIN } }
static_resources:
  listeners:
  - name: upstream
    address: { socket_address: { address: 127.0.0.1, port_value: PORT } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: upstream
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                direct_response: { status: 200, body: { inline_string: "hello from the upstream\n" } }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#;

struct Setup {
    envoy: PathBuf,
    wrk: PathBuf,
    audit_wasm: PathBuf,
    noop_wasm: PathBuf,
    sealer: PathBuf,
    dir: PathBuf,
    /// The gateway's TLS certificate and key (ingress scenario).
    cert: PathBuf,
    key: PathBuf,
}

/// The ports of one measurement.
struct Ports {
    gateway: u16,
    admin: u16,
    sealer: u16,
    upstream: u16,
}

fn config(setup: &Setup, scenario: Scenario, variant: Variant, ports: &Ports) -> String {
    let wasm = |name: &str, file: &Path, plugin: &str| {
        WASM_FILTER
            .replace("NAME", name)
            .replace("WASM", &file.display().to_string())
            .replace("PLUGIN", plugin)
    };
    let (filters, access_log) = match variant {
        Variant::NoFilter => (String::new(), String::new()),
        Variant::NoopWasm => (wasm("noop", &setup.noop_wasm, "{}"), String::new()),
        Variant::HostCallsPortable => (
            wasm("noop", &setup.noop_wasm, r#"{"reads":"audit"}"#),
            String::new(),
        ),
        Variant::HostCallsFast => (
            set_filter_state() + &wasm("noop", &setup.noop_wasm, r#"{"reads":"fast"}"#),
            String::new(),
        ),
        Variant::Probe(plugin) => (wasm("noop", &setup.noop_wasm, plugin), String::new()),
        Variant::ProbeFilterState(plugin) => (
            format!(
                "{}{}",
                set_filter_state(),
                wasm("noop", &setup.noop_wasm, plugin)
            ),
            String::new(),
        ),
        Variant::NativeAccessLog => (
            String::new(),
            ACCESS_LOG.replace(
                "LOGPATH",
                &setup.dir.join("access.log").display().to_string(),
            ),
        ),
        Variant::AuditFilter | Variant::AuditNullSink | Variant::AuditPortable => {
            let audit = wasm(
                "ingress_audit",
                &setup.audit_wasm,
                &format!(
                    r#"{{"gateway":"bench-gw","sealer_authority":"127.0.0.1:{}"}}"#,
                    ports.sealer
                ),
            );
            let front = if variant == Variant::AuditPortable {
                String::new()
            } else {
                set_filter_state()
            };
            (front + &audit, String::new())
        }
    };
    let (tls, route) = match scenario {
        Scenario::Direct => (
            String::new(),
            r#"direct_response: { status: 200, body: { inline_string: "ok\n" } }"#,
        ),
        Scenario::Ingress => (
            DOWNSTREAM_TLS
                .replace("CERT", &setup.cert.display().to_string())
                .replace("KEY", &setup.key.display().to_string())
                + "      ",
            "route: { cluster: app }",
        ),
    };
    BOOTSTRAP
        .replace("ADMIN", &ports.admin.to_string())
        .replace("PORT", &ports.gateway.to_string())
        .replace("SEALER", &ports.sealer.to_string())
        .replace("UPSTREAM", &ports.upstream.to_string())
        .replace("- TLS\n      filters:", &format!("- {tls}filters:"))
        .replace("ROUTE", route)
        .replace("FILTERS", &filters)
        .replace("ACCESSLOG", &access_log)
}

/// Parse wrk's `--latency` report.
fn parse_wrk(out: &str) -> anyhow::Result<Load> {
    let ms = |v: &str| -> Option<f64> {
        let v = v.trim();
        let (n, f) = if let Some(x) = v.strip_suffix("us") {
            (x, 0.001)
        } else if let Some(x) = v.strip_suffix("ms") {
            (x, 1.0)
        } else if let Some(x) = v.strip_suffix('s') {
            (x, 1000.0)
        } else {
            return None;
        };
        n.parse::<f64>().ok().map(|n| n * f)
    };
    let mut load = Load::default();
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            load.per_second = v.trim().parse()?;
        } else if let Some(v) = t.strip_prefix("50%") {
            load.p50_ms = ms(v).context("wrk p50")?;
        } else if let Some(v) = t.strip_prefix("99%") {
            load.p99_ms = ms(v).context("wrk p99")?;
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            load.non_2xx = v.trim().parse()?;
        } else if t.contains(" requests in ") {
            load.requests = t.split_whitespace().next().unwrap_or("0").parse()?;
        }
    }
    if load.per_second == 0.0 {
        bail!("could not read wrk's output:\n{out}");
    }
    Ok(load)
}

/// What one variant measured.
struct Measurement {
    scenario: Scenario,
    variant: Variant,
    load: Load,
    /// Envoy's resident memory at the end of the run.
    envoy_rss_kib: Option<u64>,
    /// For the audit filter: `(events received by the sealer or the sink, requests served)`.
    sealed: Option<(u64, u64)>,
    /// CPU microseconds per request during the measured run: Envoy's, and the sealer's.
    envoy_cpu_us: f64,
    sealer_cpu_us: Option<f64>,
}

/// Start Envoy with `config` written to the scratch directory; wait until it is ready.
fn start_envoy(setup: &Setup, name: &str, config: &str) -> anyhow::Result<Envoy> {
    Envoy::launch(
        &setup.envoy,
        &setup.dir,
        name,
        config,
        &["--log-level", "warn"],
    )
}

/// Run one variant: start what it needs, warm up, measure.
fn measure(
    setup: &Setup,
    scenario: Scenario,
    variant: Variant,
    seconds: u64,
) -> anyhow::Result<Measurement> {
    let sink = match variant {
        Variant::AuditNullSink => Some(NullSink::start()?),
        _ => None,
    };
    let ports = Ports {
        gateway: free_port(),
        admin: free_port(),
        sealer: match &sink {
            Some(sink) => sink.port,
            None => free_port(),
        },
        upstream: free_port(),
    };
    let sealer_base = format!("http://127.0.0.1:{}", ports.sealer);
    let sealer = if variant.has_sealer() {
        // As the shipped gateway sidecar runs it (envoy-config/istio/gateway.yaml): no query
        // index, which would cost the sealer more CPU per event than the rest of its work.
        let sealer = Serve::new(&setup.sealer, ports.sealer)
            .args(["--dev-keys", "--index", "false", "--data-dir"])
            .arg(setup.dir.join(format!("sealer-{}", ports.sealer)))
            .env("SEALER_LOG", "warn")
            .start(&setup.dir.join(format!("sealer-{}.log", ports.sealer)))?;
        Some(sealer)
    } else {
        None
    };
    let upstream = match scenario {
        Scenario::Direct => None,
        Scenario::Ingress => {
            let admin = free_port();
            let config = UPSTREAM
                .replace("ADMIN", &admin.to_string())
                .replace("PORT", &ports.upstream.to_string());
            let name = format!("upstream-{}", ports.upstream);
            Some(start_envoy(setup, &name, &config)?)
        }
    };
    let config = config(setup, scenario, variant, &ports);
    let name = format!("envoy-{}", ports.gateway);
    let mut envoy = start_envoy(setup, &name, &config)?;
    let envoy_pid = envoy.pid().context("Envoy runs")?;
    let url = match scenario {
        Scenario::Direct => format!("http://127.0.0.1:{}/products/4711?ref=bench", ports.gateway),
        Scenario::Ingress => format!(
            "https://127.0.0.1:{}/products/4711?ref=bench",
            ports.gateway
        ),
    };
    let wrk = |secs: u64| -> anyhow::Result<Load> {
        let out = Command::new(&setup.wrk)
            .args(["-t1", "-c32", &format!("-d{secs}s"), "--latency", &url])
            .output()?;
        parse_wrk(&String::from_utf8_lossy(&out.stdout))
    };
    let warmup = wrk(2)?;
    let sealer_pid = sealer.as_ref().and_then(Process::pid);
    let (envoy_before, sealer_before) = (cpu_seconds(envoy_pid), sealer_pid.map(cpu_seconds));
    let load = wrk(seconds)?;
    let per_request = |cpu: f64| cpu * 1e6 / load.requests.max(1) as f64;
    let envoy_cpu_us = per_request(cpu_seconds(envoy_pid) - envoy_before);
    let sealer_cpu_us = sealer_pid
        .zip(sealer_before)
        .map(|(pid, before)| per_request(cpu_seconds(pid) - before));
    let rss = process::status_kib(envoy_pid, "VmRSS");
    let sealed = if variant.is_audit() {
        // Wait for the filter to deliver everything, then compare with what was served.
        let served = warmup.requests + load.requests;
        let received = || match &sink {
            Some(sink) => sink.lines(),
            None => tasks::sealer_metric(&sealer_base, "sealer_events_received_total").unwrap_or(0),
        };
        // A loss shows in the report: what arrived within the patience is the measurement.
        let _ = wait::until_true("every event to arrive", Duration::from_secs(30), || {
            received() >= served
        });
        Some((received(), served))
    } else {
        None
    };
    envoy.try_stop()?;
    drop(upstream);
    Ok(Measurement {
        scenario,
        variant,
        load,
        envoy_rss_kib: rss,
        sealed,
        envoy_cpu_us,
        sealer_cpu_us,
    })
}

/// Build what the benchmarks run (the filters, the release sealer), find Envoy and wrk, and
/// make the gateway's TLS certificate.
fn setup() -> anyhow::Result<Setup> {
    tools::wasm_target()?;
    let envoy = tools::envoy()?;
    let wrk = tools::wrk()?;
    let audit_wasm = tasks::build_filter()?;
    tasks::run(tasks::cargo().args([
        "build",
        "-p",
        "noop-filter",
        "--target",
        tools::WASM_TARGET,
        "--profile",
        "wasm-release",
    ]))?;
    let noop_wasm = audit_wasm.with_file_name("noop_filter.wasm");
    let sealer = tasks::build_sealer(true)?;
    let dir = tasks::scratch_dir("bench-proxy")?;
    let (cert, key) = (dir.join("gateway.pem"), dir.join("gateway.key"));
    tasks::run(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=gateway.bench", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    )
    .context("failed to make the gateway's TLS certificate with openssl")?;
    Ok(Setup {
        envoy,
        wrk,
        audit_wasm,
        noop_wasm,
        sealer,
        dir,
        cert,
        key,
    })
}

/// Run every variant `rounds` times, interleaved so drift on the machine hits all alike.
fn measure_all(
    setup: &Setup,
    runs: &[(Scenario, Variant)],
    o: &Options,
) -> anyhow::Result<Vec<Measurement>> {
    let mut results = Vec::new();
    for round in 1..=o.rounds {
        for &(scenario, v) in runs {
            eprintln!("round {round}: {:?} {} …", scenario, v.label());
            results.push(measure(setup, scenario, v, o.seconds)?);
        }
    }
    Ok(results)
}

/// The round with the highest throughput.
fn best(results: &[Measurement], scenario: Scenario, v: Variant) -> &Measurement {
    results
        .iter()
        .filter(|r| r.variant == v && r.scenario == scenario)
        .max_by(|a, b| a.load.per_second.total_cmp(&b.load.per_second))
        .expect("every variant ran")
}

/// How many times each probe repeats its host call per request.
const PROBE_TIMES: u32 = 10;

/// `cargo xtask bench hostcalls`: what one host call costs Envoy. The no-op filter repeats
/// one kind of call 10 times per request; the Envoy CPU per request above the plain no-op
/// filter's, divided by 10, is the call's cost.
pub fn run_host_calls(args: &[String]) -> anyhow::Result<u8> {
    let o = parse(args)?;
    let probes: [(&str, Variant); 14] = [
        ("nothing (the no-op filter)", Variant::Probe("{}")),
        (
            "the clock",
            Variant::Probe(r#"{"repeat":"clock","times":10}"#),
        ),
        (
            "the whole request header map",
            Variant::Probe(r#"{"repeat":"headers","times":10}"#),
        ),
        (
            "one request header (:path)",
            Variant::Probe(r#"{"repeat":"header","times":10}"#),
        ),
        (
            "property with a value: response.code",
            Variant::Probe(r#"{"repeat":"response.code","times":10}"#),
        ),
        (
            "property with a value: source.address",
            Variant::Probe(r#"{"repeat":"source.address","times":10}"#),
        ),
        (
            "property without a value: xds.route_name",
            Variant::Probe(r#"{"repeat":"xds.route_name","times":10}"#),
        ),
        (
            "set_filter_state in front, no call",
            Variant::ProbeFilterState("{}"),
        ),
        (
            "the filter-state object (11 facts)",
            Variant::ProbeFilterState(r#"{"repeat":"filter_state","times":10}"#),
        ),
        (
            "CEL list of 4 (expr_evaluate)",
            Variant::Probe(r#"{"repeat":"cel","times":10}"#),
        ),
        (
            "CEL: 1",
            Variant::Probe(r#"{"repeat":"cel","expr":1,"times":10}"#),
        ),
        (
            "CEL: response.code",
            Variant::Probe(r#"{"repeat":"cel","expr":2,"times":10}"#),
        ),
        (
            "CEL: [response.code, response.flags]",
            Variant::Probe(r#"{"repeat":"cel","expr":3,"times":10}"#),
        ),
        (
            "CEL: code + flags * 1000",
            Variant::Probe(r#"{"repeat":"cel","expr":4,"times":10}"#),
        ),
    ];
    let setup = setup()?;
    let runs: Vec<(Scenario, Variant)> =
        probes.iter().map(|(_, v)| (Scenario::Direct, *v)).collect();
    let results = measure_all(&setup, &runs, &o)?;
    let cpu = |v: Variant| best(&results, Scenario::Direct, v).envoy_cpu_us;
    println!(
        "\nEnvoy 1.40 --concurrency 1, direct response, wrk -t1 -c32 -d{}s, best of {} rounds; \
         each probe makes its call {PROBE_TIMES} times per request:",
        o.seconds, o.rounds
    );
    println!(
        "  {:<42} {:>10} {:>14} {:>10}",
        "host call", "req/s", "Envoy CPU/req", "per call"
    );
    for (name, v) in probes {
        let m = best(&results, Scenario::Direct, v);
        // A probe behind `set_filter_state` is priced against the no-op filter behind it.
        let baseline = match v {
            Variant::ProbeFilterState(_) => cpu(Variant::ProbeFilterState("{}")),
            _ => cpu(Variant::Probe("{}")),
        };
        let per_call = (m.envoy_cpu_us - baseline) / f64::from(PROBE_TIMES);
        println!(
            "  {:<42} {:>10.0} {:>11.1} µs {:>7.2} µs",
            name, m.load.per_second, m.envoy_cpu_us, per_call
        );
    }
    std::fs::remove_dir_all(&setup.dir).ok();
    Ok(0)
}

/// The variants of the ingress scenario: the baselines, the fast path's floor, and the
/// audit filter as shipped.
const INGRESS: [Variant; 5] = [
    Variant::NoFilter,
    Variant::NativeAccessLog,
    Variant::NoopWasm,
    Variant::HostCallsFast,
    Variant::AuditFilter,
];

pub fn run(args: &[String]) -> anyhow::Result<u8> {
    let o = parse(args)?;
    let setup = setup()?;
    let runs: Vec<(Scenario, Variant)> = Variant::ALL
        .iter()
        .map(|v| (Scenario::Direct, *v))
        .chain(INGRESS.iter().map(|v| (Scenario::Ingress, *v)))
        .filter(|(scenario, _)| o.scenario.is_none_or(|s| s == *scenario))
        .collect();
    let results = measure_all(&setup, &runs, &o)?;
    println!(
        "\nEnvoy 1.40 --concurrency 1, wrk -t1 -c32 -d{}s, best of {} rounds.",
        o.seconds, o.rounds
    );
    for (scenario, variants) in [
        (Scenario::Direct, &Variant::ALL[..]),
        (Scenario::Ingress, &INGRESS[..]),
    ] {
        if o.scenario.is_none_or(|s| s == scenario) {
            report(&results, scenario, variants);
        }
    }
    for m in &results {
        if let Some((received, served)) = m.sealed {
            let (by, kept) = match m.variant {
                Variant::AuditNullSink => ("the null sink", "delivered"),
                _ => ("the sealer", "sealed"),
            };
            println!(
                "  {:?}, {}: {served} requests served, {received} events received by {by}{}",
                m.scenario,
                m.variant.label(),
                if received >= served {
                    format!(" (every one {kept})")
                } else {
                    " (EVENTS MISSING)".to_string()
                }
            );
        }
    }
    println!(
        "  filter.wasm {} KiB, noop_filter.wasm {} KiB",
        std::fs::metadata(&setup.audit_wasm)?.len() / 1024,
        std::fs::metadata(&setup.noop_wasm)?.len() / 1024
    );
    std::fs::remove_dir_all(&setup.dir).ok();
    Ok(0)
}

/// One scenario's table and the ratios the goals are stated in.
fn report(results: &[Measurement], scenario: Scenario, variants: &[Variant]) {
    let best = |v: Variant| best(results, scenario, v);
    let base = best(Variant::NoFilter).load;
    println!("\n{}:", scenario.label());
    println!(
        "  {:<30} {:>10} {:>8} {:>9} {:>9} {:>8} {:>8} {:>11} {:>13} {:>14}",
        "variant",
        "req/s",
        "÷ none",
        "p50 ms",
        "p99 ms",
        "p99 ÷",
        "non-2xx",
        "Envoy RSS",
        "Envoy CPU/req",
        "sealer CPU/req"
    );
    for &v in variants {
        let m = best(v);
        let (l, rss) = (m.load, m.envoy_rss_kib);
        println!(
            "  {:<30} {:>10.0} {:>8.2} {:>9.3} {:>9.3} {:>8.2} {:>8} {:>8} KiB {:>10.1} µs {:>11}",
            v.label(),
            l.per_second,
            l.per_second / base.per_second,
            l.p50_ms,
            l.p99_ms,
            l.p99_ms / base.p99_ms,
            l.non_2xx,
            rss.unwrap_or(0),
            m.envoy_cpu_us,
            m.sealer_cpu_us
                .map_or("-".to_string(), |c| format!("{c:.1} µs"))
        );
    }
    let noop = best(Variant::NoopWasm);
    let native = best(Variant::NativeAccessLog);
    for v in variants.iter().filter(|v| {
        !matches!(
            v,
            Variant::NoFilter | Variant::NativeAccessLog | Variant::NoopWasm
        )
    }) {
        let m = best(*v);
        println!(
            "  {} ÷ no-op wasm filter: throughput {:.2}, p99 {:.2}, Envoy CPU/req {:+.1} µs",
            v.label(),
            m.load.per_second / noop.load.per_second,
            m.load.p99_ms / noop.load.p99_ms,
            m.envoy_cpu_us - noop.envoy_cpu_us
        );
    }
    let audit = best(Variant::AuditFilter);
    println!(
        "  goals, audit filter + sealer: ÷ native JSON log throughput {:.2} (≥ 0.85), p99 {:.2} \
         (≤ 1.3); ÷ no-op filter throughput {:.2} (≥ 0.90), p99 {:.2} (≤ 1.15); sealer CPU \
         per event ÷ no-op Envoy CPU per request {:.2} (≤ 0.2)",
        audit.load.per_second / native.load.per_second,
        audit.load.p99_ms / native.load.p99_ms,
        audit.load.per_second / noop.load.per_second,
        audit.load.p99_ms / noop.load.p99_ms,
        audit.sealer_cpu_us.unwrap_or(f64::NAN) / noop.envoy_cpu_us,
    );
}
