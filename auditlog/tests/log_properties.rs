//! Property tests of the whole format: a log written by `LogSealer`, cut into segments and
//! signed, always verifies; any single tampering of a stored object never does.

use auditlog::chain::MacKey;
use auditlog::entry::{EntryKind, EntrySource};
use auditlog::head::LogHead;
use auditlog::layout;
use auditlog::note::NoteSigner;
use auditlog::seal::LogSealer;
use auditlog::timestamp::Timestamp;
use auditlog::verify::{Report, StoreVerifier, check_segment};
use proptest::prelude::*;

const ORIGIN: &str = "example.com/audit-test";

/// A store in memory: (key, bytes) in key order.
type Objects = Vec<(String, Vec<u8>)>;

fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, [7; 32]).unwrap()
}

fn mac_key() -> MacKey {
    MacKey::new(&[9; 32])
}

/// Seal `n` entries, cut after each index in `cuts`, sign a checkpoint per segment.
fn build(n: usize, cuts: &[usize]) -> Objects {
    let signer = signer();
    let mut sealer = LogSealer::new(ORIGIN, mac_key());
    let mut objects = Objects::new();
    let mut segment = Vec::new();
    let mut first = 0u64;
    for i in 0..n {
        let event = format!(r#"{{"n":{i}}}"#);
        let source = EntrySource {
            id: "gw/w0/a".into(),
            seq: Some(i as u64 + 1),
        };
        let at = Timestamp::from_unix_nanos(1_800_000_000_000_000_000 + i as i64);
        sealer.seal(
            &mut segment,
            EntryKind::Http,
            at,
            Some(&source),
            event.as_bytes(),
        );
        if cuts.contains(&i) || i + 1 == n {
            let last = sealer.size() - 1;
            objects.push((
                layout::segment_key(first, last),
                std::mem::take(&mut segment),
            ));
            let head = LogHead {
                origin: ORIGIN.into(),
                size: sealer.size(),
                root: sealer.frontier().root(),
                chain: sealer.head(),
                time: Timestamp::from_unix_nanos(1_900_000_000_000_000_000 + i as i64),
            };
            objects.push((head.key(), head.sign(&signer).unwrap().into_bytes()));
            first = last + 1;
        }
    }
    objects.sort();
    objects
}

fn verify(objects: &Objects) -> Report {
    let mac = mac_key();
    let mut v = StoreVerifier::new(signer().verifier(), true);
    for (k, b) in objects {
        if k.starts_with(layout::CHECKPOINTS) {
            v.add_checkpoint(k, std::str::from_utf8(b).unwrap_or(""));
        }
    }
    for (k, b) in objects {
        if k.starts_with(layout::SEGMENTS) {
            v.absorb(check_segment(k, b, Some(&mac)));
        } else if !k.starts_with(layout::CHECKPOINTS) {
            v.unknown_object(k);
        }
    }
    v.finish()
}

fn segment_indices(objects: &Objects) -> Vec<usize> {
    (0..objects.len())
        .filter(|&i| objects[i].0.starts_with(layout::SEGMENTS))
        .collect()
}

#[derive(Debug, Clone)]
enum Tamper {
    FlipByte { object: usize, at: usize, bit: u8 },
    DeleteLine { object: usize, line: usize },
    DuplicateLine { object: usize, line: usize },
    SwapLines { object: usize, a: usize, b: usize },
    DeleteObject { object: usize },
    TruncateBytes { object: usize, keep: usize },
}

fn lines(b: &[u8]) -> Vec<Vec<u8>> {
    b.split_inclusive(|&c| c == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// Apply a tampering; returns false if it happens to change nothing.
fn apply(objects: &mut Objects, t: &Tamper) -> bool {
    let segs = segment_indices(objects);
    let pick = |i: usize| segs[i % segs.len()];
    match *t {
        Tamper::FlipByte { object, at, bit } => {
            let len = objects.len();
            let o = &mut objects[object % len].1;
            let at = at % o.len();
            o[at] ^= 1 << (bit % 8);
        }
        Tamper::DeleteLine { object, line } => {
            let o = &mut objects[pick(object)].1;
            let mut l = lines(o);
            l.remove(line % l.len());
            *o = l.concat();
        }
        Tamper::DuplicateLine { object, line } => {
            let o = &mut objects[pick(object)].1;
            let mut l = lines(o);
            let i = line % l.len();
            l.insert(i, l[i].clone());
            *o = l.concat();
        }
        Tamper::SwapLines { object, a, b } => {
            let o = &mut objects[pick(object)].1;
            let mut l = lines(o);
            let (a, b) = (a % l.len(), b % l.len());
            if l[a] == l[b] {
                return false;
            }
            l.swap(a, b);
            *o = l.concat();
        }
        Tamper::DeleteObject { object } => {
            // Older checkpoints are redundant (each newer one covers them): deleting one is
            // not detectable, as docs/security.md says. Delete a segment or the newest one.
            let newest = objects
                .iter()
                .rposition(|(k, _)| k.starts_with(layout::CHECKPOINTS));
            let mut candidates = segs.clone();
            candidates.extend(newest);
            objects.remove(candidates[object % candidates.len()]);
        }
        Tamper::TruncateBytes { object, keep } => {
            let o = &mut objects[pick(object)].1;
            let keep = keep % o.len();
            o.truncate(keep);
        }
    }
    true
}

fn tamper_strategy() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (any::<usize>(), any::<usize>(), any::<u8>())
            .prop_map(|(object, at, bit)| Tamper::FlipByte { object, at, bit }),
        (any::<usize>(), any::<usize>())
            .prop_map(|(object, line)| Tamper::DeleteLine { object, line }),
        (any::<usize>(), any::<usize>())
            .prop_map(|(object, line)| Tamper::DuplicateLine { object, line }),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(object, a, b)| Tamper::SwapLines { object, a, b }),
        any::<usize>().prop_map(|object| Tamper::DeleteObject { object }),
        (any::<usize>(), any::<usize>())
            .prop_map(|(object, keep)| Tamper::TruncateBytes { object, keep }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn untampered_logs_verify(n in 1usize..120, cuts in proptest::collection::vec(0usize..120, 0..6)) {
        let objects = build(n, &cuts);
        let report = verify(&objects);
        prop_assert!(report.ok, "{:?}", report.problems);
        prop_assert_eq!(report.entries, n as u64);
    }

    #[test]
    fn any_tampering_is_detected(
        n in 2usize..80,
        cuts in proptest::collection::vec(0usize..80, 0..5),
        tamper in tamper_strategy(),
    ) {
        let mut objects = build(n, &cuts);
        prop_assume!(apply(&mut objects, &tamper));
        let report = verify(&objects);
        prop_assert!(!report.ok, "undetected: {:?}", tamper);
        prop_assert!(!report.problems.is_empty());
    }
}

#[test]
fn deleting_the_newest_segment_and_checkpoint_is_caught_only_by_a_trusted_checkpoint() {
    let objects = build(30, &[9, 19]);
    let newest_checkpoint = objects
        .iter()
        .rfind(|(k, _)| k.starts_with(layout::CHECKPOINTS))
        .unwrap()
        .clone();
    // Roll back: drop the last segment and its checkpoint.
    let rolled: Objects = objects
        .iter()
        .filter(|(k, _)| k != &newest_checkpoint.0 && k != &layout::segment_key(20, 29))
        .cloned()
        .collect();
    assert!(
        verify(&rolled).ok,
        "a consistent rollback looks fine on its own"
    );

    let mac = mac_key();
    let mut v = StoreVerifier::new(signer().verifier(), true);
    v.add_trusted_checkpoint(
        "saved.note",
        std::str::from_utf8(&newest_checkpoint.1).unwrap(),
    )
    .unwrap();
    for (k, b) in &rolled {
        if k.starts_with(layout::CHECKPOINTS) {
            v.add_checkpoint(k, std::str::from_utf8(b).unwrap());
        }
    }
    for (k, b) in &rolled {
        if k.starts_with(layout::SEGMENTS) {
            v.absorb(check_segment(k, b, Some(&mac)));
        }
    }
    let report = v.finish();
    assert!(!report.ok);
    assert_eq!(report.problems[0].location, "saved.note");
    assert!(
        report.problems[0]
            .message
            .contains("truncated or rolled back")
    );
}

#[test]
fn a_log_of_another_origin_fails_the_chain_and_the_checkpoints() {
    let objects = build(10, &[4]);
    let other = NoteSigner::from_seed("example.com/other", [7; 32]).unwrap();
    let mut v = StoreVerifier::new(other.verifier(), false);
    for (k, b) in &objects {
        if k.starts_with(layout::CHECKPOINTS) {
            v.add_checkpoint(k, std::str::from_utf8(b).unwrap());
        }
    }
    for (k, b) in &objects {
        if k.starts_with(layout::SEGMENTS) {
            v.absorb(check_segment(k, b, None));
        }
    }
    let report = v.finish();
    assert!(!report.ok);
    let classes: Vec<_> = report.problems.iter().map(|p| p.class).collect();
    assert!(classes.contains(&auditlog::verify::ProblemClass::BadCheckpoint));
    assert!(classes.contains(&auditlog::verify::ProblemClass::ChainBroken));
}

/// A stored segment cut at any byte offset (a torn write that reached the store, or a
/// truncated object) never verifies, whichever segment it is: every cut is reported.
#[test]
fn a_segment_cut_at_every_byte_offset_is_always_reported() {
    let objects = build(6, &[2]);
    assert!(verify(&objects).ok);
    for i in segment_indices(&objects) {
        let len = objects[i].1.len();
        for keep in 0..len {
            let mut cut = objects.clone();
            cut[i].1.truncate(keep);
            let report = verify(&cut);
            assert!(
                !report.ok,
                "{} cut to {keep} of {len} bytes verified",
                objects[i].0
            );
        }
    }
}
