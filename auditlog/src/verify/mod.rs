//! Verification of a whole store, without I/O.
//!
//! The caller lists the store, hands every checkpoint to [`StoreVerifier::add_checkpoint`],
//! checks each segment with [`check_segment`] (a pure function, so segments can be checked
//! in parallel; [`SegmentPlan`] also splits one segment into pieces for several threads) and
//! feeds the results to [`StoreVerifier::absorb`] in log order. [`finish`] returns the
//! [`Report`].
//!
//! What is detected, and how:
//! - a modified, inserted, deleted or reordered entry: the recomputed chain or the sequence
//!   number disagrees with the stored one at that line;
//! - an entry spliced in from another log: the chain starts at a genesis bound to the origin;
//! - a deleted or duplicated segment: the segments' sequence ranges must tile `0..n`;
//! - a truncated tail or a rollback: a signed checkpoint commits to more entries than the
//!   store holds (the newest checkpoint in the store, or a trusted one kept by the verifier);
//! - a forged or re-signed checkpoint: Ed25519 signature by the log's key;
//! - a fork, or a store rewritten by someone holding the HMAC key: the recomputed Merkle root
//!   at a checkpoint's size differs from the signed root;
//! - without the signing key but with the HMAC key, an attacker can recompute chain and MACs,
//!   never the signatures; with neither key, a recomputed chain fails the MAC check.
//!
//! [`finish`]: StoreVerifier::finish

use std::collections::BTreeMap;

use serde::Serialize;

use crate::chain;
use crate::head::LogHead;
use crate::layout;
use crate::merkle::{self, Frontier, Hash};
use crate::note::NoteVerifier;
use crate::tiles::{self, HASH_BYTES, HEIGHT, TileBuilder, TileId};
use crate::timestamp::Timestamp;

mod segment;
pub use segment::{PieceCheck, SegmentCheck, SegmentPlan, check_segment};

/// At most this many problems are kept in a report; the total is still counted.
pub const MAX_PROBLEMS: usize = 1000;

/// The class of a problem, stable for machines (`--json`) and documented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemClass {
    /// A line that is not a sealed record, or an entry that is not valid JSON.
    MalformedRecord,
    /// A segment whose last line has no newline: a torn or cut file.
    TornSegment,
    /// An entry whose `seq` is not its position.
    SequenceMismatch,
    /// A stored chain value that does not follow from the previous entry and this one.
    ChainBroken,
    /// A MAC that does not verify under the HMAC key.
    MacMismatch,
    /// Entries missing between two segments (a deleted segment).
    MissingEntries,
    /// A segment that covers entries already covered (a duplicated segment).
    OverlappingSegment,
    /// A segment whose name disagrees with its content.
    SegmentNameMismatch,
    /// A checkpoint that does not parse, is not signed by the log's key, or is misnamed.
    BadCheckpoint,
    /// A signed root or chain value that differs from the store's (fork or rewrite).
    CheckpointMismatch,
    /// A signed checkpoint commits to more entries than the store holds (truncation, rollback).
    Truncated,
    /// The store holds entries but no valid checkpoint signs any of them.
    NoCheckpoint,
    /// Entries after the newest checkpoint: nothing signed vouches for them.
    UnsignedTail,
    /// An object in the store that is not part of the layout.
    UnknownObject,
    /// Storage evidence: a key holds more than one version (the object was written again).
    ObjectRewritten,
    /// Storage evidence: a delete marker (someone deleted the object; its version may remain).
    ObjectDeleted,
    /// Storage evidence: an object not locked in COMPLIANCE mode for the required retention.
    NotLocked,
    /// A tile whose hashes differ from the ones the entries give (an edited tile, or entries
    /// the tiles do not commit to), or whose length is wrong for its name.
    TileMismatch,
    /// A tile the tree needs up to the newest checkpoint is not in the store.
    MissingTile,
    /// A tile for hashes the log does not have (beyond its entries).
    ExtraTile,
    /// Fewer valid witness cosignatures on the newest checkpoint than required
    /// (`sealer verify --min-witnesses`).
    MissingCosignature,
    /// A cosigned checkpoint under `witnessed/` whose log signature or cosignature does not
    /// verify, or that is not a checkpoint of the log's tree.
    BadCosignature,
    /// The newest checkpoint is older than the verifier allows (`sealer verify --max-age`): the
    /// log stalled, or was rolled back to an older checkpoint.
    Stale,
}

