//! The Merkle tree in the store: C2SP tlog-tiles hash tiles.
//!
//! A log of `n` leaves has, at every tree level `l`, `n >> l` hashes of perfect subtrees
//! aligned at multiples of `2^l` ([`crate::subtrees`]). Tiles store the levels that are
//! multiples of eight: a tile at tile level `L` and index `N` holds the hashes at tree level
//! `8L` from position `256N`, up to 256 of them, 32 bytes each, concatenated. The levels in
//! between are recomputed from a tile's hashes, so any proof or root needs only a few tiles
//! (c2sp.org/tlog-tiles).
//!
//! - A **full tile** holds 256 hashes and is named `tile/<L>/<N>`.
//! - A **partial tile** holds the `W < 256` hashes a tree of some size has in that position and
//!   is named `tile/<L>/<N>.p/<W>`. It is a prefix of the full tile that comes later.
//! - `<N>` is written in groups of three digits, all but the last prefixed with `x`:
//!   1234067 is `x001/x234/067`.
//!
//! Every tile is write-once: a full tile never changes, and a partial tile of width `W` is a
//! different object from the one of width `W + 1`. The hashes at level 0 are the RFC 6962
//! leaf hashes of the entries, so the tiles commit to the same tree as the checkpoints.
//!
//! This module is I/O-free:
//! - [`TileId`] names tiles and parses names;
//! - [`tiles_added`] lists the tiles a tree gains when it grows;
//! - [`TileBuilder`] keeps the right edge of the tree and produces every tile's bytes as
//!   leaves are appended (the writer and the verifier use it);
//! - [`TileSet`] answers [`Subtrees`] queries, and so proofs, from tiles, naming the tile
//!   it misses so that the caller can fetch it and ask again.

use std::collections::HashMap;

use crate::merkle::{Frontier, Hash, ProofError, node_hash_many};
use crate::subtrees::Subtrees;

/// Tree levels per tile level.
pub const HEIGHT: u32 = 8;
/// Hashes in a full tile.
pub const WIDTH: u64 = 1 << HEIGHT;
/// Bytes of one hash in a tile.
pub const HASH_BYTES: usize = 32;
/// Prefix of every tile object.
pub const TILES: &str = "tile/";
/// The highest tile level: level 7 covers trees of up to 2^64 leaves.
pub const MAX_LEVEL: u8 = 7;

/// One tile: its level, its index within the level, and how many hashes it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    /// The tile level `L`: the tile holds hashes at tree level `8L`.
    pub level: u8,
    /// The tile's position among the tiles of its level.
    pub index: u64,
    /// Hashes in the tile, `1..=256`; 256 is a full tile.
    pub width: u16,
}

impl TileId {
    /// A full tile.
    #[must_use]
    pub fn full(level: u8, index: u64) -> TileId {
        TileId {
            level,
            index,
            width: WIDTH as u16,
        }
    }

    /// Whether the tile holds all 256 hashes.
    #[must_use]
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == WIDTH
    }

    /// The object name, `tile/<L>/<N>` or `tile/<L>/<N>.p/<W>`.
    #[must_use]
    pub fn key(&self) -> String {
        let mut key = format!("{TILES}{}/{}", self.level, index_path(self.index));
        if !self.is_full() {
            key.push_str(&format!(".p/{}", self.width));
        }
        key
    }

    /// Parse an object name made by [`TileId::key`]; `None` for anything else, including
    /// names with leading zeros where the spec has none or a width outside `1..=255`.
    #[must_use]
    pub fn parse(key: &str) -> Option<TileId> {
        let rest = key.strip_prefix(TILES)?;
        let (level, rest) = rest.split_once('/')?;
        let level = parse_plain(level)?;
        if level > u64::from(MAX_LEVEL) {
            return None;
        }
        let (index, width) = match rest.split_once(".p/") {
            Some((index, width)) => {
                let width = parse_plain(width)?;
                if width == 0 || width >= WIDTH {
                    return None;
                }
                (index, width)
            }
            None => (rest, WIDTH),
        };
        let id = TileId {
            level: level as u8,
            index: parse_index_path(index)?,
            width: width as u16,
        };
        (id.key() == key).then_some(id)
    }

    /// The position, at tree level `8 * level`, of the tile's first hash.
    #[must_use]
    pub fn first_hash(&self) -> u64 {
        self.index << HEIGHT
    }

    /// The number of leaves a tree needs for this tile to be complete as named.
    #[must_use]
    pub fn tree_size_covered(&self) -> u64 {
        (self.first_hash() + u64::from(self.width)) << (HEIGHT * u32::from(self.level))
    }
}

