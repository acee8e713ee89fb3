//! Helpers for the unit tests: keys, prepared events, and a full verification of what a
//! test wrote, so every test of the write path ends by checking the log as an auditor would.

use auditlog::chain::MacKey;
use auditlog::entry::{EntryKind, EntrySource};
use auditlog::head::LogHead;
use auditlog::layout;
use auditlog::note::NoteSigner;
use auditlog::seal::LogSealer;
use auditlog::timestamp::Timestamp;
use auditlog::verify::Report;
use bytes::Bytes;

use crate::ingest::PreparedEvent;
use crate::read::verify::{self, VerifyOptions};
use crate::store::{MemoryStore, Store};

pub const ORIGIN: &str = "test.example/log";

pub fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, [9; 32]).expect("a valid origin")
}

pub fn mac_key() -> MacKey {
    MacKey::new(&[7; 32])
}

/// An empty log's sealer.
pub fn new_sealer() -> LogSealer {
    LogSealer::new(ORIGIN, mac_key())
}

/// A minimal valid access event of `source`, number `seq`.
pub fn event(source: &str, seq: u64) -> PreparedEvent {
    let json = format!(
        r#"{{"http":{{"request":{{"method":"GET"}},"response":{{"status_code":200}}}},"start_time":"2026-11-28T07:00:00.000000000Z","url":{{"path":"/{seq}"}}}}"#
    );
    PreparedEvent {
        kind: EntryKind::Http,
        source: Some(EntrySource {
            id: source.to_owned(),
            seq: Some(seq),
        }),
        dropped_before: None,
        dedup_key: None,
        event_json: Bytes::from(json),
    }
}

/// Store `records` (the log's entries from 0, as sealed by `sealer`) as one segment with a
/// checkpoint of `sealer`'s state.
pub async fn store_log(store: &MemoryStore, records: &[u8], sealer: &LogSealer) {
    let size = sealer.size();
    if size > 0 {
        store
            .put_if_absent(
                &layout::segment_key(0, size - 1),
                Bytes::from(records.to_vec()),
            )
            .await
            .expect("stored");
    }
    let head = LogHead {
        origin: ORIGIN.into(),
        size,
        root: sealer.frontier().root(),
        chain: sealer.head(),
        time: Timestamp::now(),
    };
    let text = head.sign(&signer()).expect("signed");
    store
        .put_if_absent(&head.key(), Bytes::from(text))
        .await
        .expect("stored");
}

/// Verify the whole store with every MAC, as `sealer verify --hmac-key` does.
pub async fn verify_store(store: &MemoryStore) -> Report {
    let options = VerifyOptions {
        mac_key: Some(mac_key()),
        storage_checks: true,
        ..VerifyOptions::default()
    };
    verify::verify(store, &signer().verifier(), &options)
        .await
        .expect("the memory store answers")
}

/// Panic with the report's problems unless it is clean.
pub fn assert_verified(report: &Report) {
    assert!(
        report.ok,
        "verification failed: {:?}",
        report
            .problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
    );
}
