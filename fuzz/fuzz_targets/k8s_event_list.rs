//! A Kubernetes audit webhook body (`audit.k8s.io/v1` EventList): any bytes are refused with
//! an error or parsed; every selected event yields an entry, and a Secret's content never
//! reaches one.
#![no_main]

use auditlog::k8s::{Selection, entry_event, parse_event_list};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(list) = parse_event_list(data) else {
        return;
    };
    let selection = Selection {
        max_object_bytes: 256,
        ..Selection::default()
    };
    for event in &list.items {
        let _ = selection.selects(event);
        let entry = entry_event(event, &selection);
        for key in ["requestObject", "responseObject"] {
            let kept = &entry[key];
            if kept.get("kind").and_then(|k| k.as_str()) == Some("Secret") {
                panic!("a Secret was kept in {key}");
            }
        }
    }
});
