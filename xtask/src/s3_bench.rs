//! `cargo xtask bench s3 [--seconds N] [--rounds N] [--connections N] [--batch N]`: durable
//! ingest with the S3 Object Lock store against SeaweedFS 4.48 on loopback, side by side with
//! the local store in the same run, and the upload lag under that load.
//!
//! Each round runs the release sealer twice with the same load (`bench`'s load generator):
//! once with the local store, once with `s3://bench/roundN`. While the load runs, the
//! sealer's `sealer_upload_lag_entries` (sealed, not yet under a stored checkpoint) is sampled
//! every 100 ms; after it, the time until the lag is 0 (everything in the store) is measured.
//! Then both stores are verified.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use harness::sealer::Serve;
use harness::seaweedfs::SeaweedFs;

use crate::bench::{self, LoadOptions};
use crate::process;
use crate::{tasks, tools};

const BUCKET: &str = "bench";

/// One measured run of the sealer under load.
struct Measured {
    events: u64,
    seconds: f64,
    /// CPU time of the sealer and of SeaweedFS during the load, per event, in µs.
    sealer_cpu_us: f64,
    seaweedfs_cpu_us: f64,
    lag_max: u64,
    lag_mean: f64,
    drain_seconds: f64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds
    }
}

pub fn run(args: &[String]) -> anyhow::Result<u8> {
    let mut rounds = 2;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => rounds = tasks::number_after(a, &mut it)?.max(1),
            _ => rest.push(a.clone()),
        }
    }
    let load = bench::parse(&rest)?;
    let sealer = tasks::build_sealer(true)?;
    let weed = tools::seaweedfs()?;
    let dir = tasks::scratch_dir("bench-s3")?;
    tasks::run(
        Command::new(&sealer)
            .args(["keygen", "--origin", "bench.example/s3", "--out"])
            .arg(dir.join("keys")),
    )?;
    let mut server = SeaweedFs::launch(&weed, &dir.join("seaweedfs"))?;
    let env = server.aws_env();
    tasks::run(
        Command::new(&sealer)
            .args(["create-bucket", "--store", &format!("s3://{BUCKET}")])
            .arg("--s3-path-style")
            .envs(env.iter().cloned()),
    )?;

    let mut results: Vec<(Measured, Measured)> = Vec::new();
    for round in 1..=rounds {
        let local_store = dir.join(format!("local-{round}"));
        eprintln!("round {round}: local store …");
        let local = measure(
            &sealer,
            server.pid(),
            &dir,
            &local_store.display().to_string(),
            &[],
            &env,
            &load,
        )?;
        eprintln!("round {round}: S3 store (SeaweedFS) …");
        let s3_store = format!("s3://{BUCKET}/round{round}");
        let s3 = measure(
            &sealer,
            server.pid(),
            &dir,
            &s3_store,
            &["--s3-path-style", "--s3-retention-days", "1"],
            &env,
            &load,
        )?;
        verify(&sealer, &dir, &local_store.display().to_string(), &env)?;
        verify(&sealer, &dir, &s3_store, &env)?;
        results.push((local, s3));
    }
    server.stop();

    println!(
        "\ndurable ingest, {} s per run, {} connections, {} events per batch; SeaweedFS 4.48 on \
         loopback; same machine, same run:",
        load.seconds, load.connections, load.batch
    );
    println!(
        "  {:<7} {:>12} {:>12} {:>7}   {:>13} {:>13}   {:>14}",
        "round", "local ev/s", "S3 ev/s", "S3÷loc", "S3 lag max", "S3 lag mean", "S3 drain after"
    );
    for (i, (local, s3)) in results.iter().enumerate() {
        println!(
            "  {:<7} {:>12.0} {:>12.0} {:>7.2}   {:>13} {:>13.0}   {:>12.2} s",
            i + 1,
            local.rate(),
            s3.rate(),
            s3.rate() / local.rate(),
            s3.lag_max,
            s3.lag_mean,
            s3.drain_seconds
        );
    }
    for (i, (local, s3)) in results.iter().enumerate() {
        println!(
            "  round {} local store: lag max {} entries, mean {:.0}, drained {:.2} s after the load",
            i + 1,
            local.lag_max,
            local.lag_mean,
            local.drain_seconds
        );
        println!(
            "  round {} CPU per event: sealer {:.2} µs (local) vs {:.2} µs (S3); SeaweedFS {:.2} µs \
             (S3 run; {:.2} µs while the local run went on)",
            i + 1,
            local.sealer_cpu_us,
            s3.sealer_cpu_us,
            s3.seaweedfs_cpu_us,
            local.seaweedfs_cpu_us
        );
    }
    println!("  every store verified (every MAC checked); the S3 objects are COMPLIANCE-locked");
    std::fs::remove_dir_all(&dir).with_context(|| format!("failed to remove {}", dir.display()))?;
    Ok(0)
}

