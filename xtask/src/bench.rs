//! `cargo xtask bench [--seconds N] [--connections N] [--batch N] [--keep] [--baseline SEALER]
//! [--rounds N]`:
//! durable ingest over HTTP on loopback, then offline verification, of ~400-byte access events,
//! on the release build.
//!
//! `--baseline SEALER` runs another `sealer` binary (an earlier commit's release build) through
//! the same load in the same run, alternating with this build, and prints the ratios: a change
//! is shown not to slow ingest or verification on the same machine at the same moment. Runs of
//! 10 s spread by more than 5 % here, so `--rounds N` repeats the whole comparison N times and
//! reports each round's ratios and their median; the table then shows each column's median
//! round (and the largest peak RSS of all rounds). Every other round runs the baseline first.
//!
//! Reported: events/s acknowledged (each acknowledgement means fsync'd in the WAL); how long
//! after the load the sealer took to store every entry under a checkpoint and index it, and the
//! rate counted until then ("sustained"), with the CPU per event of all that work; entries/s
//! verified by `sealer verify` (all MACs checked); the sealer's peak RSS, the catching up
//! included; and, measured in the same run for scale, SHA-256 throughput over the same event
//! bytes on one core.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use harness::sealer::Serve;

use crate::tasks;

/// One ingest line of about 400 bytes, its event in canonical form as the audit filter writes
/// it; `SRC` is replaced by a 24-byte source id.
const TEMPLATE: &str = r#"{"source":{"id":"SRC","seq":SEQ},"event":{"client":{"address":"203.0.113.7","port":51234},"duration_ns":1830000,"enduser":{"id":"alice@example.com","source":"jwt"},"http":{"request":{"method":"GET"},"response":{"body":{"size":1834},"status_code":200}},"server":{"address":"shop.example.com"},"start_time":"2026-11-28T07:00:00.123456789Z","url":{"path":"/products/4711","scheme":"https"},"user_agent":{"original":"okhttp/4.12"}}}"#;

/// The load: how long, how many connections, how many events per request.
pub struct LoadOptions {
    pub keep: bool,
    /// Another sealer binary to measure side by side (`--baseline`).
    pub baseline: Option<std::path::PathBuf>,
    pub seconds: u64,
    pub connections: usize,
    pub batch: usize,
    /// How many times to run every column (`--rounds`), alternating.
    pub rounds: usize,
}

pub fn parse(args: &[String]) -> anyhow::Result<LoadOptions> {
    let mut o = LoadOptions {
        keep: false,
        baseline: None,
        seconds: 10,
        connections: 4,
        batch: 2000,
        rounds: 1,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || tasks::number_after(a, &mut it);
        match a.as_str() {
            "--seconds" => o.seconds = value()?,
            "--connections" => o.connections = value()? as usize,
            "--batch" => o.batch = value()? as usize,
            "--rounds" => o.rounds = (value()? as usize).max(1),
            "--keep" => o.keep = true,
            "--baseline" => {
                let path = it
                    .next()
                    .context("--baseline needs the path of a sealer binary")?;
                o.baseline = Some(std::fs::canonicalize(path).with_context(|| {
                    format!("--baseline {path}: no such sealer binary (build an earlier commit with `cargo build --release -p sealer-sidecar` and give its target/release/sealer)")
                })?);
            }
            other => bail!(
                "unknown bench option {other:?} (expected --seconds N, --connections N, --batch N, --keep, --baseline SEALER, --rounds N)"
            ),
        }
    }
    Ok(o)
}

