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
use auditlog::tiles::TileId;
use harness::Sealer;
use harness::files::make_writable;
use harness::sealer::events;

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

#[test]
fn max_age_fails_a_log_whose_newest_checkpoint_is_older() {
    let s = sealed_log("e2e.test/max-age");
    let fresh = s.verify(&["--json", "--max-age", "1h"]);
    fresh.expect_code(0);
    let report = fresh.json();
    let newest = report["newest_checkpoint"]["key"]
        .as_str()
        .unwrap_or_else(|| fresh.fail("no newest checkpoint in the report"));
    // Every checkpoint was signed before now: with no age allowed, the newest one is stale.
    s.verify(&["--json", "--max-age", "0s"])
        .expect_code(1)
        .expect_problem("stale", newest);
    let human = s.verify(&["--max-age", "0s"]);
    human.expect_code(1);
    if !human
        .stdout()
        .contains("the log stalled or was rolled back")
    {
        human.fail("expected the stale checkpoint named in the report");
    }
}

/// `sealer verify --json` of `store` with `public_key` and no HMAC key.
fn verify_without_hmac(s: &Sealer, store: &Path, public_key: &Path) -> harness::Run {
    s.run(&[
        "verify",
        "--store",
        path(store),
        "--public-key",
        path(public_key),
        "--json",
    ])
}

/// `sealer verify --json` with another public key (and the log's HMAC key).
fn verify_with_key(s: &Sealer, public_key: &Path) -> harness::Run {
    let (store, hk) = (s.store(), s.hmac_key());
    s.run(&[
        "verify",
        "--store",
        path(&store),
        "--public-key",
        path(public_key),
        "--hmac-key",
        path(&hk),
        "--json",
    ])
}

/// A second key set for `origin` in `<sealer dir>/<dir>`.
fn other_keys(s: &Sealer, dir: &str, origin: &str) -> PathBuf {
    let out = s.root().join(dir);
    s.run(&["keygen", "--out", path(&out), "--origin", origin])
        .expect_code(0);
    out
}

/// The signed note with its body edited; the signature lines are kept as they are.
fn forge(signed: &str, edit: impl FnOnce(&mut Checkpoint)) -> String {
    let note = Note::parse(signed).expect("a signed note");
    let mut cp = Checkpoint::parse_body(&note.text).expect("a checkpoint body");
    edit(&mut cp);
    let forged = format!("{}{}", cp.to_body(), &signed[note.text.len()..]);
    assert_ne!(forged, signed, "the edit changed nothing");
    forged
}

fn read_checkpoint(store: &Path, key: &str) -> String {
    fs::read_to_string(store.join(key)).expect("read checkpoint")
}

/// Panic unless the problems of `run` are exactly `expected`.
fn expect_only(run: &harness::Run, expected: &[(&str, &str)]) {
    let found = run.problems();
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(c, l)| (c.to_string(), l.to_string()))
        .collect();
    if found != expected {
        run.fail(&format!(
            "expected exactly the problems {expected:#?}; found {found:#?}"
        ));
    }
}

#[test]
fn deleted_segment_reports_no_phantom_overlap() {
    let s = sealed_log("e2e.test/deleted-segment-no-overlap");
    let seg = middle_segment(&s.store());
    let next = next_segment(&s.store(), &seg);
    fs::remove_file(&seg.path).unwrap();

    s.verify(&["--json"])
        .expect_code(1)
        .expect_problem("missing_entries", &next.key)
        .expect_no_class("overlapping_segment");
}

#[test]
fn duplicated_segment() {
    let s = sealed_log("e2e.test/duplicated-segment");
    let seg = middle_segment(&s.store());
    let next = next_segment(&s.store(), &seg);
    let mut lines = read_lines(&seg.path);
    lines.extend(read_lines(&next.path));
    let key = layout::segment_key(seg.first, next.last);
    write_lines(&s.store().join(&key), &lines);

    let run = s.verify(&["--json"]);
    run.expect_code(1);
    expect_only(&run, &[("overlapping_segment", &key)]);
}

