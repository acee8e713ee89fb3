//! The query index: what `GET /v1/events` searches.
//!
//! It is derived data, never the source of truth. It lives in `DATA_DIR/index/`, an SQLite
//! file with one row per entry: the query fields and where the entry is in the store
//! ([`db`]). The entries themselves are read from the store when a query returns them, so
//! the index costs the query fields, not the entries. It follows the store: every entry
//! covered by a stored checkpoint is indexed. It keeps the chain value of the last entry it
//! indexed; if that ever disagrees with the store, it is thrown away and rebuilt. Delete the
//! directory and it is rebuilt from the store at the next start.
//!
//! Proofs do not come from here: they come from the store's tiles ([`crate::read::proofs`]).

pub mod db;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use auditlog::layout;
use auditlog::merkle::Hash;
use auditlog::query::{Fields, Filter};
use auditlog::record::parse_record;
use rusqlite::Connection;
use tokio::sync::watch;

use crate::read::StoredLog;
use crate::read::head::{HeadWatch, StoredHead};
use crate::store::Store;

pub use db::{Cursor, Located, Location, Order, Page};

const DB_FILE: &str = "entries.sqlite";

/// One entry to index: its position, canonical bytes and where they are in the store.
pub struct Row<'a> {
    pub seq: u64,
    pub entry: &'a [u8],
    pub at: Location,
    /// The entry's chain value.
    pub chain: Hash,
}

/// The indexer's side: appends entries.
pub struct IndexWriter {
    dir: PathBuf,
    conn: Connection,
    size: u64,
    chain: Option<Hash>,
    /// The buffer segments are read into, kept between them ([`PIECE_BYTES`]).
    buf: Vec<u8>,
}

