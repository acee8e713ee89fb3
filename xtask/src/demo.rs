//! `cargo xtask demo`: the real path, watched live, then verified.
//!
//! ```text
//! demo traffic ──► Envoy 1.40, gateway listener ──► sample upstream (200, 404 for /missing)
//!                    │ audit filter (filter.wasm), envoy-config/standalone/envoy.yaml
//!                    ▼ POST /v1/events
//!                  sealer serve ──► store/segments/*.ndjson ◄── the demo prints each entry
//! ```
//!
//! At the end (after `--once`'s rounds, or on Ctrl-C) Envoy is stopped, then the sealer, and
//! the demo runs `sealer verify`, checks that every request it sent was sealed exactly once
//! and that none of the secrets it sent reached the store. It exits 0 only if all of that
//! holds.
//!
//! `--store s3://BUCKET/PREFIX` seals into S3 with Object Lock instead (the log goes under
//! `PREFIX/demo/`); the AWS settings come from the environment as for `sealer serve`
//! (`AWS_ENDPOINT_URL`, credentials, `SEALER_S3_PATH_STYLE=true` for non-AWS servers). The
//! entries are then shown through `sealer export` of the stored log.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use auditlog::layout;
use auditlog::record::parse_record;
use serde_json::{Value, json};

use harness::Process;
use harness::envoy::Envoy;
use harness::envoy::config::{self as envoy_config, Ports};
use harness::sealer::Serve;

use crate::tasks;
use crate::tools;

/// Rounds of traffic with `--once`.
const ONCE_ROUNDS: u32 = 12;
/// Time between rounds of traffic.
const ROUND_EVERY: Duration = Duration::from_millis(400);
/// Time between looks at the store and the newest checkpoint.
const POLL_EVERY: Duration = Duration::from_millis(300);
/// How long the last events may take to arrive once the traffic stops.
const DELIVERY_PATIENCE: Duration = Duration::from_secs(30);
/// The gateway name in the filter's configuration; its sources are `demo-gateway/<hex>`.
const GATEWAY: &str = "demo-gateway";
/// The header the filter takes `enduser.id` from.
const USER_HEADER: &str = "x-demo-user";

struct Options {
    once: bool,
    store: Option<String>,
    keys: Option<PathBuf>,
}

/// The log id the demo's sealer writes under an `s3://` prefix.
const S3_LOG_ID: &str = "demo";

/// Where the demo's sealer stores the log.
#[derive(Clone, Debug)]
enum StoreLocation {
    Dir(PathBuf),
    /// `s3://bucket/prefix`: the log is under `prefix/demo/`.
    S3(String),
}

impl StoreLocation {
    fn parse(s: &str) -> StoreLocation {
        if s.starts_with("s3://") {
            StoreLocation::S3(s.trim_end_matches('/').to_owned())
        } else {
            StoreLocation::Dir(PathBuf::from(s.strip_prefix("file://").unwrap_or(s)))
        }
    }

    /// `--store` for `sealer serve`.
    fn serve_arg(&self) -> String {
        match self {
            StoreLocation::Dir(d) => d.display().to_string(),
            StoreLocation::S3(url) => url.clone(),
        }
    }

    /// `--store` for `sealer verify`, `export`, `checkpoint`: the demo's one log.
    fn log_arg(&self) -> String {
        match self {
            StoreLocation::Dir(d) => d.display().to_string(),
            StoreLocation::S3(url) => format!("{url}/{S3_LOG_ID}"),
        }
    }
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options {
        once: false,
        store: None,
        keys: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--once" => o.once = true,
            "--store" => {
                o.store = Some(
                    it.next()
                        .context("--store needs a directory or s3://BUCKET/PREFIX")?
                        .clone(),
                )
            }
            "--keys" => o.keys = Some(it.next().context("--keys needs a directory")?.into()),
            other => {
                bail!(
                    "unknown demo option {other:?} (expected --once, --store DIR|s3://BUCKET/PREFIX, \
                     --keys DIR)"
                )
            }
        }
    }
    Ok(o)
}

