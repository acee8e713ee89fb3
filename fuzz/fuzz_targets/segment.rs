//! A stored segment (sealed record lines): any bytes are checked without panicking, with and
//! without the MAC key, in one piece and in several (the same findings), and every line goes
//! through the record parser. Every record's entry head reads as serde_json reads it: the
//! fast readers (the shapes this process has learned from earlier inputs, the compact reader,
//! the general scanner) accept exactly what serde_json accepts, with the same values.
#![no_main]

use auditlog::chain::MacKey;
use auditlog::entry::EntryHead;
use auditlog::record::parse_record;
use auditlog::verify::{SegmentPlan, check_segment};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "segments/00000000000000000001-00000000000000000003.ndjson";

fuzz_target!(|data: &[u8]| {
    let mac = MacKey::new(&[0x5a; 32]);
    let with = check_segment(KEY, data, Some(&mac));
    let without = check_segment(KEY, data, None);
    assert_eq!(with.records, without.records);
    let plan = SegmentPlan::new(KEY, data, 3);
    let pieces = (0..plan.pieces())
        .map(|i| plan.check_piece(i, data, Some(&mac)))
        .collect();
    let split = plan.finish(pieces, data, Some(&mac));
    assert_eq!(split.records, with.records);
    assert_eq!(split.leaves, with.leaves);
    assert_eq!(split.problems, with.problems);
    for line in data.split(|&b| b == b'\n') {
        let Ok(record) = parse_record(line) else {
            continue;
        };
        let fast = EntryHead::parse(record.entry);
        if std::str::from_utf8(record.entry).is_err() {
            assert!(fast.is_err(), "accepted an entry that is not UTF-8");
            continue;
        }
        match (fast, serde_json::from_slice::<EntryHead>(record.entry)) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            (fast, slow) => panic!(
                "{:?}: fast {fast:?}, serde_json {:?}",
                String::from_utf8_lossy(record.entry),
                slow.map_err(|e| e.to_string())
            ),
        }
    }
});