/// One finding, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub class: ProblemClass,
    /// Store key, with `:line` where a line is concerned (1-based).
    pub location: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Keep a problem unless [`MAX_PROBLEMS`] are kept already (callers still count it).
pub(crate) fn keep(
    problems: &mut Vec<Problem>,
    class: ProblemClass,
    location: String,
    message: String,
) {
    if problems.len() < MAX_PROBLEMS {
        problems.push(Problem {
            class,
            location,
            message,
        });
    }
}

/// Summary of one signed checkpoint, as shown in a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckpointSummary {
    pub key: String,
    pub size: u64,
    pub root: String,
    pub time: Timestamp,
}

/// The outcome of a verification.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// True when no problem was found.
    pub ok: bool,
    pub origin: String,
    pub entries: u64,
    /// The first entry verified: 0, or the trusted checkpoint's size when verification
    /// resumed from it (the entries before it were verified in an earlier run).
    pub verified_from: u64,
    pub segments: u64,
    pub entries_by_kind: BTreeMap<&'static str, u64>,
    /// Valid checkpoints found in the store.
    pub checkpoints: u64,
    pub newest_checkpoint: Option<CheckpointSummary>,
    pub trusted_checkpoint: Option<CheckpointSummary>,
    /// Whether MACs were checked (the HMAC key was given).
    pub mac_checked: bool,
    /// Tiles compared with the tree recomputed from the entries.
    pub tiles_checked: u64,
    /// Merkle root and chain head recomputed from the store.
    pub root: String,
    pub chain_head: String,
    /// Total number of problems; at most [`MAX_PROBLEMS`] are listed.
    pub problem_count: u64,
    pub problems: Vec<Problem>,
    /// Facts worth knowing that are not evidence of tampering.
    pub warnings: Vec<String>,
    /// The checkpoint whose witness cosignatures satisfied `--min-witnesses`, when required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosigned: Option<CosignedSummary>,
}

/// A checkpoint and the witnesses whose valid cosignatures it carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CosignedSummary {
    pub size: u64,
    pub time: Timestamp,
    /// The witnesses' names, with the time each cosigned (POSIX seconds).
    pub witnesses: Vec<(String, u64)>,
}

impl Report {
    /// Record a problem found after the store was read (freshness, cosignatures).
    pub fn add_problem(&mut self, class: ProblemClass, location: String, message: String) {
        self.ok = false;
        self.problem_count += 1;
        keep(&mut self.problems, class, location, message);
    }

    /// Require the newest checkpoint to be signed within `max_age` before `now`. A log that
    /// stalled, or was rolled back behind its recent checkpoints, then fails without any state
    /// kept by the verifier; a store without a checkpoint fails too.
    pub fn require_fresh(&mut self, max_age: std::time::Duration, now: Timestamp) {
        let allowed = i64::try_from(max_age.as_nanos()).unwrap_or(i64::MAX);
        let (location, message) = match &self.newest_checkpoint {
            Some(c) => {
                let age = now.unix_nanos().saturating_sub(c.time.unix_nanos());
                if age <= allowed {
                    return;
                }
                (
                    c.key.clone(),
                    format!(
                        "the newest checkpoint was signed at {}, {:.1} s ago, more than the {:?} \
                         allowed (the log stalled or was rolled back)",
                        c.time,
                        age as f64 / 1e9,
                        max_age
                    ),
                )
            }
            None => (
                layout::CHECKPOINTS.to_owned(),
                format!("no checkpoint in the store, so none was signed within {max_age:?}"),
            ),
        };
        self.add_problem(ProblemClass::Stale, location, message);
    }
}

struct PendingCheckpoint {
    head: LogHead,
    key: String,
    trusted: bool,
}

