//! The uploader: stores finished segments in order and publishes signed checkpoints.
//!
//! For each closed segment, in log order: write it to the store (retrying with backoff),
//! then its tiles, then sign and store a checkpoint for the log up to its last entry, then
//! remove the WAL file. Between segments it signs a fresh checkpoint of the same state every
//! `checkpoint_interval`, so a quiet log still proves every interval that it was alive and
//! had nothing more. A store object that exists with different content stops the uploader
//! and raises an integrity alarm; nothing is ever overwritten.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use auditlog::head::LogHead;
use auditlog::layout;
use auditlog::merkle::Hash;
use auditlog::note::NoteSigner;
use auditlog::timestamp::Timestamp;
use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;
use crate::publish::tiles::{TileWriter, leaves_of};
use crate::read::head::{HeadSender, StoredHead};
use crate::seal::sources;
use crate::seal::spool::Spool;
use crate::seal::wal;
use crate::seal::writer::ClosedSegment;
use crate::store::{PutOutcome, Store, StoreError};

/// Why the uploader stopped before its work was done.
#[derive(Debug, thiserror::Error)]
pub enum Stopped {
    /// An object exists with other content: nothing is overwritten, uploads stop.
    #[error("integrity alarm: {key} already exists in the store with other content")]
    IntegrityAlarm { key: String },
    /// The sealer is shutting down and the store still fails; the WAL keeps the data.
    #[error("shutting down while the store fails (the WAL keeps what was not stored)")]
    ShuttingDown,
    #[error("cannot sign a checkpoint: {0}")]
    Signing(String),
    #[error("cannot compute the tiles of a segment: {0}")]
    Tiles(String),
}

/// What the uploader has stored so far (the next checkpoint signs it).
#[derive(Clone, Copy, Debug)]
struct Stored {
    size: u64,
    root: Hash,
    chain: Hash,
}

pub struct Uploader<S> {
    store: S,
    signer: NoteSigner,
    checkpoint_interval: Duration,
    metrics: Arc<Metrics>,
    /// The stored head, published here after every checkpoint stored (it starts as what
    /// the store held when the sealer started).
    head: HeadSender,
    /// Bytes waiting in WAL files; a stored segment's are taken away.
    spool: Spool,
    stored: Stored,
    /// Held from storing a segment until its checkpoint is stored (see `AppState`).
    publish_lock: Arc<tokio::sync::Mutex<()>>,
    /// A local copy of the newest stored checkpoint, trusted by the next start's recovery.
    last_checkpoint_file: PathBuf,
    /// The tree's right edge: the tiles each stored segment adds.
    tiles: TileWriter,
}

/// What to store: bytes in memory, or a closed local file.
enum Payload<'a> {
    Bytes(Bytes),
    File(&'a std::path::Path),
    /// Several small objects, made durable together ([`Store::put_many_if_absent`]).
    Many(Vec<(String, Bytes)>),
}

const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What an uploader is given.
pub struct UploaderConfig<S> {
    pub store: S,
    pub signer: NoteSigner,
    pub checkpoint_interval: Duration,
    pub metrics: Arc<Metrics>,
    pub head: HeadSender,
    pub spool: Spool,
    pub publish_lock: Arc<tokio::sync::Mutex<()>>,
    pub last_checkpoint_file: PathBuf,
    /// At the head's size (see [`TileWriter::open`]).
    pub tiles: TileWriter,
}

impl<S: Store> Uploader<S> {
    /// An uploader that continues from the head it is given.
    pub fn new(c: UploaderConfig<S>) -> Uploader<S> {
        let h = c.head.borrow().clone();
        Uploader {
            store: c.store,
            signer: c.signer,
            checkpoint_interval: c.checkpoint_interval,
            metrics: c.metrics,
            head: c.head,
            spool: c.spool,
            stored: Stored {
                size: h.size,
                root: h.root,
                chain: h.chain,
            },
            publish_lock: c.publish_lock,
            last_checkpoint_file: c.last_checkpoint_file,
            tiles: c.tiles,
        }
    }