pub fn run(args: &[String]) -> anyhow::Result<u8> {
    let opts = parse(args)?;
    // A local store needs no S3 support: the sealer then builds in half the time.
    let s3 = opts
        .store
        .as_deref()
        .is_some_and(|s| s.starts_with("s3://"));
    let bins = Binaries::build(s3)?;
    let dirs = Dirs::new(&opts)?;
    ensure_keys(&bins.sealer, &dirs.keys)?;
    let interrupt = Interrupt::install()?;
    // Segments already in a reused store are neither printed nor counted.
    let mut watch = Watcher::new(&dirs.store, &bins.sealer, &dirs.keys)?;
    let mut gateway = Gateway::start(&bins, &dirs)?;
    gateway.print_banner(&dirs, opts.once);

    let mut traffic = Traffic::new(gateway.ports.gateway);
    watch.sealer_url = Some(gateway.sealer_url());
    let rounds = if opts.once { ONCE_ROUNDS } else { u32::MAX };
    stream(&mut traffic, &mut watch, rounds, &interrupt, &mut gateway)?;
    wait_delivered(&mut watch, &gateway.sealer_url(), traffic.sent)?;
    gateway.stop()?;
    watch.sealer_url = None;
    watch.poll()?;
    watch.show_newest_stored_checkpoint()?;

    let verified = verify(&bins.sealer, &dirs.store, &dirs.keys)?;
    let counted = check_counts(&watch.tally, &traffic);
    let clean = check_secrets(&dirs, &bins.sealer, &traffic)?;
    println!(
        "\nverify it yourself any time:\n  {} verify --store {} --public-key {}",
        bins.sealer.display(),
        dirs.store.log_arg(),
        dirs.keys.join("signing.pub").display()
    );
    Ok(if verified && counted && clean { 0 } else { 1 })
}

/// What the demo runs, installed or built as `cargo xtask test` does.
struct Binaries {
    sealer: PathBuf,
    envoy: PathBuf,
    filter: PathBuf,
}

impl Binaries {
    fn build(s3: bool) -> anyhow::Result<Binaries> {
        tools::wasm_target()?;
        let envoy = tools::envoy()?;
        let sealer = tasks::build_sealer_with(false, s3)?;
        let filter = tasks::build_filter()?;
        Ok(Binaries {
            sealer,
            envoy,
            filter,
        })
    }
}

/// Where the demo keeps things: a fresh scratch directory for logs, Envoy's config and the
/// sealer's write-ahead log, and the store and keys there unless given.
struct Dirs {
    scratch: PathBuf,
    keys: PathBuf,
    store: StoreLocation,
    /// The sealer's `--data-dir` (its write-ahead log).
    data: PathBuf,
}

impl Dirs {
    fn new(opts: &Options) -> anyhow::Result<Dirs> {
        let scratch = tasks::scratch_dir("demo")?;
        Ok(Dirs {
            keys: opts.keys.clone().unwrap_or_else(|| scratch.join("keys")),
            store: match &opts.store {
                Some(s) => StoreLocation::parse(s),
                None => StoreLocation::Dir(scratch.join("store")),
            },
            data: scratch.join("data"),
            scratch,
        })
    }
}

/// `sealer keygen` into `keys` unless it holds keys already.
fn ensure_keys(sealer: &Path, keys: &Path) -> anyhow::Result<()> {
    if keys.join("signing.key").exists() {
        return Ok(());
    }
    tasks::run(
        Command::new(sealer)
            .args([
                "keygen",
                "--origin",
                "demo.ingress-audit.example/gateway",
                "--out",
            ])
            .arg(keys),
    )
}

/// The sealer and, in front of it, Envoy with the audit filter. Dropping it stops Envoy
/// first (fields drop in order), so the sealer sees the filter's last calls.
struct Gateway {
    envoy: Envoy,
    sealer: Process,
    ports: Ports,
    envoy_config: PathBuf,
}

