//! A stored segment (sealed record lines): any bytes are checked without panicking, with and
//! without the MAC key, in one piece and in several (the same findings), and every line goes
//! through the record parser.
#![no_main]

use auditlog::chain::MacKey;
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
        let _ = parse_record(line);
    }
});