/// Accumulates a store's checkpoints and segments and produces the [`Report`].
pub struct StoreVerifier {
    verifier: NoteVerifier,
    mac_checked: bool,
    /// Where the next segment must start, by the names of the segments so far.
    next_seq: u64,
    /// False once a hole is found: the tree cannot be recomputed past it.
    tree_intact: bool,
    head: Hash,
    /// Checkpoints still to be compared, by tree size.
    pending: BTreeMap<u64, Vec<PendingCheckpoint>>,
    checkpoints: u64,
    newest: Option<CheckpointSummary>,
    trusted: Option<CheckpointSummary>,
    segments: u64,
    kinds: BTreeMap<&'static str, u64>,
    problems: Vec<Problem>,
    problem_count: u64,
    warnings: Vec<String>,
    /// Where verification starts: 0, or the size of the trusted checkpoint it resumes from.
    start: u64,
    /// The tree's tiles recomputed from the entries.
    tiles: TileBuilder,
    /// Tiles listed in the store and not yet compared: `(level, index)` → widths.
    listed_tiles: BTreeMap<(u8, u64), Vec<u16>>,
    any_tiles: bool,
    tile_checks: Vec<TileCheck>,
    tiles_checked: u64,
}

/// A stored tile to compare with the tree: fetch `id` and pass it to
/// [`StoreVerifier::check_tile`].
#[derive(Clone, Debug)]
pub struct TileCheck {
    pub id: TileId,
    /// The bytes the entries give for it.
    pub expected: Vec<u8>,
}

impl StoreVerifier {
    /// Verify the log whose origin is the verifier key's name. `mac_checked` says whether the
    /// caller passes the HMAC key to [`check_segment`].
    pub fn new(verifier: NoteVerifier, mac_checked: bool) -> Self {
        let head = chain::genesis(verifier.name());
        StoreVerifier {
            verifier,
            mac_checked,
            next_seq: 0,
            tree_intact: true,
            head,
            pending: BTreeMap::new(),
            checkpoints: 0,
            newest: None,
            trusted: None,
            segments: 0,
            kinds: BTreeMap::new(),
            problems: Vec::new(),
            problem_count: 0,
            warnings: Vec::new(),
            start: 0,
            tiles: TileBuilder::new(),
            listed_tiles: BTreeMap::new(),
            any_tiles: false,
            tile_checks: Vec::new(),
            tiles_checked: 0,
        }
    }

    /// Verify only what comes after `trusted`, a checkpoint checked before (its signature is
    /// checked here). `tiles` is the tree's right edge at its size, read from the store's
    /// tiles, whose root must be the checkpoint's. Segments and checkpoints before its size
    /// are not looked at again: the caller passes only the segments from its size on.
    ///
    /// # Errors
    /// The checkpoint is not valid for this log, or the tiles do not give its root.
    pub fn resume(
        verifier: NoteVerifier,
        mac_checked: bool,
        (name, signed): (&str, &str),
        tiles: TileBuilder,
        frontier: Frontier,
    ) -> Result<Self, String> {
        let head = LogHead::open(signed, &verifier)
            .map_err(|e| format!("trusted checkpoint {name} is not valid for this log: {e}"))?;
        if frontier.size() != head.size || frontier.root() != head.root {
            return Err(format!(
                "the store's tiles give the root {} for {} entries, the trusted checkpoint {name}                  signs {} (tiles edited, or the store forked)",
                hex::encode(frontier.root()),
                frontier.size(),
                hex::encode(head.root)
            ));
        }
        let mut v = StoreVerifier::new(verifier, mac_checked);
        v.start = head.size;
        v.next_seq = head.size;
        v.head = head.chain;
        if tiles.size() != frontier.size() {
            return Err("the tiles' right edge is not of the trusted checkpoint's size".into());
        }
        v.tiles = tiles;
        v.trusted = Some(summary(name, &head));
        Ok(v)
    }

    /// The trusted checkpoint, if one was given.
    pub fn trusted_checkpoint(&self) -> Option<&CheckpointSummary> {
        self.trusted.as_ref()
    }

    /// The newest valid checkpoint found so far.
    pub fn newest_checkpoint(&self) -> Option<&CheckpointSummary> {
        self.newest.as_ref()
    }

    /// Record a fact worth knowing that is not evidence of tampering.
    pub fn add_warning(&mut self, warning: String) {
        self.warnings.push(warning);
    }

