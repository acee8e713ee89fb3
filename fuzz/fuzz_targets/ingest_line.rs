//! One line of `POST /v1/events` (the sealer's ingest schema): any bytes are refused with an
//! error or parsed; a parsed event's canonical JSON parses again to the same event.
#![no_main]

use auditlog::event::{IngestLine, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(line) = IngestLine::parse(data, &limits) {
        let canonical = line.event.canonical_json();
        let mut again = b"{\"source\":{\"id\":\"fuzz\",\"seq\":1},\"event\":".to_vec();
        again.extend_from_slice(&canonical);
        again.push(b'}');
        let reparsed = IngestLine::parse(&again, &limits)
            .expect("the canonical form of an accepted event is accepted");
        assert_eq!(reparsed.event, line.event, "canonical JSON round trip");
    }
});
