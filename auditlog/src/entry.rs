//! Entries: the unit of the log, and their canonical byte form.
//!
//! An entry is a JSON object with these members, serialized with RFC 8785 (so in this order):
//!
//! | member      | type     | meaning                                                         |
//! |-------------|----------|-----------------------------------------------------------------|
//! | `event`     | object   | the payload, whose schema depends on `kind`                     |
//! | `kind`      | string   | `start`, `http`, `gap`, `source_end` or `k8s_audit`             |
//! | `sealed_at` | string   | the sealer's clock when it sealed the entry (RFC 3339, UTC, ns) |
//! | `seq`       | integer  | position in the log, from 0                                     |
//! | `source`    | object   | optional: `{"id": .., "seq": ..}` of the producing gateway      |
//!
//! The canonical bytes of an entry are its Merkle leaf data (see [`crate::merkle`]) and the
//! input of the hash chain (see [`crate::chain`]).

use serde::{Deserialize, Serialize};

use crate::jcs;
use crate::timestamp::Timestamp;

/// What an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// The sealer started (a new incarnation of the writer); `event` says which version.
    Start,
    /// One request through the gateway ([`crate::event::HttpEvent`]).
    Http,
    /// Events from a source that never arrived ([`GapEvent`]).
    Gap,
    /// A Kubernetes API server audit event about the resources that decide exposure.
    K8sAudit,
    /// A source ended: closed cleanly, or went silent without closing ([`SourceEndEvent`]).
    SourceEnd,
}

impl EntryKind {
    /// Every kind, in declaration order (`kind as usize` indexes it).
    pub const ALL: [EntryKind; 5] = [
        EntryKind::Start,
        EntryKind::Http,
        EntryKind::Gap,
        EntryKind::K8sAudit,
        EntryKind::SourceEnd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Start => "start",
            EntryKind::Http => "http",
            EntryKind::Gap => "gap",
            EntryKind::K8sAudit => "k8s_audit",
            EntryKind::SourceEnd => "source_end",
        }
    }
}

/// The `source` member: which producer, and (except for `gap`) its sequence number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntrySource {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// The `event` of a `gap` entry: `count` events from the source, with sequence numbers
/// `first_seq..=last_seq`, never reached the sealer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GapEvent {
    pub count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// `sequence_jump` (the sealer saw the numbers skip) or `declared_by_source` (the
    /// producer reported that it dropped them).
    pub reason: String,
}

/// The `event` of a `source_end` entry: the source numbered its events up to `last_seq` and
/// will send no more.
///
/// - `clean: true`: the source said so itself (a gateway worker that Envoy shut down in
///   order); every event up to `last_seq` is in the log, or in a `gap` before this entry.
/// - `clean: false`: the source went silent without saying so (killed, crashed, or its
///   gateway stopped before its last batch went out). `last_seq` is the highest number it
///   was heard to give out; events it numbered after that, if any, are missing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEndEvent {
    pub clean: bool,
    pub last_seq: u64,
    /// `closed` for a clean end; for the other kind, what the sealer saw.
    pub reason: String,
}

/// The `event` of a `start` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartEvent {
    /// A random identifier of this run of the sealer.
    pub incarnation: String,
    /// `sealer` version that wrote the entries that follow.
    pub sealer_version: String,
}

/// Append the canonical bytes of an entry to `out`.
///
/// `event_json` must already be canonical JSON (RFC 8785) of the event object; it is copied
/// verbatim. `sealed_at` is a [`Timestamp`] in its canonical text form. Everything else is
/// written here in canonical member order.
pub fn write_entry(
    out: &mut Vec<u8>,
    kind: EntryKind,
    seq: u64,
    sealed_at: &str,
    source: Option<&EntrySource>,
    event_json: &[u8],
) {
    out.extend_from_slice(b"{\"event\":");
    out.extend_from_slice(event_json);
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"sealed_at\":\"");
    out.extend_from_slice(sealed_at.as_bytes());
    out.extend_from_slice(b"\",\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    if let Some(source) = source {
        out.extend_from_slice(b",\"source\":{\"id\":");
        jcs::write_string(&source.id, out);
        if let Some(s) = source.seq {
            out.extend_from_slice(b",\"seq\":");
            out.extend_from_slice(s.to_string().as_bytes());
        }
        out.push(b'}');
    }
    out.push(b'}');
}

/// The members of an entry that a verifier reads; the rest is only hashed.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct EntryHead {
    pub kind: EntryKind,
    pub seq: u64,
    pub sealed_at: Timestamp,
}