    /// The number of entries before verification started (see [`StoreVerifier::resume`]).
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Add a tile listed in the store (by its key). Must be called before any segment is
    /// absorbed. Tiles wholly inside the tree verification resumed from are not compared.
    pub fn add_tile(&mut self, key: &str) {
        let Some(id) = TileId::parse(key) else {
            self.add_problem(
                ProblemClass::UnknownObject,
                key.to_owned(),
                "object under tile/ is not a tile name of c2sp.org/tlog-tiles".into(),
            );
            return;
        };
        self.any_tiles = true;
        let resumed_hashes = self.start >> (HEIGHT * u32::from(id.level));
        if id.first_hash() + u64::from(id.width) <= resumed_hashes {
            return;
        }
        self.listed_tiles
            .entry((id.level, id.index))
            .or_default()
            .push(id.width);
    }

    /// Stored tiles whose expected bytes are now known, to fetch and pass to
    /// [`StoreVerifier::check_tile`].
    pub fn take_tile_checks(&mut self) -> Vec<TileCheck> {
        std::mem::take(&mut self.tile_checks)
    }

    /// Compare a stored tile (`None`: it was listed but is gone) with the tree.
    pub fn check_tile(&mut self, check: &TileCheck, stored: Option<&[u8]>) {
        self.tiles_checked += 1;
        let key = check.id.key();
        let Some(stored) = stored else {
            self.add_problem(
                ProblemClass::MissingTile,
                key,
                "tile was listed but could not be read (deleted while verifying?)".into(),
            );
            return;
        };
        if stored.len() != check.expected.len() {
            self.add_problem(
                ProblemClass::TileMismatch,
                key,
                format!(
                    "tile is {} bytes; its name says {} hashes, {} bytes",
                    stored.len(),
                    check.id.width,
                    check.expected.len()
                ),
            );
            return;
        }
        let differs = stored
            .chunks(HASH_BYTES)
            .zip(check.expected.chunks(HASH_BYTES))
            .position(|(a, b)| a != b);
        if let Some(i) = differs {
            let level = HEIGHT * u32::from(check.id.level);
            self.add_problem(
                ProblemClass::TileMismatch,
                key,
                format!(
                    "hash {i} of the tile (tree level {level}, position {}) differs from the one                      the entries give (tile edited, or entries the tiles do not commit to)",
                    check.id.first_hash() + i as u64
                ),
            );
        }
    }

    /// A tile the entries completed: compare it and its partial versions, if stored; it is
    /// required when the newest checkpoint covers it.
    fn full_tile_done(&mut self, id: TileId, bytes: Vec<u8>) {
        let widths = self
            .listed_tiles
            .remove(&(id.level, id.index))
            .unwrap_or_default();
        let newest = self.newest.as_ref().map_or(0, |n| n.size);
        if self.any_tiles && !widths.contains(&id.width) && id.tree_size_covered() <= newest {
            self.add_problem(
                ProblemClass::MissingTile,
                id.key(),
                format!("the tree of the newest checkpoint ({newest} entries) needs this tile"),
            );
        }
        for width in widths {
            let tile = TileId { width, ..id };
            self.tile_checks.push(TileCheck {
                id: tile,
                expected: bytes[..usize::from(width) * HASH_BYTES].to_vec(),
            });
        }
    }

    /// The tree has reached the newest checkpoint's size: its right-edge tiles must exist.
    fn check_edge_of_newest(&mut self, size: u64) {
        if !self.any_tiles {
            return;
        }
        for id in tiles::right_edge(size) {
            let listed = self.listed_tiles.get(&(id.level, id.index));
            if !listed.is_some_and(|w| w.contains(&id.width) || w.contains(&(tiles::WIDTH as u16)))
            {
                self.add_problem(
                    ProblemClass::MissingTile,
                    id.key(),
                    format!("the tree of the newest checkpoint ({size} entries) needs this tile"),
                );
            }
        }
    }

