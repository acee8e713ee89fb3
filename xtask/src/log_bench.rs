//! `cargo xtask bench log [--entries N] [--baseline SEALER] [--keep]`: what a log costs as it
//! grows (issue 15's targets). The store is removed at the end unless `--keep`.
//!
//! One release sealer (`--index false`, as the gateway sidecar runs) seals N/10 access
//! events, then up to 9N/10, then N (default N = 10,000,000). Measured in the same run:
//!
//! - **restart**: from spawning `sealer serve` on the stopped sealer's store and data
//!   directory to `/readyz` answering 200, at N/10 and at N entries (best of 3 each), and
//!   their ratio;
//! - **full verification** (`sealer verify` with the HMAC key) of the N/10-entry log and of
//!   the 9N/10-entry log: entries per second, from a cold page cache, and of the 9N/10-entry
//!   log again with its pages in memory (best of 3), which measures the verifier rather than
//!   the disk; with `--baseline SEALER` (another commit's release build), that binary verifies
//!   the same store in turn with this one (best of 3 each), and the ratio is reported;
//! - **incremental verification** (`sealer verify --checkpoint` the checkpoint saved at
//!   9N/10) of the last N/10 entries, against the full verification of the fresh N/10 log;
//!   these start with the store's pages dropped from the page cache, best of 3 each;
//! - **store overhead**: bytes per entry of segments, tiles and checkpoints.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use harness::Process;
use harness::sealer::Serve;

use crate::query_bench::{BATCH, dir_size, event, json};
use crate::tasks;

struct Bench {
    sealer: PathBuf,
    dir: PathBuf,
    port: u16,
    total: u64,
}