impl IndexWriter {
    /// Open the index in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<IndexWriter> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let conn = db::open_writer(&dir.join(DB_FILE))?;
        let size = db::size(&conn)?;
        let chain = db::last_chain(&conn)?
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| Hash::try_from(b).ok());
        Ok(IndexWriter {
            dir: dir.to_owned(),
            conn,
            size,
            chain,
            buf: Vec::new(),
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The chain value of the last entry indexed (`None` when empty).
    pub fn chain(&self) -> Option<Hash> {
        self.chain
    }

    /// Append entries `size..`, in order.
    pub fn append(&mut self, rows: &[Row<'_>]) -> anyhow::Result<()> {
        let Some(last) = rows.last() else {
            return Ok(());
        };
        let mut fields = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let expected = self.size + i as u64;
            if row.seq != expected {
                bail!("index: expected entry {expected}, got {}", row.seq);
            }
            fields.push(Fields::of_json(row.entry).context("an entry is not JSON")?);
        }
        db::insert(
            &mut self.conn,
            fields.iter().zip(rows.iter().map(|r| r.at)),
            &hex::encode(last.chain),
        )?;
        self.size = last.seq + 1;
        self.chain = Some(last.chain);
        Ok(())
    }

    /// Throw everything away.
    pub fn clear(&mut self) -> anyhow::Result<()> {
        db::truncate(&self.conn, 0)?;
        self.size = 0;
        self.chain = None;
        Ok(())
    }
}

/// The readers' side: queries over the entries indexed so far.
pub struct IndexReader {
    conn: Mutex<Connection>,
    /// Entries indexed and committed: everything below is readable.
    size: Arc<AtomicU64>,
}

impl IndexReader {
    pub fn open(dir: &Path, size: Arc<AtomicU64>) -> anyhow::Result<IndexReader> {
        Ok(IndexReader {
            conn: Mutex::new(db::open_reader(&dir.join(DB_FILE))?),
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

    /// The rows matching `filter` except its free text: `limit` at most, after `cursor`.
    pub fn locate(
        &self,
        filter: &Filter,
        order: Order,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> anyhow::Result<Vec<Located>> {
        let conn = self.conn.lock().expect("not poisoned");
        db::locate(&conn, filter, order, cursor, limit, self.size())
    }
}

/// One page of the entries matching `filter`: rows from the index, entries from the store,
/// free text (`q`) matched on the entries read.
pub async fn query<S: Store>(
    index: &Arc<IndexReader>,
    store: &S,
    filter: &Filter,
    order: Order,
    cursor: Option<Cursor>,
    limit: usize,
) -> anyhow::Result<Page> {
    let mut page = Page {
        entries: Vec::new(),
        next: None,
    };
    // Without free text every row is a match: one more than the page tells whether there is a
    // next page. With it, rows are read in batches until the page is full.
    let batch = if filter.text.is_some() {
        (limit + 1).max(1000)
    } else {
        limit + 1
    };
    let mut after = cursor;
    let mut last_returned = None;
    loop {
        let rows = {
            let (index, filter) = (index.clone(), filter.clone());
            tokio::task::spawn_blocking(move || index.locate(&filter, order, after, batch))
                .await
                .expect("the index query does not panic")?
        };
        let exhausted = rows.len() < batch;
        let entries = read_entries(store, &rows).await?;
        for (row, entry) in rows.iter().zip(entries) {
            after = Some(Cursor {
                time: row.time,
                seq: row.seq,
            });
            if let Some(q) = &filter.text
                && !entry.to_ascii_lowercase().contains(q.as_str())
            {
                continue;
            }
            if page.entries.len() == limit {
                page.next = last_returned;
                return Ok(page);
            }
            page.entries.push(entry);
            last_returned = after;
        }
        if exhausted {
            return Ok(page);
        }
    }
}

/// Gaps between rows of one segment up to this size are read through rather than asked for
/// separately.
const READ_THROUGH: u64 = 64 << 10;

/// The entries at `rows`' locations, in the rows' order. Rows of one segment close together
/// are read with one range request. Each entry must say it is at its row's position.
async fn read_entries<S: Store>(store: &S, rows: &[Located]) -> anyhow::Result<Vec<String>> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| (rows[i].at.segment, rows[i].at.offset));
    let mut out = vec![String::new(); rows.len()];
    let mut i = 0;
    while i < order.len() {
        let first = rows[order[i]].at;
        let mut end = first.offset + first.len;
        let mut j = i + 1;
        while j < order.len() {
            let next = rows[order[j]].at;
            if next.segment != first.segment || next.offset > end + READ_THROUGH {
                break;
            }
            end = end.max(next.offset + next.len);
            j += 1;
        }
        let key = layout::segment_key(first.segment.0, first.segment.1);
        let bytes = store
            .get_range(&key, first.offset, end - first.offset)
            .await?
            .with_context(|| format!("{key} is in the index but not in the store"))?;
        for &k in &order[i..j] {
            let at = rows[k].at;
            let start = (at.offset - first.offset) as usize;
            let entry = bytes
                .get(start..start + at.len as usize)
                .with_context(|| format!("{key} is shorter than the index says"))?;
            let text = std::str::from_utf8(entry).context("an entry is not UTF-8")?;
            let head = auditlog::entry::EntryHead::parse(entry)
                .map_err(|e| anyhow::anyhow!("{key}: not an entry where the index points: {e}"))?;
            if head.seq != rows[k].seq {
                bail!(
                    "the index points to entry {} in {key} for entry {}: it does not match the \
                     store (delete the index directory to rebuild it)",
                    head.seq,
                    rows[k].seq
                );
            }
            out[k] = text.to_owned();
        }
        i = j;
    }
    Ok(out)
}

/// Open the index in `dir` for the indexer and for readers.
pub fn open(dir: &Path) -> anyhow::Result<(IndexWriter, IndexReader)> {
    let writer = IndexWriter::open(dir)?;
    let size = Arc::new(AtomicU64::new(writer.size()));
    let reader = IndexReader::open(dir, size)?;
    Ok((writer, reader))
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
    /// The index disagrees with the store: its content is wrong, not late.
    #[error("the index's last entry (of {size}) has another chain value than the store's")]
    ChainMismatch { size: u64 },
    /// Reading the store or writing the index failed; the next round tries again.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// After a failed round: reopen the index, and throw it away when its content is wrong.
/// `None` if it cannot even be reopened (the next round tries again).
fn recover(w: IndexWriter, error: &CatchUpError) -> Option<IndexWriter> {
    let dir = w.dir.clone();
    let wrong = matches!(error, CatchUpError::ChainMismatch { .. });
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

/// Index the entries up to the stored head, one segment at a time and each segment a piece
/// at a time ([`SegmentReader`]), then compare the last entry's chain value with the head's.
/// The writer comes back whatever happened.
async fn catch_up<S: Store>(
    store: &S,
    mut w: IndexWriter,
    head: &StoredHead,
) -> (IndexWriter, Result<(), CatchUpError>) {
    let target = head.size;
    let log = StoredLog::new(store);
    let segments = match log.segments_in(w.size()..=target.saturating_sub(1)).await {
        Ok(s) => s,
        Err(e) => return (w, Err(anyhow::Error::from(e).into())),
    };
    for seg in segments {
        if w.size() >= target {
            break;
        }
        if seg.first > w.size() {
            let e = anyhow::anyhow!("entries {}..{} are not in the store", w.size(), seg.first);
            return (w, Err(e.into()));
        }
        let mut reader = SegmentReader::new(seg, std::mem::take(&mut w.buf), PIECE_BYTES);
        let result;
        (w, result) = index_pieces(store, w, &mut reader, target).await;
        w.buf = reader.into_buffer();
        if let Err(e) = result {
            return (w, Err(e.into()));
        }
    }
    if w.size() < target {
        let e = anyhow::anyhow!(
            "the store holds {} of the {target} entries a checkpoint covers",
            w.size()
        );
        return (w, Err(e.into()));
    }
    if head.size == w.size() && head.size > 0 && w.chain() != Some(head.chain) {
        return (w, Err(CatchUpError::ChainMismatch { size: head.size }));
    }
    (w, Ok(()))
}

/// Index one segment's entries up to `until`, a piece at a time, each piece on a blocking
/// thread.
async fn index_pieces<S: Store>(
    store: &S,
    mut w: IndexWriter,
    reader: &mut SegmentReader,
    until: u64,
) -> (IndexWriter, anyhow::Result<()>) {
    while w.size() < until {
        let piece = match reader.next_piece(store).await {
            Ok(Some(piece)) => piece,
            Ok(None) => return (w, Ok(())),
            Err(e) => return (w, Err(e)),
        };
        let seg = reader.seg.clone();
        let (back, result, piece) = match tokio::task::spawn_blocking(move || {
            let r = index_lines(&mut w, &seg, &piece, until);
            (w, r, piece)
        })
        .await
        {
            Ok(done) => done,
            Err(e) => panic!("the index writer panicked: {e}"),
        };
        w = back;
        if let Err(e) = result {
            return (w, Err(e));
        }
        reader.consumed(piece);
    }
    (w, Ok(()))
}

/// How much of a segment the indexer reads at a time. Its buffer is kept from one piece and
/// one segment to the next: a fresh buffer for each 8 MiB segment was page-faulted and zeroed
/// every time, and a kept segment-sized one stayed resident (8 MiB of the sealer's 64 MiB).
const PIECE_BYTES: usize = 1 << 20;

/// Reads a segment in pieces of whole lines into one reused buffer.
struct SegmentReader {
    seg: crate::read::stored_log::SegmentRef,
    /// How much to read at a time ([`PIECE_BYTES`]; less in tests).
    piece_bytes: usize,
    /// The unread part of the segment starts here.
    next_offset: u64,
    /// Lines of the current piece, and after them the start of a line the next read ends.
    buf: Vec<u8>,
    /// The segment offset of `buf[0]`.
    buf_offset: u64,
    /// Line number (entry position) of the first line in `buf`.
    buf_seq: u64,
    at_end: bool,
}

/// Whole lines of a segment: `bytes[..]` starts at `offset` in the segment, with entry `seq`.
struct Piece {
    buf: Vec<u8>,
    len: usize,
    offset: u64,
    seq: u64,
}

impl std::ops::Deref for Piece {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl SegmentReader {
    fn new(
        seg: crate::read::stored_log::SegmentRef,
        mut buf: Vec<u8>,
        piece_bytes: usize,
    ) -> SegmentReader {
        buf.clear();
        let seq = seg.first;
        SegmentReader {
            seg,
            piece_bytes,
            next_offset: 0,
            buf,
            buf_offset: 0,
            buf_seq: seq,
            at_end: false,
        }
    }

    /// The next run of whole lines (the last line of the segment may lack its newline), or
    /// `None` at the segment's end. The buffer travels with the piece: give the piece back
    /// through [`Self::consumed`] before asking for the next one.
    async fn next_piece<S: Store>(&mut self, store: &S) -> anyhow::Result<Option<Piece>> {
        loop {
            let whole = if self.at_end {
                self.buf.len()
            } else {
                memchr::memrchr(b'\n', &self.buf).map_or(0, |i| i + 1)
            };
            if whole > 0 {
                return Ok(Some(Piece {
                    buf: std::mem::take(&mut self.buf),
                    len: whole,
                    offset: self.buf_offset,
                    seq: self.buf_seq,
                }));
            }
            if self.at_end {
                return Ok(None);
            }
            // Read at most a piece's worth in all, unless one line is longer than that, and
            // not past the size the listing gave (S3 refuses a range past the end).
            let left = self.seg.bytes.saturating_sub(self.next_offset);
            if left == 0 {
                self.at_end = true;
                continue;
            }
            let want = (self.piece_bytes.saturating_sub(self.buf.len()))
                .max(self.piece_bytes / 4)
                .max(1)
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let before = self.buf.len();
            let key = &self.seg.key;
            let buf = std::mem::take(&mut self.buf);
            self.buf = store
                .get_range_into(key, self.next_offset, want as u64, buf)
                .await?
                .ok_or_else(|| anyhow::anyhow!("{key} vanished from the store while indexing"))?;
            let read = self.buf.len() - before;
            self.next_offset += read as u64;
            self.at_end = read < want || self.next_offset >= self.seg.bytes;
        }
    }

    /// The last piece is indexed: drop its lines, keeping the start of the next line.
    fn consumed(&mut self, piece: Piece) {
        // (A last line without its newline ends the segment: no line comes after it.)
        let lines = memchr::memchr_iter(b'\n', &piece).count();
        self.buf = piece.buf;
        self.buf.drain(..piece.len);
        self.buf_offset += piece.len as u64;
        self.buf_seq += lines as u64;
    }

    fn into_buffer(self) -> Vec<u8> {
        self.buf
    }
}

/// Index the lines of `piece` from the writer's size up to `until`, in one transaction.
fn index_lines(
    w: &mut IndexWriter,
    seg: &crate::read::stored_log::SegmentRef,
    piece: &Piece,
    until: u64,
) -> anyhow::Result<()> {
    let bytes: &[u8] = piece;
    let mut rows = Vec::new();
    let mut start = 0usize;
    let mut seq = piece.seq;
    while start < bytes.len() && seq < until {
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        let line = &bytes[start..end];
        if seq >= w.size() {
            let record = parse_record(line).map_err(|e| anyhow::anyhow!("{}: {e}", seg.key))?;
            let offset = record.entry.as_ptr() as usize - bytes.as_ptr() as usize;
            rows.push(Row {
                seq,
                entry: record.entry,
                at: Location {
                    segment: (seg.first, seg.last),
                    offset: piece.offset + offset as u64,
                    len: record.entry.len() as u64,
                },
                chain: record.chain,
            });
        }
        start = end + 1;
        seq += 1;
    }
    w.append(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
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

    /// Store `entries` as one segment (with made-up chain values and MACs: the index does not
    /// check them) in `store`, and index it.
    fn add_segment(store: &MemoryStore, w: &mut IndexWriter, entries: &[Value]) {
        let first = entries[0]["seq"].as_u64().unwrap();
        let last = first + entries.len() as u64 - 1;
        let mut bytes = Vec::new();
        for e in entries {
            let seq = e["seq"].as_u64().unwrap();
            let json = auditlog::jcs::canonicalize(e).unwrap();
            auditlog::record::write_record(&mut bytes, &json, &[seq as u8; 32], &[7; 32]);
        }
        let seg = crate::read::stored_log::SegmentRef {
            key: layout::segment_key(first, last),
            first,
            last,
            bytes: bytes.len() as u64,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(store.put_if_absent(&seg.key, bytes.into()))
            .unwrap();
        // Pieces of a few lines, or less than one, so that every test reads in pieces.
        let piece_bytes = 100 + (first as usize % 7) * 150;
        index_in_pieces(&rt, store, w, seg, piece_bytes, last + 1);
    }

    /// What [`index_pieces`] does, on this thread.
    fn index_in_pieces(
        rt: &tokio::runtime::Runtime,
        store: &MemoryStore,
        w: &mut IndexWriter,
        seg: crate::read::stored_log::SegmentRef,
        piece_bytes: usize,
        until: u64,
    ) {
        let mut reader = SegmentReader::new(seg, Vec::new(), piece_bytes);
        while w.size() < until {
            let Some(piece) = rt.block_on(reader.next_piece(store)).unwrap() else {
                break;
            };
            index_lines(w, &reader.seg, &piece, until).unwrap();
            reader.consumed(piece);
        }
    }

    /// Every row of the index, all columns, in order.
    fn all_rows(w: &IndexWriter) -> Vec<Vec<rusqlite::types::Value>> {
        let mut stmt = w
            .conn
            .prepare("SELECT * FROM entries ORDER BY seq")
            .unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// However a segment is cut into pieces, and wherever an earlier round stopped, the
        /// index gets the rows of the segment read whole: the same fields and the same byte
        /// ranges.
        #[test]
        fn pieces_of_any_size_give_the_rows_of_the_whole_segment(
            picks in proptest::collection::vec(any::<[u8; 6]>(), 1..40),
            piece_bytes in 1usize..3000,
            stop_at in any::<proptest::sample::Index>(),
        ) {
            let entries: Vec<Value> =
                picks.iter().enumerate().map(|(i, p)| entry(i as u64, *p)).collect();
            let store = MemoryStore::default();
            let small_dir = tempfile::tempdir().unwrap();
            let mut small = IndexWriter::open(small_dir.path()).unwrap();
            let parts_dir = tempfile::tempdir().unwrap();
            let mut parts = IndexWriter::open(parts_dir.path()).unwrap();
            // Indexed in pieces of 100 bytes, less than a line.
            add_segment(&store, &mut small, &entries);
            let last = entries.len() as u64 - 1;
            let seg = crate::read::stored_log::SegmentRef {
                key: layout::segment_key(0, last),
                first: 0,
                last,
                bytes: rt_get(&store, &layout::segment_key(0, last)).len() as u64,
            };
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let stop = stop_at.index(entries.len()) as u64;
            index_in_pieces(&rt, &store, &mut parts, seg.clone(), piece_bytes, stop);
            prop_assert_eq!(parts.size(), stop);
            index_in_pieces(&rt, &store, &mut parts, seg.clone(), piece_bytes, last + 1);
            prop_assert_eq!(parts.size(), last + 1);
            prop_assert_eq!(parts.chain(), small.chain());
            prop_assert_eq!(all_rows(&parts), all_rows(&small));
            // And read whole, as one piece.
            let one_dir = tempfile::tempdir().unwrap();
            let mut one = IndexWriter::open(one_dir.path()).unwrap();
            index_in_pieces(&rt, &store, &mut one, seg, usize::MAX / 4, last + 1);
            prop_assert_eq!(all_rows(&one), all_rows(&small));
        }
    }

    /// Pieces smaller than a line, down to one byte (the property test rarely draws these).
    #[test]
    fn tiny_pieces_give_the_rows_of_the_whole_segment() {
        let entries: Vec<Value> = (0..3).map(|i| entry(i, [i as u8; 6])).collect();
        let store = MemoryStore::default();
        let dir = tempfile::tempdir().unwrap();
        let mut reference = IndexWriter::open(dir.path()).unwrap();
        add_segment(&store, &mut reference, &entries);
        let key = layout::segment_key(0, 2);
        let seg = crate::read::stored_log::SegmentRef {
            bytes: rt_get(&store, &key).len() as u64,
            key,
            first: 0,
            last: 2,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for piece_bytes in 1..=8 {
            let dir = tempfile::tempdir().unwrap();
            let mut w = IndexWriter::open(dir.path()).unwrap();
            index_in_pieces(&rt, &store, &mut w, seg.clone(), piece_bytes, 3);
            assert_eq!(
                all_rows(&w),
                all_rows(&reference),
                "pieces of {piece_bytes}"
            );
        }
    }

    fn rt_get(store: &MemoryStore, key: &str) -> bytes::Bytes {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(store.get(key)).unwrap().unwrap()
    }

    fn index_of(
        entries: &[Value],
    ) -> (
        tempfile::TempDir,
        IndexWriter,
        Arc<IndexReader>,
        MemoryStore,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, r) = open(dir.path()).unwrap();
        let store = MemoryStore::default();
        // Two segments, to read across a segment boundary.
        let half = entries.len().div_ceil(2);
        add_segment(&store, &mut w, &entries[..half]);
        if half < entries.len() {
            add_segment(&store, &mut w, &entries[half..]);
        }
        r.size.store(w.size(), Relaxed);
        (dir, w, Arc::new(r), store)
    }

    fn page(
        r: &Arc<IndexReader>,
        store: &MemoryStore,
        f: &Filter,
        order: Order,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> anyhow::Result<Page> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(query(r, store, f, order, cursor, limit))
    }

    fn seqs(page: &Page) -> Vec<u64> {
        page.entries
            .iter()
            .map(|e| {
                serde_json::from_str::<Value>(e).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    }

    /// Every page, following the cursor.
    fn all_pages(
        r: &Arc<IndexReader>,
        store: &MemoryStore,
        f: &Filter,
        order: Order,
        limit: usize,
    ) -> Vec<u64> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = page(r, store, f, order, cursor, limit).unwrap();
            out.extend(seqs(&page));
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
            let (_dir, _w, r, store) = index_of(&entries);
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
            prop_assert_eq!(all_pages(&r, &store, &filter, Order::OldestFirst, limit), oldest.clone());
            let newest: Vec<u64> = oldest.into_iter().rev().collect();
            prop_assert_eq!(all_pages(&r, &store, &filter, Order::NewestFirst, limit), newest);
        }
    }

    #[test]
    fn pagination_is_stable_while_entries_are_added() {
        let first: Vec<Value> = (0..30)
            .map(|i| entry(i, [i as u8, 2, 0, 0, 1, 0]))
            .collect();
        let (_dir, mut w, r, store) = index_of(&first);
        let filter = Filter::default();
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut next_seq = 30u64;
        loop {
            let page = page(&r, &store, &filter, Order::NewestFirst, cursor, 4).unwrap();
            seen.extend(seqs(&page));
            // New entries arrive between pages, at every point in time.
            let more: Vec<Value> = (0..3)
                .map(|k| entry(next_seq + k, [(next_seq + k * 7) as u8, 2, 1, 1, 1, 1]))
                .collect();
            add_segment(&store, &mut w, &more);
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

    /// The index keeps no entries: a row that points at another entry of the store (the
    /// store was replaced under the index) is an error, never a wrong answer.
    #[test]
    fn an_index_that_does_not_match_the_store_is_an_error() {
        let entries: Vec<Value> = (0..10).map(|i| entry(i, [i as u8; 6])).collect();
        let (_dir, w, r, _store) = index_of(&entries);
        assert_eq!(w.size(), 10);
        assert_eq!(
            w.chain(),
            Some([9u8; 32]),
            "the last entry's chain value is kept"
        );
        // Another store whose segments hold the entries one position later.
        let shifted = MemoryStore::default();
        let (_dir2, mut w2, _r2, _s2) = index_of(&entries[..1]);
        let moved: Vec<Value> = entries
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e["seq"] = json!(e["seq"].as_u64().unwrap() + 1);
                e
            })
            .collect();
        add_segment(&shifted, &mut w2, &moved[..5]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let copy = |from: (u64, u64), to: (u64, u64)| {
            let bytes = rt
                .block_on(shifted.get(&layout::segment_key(from.0, from.1)))
                .unwrap()
                .unwrap();
            rt.block_on(_s2.put_if_absent(&layout::segment_key(to.0, to.1), bytes))
                .unwrap();
        };
        copy((1, 5), (0, 4));
        let err = page(&r, &_s2, &Filter::default(), Order::OldestFirst, None, 3).unwrap_err();
        assert!(
            err.to_string().contains("does not match the store"),
            "{err:#}"
        );
    }
}
