//! The query index: what `GET /v1/events` searches and `GET /v1/proof/*` proves from.
//!
//! It is derived data, never the source of truth. It lives in `DATA_DIR/index/` (an SQLite
//! file of the entries and their query fields, [`db`], and the Merkle tree's levels,
//! [`levels`]) and follows the store: every entry covered by a stored checkpoint is indexed
//! (so anything a proof is asked for is in a checkpoint a verifier can check). Delete the
//! directory and it is rebuilt from the store at the next start. If its tree ever disagrees
//! with a checkpoint's root, it is thrown away and rebuilt.
//!
//! Proofs come from the levels in O(log² n) reads ([`auditlog::subtrees`]); a client checks
//! them against the signed checkpoint, so a damaged index yields proofs that fail, not false
//! ones.

pub mod db;
pub mod levels;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use auditlog::merkle::{self, Hash};
use auditlog::query::{Fields, Filter};
use auditlog::record::parse_record;
use auditlog::subtrees;
use rusqlite::Connection;
use tokio::sync::watch;

use crate::read::StoredLog;
use crate::read::head::{HeadWatch, StoredHead};
use crate::store::Store;

pub use db::{Cursor, Order, Page};

const DB_FILE: &str = "entries.sqlite";
const LEVELS_DIR: &str = "levels";

/// The indexer's side: appends entries.
pub struct IndexWriter {
    dir: PathBuf,
    conn: Connection,
    levels: levels::LevelWriter,
}

impl IndexWriter {
    /// Open the index in `dir`, cut back to the size the table and the levels agree on.
    pub fn open(dir: &Path) -> anyhow::Result<IndexWriter> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let conn = db::open_writer(&dir.join(DB_FILE))?;
        let levels = levels::LevelWriter::open(&dir.join(LEVELS_DIR))?;
        // A crash or a full disk may leave one part ahead of the other: cut both to the
        // entries they both hold.
        let rows = db::size(&conn)?;
        let size = rows.min(levels.size());
        if rows > size {
            db::truncate(&conn, size)?;
        }
        let levels = if levels.size() > size {
            drop(levels);
            levels::LevelWriter::open_at_most(&dir.join(LEVELS_DIR), size)?
        } else {
            levels
        };
        Ok(IndexWriter {
            dir: dir.to_owned(),
            conn,
            levels,
        })
    }

    pub fn size(&self) -> u64 {
        self.levels.size()
    }

    /// Append entries `size..`: `(seq, canonical entry bytes)`, in order.
    pub fn append(&mut self, entries: &[(u64, Vec<u8>)]) -> anyhow::Result<()> {
        let mut rows = Vec::with_capacity(entries.len());
        for (i, (seq, bytes)) in entries.iter().enumerate() {
            let expected = self.size() + i as u64;
            if *seq != expected {
                bail!("index: expected entry {expected}, got {seq}");
            }
            let text = std::str::from_utf8(bytes).context("an entry is not UTF-8")?;
            let value: serde_json::Value =
                serde_json::from_str(text).context("an entry is not JSON")?;
            rows.push((Fields::of(&value), text));
        }
        db::insert(&mut self.conn, rows.iter().map(|(f, t)| (f, *t)))?;
        for (_, bytes) in entries {
            self.levels.push(merkle::leaf_hash(bytes))?;
        }
        self.levels.flush()?;
        Ok(())
    }

    /// The root of the first `size` entries, from the levels.
    pub fn root(&self, size: u64) -> anyhow::Result<Hash> {
        subtrees::root(&levels::LevelReader::new(&self.dir.join(LEVELS_DIR)), size)
    }

    /// Throw everything away.
    pub fn clear(&mut self) -> anyhow::Result<()> {
        self.levels.clear()?;
        db::truncate(&self.conn, 0)
    }
}

/// The readers' side: queries and proofs over the entries indexed so far.
pub struct IndexReader {
    conn: Mutex<Connection>,
    levels: levels::LevelReader,
    /// Entries indexed and flushed: everything below is readable.
    size: Arc<AtomicU64>,
}

/// An inclusion proof of one entry.
#[derive(Debug, Clone)]
pub struct Inclusion {
    pub entry: String,
    pub proof: Vec<Hash>,
}

