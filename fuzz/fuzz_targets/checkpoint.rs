//! A checkpoint object (a C2SP signed note holding a tlog checkpoint): any text is parsed
//! and checked against the log's key without panicking; a note that opens re-serializes to
//! a checkpoint that parses to the same head.
#![no_main]

use auditlog::checkpoint::Checkpoint;
use auditlog::head::LogHead;
use auditlog::note::{Note, NoteVerifier};
use libfuzzer_sys::fuzz_target;

/// The key that signed the seed checkpoint (fuzz/seeds/checkpoint).
const VKEY: &str = "fuzz.example/seed+8146c1ed+AUWFLy9mwNIYN7bQKaOWm/CoYZofm8+WEWuJY4zjq5c8";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let verifier = NoteVerifier::parse(VKEY).expect("a valid verifier key");
    if let Ok(note) = Note::parse(text) {
        let _ = note.verify(&verifier);
    }
    let _ = Checkpoint::parse_body(text);
    if let Ok(head) = LogHead::open(text, &verifier) {
        let again = LogHead::from_checkpoint(head.to_checkpoint()).expect("round trip");
        assert_eq!(again, head);
    }
});