impl std::fmt::Display for TileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// A decimal number without leading zeros.
fn parse_plain(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

/// `1234067` → `x001/x234/067`.
fn index_path(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

fn parse_index_path(s: &str) -> Option<u64> {
    let mut n: u64 = 0;
    let parts: Vec<&str> = s.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let digits = if i + 1 < parts.len() {
            part.strip_prefix('x')?
        } else {
            part
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n = n
            .checked_mul(1000)?
            .checked_add(digits.parse::<u64>().ok()?)?;
    }
    Some(n)
}

/// The tiles of a tree of `size` leaves that has tile-level `level` hashes: the full tiles
/// and at most one partial tile, in index order.
fn level_tiles(size: u64, level: u8, from_hash: u64) -> impl Iterator<Item = TileId> {
    let hashes = size >> (HEIGHT * u32::from(level));
    let first = from_hash >> HEIGHT;
    let last_full = hashes >> HEIGHT;
    let partial = hashes % WIDTH;
    (first..last_full)
        .map(move |index| TileId::full(level, index))
        .chain((partial != 0).then_some(TileId {
            level,
            index: last_full,
            width: partial as u16,
        }))
}

/// The tile levels a tree of `size` leaves has (at least one hash at that level).
fn levels_of(size: u64) -> impl Iterator<Item = u8> {
    (0..=MAX_LEVEL).take_while(move |l| (size >> (HEIGHT * u32::from(*l))) > 0)
}

/// The tiles a tree of `new` leaves has that a tree of `old` leaves did not: the full tiles
/// completed in between, and the partial tiles of `new` (each level's right edge). These are
/// what a writer stores before it publishes a checkpoint of `new` leaves.
#[must_use]
pub fn tiles_added(old: u64, new: u64) -> Vec<TileId> {
    if new <= old {
        return Vec::new();
    }
    levels_of(new)
        .flat_map(|level| {
            let old_hashes = old >> (HEIGHT * u32::from(level));
            level_tiles(new, level, old_hashes)
                .filter(move |t| t.first_hash() + u64::from(t.width) > old_hashes)
        })
        .collect()
}

/// Every tile of a tree of `size` leaves (as [`tiles_added`]`(0, size)`).
#[must_use]
pub fn tiles_of(size: u64) -> Vec<TileId> {
    tiles_added(0, size)
}

/// The partial tiles of a tree of `size` leaves: its right edge, at most one per level.
#[must_use]
pub fn right_edge(size: u64) -> Vec<TileId> {
    levels_of(size)
        .filter_map(|level| level_tiles(size, level, size >> (HEIGHT * u32::from(level))).last())
        .filter(|t| !t.is_full())
        .collect()
}

/// The Merkle Tree Hash of a perfect subtree whose bottom hashes are `hashes` (a power of
/// two of them).
fn perfect_root(hashes: &[Hash]) -> Hash {
    debug_assert!(hashes.len().is_power_of_two());
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        // A level's nodes all at once (`node_hash_many`).
        let children: Vec<(&Hash, &Hash)> = level.chunks_exact(2).map(|c| (&c[0], &c[1])).collect();
        let mut next = vec![[0u8; 32]; children.len()];
        node_hash_many(&children, &mut next);
        level = next;
    }
    level[0]
}

/// Split a tile's bytes into hashes; `None` unless the length is a whole number of hashes.
#[must_use]
pub fn hashes_of(bytes: &[u8]) -> Option<Vec<Hash>> {
    if !bytes.len().is_multiple_of(HASH_BYTES) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(HASH_BYTES)
            .map(|c| c.try_into().expect("chunk of 32"))
            .collect(),
    )
}

fn bytes_of(hashes: &[Hash]) -> Vec<u8> {
    hashes.concat()
}

/// Why tiles could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TileError {
    /// A tile the computation needs has not been given (fetch it and try again).
    #[error("tile {0} is needed")]
    Missing(TileId),
    /// A tile is not a whole number of hashes or not as wide as its name says.
    #[error("tile {id} is {len} bytes, not {} hashes of 32 bytes", id.width)]
    BadLength { id: TileId, len: usize },
    /// The tiles do not lead to the expected root.
    #[error("the tiles give the root {got}, the checkpoint says {expected}")]
    RootMismatch { expected: String, got: String },
    #[error(transparent)]
    Proof(#[from] ProofError),
}

