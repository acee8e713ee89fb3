//! `cargo xtask bench query [--entries N] [--queries N]`: the read side at scale.
//!
//! 1. The release sealer seals N access events (default 10,000,000) whose request times are
//!    spread evenly over 24 hours; the index follows as checkpoints are stored. Reported:
//!    the ingest rate and the rate at which the index kept up (N ÷ time until all indexed).
//! 2. The sealer is stopped, its index deleted and the sealer started again: the index is
//!    rebuilt from the store. Reported: the rebuild rate.
//! 3. `GET /v1/events` for one-hour windows at random hours, first page of 100, newest
//!    first: the window alone, with `status=5xx`, with `path_prefix` and `identity`, and
//!    with free text. Reported: p50 and p99 latency per kind, measured at the client.
//! 4. Time to appear: 100 single-event batches, 50 ms apart, each timed from sending the
//!    `POST /v1/events` to the moment its entry arrives on a `GET /v1/stream` client (what
//!    the live page's EventSource receives). Reported: median and p99.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use harness::Process;
use harness::sealer::Serve;

use crate::tasks;

const DAY_START: i64 = 1_764_288_000; // 2025-11-28T00:00:00Z
pub(crate) const BATCH: u64 = 5_000;

pub(crate) fn event(i: u64, n: u64) -> String {
    let t = DAY_START + (i as i64 * 86_400) / n as i64;
    let statuses = [
        200, 200, 200, 201, 204, 301, 304, 400, 401, 403, 404, 500, 503,
    ];
    let paths = [
        "/",
        "/shop/cart",
        "/api/orders",
        "/admin/users",
        "/login",
        "/static/app.js",
    ];
    let status = statuses[(i * 7 % 13) as usize];
    let path = paths[(i * 5 % 6) as usize];
    let who = if i.is_multiple_of(4) {
        format!(
            ",\"enduser\":{{\"id\":\"user{}@example.com\",\"source\":\"jwt\"}}",
            i % 1000
        )
    } else {
        String::new()
    };
    format!(
        "{{\"source\":{{\"id\":\"gw-bench/{:016x}\",\"seq\":{}}},\"event\":{{\"start_time\":\"{}\",\
         \"http\":{{\"request\":{{\"method\":\"GET\"}},\"response\":{{\"status_code\":{status}}}}},\
         \"url\":{{\"path\":\"{path}\"}},\"server\":{{\"address\":\"shop.example.com\"}},\
         \"client\":{{\"address\":\"198.51.{}.{}\"}}{who}}}}}",
        // One source per batch: the two senders' batches may arrive in any order.
        i / BATCH,
        i % BATCH + 1,
        rfc3339(t),
        (i / 256) % 256,
        i % 256,
    )
}

/// Seconds since the epoch as RFC 3339 (UTC).
fn rfc3339(t: i64) -> String {
    auditlog::timestamp::Timestamp::from_unix_nanos(t * 1_000_000_000).to_string()
}

