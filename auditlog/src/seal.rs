//! The writer's state machine: turns canonical events into sealed records.
//!
//! A [`LogSealer`] holds everything needed to append to a log: the next position, the chain
//! head, the Merkle frontier and the HMAC key. It does no I/O; the sealer service owns one and
//! writes the bytes it produces.
//!
//! Entries are sealed one at a time ([`LogSealer::seal`]) or staged and sealed in groups
//! ([`LogSealer::stage`], [`LogSealer::seal_staged`]), which the sealer's writer does for its
//! batches: the leaf hashes and MACs of a group do not depend on each other, so they are
//! computed side by side (`sha256_x2`, sixteen at once with AVX-512), as are the tree's new
//! nodes level by level ([`Frontier::extend`]). Only the chain steps go one entry after the
//! other. Both ways give the same bytes.

use crate::chain::{self, MacKey};
use crate::entry::{EntryKind, EntrySource, write_entry};
use crate::merkle::{Frontier, Hash, leaf_hash_many};
use crate::record::write_record;
use crate::timestamp::Timestamp;

/// How many staged entries [`LogSealer::stage`] holds before it seals them: a few times the
/// sixteen lanes of the side-by-side hashing, and about 40 KiB of entries, so the group stays
/// in the CPU's cache.
pub const STAGE_LIMIT: usize = 64;

/// Appends entries to one log.
#[derive(Debug, Clone)]
pub struct LogSealer {
    mac_key: MacKey,
    head: Hash,
    frontier: Frontier,
    /// Entries staged and not sealed yet: their bytes end to end, and where each one ends.
    staged: Vec<u8>,
    staged_ends: Vec<usize>,
    /// The last `sealed_at` and its text: a group of entries shares one timestamp.
    time_text: (Timestamp, String),
}

/// Position and chain value of a record just sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    pub seq: u64,
    pub chain: Hash,
    /// The entry's leaf hash, for the tree's tiles.
    pub leaf: Hash,
}

impl LogSealer {
    /// A new, empty log named `origin`.
    pub fn new(origin: &str, mac_key: MacKey) -> Self {
        Self::resume(mac_key, chain::genesis(origin), Frontier::new())
    }

    /// Continue a log whose last chain value is `head` and whose tree is `frontier`.
    pub fn resume(mac_key: MacKey, head: Hash, frontier: Frontier) -> Self {
        LogSealer {
            mac_key,
            head,
            frontier,
            staged: Vec::new(),
            staged_ends: Vec::new(),
            time_text: (
                Timestamp::from_unix_nanos(0),
                Timestamp::from_unix_nanos(0).to_string(),
            ),
        }
    }

    /// Number of entries in the log, staged ones included, which is also the next position.
    pub fn size(&self) -> u64 {
        self.frontier.size() + self.staged_ends.len() as u64
    }

    /// Chain value of the last entry (the genesis value for an empty log).
    ///
    /// # Panics
    /// If entries are staged ([`LogSealer::seal_staged`] first).
    pub fn head(&self) -> Hash {
        self.assert_nothing_staged();
        self.head
    }

    /// The Merkle tree of all entries so far.
    ///
    /// # Panics
    /// If entries are staged ([`LogSealer::seal_staged`] first).
    pub fn frontier(&self) -> &Frontier {
        self.assert_nothing_staged();
        &self.frontier
    }

    fn assert_nothing_staged(&self) {
        assert!(
            self.staged_ends.is_empty(),
            "{} entries are staged and not sealed",
            self.staged_ends.len()
        );
    }

    /// Seal one entry and append its record line to `out`.
    ///
    /// # Panics
    /// If entries are staged ([`LogSealer::seal_staged`] first).
    pub fn seal(
        &mut self,
        out: &mut Vec<u8>,
        kind: EntryKind,
        sealed_at: Timestamp,
        source: Option<&EntrySource>,
        event_json: &[u8],
    ) -> Sealed {
        self.assert_nothing_staged();
        self.write_staged(kind, sealed_at, source, event_json);
        let mut sealed = None;
        self.seal_staged_with(out, |s| sealed = Some(s));
        sealed.expect("one entry was staged")
    }

    /// Stage one entry: it takes the next position, which this returns, and is sealed with
    /// the entries staged before and after it, by [`LogSealer::seal_staged`] or once
    /// [`STAGE_LIMIT`] entries are staged. Sealing appends the records to `out` in order and
    /// their leaf hashes to `leaves`.
    pub fn stage(
        &mut self,
        out: &mut Vec<u8>,
        leaves: &mut Vec<Hash>,
        kind: EntryKind,
        sealed_at: Timestamp,
        source: Option<&EntrySource>,
        event_json: &[u8],
    ) -> u64 {
        let seq = self.size();
        self.write_staged(kind, sealed_at, source, event_json);
        if self.staged_ends.len() == STAGE_LIMIT {
            self.seal_staged(out, leaves);
        }
        seq
    }

    /// Seal the staged entries: append their records to `out`, in order, and their leaf
    /// hashes to `leaves`.
    pub fn seal_staged(&mut self, out: &mut Vec<u8>, leaves: &mut Vec<Hash>) {
        self.seal_staged_with(out, |s| leaves.push(s.leaf));
    }

    fn write_staged(
        &mut self,
        kind: EntryKind,
        sealed_at: Timestamp,
        source: Option<&EntrySource>,
        event_json: &[u8],
    ) {
        if self.time_text.0 != sealed_at {
            self.time_text = (sealed_at, sealed_at.to_string());
        }
        let seq = self.size();
        write_entry(
            &mut self.staged,
            kind,
            seq,
            &self.time_text.1,
            source,
            event_json,
        );
        self.staged_ends.push(self.staged.len());
    }