#[test]
fn inserted_entry_does_not_cascade() {
    let s = sealed_log("e2e.test/inserted-no-cascade");
    let seg = middle_segment(&s.store());
    let later: Vec<Segment> = segments(&s.store())
        .into_iter()
        .filter(|x| x.first > seg.last)
        .collect();
    assert!(!later.is_empty(), "{} is the last segment", seg.key);
    let mut lines = read_lines(&seg.path);
    lines.insert(2, lines[1].clone());
    write_lines(&seg.path, &lines);

    let run = s.verify(&["--json"]);
    run.expect_code(1)
        .expect_problem("chain_broken", &format!("{}:3", seg.key))
        .expect_problem("segment_name_mismatch", &seg.key)
        .expect_no_class("overlapping_segment")
        .expect_no_class("missing_entries");
    for (class, location) in run.problems() {
        if later.iter().any(|x| location.starts_with(&x.key)) {
            run.fail(&format!(
                "{class} at {location}: a later segment is blamed for an insertion in {}",
                seg.key
            ));
        }
    }
}

#[test]
fn truncated_tail() {
    let s = sealed_log("e2e.test/truncated");
    let segs = segments(&s.store());
    assert!(segs.len() >= 3, "{segs:#?}");
    for seg in &segs[segs.len() - 2..] {
        fs::remove_file(&seg.path).unwrap();
    }
    let (newest, _) = newest_checkpoint(&s.store());

    s.verify(&["--json"])
        .expect_code(1)
        .expect_problem("truncated", &newest);
}

#[test]
fn rollback_is_caught_by_a_saved_checkpoint() {
    let s = sealed_log("e2e.test/rollback");
    let saved = s.root().join("saved.note");
    s.verify(&["--json", "--save-checkpoint", path(&saved)])
        .expect_code(0);
    let (newest, _) = newest_checkpoint(&s.store());
    if fs::read_to_string(&saved).ok() != Some(read_checkpoint(&s.store(), &newest)) {
        panic!("{} is not the newest checkpoint {newest}", saved.display());
    }

    // Roll the store back by one segment, removing every checkpoint that would tell.
    roll_back_one_segment(&s.store());
    s.verify(&["--json"]).expect_code(0);

    s.verify(&["--json", "--checkpoint", path(&saved)])
        .expect_code(1)
        .expect_problem("truncated", path(&saved));
}

#[test]
fn deleted_checkpoints() {
    let s = sealed_log("e2e.test/deleted-checkpoints");

    let all = s.copy_store("no-checkpoints");
    for (key, _) in checkpoints(&all) {
        fs::remove_file(all.join(key)).unwrap();
    }
    s.verify_store(&all, &["--json"])
        .expect_code(1)
        .expect_problem("no_checkpoint", layout::CHECKPOINTS);

    // The newest checkpoint; should the sealer have re-signed the same size on its timer,
    // those copies too, so that what remains is an older size.
    let (_, newest_size) = newest_checkpoint(&s.store());
    for (key, size) in checkpoints(&s.store()) {
        if size == newest_size {
            fs::remove_file(s.store().join(key)).unwrap();
        }
    }
    let (_, remaining) = newest_checkpoint(&s.store());
    s.verify(&["--json"])
        .expect_code(1)
        .expect_problem(
            "unsigned_tail",
            &layout::segment_key(remaining, newest_size - 1),
        )
        .expect_no_class("no_checkpoint");
}

