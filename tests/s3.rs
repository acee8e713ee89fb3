//! The S3 Object Lock store against a real S3 server (SeaweedFS 4.48, `weed mini`), started
//! on free loopback ports for each test and stopped afterwards, pass or fail.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use harness::sealer::events;
use harness::seaweedfs::SeaweedFs;
use harness::{Run, Sealer};
use serde_json::Value;

/// Options of every S3 sealer here: path-style requests, a short retention, short segments.
const S3_FLAGS: &[&str] = &[
    "--s3-path-style",
    "--s3-retention-days",
    "1",
    "--segment-max-age",
    "200ms",
    "--checkpoint-interval",
    "1s",
];

fn s3_sealer(s3: &SeaweedFs, origin: &str, store: &str, extra: &[&str]) -> Sealer {
    let mut flags = S3_FLAGS.to_vec();
    flags.extend(extra);
    Sealer::start_with(origin, Some(store), s3.aws_env(), &flags)
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `sealer verify --store STORE` with this sealer's keys, path-style, and `extra`.
fn verify(sealer: &Sealer, store: &str, extra: &[&str]) -> Run {
    let (pk, hk) = (sealer.public_key(), sealer.hmac_key());
    let mut args = vec!["verify", "--store", store, "--s3-path-style"];
    args.extend(["--public-key", path(&pk), "--hmac-key", path(&hk)]);
    args.extend(extra);
    sealer.run(&args)
}

/// The entries `sealer export` prints, parsed.
fn export(sealer: &Sealer, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["export", "--s3-path-style"];
    all.extend(args);
    let run = sealer.run(&all);
    run.expect_code(0);
    run.stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| run.fail(&format!("{e}: {l}"))))
        .collect()
}

/// `(source id, seq)` of every sealed http entry, counted.
fn sealed_sources(entries: &[Value]) -> BTreeMap<(String, u64), u32> {
    let mut seen = BTreeMap::new();
    for e in entries.iter().filter(|e| e["kind"] == "http") {
        let id = e["source"]["id"].as_str().unwrap_or_default().to_owned();
        let seq = e["source"]["seq"].as_u64().unwrap_or_default();
        *seen.entry((id, seq)).or_insert(0) += 1;
    }
    seen
}

/// Seal `batches` batches of `size` events from `source`, each stored before the next is
/// sent, so that each is a segment of its own.
fn seal_batches(sealer: &Sealer, source: &str, batches: u64, size: u64) {
    for b in 0..batches {
        sealer.seal(&events(source, b * size + 1, size));
        sealer.wait_stored();
    }
}

fn log_keys(s3: &SeaweedFs, bucket: &str, prefix: &str, kind: &str) -> Vec<String> {
    s3.keys(bucket, prefix)
        .into_iter()
        .filter(|k| k.contains(kind))
        .collect()
}

