//! The tree's tiles in a store: fetching them, and computing roots, frontiers and proofs
//! from them with no index and no sealer ([`auditlog::tiles`]).
//!
//! [`with_tiles`] runs an I/O-free computation over a [`TileSet`]; each time it names a tile
//! it lacks, the tile is fetched and the computation runs again. A proof needs O(log n)
//! tiles, each fetched once.

use auditlog::tiles::{TileError, TileId, TileSet};
use bytes::Bytes;

use crate::store::{Store, StoreError};

/// Why a computation over stored tiles failed.
#[derive(Debug, thiserror::Error)]
pub enum TilesError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the store has no tile {0} (nor a wider one): it was written before tiles, or a tile \
         was deleted; start the sealer on it once to write the missing tiles"
    )]
    Missing(TileId),
    #[error(transparent)]
    Tile(TileError),
}

/// Fetch tile `id`, or one that holds its hashes: the full tile, or a wider partial one.
/// Returns the tile found, under its own name.
pub async fn fetch_tile<S: Store>(
    store: &S,
    id: TileId,
) -> Result<Option<(TileId, Bytes)>, StoreError> {
    if let Some(bytes) = store.get(&id.key()).await? {
        return Ok(Some((id, bytes)));
    }
    if id.is_full() {
        return Ok(None);
    }
    let full = TileId::full(id.level, id.index);
    if let Some(bytes) = store.get(&full.key()).await? {
        return Ok(Some((full, bytes)));
    }
    // A later partial tile of the same position, the narrowest that is wide enough.
    let prefix = format!("{}.p/", full.key());
    let wider = store
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|o| TileId::parse(&o.key))
        .filter(|t| t.width > id.width)
        .min_by_key(|t| t.width);
    match wider {
        Some(t) => Ok(store.get(&t.key()).await?.map(|b| (t, b))),
        None => Ok(None),
    }
}

/// Run `f` over `set`, fetching each tile it asks for, until it answers.
pub async fn with_tiles<S: Store, T>(
    store: &S,
    set: &mut TileSet,
    mut f: impl FnMut(&TileSet) -> Result<T, TileError>,
) -> Result<T, TilesError> {
    loop {
        match f(set) {
            Ok(v) => return Ok(v),
            Err(TileError::Missing(id)) => {
                let (found, bytes) = fetch_tile(store, id)
                    .await?
                    .ok_or(TilesError::Missing(id))?;
                set.insert(found, &bytes).map_err(TilesError::Tile)?;
            }
            Err(e) => return Err(TilesError::Tile(e)),
        }
    }
}