    /// After the last segment: the stored tiles left to compare (partial tiles of the right
    /// edge). Tiles beyond the log are reported.
    pub fn finish_tiles(&mut self) -> Vec<TileCheck> {
        let size = self.tiles.size();
        for ((level, index), widths) in std::mem::take(&mut self.listed_tiles) {
            let edge = self.tiles.edge(level).to_vec();
            let edge_index = (size >> (HEIGHT * u32::from(level))) >> HEIGHT;
            for width in widths {
                let id = TileId {
                    level,
                    index,
                    width,
                };
                if !self.tree_intact {
                    continue;
                }
                if index == edge_index && usize::from(width) <= edge.len() {
                    self.tile_checks.push(TileCheck {
                        id,
                        expected: edge[..usize::from(width)].concat(),
                    });
                } else {
                    self.add_problem(
                        ProblemClass::ExtraTile,
                        id.key(),
                        format!("tile holds hashes the log's {size} entries do not have"),
                    );
                }
            }
        }
        self.take_tile_checks()
    }

    /// The log's origin (the verifier key's name).
    pub fn origin(&self) -> &str {
        self.verifier.name()
    }

    /// Add a checkpoint found in the store under `key`. Must be called before any segment is
    /// absorbed.
    pub fn add_checkpoint(&mut self, key: &str, signed: &str) {
        let head = match LogHead::open(signed, &self.verifier) {
            Ok(h) => h,
            Err(e) => {
                self.add_problem(
                    ProblemClass::BadCheckpoint,
                    key.to_owned(),
                    format!("checkpoint rejected: {e}"),
                );
                return;
            }
        };
        if head.key() != key {
            self.add_problem(
                ProblemClass::BadCheckpoint,
                key.to_owned(),
                format!(
                    "checkpoint for size {} signed at {} is stored under the wrong name (expected {})",
                    head.size,
                    head.time,
                    head.key()
                ),
            );
            return;
        }
        self.checkpoints += 1;
        let summary = summary(key, &head);
        let newer = match &self.newest {
            None => true,
            Some(n) => (summary.size, summary.time) > (n.size, n.time),
        };
        if newer {
            self.newest = Some(summary);
        }
        self.expect_checkpoint(PendingCheckpoint {
            head,
            key: key.to_owned(),
            trusted: false,
        });
    }

    /// Queue a checkpoint for comparison when the log reaches its size. Checkpoints of the
    /// empty log are compared at once.
    fn expect_checkpoint(&mut self, cp: PendingCheckpoint) {
        if cp.head.size < self.start {
            return;
        }
        if cp.head.size == self.start && self.start > 0 {
            let (root, head) = (self.tiles.frontier().root(), self.head);
            self.compare_checkpoints(vec![cp], self.start, &root, Some(&head));
        } else if cp.head.size == 0 {
            let genesis = chain::genesis(self.verifier.name());
            self.compare_checkpoints(vec![cp], 0, &merkle::empty_root(), Some(&genesis));
        } else {
            self.pending.entry(cp.head.size).or_default().push(cp);
        }
    }

    /// Report an object that does not belong in the store's layout.
    pub fn unknown_object(&mut self, key: &str) {
        self.add_problem(
            ProblemClass::UnknownObject,
            key.to_owned(),
            "object is not part of the store layout (segments/, checkpoints/, witnessed/, tile/)"
                .into(),
        );
    }

    /// The Merkle tree recomputed so far.
    pub fn frontier(&self) -> Frontier {
        self.tiles.frontier()
    }

    /// The last stored chain value linked so far (the genesis value for an empty log).
    pub fn head(&self) -> Hash {
        self.head
    }

    /// Add a checkpoint the verifier trusts from an earlier run (kept outside the store).
    /// Errors if it is not a valid checkpoint of this log.
    pub fn add_trusted_checkpoint(&mut self, name: &str, signed: &str) -> Result<(), String> {
        let head = LogHead::open(signed, &self.verifier)
            .map_err(|e| format!("trusted checkpoint {name} is not valid for this log: {e}"))?;
        self.trusted = Some(summary(name, &head));
        self.expect_checkpoint(PendingCheckpoint {
            head,
            key: name.to_owned(),
            trusted: true,
        });
        Ok(())
    }