#[test]
fn sealed_events_land_locked_in_s3_and_verify_from_there() {
    let s3 = SeaweedFs::start();
    s3.create_bucket("audit", true);
    let mut sealer = s3_sealer(&s3, "e2e.test/s3-seal", "s3://audit/fleet", &[]);
    seal_batches(&sealer, "gw/1", 6, 50);
    // The query index reads its entries from S3 too (range requests, a piece at a time).
    sealer.wait_stored();
    let size = sealer.get_json("/readyz")["log_size"].as_u64().unwrap();
    sealer.wait_until(&format!("the index to reach {size} entries"), || {
        sealer.get_json("/v1/events?limit=1")["indexed_size"].as_u64() == Some(size)
    });
    let page = sealer.get_json("/v1/events?limit=1000");
    let mut seqs: Vec<u64> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..size).collect::<Vec<_>>(), "{page}");
    sealer.stop();

    // The log is under PREFIX/LOG_ID/, every object locked in COMPLIANCE mode for a day.
    let prefix = "fleet/e2e.test_s3-seal/";
    let segments = log_keys(&s3, "audit", prefix, "/segments/");
    let checkpoints = log_keys(&s3, "audit", prefix, "/checkpoints/");
    let tiles = log_keys(&s3, "audit", prefix, "/tile/");
    assert!(segments.len() >= 2, "{segments:?}");
    assert!(!checkpoints.is_empty());
    assert!(
        tiles.iter().any(|k| k.ends_with("/tile/0/000")),
        "the tree's tiles are in S3 too: {tiles:?}"
    );
    let now = SystemTime::now();
    for key in segments.iter().chain(&checkpoints).chain(&tiles) {
        let head = s3
            .block_on(s3.client().head_object().bucket("audit").key(key).send())
            .unwrap_or_else(|e| panic!("head {key}: {}", DisplayErrorContext(&e)));
        assert_eq!(
            head.object_lock_mode().map(|m| m.as_str()),
            Some("COMPLIANCE"),
            "{key}"
        );
        let until = SystemTime::try_from(*head.object_lock_retain_until_date().unwrap()).unwrap();
        let ahead = until.duration_since(now).expect("retained into the future");
        assert!(
            ahead > Duration::from_secs(23 * 3600) && ahead < Duration::from_secs(25 * 3600),
            "{key}: retained {ahead:?}"
        );
    }

    let run = verify(&sealer, "s3://audit/fleet", &["--min-retention-days", "1"]);
    run.expect_code(0);
    assert!(
        run.stdout()
            .contains("OK: log e2e.test/s3-seal verified: 301 entries"),
        "{}",
        run.context
    );
    // Proofs from S3 alone, through the tiles.
    let pk = sealer.public_key();
    let proved = sealer.run(&[
        "prove",
        "--store",
        "s3://audit/fleet/e2e.test_s3-seal",
        "--s3-path-style",
        "--seq",
        "257",
        "--public-key",
        path(&pk),
    ]);
    proved.expect_code(0);
    assert!(
        proved.stdout().contains("entry 257 is in log"),
        "{}",
        proved.context
    );
    // A policy longer than the objects were given is reported, not waved through.
    verify(
        &sealer,
        "s3://audit/fleet",
        &["--min-retention-days", "30", "--json"],
    )
    .expect_code(1)
    .expect_class("not_locked");

    let entries = export(
        &sealer,
        &["--store", "s3://audit/fleet", "--public-key", path(&pk)],
    );
    let seen = sealed_sources(&entries);
    assert_eq!(seen.len(), 300);
    assert!(seen.values().all(|&n| n == 1));
}

#[test]
fn a_locked_version_cannot_be_deleted_and_a_rewritten_or_deleted_one_is_caught() {
    let s3 = SeaweedFs::start();
    s3.create_bucket("audit", true);
    let mut sealer = s3_sealer(&s3, "e2e.test/s3-tamper", "s3://audit/logs", &[]);
    seal_batches(&sealer, "gw/1", 4, 20);
    sealer.stop();
    let segments = log_keys(&s3, "audit", "logs/", "/segments/");
    assert!(segments.len() >= 3, "{segments:?}");
    let client = s3.client();

    // Deleting the locked version itself is refused by the server.
    let versions = s3
        .block_on(
            client
                .list_object_versions()
                .bucket("audit")
                .prefix(&segments[0])
                .send(),
        )
        .unwrap();
    let version = versions.versions()[0].version_id().unwrap().to_owned();
    let deleted = s3.block_on(
        client
            .delete_object()
            .bucket("audit")
            .key(&segments[0])
            .version_id(&version)
            .send(),
    );
    match deleted {
        Err(e) => assert_eq!(
            e.code(),
            Some("AccessDenied"),
            "{}",
            DisplayErrorContext(&e)
        ),
        Ok(_) => panic!("the server deleted a COMPLIANCE-locked version"),
    }
    verify(&sealer, "s3://audit/logs", &[]).expect_code(0);

    // An attacker with write access writes a new version of a segment with one byte changed.
    let original = s3
        .block_on(client.get_object().bucket("audit").key(&segments[1]).send())
        .unwrap();
    let mut bytes = s3
        .block_on(original.body.collect())
        .unwrap()
        .into_bytes()
        .to_vec();
    let needle = b"\"status_code\":200";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("a status code in the segment");
    bytes[at + needle.len() - 1] = b'1';
    s3.block_on(
        client
            .put_object()
            .bucket("audit")
            .key(&segments[1])
            .body(ByteStream::from(bytes))
            .send(),
    )
    .unwrap();
    // ... and deletes another one (a delete marker; the locked version stays).
    s3.block_on(
        client
            .delete_object()
            .bucket("audit")
            .key(&segments[2])
            .send(),
    )
    .unwrap();

    let run = verify(&sealer, "s3://audit/logs", &["--json"]);
    run.expect_code(1);
    let in_log = |k: &str| {
        k.strip_prefix("logs/e2e.test_s3-tamper/")
            .unwrap()
            .to_owned()
    };
    run.expect_problem("object_rewritten", &in_log(&segments[1]));
    run.expect_problem("object_deleted", &in_log(&segments[2]));
    run.expect_class("chain_broken");
    run.expect_problem("not_locked", &in_log(&segments[1]));
    run.expect_class("missing_entries");
}