impl Gateway {
    /// Start the sealer, then Envoy, each on free ports, and wait until both are ready.
    fn start(bins: &Binaries, dirs: &Dirs) -> anyhow::Result<Gateway> {
        let sealer_port = harness::free_port();
        let mut serve = Serve::new(&bins.sealer, sealer_port)
            .arg("--keys")
            .arg(&dirs.keys)
            .arg("--store")
            .arg(dirs.store.serve_arg())
            .arg("--data-dir")
            .arg(&dirs.data)
            .args(["--segment-max-age", "1s", "--checkpoint-interval", "5s"])
            // The user's own settings (`SEALER_S3_PATH_STYLE=true`, ...) apply to the demo.
            .envs(std::env::vars().filter(|(k, _)| k.starts_with("SEALER_")));
        if let StoreLocation::S3(_) = dirs.store {
            serve = serve.args(["--log-id", S3_LOG_ID]);
        }
        let sealer = serve.start(&dirs.scratch.join("sealer.log"))?;
        let ports = Ports::free(sealer_port);
        let plugin = json!({
            "gateway": GATEWAY,
            "sealer_authority": format!("127.0.0.1:{}", ports.sealer),
            "flush_interval_ms": 100,
            "identity": [{"source": "header", "name": USER_HEADER}],
        });
        let config = envoy_config::standalone(ports, &bins.filter, &plugin.to_string())?;
        let envoy = Envoy::launch(&bins.envoy, &dirs.scratch, "envoy", &config, &[])?;
        Ok(Gateway {
            envoy,
            sealer,
            ports,
            envoy_config: dirs.scratch.join("envoy.yaml"),
        })
    }

    fn sealer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.sealer)
    }

    /// Fail as soon as Envoy or the sealer has exited.
    fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.envoy.ensure_running()?;
        self.sealer.ensure_running()
    }

    /// Stop Envoy, then the sealer (SIGTERM: it seals what is queued and stores its last
    /// segment and checkpoint).
    fn stop(&mut self) -> anyhow::Result<()> {
        println!("\nstopping Envoy, then the sealer (it stores its last segment and checkpoint)…");
        self.envoy.try_stop()?;
        let status = self.sealer.stop()?;
        if !status.is_some_and(|s| s.success()) {
            println!(
                "the sealer exited with {status:?}; its log is {}",
                self.sealer.log().display()
            );
        }
        Ok(())
    }

    fn print_banner(&self, dirs: &Dirs, once: bool) {
        let p = self.ports;
        println!(
            "\nsealer   {}   log {}",
            self.sealer_url(),
            self.sealer.log().display()
        );
        println!(
            "envoy    gateway http://127.0.0.1:{} → upstream :{}, admin :{}   log {}",
            p.gateway,
            p.upstream,
            p.admin,
            self.envoy.log_path().display()
        );
        println!("         config {}", self.envoy_config.display());
        println!(
            "live     {}/   (open in a browser: entries as they are sealed, filters, proofs)",
            self.sealer_url()
        );
        println!(
            "store    {}   keys {}",
            dirs.store.log_arg(),
            dirs.keys.display()
        );
        let until = if once {
            ""
        } else {
            " (Ctrl-C to stop and verify)"
        };
        println!(
            "\nsending sample traffic through the gateway; entries appear as the sealer \
             stores each segment{until}\n"
        );
        println!(
            "{:>5}  {:<5}  {:<6} {:>3}  {:<18} {:<44} who",
            "seq", "kind", "method", "st", "host", "path?query"
        );
    }
}