/// A batch body for source `id`: lines with seq 1..=n.
fn body(id: &str, n: usize) -> String {
    let line = TEMPLATE.replace("SRC", id);
    let mut out = String::with_capacity((line.len() + 8) * n);
    for seq in 1..=n {
        out.push_str(&line.replace("SEQ", &seq.to_string()));
        out.push('\n');
    }
    out
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Per-core rates of the CPU stages of ingest, in-process: validating an ingest line into
/// canonical event JSON (done by the HTTP workers), by the fast path (the event is already
/// canonical: checked in one pass) and by the slow path (parsed and re-serialized); and
/// sealing it (done by the one writer).
fn stage_rates(line: &[u8]) -> (f64, f64, f64) {
    use auditlog::entry::{EntryKind, EntrySource};
    let n = 200_000;
    let limits = auditlog::event::Limits::default();
    let start = Instant::now();
    let mut json = Vec::new();
    for _ in 0..n {
        let parsed = auditlog::event::IngestLine::parse(line, &limits).expect("valid template");
        json = parsed.event.canonical_json();
    }
    let slow_rate = n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..n {
        let checked = auditlog::event::canonical::check(line, &limits).expect("canonical template");
        json.clear();
        json.extend_from_slice(checked.event);
    }
    let fast_rate = n as f64 / start.elapsed().as_secs_f64();
    let mut sealer =
        auditlog::seal::LogSealer::new("bench.example/log", auditlog::chain::MacKey::new(&[7; 32]));
    let source = EntrySource {
        id: "bench/c0/000000000000000".into(),
        seq: Some(1),
    };
    let at = auditlog::timestamp::Timestamp::now();
    // As the writer seals a request's batch: staged, and sealed side by side.
    let (mut out, mut leaves) = (Vec::with_capacity(1 << 21), Vec::with_capacity(4096));
    let start = Instant::now();
    for i in 0..n {
        if i % 2000 == 0 {
            sealer.seal_staged(&mut out, &mut leaves);
            out.clear();
            leaves.clear();
        }
        sealer.stage(
            &mut out,
            &mut leaves,
            EntryKind::Http,
            at,
            Some(&source),
            &json,
        );
    }
    sealer.seal_staged(&mut out, &mut leaves);
    let seal_rate = n as f64 / start.elapsed().as_secs_f64();
    (fast_rate, slow_rate, seal_rate)
}

/// Leaf hashes per second over `event` on this thread, with the log's own hashing code.
fn sha256_rate(event: &[u8]) -> f64 {
    let n = 200_000;
    let start = Instant::now();
    let mut acc = 0u8;
    for _ in 0..n {
        acc ^= auditlog::merkle::leaf_hash(event)[0];
    }
    std::hint::black_box(acc);
    n as f64 / start.elapsed().as_secs_f64()
}

pub fn run(args: &[String]) -> anyhow::Result<u8> {
    match args.first().map(String::as_str) {
        Some("proxy") => return crate::proxy_bench::run(&args[1..]),
        Some("hostcalls") => return crate::proxy_bench::run_host_calls(&args[1..]),
        Some("s3") => return crate::s3_bench::run(&args[1..]),
        Some("query") => return crate::query_bench::run(&args[1..]),
        Some("log") => return crate::log_bench::run(&args[1..]),
        Some("k8s") => return crate::k8s_bench::run(&args[1..]),
        _ => {}
    }
    let o = parse(args)?;
    let sealer_bin = tasks::build_sealer(true)?;
    // The sealer as it ships (the query index on), then as the gateway sidecar runs it
    // (`--index false`), one after the other in the same run; with a baseline, each setting
    // runs on both binaries back to back.
    let mut rounds: Vec<Vec<(&str, Ingest)>> = Vec::new();
    // Every column's directory stays until all have run (see `Scratch`).
    let mut scratch = Scratch::default();
    for round in 1..=o.rounds {
        if o.rounds > 1 {
            eprintln!("round {round} of {}", o.rounds);
        }
        let mut columns: Vec<(&str, Ingest)> = Vec::new();
        for (label, extra) in [
            ("index on (default)", &[][..]),
            ("--index false", &["--index", "false"][..]),
        ] {
            match &o.baseline {
                None => columns.push((label, ingest(&o, &sealer_bin, extra, &mut scratch)?)),
                // Every other round runs the baseline first: whatever a column leaves behind
                // (page cache, freed memory, disk work) then falls on each build in turn.
                Some(baseline) if round % 2 == 0 => {
                    let base = ingest(&o, baseline, extra, &mut scratch)?;
                    columns.push((label, ingest(&o, &sealer_bin, extra, &mut scratch)?));
                    columns.push(("  baseline", base));
                }
                Some(baseline) => {
                    columns.push((label, ingest(&o, &sealer_bin, extra, &mut scratch)?));
                    columns.push(("  baseline", ingest(&o, baseline, extra, &mut scratch)?));
                }
            }
        }
        rounds.push(columns);
    }
    scratch.remove_all()?;
    let columns = median_columns(rounds.clone());
    let sample = TEMPLATE
        .replace("SRC", "bench/c0/000000000000000")
        .replace("SEQ", "1");
    let hash_rate = sha256_rate(sample.as_bytes());
    let (fast_rate, slow_rate, seal_rate) = stage_rates(sample.as_bytes());

    println!(
        "\nresults ({} s, {} connections, {} events per batch, event ≈ {} bytes):",
        o.seconds,
        o.connections,
        o.batch,
        sample.len()
    );
    if let Some(baseline) = &o.baseline {
        println!("  baseline: {}", baseline.display());
    }
    print!("  {:<36}", "");
    for (label, _) in &columns {
        print!(" {label:>18}");
    }
    println!();
    let row = |name: &str, f: &dyn Fn(&Ingest) -> String| {
        print!("  {name:<36}");
        for (_, ingest) in &columns {
            print!(" {:>18}", f(ingest));
        }
        println!();
    };
    row("durable ingest, events/s", &|r| format!("{:.0}", r.rate()));
    row("events acknowledged", &|r| r.events.to_string());
    row("sealer CPU per event", &|r| {
        format!("{:.2} µs", r.cpu_per_event())
    });
    row("all stored and indexed, s after", &|r| {
        format!("{:.2}", r.catch_up_seconds)
    });
    row("sustained, events/s (till caught up)", &|r| {
        format!("{:.0}", r.sustained_rate())
    });
    row("sealer CPU per event, caught up", &|r| {
        format!("{:.2} µs", r.total_cpu_per_event())
    });
    row("sealer peak RSS", &|r| {
        format!("{:.1} MiB", r.rss_kib as f64 / 1024.0)
    });
    row("verification, entries/s (every MAC)", &|r| {
        format!("{:.0}", r.verify_rate)
    });
    row("store size", &|r| format!("{} MiB", r.store_bytes >> 20));
    if o.baseline.is_some() {
        for (i, columns) in rounds.iter().enumerate() {
            if o.rounds > 1 {
                println!("  this build ÷ baseline, round {}:", i + 1);
            } else {
                println!("  this build ÷ baseline, same run:");
            }
            for pair in columns.chunks(2) {
                let [(label, this), (_, base)] = pair else {
                    continue;
                };
                println!(
                    "    {label:<20} ingest {:.2}, sustained {:.2}, verification {:.2}, CPU per event {:.2} ({:.2} caught up), peak RSS {:.1} MiB ({:.2})",
                    this.rate() / base.rate(),
                    this.sustained_rate() / base.sustained_rate(),
                    this.verify_rate / base.verify_rate,
                    this.cpu_per_event() / base.cpu_per_event(),
                    this.total_cpu_per_event() / base.total_cpu_per_event(),
                    this.rss_kib as f64 / 1024.0,
                    this.rss_kib as f64 / base.rss_kib.max(1) as f64
                );
            }
        }
        if o.rounds > 1 {
            println!(
                "  this build ÷ baseline, median of the {} rounds' ratios:",
                o.rounds
            );
            for (c, (label, _)) in rounds[0].iter().enumerate().step_by(2) {
                let ratio = |f: &dyn Fn(&Ingest) -> f64| {
                    median(rounds.iter().map(|r| f(&r[c].1) / f(&r[c + 1].1)).collect())
                };
                println!(
                    "    {label:<20} ingest {:.2}, sustained {:.2}, verification {:.2}, CPU per event {:.2} ({:.2} caught up)",
                    ratio(&Ingest::rate),
                    ratio(&Ingest::sustained_rate),
                    ratio(&|r| r.verify_rate),
                    ratio(&Ingest::cpu_per_event),
                    ratio(&Ingest::total_cpu_per_event)
                );
            }
        }
    }
    println!("  in-process, one core, same run:");
    println!(
        "    validate, fast path     {fast_rate:>10.0} events/s  (HTTP workers: the event is already canonical)"
    );
    println!(
        "    validate + canonicalize {slow_rate:>10.0} events/s  (HTTP workers: any other line)"
    );
    println!("    seal (hash, chain, MAC) {seal_rate:>10.0} events/s  (the one writer thread)");
    println!("    SHA-256 of the event    {hash_rate:>10.0} events/s");
    Ok(0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Each column's run of median ingest rate over the rounds, with the largest peak RSS any
/// round of that column reached.
fn median_columns(mut rounds: Vec<Vec<(&str, Ingest)>>) -> Vec<(&str, Ingest)> {
    let width = rounds[0].len();
    let mut out = Vec::with_capacity(width);
    for c in (0..width).rev() {
        let mut runs: Vec<(&str, Ingest)> = rounds.iter_mut().map(|r| r.remove(c)).collect();
        let peak = runs.iter().map(|(_, r)| r.rss_kib).max().unwrap_or(0);
        runs.sort_by(|a, b| a.1.rate().total_cmp(&b.1.rate()));
        let (label, mut middle) = runs.swap_remove(runs.len() / 2);
        middle.rss_kib = peak;
        out.push((label, middle));
    }
    out.reverse();
    out
}

/// What one ingest run measured.
#[derive(Clone)]
struct Ingest {
    events: u64,
    seconds: f64,
    cpu_seconds: f64,
    /// From the end of the load until everything acknowledged was stored and indexed.
    catch_up_seconds: f64,
    /// The sealer's CPU time over the load and the catching up.
    cpu_total: f64,
    rss_kib: u64,
    verify_rate: f64,
    store_bytes: u64,
}

impl Ingest {
    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds
    }

    fn cpu_per_event(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.events.max(1) as f64
    }

    /// Events per second until they were all stored and indexed: the rate the sealer keeps up
    /// for good, with no work left behind.
    fn sustained_rate(&self) -> f64 {
        self.events as f64 / (self.seconds + self.catch_up_seconds)
    }

    /// CPU per event, the catching up included: all the work an event costs.
    fn total_cpu_per_event(&self) -> f64 {
        self.cpu_total * 1e6 / self.events.max(1) as f64
    }
}

/// The columns' directories. Each is emptied once its column has run, and removed only once
/// every column has run.
///
/// Removing a store frees tens of thousands of inodes at once. On ext4 without a journal (this
/// machine's root filesystem), the kernel then passes over every inode freed in the last 60 s
/// (360 s while its inode table block is dirty) each time it allocates one, checking them one by
/// one (`recently_deleted` in fs/ext4/ialloc.c). Removed between columns, a column's store made
/// every file the next column created several times dearer, and the build that creates more
/// files (tiles) paid for it most: `perf` showed the sealer's time in `recently_deleted`.
/// Truncating the files instead gives the disk space back (a column's store is 2 to 4 GiB) and
/// frees no inode.
#[derive(Default)]
struct Scratch {
    dirs: Vec<std::path::PathBuf>,
}

impl Scratch {
    /// Give back the space of `dir`'s files, keeping the files.
    fn empty(dir: &Path) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
            let path = entry?.path();
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                Self::empty(&path)?;
            } else if meta.is_file() && meta.len() > 0 {
                use std::os::unix::fs::PermissionsExt;
                // Stored objects are read-only.
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
                std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&path)
                    .with_context(|| format!("empty {}", path.display()))?;
            }
        }
        Ok(())
    }

    fn remove_all(self) -> anyhow::Result<()> {
        for dir in self.dirs {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("failed to remove {}", dir.display()))?;
        }
        Ok(())
    }
}