/// Tiles of one tree size, enough to answer some [`Subtrees`] queries; a query for a hash in a
/// tile not given fails with [`TileError::Missing`], naming the tile to fetch.
#[derive(Clone, Debug)]
pub struct TileSet {
    size: u64,
    /// `(level, index)` → the tile's hashes (at least as many as the tree has there).
    tiles: HashMap<(u8, u64), Vec<Hash>>,
}

impl TileSet {
    /// An empty set for a tree of `size` leaves.
    #[must_use]
    pub fn new(size: u64) -> TileSet {
        TileSet {
            size,
            tiles: HashMap::new(),
        }
    }

    /// The tree size the set answers for.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tile of this tree at `(level, index)`: its width is what the tree has there.
    #[must_use]
    pub fn tile_at(&self, level: u8, index: u64) -> TileId {
        let hashes = self.size >> (HEIGHT * u32::from(level));
        let width = (hashes - (index << HEIGHT).min(hashes)).min(WIDTH);
        TileId {
            level,
            index,
            width: width as u16,
        }
    }

    /// Add a tile's bytes, fetched under `id`'s key. A tile wider than this tree needs (a
    /// full tile, or a later partial one) is fine: only its prefix is used.
    ///
    /// # Errors
    /// [`TileError::BadLength`] if the bytes are not `id.width` hashes, or fewer hashes than
    /// the tree has at that position.
    pub fn insert(&mut self, id: TileId, bytes: &[u8]) -> Result<(), TileError> {
        let bad = || TileError::BadLength {
            id,
            len: bytes.len(),
        };
        let hashes = hashes_of(bytes).ok_or_else(bad)?;
        let needed = self.tile_at(id.level, id.index).width;
        if hashes.len() != usize::from(id.width) || id.width < needed {
            return Err(bad());
        }
        self.tiles
            .insert((id.level, id.index), hashes[..usize::from(needed)].to_vec());
        Ok(())
    }

    /// The root of the tree, from the tiles of its right edge (and the full tiles left of
    /// it at each level), checked against `expected` when given.
    ///
    /// # Errors
    /// [`TileError::Missing`] for a tile to fetch, [`TileError::RootMismatch`].
    pub fn root(&self) -> Result<Hash, TileError> {
        crate::subtrees::root(self, self.size)
    }

    /// The frontier of the tree (its perfect subtrees' roots, largest first), from the
    /// right-edge tiles: O(log n) tiles, as a writer resumes from them.
    ///
    /// # Errors
    /// [`TileError::Missing`] for a tile to fetch.
    pub fn frontier(&self) -> Result<Frontier, TileError> {
        let mut hashes = Vec::new();
        let mut start = 0u64;
        for bit in (0..64).rev() {
            let len = 1u64 << bit;
            if self.size & len != 0 {
                hashes.push(self.node(bit, start >> bit)?);
                start += len;
            }
        }
        Ok(Frontier::from_parts(self.size, hashes)?)
    }
}

impl Subtrees for TileSet {
    type Error = TileError;

    fn node(&self, level: u32, index: u64) -> Result<Hash, TileError> {
        let tile_level = (level / HEIGHT) as u8;
        let rest = level % HEIGHT;
        // The node covers 2^rest hashes of the tile level, starting at `first`.
        let first = index << rest;
        let tile_index = first >> HEIGHT;
        let offset = (first % WIDTH) as usize;
        let count = 1usize << rest;
        let Some(hashes) = self.tiles.get(&(tile_level, tile_index)) else {
            return Err(TileError::Missing(self.tile_at(tile_level, tile_index)));
        };
        match hashes.get(offset..offset + count) {
            Some(part) => Ok(perfect_root(part)),
            None => Err(ProofError::IndexOutOfRange {
                index,
                size: self.size,
            }
            .into()),
        }
    }
}

/// The right edge of the tree as tiles: appends leaf hashes and hands out every tile as it
/// is completed, and the partial tiles of the current size on demand.
///
/// It holds at most 255 hashes per tile level (8 KiB each), whatever the size of the log.
#[derive(Clone, Debug, Default)]
pub struct TileBuilder {
    size: u64,
    /// `edge[L]`: the hashes of level `L`'s current, incomplete tile.
    edge: Vec<Vec<Hash>>,
}

impl TileBuilder {
    /// An empty tree.
    #[must_use]
    pub fn new() -> TileBuilder {
        TileBuilder::default()
    }

