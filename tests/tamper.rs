//! Tamper detection: every class of tampering that `sealer verify` must detect, each done to
//! a store that the real sealer wrote, after checking that the untampered store verifies.
//!
//! Exit codes of `sealer verify`: 0 verified, 1 tampering found, 2 could not run. Problems are
//! asserted by class and location (`<store key>[:<line>]`) in the `--json` report.

use std::fs;
use std::path::{Path, PathBuf};

use auditlog::chain::{self, MacKey};
use auditlog::checkpoint::Checkpoint;
use auditlog::head::LogHead;
use auditlog::layout;
use auditlog::merkle::leaf_hash;
use auditlog::note::{Note, NoteSigner};
use auditlog::record::{parse_record, write_record};
use e2e::{Sealer, events, make_writable};

const SOURCE: &str = "gw/w0/a";

/// Seal 30 events in 6 batches into at least 3 segments, stop the sealer with SIGTERM, and
/// check that the store verifies. Each batch (about 2 KB) fills a segment past
/// `--segment-max-bytes`, so segments are cut deterministically, not by the clock.
fn sealed_log(origin: &str) -> Sealer {
    let mut s = Sealer::start(
        origin,
        &[
            "--segment-max-age",
            "300ms",
            "--segment-max-bytes",
            "1500",
            "--checkpoint-interval",
            "2s",
        ],
    );
    for batch in 0..6 {
        s.seal(&events(SOURCE, 1 + batch * 5, 5));
    }
    s.stop();
    let segs = segments(&s.store());
    if segs.len() < 3 {
        s.fail(&format!("expected at least 3 segments, got {segs:#?}"));
    }
    let run = s.verify(&["--json"]);
    run.expect_code(0);
    let report = run.json();
    if report["ok"] != true || report["entries"] != 31 || report["mac_checked"] != true {
        run.fail("the untampered store should verify: 31 entries, MACs checked");
    }
    s
}

#[derive(Debug, Clone)]
struct Segment {
    key: String,
    first: u64,
    last: u64,
    path: PathBuf,
}

/// The store's segments in log order.
fn segments(store: &Path) -> Vec<Segment> {
    let mut out: Vec<Segment> = fs::read_dir(store.join("segments"))
        .expect("segments directory")
        .map(|e| {
            let name = e.expect("entry").file_name().into_string().expect("UTF-8");
            let key = format!("{}{name}", layout::SEGMENTS);
            let (first, last) = layout::parse_segment_key(&key).expect("a segment name");
            let path = store.join(&key);
            make_writable(&path);
            Segment {
                key,
                first,
                last,
                path,
            }
        })
        .collect();
    out.sort_by_key(|s| s.first);
    out
}

/// A segment in the middle of the log with at least 3 entries.
fn middle_segment(store: &Path) -> Segment {
    let segs = segments(store);
    let mid = segs[segs.len() / 2].clone();
    assert!(mid.last - mid.first >= 2, "{mid:?} is too short");
    assert!(mid.key != segs.last().unwrap().key, "{mid:?} is the last");
    mid
}

/// The segment right after `seg`.
fn next_segment(store: &Path, seg: &Segment) -> Segment {
    segments(store)
        .into_iter()
        .find(|s| s.first == seg.last + 1)
        .unwrap_or_else(|| panic!("no segment after {}", seg.key))
}

/// `(key, size)` of every checkpoint, oldest first.
fn checkpoints(store: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = fs::read_dir(store.join("checkpoints"))
        .expect("checkpoints directory")
        .map(|e| {
            let name = e.expect("entry").file_name().into_string().expect("UTF-8");
            let key = format!("{}{name}", layout::CHECKPOINTS);
            let (size, _) = layout::parse_checkpoint_key(&key).expect("a checkpoint name");
            make_writable(&store.join(&key));
            (key, size)
        })
        .collect();
    out.sort_by_key(|(k, _)| layout::parse_checkpoint_key(k));
    out
}

