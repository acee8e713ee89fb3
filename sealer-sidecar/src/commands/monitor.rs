//! `sealer monitor`: verification on a schedule, from outside the audited trust domain.
//!
//! Every `--interval` it verifies the store incrementally from the last checkpoint it
//! verified (kept in `--state-dir/trusted.note`, moved forward only after a run that passed),
//! and in full every `--full-every`; with `--max-age` it also requires a fresh checkpoint,
//! and with `--witness … --min-witnesses N` cosignatures. `/metrics` (OpenMetrics) exposes the
//! outcome for alerting: `envoy-config/monitoring/audit-alerts.yaml` has the rules.
//!
//! Exit codes: 0 stopped cleanly, 2 could not start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use auditlog::timestamp::Timestamp;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::commands::EXIT_OK;
use crate::commands::args::{StoreArgs, open_logs};
use crate::config::parse_duration;
use crate::keys;
use crate::read::verify::{self, VerifyOptions};
use crate::store::{AnyStore, Store};

#[derive(clap::Args, Debug)]
pub struct MonitorArgs {
    #[command(flatten)]
    source: StoreArgs,
    /// Where the last verified checkpoint is kept (`trusted.note`): the monitor's own volume.
    #[arg(long)]
    state_dir: PathBuf,
    /// How often to verify.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    interval: Duration,
    /// How often to verify every entry again rather than only the new ones.
    #[arg(long, value_parser = parse_duration, default_value = "24h")]
    full_every: Duration,
    /// Require the newest checkpoint to be younger than this (`stale` otherwise).
    #[arg(long, value_parser = parse_duration)]
    max_age: Option<Duration>,
    /// A witness whose cosignatures count (witness.pub or the key string); repeat.
    #[arg(long = "witness")]
    witnesses: Vec<String>,
    /// How many of the --witness keys must have cosigned the newest checkpoint.
    #[arg(long, default_value_t = 0)]
    min_witnesses: usize,
    /// Address of `GET /metrics` and `GET /healthz`.
    #[arg(long, default_value = "127.0.0.1:8791")]
    listen: SocketAddr,
}

/// The outcome of the runs so far, for `/metrics`.
#[derive(Default)]
struct Outcome {
    runs: u64,
    last_run_unix: Option<u64>,
    last_run_ok: bool,
    last_success_unix: Option<u64>,
    entries_verified: u64,
    log_entries: u64,
    newest_checkpoint_unix: Option<u64>,
    /// With `--witness`: the witnesses that cosigned the checkpoint that counted, at the last
    /// run, and that checkpoint's size.
    cosigned_by: Vec<String>,
    cosigned_size: Option<u64>,
    /// The --witness names, each shown as 0 or 1.
    witnesses: Vec<String>,
    /// Problems of the last run, by class.
    problems: BTreeMap<String, u64>,
    /// Runs that could not read the store at all.
    errors: u64,
}

fn unix_now() -> u64 {
    (Timestamp::now().unix_nanos() / 1_000_000_000).max(0) as u64
}

fn metrics(o: &Outcome) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: Option<u64>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        if let Some(v) = value {
            out.push_str(&format!("{name} {v}\n"));
        }
    };
    gauge(
        "audit_monitor_last_run_ok",
        "1 if the last verification found no problem, else 0.",
        Some(u64::from(o.last_run_ok)),
    );
    gauge(
        "audit_monitor_last_run_timestamp_seconds",
        "When the last verification ran.",
        o.last_run_unix,
    );
    gauge(
        "audit_monitor_last_success_timestamp_seconds",
        "When a verification last passed.",
        o.last_success_unix,
    );
    gauge(
        "audit_monitor_log_entries",
        "Entries in the log at the last run.",
        Some(o.log_entries),
    );
    gauge(
        "audit_monitor_newest_checkpoint_timestamp_seconds",
        "When the newest checkpoint was signed.",
        o.newest_checkpoint_unix,
    );
    gauge(
        "audit_monitor_cosigned_checkpoint_size",
        "Size of the newest checkpoint the given witnesses cosigned (with --witness), at the last run.",
        o.cosigned_size,
    );
    out.push_str("# HELP audit_monitor_witness_cosigned 1 if this --witness cosigned that checkpoint, else 0.\n# TYPE audit_monitor_witness_cosigned gauge\n");
    for name in &o.witnesses {
        let agreed = u64::from(o.cosigned_by.contains(name));
        out.push_str(&format!(
            "audit_monitor_witness_cosigned{{witness=\"{name}\"}} {agreed}\n"
        ));
    }
    out.push_str("# HELP audit_monitor_problems Problems the last verification found, by class.\n# TYPE audit_monitor_problems gauge\n");
    for (class, n) in &o.problems {
        out.push_str(&format!(
            "audit_monitor_problems{{class=\"{class}\"}} {n}\n"
        ));
    }
    for (name, help, v) in [
        ("audit_monitor_runs", "Verifications run.", o.runs),
        (
            "audit_monitor_entries_verified",
            "Entries read and verified, over all runs.",
            o.entries_verified,
        ),
        (
            "audit_monitor_errors",
            "Runs that could not read the store.",
            o.errors,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name}_total {v}\n"
        ));
    }
    out.push_str("# EOF\n");
    out
}