#[test]
fn forged_checkpoint() {
    let s = sealed_log("e2e.test/forged-checkpoint");
    let (store, pk) = (s.store(), s.public_key());
    s.run(&[
        "checkpoint",
        "--store",
        path(&store),
        "--public-key",
        path(&pk),
    ])
    .expect_code(0);
    let (newest, _) = newest_checkpoint(&store);
    let signed = read_checkpoint(&store, &newest);

    let copy = s.copy_store("forged-size");
    fs::write(copy.join(&newest), forge(&signed, |cp| cp.size += 1)).unwrap();
    s.verify_store(&copy, &["--json"])
        .expect_code(1)
        .expect_problem("bad_checkpoint", &newest);
    s.run(&[
        "checkpoint",
        "--store",
        path(&copy),
        "--public-key",
        path(&pk),
    ])
    .expect_code(1);

    let copy = s.copy_store("forged-root");
    fs::write(copy.join(&newest), forge(&signed, |cp| cp.root[0] ^= 1)).unwrap();
    s.verify_store(&copy, &["--json"])
        .expect_code(1)
        .expect_problem("bad_checkpoint", &newest);
    s.run(&[
        "checkpoint",
        "--store",
        path(&copy),
        "--public-key",
        path(&pk),
    ])
    .expect_code(1);

    // An older checkpoint, too.
    let (older, _) = checkpoints(&store)[0].clone();
    let copy = s.copy_store("forged-older");
    let signed = read_checkpoint(&store, &older);
    fs::write(copy.join(&older), forge(&signed, |cp| cp.root[31] ^= 0x80)).unwrap();
    s.verify_store(&copy, &["--json"])
        .expect_code(1)
        .expect_problem("bad_checkpoint", &older);
}

#[test]
fn checkpoint_signed_by_another_key_of_the_same_origin() {
    let s = sealed_log("e2e.test/other-key");
    let keys = other_keys(&s, "other-keys", &s.origin);
    let other = NoteSigner::parse(&fs::read_to_string(keys.join("signing.key")).unwrap())
        .expect("a signing key");
    let verifier =
        auditlog::note::NoteVerifier::parse(&fs::read_to_string(s.public_key()).unwrap())
            .expect("a public key");
    assert_eq!(other.name(), verifier.name(), "same origin");
    assert_ne!(other.key_id(), verifier.key_id(), "another key");

    let store = s.store();
    let (newest, _) = newest_checkpoint(&store);
    let head = LogHead::open(&read_checkpoint(&store, &newest), &verifier).expect("valid");
    assert_eq!(head.key(), newest);

    let copy = s.copy_store("re-signed");
    fs::write(copy.join(&newest), head.sign(&other).unwrap()).unwrap();
    s.verify_store(&copy, &["--json"])
        .expect_code(1)
        .expect_problem("bad_checkpoint", &newest);

    // A head that claims more entries than the store holds, signed by the wrong key, is
    // rejected for its signature and is no evidence of truncation.
    let longer = LogHead {
        size: head.size + 10,
        ..head.clone()
    };
    let copy = s.copy_store("re-signed-longer");
    fs::write(copy.join(longer.key()), longer.sign(&other).unwrap()).unwrap();
    s.verify_store(&copy, &["--json"])
        .expect_code(1)
        .expect_problem("bad_checkpoint", &longer.key())
        .expect_no_class("truncated");
}

#[test]
fn entries_spliced_from_another_log() {
    let s = sealed_log("e2e.test/splice-target");
    let other = sealed_log("e2e.test/splice-source");
    let theirs: Vec<Vec<u8>> = segments(&other.store())
        .iter()
        .flat_map(|seg| read_lines(&seg.path))
        .collect();
    let first = segments(&s.store()).remove(0);
    assert_eq!(first.first, 0);
    let spliced = &theirs[..=first.last as usize];
    write_lines(&first.path, spliced);

    let at = format!("{}:1", first.key);
    s.verify(&["--json"])
        .expect_code(1)
        .expect_problem("chain_broken", &at);
    verify_without_hmac(&s, &s.store(), &s.public_key())
        .expect_code(1)
        .expect_problem("chain_broken", &at);
}