impl Bench {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&self) -> anyhow::Result<Process> {
        Serve::new(&self.sealer, self.port)
            .arg("--keys")
            .arg(self.dir.join("keys"))
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args([
                "--index",
                "false",
                "--checkpoint-interval",
                "10s",
                "--segment-max-age",
                "1s",
                "--segment-max-bytes",
                "33554432",
                "--max-batch-events",
                "10000",
            ])
            .patience(Duration::from_secs(600))
            .start(&self.dir.join("sealer.log"))
    }

    /// Seal events `from..to` and wait until every entry is stored; stop the sealer.
    fn seal(&self, from: u64, to: u64) -> anyhow::Result<()> {
        let mut guard = self.spawn()?;
        let batches = (to - from).div_ceil(BATCH);
        let next = Arc::new(AtomicU64::new(0));
        let began = Instant::now();
        let mut threads = Vec::new();
        for _ in 0..2 {
            let (next, url, total) = (
                next.clone(),
                format!("{}/v1/events", self.base()),
                self.total,
            );
            threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
                let agent = ureq::AgentBuilder::new().build();
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= batches {
                        return Ok(());
                    }
                    let first = from + b * BATCH;
                    let body: String = (first..(first + BATCH).min(to))
                        .map(|i| event(i, total) + "\n")
                        .collect();
                    // A full spool answers 503 (and may close the connection before the
                    // body is read): wait and send again; the sealer drops what it already
                    // sealed (same source and numbers).
                    let mut tries = 0;
                    while let Err(e) = agent
                        .post(&url)
                        .set("Content-Type", "application/x-ndjson")
                        .send_string(&body)
                    {
                        tries += 1;
                        if tries > 600 {
                            return Err(e.into());
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }));
        }
        for t in threads {
            t.join()
                .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        }
        loop {
            let v = json(&format!("{}/readyz", self.base()))?;
            if v["upload_lag_entries"] == 0 {
                break;
            }
            if began.elapsed() > Duration::from_secs(3600) {
                bail!("entries not stored within an hour: {v}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!(
            "  sealed events {from}..{to} in {:.1} s",
            began.elapsed().as_secs_f64()
        );
        guard.stop()?;
        Ok(())
    }

    /// Seconds from spawning the sealer to `/readyz` answering 200, best of 3.
    fn restart(&self) -> anyhow::Result<f64> {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let began = Instant::now();
            let mut guard = self.spawn()?;
            let url = format!("{}/readyz", self.base());
            loop {
                if ureq::get(&url).call().is_ok() {
                    break;
                }
                if began.elapsed() > Duration::from_secs(600) {
                    bail!("{url} not ready within 10 minutes");
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            best = best.min(began.elapsed().as_secs_f64());
            guard.stop()?;
        }
        Ok(best)
    }

    /// `sealer verify` with `extra`, on a cold page cache (the store's files dropped from it
    /// first, as the sealer itself drops its WAL pages): the entries verified and the seconds
    /// taken.
    fn verify(&self, extra: &[&str]) -> anyhow::Result<(u64, f64)> {
        drop_cached(&self.dir.join("data/store"));
        self.verify_cached(extra)
    }

    /// [`Bench::verify`] three times: the entries verified and the fewest seconds taken. The
    /// disk's speed varies from run to run more than the two 1 M-entry verifications, fresh
    /// and incremental, differ.
    fn verify_best_of_3(&self, extra: &[&str]) -> anyhow::Result<(u64, f64)> {
        let mut best = self.verify(extra)?;
        for _ in 0..2 {
            best.1 = best.1.min(self.verify(extra)?.1);
        }
        Ok(best)
    }

    /// `sealer verify` with `extra`, the store as it is in the page cache.
    fn verify_cached(&self, extra: &[&str]) -> anyhow::Result<(u64, f64)> {
        self.verify_cached_with(&self.sealer, extra)
    }

    /// [`Bench::verify_cached`] with another sealer binary.
    fn verify_cached_with(&self, sealer: &Path, extra: &[&str]) -> anyhow::Result<(u64, f64)> {
        let keys = self.dir.join("keys");
        let began = Instant::now();
        let out = Command::new(sealer)
            .arg("verify")
            .arg("--store")
            .arg(self.dir.join("data/store"))
            .arg("--public-key")
            .arg(keys.join("signing.pub"))
            .arg("--hmac-key")
            .arg(keys.join("hmac.key"))
            .arg("--json")
            .args(extra)
            .output()?;
        let seconds = began.elapsed().as_secs_f64();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| String::from_utf8_lossy(&out.stderr).into_owned())?;
        if report["ok"] != true {
            bail!("verification failed: {report}");
        }
        let entries = report["entries"].as_u64().unwrap_or(0);
        let from = report["verified_from"].as_u64().unwrap_or(0);
        Ok((entries - from, seconds))
    }
}

/// Write out everything not yet on the disk, then ask the kernel to drop the cached pages of
/// every file under `dir`, so each verification reads the store from disk alike.
fn drop_cached(dir: &Path) {
    use std::os::fd::AsRawFd;
    // Dirty pages are not dropped, and their writeback would compete with the reads: the
    // store was just written, so first everything goes to the disk.
    // SAFETY: sync has no arguments and no memory effects.
    unsafe { libc::sync() };
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(f) = std::fs::File::open(&path) {
                // SAFETY: a valid open file descriptor; the advice has no memory effects.
                unsafe {
                    libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
                }
            }
        }
    }
}

