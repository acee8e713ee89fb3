//! `cargo xtask bench proxy`: what the audit filter costs Envoy.
//!
//! One run, same settings for every variant: Envoy 1.40 (`--concurrency 1`) answering every
//! request itself (a direct response, so only the gateway is measured), loaded by
//! `wrk -t1 -c32`. Variants: no filter; a no-op Rust wasm filter; the same filter making only
//! the audit filter's host calls (the floor of any filter reporting those fields); Envoy's
//! native JSON file access log; the audit filter sending to a sink that only counts; the
//! audit filter with the sealer running beside it. Throughput and latency are reported as
//! ratios to the no-filter Envoy, and for the audit filter it reports whether every served
//! request was delivered (to the sink) or sealed (by the sealer).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::null_sink::NullSink;
use crate::process::{self, Guard, cpu_seconds};
use crate::{tasks, tools};

/// What runs in the gateway's filter chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    NoFilter,
    NoopWasm,
    /// The no-op filter making the audit filter's host calls, nothing else.
    HostCallsOnly,
    NativeAccessLog,
    /// The audit filter delivering to [`NullSink`].
    AuditNullSink,
    AuditFilter,
    /// The no-op filter with this plugin configuration (`bench hostcalls`).
    Probe(&'static str),
}

impl Variant {
    const ALL: [Variant; 6] = [
        Variant::NoFilter,
        Variant::NoopWasm,
        Variant::HostCallsOnly,
        Variant::NativeAccessLog,
        Variant::AuditNullSink,
        Variant::AuditFilter,
    ];

    fn label(self) -> &'static str {
        match self {
            Variant::NoFilter => "no filter",
            Variant::NoopWasm => "no-op Rust wasm filter",
            Variant::HostCallsOnly => "audit's host calls only",
            Variant::NativeAccessLog => "native JSON file access log",
            Variant::AuditNullSink => "audit filter → null sink",
            Variant::AuditFilter => "audit filter + sealer",
            Variant::Probe(config) => config,
        }
    }

    fn is_audit(self) -> bool {
        matches!(self, Variant::AuditNullSink | Variant::AuditFilter)
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
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options {
        seconds: 8,
        rounds: 2,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || tasks::number_after(a, &mut it);
        match a.as_str() {
            "--seconds" => o.seconds = value()?,
            "--rounds" => o.rounds = value()?.max(1) as usize,
            other => bail!("unknown bench proxy option {other:?} (--seconds N, --rounds N)"),
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
    - filters:
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
                direct_response: { status: 200, body: { inline_string: "ok\n" } }
          http_filters:
FILTERS          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: audit_sealer
    type: STATIC
    connect_timeout: 0.25s
    load_assignment:
      cluster_name: audit_sealer
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: SEALER } } }
"#;

struct Setup {
    envoy: PathBuf,
    wrk: PathBuf,
    audit_wasm: PathBuf,
    noop_wasm: PathBuf,
    sealer: PathBuf,
    dir: PathBuf,
}