    /// Seals the staged entries (at most [`STAGE_LIMIT`]), calling `sealed` for each in
    /// order: leaf hashes, MACs and tree nodes side by side, chain steps one after the other.
    fn seal_staged_with(&mut self, out: &mut Vec<u8>, mut sealed: impl FnMut(Sealed)) {
        let n = self.staged_ends.len();
        debug_assert!(n <= STAGE_LIMIT, "stage seals at the limit");
        let mut entries: [&[u8]; STAGE_LIMIT] = [&[]; STAGE_LIMIT];
        let mut start = 0;
        for (entry, &end) in entries.iter_mut().zip(&self.staged_ends) {
            *entry = &self.staged[start..end];
            start = end;
        }
        let entries = &entries[..n];
        let mut leaves = [[0u8; 32]; STAGE_LIMIT];
        leaf_hash_many(entries, &mut leaves[..n]);
        let mut chains = [[0u8; 32]; STAGE_LIMIT];
        for (chain, leaf) in chains.iter_mut().zip(&leaves[..n]) {
            self.head = chain::next(&self.head, leaf);
            *chain = self.head;
        }
        let chain_refs: [&Hash; STAGE_LIMIT] = std::array::from_fn(|i| &chains[i]);
        let mut macs = [[0u8; 32]; STAGE_LIMIT];
        self.mac_key.mac_many(&chain_refs[..n], &mut macs[..n]);
        let first = self.frontier.size();
        self.frontier.extend(&leaves[..n]);
        let records = entries.iter().zip(&leaves).zip(&chains).zip(&macs);
        for (seq, (((entry, leaf), chain), mac)) in (first..).zip(records) {
            write_record(out, entry, chain, mac);
            sealed(Sealed {
                seq,
                chain: *chain,
                leaf: *leaf,
            });
        }
        self.staged.clear();
        self.staged_ends.clear();
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// One entry to seal, and whether to seal what is staged before it.
    #[derive(Debug, Clone)]
    struct Step {
        kind: usize,
        second: u64,
        source: Option<(u8, Option<u64>)>,
        event: u32,
        seal_staged_first: bool,
        one_at_a_time: bool,
    }

    fn step() -> impl Strategy<Value = Step> {
        (
            0usize..EntryKind::ALL.len(),
            0u64..3,
            proptest::option::of((any::<u8>(), proptest::option::of(any::<u64>()))),
            any::<u32>(),
            proptest::bool::weighted(0.05),
            proptest::bool::weighted(0.05),
        )
            .prop_map(
                |(kind, second, source, event, seal_staged_first, one_at_a_time)| Step {
                    kind,
                    second,
                    source,
                    event,
                    seal_staged_first,
                    one_at_a_time,
                },
            )
    }

    fn sealer() -> LogSealer {
        LogSealer::new("example.com/staged", MacKey::new(&[3; 32]))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Entries staged and sealed in groups of any size, some sealed alone in between,
        /// give the records, positions and leaves that sealing each alone gives.
        #[test]
        fn staged_entries_are_sealed_as_one_at_a_time(
            steps in proptest::collection::vec(step(), 0..300),
        ) {
            let (mut alone, mut staged) = (sealer(), sealer());
            let (mut alone_out, mut staged_out) = (Vec::new(), Vec::new());
            let (mut alone_leaves, mut staged_leaves) = (Vec::new(), Vec::new());
            for step in &steps {
                let kind = EntryKind::ALL[step.kind];
                let at = Timestamp::from_unix_nanos(1_764_000_000_000_000_000 + step.second as i64 * 1_000_000_000);
                let source = step.source.map(|(id, seq)| EntrySource { id: format!("gw/{id}"), seq });
                let event = format!("{{\"n\":{}}}", step.event);
                let s = alone.seal(&mut alone_out, kind, at, source.as_ref(), event.as_bytes());
                alone_leaves.push(s.leaf);
                if step.seal_staged_first {
                    staged.seal_staged(&mut staged_out, &mut staged_leaves);
                }
                if step.one_at_a_time {
                    staged.seal_staged(&mut staged_out, &mut staged_leaves);
                    let t = staged.seal(&mut staged_out, kind, at, source.as_ref(), event.as_bytes());
                    prop_assert_eq!(t, s);
                    staged_leaves.push(t.leaf);
                } else {
                    let seq = staged.stage(&mut staged_out, &mut staged_leaves, kind, at, source.as_ref(), event.as_bytes());
                    prop_assert_eq!(seq, s.seq);
                }
                prop_assert_eq!(staged.size(), alone.size());
            }
            staged.seal_staged(&mut staged_out, &mut staged_leaves);
            prop_assert_eq!(String::from_utf8(staged_out).unwrap(), String::from_utf8(alone_out).unwrap());
            prop_assert_eq!(staged_leaves, alone_leaves);
            prop_assert_eq!(staged.head(), alone.head());
            prop_assert_eq!(staged.frontier(), alone.frontier());
        }
    }

    #[test]
    #[should_panic(expected = "staged and not sealed")]
    fn the_head_is_not_read_while_entries_are_staged() {
        let mut s = sealer();
        let (mut out, mut leaves) = (Vec::new(), Vec::new());
        s.stage(
            &mut out,
            &mut leaves,
            EntryKind::Http,
            Timestamp::from_unix_nanos(0),
            None,
            b"{}",
        );
        let _ = s.head();
    }
}