/// `sealer serve` on the bench's keys and data directory, waited for until ready (which,
/// after a restart on millions of entries, takes as long as the store's verification).
fn start(sealer: &Path, dir: &Path, port: u16) -> anyhow::Result<Process> {
    Serve::new(sealer, port)
        .arg("--keys")
        .arg(dir.join("keys"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args([
            "--checkpoint-interval",
            "1s",
            "--segment-max-age",
            "1s",
            "--segment-max-bytes",
            "33554432",
            "--max-batch-events",
            "10000",
        ])
        .patience(Duration::from_secs(600))
        .start(&dir.join("sealer.log"))
}

/// `GET url`, parsed as JSON.
pub(crate) fn json(url: &str) -> anyhow::Result<serde_json::Value> {
    let r = ureq::get(url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    Ok(serde_json::from_str(&r.into_string()?)?)
}

/// Wait until the index holds at least `n` entries; the seconds waited.
fn wait_indexed(base: &str, n: u64, since: Instant) -> anyhow::Result<f64> {
    loop {
        let v = json(&format!("{base}/v1/events?limit=1"))?;
        if v["indexed_size"].as_u64().is_some_and(|s| s >= n) {
            return Ok(since.elapsed().as_secs_f64());
        }
        if since.elapsed() > Duration::from_secs(3600) {
            bail!("the index did not reach {n} entries in an hour: {v}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

pub fn run(args: &[String]) -> anyhow::Result<u8> {
    let mut entries: u64 = 10_000_000;
    let mut queries: u64 = 200;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--entries" => entries = tasks::number_after(a, &mut it)?.max(BATCH),
            "--queries" => queries = tasks::number_after(a, &mut it)?.max(10),
            other => bail!("unknown option {other:?}: use --entries N, --queries N"),
        }
    }
    let sealer = tasks::build_sealer(true)?;
    let dir = tasks::scratch_dir("bench-query")?;
    tasks::run(
        Command::new(&sealer)
            .args(["keygen", "--origin", "bench.example/query", "--out"])
            .arg(dir.join("keys")),
    )?;
    let port = harness::free_port();
    let base = format!("http://127.0.0.1:{port}");

    // 1. Seal, with the index following.
    let mut guard = start(&sealer, &dir, port)?;
    let batches = entries.div_ceil(BATCH);
    let next = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    eprintln!("sealing {entries} events …");
    let mut threads = Vec::new();
    for _ in 0..2 {
        let (next, url) = (next.clone(), format!("{base}/v1/events"));
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let agent = ureq::AgentBuilder::new().build();
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return Ok(());
                }
                let body: String = (b * BATCH..((b + 1) * BATCH).min(entries))
                    .map(|i| event(i, entries) + "\n")
                    .collect();
                agent
                    .post(&url)
                    .set("Content-Type", "application/x-ndjson")
                    .send_string(&body)?;
            }
        }));
    }
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
    }
    let ingest_s = began.elapsed().as_secs_f64();
    let total = json(&format!("{base}/readyz"))?["log_size"]
        .as_u64()
        .context("log_size")?;
    eprintln!(
        "sealed {total} entries in {ingest_s:.1} s; waiting until they are stored and indexed …"
    );
    let stored_and_indexed_s = wait_indexed(&base, total, began)?;
    guard.stop()?;

    // 2. Rebuild from the store: time until the index holds every stored entry.
    let index = dir.join("data/index");
    let size_on_disk = dir_size(&index);
    std::fs::remove_dir_all(&index).with_context(|| format!("remove {}", index.display()))?;
    let restarted = Instant::now();
    let mut guard = start(&sealer, &dir, port)?;
    let ready_s = restarted.elapsed().as_secs_f64();
    let stored = json(&format!("{base}/readyz"))?["checkpoint_size"]
        .as_u64()
        .context("checkpoint_size")?;
    let rebuild_s = wait_indexed(&base, stored, restarted)? - ready_s;

    // 3. One-hour windows.
    let kinds: [(&str, &str); 4] = [
        ("window only", ""),
        ("window + status=5xx", "&status=5xx"),
        (
            "window + path_prefix + identity",
            "&path_prefix=/login&identity=user0@example.com",
        ),
        ("window + free text", "&q=static/app"),
    ];
    let agent = ureq::AgentBuilder::new().build();
    let mut rows = Vec::new();
    for (name, extra) in kinds {
        let mut ms = Vec::new();
        let mut returned = 0u64;
        for q in 0..queries {
            let hour = (q * 7919) % 24;
            let from = rfc3339(DAY_START + hour as i64 * 3600);
            let to = rfc3339(DAY_START + (hour as i64 + 1) * 3600);
            let url = format!("{base}/v1/events?from={from}&to={to}&limit=100{extra}");
            let t = Instant::now();
            let body = agent.get(&url).call()?.into_string()?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            let v: serde_json::Value = serde_json::from_str(&body)?;
            returned += v["entries"].as_array().map_or(0, |e| e.len() as u64);
        }
        ms.sort_by(f64::total_cmp);
        rows.push((
            name,
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            returned / queries,
        ));
    }

    // 4. Time to appear on the stream.
    let appear = time_to_appear(&base, port)?;
    guard.stop()?;

    println!(
        "\nread side, {total} entries (request times over 24 h), release build, 2 cores; same run:"
    );
    println!(
        "  ingest with the index following: {:.0} events/s ({ingest_s:.1} s); all stored and \
         indexed {stored_and_indexed_s:.1} s after the first batch",
        entries as f64 / ingest_s,
    );
    println!(
        "  index rebuilt from the store: {:.0} entries/s ({stored} entries in {rebuild_s:.1} s, \
         after {ready_s:.1} s of recovery); index on disk {:.2} GiB",
        stored as f64 / rebuild_s,
        size_on_disk as f64 / (1u64 << 30) as f64
    );
    println!("  GET /v1/events, one-hour window, first page of 100, {queries} queries each:");
    for (name, p50, p99, returned) in rows {
        println!(
            "    {name:<34} p50 {p50:>7.2} ms   p99 {p99:>7.2} ms   ({returned} entries per page)"
        );
    }
    println!(
        "  time to appear (POST /v1/events → entry on GET /v1/stream), {} events: median {:.2} ms, p99 {:.2} ms",
        appear.len(),
        percentile(&appear, 0.5),
        percentile(&appear, 0.99)
    );
    Ok(0)
}

/// Total bytes of the files under `dir`.
pub(crate) fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Milliseconds from POST to the entry on the stream, for 100 single events, sorted.
fn time_to_appear(base: &str, port: u16) -> anyhow::Result<Vec<f64>> {
    let mut sse = TcpStream::connect(("127.0.0.1", port))?;
    sse.write_all(
        b"GET /v1/stream?gateway=gw-appear HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
    )?;
    let reader = BufReader::new(sse.try_clone()?);
    let (tx, rx) = std::sync::mpsc::channel::<(u64, Instant)>();
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if let Some(data) = line.strip_prefix("data: ")
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(data)
                && let Some(seq) = v["source"]["seq"].as_u64()
                && tx.send((seq, Instant::now())).is_err()
            {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let agent = ureq::AgentBuilder::new().build();
    let mut out = Vec::new();
    for seq in 1..=100u64 {
        let line = format!(
            "{{\"source\":{{\"id\":\"gw-appear/00000000000000aa\",\"seq\":{seq}}},\"event\":{{\
             \"start_time\":\"2026-11-28T09:00:00Z\",\"http\":{{\"request\":{{\"method\":\"GET\"}},\
             \"response\":{{\"status_code\":200}}}},\"url\":{{\"path\":\"/appear\"}}}}}}\n"
        );
        let sent = Instant::now();
        agent
            .post(&format!("{base}/v1/events"))
            .set("Content-Type", "application/x-ndjson")
            .send_string(&line)?;
        let (got, at) = rx
            .recv_timeout(Duration::from_secs(10))
            .context("the stream did not show the entry within 10 s")?;
        if got != seq {
            bail!("the stream showed source seq {got}, expected {seq}");
        }
        out.push(at.duration_since(sent).as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = sse.shutdown(std::net::Shutdown::Both);
    out.sort_by(f64::total_cmp);
    Ok(out)
}