/// A checkpoint of exactly `size` entries.
fn checkpoint_of_size(store: &Path, size: u64) -> String {
    checkpoints(store)
        .into_iter()
        .find(|(_, s)| *s == size)
        .unwrap_or_else(|| panic!("no checkpoint of size {size}"))
        .0
}

fn newest_checkpoint(store: &Path) -> (String, u64) {
    checkpoints(store).pop().expect("a checkpoint")
}

fn read_lines(path: &Path) -> Vec<Vec<u8>> {
    let bytes = fs::read(path).expect("read segment");
    let body = bytes
        .strip_suffix(b"\n")
        .expect("segment ends in a newline");
    body.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    let mut bytes = Vec::new();
    for l in lines {
        bytes.extend_from_slice(l);
        bytes.push(b'\n');
    }
    fs::write(path, bytes).expect("write segment");
}

/// Replace the first occurrence of `from` in `line` with `to`.
fn replace_once(line: &[u8], from: &str, to: &str) -> Vec<u8> {
    let at = line
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from} not in {}", String::from_utf8_lossy(line)));
    [&line[..at], to.as_bytes(), &line[at + from.len()..]].concat()
}

/// The same record with one byte of its entry changed: status code 200 becomes 500.
fn modify_status(line: &[u8]) -> Vec<u8> {
    replace_once(line, "\"status_code\":200", "\"status_code\":500")
}

fn rename(store: &Path, seg: &Segment, first: u64, last: u64) -> String {
    let key = layout::segment_key(first, last);
    fs::rename(&seg.path, store.join(&key)).expect("rename segment");
    key
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn load_mac_key(path: &Path) -> MacKey {
    let hex = fs::read_to_string(path).expect("read hmac.key");
    let hex = hex.trim().as_bytes();
    let mut key = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let digits = std::str::from_utf8(pair).expect("hex");
        key[i] = u8::from_str_radix(digits, 16).expect("hex");
    }
    MacKey::new(&key)
}

/// Rewrite the store as an insider would: modify the entry at `seq` with `edit`, then recompute
/// the chain value of it and of every later entry, and (with `mac_key`) their MACs too.
fn rewrite_from(store: &Path, origin: &str, seq: u64, mac_key: Option<&MacKey>) {
    let mut chain = chain::genesis(origin);
    for seg in segments(store) {
        let mut out = Vec::new();
        for (i, line) in read_lines(&seg.path).iter().enumerate() {
            let at = seg.first + i as u64;
            let line = if at == seq {
                modify_status(line)
            } else {
                line.clone()
            };
            let record = parse_record(&line).expect("a record");
            if at < seq {
                chain = record.chain;
                out.extend_from_slice(&line);
                out.push(b'\n');
                continue;
            }
            chain = chain::next(&chain, &leaf_hash(record.entry));
            let mac = mac_key.map_or(record.mac, |k| k.mac(&chain));
            write_record(&mut out, record.entry, &chain, &mac);
        }
        fs::write(&seg.path, out).expect("write segment");
    }
}

#[test]
fn modified_entry_breaks_the_chain() {
    let s = sealed_log("e2e.test/modified");
    let seg = middle_segment(&s.store());
    let mut lines = read_lines(&seg.path);
    lines[1] = modify_status(&lines[1]);
    write_lines(&seg.path, &lines);

    s.verify(&["--json"])
        .expect_code(1)
        .expect_problem("chain_broken", &format!("{}:2", seg.key))
        .expect_no_class("mac_mismatch");

    // Export verifies first and prints nothing from a tampered store.
    let (store, pk) = (s.store(), s.public_key());
    let export = s.run(&["export", "--store", path(&store), "--public-key", path(&pk)]);
    export.expect_code(1);
    if export.stdout().lines().any(|l| l.starts_with('{')) {
        export.fail("export printed entries of a tampered store");
    }
}

