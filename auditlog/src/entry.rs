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
#[derive(Debug, Deserialize)]
pub struct EntryHead {
    pub kind: EntryKind,
    pub seq: u64,
    pub sealed_at: Timestamp,
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