    /// Run until `segments` is closed (the writer stopped) and every segment is stored, or
    /// until `shutdown` fires and a pending upload keeps failing.
    pub async fn run(
        mut self,
        segments: mpsc::UnboundedReceiver<ClosedSegment>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        match self.upload(segments, &mut shutdown).await {
            Ok(()) => tracing::info!(size = self.stored.size, "uploader stopped"),
            Err(e @ Stopped::ShuttingDown) => tracing::warn!(error = %e, "uploader stopped"),
            Err(e) => tracing::error!(error = %e, "uploader stopped"),
        }
    }

    async fn upload(
        &mut self,
        mut segments: mpsc::UnboundedReceiver<ClosedSegment>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stopped> {
        self.publish_checkpoint(shutdown).await?;
        let mut ticker = tokio::time::interval(self.checkpoint_interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                seg = segments.recv() => {
                    let Some(seg) = seg else { return Ok(()) };
                    self.store_segment(&seg, shutdown).await?;
                    ticker.reset();
                }
                _ = ticker.tick() => self.publish_checkpoint(shutdown).await?,
            }
        }
    }

    async fn store_segment(
        &mut self,
        seg: &ClosedSegment,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stopped> {
        let started = std::time::Instant::now();
        let key = layout::segment_key(seg.first, seg.last);
        let lock = self.publish_lock.clone();
        let _publishing = lock.lock().await;
        self.put_with_retry(&key, Payload::File(&seg.path), shutdown)
            .await?;
        Metrics::add(&self.metrics.segments_uploaded, 1);
        self.store_tiles(seg, &key, shutdown).await?;
        self.stored = Stored {
            size: seg.last + 1,
            root: seg.root,
            chain: seg.chain,
        };
        self.publish_checkpoint(shutdown).await?;
        self.spool.release_leaves(seg.leaves.len() as u64);
        if let Some(spilled) = &seg.spilled_leaves {
            let _ = tokio::fs::remove_file(spilled).await;
        }
        Metrics::observe(&self.metrics.segment_upload_seconds, started.elapsed());
        let spooled = tokio::fs::metadata(&seg.path).await.map_or(0, |m| m.len());
        self.spool.remove(spooled);
        if let Err(e) = tokio::fs::remove_file(&seg.path).await {
            tracing::warn!(path = %seg.path.display(), error = %e, "stored segment's WAL file not removed");
        } else if let Some(dir) = seg.path.parent() {
            let _ = wal::sync_dir(dir);
            forget_older_snapshots(dir, seg.last + 1);
        }
        tracing::info!(key, entries = seg.last - seg.first + 1, "segment stored");
        Ok(())
    }

    /// Store the tiles the segment's entries add to the tree, before its checkpoint.
    async fn store_tiles(
        &mut self,
        seg: &ClosedSegment,
        key: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stopped> {
        debug_assert_eq!(self.tiles.size(), seg.first, "segments come in order");
        let count = seg.last - seg.first + 1;
        let leaves = if seg.leaves.len() as u64 == count {
            std::borrow::Cow::Borrowed(&seg.leaves)
        } else if let Some(spilled) = read_spilled_leaves(seg, count).await {
            std::borrow::Cow::Owned(spilled)
        } else {
            // Not handed over by the writer: hash the stored file's entries.
            let bytes = tokio::fs::read(&seg.path)
                .await
                .map_err(|e| Stopped::Tiles(format!("cannot read {}: {e}", seg.path.display())))?;
            let leaves = leaves_of(key, &bytes).map_err(|e| Stopped::Tiles(format!("{e:#}")))?;
            std::borrow::Cow::Owned(leaves)
        };
        // Together: a local store flushes them once, S3 sends them several at a time.
        let tiles: Vec<(String, Bytes)> = self
            .tiles
            .append(&leaves)
            .into_iter()
            .map(|(id, bytes)| (id.key(), bytes))
            .collect();
        let count = tiles.len() as u64;
        if count > 0 {
            let what = format!("{count} tiles for entries up to {}", seg.last);
            self.put_with_retry(&what, Payload::Many(tiles), shutdown)
                .await?;
            Metrics::add(&self.metrics.tiles_stored, count);
        }
        Ok(())
    }

    /// Sign the stored state with the current time and store the checkpoint.
    async fn publish_checkpoint(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stopped> {
        let head = LogHead {
            origin: self.signer.name().to_owned(),
            size: self.stored.size,
            root: self.stored.root,
            chain: self.stored.chain,
            time: Timestamp::now(),
        };
        let text = match head.sign(&self.signer) {
            Ok(t) => t,
            Err(e) => return Err(Stopped::Signing(e.to_string())),
        };
        self.put_with_retry(
            &head.key(),
            Payload::Bytes(Bytes::from(text.clone())),
            shutdown,
        )
        .await?;
        let m = &self.metrics;
        Metrics::add(&m.checkpoints_published, 1);
        m.checkpoint_size.set(head.size);
        m.checkpoint_unix_seconds
            .set((head.time.unix_nanos() / 1_000_000_000).max(0) as u64);
        if let Err(e) = self.keep_local_copy(&text).await {
            tracing::warn!(path = %self.last_checkpoint_file.display(), error = %e, "failed to keep a local copy of the newest checkpoint");
        }
        self.head.send_replace(StoredHead {
            size: head.size,
            root: head.root,
            chain: head.chain,
            checkpoint: Some(text.into()),
        });
        tracing::debug!(size = head.size, "checkpoint published");
        Ok(())
    }

    /// Replace the local copy atomically (temp file, fsync, rename, fsync the directory).
    async fn keep_local_copy(&self, text: &str) -> std::io::Result<()> {
        let path = self.last_checkpoint_file.clone();
        let text = text.to_owned();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let tmp = path.with_extension("note.tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            match path.parent() {
                Some(dir) => wal::sync_dir(dir),
                None => Ok(()),
            }
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Write an object, retrying transient errors with exponential backoff. A conflict is an
    /// integrity alarm and ends the uploader. Once `shutdown` has fired, gives up after the
    /// next failure so the process can exit; the WAL keeps the data for the next start.
    async fn put_with_retry(
        &self,
        key: &str,
        payload: Payload<'_>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stopped> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let result = match &payload {
                Payload::Bytes(b) => self.store.put_if_absent(key, b.clone()).await,
                Payload::File(p) => self.store.put_file_if_absent(key, p).await,
                Payload::Many(items) => self
                    .store
                    .put_many_if_absent(items.clone())
                    .await
                    .map(|()| PutOutcome::Created),
            };
            if result.is_ok() {
                self.metrics.health.store_healthy.store(true, Relaxed);
            }
            match result {
                Ok(PutOutcome::Created) => return Ok(()),
                Ok(PutOutcome::AlreadyPresent) => {
                    tracing::info!(
                        key,
                        "object already stored with identical content (retry after a crash)"
                    );
                    return Ok(());
                }
                Err(e @ StoreError::Conflict { .. }) => {
                    Metrics::add(&self.metrics.integrity_alarms, 1);
                    self.metrics.health.integrity_alarm.store(true, Relaxed);
                    tracing::error!(key, error = %e, "INTEGRITY ALARM: uploads stopped, nothing was overwritten");
                    return Err(Stopped::IntegrityAlarm {
                        key: key.to_owned(),
                    });
                }
                Err(e) => {
                    Metrics::add(&self.metrics.upload_retries, 1);
                    self.metrics.health.store_healthy.store(false, Relaxed);
                    tracing::warn!(key, error = %e, retry_in = ?backoff, "store write failed; retrying");
                    if *shutdown.borrow() {
                        return Err(Stopped::ShuttingDown);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// The leaf hashes the writer put aside for `seg` ([`ClosedSegment::spilled_leaves`]), if
/// the file is there and holds `count` of them.
async fn read_spilled_leaves(seg: &ClosedSegment, count: u64) -> Option<Vec<Hash>> {
    let path = seg.spilled_leaves.as_ref()?;
    match tokio::fs::read(path).await {
        Ok(bytes) if bytes.len() as u64 == count * 32 => Some(
            bytes
                .chunks_exact(32)
                .map(|c| c.try_into().expect("32 bytes"))
                .collect(),
        ),
        Ok(bytes) => {
            tracing::warn!(path = %path.display(), bytes = bytes.len(), expected = count * 32, "a segment's leaf hashes put aside are incomplete; hashing its WAL file");
            None
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "a segment's leaf hashes put aside cannot be read; hashing its WAL file");
            None
        }
    }
}

/// Remove the sources snapshots a start no longer needs: those older than the newest one at
/// or below `stored` (a start resumes from that one, or a later one).
fn forget_older_snapshots(dir: &std::path::Path, stored: u64) {
    let Ok(all) = sources::snapshots(dir) else {
        return;
    };
    let Some(keep) = all
        .iter()
        .map(|(size, _)| *size)
        .filter(|s| *s <= stored)
        .max()
    else {
        return;
    };
    for (size, path) in all {
        if size < keep {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use auditlog::entry::EntryKind;
    use auditlog::seal::LogSealer;

    use super::*;
    use crate::read::StoredLog;
    use crate::seal::writer::ClosedSegment;
    use crate::store::{FailMode, MemoryStore};
    use crate::testing::{self, event};

    /// `n` segments of 5 events each, written as closed WAL files in `dir`.
    fn segments(dir: &std::path::Path, n: u64) -> Vec<ClosedSegment> {
        let mut sealer: LogSealer = testing::new_sealer();
        let at = Timestamp::now();
        (0..n)
            .map(|i| {
                let first = sealer.size();
                let mut out = Vec::new();
                let mut leaves = Vec::new();
                for k in 0..5 {
                    let e = event("gw/a", i * 5 + k + 1);
                    let sealed = sealer.seal(
                        &mut out,
                        EntryKind::Http,
                        at,
                        e.source.as_ref(),
                        &e.event_json,
                    );
                    leaves.push(sealed.leaf);
                }
                let path = dir.join(format!("{first:020}.wal"));
                std::fs::write(&path, &out).unwrap();
                // The second of every three segments comes without its leaves, as after a
                // restart: the uploader hashes the file. The third has them in a file beside
                // its WAL file, as when the uploader is far behind.
                let mut spilled_leaves = None;
                if i % 3 == 1 {
                    leaves.clear();
                } else if i % 3 == 2 {
                    let aside = crate::seal::writer::spilled_leaves_path(&path);
                    std::fs::write(&aside, leaves.concat()).unwrap();
                    leaves.clear();
                    spilled_leaves = Some(aside);
                }
                ClosedSegment {
                    path,
                    first,
                    last: sealer.size() - 1,
                    root: sealer.frontier().root(),
                    chain: sealer.head(),
                    leaves,
                    spilled_leaves,
                }
            })
            .collect()
    }

    fn uploader(
        store: &MemoryStore,
        dir: &std::path::Path,
    ) -> (Uploader<MemoryStore>, watch::Receiver<StoredHead>) {
        let empty = testing::new_sealer();
        let (head, watch) = watch::channel(StoredHead {
            size: 0,
            root: empty.frontier().root(),
            chain: empty.head(),
            checkpoint: None,
        });
        let up = Uploader::new(UploaderConfig {
            store: store.clone(),
            signer: testing::signer(),
            checkpoint_interval: Duration::from_secs(3600),
            metrics: Arc::new(Metrics::default()),
            head,
            spool: Spool::new(0),
            publish_lock: Arc::new(tokio::sync::Mutex::new(())),
            last_checkpoint_file: dir.join("last-checkpoint.note"),
            tiles: TileWriter::empty(),
        });
        (up, watch)
    }

    async fn run_with(store: &MemoryStore, fail: &[FailMode]) -> watch::Receiver<StoredHead> {
        let dir = tempfile::tempdir().unwrap();
        let (up, head) = uploader(store, dir.path());
        let (tx, rx) = mpsc::unbounded_channel();
        for seg in segments(dir.path(), 3) {
            tx.send(seg).unwrap();
        }
        drop(tx);
        let (_stop_tx, stop) = watch::channel(false);
        // The store fails as told for the first puts, then works.
        let injector = {
            let store = store.clone();
            let fail = fail.to_vec();
            tokio::spawn(async move {
                for mode in fail {
                    store.set_fail(mode);
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                store.set_fail(FailMode::Never);
            })
        };
        tokio::time::timeout(Duration::from_secs(30), up.run(rx, stop))
            .await
            .expect("the uploader finishes once the store works");
        injector.await.unwrap();
        let left = |suffix: &str| {
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .to_string_lossy()
                        .ends_with(suffix)
                })
                .count()
        };
        assert_eq!(
            left(".wal"),
            0,
            "every stored segment's WAL file is removed"
        );
        assert_eq!(
            left(".leaves"),
            0,
            "leaf hashes put aside are removed once stored"
        );
        head
    }

    #[tokio::test]
    async fn every_segment_is_stored_in_order_with_its_checkpoint() {
        let store = MemoryStore::default();
        let head = run_with(&store, &[]).await;
        assert_eq!(head.borrow().size, 15);
        let text = head
            .borrow()
            .checkpoint
            .clone()
            .expect("a checkpoint published");
        let newest = StoredLog::new(&store)
            .newest_checkpoint()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(newest.size, 15);
        assert_eq!(
            StoredLog::new(&store)
                .read_checkpoint(&newest)
                .await
                .unwrap(),
            *text
        );
        testing::assert_verified(&testing::verify_store(&store).await);
    }

    #[tokio::test]
    async fn segments_waiting_together_still_get_a_checkpoint_each() {
        // Three segments queued before the uploader runs; the tamper tests and the operations
        // guide rely on a checkpoint at every segment's end.
        let store = MemoryStore::default();
        run_with(&store, &[]).await;
        let log = StoredLog::new(&store);
        let sizes: Vec<u64> = log
            .checkpoints()
            .await
            .unwrap()
            .iter()
            .map(|c| c.size)
            .collect();
        assert_eq!(sizes, [0, 5, 10, 15]);
        testing::assert_verified(&testing::verify_store(&store).await);
    }

    #[tokio::test]
    async fn a_store_that_fails_is_retried_and_a_lost_acknowledgement_is_no_conflict() {
        let store = MemoryStore::default();
        run_with(
            &store,
            &[FailMode::Fail, FailMode::FailAfterWrite, FailMode::Fail],
        )
        .await;
        let segments = StoredLog::new(&store).segments().await.unwrap();
        assert_eq!(segments.len(), 3);
        testing::assert_verified(&testing::verify_store(&store).await);
    }

    #[tokio::test]
    async fn an_object_already_there_with_other_bytes_stops_the_uploader_and_raises_the_alarm() {
        let store = MemoryStore::default();
        store.tamper(
            &auditlog::layout::segment_key(5, 9),
            Bytes::from_static(b"not what the sealer wrote\n"),
        );
        let dir = tempfile::tempdir().unwrap();
        let (up, _head) = uploader(&store, dir.path());
        let metrics = up.metrics.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        for seg in segments(dir.path(), 3) {
            tx.send(seg).unwrap();
        }
        drop(tx);
        let (_stop_tx, stop) = watch::channel(false);
        up.run(rx, stop).await;
        assert_eq!(metrics.integrity_alarms.get(), 1);
        // Nothing was overwritten, and the third segment was never stored.
        assert_eq!(
            store
                .get(&auditlog::layout::segment_key(5, 9))
                .await
                .unwrap()
                .unwrap(),
            Bytes::from_static(b"not what the sealer wrote\n")
        );
        assert_eq!(StoredLog::new(&store).segments().await.unwrap().len(), 2);
    }
}
