//! Crash safety of the real binary: under load from several producers, the sealer is killed
//! with SIGKILL at random moments and restarted, many times. Producers behave like the
//! gateway filter: a batch that was not acknowledged is sent again, unchanged. At the end,
//! every acknowledged event must be in the log exactly once, the log must hold no gap (no
//! acknowledged event was lost and retries filled every hole) and `sealer verify` must pass.
//!
//! Against the local store and against S3 with Object Lock (a real SeaweedFS).
//! `CRASH_ROUNDS` (default 12, and half that on S3) sets the number of kills;
//! `cargo xtask torture` runs many more.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use harness::Sealer;
use harness::sealer::event;
use harness::seaweedfs::SeaweedFs;

const PRODUCERS: usize = 3;
const BATCH: u64 = 40;

/// xorshift64, seeded from the clock; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A producer: sends batches of consecutive sequence numbers; retries a batch until it is
/// acknowledged, and counts the batches acknowledged in `acks`. Returns the highest
/// acknowledged sequence number.
fn producer(
    id: String,
    port: Arc<AtomicU16>,
    acks: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(5))
            .build();
        let mut acked = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let first = acked + 1;
            let body: String = (first..first + BATCH)
                .map(|s| event(&id, s, 200) + "\n")
                .collect();
            // Retry the same batch until it is acknowledged: never skip ahead.
            loop {
                let url = format!("http://127.0.0.1:{}/v1/events", port.load(Ordering::SeqCst));
                let sent = agent
                    .post(&url)
                    .set("Content-Type", "application/x-ndjson")
                    .send_string(&body);
                if let Ok(resp) = sent {
                    let ack: serde_json::Value =
                        serde_json::from_str(&resp.into_string().unwrap_or_default())
                            .expect("an acknowledgement is JSON");
                    assert_eq!(ack["accepted"], BATCH, "ack {ack}");
                    acked = first + BATCH - 1;
                    acks.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                // The sealer is down: retry soon, as the filter does.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        acked
    })
}

/// `CRASH_ROUNDS`, or `default`.
fn rounds(default: u32) -> u32 {
    std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const SEALER_FLAGS: &[&str] = &[
    "--segment-max-age",
    "150ms",
    "--checkpoint-interval",
    "500ms",
];

#[test]
fn every_acknowledged_event_survives_sigkill_exactly_once() {
    let sealer = Sealer::start("crash.test/log", SEALER_FLAGS);
    kill_and_check("local store", sealer, rounds(12));
}

#[test]
fn every_acknowledged_event_survives_sigkill_exactly_once_on_s3() {
    let s3 = SeaweedFs::start();
    s3.create_bucket("audit", true);
    let sealer = Sealer::start_with(
        "crash.test/s3",
        Some("s3://audit/crash"),
        s3.aws_env(),
        SEALER_FLAGS,
    );
    kill_and_check("S3 store", sealer, rounds(12).div_ceil(2));
}

/// Kill `sealer` `rounds` times under load, then check every acknowledged event.
fn kill_and_check(store: &str, mut sealer: Sealer, rounds: u32) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test ({store}): {rounds} rounds, seed {seed}");
    let mut rng = Rng(seed);

    let port = Arc::new(AtomicU16::new(sealer.port()));
    let acks = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|i| {
            producer(
                format!("crash-gw/w{i}/{seed:x}"),
                port.clone(),
                acks.clone(),
                stop.clone(),
            )
        })
        .collect();
    // Wait until `n` more batches are acknowledged: load on the sealer, whatever its speed.
    let acknowledged = |sealer: &Sealer, n: u64| {
        let target = acks.load(Ordering::SeqCst) + n;
        sealer.wait_until(&format!("{n} more acknowledged batches"), || {
            acks.load(Ordering::SeqCst) >= target
        });
    };

    let started = Instant::now();
    for _ in 0..rounds {
        // A kill at a random moment: after 1 to 12 acknowledged batches.
        acknowledged(&sealer, 1 + rng.next() % 12);
        sealer.kill9();
        sealer.restart();
        port.store(sealer.port(), Ordering::SeqCst);
    }
    // Let the producers get batches acknowledged by the last run, then stop them.
    acknowledged(&sealer, PRODUCERS as u64);
    stop.store(true, Ordering::SeqCst);
    let acked: Vec<u64> = producers
        .into_iter()
        .map(|p| p.join().expect("producer thread"))
        .collect();
    sealer.stop();
    eprintln!(
        "crash test ({store}): {rounds} kills in {:?}; acknowledged per producer: {acked:?}",
        started.elapsed()
    );

    let verify = sealer.verify(&["--json"]);
    verify.expect_code(0);
    let report = verify.json();
    let export = sealer.run(&[
        "export",
        "--store",
        &sealer.store_arg(),
        "--public-key",
        sealer.public_key().to_str().unwrap(),
    ]);
    export.expect_code(0);

    // Count each (source, seq) among the sealed http entries.
    let mut seen: BTreeMap<(String, u64), u32> = BTreeMap::new();
    let mut starts = 0;
    let mut gaps = Vec::new();
    for line in export.stdout().lines() {
        let e: serde_json::Value = serde_json::from_str(line).expect("exported entry is JSON");
        match e["kind"].as_str() {
            Some("http") => {
                let id = e["source"]["id"].as_str().unwrap().to_owned();
                let seq = e["source"]["seq"].as_u64().unwrap();
                *seen.entry((id, seq)).or_default() += 1;
            }
            Some("start") => starts += 1,
            Some("gap") => gaps.push(line.to_owned()),
            other => sealer.fail(&format!("unexpected entry kind {other:?}")),
        }
    }
    let total_acked: u64 = acked.iter().sum();
    assert!(
        total_acked > 0,
        "no batch was ever acknowledged: the test proved nothing"
    );
    assert_eq!(starts, rounds as usize + 1, "one start entry per run");
    assert!(gaps.is_empty(), "no event may be lost: {gaps:?}");
    for (i, &n) in acked.iter().enumerate() {
        let id = format!("crash-gw/w{i}/{seed:x}");
        for seq in 1..=n {
            match seen.get(&(id.clone(), seq)) {
                Some(1) => {}
                Some(k) => sealer.fail(&format!("{id} seq {seq} sealed {k} times")),
                None => sealer.fail(&format!("acknowledged {id} seq {seq} is missing")),
            }
        }
    }
    // Nothing beyond what was sent (a batch sealed but not acknowledged is fine: it was sent).
    for (id, seq) in seen.keys() {
        let i = (0..PRODUCERS)
            .find(|i| id == &format!("crash-gw/w{i}/{seed:x}"))
            .unwrap_or_else(|| sealer.fail(&format!("entry from unknown source {id}")));
        assert!(*seq <= acked[i] + BATCH, "{id} seq {seq} was never sent");
    }
    eprintln!(
        "crash test ({store}): {rounds} kills, {total_acked} acknowledged events checked, {} \
         entries verified",
        report["entries"]
    );
}