pub fn run(args: &[String]) -> anyhow::Result<u8> {
    let mut entries: u64 = 10_000_000;
    let mut baseline: Option<PathBuf> = None;
    let mut keep = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--entries" => entries = tasks::number_after(a, &mut it)?.max(10 * BATCH),
            "--keep" => keep = true,
            "--baseline" => {
                let path = it
                    .next()
                    .context("--baseline needs the path of a sealer binary")?;
                baseline = Some(std::fs::canonicalize(path).with_context(|| {
                    format!("--baseline {path}: no such sealer binary (build an earlier commit with `cargo build --release -p sealer-sidecar --bin sealer` and give its target/release/sealer)")
                })?);
            }
            other => bail!("unknown option {other:?}: use --entries N, --baseline SEALER, --keep"),
        }
    }
    let sealer = tasks::build_sealer(true)?;
    let dir = tasks::scratch_dir("bench-log")?;
    tasks::run(
        Command::new(&sealer)
            .args(["keygen", "--origin", "bench.example/log", "--out"])
            .arg(dir.join("keys")),
    )?;
    let b = Bench {
        sealer,
        dir,
        port: harness::free_port(),
        total: entries,
    };
    let small = entries / 10;
    eprintln!("log bench: {entries} entries, measured at {small} and {entries}");
    b.seal(0, small)?;
    let restart_small = b.restart()?;
    let (full_small_n, full_small_s) = b.verify_best_of_3(&[])?;

    b.seal(small, entries - small)?;
    let trusted = b.dir.join("trusted.note");
    let trusted_arg = trusted.to_str().context("path")?.to_owned();
    let (full_big_n, full_big_s) = b.verify(&["--save-checkpoint", &trusted_arg])?;
    // Again, with the store's pages in memory (best of 3): what the verifier's CPU does,
    // without the disk.
    // With --baseline, the two binaries take turns, so that both see the same machine.
    let (mut warm_big_s, mut warm_baseline_s) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        warm_big_s = warm_big_s.min(b.verify_cached(&[])?.1);
        if let Some(other) = &baseline {
            warm_baseline_s = warm_baseline_s.min(b.verify_cached_with(other, &[])?.1);
        }
    }

    b.seal(entries - small, entries)?;
    let restart_big = b.restart()?;
    let (incr_n, incr_s) = b.verify_best_of_3(&["--checkpoint", &trusted_arg])?;

    let store = b.dir.join("data/store");
    let size = |sub: &str| dir_size(&store.join(sub));
    let (segments, tiles, checkpoints) = (size("segments"), size("tile"), size("checkpoints"));
    let log_entries = full_big_n + incr_n;
    let per = |bytes: u64| bytes as f64 / log_entries as f64;

    println!("\nlog costs, release build, 2 cores, --index false; same run:");
    println!(
        "  restart to ready: {:.3} s at {small} entries, {:.3} s at {log_entries} entries; ratio {:.2} (goal: ≤ 1 s and ≤ 1.5)",
        restart_small,
        restart_big,
        restart_big / restart_small
    );
    println!(
        "  full verification: {:.0} entries/s ({full_small_n} entries in {full_small_s:.2} s), {:.0} entries/s ({full_big_n} entries in {full_big_s:.2} s) (goal: ≥ 2,000,000)",
        full_small_n as f64 / full_small_s,
        full_big_n as f64 / full_big_s
    );
    println!(
        "  full verification, store in the page cache: {:.0} entries/s ({full_big_n} entries in {warm_big_s:.2} s, best of 3) (goal: ≥ 2,000,000)",
        full_big_n as f64 / warm_big_s
    );
    if let Some(other) = &baseline {
        println!(
            "  the same with --baseline {}: {:.0} entries/s ({warm_baseline_s:.2} s, best of 3); this build is {:.2}× as fast",
            other.display(),
            full_big_n as f64 / warm_baseline_s,
            warm_baseline_s / warm_big_s
        );
    }
    println!(
        "  incremental verification of the last {incr_n} entries of {log_entries}: {incr_s:.2} s, {:.2}× the full verification of the fresh {full_small_n}-entry log (goal: ≤ 1.2)",
        incr_s / full_small_s
    );
    println!(
        "  store per entry: segments {:.1} B, tiles {:.1} B ({:.2} %), checkpoints {:.1} B",
        per(segments),
        per(tiles),
        100.0 * tiles as f64 / segments as f64,
        per(checkpoints)
    );
    if keep {
        println!("store and data kept in {}", b.dir.display());
    } else {
        // Several GiB at 10 M entries.
        std::fs::remove_dir_all(&b.dir)
            .with_context(|| format!("failed to remove {}", b.dir.display()))?;
    }
    Ok(0)
}
