//! Proofs from the store alone: an entry from its segment and the audit path from the tiles,
//! or the consistency proof between two tree sizes from the tiles. No sealer and no index
//! are involved, so anyone with read access to the store can prove any entry (RFC 9162
//! 2.1.3 and 2.1.4 over c2sp.org/tlog-tiles).

use auditlog::merkle::Hash;
use auditlog::record::parse_record;
use auditlog::subtrees;
use auditlog::tiles::TileSet;

use crate::read::StoredLog;
use crate::read::stored_log::StoredLogError;
use crate::read::tiles::{TilesError, with_tiles};
use crate::store::{Store, StoreError};

/// Why a proof could not be made from the store.
#[derive(Debug, thiserror::Error)]
pub enum ProofsError {
    #[error(transparent)]
    Tiles(#[from] TilesError),
    #[error(transparent)]
    Read(#[from] StoredLogError),
    #[error("entry {seq} is not in any segment of the store")]
    NoEntry { seq: u64 },
    #[error("{key} line {line} is not a sealed record: {reason}")]
    BadRecord {
        key: String,
        line: u64,
        reason: String,
    },
}

impl From<StoreError> for ProofsError {
    fn from(e: StoreError) -> Self {
        ProofsError::Read(e.into())
    }
}

/// An entry and its audit path in a tree.
#[derive(Debug, Clone)]
pub struct Inclusion {
    /// The entry's canonical JSON (the leaf data).
    pub entry: String,
    /// Deepest sibling first.
    pub proof: Vec<Hash>,
}

/// Entry `seq`'s canonical JSON, from the segment holding it.
pub async fn entry<S: Store>(store: &S, seq: u64) -> Result<String, ProofsError> {
    let log = StoredLog::new(store);
    let seg = log
        .segments_in(seq..=seq)
        .await?
        .into_iter()
        .next()
        .ok_or(ProofsError::NoEntry { seq })?;
    let bytes = log.read(&seg.key).await?;
    let line_no = seq - seg.first;
    let line = bytes
        .split(|&b| b == b'\n')
        .nth(line_no as usize)
        .filter(|l| !l.is_empty())
        .ok_or(ProofsError::NoEntry { seq })?;
    let bad = |reason: String| ProofsError::BadRecord {
        key: seg.key.clone(),
        line: line_no + 1,
        reason,
    };
    let record = parse_record(line).map_err(|e| bad(e.to_string()))?;
    String::from_utf8(record.entry.to_vec()).map_err(|_| bad("the entry is not UTF-8".into()))
}

/// Entry `seq` with its inclusion proof in the tree of `size` leaves (`seq < size`).
pub async fn inclusion<S: Store>(store: &S, seq: u64, size: u64) -> Result<Inclusion, ProofsError> {
    let entry = entry(store, seq).await?;
    let mut tiles = TileSet::new(size);
    let proof = with_tiles(store, &mut tiles, |t| {
        subtrees::inclusion_proof(t, seq, size)
    })
    .await?;
    Ok(Inclusion { entry, proof })
}

/// The consistency proof from the tree of `old` leaves to that of `new` (`0 < old <= new`).
pub async fn consistency<S: Store>(
    store: &S,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, ProofsError> {
    let mut tiles = TileSet::new(new);
    Ok(with_tiles(store, &mut tiles, |t| {
        subtrees::consistency_proof(t, old, new)
    })
    .await?)
}