    /// Link a checked segment to the log so far. Segments must come in key order.
    pub fn absorb(&mut self, check: SegmentCheck) {
        for p in check.problems {
            self.add_problem(p.class, p.location, p.message);
        }
        for (kind, n) in check.kinds {
            *self.kinds.entry(kind).or_default() += n;
        }
        let Some((first, last)) = check.range else {
            return;
        };
        self.segments += 1;
        if first < self.next_seq {
            self.add_problem(
                ProblemClass::OverlappingSegment,
                check.key,
                format!(
                    "starts at entry {first}, but entries up to {} are already in earlier segments \
                     (duplicated segment)",
                    self.next_seq - 1
                ),
            );
            return;
        }
        if first > self.next_seq {
            self.add_problem(
                ProblemClass::MissingEntries,
                check.key.clone(),
                format!(
                    "entries {}..={} are missing before this segment (deleted segment)",
                    self.next_seq,
                    first - 1
                ),
            );
            // The tree cannot be recomputed across a hole; segments are still checked.
            self.tree_intact = false;
        }
        self.next_seq = last + 1;
        if self.tree_intact {
            if let Some((leaf, stored)) = check.first
                && chain::next(&self.head, &leaf) != stored
            {
                let what = if first == 0 {
                    "does not start from this log's genesis value (spliced from another log?)"
                } else {
                    "does not chain to the last entry of the previous segment"
                };
                self.add_problem(
                    ProblemClass::ChainBroken,
                    format!("{}:1", check.key),
                    format!("entry {first} {what}"),
                );
            }
            let newest = self.newest.as_ref().map(|n| n.size);
            let mut completed = Vec::new();
            for (leaf, stored_chain) in check.leaves.iter().zip(&check.chains) {
                self.tiles
                    .push(*leaf, |id, bytes| completed.push((id, bytes)));
                for (id, bytes) in completed.drain(..) {
                    self.full_tile_done(id, bytes);
                }
                let size = self.tiles.size();
                if Some(size) == newest {
                    self.check_edge_of_newest(size);
                }
                if self.pending.first_key_value().map(|(s, _)| *s) == Some(size) {
                    let (_, cps) = self.pending.pop_first().expect("checked above");
                    let root = self.tiles.frontier().root();
                    self.compare_checkpoints(cps, size, &root, Some(stored_chain));
                }
            }
        }
        if let Some(c) = check.last_chain {
            self.head = c;
        }
    }

    fn compare_checkpoints(
        &mut self,
        cps: Vec<PendingCheckpoint>,
        size: u64,
        root: &Hash,
        chain: Option<&Hash>,
    ) {
        for cp in cps {
            let who = if cp.trusted {
                "trusted checkpoint"
            } else {
                "checkpoint"
            };
            if &cp.head.root != root {
                self.add_problem(
                    ProblemClass::CheckpointMismatch,
                    cp.key,
                    format!(
                        "{who} signs root {} for {size} entries, the store's entries give {} \
                         (store rewritten or forked)",
                        hex::encode(cp.head.root),
                        hex::encode(root)
                    ),
                );
            } else if let Some(c) = chain
                && &cp.head.chain != c
            {
                self.add_problem(
                    ProblemClass::CheckpointMismatch,
                    cp.key,
                    format!(
                        "{who} signs a chain head for {size} entries that the store does not have"
                    ),
                );
            }
        }
    }

    /// Record a problem found by the caller (e.g. an unreadable object).
    pub fn add_problem(&mut self, class: ProblemClass, location: String, message: String) {
        self.problem_count += 1;
        keep(&mut self.problems, class, location, message);
    }