impl IndexReader {
    pub fn open(dir: &Path, size: Arc<AtomicU64>) -> anyhow::Result<IndexReader> {
        Ok(IndexReader {
            conn: Mutex::new(db::open_reader(&dir.join(DB_FILE))?),
            levels: levels::LevelReader::new(&dir.join(LEVELS_DIR)),
            size,
        })
    }

    /// Entries indexed.
    pub fn size(&self) -> u64 {
        self.size.load(Relaxed)
    }

    /// The counter the indexer raises as it makes entries readable.
    pub fn published(&self) -> Arc<AtomicU64> {
        self.size.clone()
    }

    pub fn query(
        &self,
        filter: &Filter,
        order: Order,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> anyhow::Result<Page> {
        let conn = self.conn.lock().expect("not poisoned");
        db::query(&conn, filter, order, cursor, limit, self.size())
    }

    /// Entry `seq` and its inclusion proof in the tree of `size` entries.
    pub fn inclusion(&self, seq: u64, size: u64) -> anyhow::Result<Inclusion> {
        self.check_size(size)?;
        let proof = subtrees::inclusion_proof(&self.levels, seq, size)?;
        let conn = self.conn.lock().expect("not poisoned");
        let entry = db::entry(&conn, seq)?.with_context(|| format!("entry {seq} not indexed"))?;
        Ok(Inclusion { entry, proof })
    }

    /// The consistency proof from the tree of `old` entries to that of `new`.
    pub fn consistency(&self, old: u64, new: u64) -> anyhow::Result<Vec<Hash>> {
        self.check_size(new)?;
        subtrees::consistency_proof(&self.levels, old, new)
    }

    fn check_size(&self, size: u64) -> anyhow::Result<()> {
        let have = self.size();
        if size > have {
            bail!("the index holds {have} entries, fewer than the tree size {size}");
        }
        Ok(())
    }
}

/// Open the index in `dir` for the indexer and for readers.
pub fn open(dir: &Path) -> anyhow::Result<(IndexWriter, IndexReader)> {
    let writer = IndexWriter::open(dir)?;
    let size = Arc::new(AtomicU64::new(writer.size()));
    let reader = IndexReader::open(dir, size)?;
    Ok((writer, reader))
}

/// Entries `from..until` of the stored segments, in order.
async fn read_stored<S: Store>(
    store: &S,
    from: u64,
    until: u64,
) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::new();
    if from >= until {
        return Ok(out);
    }
    let log = StoredLog::new(store);
    for segment in log.segments_in(from..=until - 1).await? {
        let first = segment.first;
        let bytes = log.read(&segment.key).await?;
        for (i, line) in bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let seq = first + i as u64;
            if seq < from || seq >= until {
                continue;
            }
            let record = parse_record(line).map_err(|e| anyhow::anyhow!("{}: {e}", segment.key))?;
            out.push((seq, record.entry.to_vec()));
        }
        if out.len() as u64 >= until - from {
            break;
        }
    }
    Ok(out)
}