    /// Resume at the right edge of a tree: `tiles` must hold the tree's right-edge tiles
    /// ([`right_edge`]), as fetched from a store.
    ///
    /// # Errors
    /// [`TileError::Missing`] for a right-edge tile not in `tiles`.
    pub fn resume(tiles: &TileSet) -> Result<TileBuilder, TileError> {
        let size = tiles.size();
        let mut edge = Vec::new();
        for level in levels_of(size) {
            let hashes = size >> (HEIGHT * u32::from(level));
            let width = (hashes % WIDTH) as usize;
            let index = hashes >> HEIGHT;
            if width == 0 {
                edge.push(Vec::new());
                continue;
            }
            let Some(tile) = tiles.tiles.get(&(level, index)) else {
                return Err(TileError::Missing(tiles.tile_at(level, index)));
            };
            edge.push(tile[..width].to_vec());
        }
        Ok(TileBuilder { size, edge })
    }

    /// The number of leaves appended.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Append a leaf hash. Every tile it completes (a level-0 tile, and then possibly one per
    /// level above) is passed to `completed` with its bytes.
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(TileId, Vec<u8>)) {
        self.size += 1;
        let mut carry = leaf;
        for level in 0..=MAX_LEVEL {
            let l = usize::from(level);
            if self.edge.len() <= l {
                self.edge.push(Vec::with_capacity(WIDTH as usize));
            }
            self.edge[l].push(carry);
            if self.edge[l].len() < WIDTH as usize {
                return;
            }
            let hashes = std::mem::take(&mut self.edge[l]);
            let index = ((self.size >> (HEIGHT * u32::from(level))) >> HEIGHT) - 1;
            carry = perfect_root(&hashes);
            completed(TileId::full(level, index), bytes_of(&hashes));
        }
    }

    /// The partial tiles of the current size, with their bytes (one per level whose current
    /// tile is incomplete).
    #[must_use]
    pub fn partial_tiles(&self) -> Vec<(TileId, Vec<u8>)> {
        right_edge(self.size)
            .into_iter()
            .map(|id| {
                let hashes = &self.edge[usize::from(id.level)];
                debug_assert_eq!(hashes.len(), usize::from(id.width));
                (id, bytes_of(hashes))
            })
            .collect()
    }

    /// The tree's frontier (its perfect subtrees' roots, largest first), from the edge: at
    /// most 255 node hashes per tile level, so it is cheap once per checkpoint, and the
    /// verifier need not keep a [`Frontier`] beside the tiles.
    #[must_use]
    pub fn frontier(&self) -> Frontier {
        let mut hashes = Vec::new();
        for level in (0..self.edge.len()).rev() {
            let edge = &self.edge[level];
            let mut start = 0;
            for bit in (0..HEIGHT).rev() {
                let len = 1usize << bit;
                if edge.len() & len != 0 {
                    hashes.push(perfect_root(&edge[start..start + len]));
                    start += len;
                }
            }
        }
        Frontier::from_parts(self.size, hashes).expect("one subtree per set bit of the size")
    }

    /// The hashes of level `level`'s incomplete tile (empty when it has none).
    #[must_use]
    pub fn edge(&self, level: u8) -> &[Hash] {
        self.edge.get(usize::from(level)).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{self, leaf_hash};
    use proptest::prelude::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("{i}").as_bytes()))
            .collect()
    }

    /// Every tile of a tree of `n` leaves, as a builder produces them.
    fn build(n: u64) -> (TileBuilder, HashMap<TileId, Vec<u8>>) {
        let mut b = TileBuilder::new();
        let mut tiles = HashMap::new();
        for leaf in leaves(n) {
            b.push(leaf, |id, bytes| {
                assert!(tiles.insert(id, bytes).is_none(), "{id} made twice");
            });
        }
        for (id, bytes) in b.partial_tiles() {
            tiles.insert(id, bytes);
        }
        (b, tiles)
    }

    fn set_of(n: u64, tiles: &HashMap<TileId, Vec<u8>>) -> TileSet {
        let mut set = TileSet::new(n);
        for (id, bytes) in tiles {
            set.insert(*id, bytes).unwrap();
        }
        set
    }

    #[test]
    fn names_follow_the_spec() {
        assert_eq!(TileId::full(0, 0).key(), "tile/0/000");
        assert_eq!(TileId::full(1, 1_234_067).key(), "tile/1/x001/x234/067");
        let p = TileId {
            level: 2,
            index: 1000,
            width: 7,
        };
        assert_eq!(p.key(), "tile/2/x001/000.p/7");
        for id in [TileId::full(0, 0), TileId::full(1, 1_234_067), p] {
            assert_eq!(TileId::parse(&id.key()), Some(id));
        }
        for bad in [
            "tile/0/0",
            "tile/0/x000",
            "tile/00/000",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/07",
            "tile/0/001/000",
            "tile/8/000",
            "tile/entries/000",
            "tile/0/x000/001",
        ] {
            assert_eq!(TileId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_tiles_a_tree_gains_are_listed_once() {
        assert!(tiles_added(5, 5).is_empty());
        let keys = |v: Vec<TileId>| v.into_iter().map(|t| t.key()).collect::<Vec<_>>();
        assert_eq!(keys(tiles_added(0, 3)), ["tile/0/000.p/3"]);
        assert_eq!(
            keys(tiles_added(3, 256 * 2 + 1)),
            [
                "tile/0/000",
                "tile/0/001",
                "tile/0/002.p/1",
                "tile/1/000.p/2"
            ]
        );
        assert_eq!(
            keys(tiles_added(256, 512)),
            ["tile/0/001", "tile/1/000.p/2"]
        );
        assert_eq!(keys(right_edge(256 * 256)), ["tile/2/000.p/1"]);
        assert_eq!(keys(right_edge(512)), ["tile/1/000.p/2"]);
        assert_eq!(keys(tiles_of(256 * 256)).last().unwrap(), "tile/2/000.p/1");
    }

    proptest! {
        /// The builder's tiles are exactly the tiles the tree has, and from them any root,
        /// frontier and proof equals the one computed from the leaves.
        #[test]
        fn tiles_answer_like_the_leaves(n in 1u64..1400, a in 0u64..1400, b in 0u64..1400) {
            let (builder, tiles) = build(n);
            let mut ids: Vec<TileId> = tiles.keys().copied().collect();
            ids.sort();
            let mut expected = tiles_of(n);
            expected.sort();
            prop_assert_eq!(ids, expected);
            let all = leaves(n);
            let set = set_of(n, &tiles);
            prop_assert_eq!(set.root().unwrap(), merkle::root_of(&all));
            let mut frontier = Frontier::new();
            for l in &all {
                frontier.push(*l);
            }
            prop_assert_eq!(set.frontier().unwrap(), frontier.clone());
            prop_assert_eq!(builder.frontier(), frontier);
            let index = a % n;
            prop_assert_eq!(
                crate::subtrees::inclusion_proof(&set, index, n).unwrap(),
                merkle::inclusion_proof(&all, index).unwrap()
            );
            let old = b % n + 1;
            prop_assert_eq!(
                crate::subtrees::consistency_proof(&set, old, n).unwrap(),
                merkle::consistency_proof(&all, old).unwrap()
            );
            // Resuming from the right edge alone continues with the same tiles.
            let mut edge = TileSet::new(n);
            for id in right_edge(n) {
                edge.insert(id, &tiles[&id]).unwrap();
            }
            let mut resumed = TileBuilder::resume(&edge).unwrap();
            let (_, bigger) = build(n + 300);
            let extra = leaves(n + 300);
            let mut made = HashMap::new();
            for leaf in &extra[n as usize..] {
                resumed.push(*leaf, |id, bytes| { made.insert(id, bytes); });
            }
            for (id, bytes) in resumed.partial_tiles() {
                made.insert(id, bytes);
            }
            for id in tiles_added(n, n + 300) {
                prop_assert_eq!(&made[&id], &bigger[&id], "{}", id);
            }
            prop_assert_eq!(builder.size(), n);
        }
    }

    #[test]
    fn a_missing_tile_is_named_and_a_short_one_refused() {
        let (_, tiles) = build(600);
        let mut set = TileSet::new(600);
        assert_eq!(
            set.root(),
            Err(TileError::Missing(TileId {
                level: 1,
                index: 0,
                width: 2
            })),
            "the first tile the root needs: the 512 leaves left of the split are two hashes at level 8"
        );
        let id = TileId {
            level: 0,
            index: 2,
            width: 88,
        };
        assert!(matches!(
            set.insert(id, &tiles[&id][..64]),
            Err(TileError::BadLength { .. })
        ));
        // A partial tile narrower than the tree has there is refused too.
        let mut small = TileSet::new(700);
        assert!(matches!(
            small.insert(id, &tiles[&id]),
            Err(TileError::BadLength { .. })
        ));
        // A full tile serves a smaller tree.
        let full = TileId::full(0, 0);
        let mut narrow = TileSet::new(10);
        narrow.insert(full, &tiles[&full]).unwrap();
        assert_eq!(narrow.root().unwrap(), merkle::root_of(&leaves(10)));
    }
}