async fn get_metrics(State(o): State<Arc<Mutex<Outcome>>>) -> Response {
    let text = metrics(&o.lock().expect("not poisoned"));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// One verification; updates `outcome`, and `trusted.note` when it passed.
async fn run_once(
    store: &AnyStore,
    args: &MonitorArgs,
    options: &mut VerifyOptions,
    verifier: &auditlog::note::NoteVerifier,
    full: bool,
    outcome: &Mutex<Outcome>,
) -> anyhow::Result<()> {
    let trusted_path = args.state_dir.join("trusted.note");
    options.trusted = match std::fs::read_to_string(&trusted_path) {
        Ok(text) => Some((trusted_path.display().to_string(), text)),
        Err(_) => None,
    };
    options.incremental = !full;
    let mut report = verify::verify(store, verifier, options).await?;
    if let Some(max_age) = args.max_age {
        report.require_fresh(max_age, Timestamp::now());
    }
    let mut problems = BTreeMap::new();
    for p in &report.problems {
        let class = serde_json::to_value(p.class)?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        *problems.entry(class).or_insert(0) += 1;
    }
    if report.ok
        && let Some(newest) = &report.newest_checkpoint
        && let Some(bytes) = store.get(&newest.key).await?
    {
        let tmp = trusted_path.with_extension("tmp");
        std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &trusted_path))
            .with_context(|| format!("failed to keep {}", trusted_path.display()))?;
    }
    if report.ok {
        tracing::info!(
            entries = report.entries,
            from = report.verified_from,
            full,
            "verified"
        );
    } else {
        tracing::error!(
            problems = report.problem_count,
            first = %report.problems.first().map(ToString::to_string).unwrap_or_default(),
            "VERIFICATION FAILED"
        );
    }
    let now = unix_now();
    let mut o = outcome.lock().expect("not poisoned");
    o.runs += 1;
    o.last_run_unix = Some(now);
    o.last_run_ok = report.ok;
    if report.ok {
        o.last_success_unix = Some(now);
    }
    o.entries_verified += report.entries.saturating_sub(report.verified_from);
    o.log_entries = report.entries;
    o.newest_checkpoint_unix = report
        .newest_checkpoint
        .as_ref()
        .map(|c| (c.time.unix_nanos() / 1_000_000_000).max(0) as u64);
    o.problems = problems;
    o.cosigned_size = report.cosigned.as_ref().map(|c| c.size);
    o.cosigned_by = report
        .cosigned
        .iter()
        .flat_map(|c| c.witnesses.iter().map(|(name, _)| name.clone()))
        .collect();
    Ok(())
}

pub async fn run(args: MonitorArgs) -> anyhow::Result<u8> {
    let verifier = match args.source.public_key.as_slice() {
        [one] => keys::load_public(one)?,
        _ => anyhow::bail!("sealer monitor follows one log: give one --public-key"),
    };
    let logs = open_logs(&args.source.store, &args.source.s3).await?;
    let [store] = logs.as_slice() else {
        anyhow::bail!(
            "--store {} holds {} logs; give the one to monitor (s3://BUCKET/PREFIX/LOG_ID)",
            args.source.store,
            logs.len()
        );
    };
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("failed to create {}", args.state_dir.display()))?;
    let mut options = VerifyOptions {
        mac_key: match &args.source.hmac_key {
            Some(p) => Some(keys::load_mac_key(p)?),
            None => None,
        },
        storage_checks: true,
        witnesses: keys::load_witness_keys(&args.witnesses)?,
        min_witnesses: args.min_witnesses,
        cosigned_max_age: args.max_age,
        ..VerifyOptions::default()
    };
    let outcome = Arc::new(Mutex::new(Outcome {
        witnesses: options
            .witnesses
            .iter()
            .map(|w| w.name().to_owned())
            .collect(),
        ..Outcome::default()
    }));
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(get_metrics))
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .with_state(outcome.clone());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}: failed to listen", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, store = %store.describe(), interval = ?args.interval, "monitor ready");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let shutdown = crate::commands::serve::shutdown_signal();
    tokio::pin!(shutdown);
    let mut last_full: Option<Instant> = None;
    loop {
        let full = last_full.is_none_or(|t| t.elapsed() >= args.full_every);
        if full {
            last_full = Some(Instant::now());
        }
        if let Err(e) = run_once(store, &args, &mut options, &verifier, full, &outcome).await {
            tracing::error!(error = format!("{e:#}"), "verification could not run");
            let mut o = outcome.lock().expect("not poisoned");
            o.errors += 1;
            o.last_run_ok = false;
            o.last_run_unix = Some(unix_now());
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = &mut shutdown => break,
        }
    }
    server.abort();
    Ok(EXIT_OK)
}
