//! The stored head: what the store holds under its newest signed checkpoint, as a value that
//! is watched.
//!
//! The uploader ([`crate::publish::uploader`]) publishes it each time it stores a checkpoint;
//! the index, the read API and readiness watch it ([`HeadWatch`]). Nobody polls a counter
//! for it, and nobody parses or verifies again a checkpoint this sealer has just signed.

use std::sync::Arc;

use auditlog::merkle::Hash;
use tokio::sync::watch;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredHead {
    /// Entries covered.
    pub size: u64,
    /// The Merkle root of those entries.
    pub root: Hash,
    /// The chain value of the last of them.
    pub chain: Hash,
    /// The newest signed checkpoint of them (a C2SP signed note), once one is stored by
    /// this run.
    pub checkpoint: Option<Arc<str>>,
}

/// The uploader's side.
pub type HeadSender = watch::Sender<StoredHead>;
/// Everyone else's side.
pub type HeadWatch = watch::Receiver<StoredHead>;
