//! Disk faults on real, small filesystems that the tests mount themselves (tmpfs, which needs
//! root, as CI has; a test that cannot mount fails, it never skips).
//!
//! - The WAL's disk fills up: batches get 503 naming the cause, nothing acknowledged is lost,
//!   and ingest resumes by itself once the uploader has moved closed segments to the store.
//! - The store's filesystem turns read-only: the sealer keeps acknowledging into the WAL,
//!   reports the store unhealthy, and catches up once it is writable again.
//!
//! Every run ends with a full verification and a count of every acknowledged event.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::Sealer;
use harness::sealer::events;

/// A tmpfs mounted on a temporary directory; unmounted on drop, pass or fail.
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

fn mount(args: &[&str], dir: &Path) {
    let out = Command::new("mount")
        .args(args)
        .arg(dir)
        .output()
        .expect("mount(8) runs");
    assert!(
        out.status.success(),
        "mount {args:?} {} failed (these tests need root to mount a tmpfs): {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        let parent = tempfile::Builder::new()
            .prefix("disk-e2e-")
            .tempdir()
            .expect("temporary directory");
        let dir = parent.path().join("fs");
        std::fs::create_dir(&dir).unwrap();
        mount(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            &dir,
        );
        Tmpfs {
            dir,
            _parent: parent,
        }
    }

    fn remount(&self, mode: &str) {
        mount(&["-o", &format!("remount,{mode}")], &self.dir);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Export the log and count each `(source, seq)` of its http entries.
fn sealed(sealer: &Sealer) -> BTreeMap<(String, u64), u32> {
    let mut seen = BTreeMap::new();
    for e in sealer.export_entries() {
        if e["kind"] == "http" {
            let key = (
                e["source"]["id"].as_str().unwrap().to_owned(),
                e["source"]["seq"].as_u64().unwrap(),
            );
            *seen.entry(key).or_insert(0) += 1;
        }
    }
    seen
}

fn assert_exactly_once(sealer: &Sealer, source: &str, acknowledged: u64) {
    let seen = sealed(sealer);
    for seq in 1..=acknowledged {
        assert_eq!(
            seen.get(&(source.to_owned(), seq)),
            Some(&1),
            "acknowledged event {seq} of {source}"
        );
    }
    assert_eq!(
        seen.len() as u64,
        acknowledged,
        "nothing unacknowledged sealed"
    );
}

#[test]
fn a_full_wal_disk_answers_503_loses_nothing_and_recovers_when_space_returns() {
    let wal_fs = Tmpfs::new("384k");
    let mut sealer = Sealer::start_in(
        "e2e.test/disk-full",
        None,
        Some(&wal_fs.dir),
        Vec::new(),
        &["--segment-max-age", "2s", "--checkpoint-interval", "1s"],
    );
    let source = "gw/1";
    let mut next = 1;
    // Fill the WAL's filesystem: the open WAL file grows until a write fails.
    let refused = loop {
        let batch = events(source, next, 100);
        let (status, body) = sealer.post_ndjson(&batch);
        match status {
            200 => next += 100,
            503 => break (batch, body),
            other => sealer.fail(&format!("answered {other}: {body}")),
        }
        if next > 100_000 {
            sealer.fail("the 384 KiB filesystem never filled");
        }
    };
    let message = refused.1["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("No space left on device"),
        "503 names the cause: {}",
        refused.1
    );
    let (status, ready) = sealer.get("/readyz");
    assert_eq!(status, 503, "{ready}");
    assert!(ready.contains("\"wal_healthy\":false"), "{ready}");

    // The writer closes the segment by age, the uploader moves it to the store and removes
    // the WAL file: space returns, and the refused batch (retried, as the filter does) goes
    // through.
    sealer.wait_until_within(
        "the refused batch, retried, to be acknowledged once space returns",
        Duration::from_secs(60),
        || sealer.post_ndjson(&refused.0).0 == 200,
    );
    next += 100;
    sealer.seal(&events(source, next, 100));
    next += 100;
    sealer.stop();
    sealer.verify(&[]).expect_code(0);
    assert_exactly_once(&sealer, source, next - 1);
}

#[test]
fn a_read_only_store_keeps_ingest_going_and_catches_up_when_writable() {
    let store_fs = Tmpfs::new("64m");
    let store = store_fs.dir.join("store");
    let mut sealer = Sealer::start_in(
        "e2e.test/disk-ro",
        Some(store.to_str().unwrap()),
        None,
        Vec::new(),
        &["--segment-max-age", "200ms", "--checkpoint-interval", "1s"],
    );
    let source = "gw/1";
    sealer.seal(&events(source, 1, 50));
    sealer.wait_until("the first segment to be stored", || {
        sealer.metric("sealer_upload_lag_entries") == 0
    });
    store_fs.remount("ro");
    // Acknowledged all the same, before and after the store refuses a write: the WAL is on
    // another disk.
    sealer.seal(&events(source, 51, 50));
    sealer.wait_until("the read-only store to refuse a write", || {
        sealer.metric("sealer_upload_retries_total") > 0
    });
    for b in 2..6 {
        sealer.seal(&events(source, 1 + b * 50, 50));
    }
    sealer.wait_until("/readyz to report the read-only store", || {
        let (status, ready) = sealer.get("/readyz");
        status == 503 && ready.contains("\"store_healthy\":false")
    });
    assert!(sealer.metric("sealer_upload_lag_entries") > 0);

    store_fs.remount("rw");
    sealer.wait_until_within(
        "the store to catch up once writable",
        Duration::from_secs(60),
        || sealer.metric("sealer_upload_lag_entries") == 0,
    );
    let (status, ready) = sealer.get("/readyz");
    assert_eq!(status, 200, "{ready}");
    sealer.stop();
    sealer.verify(&[]).expect_code(0);
    assert_exactly_once(&sealer, source, 300);
}
