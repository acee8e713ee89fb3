//! Keeping the store's tiles in step with its entries ([`auditlog::tiles`]).
//!
//! Before the uploader publishes a checkpoint of `n` entries, the store holds every tile of
//! the tree of `n` leaves: the full tiles completed so far and the partial tiles of size `n`.
//! So any reader can compute any proof up to the newest checkpoint from the store alone, and
//! the next start resumes from the right edge of the tree.
//!
//! [`TileWriter::open`] resumes from the right-edge tiles of the newest checkpoint (O(log n)
//! reads). A store written before tiles existed has none: then every tile is computed from
//! the segments and written once, with a log line saying so.

use anyhow::{Context, bail};
use auditlog::merkle::{Hash, leaf_hash};
use auditlog::record::parse_record;
use auditlog::tiles::{TileBuilder, TileId, TileSet};
use bytes::Bytes;

use crate::read::StoredLog;
use crate::read::tiles::{TilesError, with_tiles};
use crate::store::Store;

/// The tree's right edge, turning appended leaves into tiles to store.
pub struct TileWriter {
    builder: TileBuilder,
}

/// The leaf hash of every record of a segment.
pub fn leaves_of(key: &str, bytes: &[u8]) -> anyhow::Result<Vec<Hash>> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            parse_record(line)
                .map(|r| leaf_hash(r.entry))
                .map_err(|e| anyhow::anyhow!("{key}: {e}"))
        })
        .collect()
}

impl TileWriter {
    /// The tiles of an empty log.
    pub fn empty() -> TileWriter {
        TileWriter {
            builder: TileBuilder::new(),
        }
    }

    /// Resume at the store's tree of `stored_size` entries, whose newest checkpoint signs
    /// `checkpoint` = `(size, root)`. Tiles the store lacks up to `stored_size` (entries
    /// stored after the checkpoint, or a store written before tiles) are written now.
    pub async fn open<S: Store>(
        store: &S,
        checkpoint: (u64, Hash),
        stored_size: u64,
    ) -> anyhow::Result<TileWriter> {
        let (size, root) = checkpoint;
        let mut set = TileSet::new(size);
        let resumed = with_tiles(store, &mut set, |set| {
            let builder = TileBuilder::resume(set)?;
            Ok((builder, set.root()?))
        })
        .await;
        let mut writer = match resumed {
            Ok((builder, tiles_root)) => {
                if tiles_root != root {
                    bail!(
                        "integrity alarm: the store's tiles give the root {} for {size} entries, \
                         its newest checkpoint signs {}; run `sealer verify` on the store",
                        hex::encode(tiles_root),
                        hex::encode(root)
                    );
                }
                TileWriter { builder }
            }
            Err(TilesError::Missing(id)) => {
                tracing::info!(
                    missing = %id,
                    entries = stored_size,
                    "the store has no tiles for its entries (written before tiles): writing them once"
                );
                TileWriter::empty()
            }
            Err(e) => return Err(e).context("failed to read the store's tiles"),
        };
        let written = writer.catch_up(store, stored_size).await?;
        if written > 0 {
            tracing::info!(
                tiles = written,
                entries = stored_size,
                "tiles written for entries stored without them"
            );
        }
        Ok(writer)
    }

    /// Append the stored segments' leaves from the builder's size to `stored_size`, writing
    /// their tiles. Returns how many tiles were written.
    async fn catch_up<S: Store>(&mut self, store: &S, stored_size: u64) -> anyhow::Result<u64> {
        if self.builder.size() >= stored_size {
            return Ok(0);
        }
        let log = StoredLog::new(store);
        let mut written = 0;
        for seg in log
            .segments_in(self.builder.size()..=stored_size - 1)
            .await?
        {
            let bytes = log.read(&seg.key).await?;
            let leaves = leaves_of(&seg.key, &bytes)?;
            let skip = (self.builder.size() - seg.first) as usize;
            for (id, bytes) in self.full_tiles(leaves.get(skip..).unwrap_or_default()) {
                store.put_if_absent(&id.key(), bytes).await?;
                written += 1;
            }
        }
        for (id, bytes) in self.partial_tiles() {
            store.put_if_absent(&id.key(), bytes).await?;
            written += 1;
        }
        Ok(written)
    }

    /// The number of leaves appended.
    pub fn size(&self) -> u64 {
        self.builder.size()
    }

    /// Append leaves; the full tiles they complete.
    fn full_tiles(&mut self, leaves: &[Hash]) -> Vec<(TileId, Bytes)> {
        let mut out = Vec::new();
        for leaf in leaves {
            self.builder
                .push(*leaf, |id, bytes| out.push((id, Bytes::from(bytes))));
        }
        out
    }

    fn partial_tiles(&self) -> Vec<(TileId, Bytes)> {
        self.builder
            .partial_tiles()
            .into_iter()
            .map(|(id, b)| (id, Bytes::from(b)))
            .collect()
    }

    /// Append a segment's leaves: every tile to store before the checkpoint of the new size
    /// (the full tiles completed, then the partial tiles of the new size).
    pub fn append(&mut self, leaves: &[Hash]) -> Vec<(TileId, Bytes)> {
        let old = self.builder.size();
        let mut tiles = self.full_tiles(leaves);
        // Only the partial tiles that changed: a level whose width did not move keeps its
        // partial tile, already stored.
        let added = auditlog::tiles::tiles_added(old, self.builder.size());
        tiles.extend(
            self.partial_tiles()
                .into_iter()
                .filter(|(id, _)| added.contains(id)),
        );
        tiles
    }
}