fn config(setup: &Setup, variant: Variant, port: u16, admin: u16, sealer: u16) -> String {
    let wasm = |name: &str, file: &Path, plugin: &str| {
        WASM_FILTER
            .replace("NAME", name)
            .replace("WASM", &file.display().to_string())
            .replace("PLUGIN", plugin)
    };
    let (filters, access_log) = match variant {
        Variant::NoFilter => (String::new(), String::new()),
        Variant::NoopWasm => (wasm("noop", &setup.noop_wasm, "{}"), String::new()),
        Variant::HostCallsOnly => (
            wasm("noop", &setup.noop_wasm, r#"{"reads":"audit"}"#),
            String::new(),
        ),
        Variant::Probe(plugin) => (wasm("noop", &setup.noop_wasm, plugin), String::new()),
        Variant::NativeAccessLog => (
            String::new(),
            ACCESS_LOG.replace(
                "LOGPATH",
                &setup.dir.join("access.log").display().to_string(),
            ),
        ),
        Variant::AuditFilter | Variant::AuditNullSink => (
            wasm(
                "ingress_audit",
                &setup.audit_wasm,
                &format!(r#"{{"gateway":"bench-gw","sealer_authority":"127.0.0.1:{sealer}"}}"#),
            ),
            String::new(),
        ),
    };
    BOOTSTRAP
        .replace("ADMIN", &admin.to_string())
        .replace("PORT", &port.to_string())
        .replace("SEALER", &sealer.to_string())
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

/// Run one variant: start what it needs, warm up, measure.
fn measure(setup: &Setup, variant: Variant, seconds: u64) -> anyhow::Result<Measurement> {
    let (port, admin) = (tasks::free_port()?, tasks::free_port()?);
    let sink = match variant {
        Variant::AuditNullSink => Some(NullSink::start()?),
        _ => None,
    };
    let sealer_port = match &sink {
        Some(sink) => sink.port,
        None => tasks::free_port()?,
    };
    let sealer_base = format!("http://127.0.0.1:{sealer_port}");
    let sealer = if variant == Variant::AuditFilter {
        let mut cmd = Command::new(&setup.sealer);
        // As the shipped gateway sidecar runs it (envoy-config/istio/gateway.yaml): no query
        // index, which would cost the sealer more CPU per event than the rest of its work.
        cmd.args([
            "serve",
            "--dev-keys",
            "--index",
            "false",
            "--listen",
            &format!("127.0.0.1:{sealer_port}"),
        ])
        .arg("--data-dir")
        .arg(setup.dir.join(format!("sealer-{sealer_port}")))
        .env("SEALER_LOG", "warn");
        let log = setup.dir.join(format!("sealer-{sealer_port}.log"));
        let guard = Guard::spawn("the sealer", cmd, log)?;
        tasks::wait_http_ok(&format!("{sealer_base}/healthz"), 100)?;
        Some(guard)
    } else {
        None
    };
    let cfg = setup.dir.join(format!("envoy-{port}.yaml"));
    std::fs::write(&cfg, config(setup, variant, port, admin, sealer_port))?;
    let mut cmd = Command::new(&setup.envoy);
    cmd.arg("-c").arg(&cfg).args([
        "--concurrency",
        "1",
        "--disable-hot-restart",
        "--log-level",
        "warn",
    ]);
    let mut envoy = Guard::spawn("Envoy", cmd, setup.dir.join(format!("envoy-{port}.log")))?;
    let envoy_pid = envoy.pid().context("Envoy runs")?;
    tasks::wait_http_ok(&format!("http://127.0.0.1:{admin}/ready"), 200)
        .with_context(|| format!("Envoy did not start with {}", cfg.display()))?;
    let url = format!("http://127.0.0.1:{port}/products/4711?ref=bench");
    let wrk = |secs: u64| -> anyhow::Result<Load> {
        let out = Command::new(&setup.wrk)
            .args(["-t1", "-c32", &format!("-d{secs}s"), "--latency", &url])
            .output()?;
        parse_wrk(&String::from_utf8_lossy(&out.stdout))
    };
    let warmup = wrk(2)?;
    let sealer_pid = sealer.as_ref().and_then(Guard::pid);
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
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = 0;
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = received();
            if (now >= served && now == last) || Instant::now() > deadline {
                break Some((now, served));
            }
            last = now;
        }
    } else {
        None
    };
    envoy.stop()?;
    Ok(Measurement {
        variant,
        load,
        envoy_rss_kib: rss,
        sealed,
        envoy_cpu_us,
        sealer_cpu_us,
    })
}

/// Build what the benchmarks run (the filters, the release sealer) and find Envoy and wrk.
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
    Ok(Setup {
        envoy,
        wrk,
        audit_wasm,
        noop_wasm,
        sealer,
        dir,
    })
}

/// Run every variant `rounds` times, interleaved so drift on the machine hits all alike.
fn measure_all(
    setup: &Setup,
    variants: &[Variant],
    o: &Options,
) -> anyhow::Result<Vec<Measurement>> {
    let mut results = Vec::new();
    for round in 1..=o.rounds {
        for &v in variants {
            eprintln!("round {round}: {} …", v.label());
            results.push(measure(setup, v, o.seconds)?);
        }
    }
    Ok(results)
}

/// The round with the highest throughput.
fn best(results: &[Measurement], v: Variant) -> &Measurement {
    results
        .iter()
        .filter(|r| r.variant == v)
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
    let probes: [(&str, Variant); 7] = [
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
    ];
    let setup = setup()?;
    let variants: Vec<Variant> = probes.iter().map(|(_, v)| *v).collect();
    let results = measure_all(&setup, &variants, &o)?;
    let nothing = best(&results, probes[0].1).envoy_cpu_us;
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
        let m = best(&results, v);
        let per_call = (m.envoy_cpu_us - nothing) / f64::from(PROBE_TIMES);
        println!(
            "  {:<42} {:>10.0} {:>11.1} µs {:>7.2} µs",
            name, m.load.per_second, m.envoy_cpu_us, per_call
        );
    }
    std::fs::remove_dir_all(&setup.dir).ok();
    Ok(0)
}

pub fn run(args: &[String]) -> anyhow::Result<u8> {
    let o = parse(args)?;
    let setup = setup()?;
    let results = measure_all(&setup, &Variant::ALL, &o)?;
    let best = |v: Variant| best(&results, v);
    let base = best(Variant::NoFilter).load;
    let noop = best(Variant::NoopWasm).load;
    println!(
        "\nEnvoy 1.40 --concurrency 1, direct response, wrk -t1 -c32 -d{}s, best of {} rounds:",
        o.seconds, o.rounds
    );
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
    for v in Variant::ALL {
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
    let noop_cpu = best(Variant::NoopWasm).envoy_cpu_us;
    for v in [
        Variant::HostCallsOnly,
        Variant::AuditNullSink,
        Variant::AuditFilter,
    ] {
        let m = best(v);
        println!(
            "  {} ÷ no-op wasm filter: throughput {:.2}, p99 {:.2}, Envoy CPU/req {:+.1} µs",
            v.label(),
            m.load.per_second / noop.per_second,
            m.load.p99_ms / noop.p99_ms,
            m.envoy_cpu_us - noop_cpu
        );
    }
    for m in &results {
        if let Some((received, served)) = m.sealed {
            let (by, kept) = match m.variant {
                Variant::AuditNullSink => ("the null sink", "delivered"),
                _ => ("the sealer", "sealed"),
            };
            println!(
                "  {}: {served} requests served, {received} events received by {by}{}",
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