/// Run the release sealer on `store` under the load, sampling its upload lag.
fn measure(
    sealer: &Path,
    seaweedfs_pid: Option<u32>,
    dir: &Path,
    store: &str,
    extra: &[&str],
    env: &[(String, String)],
    load: &LoadOptions,
) -> anyhow::Result<Measured> {
    let port = harness::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let data = dir.join(format!("data-{port}"));
    let mut guard = Serve::new(sealer, port)
        .arg("--keys")
        .arg(dir.join("keys"))
        .arg("--data-dir")
        .arg(&data)
        .args(["--store", store])
        .args(extra)
        .envs(env.iter().cloned())
        .env("SEALER_LOG", "warn")
        .start(&dir.join(format!("sealer-{port}.log")))?;
    let pid = guard.pid().context("the sealer is running")?;

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, base) = (stop.clone(), base.clone());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(lag) = tasks::sealer_metric(&base, "sealer_upload_lag_entries") {
                    samples.push(lag);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        })
    };
    let cpu = |pid: Option<u32>| pid.map_or(0.0, process::cpu_seconds);
    let (sealer_cpu, weed_cpu) = (cpu(Some(pid)), cpu(seaweedfs_pid));
    let driven = bench::drive(load, &base, pid);
    let (sealer_cpu, weed_cpu) = (cpu(Some(pid)) - sealer_cpu, cpu(seaweedfs_pid) - weed_cpu);
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("the sampler does not panic");
    let (events, seconds, _rss) = driven?;

    let drained_from = Instant::now();
    let deadline = drained_from + Duration::from_secs(120);
    while tasks::sealer_metric(&base, "sealer_upload_lag_entries") != Some(0) {
        guard.ensure_running()?;
        if Instant::now() > deadline {
            bail!("{store}: the upload lag did not reach 0 within 120 s after the load");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let drain_seconds = drained_from.elapsed().as_secs_f64();
    guard.stop()?;
    let _ = std::fs::remove_dir_all(&data);
    let per_event = |seconds: f64| seconds * 1e6 / events.max(1) as f64;
    Ok(Measured {
        events,
        seconds,
        sealer_cpu_us: per_event(sealer_cpu),
        seaweedfs_cpu_us: per_event(weed_cpu),
        lag_max: samples.iter().copied().max().unwrap_or(0),
        lag_mean: samples.iter().sum::<u64>() as f64 / samples.len().max(1) as f64,
        drain_seconds,
    })
}

fn verify(sealer: &Path, dir: &Path, store: &str, env: &[(String, String)]) -> anyhow::Result<()> {
    let out = Command::new(sealer)
        .args([
            "verify",
            "--store",
            store,
            "--s3-path-style",
            "--public-key",
        ])
        .arg(dir.join("keys/signing.pub"))
        .arg("--hmac-key")
        .arg(dir.join("keys/hmac.key"))
        .envs(env.iter().cloned())
        .output()?;
    if !out.status.success() {
        bail!(
            "{store} failed verification:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
