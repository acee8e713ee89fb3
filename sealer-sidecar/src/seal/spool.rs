//! The spool: bytes sealed into the write-ahead log and not yet in the store.
//!
//! The writer adds what each commit wrote, the uploader takes away what each stored segment
//! held, and ingest refuses new batches (503) while it is over `--spool-max-bytes`, so a
//! store that is down or slower than ingest cannot fill the disk. Metrics only show it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Clone, Debug, Default)]
pub struct Spool(Arc<AtomicU64>);

impl Spool {
    /// A spool that already holds `bytes` (WAL files left by the previous run).
    pub fn new(bytes: u64) -> Spool {
        Spool(Arc::new(AtomicU64::new(bytes)))
    }

    pub fn add(&self, bytes: u64) {
        self.0.fetch_add(bytes, Relaxed);
    }

    pub fn remove(&self, bytes: u64) {
        let _ = self
            .0
            .fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(bytes)));
    }

    pub fn bytes(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// The metrics show the spool's bytes at each scrape.
impl crate::metrics::Reading for Spool {
    fn read(&self) -> u64 {
        self.bytes()
    }
}
