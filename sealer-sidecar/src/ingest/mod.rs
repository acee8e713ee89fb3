//! Stage 1, ingest: request bodies become [`PreparedEvent`]s for the seal stage.
//!
//! - [`events`]: `POST /v1/events` bodies (NDJSON or JSON), validated; events already in
//!   canonical form are taken as they are.
//! - [`k8s`]: the Kubernetes audit webhook's `EventList`s, the selected events named so a
//!   redelivery is sealed once.

pub mod events;
pub mod k8s;

use auditlog::entry::{EntryKind, EntrySource};

/// One validated event, ready to seal.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    pub kind: EntryKind,
    pub source: Option<EntrySource>,
    /// The source declared that it dropped this many events just before this one.
    pub dropped_before: Option<u64>,
    /// The name of an event its producer does not number (a Kubernetes audit event's
    /// `auditID` and `stage`): sealed once however often it is delivered.
    pub dedup_key: Option<String>,
    /// Canonical JSON of the event object (for a line that was canonical already, a slice of
    /// the request body itself).
    pub event_json: bytes::Bytes,
}

/// What a source says about itself with a batch (the `audit-source*` headers of
/// `POST /v1/events`): it has numbered its events up to `announced` (delivered or still
/// waiting with it), and whether it is closing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReport {
    pub id: String,
    pub announced: u64,
    pub state: SourceState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// Alive: a batch or a heartbeat.
    Open,
    /// Its last batch: it will send no more (a clean end).
    Closing,
    /// Made by the writer itself: silent past the timeout, never closed (an unclean end).
    Silent,
}