/// Keep the index up with the stored head until `stop`: every time a newer checkpoint is
/// stored, index the entries it covers, and check the tree against its root.
pub async fn follow<S: Store + Clone>(
    store: S,
    writer: IndexWriter,
    published: Arc<AtomicU64>,
    mut head: HeadWatch,
    mut stop: watch::Receiver<bool>,
) {
    let dir = writer.dir.clone();
    let mut slot = Some(writer);
    let mut paused = false;
    loop {
        let target = head.borrow_and_update().clone();
        let low = low_on_space(&dir);
        if low.is_some() != paused {
            paused = low.is_some();
            match low {
                Some(free) => tracing::warn!(
                    free_bytes = free,
                    dir = %dir.display(),
                    "index paused: little space left on its filesystem, which the write-ahead \
                     log may share; it resumes when space returns"
                ),
                None => tracing::info!("index resumed"),
            }
        }
        if slot.is_none() && !paused {
            slot = IndexWriter::open(&dir).ok();
        }
        let behind = slot.as_ref().is_some_and(|w| target.size > w.size());
        if let Some(writer) = slot.take_if(|w| target.size > w.size() && !paused) {
            let (w, result) = catch_up(&store, writer, &target).await;
            slot = match result {
                Ok(()) => Some(w),
                Err(e) => recover(w, &e),
            };
            if let Some(w) = &slot {
                published.store(w.size(), Relaxed);
            }
        }
        // Wait for a newer head; while paused or after a failure, also try again now and then.
        let retry = paused || behind || slot.is_none();
        tokio::select! {
            changed = head.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(1)), if retry => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Below this much free space on its filesystem (or 5 % of it, whichever is more), the
/// index stops growing: the write-ahead log, which may share the filesystem, comes first.
pub const MIN_FREE_BYTES: u64 = 64 << 20;

/// `Some(free bytes)` when the filesystem of `dir` is low on space.
fn low_on_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `path` is a valid NUL-terminated string and `stat` a properly sized buffer
    // that statvfs fills in.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let block = stat.f_frsize as u64;
    let free = stat.f_bavail as u64 * block;
    let total = stat.f_blocks as u64 * block;
    (free < MIN_FREE_BYTES.max(total / 20)).then_some(free)
}

/// Why catching up failed.
#[derive(Debug, thiserror::Error)]
enum CatchUpError {
    /// The index's tree disagrees with a stored checkpoint: its content is wrong, not late.
    #[error("the index's tree of {size} entries does not have the checkpoint's root")]
    RootMismatch { size: u64 },
    /// Reading the store or writing the index failed; the next round tries again.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// After a failed round: reopen the index (which cuts it back to what both parts hold), and
/// throw it away when its content is wrong. `None` if it cannot even be reopened (the next
/// round tries again).
fn recover(w: IndexWriter, error: &CatchUpError) -> Option<IndexWriter> {
    let dir = w.dir.clone();
    let wrong = matches!(error, CatchUpError::RootMismatch { .. });
    drop(w);
    tracing::error!(
        error = format!("{error:#}"),
        "index: catching up failed; {}",
        if wrong {
            "rebuilding it from the store"
        } else {
            "retrying"
        }
    );
    let reopened = IndexWriter::open(&dir).and_then(|mut w| {
        if wrong {
            w.clear()?;
        }
        Ok(w)
    });
    match reopened {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), dir = %dir.display(), "index: cannot reopen; retrying");
            None
        }
    }
}