#[test]
fn rewrite_by_hmac_key_holder_contradicts_the_signed_checkpoints() {
    let s = sealed_log("e2e.test/insider");
    let seg = middle_segment(&s.store());
    let mac_key = load_mac_key(&s.hmac_key());
    rewrite_from(&s.store(), &s.origin, seg.first + 1, Some(&mac_key));

    // Chain and MACs are consistent again: only the signatures give it away.
    let cp = checkpoint_of_size(&s.store(), seg.last + 1);
    s.verify(&["--json"])
        .expect_code(1)
        .expect_problem("checkpoint_mismatch", &cp)
        .expect_no_class("chain_broken")
        .expect_no_class("mac_mismatch")
        .expect_no_class("sequence_mismatch");
}

#[test]
fn rewrite_without_the_hmac_key_fails_the_mac_check() {
    let s = sealed_log("e2e.test/outsider");
    let seg = middle_segment(&s.store());
    rewrite_from(&s.store(), &s.origin, seg.first + 1, None);

    s.verify(&["--json"])
        .expect_code(1)
        .expect_problem("mac_mismatch", &format!("{}:2", seg.key))
        .expect_problem(
            "checkpoint_mismatch",
            &checkpoint_of_size(&s.store(), seg.last + 1),
        )
        .expect_no_class("chain_broken");
}

#[test]
fn deleted_entry_with_the_segment_renamed() {
    let s = sealed_log("e2e.test/deleted-renamed");
    let seg = middle_segment(&s.store());
    let next = next_segment(&s.store(), &seg);
    let mut lines = read_lines(&seg.path);
    lines.remove(2);
    write_lines(&seg.path, &lines);
    let key = rename(&s.store(), &seg, seg.first, seg.last - 1);

    s.verify(&["--json"])
        .expect_code(1)
        .expect_problem("sequence_mismatch", &format!("{key}:3"))
        .expect_problem("chain_broken", &format!("{key}:3"))
        .expect_problem("missing_entries", &next.key);
}

#[test]
fn deleted_entry_without_renaming_the_segment() {
    let s = sealed_log("e2e.test/deleted");
    let seg = middle_segment(&s.store());
    let mut lines = read_lines(&seg.path);
    lines.remove(2);
    write_lines(&seg.path, &lines);

    s.verify(&["--json"])
        .expect_code(1)
        .expect_problem("segment_name_mismatch", &seg.key)
        .expect_problem("chain_broken", &format!("{}:3", seg.key));
}

#[test]
fn inserted_entry() {
    let s = sealed_log("e2e.test/inserted");
    let seg = middle_segment(&s.store());
    let mut lines = read_lines(&seg.path);
    lines.insert(2, lines[1].clone());
    write_lines(&seg.path, &lines);

    s.verify(&["--json"])
        .expect_code(1)
        .expect_problem("sequence_mismatch", &format!("{}:3", seg.key))
        .expect_problem("chain_broken", &format!("{}:3", seg.key))
        .expect_problem("segment_name_mismatch", &seg.key);
}

#[test]
fn swapped_entries() {
    let s = sealed_log("e2e.test/swapped");
    let seg = middle_segment(&s.store());
    let mut lines = read_lines(&seg.path);
    lines.swap(1, 2);
    write_lines(&seg.path, &lines);

    s.verify(&["--json"])
        .expect_code(1)
        .expect_problem("chain_broken", &format!("{}:2", seg.key))
        .expect_problem("sequence_mismatch", &format!("{}:2", seg.key))
        .expect_problem("sequence_mismatch", &format!("{}:3", seg.key))
        .expect_no_class("segment_name_mismatch");
}

#[test]
fn deleted_segment() {
    let s = sealed_log("e2e.test/deleted-segment");
    let seg = middle_segment(&s.store());
    let next = next_segment(&s.store(), &seg);
    fs::remove_file(&seg.path).unwrap();

    s.verify(&["--json"])
        .expect_code(1)
        .expect_problem("missing_entries", &next.key);
}