#[test]
fn torn_last_line() {
    let s = sealed_log("e2e.test/torn");
    let last = segments(&s.store()).pop().unwrap();
    let lines = read_lines(&last.path);
    let mut bytes = fs::read(&last.path).unwrap();
    let last_line = lines.last().unwrap();
    bytes.truncate(bytes.len() - 1 - last_line.len() / 2);
    fs::write(&last.path, bytes).unwrap();

    s.verify(&["--json"])
        .expect_code(1)
        .expect_problem("torn_segment", &format!("{}:{}", last.key, lines.len()));
}

#[test]
fn unknown_objects() {
    let s = sealed_log("e2e.test/unknown-objects");
    fs::write(s.store().join("README.txt"), "hello\n").unwrap();
    fs::write(s.store().join("segments/notes.ndjson"), "{}\n").unwrap();

    s.verify(&["--json"])
        .expect_code(1)
        .expect_problem("unknown_object", "README.txt")
        .expect_problem("unknown_object", "segments/notes.ndjson");
}

#[test]
fn wrong_public_key() {
    let s = sealed_log("e2e.test/wrong-key");
    let first = segments(&s.store()).remove(0);

    let elsewhere = other_keys(&s, "other-origin", "e2e.test/another-log");
    verify_with_key(&s, &elsewhere.join("signing.pub"))
        .expect_code(1)
        .expect_class("bad_checkpoint")
        .expect_problem("chain_broken", &format!("{}:1", first.key));

    let same_origin = other_keys(&s, "same-origin", &s.origin);
    verify_with_key(&s, &same_origin.join("signing.pub"))
        .expect_code(1)
        .expect_class("bad_checkpoint");
}

#[test]
fn missing_store_is_an_error_not_a_verdict() {
    let s = sealed_log("e2e.test/missing-store");
    let run = s.verify_store(&s.root().join("no-such-store"), &["--json"]);
    run.expect_code(2);
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    if !stderr.contains("does not exist") {
        run.fail("stderr should say that the store does not exist");
    }
}

#[test]
fn json_report_lists_every_problem() {
    let s = sealed_log("e2e.test/json-report");
    let seg = middle_segment(&s.store());
    let mut lines = read_lines(&seg.path);
    lines[1] = modify_status(&lines[1]);
    write_lines(&seg.path, &lines);
    let location = format!("{}:2", seg.key);

    let run = s.verify(&["--json"]);
    run.expect_code(1).expect_problem("chain_broken", &location);
    let report = run.json();
    let problems = report["problems"].as_array().expect("a problems array");
    if report["ok"] != false || report["problem_count"] != problems.len() {
        run.fail("ok is false and problem_count counts the problems listed");
    }
    for p in problems {
        let text = |k: &str| p[k].as_str().is_some_and(|v| !v.is_empty());
        if !(text("class") && text("location") && text("message")) {
            run.fail(&format!(
                "a problem without class, location or message: {p}"
            ));
        }
    }

    let human = s.verify(&[]);
    human.expect_code(1);
    let out = human.stdout();
    if !out.starts_with("FAILED") || !out.contains(&location) {
        human.fail(&format!(
            "the report starts with FAILED and names {location}"
        ));
    }
}

/// Roll `store` back by its last segment, removing every checkpoint that would tell: the
/// store then verifies on its own. Returns the segment removed.
/// Roll the store back by its newest segment, as someone with write access who knows the
/// layout would: the checkpoints and tiles of the entries removed go too, so that what
/// remains is a consistent, smaller log.
fn roll_back_one_segment(store: &Path) -> Segment {
    let last = segments(store).pop().unwrap();
    fs::remove_file(&last.path).unwrap();
    for (key, size) in checkpoints(store) {
        if size > last.first {
            fs::remove_file(store.join(key)).unwrap();
        }
    }
    for (key, id) in tiles(store) {
        let hashes = last.first >> (8 * u32::from(id.level));
        if id.first_hash() + u64::from(id.width) > hashes {
            fs::remove_file(store.join(key)).unwrap();
        }
    }
    last
}

