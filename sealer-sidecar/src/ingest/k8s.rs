//! Kubernetes audit webhook bodies (`audit.k8s.io/v1` `EventList`) become prepared events:
//! the events about the selected resources and stages, each named by its `auditID` and
//! `stage` so a redelivery is sealed once ([`auditlog::k8s`] defines the selection and the
//! entry).

use auditlog::entry::EntryKind;
use auditlog::jcs;
use auditlog::k8s::{self, AuditEvent, Selection};

use crate::ingest::PreparedEvent;

/// A webhook body's events: those to seal, and how many there were in all.
#[derive(Debug)]
pub struct PreparedList {
    pub events: Vec<PreparedEvent>,
    pub received: u64,
}

impl PreparedList {
    /// Events outside the selection, not sealed.
    pub fn ignored(&self) -> u64 {
        self.received - self.events.len() as u64
    }
}

/// Why a webhook body was refused (the API server logs it; it does not retry a 400).
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("{0}")]
    NotAnEventList(String),
    #[error("items[{index}] (auditID {audit_id}): {reason}")]
    BadItem {
        index: usize,
        audit_id: String,
        reason: String,
    },
}

/// Parse an `EventList` and prepare the selected events.
pub fn prepare(body: &[u8], selection: &Selection) -> Result<PreparedList, ListError> {
    let list = k8s::parse_event_list(body).map_err(|e| ListError::NotAnEventList(e.to_string()))?;
    let received = list.items.len() as u64;
    let mut events = Vec::new();
    for (index, item) in list.items.iter().enumerate() {
        if !selection.selects(item) {
            continue;
        }
        let event_json = canonical_entry(item, selection).map_err(|e| ListError::BadItem {
            index,
            audit_id: item.audit_id.clone(),
            reason: e.to_string(),
        })?;
        events.push(PreparedEvent {
            kind: EntryKind::K8sAudit,
            source: None,
            dropped_before: None,
            dedup_key: Some(k8s::dedup_key(item)),
            event_json: event_json.into(),
        });
    }
    Ok(PreparedList { events, received })
}

/// The canonical `event` of the entry for `event`. An object that has no canonical form
/// (an integer beyond 2^53) is kept as its SHA-256, like an oversized one, rather than
/// refusing the batch, which the API server would retry forever.
fn canonical_entry(event: &AuditEvent, selection: &Selection) -> Result<Vec<u8>, jcs::JcsError> {
    jcs::canonicalize(&k8s::entry_event(event, selection)).or_else(|_| {
        let hashed = Selection {
            max_object_bytes: 0,
            ..selection.clone()
        };
        jcs::canonicalize(&k8s::entry_event(event, &hashed))
    })
}