#[test]
fn an_s3_outage_under_load_loses_nothing() {
    let mut s3 = SeaweedFs::start();
    s3.create_bucket("audit", true);
    let mut sealer = s3_sealer(&s3, "e2e.test/s3-outage", "s3://audit/fleet", &[]);
    let acknowledged = Mutex::new(Vec::<(String, u64)>::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for p in 0..2 {
            let (sealer, acknowledged, stop) = (&sealer, &acknowledged, &stop);
            scope.spawn(move || {
                let source = format!("gw/{p}");
                let mut next = 1;
                while !stop.load(Relaxed) {
                    let (status, ack) = sealer.post_ndjson(&events(&source, next, 20));
                    if status != 200 {
                        sealer.fail(&format!("POST /v1/events answered {status}: {ack}"));
                    }
                    let mut a = acknowledged.lock().unwrap();
                    a.extend((next..next + 20).map(|seq| (source.clone(), seq)));
                    next += 20;
                    drop(a);
                    // A gateway's pace, not a wait.
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        let acked = || acknowledged.lock().unwrap().len();
        sealer.wait_until("segments to reach S3 under load", || {
            sealer.metric("sealer_segments_uploaded_total") >= 2
        });
        s3.stop();
        // Ingest goes on while S3 is away: events are durable in the local WAL.
        let before = acked();
        sealer.wait_until("the outage to be noticed while ingest goes on", || {
            sealer.metric("sealer_upload_retries_total") > 0 && acked() >= before + 200
        });
        crate::required(s3.restart());
        let uploaded = sealer.metric("sealer_segments_uploaded_total");
        sealer.wait_until("segments to reach S3 again, under load", || {
            sealer.metric("sealer_segments_uploaded_total") > uploaded
        });
        stop.store(true, Relaxed);
    });
    assert!(
        sealer.metric("sealer_upload_retries_total") > 0,
        "the outage was not noticed"
    );
    // Everything reaches S3 once it is back.
    sealer.wait_until_within(
        "the upload lag to return to 0 after S3 came back",
        Duration::from_secs(90),
        || sealer.metric("sealer_upload_lag_entries") == 0,
    );
    sealer.stop();
    verify(&sealer, "s3://audit/fleet", &[]).expect_code(0);

    let pk = sealer.public_key();
    let seen = sealed_sources(&export(
        &sealer,
        &["--store", "s3://audit/fleet", "--public-key", path(&pk)],
    ));
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(acknowledged.len() >= 100, "{} events", acknowledged.len());
    for key in &acknowledged {
        assert_eq!(seen.get(key), Some(&1), "acknowledged event {key:?}");
    }
    assert_eq!(seen.len(), acknowledged.len());
}

#[test]
fn a_full_spool_answers_503_until_s3_returns() {
    let mut s3 = SeaweedFs::start();
    s3.create_bucket("audit", true);
    let mut sealer = s3_sealer(
        &s3,
        "e2e.test/s3-spool",
        "s3://audit/fleet",
        &["--spool-max-bytes", "40000"],
    );
    sealer.seal(&events("gw/1", 1, 10));
    s3.stop();
    let mut next = 11;
    let refused = loop {
        let batch = events("gw/1", next, 20);
        let (status, body) = sealer.post_ndjson(&batch);
        match status {
            200 => next += 20,
            503 => break (batch, body),
            other => sealer.fail(&format!("answered {other}: {body}")),
        }
        if next > 2000 {
            sealer.fail("the spool never filled");
        }
    };
    assert_eq!(refused.1["error"], "spool_full", "{}", refused.1);
    assert!(sealer.metric("sealer_batches_rejected_spool_full_total") > 0);
    assert!(sealer.metric("sealer_spool_bytes") >= 40_000);

    crate::required(s3.restart());
    // The client retries the refused batch, as the filter does, until the store catches up.
    sealer.wait_until_within(
        "the refused batch to be acknowledged after S3 came back",
        Duration::from_secs(90),
        || {
            let (status, body) = sealer.post_ndjson(&refused.0);
            assert!(status == 200 || body["error"] == "spool_full", "{body}");
            status == 200
        },
    );
    sealer.stop();
    verify(&sealer, "s3://audit/fleet", &[]).expect_code(0);
    let pk = sealer.public_key();
    let entries = export(
        &sealer,
        &["--store", "s3://audit/fleet", "--public-key", path(&pk)],
    );
    assert!(
        entries.iter().all(|e| e["kind"] != "gap"),
        "no event was lost"
    );
    let seen = sealed_sources(&entries);
    assert_eq!(seen.len() as u64, next + 19, "every event once");
    assert!(seen.values().all(|&n| n == 1));
}

#[test]
fn a_bucket_without_object_lock_is_refused_at_start() {
    let s3 = SeaweedFs::start();
    s3.create_bucket("plain", false);
    // A local sealer only for its keys and directories.
    let mut keys_only = Sealer::start_with("e2e.test/s3-plain", None, s3.aws_env(), &[]);
    keys_only.stop();
    let (keys, data) = (keys_only.keys_dir(), keys_only.root().join("s3-data"));
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--keys", path(&keys), "--data-dir", path(&data)];
        args.extend([
            "--store",
            "s3://plain/x",
            "--s3-path-style",
            "--listen",
            "127.0.0.1:0",
        ]);
        args.extend(extra);
        keys_only.run(&args)
    };
    let run = serve(&[]);
    run.expect_code(2);
    let stderr = String::from_utf8_lossy(&run.output.stderr).into_owned();
    for expected in [
        "bucket \"plain\" is not safe for an audit log",
        "versioning is not enabled",
        "Object Lock is not enabled",
        "--allow-unlocked",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing\n{}",
            run.context
        );
    }
    assert!(s3.keys("plain", "").is_empty(), "nothing was written");

    // Development only: it starts, says so loudly, and verification reports the objects as
    // unlocked.
    let mut sealer = s3_sealer(
        &s3,
        "e2e.test/s3-plain",
        "s3://plain/x",
        &["--allow-unlocked"],
    );
    sealer.seal(&events("gw/1", 1, 5));
    sealer.stop();
    let log = std::fs::read_to_string(sealer.log_path()).unwrap();
    assert!(log.contains("DEVELOPMENT ONLY (--allow-unlocked)"), "{log}");
    verify(&sealer, "s3://plain/x", &["--json"])
        .expect_code(1)
        .expect_class("not_locked");
}

#[test]
fn a_missing_bucket_is_named_at_start_and_create_bucket_makes_one() {
    let s3 = SeaweedFs::start();
    let mut keys_only = Sealer::start_with("e2e.test/s3-none", None, s3.aws_env(), &[]);
    keys_only.stop();
    let (keys, data) = (keys_only.keys_dir(), keys_only.root().join("s3-data"));
    let run = keys_only.run(&[
        "serve",
        "--keys",
        path(&keys),
        "--data-dir",
        path(&data),
        "--store",
        "s3://no-such-bucket/x",
        "--s3-path-style",
        "--listen",
        "127.0.0.1:0",
    ]);
    run.expect_code(2);
    let stderr = String::from_utf8_lossy(&run.output.stderr).into_owned();
    assert!(
        stderr.contains("bucket \"no-such-bucket\" does not exist"),
        "{}",
        run.context
    );

    // `sealer create-bucket` makes one fit for the log; a second call fails, naming it.
    let create = [
        "create-bucket",
        "--store",
        "s3://no-such-bucket/x",
        "--s3-path-style",
    ];
    keys_only.run(&create).expect_code(0);
    let again = keys_only.run(&create);
    again.expect_code(2);
    assert!(
        String::from_utf8_lossy(&again.output.stderr).contains("cannot create bucket"),
        "{}",
        again.context
    );
    let mut sealer = s3_sealer(&s3, "e2e.test/s3-none", "s3://no-such-bucket/x", &[]);
    sealer.seal(&events("gw/1", 1, 3));
    sealer.stop();
    verify(
        &sealer,
        "s3://no-such-bucket/x",
        &["--min-retention-days", "1"],
    )
    .expect_code(0);
}

#[test]
fn two_sealers_share_one_bucket_and_verify_together() {
    let s3 = SeaweedFs::start();
    s3.create_bucket("fleet", true);
    let mut a = s3_sealer(&s3, "e2e.test/gw-a", "s3://fleet/prod", &[]);
    let mut b = s3_sealer(&s3, "e2e.test/gw-b", "s3://fleet/prod", &[]);
    for i in 0..4 {
        a.seal(&events("gw-a/1", i * 25 + 1, 25));
        b.seal(&events("gw-b/1", i * 25 + 1, 25));
        a.wait_stored();
        b.wait_stored();
    }
    a.stop();
    b.stop();
    let (pa, pb) = (a.public_key(), b.public_key());
    let keys = ["--public-key", path(&pa), "--public-key", path(&pb)];
    let mut args = vec!["verify", "--store", "s3://fleet/prod", "--s3-path-style"];
    args.extend(keys);
    let run = a.run(&args);
    run.expect_code(0);
    let out = run.stdout();
    assert!(
        out.contains("OK: log e2e.test/gw-a verified"),
        "{}",
        run.context
    );
    assert!(
        out.contains("OK: log e2e.test/gw-b verified"),
        "{}",
        run.context
    );
    assert!(out.contains("2 logs, 0 failed"), "{}", run.context);

    // With only one of the keys, the other log cannot be checked: exit 2, naming it.
    let run = a.run(&[
        "verify",
        "--store",
        "s3://fleet/prod",
        "--s3-path-style",
        "--public-key",
        path(&pa),
    ]);
    run.expect_code(2);
    assert!(
        String::from_utf8_lossy(&run.output.stderr).contains("\"e2e.test/gw-b\""),
        "{}",
        run.context
    );

    // Export merges both logs by the time each entry was sealed.
    let mut export_args = vec!["--store", "s3://fleet/prod"];
    export_args.extend(keys);
    let entries = export(&a, &export_args);
    let seen = sealed_sources(&entries);
    assert_eq!(seen.len(), 200);
    let times: Vec<&str> = entries
        .iter()
        .map(|e| e["sealed_at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "not in time order");
    assert!(
        entries
            .iter()
            .take(60)
            .any(|e| e["source"]["id"] == "gw-b/1"),
        "the logs are interleaved, not concatenated"
    );

    // The query filters apply across every log under the prefix.
    let mut filtered = export_args.clone();
    filtered.extend(["--gateway", "gw-b", "--kind", "http"]);
    let only_b = export(&a, &filtered);
    assert_eq!(only_b.len(), 100);
    assert!(only_b.iter().all(|e| e["source"]["id"] == "gw-b/1"));

    // `sealer tail` follows every log under the prefix.
    let mut tail = harness::sealer::sealer_cmd(&[
        "tail",
        "--store",
        "s3://fleet/prod",
        "--s3-path-style",
        "--from-start",
        "--kind",
        "http",
        "--interval",
        "100ms",
    ])
    .envs(s3.aws_env())
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("sealer tail starts");
    let lines = std::io::BufRead::lines(std::io::BufReader::new(tail.stdout.take().unwrap()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut per_gateway: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..200 {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("tail prints every stored http entry of both logs");
        let e: Value = serde_json::from_str(&line).unwrap();
        *per_gateway
            .entry(e["source"]["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let _ = tail.kill();
    let _ = tail.wait();
    assert_eq!(
        per_gateway,
        BTreeMap::from([("gw-a/1".to_owned(), 100), ("gw-b/1".to_owned(), 100)])
    );
}

#[test]
fn an_object_already_there_with_other_bytes_raises_an_integrity_alarm_and_stays() {
    let s3 = SeaweedFs::start();
    s3.create_bucket("audit", true);
    let flags = ["--s3-path-style", "--segment-max-age", "5s"];
    let sealer = Sealer::start_with(
        "e2e.test/s3-alarm",
        Some("s3://audit/fleet"),
        s3.aws_env(),
        &flags,
    );
    // The start entry and 5 events make entries 0..=5, which the segment's age closes into
    // one segment 5 s after the start. Someone plants other bytes under its key first.
    sealer.seal(&events("gw/1", 1, 5));
    let key = "fleet/e2e.test_s3-alarm/segments/00000000000000000000-00000000000000000005.ndjson";
    let planted = b"{\"forged\":true}\n".to_vec();
    s3.block_on(
        s3.client()
            .put_object()
            .bucket("audit")
            .key(key)
            .body(ByteStream::from(planted.clone()))
            .send(),
    )
    .unwrap();
    sealer.wait_until(
        "an integrity alarm for a segment key holding other bytes",
        || sealer.metric("sealer_integrity_alarms_total") > 0,
    );
    let (status, ready) = sealer.get("/readyz");
    assert_eq!(status, 503, "{ready}");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["integrity_alarms"], 1, "{ready}");
    let log = std::fs::read_to_string(sealer.log_path()).unwrap();
    assert!(log.contains("INTEGRITY ALARM"), "{log}");
    // Nothing was overwritten: the planted object is still the only version.
    let versions = s3
        .block_on(
            s3.client()
                .list_object_versions()
                .bucket("audit")
                .prefix(key)
                .send(),
        )
        .unwrap();
    assert_eq!(versions.versions().len(), 1);
    let stored = s3
        .block_on(s3.client().get_object().bucket("audit").key(key).send())
        .unwrap();
    let stored = s3.block_on(stored.body.collect()).unwrap().into_bytes();
    assert_eq!(stored.as_ref(), planted.as_slice());
}