/// Start a sealer with `extra` arguments, load it, stop it, verify its store, and give its
/// directory to `scratch`.
fn ingest(
    o: &LoadOptions,
    sealer_bin: &Path,
    extra: &[&str],
    scratch: &mut Scratch,
) -> anyhow::Result<Ingest> {
    let dir = tasks::scratch_dir("bench")?;
    tasks::run(
        Command::new(sealer_bin)
            .args(["keygen", "--origin", "bench.example/log", "--out"])
            .arg(dir.join("keys")),
    )?;
    let port = harness::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut sealer = Serve::new(sealer_bin, port)
        .arg("--keys")
        .arg(dir.join("keys"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(extra)
        .env("SEALER_LOG", "warn")
        .start(&dir.join("sealer.log"))?;
    let pid = sealer.pid().context("the sealer runs")?;
    let cpu_before = crate::process::cpu_seconds(pid);
    let result = drive(o, &base, pid);
    let cpu_seconds = crate::process::cpu_seconds(pid) - cpu_before;
    let catch_up = result.as_ref().ok().map(|_| caught_up(&base));
    let cpu_total = crate::process::cpu_seconds(pid) - cpu_before;
    let rss_after = peak_rss_kib(pid);
    sealer.stop()?;
    let (events, seconds, rss_kib) = result?;
    let catch_up_seconds = catch_up.expect("measured after a load that ran")?;

    let store = dir.join("data/store");
    let start = Instant::now();
    let out = Command::new(sealer_bin)
        .arg("verify")
        .arg("--store")
        .arg(&store)
        .arg("--public-key")
        .arg(dir.join("keys/signing.pub"))
        .arg("--hmac-key")
        .arg(dir.join("keys/hmac.key"))
        .arg("--json")
        .output()?;
    let verify_secs = start.elapsed().as_secs_f64();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "verify printed no report: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if report["ok"] != true {
        bail!(
            "the benchmark's store failed verification: {}",
            report["problems"]
        );
    }
    let entries = report["entries"].as_u64().unwrap_or(0);
    let store_bytes = dir_size(&store);
    if o.keep {
        println!("store and log kept in {}", dir.display());
    } else {
        Scratch::empty(&dir)?;
        scratch.dirs.push(dir);
    }
    Ok(Ingest {
        events,
        seconds,
        cpu_seconds,
        catch_up_seconds,
        cpu_total,
        rss_kib: rss_after.or(rss_kib).unwrap_or(0),
        verify_rate: entries as f64 / verify_secs,
        store_bytes,
    })
}

/// Seconds from the end of the load until every entry the sealer acknowledged is stored under
/// a checkpoint and, with the index on, indexed (`GET /v1/status`). The acknowledgement rate
/// alone leaves out the work a build defers past the load: uploading, tiles, the index.
fn caught_up(base: &str) -> anyhow::Result<f64> {
    const LIMIT: Duration = Duration::from_secs(300);
    let start = Instant::now();
    let agent = ureq::AgentBuilder::new().build();
    loop {
        let status: serde_json::Value = serde_json::from_str(
            &agent
                .get(&format!("{base}/v1/status"))
                .call()
                .context("GET /v1/status after the load")?
                .into_string()?,
        )?;
        let size = |name: &str| status[name].as_u64();
        let log = size("log_size").context("/v1/status has no log_size")?;
        let stored = size("checkpoint_size").context("/v1/status has no checkpoint_size")?;
        // `null` when the index is off.
        let indexed = size("indexed_size").unwrap_or(u64::MAX);
        if stored >= log && indexed >= log {
            return Ok(start.elapsed().as_secs_f64());
        }
        if start.elapsed() > LIMIT {
            bail!(
                "the sealer had not caught up {} s after the load: {log} entries sealed, \
                 {stored} stored under a checkpoint, {indexed} indexed",
                LIMIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Send batches from `connections` threads for `seconds`; returns (events acked, seconds, peak RSS).
///
/// All request bodies are built before the clock starts (a fresh source per batch, so no event
/// is a replay), so the load generator spends its share of the two cores on sending only.
pub fn drive(o: &LoadOptions, base: &str, pid: u32) -> anyhow::Result<(u64, f64, Option<u64>)> {
    const PLACEHOLDER: &str = "bench/cX/XXXXXXXXXXXXXXX";
    let template = body(PLACEHOLDER, o.batch);
    // Enough for 1 M events/s (≈ 4.3 GB of bodies for 10 s).
    let batches = (o.seconds as usize * 1_000_000 / o.batch).max(1);
    eprintln!("building {batches} request bodies of {} events…", o.batch);
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..batches)
            .map(|n| template.replace(PLACEHOLDER, &format!("bench/c{}/{:015}", n % 10, n)))
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..o.connections {
        let (acked, stop, next, bodies) =
            (acked.clone(), stop.clone(), next.clone(), bodies.clone());
        let url = format!("{base}/v1/events");
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let agent = ureq::AgentBuilder::new().build();
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(batch) = bodies.get(i) else { break };
                let r = agent
                    .post(&url)
                    .set("Content-Type", "application/x-ndjson")
                    .send_string(batch)?;
                let ack: serde_json::Value = serde_json::from_str(&r.into_string()?)?;
                acked.fetch_add(ack["sealed"].as_u64().unwrap_or(0), Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    let mut rss = None;
    while start.elapsed() < Duration::from_secs(o.seconds)
        && threads.iter().any(|t| !t.is_finished())
    {
        std::thread::sleep(Duration::from_millis(100));
        rss = peak_rss_kib(pid).or(rss);
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("load thread panicked"))??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok((
        acked.load(Ordering::Relaxed),
        elapsed,
        peak_rss_kib(pid).or(rss),
    ))
}
