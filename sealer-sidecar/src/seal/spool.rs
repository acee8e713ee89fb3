//! The spool: bytes sealed into the write-ahead log and not yet in the store.
//!
//! The writer adds what each commit wrote, the uploader takes away what each stored segment
//! held, and ingest refuses new batches (503) while it is over `--spool-max-bytes`, so a
//! store that is down or slower than ingest cannot fill the disk. Metrics only show it.
//!
//! It also counts the leaf hashes the writer hands over in memory with closed segments, for
//! their tiles, up to [`MAX_HELD_LEAVES`]: when the uploader falls behind, the segments past
//! that bound take their leaves to a file beside their WAL file instead, so that memory does
//! not grow with the backlog.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Most leaf hashes held in memory for closed segments not stored yet: 4 MiB, about ten
/// 8 MiB segments of 650-byte entries.
pub const MAX_HELD_LEAVES: u64 = 131_072;

#[derive(Clone, Debug, Default)]
pub struct Spool(Arc<Waiting>);

#[derive(Debug, Default)]
struct Waiting {
    bytes: AtomicU64,
    leaves: AtomicU64,
}

impl Spool {
    /// A spool that already holds `bytes` (WAL files left by the previous run).
    pub fn new(bytes: u64) -> Spool {
        Spool(Arc::new(Waiting {
            bytes: AtomicU64::new(bytes),
            leaves: AtomicU64::new(0),
        }))
    }

    pub fn add(&self, bytes: u64) {
        self.0.bytes.fetch_add(bytes, Relaxed);
    }

    pub fn remove(&self, bytes: u64) {
        let _ = self
            .0
            .bytes
            .fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(bytes)));
    }

    pub fn bytes(&self) -> u64 {
        self.0.bytes.load(Relaxed)
    }

    /// Count `n` more leaf hashes held in memory, if that stays within [`MAX_HELD_LEAVES`]
    /// (or none are held: one segment's always may be); `false` if they must go elsewhere.
    pub fn hold_leaves(&self, n: u64) -> bool {
        self.0
            .leaves
            .fetch_update(Relaxed, Relaxed, |held| {
                (held == 0 || held + n <= MAX_HELD_LEAVES).then_some(held + n)
            })
            .is_ok()
    }

    /// Count `n` leaf hashes already in memory, whatever the bound (the pending segments a
    /// start hashed itself).
    pub fn add_held_leaves(&self, n: u64) {
        self.0.leaves.fetch_add(n, Relaxed);
    }

    /// The uploader is done with `n` held leaf hashes.
    pub fn release_leaves(&self, n: u64) {
        let _ = self
            .0
            .leaves
            .fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(n)));
    }

    pub fn held_leaves(&self) -> u64 {
        self.0.leaves.load(Relaxed)
    }
}

/// The metrics show the spool's bytes at each scrape.
impl crate::metrics::Reading for Spool {
    fn read(&self) -> u64 {
        self.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_are_held_up_to_the_bound_and_one_segment_always() {
        let spool = Spool::default();
        assert!(
            spool.hold_leaves(MAX_HELD_LEAVES + 5),
            "the first segment, however large"
        );
        assert!(!spool.hold_leaves(1));
        spool.release_leaves(MAX_HELD_LEAVES + 5);
        assert!(spool.hold_leaves(MAX_HELD_LEAVES - 10));
        assert!(spool.hold_leaves(10));
        assert!(!spool.hold_leaves(1));
        spool.release_leaves(10);
        spool.add_held_leaves(20);
        assert_eq!(spool.held_leaves(), MAX_HELD_LEAVES + 10);
        assert!(!spool.hold_leaves(1), "counted leaves keep the bound");
    }
}