impl EntryHead {
    /// Read `kind`, `seq` and `sealed_at` from an entry, checking that the whole entry is one
    /// JSON object ([`crate::json_scan`]). Accepts and rejects what deserializing it with
    /// `serde_json` does, several times faster (the event is validated, not built), except
    /// that invalid UTF-8 anywhere is refused (serde_json does not look inside what it skips).
    ///
    /// # Errors
    /// A message saying what is wrong, as serde_json would.
    pub fn parse(entry: &[u8]) -> Result<EntryHead, String> {
        let (mut kind, mut seq, mut sealed_at) = (None, None, None);
        let mut duplicate = None;
        let mut bad = None;
        crate::json_scan::object_members(entry, |key, value| {
            let field = |key: &[u8]| match key {
                b"kind" => Some("kind"),
                b"seq" => Some("seq"),
                b"sealed_at" => Some("sealed_at"),
                _ => None,
            };
            // A key spelled with escapes is the key it decodes to.
            let field = match field(key) {
                Some(field) => field,
                None if key.contains(&b'\\') => {
                    let quoted = [b"\"", key, b"\""].concat();
                    let decoded = serde_json::from_slice::<String>(&quoted).unwrap_or_default();
                    match field(decoded.as_bytes()) {
                        Some(field) => field,
                        None => return Ok(()),
                    }
                }
                None => return Ok(()),
            };
            let result = match field {
                "kind" if kind.is_none() => plain_kind(value)
                    .map_or_else(|| serde_json::from_slice(value), Ok)
                    .map(|k| kind = Some(k)),
                "seq" if seq.is_none() => plain_u64(value)
                    .map_or_else(|| serde_json::from_slice(value), Ok)
                    .map(|n| seq = Some(n)),
                // A timestamp that does not parse goes through serde_json too, for its message.
                "sealed_at" if sealed_at.is_none() => plain_str(value)
                    .and_then(parse_sealed_at)
                    .map_or_else(|| serde_json::from_slice(value), Ok)
                    .map(|t| sealed_at = Some(t)),
                _ => {
                    duplicate.get_or_insert(field);
                    Ok(())
                }
            };
            if let Err(e) = result {
                bad.get_or_insert(format!("{field}: {e}"));
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        if let Some(field) = duplicate {
            return Err(format!("duplicate field `{field}`"));
        }
        if let Some(message) = bad {
            return Err(message);
        }
        Ok(EntryHead {
            kind: kind.ok_or("missing field `kind`")?,
            seq: seq.ok_or("missing field `seq`")?,
            sealed_at: sealed_at.ok_or("missing field `sealed_at`")?,
        })
    }
}

/// The common cases of [`EntryHead::parse`]'s members, read without a deserializer (the
/// scanner has already checked the value's grammar); `None` leaves the value to serde_json,
/// which then gives the same answer or its own error message.
///
/// The content of a string as it is written (the scanner has checked that it is UTF-8). Its
/// readers accept no backslash, so a string with escapes goes to serde_json.
fn plain_str(value: &[u8]) -> Option<&[u8]> {
    value.strip_prefix(b"\"")?.strip_suffix(b"\"")
}

/// A `sealed_at` text, as [`Timestamp::parse_bytes`] reads it; `None` if it does not parse.
/// The entries of a group share one `sealed_at`, so each thread keeps the last text it read
/// and its value, and a text equal to it is not parsed again.
fn parse_sealed_at(text: &[u8]) -> Option<Timestamp> {
    /// The longest text kept: RFC 3339 with nanoseconds and an offset is 35 bytes.
    const KEPT: usize = 40;
    thread_local! {
        static LAST: std::cell::Cell<([u8; KEPT], usize, Timestamp)> =
            const { std::cell::Cell::new(([0; KEPT], usize::MAX, Timestamp::from_unix_nanos(0))) };
    }
    let (last, len, value) = LAST.get();
    if len == text.len() && last[..len] == *text {
        return Some(value);
    }
    let value = Timestamp::parse_bytes(text).ok()?;
    if text.len() <= KEPT {
        let mut kept = [0; KEPT];
        kept[..text.len()].copy_from_slice(text);
        LAST.set((kept, text.len(), value));
    }
    Some(value)
}

/// One of the kinds' names, without escapes.
fn plain_kind(value: &[u8]) -> Option<EntryKind> {
    let name = plain_str(value)?;
    EntryKind::ALL
        .into_iter()
        .find(|k| k.as_str().as_bytes() == name)
}

/// A number of at most 19 digits and nothing else (so it fits in a `u64`).
fn plain_u64(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        value
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}

/// A fully parsed entry, for readers that want the content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub event: serde_json::Value,
    pub kind: EntryKind,
    pub sealed_at: Timestamp,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<EntrySource>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ENTRY: &str = r#"{"event":{"client":{"address":"198.51.100.7"},"http":{"request":{"headers":{"x":["a\"b\\c\u00e9"]},"method":"GET"},"response":{"status_code":200}},"n":[1,-2.5e3,0.0,true,false,null,{}],"url":{"path":"/a"}},"kind":"http","sealed_at":"2026-12-04T22:51:31.690563000Z","seq":601,"source":{"id":"gw/a","seq":9}}"#;

    /// Invalid UTF-8 is refused (serde_json lets it pass inside values it skips); on UTF-8,
    /// the answer is serde_json's.
    fn same_as_serde(bytes: &[u8]) -> Result<(), TestCaseError> {
        let fast = EntryHead::parse(bytes);
        if std::str::from_utf8(bytes).is_err() {
            prop_assert!(fast.is_err());
            return Ok(());
        }
        let slow = serde_json::from_slice::<EntryHead>(bytes);
        match (&fast, &slow) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            _ => prop_assert!(
                false,
                "{:?}: fast {:?}, serde {:?}",
                String::from_utf8_lossy(bytes),
                fast,
                slow.map_err(|e| e.to_string())
            ),
        }
        Ok(())
    }

    #[test]
    fn reads_the_head_of_a_real_entry() {
        let head = EntryHead::parse(ENTRY.as_bytes()).unwrap();
        assert_eq!((head.kind, head.seq), (EntryKind::Http, 601));
        for bad in [
            &br#"{"kind":"http","seq":1,"sealed_at":"2026-12-04T22:51:31Z","seq":2}"#[..],
            br#"{"kind":"http","seq":1}"#,
            br#"{"kind":"http","seq":1.0,"sealed_at":"2026-12-04T22:51:31Z"}"#,
            br#"{"kind":"http","seq":1,"sealed_at":"2026-12-04T22:51:31Z"} x"#,
            br#"{"kind":"http","seq":01,"sealed_at":"2026-12-04T22:51:31Z"}"#,
        ] {
            assert!(
                EntryHead::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert!(serde_json::from_slice::<EntryHead>(bad).is_err());
        }
        let escaped = br#"{"k\u0069nd":"http","seq":1,"sealed_at":"2026-12-04T22:51:31Z"}"#;
        assert_eq!(EntryHead::parse(escaped).unwrap().kind, EntryKind::Http);
        // Values spelled with escapes are what they decode to, as serde_json reads them.
        let escaped = br#"{"kind":"ht\u0074p","seq":1,"sealed_at":"2026-12-04T22:51:3\u0031Z"}"#;
        let head = EntryHead::parse(escaped).unwrap();
        assert_eq!(head, serde_json::from_slice::<EntryHead>(escaped).unwrap());
        assert_eq!(head.kind, EntryKind::Http);
    }

    /// The kept last `sealed_at` is used only for the same text: texts of one length that
    /// differ in a digit, or do not parse, get their own answers.
    #[test]
    fn a_sealed_at_is_parsed_again_unless_it_is_the_last_one() {
        let texts: [&[u8]; 7] = [
            b"2026-12-04T22:51:31.000000001Z",
            b"2026-12-04T22:51:31.000000001Z",
            b"2026-12-04T22:51:31.000000002Z",
            b"2026-12-04T22:51:31.000000001Z",
            b"2026-12-04T22:51:31.00000000xZ",
            b"2026-12-04T22:51:31.000000001Z",
            b"2026-12-04T22:51:31Z",
        ];
        for text in texts {
            assert_eq!(
                parse_sealed_at(text),
                Timestamp::parse_bytes(text).ok(),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn a_bad_member_is_named_with_serde_jsons_message() {
        let cases: [(&str, &str, String); 3] = [
            (
                r#"{"kind":"http","seq":0,"sealed_at":"x"}"#,
                "sealed_at",
                serde_json::from_str::<Timestamp>(r#""x""#)
                    .unwrap_err()
                    .to_string(),
            ),
            (
                r#"{"kind":"nope","seq":0,"sealed_at":"2026-12-04T22:51:31Z"}"#,
                "kind",
                serde_json::from_str::<EntryKind>(r#""nope""#)
                    .unwrap_err()
                    .to_string(),
            ),
            (
                r#"{"kind":"http","seq":-1,"sealed_at":"2026-12-04T22:51:31Z"}"#,
                "seq",
                serde_json::from_str::<u64>("-1").unwrap_err().to_string(),
            ),
        ];
        for (entry, field, message) in cases {
            assert_eq!(
                EntryHead::parse(entry.as_bytes()).unwrap_err(),
                format!("{field}: {message}")
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// The fast reader accepts exactly what serde_json accepts, with the same values:
        /// on an entry with bytes replaced, inserted or removed, and cut short.
        #[test]
        fn accepts_what_serde_accepts(
            edits in crate::json_scan::mutation::edits(),
            cut in 0usize..420,
        ) {
            let bytes = crate::json_scan::mutation::apply(ENTRY.as_bytes(), &edits);
            same_as_serde(&bytes)?;
            same_as_serde(&bytes[..cut.min(bytes.len())])?;
        }
    }
}
