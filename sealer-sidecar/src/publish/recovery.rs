//! Start-up recovery: rebuild the writer's state from the store and the write-ahead log.
//!
//! 1. The store's state is read from its newest checkpoint and the right edge of its tree,
//!    in the tiles: O(log n) reads, whatever the size of the log. The newest checkpoint must
//!    extend the last one this sealer published (kept in its data directory), or the start
//!    is refused: a store rolled back or forked behind the sealer's back. Entries stored after
//!    the newest checkpoint are checked one by one. A store without tiles (written before
//!    them) is verified in full instead, once; a sealer never appends to a log that fails.
//! 2. WAL files left by the previous run are read in order. A file that the store already
//!    holds byte for byte was uploaded just before a crash and is removed. The last file may
//!    end in a torn record (the crash hit mid-write); that record was never acknowledged, so
//!    it is cut off and reported. Any other damage stops the start.
//! 3. The remaining WAL files become closed segments for the uploader. The per-source
//!    sequence watermarks come from the snapshot the writer saved when the last stored
//!    segment closed, plus the entries after it, so replays and gaps are recognised.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use auditlog::chain::{self, MacKey};
use auditlog::entry::{EntryKind, EntrySource};
use auditlog::head::LogHead;
use auditlog::layout;
use auditlog::merkle::{Frontier, Hash, leaf_hash};
use auditlog::note::NoteVerifier;
use auditlog::record::parse_record;
use auditlog::seal::LogSealer;
use auditlog::tiles::TileSet;
use auditlog::verify::ProblemClass;
use serde::Deserialize;

use crate::publish::tiles::TileWriter;
use crate::read::StoredLog;
use crate::read::head::StoredHead;
use crate::read::stored_log::{SEGMENT_SEARCH_WINDOW, SegmentRef};
use crate::read::tiles::{TilesError, with_tiles};
use crate::read::verify::{self, VerifyOptions};
use crate::seal::sources::{self, SourceTracker};
use crate::seal::wal;
use crate::seal::writer::ClosedSegment;
use crate::store::Store;

/// Everything the writer and uploader start from.
pub struct Recovered {
    pub sealer: LogSealer,
    pub sources: SourceTracker,
    /// What the store holds.
    pub stored: StoredHead,
    /// WAL files to upload before anything new.
    pub pending: Vec<ClosedSegment>,
    /// Bytes of torn tail cut from the last WAL file.
    pub torn_bytes: u64,
    /// The tree's right edge, at what the store holds, for the tiles still to write.
    pub tiles: TileWriter,
}

/// The parts of an entry recovery needs.
#[derive(Deserialize)]
struct SourceView {
    kind: EntryKind,
    #[serde(default)]
    source: Option<EntrySource>,
    event: serde_json::Value,
}

fn restore_source(sources: &mut SourceTracker, entry: &[u8]) -> anyhow::Result<()> {
    let view: SourceView = serde_json::from_slice(entry).context("entry is not valid JSON")?;
    if view.kind == EntryKind::K8sAudit
        && let Some(key) = auditlog::k8s::dedup_key_of_entry(&view.event)
    {
        sources.restore_key(&key);
    }
    let Some(src) = view.source else {
        return Ok(());
    };
    if view.kind == EntryKind::SourceEnd {
        if let Some(last) = view.event.get("last_seq").and_then(|v| v.as_u64()) {
            sources.restore_end(&src.id, last);
        }
        return Ok(());
    }
    let seq = match view.kind {
        EntryKind::Gap => view.event.get("last_seq").and_then(|v| v.as_u64()),
        _ => src.seq,
    };
    if let Some(seq) = seq {
        sources.restore(&src.id, seq);
    }
    Ok(())
}

/// Where the uploader keeps a copy of the newest checkpoint it stored.
pub fn last_checkpoint_path(data_dir: &Path) -> PathBuf {
    data_dir.join("last-checkpoint.note")
}

