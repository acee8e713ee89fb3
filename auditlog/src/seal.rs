//! The writer's state machine: turns canonical events into sealed records.
//!
//! A [`LogSealer`] holds everything needed to append to a log: the next position, the chain
//! head, the Merkle frontier and the HMAC key. It does no I/O; the sealer service owns one and
//! writes the bytes it produces.

use crate::chain::{self, MacKey};
use crate::entry::{EntryKind, EntrySource, write_entry};
use crate::merkle::{Frontier, Hash, leaf_hash};
use crate::record::write_record;
use crate::timestamp::Timestamp;

/// Appends entries to one log.
#[derive(Debug, Clone)]
pub struct LogSealer {
    mac_key: MacKey,
    head: Hash,
    frontier: Frontier,
    entry: Vec<u8>,
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
            entry: Vec::with_capacity(1024),
            time_text: (
                Timestamp::from_unix_nanos(0),
                Timestamp::from_unix_nanos(0).to_string(),
            ),
        }
    }

    /// Number of entries in the log, which is also the next position.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Chain value of the last entry (the genesis value for an empty log).
    pub fn head(&self) -> Hash {
        self.head
    }

    /// The Merkle tree of all entries so far.
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// Seal one entry and append its record line to `out`.
    pub fn seal(
        &mut self,
        out: &mut Vec<u8>,
        kind: EntryKind,
        sealed_at: Timestamp,
        source: Option<&EntrySource>,
        event_json: &[u8],
    ) -> Sealed {
        let seq = self.frontier.size();
        if self.time_text.0 != sealed_at {
            self.time_text = (sealed_at, sealed_at.to_string());
        }
        self.entry.clear();
        write_entry(
            &mut self.entry,
            kind,
            seq,
            &self.time_text.1,
            source,
            event_json,
        );
        let leaf = leaf_hash(&self.entry);
        self.head = chain::next(&self.head, &leaf);
        self.frontier.push(leaf);
        let mac = self.mac_key.mac(&self.head);
        write_record(out, &self.entry, &self.head, &mac);
        Sealed {
            seq,
            chain: self.head,
            leaf,
        }
    }
}
