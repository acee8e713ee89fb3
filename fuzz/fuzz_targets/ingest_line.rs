//! One line of `POST /v1/events` (the sealer's ingest schema): any bytes are refused with an
//! error or parsed; a parsed event's canonical JSON parses again to the same event. The fast
//! path (`auditlog::event::canonical`) agrees with the slow one: what it accepts, the slow
//! path accepts with the same source and byte-identical canonical event, and every canonical
//! event the slow path produces (short enough that no escaped string can pass the length
//! limit) the fast path accepts as it is.
#![no_main]

use auditlog::event::{IngestLine, Limits, canonical};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let slow = IngestLine::parse(data, &limits);
    if let Some(fast) = canonical::check(data, &limits) {
        let line = slow.as_ref().expect("what the fast path accepts, the slow path accepts");
        assert_eq!(fast.source_id, line.source.id);
        assert_eq!(fast.seq, line.source.seq);
        assert_eq!(fast.dropped_before, line.source.dropped_before);
        assert_eq!(fast.event, line.event.canonical_json(), "same canonical bytes");
    }
    if let Ok(line) = slow {
        let canonical = line.event.canonical_json();
        let mut again = b"{\"source\":{\"id\":\"fuzz\",\"seq\":1},\"event\":".to_vec();
        again.extend_from_slice(&canonical);
        again.push(b'}');
        let reparsed = IngestLine::parse(&again, &limits)
            .expect("the canonical form of an accepted event is accepted");
        assert_eq!(reparsed.event, line.event, "canonical JSON round trip");
        // (A string's escaped text may exceed the length limit that its value meets; the
        // fast path leaves such strings to the slow path.)
        if canonical.len() <= limits.max_field_bytes {
            let fast = canonical::check(&again, &limits)
                .expect("the fast path accepts an event in its canonical form");
            assert_eq!(fast.event, &canonical[..]);
        }
    }
});