pub async fn recover<S: Store + Clone>(
    store: &S,
    data_dir: &Path,
    wal_dir: &Path,
    verifier: &NoteVerifier,
    mac_key: &MacKey,
) -> anyhow::Result<Recovered> {
    // 1. The store, checked against the last checkpoint this sealer published (kept in the
    //    data directory), so a store rolled back behind the sealer's back is refused.
    let own = match fs::read_to_string(last_checkpoint_path(data_dir)) {
        Ok(text) => Some((last_checkpoint_path(data_dir).display().to_string(), text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context("failed to read the last published checkpoint"),
    };
    let started = std::time::Instant::now();
    let state = match resume_at_right_edge(store, verifier, mac_key, own.as_ref()).await? {
        Ok(state) => state,
        Err(why) => {
            tracing::info!(reason = %why, "verifying the whole store before appending to it");
            verify_whole_store(store, verifier, mac_key, own).await?
        }
    };
    tracing::info!(
        entries = state.frontier.size(),
        from_checkpoint = state.newest.0,
        ms = started.elapsed().as_millis() as u64,
        "store state recovered"
    );
    let StoreState {
        frontier,
        head,
        newest,
    } = state;
    let tiles = TileWriter::open(store, newest, frontier.size()).await?;
    let stored = StoredHead {
        size: frontier.size(),
        root: frontier.root(),
        chain: head,
        checkpoint: None,
    };
    let mut sources = restore_sources(store, wal_dir, frontier.size()).await?;

    // 2. The write-ahead log.
    fs::create_dir_all(wal_dir)
        .with_context(|| format!("failed to create WAL directory {}", wal_dir.display()))?;
    wal::remove_spilled_leaves(wal_dir)
        .with_context(|| format!("failed to clean WAL directory {}", wal_dir.display()))?;
    let files = wal::list(wal_dir)
        .with_context(|| format!("failed to list WAL directory {}", wal_dir.display()))?;
    let mut tail = Tail {
        frontier,
        head,
        mac_key,
        leaves: Vec::new(),
    };
    let mut pending = Vec::new();
    let mut torn_bytes = 0;
    let count = files.len();
    for (i, (first, path)) in files.into_iter().enumerate() {
        let is_last = i + 1 == count;
        let bytes =
            fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
        if first < tail.frontier.size() {
            already_stored(store, first, &path, &bytes).await?;
            continue;
        }
        if first != tail.frontier.size() {
            bail!(
                "WAL file {} starts at entry {first} but the log has {} entries: entries are missing",
                path.display(),
                tail.frontier.size()
            );
        }
        tail.leaves.clear();
        let good = tail.absorb(&bytes, &path, &mut sources)?;
        if good < bytes.len() {
            // Only a torn tail may be cut: the last group written, never acknowledged. A
            // valid record after the damage means acknowledged records are damaged.
            let damaged_inside = bytes[good..]
                .split(|&b| b == b'\n')
                .skip(1)
                .any(|line| parse_record(line).is_ok());
            if !is_last || damaged_inside {
                bail!(
                    "WAL file {} is damaged at byte {good}, before records that were acknowledged; \
                     refusing to start (inspect it, and the store, before going on)",
                    path.display()
                );
            }
            // A file already linked into the store must never be cut.
            if std::os::unix::fs::MetadataExt::nlink(&fs::metadata(&path)?) > 1 {
                bail!(
                    "WAL file {} is damaged at byte {good} but is already linked into the store; \
                     refusing to cut it",
                    path.display()
                );
            }
            let cut = (bytes.len() - good) as u64;
            tracing::warn!(
                path = %path.display(),
                bytes = cut,
                "cutting a torn, never-acknowledged record from the end of the write-ahead log"
            );
            let f = fs::OpenOptions::new().write(true).open(&path)?;
            f.set_len(good as u64)?;
            f.sync_all()?;
            torn_bytes += cut;
        }
        if good == 0 {
            fs::remove_file(&path)?;
            wal::sync_dir(wal_dir)?;
            continue;
        }
        pending.push(ClosedSegment {
            path: path.clone(),
            first,
            last: tail.frontier.size() - 1,
            root: tail.frontier.root(),
            chain: tail.head,
            leaves: std::mem::take(&mut tail.leaves),
            spilled_leaves: None,
        });
    }
    Ok(Recovered {
        sealer: LogSealer::resume(mac_key.clone(), tail.head, tail.frontier),
        sources,
        stored,
        pending,
        torn_bytes,
        tiles,
    })
}

/// The store's log as the sealer resumes it.
struct StoreState {
    /// The tree of every stored entry.
    frontier: Frontier,
    /// The chain value of the last stored entry.
    head: Hash,
    /// The newest checkpoint's size and root.
    newest: (u64, Hash),
}

/// Resume from the store's newest checkpoint and the right edge of its tree, read from the
/// tiles: O(log n) reads whatever the size of the log. Entries stored after that checkpoint
/// (a crash between a segment and its checkpoint) are checked one by one. `Ok(Err(why))`
/// when this cannot be done (a store written before tiles, or without a checkpoint): then
/// the whole store is verified instead. An `Err` is evidence against the store.
async fn resume_at_right_edge<S: Store>(
    store: &S,
    verifier: &NoteVerifier,
    mac_key: &MacKey,
    own: Option<&(String, String)>,
) -> anyhow::Result<Result<StoreState, String>> {
    let log = StoredLog::new(store);
    // The sealer's own last checkpoint bounds the listing from below.
    let own_size = own
        .and_then(|(_, text)| LogHead::open(text, verifier).ok())
        .map_or(0, |h| h.size);
    let newest_ref = match log.newest_checkpoint_from(own_size).await? {
        Some(c) => c,
        None => match log.newest_checkpoint().await? {
            Some(c) => c,
            None => return Ok(Err("the store has no checkpoint".into())),
        },
    };
    let text = log.read_checkpoint(&newest_ref).await?;
    let refuse = |why: String| {
        anyhow::anyhow!(
            "the store {} {why}, so the sealer will not append to it (run `sealer verify` for \
             the full report)",
            store.describe()
        )
    };
    let newest = LogHead::open(&text, verifier).map_err(|e| {
        refuse(format!(
            "has a newest checkpoint {} that does not verify: {e}",
            newest_ref.key
        ))
    })?;
    if newest.key() != newest_ref.key {
        return Err(refuse(format!(
            "has a checkpoint stored under the wrong name {}",
            newest_ref.key
        )));
    }
    if let Some((name, own_text)) = own {
        let own = LogHead::open(own_text, verifier).map_err(|e| {
            refuse(format!(
                "cannot be checked: the sealer's last checkpoint {name} does not verify: {e}"
            ))
        })?;
        if own.size > newest.size {
            return Err(refuse(format!(
                "was truncated or rolled back: its newest checkpoint commits to {} entries, the \
                 last one this sealer published ({name}, signed at {}) to {}",
                newest.size, own.time, own.size
            )));
        }
        let Some(consistent) = consistent(store, &own, &newest).await? else {
            return Ok(Err("the tiles for a consistency proof are missing".into()));
        };
        if !consistent {
            return Err(refuse(format!(
                "forked: its newest checkpoint ({} entries) is not consistent with the last one \
                 this sealer published ({name}, {} entries)",
                newest.size, own.size
            )));
        }
    }
    // The segments from a window before the newest checkpoint's size: the one that ends
    // there, and any stored after it. All of them only if that one is not in the window.
    let ends_at_newest = |segments: &[SegmentRef]| {
        newest.size == 0 || segments.iter().any(|s| s.last + 1 == newest.size)
    };
    let mut segments = log
        .segments_from(newest.size.saturating_sub(SEGMENT_SEARCH_WINDOW))
        .await?;
    if !ends_at_newest(&segments) {
        segments = log.segments().await?;
    }
    if !ends_at_newest(&segments) {
        return Ok(Err(format!(
            "no segment ends at the newest checkpoint's size {}",
            newest.size
        )));
    }
    let mut set = TileSet::new(newest.size);
    let mut frontier = match with_tiles(store, &mut set, |t| t.frontier()).await {
        Ok(f) => f,
        Err(TilesError::Missing(id)) => {
            return Ok(Err(format!(
                "the store has no tile {id} (written before tiles)"
            )));
        }
        Err(e) => return Err(e).context("failed to read the tiles"),
    };
    if frontier.root() != newest.root {
        return Err(refuse(format!(
            "has tiles that give the root {} for {} entries, where its newest checkpoint signs {}",
            hex::encode(frontier.root()),
            newest.size,
            hex::encode(newest.root)
        )));
    }
    // Entries stored after the newest checkpoint.
    let mut head = newest.chain;
    for seg in segments.iter().filter(|s| s.last >= newest.size) {
        if seg.first != frontier.size() {
            return Err(refuse(format!(
                "lacks entries {}..{} before {}",
                frontier.size(),
                seg.first,
                seg.key
            )));
        }
        let bytes = log.read(&seg.key).await?;
        for (i, line) in bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let bad = |what: &str| {
                refuse(format!(
                    "has a damaged entry at {}:{} ({what})",
                    seg.key,
                    i + 1
                ))
            };
            let record = parse_record(line).map_err(|e| bad(&e.to_string()))?;
            let leaf = leaf_hash(record.entry);
            let chain = chain::next(&head, &leaf);
            if chain != record.chain {
                return Err(bad("the chain is broken"));
            }
            if !mac_key.verify(&chain, &record.mac) {
                return Err(bad("the MAC does not verify"));
            }
            frontier.push(leaf);
            head = chain;
        }
        if frontier.size() != seg.last + 1 {
            return Err(refuse(format!(
                "has a segment {} whose name disagrees with its content",
                seg.key
            )));
        }
    }
    Ok(Ok(StoreState {
        frontier,
        head,
        newest: (newest.size, newest.root),
    }))
}

/// Whether the store's newest checkpoint extends `own` (the same tree, or a consistency
/// proof from the tiles that verifies); `None` when the tiles to tell are missing.
async fn consistent<S: Store>(
    store: &S,
    own: &LogHead,
    newest: &LogHead,
) -> anyhow::Result<Option<bool>> {
    if own.size == newest.size {
        return Ok(Some(own.root == newest.root));
    }
    if own.size == 0 {
        return Ok(Some(true));
    }
    let mut set = TileSet::new(newest.size);
    let (old, new) = (own.size, newest.size);
    match with_tiles(store, &mut set, |t| {
        auditlog::subtrees::consistency_proof(t, old, new)
    })
    .await
    {
        Ok(proof) => Ok(Some(
            auditlog::merkle::verify_consistency(old, new, &own.root, &newest.root, &proof).is_ok(),
        )),
        Err(TilesError::Missing(_)) => Ok(None),
        Err(e) => Err(e).context("failed to read the tiles"),
    }
}

/// The whole store verified (chain, MACs, signed checkpoints), as a store without tiles
/// needs. A sealer never appends to a log that fails verification.
async fn verify_whole_store<S: Store + Clone>(
    store: &S,
    verifier: &NoteVerifier,
    mac_key: &MacKey,
    own: Option<(String, String)>,
) -> anyhow::Result<StoreState> {
    let options = VerifyOptions {
        witnesses: Vec::new(),
        min_witnesses: 0,
        cosigned_max_age: None,
        incremental: false,
        mac_key: Some(mac_key.clone()),
        trusted: own,
        progress: false,
        // Versions and locks are the verifier's business; recovery needs the log itself.
        storage_checks: false,
        min_retention_days: None,
    };
    let (report, frontier, head) = verify::verify_with_state(store, verifier, &options)
        .await
        .with_context(|| format!("failed to read the store {}", store.describe()))?;
    // Entries after the newest checkpoint are normal after a crash between storing a segment
    // and its checkpoint; the uploader signs them first thing. Tiles are written afterwards
    // when the store has none.
    let fatal = report
        .problems
        .iter()
        .find(|p| p.class != ProblemClass::UnsignedTail && p.class != ProblemClass::MissingTile);
    if let Some(first) = fatal {
        bail!(
            "the store {} fails verification, so the sealer will not append to it: {first} \
             ({} problem(s) in all; run `sealer verify` for the full report)",
            store.describe(),
            report.problem_count
        );
    }
    let newest = match &report.newest_checkpoint {
        Some(c) => {
            let root = hex::decode(&c.root)
                .ok()
                .and_then(|r| Hash::try_from(r).ok())
                .context("the newest checkpoint's root is not 32 bytes of hex")?;
            (c.size, root)
        }
        None => (0, auditlog::merkle::empty_root()),
    };
    Ok(StoreState {
        frontier,
        head,
        newest,
    })
}

/// The sources as of the store's `stored` entries: from the newest snapshot the writer saved
/// at or before that size, then the stored entries after it. Without a snapshot (the first
/// start of a sealer that did not save them), every entry is read once.
async fn restore_sources<S: Store>(
    store: &S,
    wal_dir: &Path,
    stored: u64,
) -> anyhow::Result<SourceTracker> {
    let snapshot = sources::snapshots(wal_dir)
        .unwrap_or_default()
        .into_iter()
        .rev()
        .filter(|(size, _)| *size <= stored)
        .find_map(|(_, path)| {
            let bytes = fs::read(&path).ok()?;
            serde_json::from_slice::<sources::Snapshot>(&bytes).ok()
        });
    let (from, mut tracker) = match snapshot {
        Some(s) => (s.size, SourceTracker::from_snapshot(s)),
        None => {
            if stored > 0 {
                tracing::info!(
                    entries = stored,
                    "no sources snapshot: reading every stored entry once to rebuild them"
                );
            }
            (0, SourceTracker::default())
        }
    };
    let log = StoredLog::new(store);
    if from < stored {
        for segment in log.segments_in(from..=stored - 1).await? {
            let bytes = log.read(&segment.key).await?;
            let lines = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty());
            for (seq, line) in (segment.first..).zip(lines) {
                if seq < from {
                    continue;
                }
                let record =
                    parse_record(line).map_err(|e| anyhow::anyhow!("{}: {e}", segment.key))?;
                restore_source(&mut tracker, record.entry)
                    .with_context(|| format!("in {}", segment.key))?;
            }
        }
    }
    Ok(tracker)
}