/// Every tile in a local store: `(key, id)`.
fn tiles(store: &Path) -> Vec<(String, TileId)> {
    let mut out = Vec::new();
    let mut dirs = vec![store.join("tile")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let key = path
                    .strip_prefix(store)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                let id = TileId::parse(&key).unwrap_or_else(|| panic!("{key} is not a tile"));
                out.push((key, id));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_sealer_refuses_to_start_on_a_store_rolled_back_behind_its_last_checkpoint() {
    let s = sealed_log("e2e.test/rollback-start");
    let removed = roll_back_one_segment(&s.store());
    // On its own the rolled-back store is consistent ...
    s.verify(&["--json"]).expect_code(0);
    // ... but the sealer kept its last checkpoint in its data directory and will not append
    // to a store behind it.
    let (keys, store, data) = (s.keys_dir(), s.store(), s.data_dir());
    let run = s.run(&[
        "serve",
        "--keys",
        path(&keys),
        "--store",
        path(&store),
        "--data-dir",
        path(&data),
        "--listen",
        "127.0.0.1:0",
    ]);
    run.expect_code(2);
    let stderr = String::from_utf8_lossy(&run.output.stderr).into_owned();
    assert!(
        stderr.contains("will not append") && stderr.contains("truncated"),
        "the refusal names the rollback (segment {} removed):\n{}",
        removed.key,
        run.context
    );
    assert!(!s.is_running());
}

#[test]
fn get_verify_catches_a_rollback_while_the_sealer_runs() {
    let s = Sealer::start(
        "e2e.test/rollback-live",
        &[
            "--segment-max-age",
            "300ms",
            "--segment-max-bytes",
            "1500",
            "--checkpoint-interval",
            "60s",
        ],
    );
    for batch in 0..6 {
        s.seal(&events(SOURCE, 1 + batch * 5, 5));
    }
    s.wait_stored();
    assert_eq!(s.get_json("/verify")["ok"], true);
    make_writable(&s.store());
    roll_back_one_segment(&s.store());
    let report = s.get_json("/verify");
    assert_eq!(report["ok"], false, "{report}");
    let classes: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["class"].as_str())
        .collect();
    assert!(classes.contains(&"truncated"), "{report}");
}

/// A log of more than two full level-0 tiles: 600 events and the start entry.
fn tiled_log(origin: &str) -> Sealer {
    let mut s = Sealer::start(origin, &["--segment-max-age", "200ms"]);
    for batch in 0..6 {
        s.seal(&events(SOURCE, 1 + batch * 100, 100));
    }
    s.stop();
    let run = s.verify(&["--json"]);
    run.expect_code(0);
    let report = run.json();
    let keys: Vec<String> = tiles(&s.store()).into_iter().map(|(k, _)| k).collect();
    for needed in [
        "tile/0/000",
        "tile/0/001",
        "tile/0/002.p/89",
        "tile/1/000.p/2",
    ] {
        if !keys.iter().any(|k| k == needed) {
            run.fail(&format!("the store should hold {needed}; it has {keys:#?}"));
        }
    }
    if report["entries"] != 601 || report["tiles_checked"].as_u64().unwrap_or(0) < 4 {
        run.fail("601 entries and every tile checked");
    }
    s
}

/// The tiles of a log whose leaves are `leaves`: `(key, bytes)` of every full tile and the
/// partial tiles of its size.
fn tiles_of_leaves(leaves: &[auditlog::merkle::Hash]) -> Vec<(String, Vec<u8>)> {
    let mut b = auditlog::tiles::TileBuilder::new();
    let mut out = Vec::new();
    for leaf in leaves {
        b.push(*leaf, |id, bytes| out.push((id.key(), bytes)));
    }
    out.extend(
        b.partial_tiles()
            .into_iter()
            .map(|(id, bytes)| (id.key(), bytes)),
    );
    out
}

#[test]
fn edited_missing_and_extra_tiles_are_caught_and_named() {
    let s = tiled_log("e2e.test/tiles");

    let edited = s.copy_store("edited-tile");
    let mut bytes = fs::read(edited.join("tile/0/001")).unwrap();
    bytes[32 * 7] ^= 1;
    fs::write(edited.join("tile/0/001"), &bytes).unwrap();
    let run = s.verify_store(&edited, &["--json"]);
    run.expect_code(1)
        .expect_problem("tile_mismatch", "tile/0/001");
    if !run.stdout().contains("hash 7 of the tile") {
        run.fail("the problem should say which hash of the tile differs");
    }

    let short = s.copy_store("short-tile");
    fs::write(short.join("tile/1/000.p/2"), [0u8; 32]).unwrap();
    s.verify_store(&short, &["--json"])
        .expect_code(1)
        .expect_problem("tile_mismatch", "tile/1/000.p/2");

    let missing = s.copy_store("missing-tile");
    fs::remove_file(missing.join("tile/0/000")).unwrap();
    fs::remove_file(missing.join("tile/0/002.p/89")).unwrap();
    s.verify_store(&missing, &["--json"])
        .expect_code(1)
        .expect_problem("missing_tile", "tile/0/000")
        .expect_problem("missing_tile", "tile/0/002.p/89");

    let extra = s.copy_store("extra-tile");
    fs::create_dir_all(extra.join("tile/0/002.p")).unwrap();
    fs::write(extra.join("tile/0/002.p/200"), vec![7u8; 32 * 200]).unwrap();
    fs::write(extra.join("tile/0/005"), vec![7u8; 32 * 256]).unwrap();
    s.verify_store(&extra, &["--json"])
        .expect_code(1)
        .expect_problem("extra_tile", "tile/0/002.p/200")
        .expect_problem("extra_tile", "tile/0/005");

    let misnamed = s.copy_store("misnamed-tile");
    fs::write(misnamed.join("tile/0/07"), [0u8; 32]).unwrap();
    s.verify_store(&misnamed, &["--json"])
        .expect_code(1)
        .expect_problem("unknown_object", "tile/0/07");
}

/// Tiles rewritten consistently for entries that are not the log's (one entry changed,
/// every tile recomputed from the changed leaves) disagree with the stored entries.
#[test]
fn tiles_recomputed_for_other_entries_disagree_with_the_log() {
    let s = tiled_log("e2e.test/tiles-other");
    let copy = s.copy_store("other-tiles");
    let mut leaves = Vec::new();
    for seg in segments(&copy) {
        for line in read_lines(&seg.path) {
            leaves.push(leaf_hash(parse_record(&line).unwrap().entry));
        }
    }
    leaves[300] = leaf_hash(b"an entry that was never sealed");
    for (key, bytes) in tiles_of_leaves(&leaves) {
        let path = copy.join(&key);
        if path.exists() {
            fs::write(path, bytes).unwrap();
        }
    }
    let run = s.verify_store(&copy, &["--json"]);
    run.expect_code(1)
        .expect_problem("tile_mismatch", "tile/0/001")
        .expect_problem("tile_mismatch", "tile/1/000.p/2");
}

/// A store written before tiles verifies, with a warning; a sealer started on it writes
/// every tile once and says so.
#[test]
fn a_store_without_tiles_verifies_and_the_sealer_writes_them_once() {
    let mut s = tiled_log("e2e.test/tiles-backfill");
    fs::remove_dir_all(s.store().join("tile")).unwrap();
    let run = s.verify(&["--json"]);
    run.expect_code(0);
    let warnings = run.json()["warnings"].to_string();
    if !warnings.contains("no tiles") {
        run.fail("a warning should say the store has no tiles");
    }
    s.restart();
    s.wait_until("the start entry is stored", || {
        s.metric("sealer_tiles_stored_total") > 0
    });
    s.stop();
    let log = fs::read_to_string(s.log_path()).unwrap();
    if !log.contains("written before tiles")
        || !log.contains("tiles written for entries stored without them")
    {
        s.fail("the sealer should say it wrote the missing tiles");
    }
    let run = s.verify(&["--json"]);
    run.expect_code(0);
    if run.json()["tiles_checked"].as_u64().unwrap_or(0) < 4 {
        run.fail("the backfilled tiles are checked");
    }
    assert!(s.store().join("tile/0/000").exists() && s.store().join("tile/0/001").exists());
}

/// `verify --checkpoint TRUSTED` checks only what came after the trusted checkpoint: the
/// newest checkpoint's consistency with it (from the tiles), then the new entries and their
/// tiles. What was verified before is not read again; `--full` reads everything.
#[test]
fn verification_resumes_from_a_trusted_checkpoint() {
    let mut s = tiled_log("e2e.test/incremental");
    let saved = s.root().join("trusted.note");
    s.verify(&["--json", "--save-checkpoint", path(&saved)])
        .expect_code(0);
    let trusted_size = LogHead::from_checkpoint(
        Checkpoint::parse_body(
            &Note::parse(&fs::read_to_string(&saved).unwrap())
                .unwrap()
                .text,
        )
        .unwrap(),
    )
    .unwrap()
    .size;
    s.restart();
    for batch in 0..3 {
        s.seal(&events(SOURCE, 601 + batch * 100, 100));
    }
    s.stop();

    let run = s.verify(&["--json", "--checkpoint", path(&saved)]);
    run.expect_code(0);
    let report = run.json();
    let entries = report["entries"].as_u64().unwrap();
    if report["verified_from"] != trusted_size || entries < trusted_size + 300 {
        run.fail(&format!(
            "should resume at {trusted_size} and reach the new entries"
        ));
    }
    if report["tiles_checked"].as_u64().unwrap_or(0) < 2 {
        run.fail("the new tiles are checked");
    }
    let text = s.verify(&["--checkpoint", path(&saved)]);
    text.expect_code(0);
    if !text.stdout().contains(&format!(
        "entries {trusted_size}..{entries} after the trusted checkpoint"
    )) {
        text.fail("the text report says what was verified");
    }

    // An entry before the trusted size is not read again; --full reads it.
    let before = s.copy_store("edited-before");
    let first = segments(&before).remove(0);
    let mut lines = read_lines(&first.path);
    lines[1] = replace_once(&lines[1], "\"status_code\":", "\"status_code\":1");
    write_lines(&first.path, &lines);
    s.verify_store(&before, &["--json", "--checkpoint", path(&saved)])
        .expect_code(0);
    s.verify_store(&before, &["--json", "--checkpoint", path(&saved), "--full"])
        .expect_code(1)
        .expect_class("chain_broken");

    // An entry after it is.
    let after = s.copy_store("edited-after");
    let last = segments(&after).pop().unwrap();
    assert!(last.first >= trusted_size);
    let mut lines = read_lines(&last.path);
    let n = lines.len() - 1;
    lines[n] = replace_once(&lines[n], "\"status_code\":", "\"status_code\":1");
    write_lines(&last.path, &lines);
    s.verify_store(&after, &["--json", "--checkpoint", path(&saved)])
        .expect_code(1)
        .expect_class("chain_broken");

    // A right-edge tile of the trusted tree edited: reported, and the log verified in full.
    let edge = s.copy_store("edited-edge");
    let edge_tile = auditlog::tiles::right_edge(trusted_size)[0];
    let tile_path = edge.join(edge_tile.key());
    let tile_path = if tile_path.exists() {
        tile_path
    } else {
        edge.join(TileId::full(edge_tile.level, edge_tile.index).key())
    };
    let mut bytes = fs::read(&tile_path).unwrap();
    bytes[0] ^= 1;
    fs::write(&tile_path, bytes).unwrap();
    s.verify_store(&edge, &["--json", "--checkpoint", path(&saved)])
        .expect_code(1)
        .expect_class("tile_mismatch");
}