/// Index the entries up to the stored head, in chunks, then compare the tree's root with the
/// head's. The writer comes back whatever happened.
async fn catch_up<S: Store>(
    store: &S,
    mut w: IndexWriter,
    head: &StoredHead,
) -> (IndexWriter, Result<(), CatchUpError>) {
    let target = head.size;
    const CHUNK: u64 = 100_000;
    while w.size() < target {
        let from = w.size();
        let until = target.min(from + CHUNK);
        let entries = match read_stored(store, from, until).await {
            Ok(e) if e.len() as u64 == until - from => e,
            Ok(e) => {
                let held = e.len();
                return (
                    w,
                    Err(anyhow::anyhow!(
                        "the store holds {held} of the entries {from}..{until} a checkpoint covers"
                    )
                    .into()),
                );
            }
            Err(e) => return (w, Err(e.into())),
        };
        let (back, result) = match tokio::task::spawn_blocking(move || {
            let r = w.append(&entries);
            (w, r)
        })
        .await
        {
            Ok(done) => done,
            Err(e) => panic!("the index writer panicked: {e}"),
        };
        w = back;
        if let Err(e) = result {
            return (w, Err(e.into()));
        }
    }
    let check = || -> Result<(), CatchUpError> {
        if head.size == w.size() && w.root(head.size)? != head.root {
            return Err(CatchUpError::RootMismatch { size: head.size });
        }
        Ok(())
    };
    let result = check();
    (w, result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const METHODS: [&str; 3] = ["GET", "POST", "DELETE"];
    const PATHS: [&str; 4] = ["/", "/admin", "/admin/users", "/shop%20x"];
    const WHO: [&str; 3] = ["alice", "bob", "Ålice"];

    /// A varied entry at position `seq`, from small random choices.
    fn entry(seq: u64, pick: [u8; 6]) -> Value {
        let time = format!("2026-11-28T09:00:{:02}.000000000Z", pick[0] % 20);
        let sealed = format!("2026-11-28T09:01:{:02}.000000000Z", seq % 60);
        match pick[1] % 5 {
            0 => {
                json!({"event": {"count": 1, "first_seq": 1, "last_seq": 1, "reason": "sequence_jump"},
                        "kind": "gap", "sealed_at": sealed, "seq": seq,
                        "source": {"id": format!("gw{}/00", pick[2] % 2)}})
            }
            1 => json!({"event": {"verb": METHODS[pick[2] as usize % 3].to_lowercase(),
                                  "requestURI": PATHS[pick[3] as usize % 4],
                                  "user": {"username": WHO[pick[4] as usize % 3]},
                                  "sourceIPs": ["10.0.0.1"], "stageTimestamp": time,
                                  "responseStatus": {"code": ([200, 403][pick[5] as usize % 2])}},
                        "kind": "k8s_audit", "sealed_at": sealed, "seq": seq}),
            _ => {
                let mut event = json!({
                    "http": {"request": {"method": METHODS[pick[2] as usize % 3]},
                             "response": {"status_code": ([200, 404, 503][pick[5] as usize % 3])}},
                    "server": {"address": (["a.example", "B.example"][pick[3] as usize % 2])},
                    "url": {"path": PATHS[pick[3] as usize % 4], "scheme": "https"},
                    "client": {"address": (["10.0.0.1", "10.0.0.2"][pick[4] as usize % 2])},
                    "start_time": time,
                });
                if !pick[4].is_multiple_of(3) {
                    event["enduser"] = json!({"id": WHO[pick[4] as usize % 3], "source": "jwt"});
                }
                json!({"event": event, "kind": "http", "sealed_at": sealed, "seq": seq,
                       "source": {"id": format!("gw{}/0a", pick[2] % 2), "seq": seq + 1}})
            }
        }
    }

    fn filter_strategy() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
        let choices: Vec<(&'static str, &'static str)> = vec![
            ("kind", "http"),
            ("kind", "gap,k8s_audit"),
            ("gateway", "gw1"),
            ("method", "get"),
            ("host", "b.example"),
            ("path_prefix", "/admin"),
            ("status", "4xx"),
            ("status", "200"),
            ("identity", "alice"),
            ("identity", "Ålice"),
            ("client", "10.0.0.2"),
            ("q", "ADMIN/U"),
            ("from", "2026-11-28T09:00:05Z"),
            ("to", "2026-11-28T09:00:12Z"),
        ];
        proptest::sample::subsequence(choices, 0..4)
    }

    fn index_of(entries: &[Value]) -> (tempfile::TempDir, IndexWriter, IndexReader) {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, r) = open(dir.path()).unwrap();
        let rows: Vec<(u64, Vec<u8>)> = entries
            .iter()
            .map(|e| {
                (
                    e["seq"].as_u64().unwrap(),
                    auditlog::jcs::canonicalize(e).unwrap(),
                )
            })
            .collect();
        w.append(&rows).unwrap();
        r.size.store(w.size(), Relaxed);
        (dir, w, r)
    }

    /// Every page, following the cursor.
    fn all_pages(r: &IndexReader, f: &Filter, order: Order, limit: usize) -> Vec<u64> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = r.query(f, order, cursor, limit).unwrap();
            out.extend(page.entries.iter().map(|e| {
                serde_json::from_str::<Value>(e).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            }));
            match page.next {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn the_index_selects_what_the_filter_selects(
            picks in proptest::collection::vec(any::<[u8; 6]>(), 1..60),
            params in filter_strategy(),
            limit in 1usize..7,
        ) {
            let entries: Vec<Value> = picks.iter().enumerate().map(|(i, p)| entry(i as u64, *p)).collect();
            let (_dir, _w, r) = index_of(&entries);
            let filter = Filter::from_pairs(params.iter().copied()).unwrap();
            let mut expected: Vec<(i64, u64)> = entries
                .iter()
                .filter(|e| {
                    let json = String::from_utf8(auditlog::jcs::canonicalize(e).unwrap()).unwrap();
                    filter.matches(&Fields::of(e), &json)
                })
                .map(|e| { let f = Fields::of(e); (f.time, f.seq) })
                .collect();
            expected.sort();
            let oldest: Vec<u64> = expected.iter().map(|(_, s)| *s).collect();
            prop_assert_eq!(all_pages(&r, &filter, Order::OldestFirst, limit), oldest.clone());
            let newest: Vec<u64> = oldest.into_iter().rev().collect();
            prop_assert_eq!(all_pages(&r, &filter, Order::NewestFirst, limit), newest);
        }
    }

    #[test]
    fn pagination_is_stable_while_entries_are_added() {
        let first: Vec<Value> = (0..30)
            .map(|i| entry(i, [i as u8, 2, 0, 0, 1, 0]))
            .collect();
        let (_dir, mut w, r) = index_of(&first);
        let filter = Filter::default();
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut next_seq = 30u64;
        loop {
            let page = r.query(&filter, Order::NewestFirst, cursor, 4).unwrap();
            seen.extend(page.entries.iter().map(|e| {
                serde_json::from_str::<Value>(e).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            }));
            // New entries arrive between pages, at every point in time.
            let more: Vec<(u64, Vec<u8>)> = (0..3)
                .map(|k| {
                    let e = entry(next_seq + k, [(next_seq + k * 7) as u8, 2, 1, 1, 1, 1]);
                    (next_seq + k, auditlog::jcs::canonicalize(&e).unwrap())
                })
                .collect();
            w.append(&more).unwrap();
            next_seq += 3;
            r.size.store(w.size(), Relaxed);
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "an entry came twice: {seen:?}");
        for s in 0..30 {
            assert!(
                seen.contains(&s),
                "entry {s}, there before the first page, was skipped"
            );
        }
    }

    #[test]
    fn a_half_written_round_is_cut_back_and_indexing_goes_on() {
        let entries: Vec<Value> = (0..10).map(|i| entry(i, [i as u8; 6])).collect();
        let (dir, w, _r) = index_of(&entries);
        drop(w);
        // As if the disk filled after the rows were committed, before the levels were.
        let level0 = dir.path().join(LEVELS_DIR).join("level-00");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&level0)
            .unwrap()
            .set_len(6 * 32)
            .unwrap();
        let mut w = IndexWriter::open(dir.path()).unwrap();
        assert_eq!(w.size(), 6);
        assert_eq!(db::size(&w.conn).unwrap(), 6, "rows cut back to the levels");
        let rest: Vec<(u64, Vec<u8>)> = entries[6..]
            .iter()
            .map(|e| {
                (
                    e["seq"].as_u64().unwrap(),
                    auditlog::jcs::canonicalize(e).unwrap(),
                )
            })
            .collect();
        w.append(&rest).unwrap();
        let leaves: Vec<Hash> = entries
            .iter()
            .map(|e| merkle::leaf_hash(&auditlog::jcs::canonicalize(e).unwrap()))
            .collect();
        assert_eq!(w.root(10).unwrap(), merkle::root_of(&leaves));
    }

    #[test]
    fn proofs_from_the_index_verify() {
        let entries: Vec<Value> = (0..13).map(|i| entry(i, [i as u8; 6])).collect();
        let (_dir, w, r) = index_of(&entries);
        let leaves: Vec<Hash> = entries
            .iter()
            .map(|e| merkle::leaf_hash(&auditlog::jcs::canonicalize(e).unwrap()))
            .collect();
        let root = merkle::root_of(&leaves[..11]);
        assert_eq!(w.root(11).unwrap(), root);
        let inc = r.inclusion(7, 11).unwrap();
        merkle::verify_inclusion(
            &merkle::leaf_hash(inc.entry.as_bytes()),
            7,
            11,
            &inc.proof,
            &root,
        )
        .unwrap();
        let cons = r.consistency(5, 11).unwrap();
        merkle::verify_consistency(5, 11, &merkle::root_of(&leaves[..5]), &root, &cons).unwrap();
        assert!(r.inclusion(3, 14).is_err(), "beyond the index");
    }
}