/// A WAL file whose entries the store already has: it must be the stored segment, byte for
/// byte, and is then removed.
async fn already_stored<S: Store>(
    store: &S,
    first: u64,
    path: &PathBuf,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    let key = layout::segment_key(first, first + lines.max(1) - 1);
    match store.get(&key).await? {
        Some(stored) if stored == bytes => {
            tracing::info!(path = %path.display(), key, "WAL file already stored; removing it");
            fs::remove_file(path)?;
            Ok(())
        }
        _ => bail!(
            "WAL file {} overlaps entries already in the store but differs from {key}: \
             integrity alarm, refusing to start",
            path.display()
        ),
    }
}

/// The log state while WAL records are appended to it.
struct Tail<'a> {
    frontier: Frontier,
    head: Hash,
    mac_key: &'a MacKey,
    /// Leaf hashes of the records absorbed from the current file.
    leaves: Vec<Hash>,
}

impl Tail<'_> {
    /// Absorb the valid records at the start of `bytes`; returns how many bytes they span.
    fn absorb(
        &mut self,
        bytes: &[u8],
        path: &Path,
        sources: &mut SourceTracker,
    ) -> anyhow::Result<usize> {
        let mut offset = 0;
        while let Some(len) = bytes[offset..].iter().position(|&b| b == b'\n') {
            let line = &bytes[offset..offset + len];
            let Ok(record) = parse_record(line) else {
                break;
            };
            let leaf = leaf_hash(record.entry);
            let chain = chain::next(&self.head, &leaf);
            if chain != record.chain || !self.mac_key.verify(&chain, &record.mac) {
                break;
            }
            restore_source(sources, record.entry)
                .with_context(|| format!("in {}", path.display()))?;
            self.frontier.push(leaf);
            self.leaves.push(leaf);
            self.head = chain;
            offset += len + 1;
        }
        Ok(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use auditlog::note::NoteSigner;
    use auditlog::timestamp::Timestamp;

    const ORIGIN: &str = "recovery.test/log";

    /// A data directory whose only WAL file holds three sealed records.
    fn wal_with_three_records() -> (tempfile::TempDir, PathBuf, MacKey) {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join("wal");
        fs::create_dir_all(&wal_dir).unwrap();
        let mac = MacKey::new(&[3; 32]);
        let mut sealer = LogSealer::new(ORIGIN, mac.clone());
        let mut bytes = Vec::new();
        for i in 0..3 {
            let event = format!(r#"{{"n":{i}}}"#);
            sealer.seal(
                &mut bytes,
                EntryKind::Start,
                Timestamp::from_unix_nanos(i),
                None,
                event.as_bytes(),
            );
        }
        let path = wal::wal_path(&wal_dir, 0);
        fs::write(&path, &bytes).unwrap();
        (dir, path, mac)
    }

    async fn recover_in(dir: &Path, mac: &MacKey) -> anyhow::Result<Recovered> {
        let verifier = NoteSigner::from_seed(ORIGIN, [1; 32]).unwrap().verifier();
        recover(
            &MemoryStore::default(),
            dir,
            &dir.join("wal"),
            &verifier,
            mac,
        )
        .await
    }

    /// The offset just past the `n`th record (its newline) of a WAL's bytes.
    fn end_of_record(wal: &[u8], n: usize) -> usize {
        let newlines = wal.iter().enumerate().filter(|(_, b)| **b == b'\n');
        newlines
            .map(|(i, _)| i + 1)
            .nth(n - 1)
            .expect("the WAL has n records")
    }

    #[tokio::test]
    async fn leaf_hashes_a_previous_run_put_aside_are_removed_and_its_segments_hashed_again() {
        let (dir, path, mac) = wal_with_three_records();
        let aside = crate::seal::writer::spilled_leaves_path(&path);
        fs::write(&aside, [7u8; 96]).unwrap();
        let r = recover_in(dir.path(), &mac).await.unwrap();
        assert!(!aside.exists(), "the file put aside is gone");
        assert_eq!(r.pending.len(), 1);
        assert_eq!(r.pending[0].spilled_leaves, None);
        assert_eq!(
            r.pending[0].leaves.len(),
            3,
            "the pending segment's leaves, hashed"
        );
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_and_reported() {
        let (dir, path, mac) = wal_with_three_records();
        let full = fs::read(&path).unwrap();
        let second_end = end_of_record(&full, 2);
        fs::write(&path, &full[..second_end + 40]).unwrap();
        let r = recover_in(dir.path(), &mac).await.unwrap();
        assert_eq!(r.torn_bytes, 40);
        assert_eq!(r.sealer.size(), 2);
        assert_eq!(r.pending.len(), 1);
        assert_eq!(fs::read(&path).unwrap(), &full[..second_end]);
    }

    /// A crash can cut the WAL anywhere inside the record being written: at every byte
    /// offset of the last record, recovery keeps exactly the records before it and cuts the
    /// rest (a record cut right after its newline is whole and kept).
    #[tokio::test]
    async fn a_wal_cut_at_every_offset_of_its_last_record_recovers_the_whole_records() {
        let (dir, path, mac) = wal_with_three_records();
        let full = fs::read(&path).unwrap();
        let second_end = end_of_record(&full, 2);
        for cut in second_end..=full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            let r = recover_in(dir.path(), &mac)
                .await
                .unwrap_or_else(|e| panic!("cut at {cut} of {}: {e:#}", full.len()));
            let whole = if cut == full.len() { 3 } else { 2 };
            assert_eq!(r.sealer.size(), whole, "cut at {cut}");
            assert_eq!(
                r.torn_bytes,
                (cut - second_end) as u64 % (full.len() - second_end) as u64
            );
            let kept = if cut == full.len() {
                full.len()
            } else {
                second_end
            };
            assert_eq!(fs::read(&path).unwrap(), &full[..kept], "cut at {cut}");
        }
    }

    #[tokio::test]
    async fn damage_before_acknowledged_records_refuses_to_start() {
        let (dir, path, mac) = wal_with_three_records();
        let mut bytes = fs::read(&path).unwrap();
        let first_end = bytes.iter().position(|b| *b == b'\n').unwrap();
        bytes[first_end + 100] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let err = recover_in(dir.path(), &mac)
            .await
            .err()
            .expect("must refuse");
        assert!(
            err.to_string()
                .contains("before records that were acknowledged"),
            "{err}"
        );
        assert_eq!(fs::read(&path).unwrap(), bytes, "nothing was cut");
    }

    /// A store holding the three records of [`wal_with_three_records`] as one segment, with
    /// a checkpoint signed by the key [`recover_in`] trusts.
    async fn store_with_three_records() -> MemoryStore {
        let mut sealer = LogSealer::new(ORIGIN, MacKey::new(&[3; 32]));
        let mut bytes = Vec::new();
        for i in 0..3 {
            let event = format!(r#"{{"n":{i}}}"#);
            let at = Timestamp::from_unix_nanos(i);
            sealer.seal(&mut bytes, EntryKind::Start, at, None, event.as_bytes());
        }
        let store = MemoryStore::default();
        let put = |key: String, bytes: Vec<u8>| {
            let store = store.clone();
            async move { store.put_if_absent(&key, bytes.into()).await.unwrap() }
        };
        put(layout::segment_key(0, 2), bytes).await;
        let head = auditlog::head::LogHead {
            origin: ORIGIN.into(),
            size: 3,
            root: sealer.frontier().root(),
            chain: sealer.head(),
            time: Timestamp::from_unix_nanos(1_800_000_000_000_000_000),
        };
        let signer = NoteSigner::from_seed(ORIGIN, [1; 32]).unwrap();
        put(head.key(), head.sign(&signer).unwrap().into_bytes()).await;
        store
    }

    async fn recover_from(
        store: &MemoryStore,
        dir: &Path,
        mac: &MacKey,
    ) -> anyhow::Result<Recovered> {
        let verifier = NoteSigner::from_seed(ORIGIN, [1; 32]).unwrap().verifier();
        recover(store, dir, &dir.join("wal"), &verifier, mac).await
    }

    #[tokio::test]
    async fn a_wal_file_already_stored_is_removed_and_one_that_differs_refuses_to_start() {
        // Identical: a crash after the upload, before the WAL file was removed.
        let (dir, path, mac) = wal_with_three_records();
        let store = store_with_three_records().await;
        let r = recover_from(&store, dir.path(), &mac).await.unwrap();
        assert_eq!((r.sealer.size(), r.pending.len()), (3, 0));
        assert!(!path.exists(), "the stored WAL file is removed");

        // Different bytes for the same entries: an integrity alarm, and nothing is touched.
        let (dir, path, mac) = wal_with_three_records();
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes.iter().position(|&b| b == b'1').unwrap();
        bytes[at] = b'7';
        fs::write(&path, &bytes).unwrap();
        let err = recover_from(&store, dir.path(), &mac)
            .await
            .err()
            .expect("must refuse");
        assert!(err.to_string().contains("integrity alarm"), "{err:#}");
        assert_eq!(
            fs::read(&path).unwrap(),
            bytes,
            "the WAL file is kept as it is"
        );
    }

    #[tokio::test]
    async fn an_intact_wal_becomes_a_pending_segment() {
        let (dir, _path, mac) = wal_with_three_records();
        let r = recover_in(dir.path(), &mac).await.unwrap();
        assert_eq!((r.torn_bytes, r.sealer.size(), r.pending.len()), (0, 3, 1));
        assert_eq!((r.pending[0].first, r.pending[0].last), (0, 2));
    }
}