/// Send `rounds` rounds of traffic (or until Ctrl-C) while printing what gets sealed; fail as
/// soon as Envoy or the sealer exits.
fn stream(
    traffic: &mut Traffic,
    watch: &mut Watcher,
    rounds: u32,
    interrupt: &Interrupt,
    gateway: &mut Gateway,
) -> anyhow::Result<()> {
    let mut rounds_left = rounds;
    let mut next_round = Instant::now();
    let mut next_poll = Instant::now();
    while rounds_left > 0 && !interrupt.requested() {
        gateway.ensure_running()?;
        if Instant::now() >= next_round {
            traffic.round()?;
            rounds_left -= 1;
            next_round = Instant::now() + ROUND_EVERY;
        }
        if Instant::now() >= next_poll {
            watch.poll()?;
            next_poll = Instant::now() + POLL_EVERY;
        }
        let wake = next_round.min(next_poll);
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
    Ok(())
}

/// Wait until the sealer has acknowledged as many events as requests were sent: Envoy keeps
/// unsent events in memory, so it is stopped only then.
fn wait_delivered(watch: &mut Watcher, sealer_url: &str, sent: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + DELIVERY_PATIENCE;
    loop {
        let received =
            tasks::sealer_metric(sealer_url, "sealer_events_received_total").unwrap_or(0);
        if received >= sent {
            return Ok(());
        }
        if Instant::now() > deadline {
            println!(
                "the sealer received {received} of {sent} events within {DELIVERY_PATIENCE:?}"
            );
            return Ok(());
        }
        watch.poll()?;
        std::thread::sleep(POLL_EVERY);
    }
}

/// `sealer verify` with the public and the HMAC key, its report printed as it goes.
fn verify(sealer: &Path, store: &StoreLocation, keys: &Path) -> anyhow::Result<bool> {
    let mut cmd = Command::new(sealer);
    cmd.arg("verify")
        .arg("--store")
        .arg(store.log_arg())
        .arg("--public-key")
        .arg(keys.join("signing.pub"))
        .arg("--hmac-key")
        .arg(keys.join("hmac.key"));
    println!(
        "\n$ {}",
        harness::process::show_cmd(&cmd).replacen(&sealer.display().to_string(), "sealer", 1)
    );
    let status = cmd.status().context("failed to run sealer verify")?;
    Ok(status.success())
}

/// Every request the demo sent became exactly one sealed `http` entry, and no event was lost.
fn check_counts(tally: &Tally, traffic: &Traffic) -> bool {
    let ok = tally.http == traffic.sent && tally.gaps == 0;
    println!(
        "\n{} {} requests sent through Envoy, {} http entries sealed, {} gap entries",
        if ok { "ok:    " } else { "FAILED:" },
        traffic.sent,
        tally.http,
        tally.gaps
    );
    let ok_redacted = tally.redacted_tokens == traffic.sent_with_token;
    println!(
        "{} {} requests carried token=<secret>, {} sealed queries show token=REDACTED",
        if ok_redacted { "ok:    " } else { "FAILED:" },
        traffic.sent_with_token,
        tally.redacted_tokens
    );
    ok && ok_redacted
}

/// None of the secrets sent (the `token` query value, the bearer token) is in any file of
/// the store (for S3: in any stored record) or of the sealer's write-ahead log.
fn check_secrets(dirs: &Dirs, sealer: &Path, traffic: &Traffic) -> anyhow::Result<bool> {
    let mut files = Vec::new();
    files_under(&dirs.data, &mut files)?;
    // Named blobs: every file, plus for S3 the stored records as `sealer export` reads them.
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    match &dirs.store {
        StoreLocation::Dir(d) => files_under(d, &mut files)?,
        StoreLocation::S3(_) => {
            let records = export_records(sealer, &dirs.store, &dirs.keys)
                .context("reading the stored records back from S3")?;
            blobs.push((format!("the records in {}", dirs.store.log_arg()), records));
        }
    }
    for f in &files {
        if let Ok(bytes) = std::fs::read(f) {
            blobs.push((f.display().to_string(), bytes));
        }
    }
    let mut clean = true;
    for secret in traffic.secrets() {
        let found: Vec<&String> = blobs
            .iter()
            .filter(|(_, bytes)| bytes.windows(secret.len()).any(|w| w == secret.as_bytes()))
            .map(|(name, _)| name)
            .collect();
        if found.is_empty() {
            println!(
                "ok:     the secret {secret:?} appears nowhere in the store and WAL ({} objects read)",
                blobs.len()
            );
        } else {
            clean = false;
            println!("FAILED: the secret {secret:?} appears in {found:?}");
        }
    }
    Ok(clean)
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("failed to list {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            files_under(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// A ureq agent with a timeout, so a stuck process cannot hang the demo.
fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build()
}

/// Ctrl-C, noticed between steps. The children run in their own process groups, so the
/// terminal's SIGINT reaches only the demo, which stops them in order.
struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    fn install() -> anyhow::Result<Interrupt> {
        let flag = Arc::new(AtomicBool::new(false));
        let set = flag.clone();
        ctrlc::set_handler(move || set.store(true, Ordering::SeqCst))
            .context("failed to install the Ctrl-C handler")?;
        Ok(Interrupt(flag))
    }

    fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the demo counted in the segments it printed.
#[derive(Default)]
struct Tally {
    /// `http` entries from this demo's gateway.
    http: u64,
    gaps: u64,
    /// `http` entries whose query shows `token=REDACTED`.
    redacted_tokens: u64,
}

/// `sealer export --records` of the demo's log: every stored record, one per line.
fn export_records(sealer: &Path, store: &StoreLocation, keys: &Path) -> anyhow::Result<Vec<u8>> {
    let mut cmd = Command::new(sealer);
    cmd.args(["export", "--records", "--store"])
        .arg(store.log_arg())
        .arg("--public-key")
        .arg(keys.join("signing.pub"));
    let out = cmd
        .output()
        .with_context(|| format!("failed to run {}", harness::process::show_cmd(&cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed with {}: {}",
            harness::process::show_cmd(&cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Where the watcher reads stored entries from.
enum Source {
    /// A local store's directories, read directly.
    Dir {
        segments: PathBuf,
        checkpoints: PathBuf,
    },
    /// A store only the sealer's CLI reads (S3): `sealer export` and `sealer checkpoint`.
    Cli {
        sealer: PathBuf,
        store: StoreLocation,
        keys: PathBuf,
    },
}

/// Prints each new segment of the store, entry by entry, and each new signed checkpoint.
struct Watcher {
    source: Source,
    /// Segment file names already printed, or there before the demo (local store).
    seen: BTreeSet<String>,
    /// Records already printed, or there before the demo (S3).
    records_seen: usize,
    /// The sealer to ask for its newest checkpoint, while it runs.
    sealer_url: Option<String>,
    last_checkpoint: String,
    tally: Tally,
}

impl Watcher {
    fn new(store: &StoreLocation, sealer: &Path, keys: &Path) -> anyhow::Result<Watcher> {
        let (source, seen, records_seen) = match store {
            StoreLocation::Dir(dir) => {
                let segments = dir.join(layout::SEGMENTS.trim_end_matches('/'));
                let seen = segment_names(&segments)?.into_iter().collect();
                let checkpoints = dir.join(layout::CHECKPOINTS.trim_end_matches('/'));
                (
                    Source::Dir {
                        segments,
                        checkpoints,
                    },
                    seen,
                    0,
                )
            }
            StoreLocation::S3(_) => {
                // A log already there (the same prefix reused): its records are not shown.
                let before = export_records(sealer, store, keys).map_or(0, |r| count_lines(&r));
                let source = Source::Cli {
                    sealer: sealer.to_owned(),
                    store: store.clone(),
                    keys: keys.to_owned(),
                };
                (source, BTreeSet::new(), before)
            }
        };
        Ok(Watcher {
            source,
            seen,
            records_seen,
            sealer_url: None,
            last_checkpoint: String::new(),
            tally: Tally::default(),
        })
    }

    /// Print the segments stored since the last poll, then the newest checkpoint if it
    /// changed (fetched first, so it never covers a segment not printed yet).
    fn poll(&mut self) -> anyhow::Result<()> {
        let checkpoint = self.sealer_url.as_ref().and_then(|url| {
            let r = agent().get(&format!("{url}/v1/checkpoint")).call().ok()?;
            r.into_string().ok()
        });
        match &self.source {
            Source::Dir { segments, .. } => {
                let segments = segments.clone();
                for name in segment_names(&segments)? {
                    if self.seen.insert(name.clone()) {
                        let path = segments.join(&name);
                        let bytes = std::fs::read(&path)
                            .with_context(|| format!("failed to read {}", path.display()))?;
                        self.print_records(&path.display().to_string(), &bytes, 0)?;
                    }
                }
            }
            Source::Cli {
                sealer,
                store,
                keys,
            } => {
                // Between a segment and its checkpoint the log does not verify yet, and
                // export refuses it: try again at the next poll.
                if let Ok(records) = export_records(sealer, store, keys) {
                    let skip = self.records_seen;
                    self.records_seen = count_lines(&records);
                    self.print_records(&store.log_arg(), &records, skip)?;
                }
            }
        }
        if let Some(text) = checkpoint {
            self.show_checkpoint(text);
        }
        Ok(())
    }

    /// Print the records in `bytes` (record lines) after the first `skip`.
    fn print_records(&mut self, name: &str, bytes: &[u8], skip: usize) -> anyhow::Result<()> {
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate().skip(skip) {
            if line.is_empty() {
                continue;
            }
            let where_ = || format!("{name} line {}", i + 1);
            let record = parse_record(line).with_context(where_)?;
            let entry: Value = serde_json::from_slice(record.entry).with_context(where_)?;
            self.count(&entry);
            println!("{}", describe(&entry));
        }
        Ok(())
    }

    fn count(&mut self, entry: &Value) {
        let from_demo = entry["source"]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with(&format!("{GATEWAY}/")));
        match entry["kind"].as_str() {
            Some("http") if from_demo => {
                self.tally.http += 1;
                let query = entry["event"]["url"]["query"].as_str().unwrap_or("");
                if query.split('&').any(|p| p == "token=REDACTED") {
                    self.tally.redacted_tokens += 1;
                }
            }
            Some("gap") => self.tally.gaps += 1,
            _ => {}
        }
    }

    fn show_checkpoint(&mut self, text: String) {
        if text == self.last_checkpoint {
            return;
        }
        // origin, tree size, root hash, then extension lines (chain, time).
        let lines: Vec<&str> = text.lines().collect();
        let root = lines.get(2).copied().unwrap_or("?");
        println!(
            "       ── signed checkpoint: {} entries, root {}…, {}",
            lines.get(1).unwrap_or(&"?"),
            &root[..12.min(root.len())],
            lines.iter().find(|l| l.starts_with("time ")).unwrap_or(&"")
        );
        self.last_checkpoint = text;
    }

    /// The newest checkpoint in the store: the sealer's last, written as it stopped.
    fn show_newest_stored_checkpoint(&mut self) -> anyhow::Result<()> {
        let checkpoints = match &self.source {
            Source::Dir { checkpoints, .. } => checkpoints.clone(),
            Source::Cli { sealer, store, .. } => {
                let mut cmd = Command::new(sealer);
                cmd.args(["checkpoint", "--store"]).arg(store.log_arg());
                let out = cmd.output().with_context(|| {
                    format!("failed to run {}", harness::process::show_cmd(&cmd))
                })?;
                if out.status.success() {
                    self.show_checkpoint(String::from_utf8_lossy(&out.stdout).into_owned());
                }
                return Ok(());
            }
        };
        let newest = match std::fs::read_dir(&checkpoints) {
            Ok(dir) => dir
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| {
                    layout::parse_checkpoint_key(&format!("{}{n}", layout::CHECKPOINTS)).is_some()
                })
                .max(),
            Err(_) => None,
        };
        if let Some(name) = newest {
            let path = checkpoints.join(name);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            self.show_checkpoint(text);
        }
        Ok(())
    }
}

fn count_lines(bytes: &[u8]) -> usize {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
}

/// The segment files in `dir`, in log order (their names sort so).
fn segment_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("failed to list {}", dir.display())),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| layout::parse_segment_key(&format!("{}{n}", layout::SEGMENTS)).is_some())
        .collect();
    names.sort();
    Ok(names)
}

/// One line for one sealed entry.
fn describe(entry: &Value) -> String {
    // Strings without quotes and numbers as text, so that widths apply; `-` if absent.
    let s = |v: &Value| match v {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let seq = s(&entry["seq"]);
    let ev = &entry["event"];
    match entry["kind"].as_str().unwrap_or("?") {
        "http" => {
            let mut target = s(&ev["url"]["path"]);
            if let Some(q) = ev["url"]["query"].as_str() {
                target = format!("{target}?{q}");
            }
            let who = match ev["enduser"]["id"].as_str() {
                Some(id) => format!("{id} ({})", s(&ev["enduser"]["source"])),
                None => "-".to_owned(),
            };
            format!(
                "{seq:>5}  {:<5}  {:<6} {:>3}  {:<18} {:<44} {who}",
                "http",
                s(&ev["http"]["request"]["method"]),
                s(&ev["http"]["response"]["status_code"]),
                s(&ev["server"]["address"]),
                target,
            )
        }
        "start" => format!(
            "{seq:>5}  start  a sealer run begins: incarnation {}, sealer {}",
            s(&ev["incarnation"]),
            s(&ev["sealer_version"])
        ),
        "gap" => format!(
            "{seq:>5}  gap    {} events of {} never arrived (its seq {}..={}, {})",
            s(&ev["count"]),
            s(&entry["source"]["id"]),
            s(&ev["first_seq"]),
            s(&ev["last_seq"]),
            s(&ev["reason"])
        ),
        "source_end" if ev["clean"] == true => format!(
            "{seq:>5}  end    {} closed after its event {}",
            s(&entry["source"]["id"]),
            s(&ev["last_seq"])
        ),
        "source_end" => format!(
            "{seq:>5}  end    {} ended WITHOUT closing after its event {}: {}",
            s(&entry["source"]["id"]),
            s(&ev["last_seq"]),
            s(&ev["reason"])
        ),
        kind => format!("{seq:>5}  {kind:<5}  {ev}"),
    }
}

/// One kind of request the demo sends; `{token}` in `target` is the secret token.
struct Scenario {
    method: &'static str,
    host: &'static str,
    target: &'static str,
    /// Sent as `x-demo-user`, which the filter records as `enduser.id` (source `header`).
    user: Option<&'static str>,
    /// Sends `authorization: Bearer <secret>`, which the filter must never record.
    bearer: bool,
}

const fn scenario(
    method: &'static str,
    host: &'static str,
    target: &'static str,
    user: Option<&'static str>,
    bearer: bool,
) -> Scenario {
    Scenario {
        method,
        host,
        target,
        user,
        bearer,
    }
}

/// Played in order, round after round. The sample upstream answers 200, and 404 for
/// `/missing`.
#[rustfmt::skip]
const SCENARIOS: &[Scenario] = &[
    //       method    host                 path?query                                   x-demo-user                 bearer
    scenario("GET",    "shop.example.com",  "/",                                         None,                       false),
    scenario("GET",    "shop.example.com",  "/products/4711?ref=newsletter",             None,                       false),
    scenario("POST",   "shop.example.com",  "/cart/items",                               Some("alice@example.com"),  false),
    scenario("GET",    "api.example.com",   "/v2/orders?page=2&token={token}",           Some("alice@example.com"),  true),
    scenario("GET",    "shop.example.com",  "/missing",                                  None,                       false),
    scenario("DELETE", "api.example.com",   "/v2/orders/981",                            Some("bob@example.com"),    true),
    scenario("GET",    "api.example.com",   "/v2/inventory?sku=4711&token={token}",      None,                       false),
    scenario("PUT",    "admin.example.com", "/admin/config",                             Some("ops-bot"),            true),
    scenario("HEAD",   "shop.example.com",  "/products/4711",                            None,                       false),
    scenario("GET",    "admin.example.com", "/missing?next=/admin",                      Some("mallory@example.com"), false),
    scenario("POST",   "api.example.com",   "/v2/checkout?coupon=WINTER&token={token}",  Some("bob@example.com"),    true),
];

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "curl/8.5.0",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
];

/// Sample client traffic through the gateway, with secrets the audit log must not keep.
struct Traffic {
    agent: ureq::Agent,
    gateway: String,
    rng: u64,
    next: usize,
    /// The value of `token=` in query strings.
    token: String,
    /// The bearer token in `authorization` headers.
    bearer: String,
    /// Requests answered (any status).
    sent: u64,
    sent_with_token: u64,
}

impl Traffic {
    fn new(gateway_port: u16) -> Traffic {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let mut t = Traffic {
            agent: agent(),
            gateway: format!("http://127.0.0.1:{gateway_port}"),
            rng: nanos | 1,
            next: 0,
            token: String::new(),
            bearer: String::new(),
            sent: 0,
            sent_with_token: 0,
        };
        t.token = format!("tok_live_{:016x}", t.random());
        t.bearer = format!(
            "eyJhbGciOiJIUzI1NiJ9.{:016x}.{:016x}",
            t.random(),
            t.random()
        );
        t
    }

    /// xorshift64: random enough for sample traffic, no dependency.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn secrets(&self) -> [&str; 2] {
        [&self.token, &self.bearer]
    }

    /// A few requests: the next scenarios in turn, each with a random user agent.
    fn round(&mut self) -> anyhow::Result<()> {
        let n = 2 + self.random() % 3;
        for _ in 0..n {
            let scenario = &SCENARIOS[self.next % SCENARIOS.len()];
            self.next += 1;
            self.send(scenario)?;
        }
        Ok(())
    }

    fn send(&mut self, s: &Scenario) -> anyhow::Result<()> {
        let target = s.target.replace("{token}", &self.token);
        let ua = USER_AGENTS[(self.random() % USER_AGENTS.len() as u64) as usize];
        let mut req = self
            .agent
            .request(s.method, &format!("{}{target}", self.gateway))
            .set("host", s.host)
            .set("user-agent", ua);
        if let Some(user) = s.user {
            req = req.set(USER_HEADER, user);
        }
        if s.bearer {
            req = req.set("authorization", &format!("Bearer {}", self.bearer));
        }
        let result = match s.method {
            "POST" | "PUT" => req
                .set("content-type", "application/json")
                .send_string(r#"{"sku":"4711","quantity":1}"#),
            _ => req.call(),
        };
        match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                let _ = r.into_string();
            }
            Err(e) => bail!("{} {} through the gateway failed: {e}", s.method, s.target),
        }
        self.sent += 1;
        if target.contains("token=") {
            self.sent_with_token += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_each_kind_of_entry() {
        let start = json!({"seq": 0, "kind": "start",
            "event": {"incarnation": "00000000000000a1", "sealer_version": "0.1.0"}});
        assert_eq!(
            describe(&start),
            "    0  start  a sealer run begins: incarnation 00000000000000a1, sealer 0.1.0"
        );
        let http = json!({"seq": 7, "kind": "http", "source": {"id": "demo-gateway/01", "seq": 3},
            "event": {"http": {"request": {"method": "GET"}, "response": {"status_code": 404}},
                      "server": {"address": "shop.example.com"},
                      "url": {"path": "/missing", "query": "token=REDACTED"},
                      "enduser": {"id": "alice", "source": "header"}}});
        let line = describe(&http);
        assert!(
            line.starts_with("    7  http   GET    404  shop.example.com "),
            "{line}"
        );
        assert!(line.contains(" /missing?token=REDACTED "), "{line}");
        assert!(line.ends_with(" alice (header)"), "{line}");
        let gap = json!({"seq": 9, "kind": "gap", "source": {"id": "demo-gateway/01"},
            "event": {"count": 3, "first_seq": 4, "last_seq": 6, "reason": "sequence_jump"}});
        assert_eq!(
            describe(&gap),
            "    9  gap    3 events of demo-gateway/01 never arrived (its seq 4..=6, sequence_jump)"
        );
    }

    #[test]
    fn counts_only_this_gateways_http_entries() {
        let store = StoreLocation::Dir(PathBuf::from("/nonexistent"));
        let mut watch = Watcher::new(&store, Path::new("sealer"), Path::new("keys")).unwrap();
        let http = |source: &str, query: &str| {
            json!({"kind": "http", "source": {"id": source, "seq": 1},
                   "event": {"url": {"path": "/", "query": query}}})
        };
        watch.count(&http("demo-gateway/01", "page=2&token=REDACTED"));
        watch.count(&http("demo-gateway/02", "token=abc"));
        watch.count(&http("other-gateway/01", "token=REDACTED"));
        watch.count(&json!({"kind": "gap", "event": {}}));
        assert_eq!(
            (
                watch.tally.http,
                watch.tally.redacted_tokens,
                watch.tally.gaps
            ),
            (2, 1, 1)
        );
    }
}