    /// Finish: compare what is left and produce the report.
    pub fn finish(mut self) -> Report {
        let size = self.tiles.size();
        let leftover: Vec<_> = std::mem::take(&mut self.pending)
            .into_values()
            .flatten()
            .collect();
        for cp in leftover {
            let who = if cp.trusted {
                "trusted checkpoint"
            } else {
                "checkpoint"
            };
            if !self.tree_intact && cp.head.size <= self.next_seq {
                self.add_problem(
                    ProblemClass::MissingEntries,
                    cp.key,
                    format!(
                        "{who} for {} entries cannot be checked: entries before it are missing",
                        cp.head.size
                    ),
                );
                continue;
            }
            self.add_problem(
                ProblemClass::Truncated,
                cp.key,
                format!(
                    "{who} signed at {} commits to {} entries, the store holds {} \
                     (truncated or rolled back)",
                    cp.head.time, cp.head.size, self.next_seq
                ),
            );
        }
        match &self.newest {
            None if size > 0 => self.add_problem(
                ProblemClass::NoCheckpoint,
                layout::CHECKPOINTS.to_owned(),
                format!("no valid signed checkpoint covers any of the {size} entries"),
            ),
            // Measured by segment names, so a line inserted into a segment (already reported)
            // does not also look like an unsigned entry at the end.
            Some(n) if n.size < size.min(self.next_seq) => self.add_problem(
                ProblemClass::UnsignedTail,
                layout::segment_key(n.size, size.min(self.next_seq) - 1),
                format!(
                    "entries {}..={} come after the newest checkpoint: no signature covers them \
                     (the newest checkpoint was deleted, or the sealer stopped between storing \
                     a segment and its checkpoint)",
                    n.size,
                    size.min(self.next_seq) - 1
                ),
            ),
            _ => {}
        }
        if !self.any_tiles && size > 0 {
            self.warnings.push(
                "the store has no tiles (written before tiles): they were not checked; a sealer \
                 started on the store writes them once"
                    .into(),
            );
        }
        if !self.mac_checked {
            self.warnings.push(
                "MACs not checked (no HMAC key given); chain and signed checkpoints were checked"
                    .into(),
            );
        }
        Report {
            ok: self.problem_count == 0,
            origin: self.verifier.name().to_owned(),
            entries: size,
            verified_from: self.start,
            segments: self.segments,
            entries_by_kind: self.kinds,
            checkpoints: self.checkpoints,
            newest_checkpoint: self.newest,
            trusted_checkpoint: self.trusted,
            mac_checked: self.mac_checked,
            tiles_checked: self.tiles_checked,
            root: hex::encode(self.tiles.frontier().root()),
            chain_head: hex::encode(self.head),
            problem_count: self.problem_count,
            problems: self.problems,
            warnings: self.warnings,
            cosigned: None,
        }
    }
}

fn summary(key: &str, head: &LogHead) -> CheckpointSummary {
    CheckpointSummary {
        key: key.to_owned(),
        size: head.size,
        root: hex::encode(head.root),
        time: head.time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn report_with_checkpoint_at(time: Option<Timestamp>) -> Report {
        Report {
            ok: true,
            origin: "example.com/log".into(),
            entries: 3,
            verified_from: 0,
            segments: 1,
            entries_by_kind: BTreeMap::new(),
            checkpoints: u64::from(time.is_some()),
            newest_checkpoint: time.map(|time| CheckpointSummary {
                key: "checkpoints/00000000000000000003-01.note".into(),
                size: 3,
                root: String::new(),
                time,
            }),
            trusted_checkpoint: None,
            mac_checked: false,
            tiles_checked: 0,
            root: String::new(),
            chain_head: String::new(),
            problem_count: 0,
            problems: Vec::new(),
            warnings: Vec::new(),
            cosigned: None,
        }
    }

    #[test]
    fn a_checkpoint_older_than_the_max_age_is_stale() {
        let signed = Timestamp::from_unix_nanos(1_800_000_000_000_000_000);
        let minute_later = Timestamp::from_unix_nanos(signed.unix_nanos() + 60_000_000_000);

        let mut fresh = report_with_checkpoint_at(Some(signed));
        fresh.require_fresh(Duration::from_secs(60), minute_later);
        assert!(fresh.ok && fresh.problems.is_empty());

        let mut stale = report_with_checkpoint_at(Some(signed));
        stale.require_fresh(Duration::from_secs(59), minute_later);
        assert!(!stale.ok);
        assert_eq!(stale.problem_count, 1);
        assert_eq!(stale.problems[0].class, ProblemClass::Stale);
        assert_eq!(
            stale.problems[0].location,
            "checkpoints/00000000000000000003-01.note"
        );
        assert!(stale.problems[0].message.contains("60.0 s ago"));

        let mut none = report_with_checkpoint_at(None);
        none.require_fresh(Duration::from_secs(3600), minute_later);
        assert!(!none.ok);
        assert_eq!(none.problems[0].class, ProblemClass::Stale);
    }
}
