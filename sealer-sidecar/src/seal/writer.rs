//! The writer: one thread that seals batches into the write-ahead log with group commit.
//!
//! HTTP handlers send validated batches over a channel. The writer takes every batch that
//! is waiting, seals all their events, appends the records with one `write` and one
//! `fdatasync`, and only then answers each batch. While it waits on the disk, new batches
//! queue up and form the next group, so durability costs one fsync per group, not per
//! request. When the open WAL file is big or old enough, the writer closes it and hands it to
//! the uploader as a finished segment.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use auditlog::entry::{EntryKind, StartEvent};
use auditlog::merkle::Hash;
use auditlog::seal::LogSealer;
use auditlog::timestamp::Timestamp;
use tokio::sync::oneshot;

use crate::ingest::{PreparedEvent, SourceReport, SourceState};
use crate::metrics::Metrics;
use crate::seal::sources::{Liveness, SourceTracker};
use crate::seal::step::{BatchIn, SealState};

pub use crate::seal::step::Ack;
use crate::seal::wal::{AppendError, Wal};

/// Why a batch was not made durable. Nothing of it was sealed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

type Reply = oneshot::Sender<Result<Ack, Unavailable>>;

/// One batch waiting for the writer.
struct Job {
    events: Vec<PreparedEvent>,
    report: Option<SourceReport>,
    reply: Reply,
}

enum Command {
    Batch(Job),
    Shutdown,
}

/// A finished segment for the uploader: the WAL file and the log state at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedSegment {
    pub path: PathBuf,
    pub first: u64,
    pub last: u64,
    pub root: Hash,
    pub chain: Hash,
    /// The leaf hash of every entry in the segment, in order, for the tree's tiles; empty
    /// when they are in `spilled_leaves`, or not known (after a restart the uploader hashes
    /// the WAL file).
    pub leaves: Vec<Hash>,
    /// A file beside the WAL file holding the leaf hashes (32 bytes each, in order), when the
    /// uploader was too far behind to hold them in memory ([`crate::seal::spool`]).
    pub spilled_leaves: Option<PathBuf>,
}

/// Where a closed segment's leaf hashes go when they are not held in memory.
pub fn spilled_leaves_path(wal_file: &std::path::Path) -> PathBuf {
    wal_file.with_extension("leaves")
}

/// When to close the open WAL file and start a new segment.
#[derive(Debug, Clone, Copy)]
pub struct SegmentPolicy {
    pub max_bytes: u64,
    pub max_age: Duration,
}

/// Largest number of events sealed in one group commit.
const MAX_GROUP_EVENTS: usize = 64 * 1024;

/// Sends batches to the writer thread.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Command>,
}

impl WriterHandle {
    /// Seal a batch (with what its source reports about itself, if it does); resolves once
    /// it is durable (or refused).
    pub async fn submit(
        &self,
        events: Vec<PreparedEvent>,
        report: Option<SourceReport>,
    ) -> Result<Ack, Unavailable> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Batch(Job {
                events,
                report,
                reply,
            }))
            .map_err(|_| Unavailable("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| Unavailable("the writer has stopped".into()))?
    }

    /// Ask the writer to close its segment and stop once the queue is drained.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
    }
}

/// Records made durable by one group commit, for live readers (`GET /v1/stream`).
#[derive(Debug)]
pub struct LiveBatch {
    /// Position of the first record.
    pub first_seq: u64,
    /// Segment lines (records), newline-terminated.
    pub records: Vec<u8>,
}

/// Where committed records go for live readers; a slow reader misses batches (and is told).
pub type LiveSender = tokio::sync::broadcast::Sender<Arc<LiveBatch>>;

/// Everything the writer starts from.
pub struct WriterState {
    /// Bytes in WAL files, which each commit adds to.
    pub spool: crate::seal::spool::Spool,
    pub sealer: LogSealer,
    pub sources: SourceTracker,
    /// The open sources, seeded from the log at start (heard from "now").
    pub liveness: Liveness,
    pub wal_dir: PathBuf,
    pub live: LiveSender,
}

/// Start the writer thread. Closed segments go to `segments`.
pub fn spawn(
    state: WriterState,
    policy: SegmentPolicy,
    segments: tokio::sync::mpsc::UnboundedSender<ClosedSegment>,
    metrics: Arc<Metrics>,
) -> std::io::Result<(WriterHandle, JoinHandle<()>)> {
    let wal = Wal::create(&state.wal_dir, state.sealer.size())?;
    let (tx, rx) = mpsc::channel();
    let silence_timeout_secs = state.liveness.timeout().as_secs();
    let mut writer = Writer {
        spool: state.spool,
        state: SealState {
            sealer: state.sealer,
            sources: state.sources,
            silence_timeout_secs,
            leaves: Vec::new(),
        },
        liveness: state.liveness,
        wal_dir: state.wal_dir,
        live: state.live,
        wal: Some(wal),
        policy,
        segments,
        metrics,
        buf: Vec::with_capacity(1 << 20),
        failed: None,
        snapshot_at: 0,
    };
    writer.seal_start()?;
    let join = std::thread::Builder::new()
        .name("sealer-writer".into())
        .spawn(move || writer.run(rx))?;
    Ok((WriterHandle { tx }, join))
}

struct Writer {
    spool: crate::seal::spool::Spool,
    /// The log's state, which each group is sealed against ([`SealState::seal_group`]).
    state: SealState,
    liveness: Liveness,
    wal_dir: PathBuf,
    live: LiveSender,
    wal: Option<Wal>,
    policy: SegmentPolicy,
    segments: tokio::sync::mpsc::UnboundedSender<ClosedSegment>,
    metrics: Arc<Metrics>,
    buf: Vec<u8>,
    /// Set when the WAL can no longer be trusted; every batch is refused from then on.
    failed: Option<String>,
    /// The log size of the last sources snapshot saved.
    snapshot_at: u64,
}

/// A sources snapshot is saved when a segment closes at least this many entries after the
/// previous one: a restart then reads at most this many entries of the store to rebuild the
/// sources, and a busy writer does not serialize them at every segment.
const SNAPSHOT_EVERY_ENTRIES: u64 = 100_000;

impl Writer {
    /// The first entry of every run: records the restart itself.
    fn seal_start(&mut self) -> std::io::Result<()> {
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(std::io::Error::other)?;
        let event = StartEvent {
            incarnation: hex::encode(id),
            sealer_version: env!("CARGO_PKG_VERSION").into(),
        };
        let json = serde_json::to_vec(&event).expect("serializable");
        self.buf.clear();
        let sealed = self.state.sealer.seal(
            &mut self.buf,
            EntryKind::Start,
            Timestamp::now(),
            None,
            &json,
        );
        let wal = self.wal.as_mut().expect("WAL open at start");
        wal.append(&self.buf, 1).map_err(std::io::Error::other)?;
        self.state.leaves.push(sealed.leaf);
        self.metrics.log_size.set(self.state.sealer.size());
        Metrics::add(&self.metrics.entries_sealed, 1);
        tracing::info!(seq = self.state.sealer.size() - 1, incarnation = %event.incarnation, "sealed start entry");
        Ok(())
    }

    fn run(mut self, rx: mpsc::Receiver<Command>) {
        let mut group: Vec<Job> = Vec::new();
        let mut shutting_down = false;
        // Silent sources are looked for a few times per timeout.
        let check_every = (self.liveness.timeout() / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(10));
        let mut next_check = Instant::now() + check_every;
        while !shutting_down {
            let until_check = next_check.saturating_duration_since(Instant::now());
            let wait = self
                .time_to_roll()
                .unwrap_or(Duration::from_secs(3600))
                .min(until_check);
            match rx.recv_timeout(wait) {
                Ok(Command::Batch(job)) => group.push(job),
                Ok(Command::Shutdown) | Err(RecvTimeoutError::Disconnected) => shutting_down = true,
                Err(RecvTimeoutError::Timeout) => {}
            }
            let mut queued: usize = group.iter().map(|j| j.events.len()).sum();
            while !shutting_down && queued < MAX_GROUP_EVENTS {
                match rx.try_recv() {
                    Ok(Command::Batch(job)) => {
                        queued += job.events.len();
                        group.push(job);
                    }
                    Ok(Command::Shutdown) => shutting_down = true,
                    Err(_) => break,
                }
            }
            if !shutting_down && Instant::now() >= next_check {
                next_check = Instant::now() + check_every;
                // A source silent past the timeout ended without closing: its end is sealed
                // like a batch of its own, which nobody waits for.
                for silent in self.liveness.silent(Instant::now()) {
                    group.push(Job {
                        events: Vec::new(),
                        report: Some(SourceReport {
                            id: silent.id,
                            announced: silent.announced,
                            state: SourceState::Silent,
                        }),
                        reply: oneshot::channel().0,
                    });
                }
            }
            // Disk work: readiness reports a stall if it takes too long.
            self.metrics.health.committing(true);
            if !group.is_empty() {
                self.commit(&mut group);
            }
            if shutting_down || self.time_to_roll() == Some(Duration::ZERO) {
                self.roll(!shutting_down);
            }
            self.metrics.health.committing(false);
        }
        // Refuse whatever arrived after the shutdown request.
        while let Ok(cmd) = rx.try_recv() {
            if let Command::Batch(job) = cmd {
                let _ = job
                    .reply
                    .send(Err(Unavailable("the sealer is shutting down".into())));
            }
        }
        tracing::info!(size = self.state.sealer.size(), "writer stopped");
    }

    /// How long until the open segment must be closed; `None` when it is empty.
    fn time_to_roll(&self) -> Option<Duration> {
        let wal = self.wal.as_ref()?;
        if wal.is_empty() {
            return None;
        }
        if wal.len() >= self.policy.max_bytes {
            return Some(Duration::ZERO);
        }
        Some(self.policy.max_age.saturating_sub(wal.age()))
    }

    fn commit(&mut self, group: &mut Vec<Job>) {
        if let Some(reason) = &self.failed {
            Metrics::add(
                &self.metrics.batches_rejected_unavailable,
                group.len() as u64,
            );
            for job in group.drain(..) {
                let _ = job.reply.send(Err(Unavailable(reason.clone())));
            }
            return;
        }
        let first_seq = self.state.sealer.size();
        let mut snapshot = self.state.snapshot();
        self.buf.clear();
        let batches: Vec<BatchIn<'_>> = group
            .iter()
            .map(|job| BatchIn {
                events: &job.events,
                report: job.report.as_ref(),
            })
            .collect();
        let done = self
            .state
            .seal_group(&batches, Timestamp::now(), &mut snapshot, &mut self.buf);
        let entries = done.entries;
        let started = Instant::now();
        let wal = self.wal.as_mut().expect("WAL is open while running");
        let result = if entries == 0 {
            Ok(())
        } else {
            wal.append(&self.buf, entries)
        };
        if entries > 0 {
            Metrics::observe(&self.metrics.wal_commit_seconds, started.elapsed());
        }
        match result {
            Ok(()) => {
                let m = &self.metrics;
                m.health.wal_healthy.store(true, Relaxed);
                if entries > 0 {
                    Metrics::add(&m.wal_commits, 1);
                    self.spool.add(self.buf.len() as u64);
                }
                Metrics::add(&m.entries_sealed, entries);
                Metrics::add(&m.gap_entries, done.gaps);
                Metrics::add(&m.duplicates_dropped, done.duplicates);
                Metrics::add(&m.events_received, done.received);
                m.log_size.set(self.state.sealer.size());
                self.note_heard(group, &done.ends);
                // Copy the records only when someone watches.
                if entries > 0 && self.live.receiver_count() > 0 {
                    let _ = self.live.send(Arc::new(LiveBatch {
                        first_seq,
                        records: self.buf.clone(),
                    }));
                }
                for (job, ack) in group.drain(..).zip(done.acks) {
                    // The events go first: their request's body buffer is then free to be
                    // kept when the request hears the answer (`http::body_buffers`).
                    let Job { events, reply, .. } = job;
                    drop(events);
                    let _ = reply.send(Ok(ack));
                }
            }
            Err(e) => {
                self.state.restore(snapshot);
                Metrics::add(&self.metrics.wal_failures, 1);
                self.metrics.health.wal_healthy.store(false, Relaxed);
                Metrics::add(
                    &self.metrics.batches_rejected_unavailable,
                    group.len() as u64,
                );
                tracing::error!(error = %e, "write-ahead log commit failed; batches refused");
                if let AppendError::Poisoned { .. } = e {
                    self.fail(e.to_string());
                }
                let reason = format!("events could not be made durable: {e}");
                for job in group.drain(..) {
                    let _ = job.reply.send(Err(Unavailable(reason.clone())));
                }
            }
        }
    }

    /// After a durable commit: who was heard from, and who ended.
    fn note_heard(&mut self, group: &[Job], ends: &[(String, bool)]) {
        let now = Instant::now();
        for job in group {
            let mut previous: Option<&str> = None;
            for ev in &job.events {
                if let Some(src) = &ev.source
                    && previous != Some(src.id.as_str())
                {
                    self.liveness.heard(&src.id, src.seq.unwrap_or(0), now);
                    previous = Some(src.id.as_str());
                }
            }
            if let Some(report) = &job.report
                && report.state == SourceState::Open
            {
                self.liveness.heard(&report.id, report.announced, now);
            }
        }
        for (id, clean) in ends {
            let clean = *clean;
            self.liveness.ended(id);
            let m = &self.metrics;
            Metrics::add(
                if clean {
                    &m.source_ends_clean
                } else {
                    &m.source_ends_unclean
                },
                1,
            );
            if clean {
                tracing::info!(source = %id, "source closed");
            } else {
                tracing::warn!(source = %id, "source went silent without closing; its end is sealed");
            }
        }
        self.metrics.sources_open.set(self.liveness.open() as u64);
    }

    fn fail(&mut self, reason: String) {
        self.metrics.health.writer_failed.store(true, Relaxed);
        self.metrics.health.ready.store(false, Relaxed);
        self.failed = Some(format!(
            "the write-ahead log failed and the sealer must be restarted: {reason}"
        ));
    }

    /// Save the sources as of log size `size` beside the WAL, if the last snapshot is far
    /// enough behind (or there is none), so the next start need not read the log for them.
    fn snapshot_sources(&mut self, size: u64) {
        if self.snapshot_at != 0 && size < self.snapshot_at + SNAPSHOT_EVERY_ENTRIES {
            return;
        }
        match self.state.sources.save_snapshot(&self.wal_dir, size) {
            Ok(()) => self.snapshot_at = size,
            Err(e) => {
                tracing::warn!(error = %e, "failed to save the sources snapshot; the next start reads more of the log")
            }
        }
    }

    /// A closed segment's leaf hashes for the uploader: in memory while the spool holds few,
    /// else in a file beside the WAL file (not synced: it only saves the uploader hashing the
    /// WAL file again, which it does if the file is missing or short).
    fn hand_over_leaves(
        &self,
        wal_file: &std::path::Path,
        mut leaves: Vec<Hash>,
    ) -> (Vec<Hash>, Option<PathBuf>) {
        if self.spool.hold_leaves(leaves.len() as u64) {
            leaves.shrink_to_fit();
            return (leaves, None);
        }
        let path = spilled_leaves_path(wal_file);
        match std::fs::write(&path, leaves.concat()) {
            Ok(()) => (Vec::new(), Some(path)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write a segment's leaf hashes aside; the uploader will hash its WAL file");
                (Vec::new(), None)
            }
        }
    }

    /// Close the open WAL file as a segment; open a new one if `reopen`.
    fn roll(&mut self, reopen: bool) {
        let Some(wal) = self.wal.take() else { return };
        match wal.close() {
            Ok(Some(closed)) => {
                let leaves = std::mem::take(&mut self.state.leaves);
                let (leaves, spilled_leaves) = self.hand_over_leaves(&closed.path, leaves);
                let seg = ClosedSegment {
                    path: closed.path,
                    first: closed.first,
                    last: closed.last,
                    root: self.state.sealer.frontier().root(),
                    chain: self.state.sealer.head(),
                    leaves,
                    spilled_leaves,
                };
                self.snapshot_sources(seg.last + 1);
                tracing::debug!(first = seg.first, last = seg.last, "segment closed");
                let _ = self.segments.send(seg);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "failed to close the write-ahead log file");
                self.fail(e.to_string());
                return;
            }
        }
        if reopen {
            match Wal::create(&self.wal_dir, self.state.sealer.size()) {
                Ok(w) => self.wal = Some(w),
                Err(e) => {
                    tracing::error!(error = %e, dir = %self.wal_dir.display(), "failed to open a new write-ahead log file");
                    self.fail(e.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::ingest::{SourceReport, SourceState};
    use crate::seal::sources::Liveness;
    use crate::seal::spool::Spool;
    use crate::store::{MemoryStore, Store};
    use crate::testing::{self, event};

    struct Running {
        handle: WriterHandle,
        join: JoinHandle<()>,
        segments: tokio::sync::mpsc::UnboundedReceiver<ClosedSegment>,
        metrics: Arc<Metrics>,
        _dir: tempfile::TempDir,
    }

    fn start(max_bytes: u64, silence: Duration) -> Running {
        start_with(max_bytes, silence, Default::default())
    }

    fn start_with(max_bytes: u64, silence: Duration, spool: Spool) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let (tx, segments) = tokio::sync::mpsc::unbounded_channel();
        let metrics = Arc::new(Metrics::default());
        let (live, _) = tokio::sync::broadcast::channel(16);
        let (handle, join) = spawn(
            WriterState {
                spool,
                sealer: testing::new_sealer(),
                sources: SourceTracker::default(),
                liveness: Liveness::new(silence),
                wal_dir: dir.path().to_owned(),
                live,
            },
            SegmentPolicy {
                max_bytes,
                max_age: Duration::from_secs(3600),
            },
            tx,
            metrics.clone(),
        )
        .unwrap();
        Running {
            handle,
            join,
            segments,
            metrics,
            _dir: dir,
        }
    }

    /// Stop the writer, store every segment it closed with a checkpoint after each (as the
    /// uploader does), and verify the store.
    async fn stop_and_verify(mut w: Running) -> Vec<ClosedSegment> {
        w.handle.shutdown();
        tokio::task::spawn_blocking(move || w.join.join().unwrap())
            .await
            .unwrap();
        let store = MemoryStore::default();
        let mut closed = Vec::new();
        while let Ok(seg) = w.segments.try_recv() {
            let bytes = std::fs::read(&seg.path).unwrap();
            let key = auditlog::layout::segment_key(seg.first, seg.last);
            store.put_if_absent(&key, Bytes::from(bytes)).await.unwrap();
            let head = auditlog::head::LogHead {
                origin: testing::ORIGIN.into(),
                size: seg.last + 1,
                root: seg.root,
                chain: seg.chain,
                time: Timestamp::now(),
            };
            let text = head.sign(&testing::signer()).unwrap();
            store
                .put_if_absent(&head.key(), Bytes::from(text))
                .await
                .unwrap();
            closed.push(seg);
        }
        testing::assert_verified(&testing::verify_store(&store).await);
        closed
    }

    #[tokio::test]
    async fn batches_are_acknowledged_with_their_positions_and_segments_roll_by_size() {
        let w = start(2048, Duration::from_secs(60));
        let first = w
            .handle
            .submit((1..=3).map(|n| event("gw/a", n)).collect(), None)
            .await
            .unwrap();
        // Entry 0 is the start entry.
        assert_eq!(
            (first.sealed, first.first_seq, first.last_seq),
            (3, Some(1), Some(3))
        );
        let replay = w.handle.submit(vec![event("gw/a", 2)], None).await.unwrap();
        assert_eq!((replay.sealed, replay.duplicates), (0, 1));
        let jump = w.handle.submit(vec![event("gw/a", 6)], None).await.unwrap();
        assert_eq!((jump.sealed, jump.gaps), (2, 1), "a gap for 4..=5, then 6");
        for n in 7..40 {
            w.handle.submit(vec![event("gw/a", n)], None).await.unwrap();
        }
        assert_eq!(w.metrics.entries_sealed.get(), 1 + 3 + 2 + 33);
        let closed = stop_and_verify(w).await;
        assert!(closed.len() > 3, "2 KiB segments: {}", closed.len());
        assert_eq!(closed.last().unwrap().last, 38);
    }

    #[tokio::test]
    async fn a_source_silent_past_the_timeout_ends_uncleanly_and_a_closing_one_cleanly() {
        let w = start(1 << 20, Duration::from_millis(300));
        let report = |id: &str, announced, state| SourceReport {
            id: id.into(),
            announced,
            state,
        };
        let silent = report("gw/silent", 2, SourceState::Open);
        w.handle
            .submit(vec![event("gw/silent", 1)], Some(silent))
            .await
            .unwrap();
        let closing = report("gw/closing", 1, SourceState::Closing);
        let closed = w
            .handle
            .submit(vec![event("gw/closing", 1)], Some(closing))
            .await
            .unwrap();
        assert_eq!(closed.sealed, 2, "its event and its end");
        let deadline = Instant::now() + Duration::from_secs(10);
        while w.metrics.source_ends_unclean.get() == 0 {
            assert!(Instant::now() < deadline, "the silent source never ended");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(w.metrics.source_ends_clean.get(), 1);
        assert_eq!(w.metrics.sources_open.get(), 0);
        // The silent source had announced 2: a gap for it, then its end.
        assert_eq!(w.metrics.gap_entries.get(), 1);
        stop_and_verify(w).await;
    }

    #[tokio::test]
    async fn leaves_go_to_a_file_beside_the_wal_once_the_spool_holds_too_many() {
        use crate::seal::spool::MAX_HELD_LEAVES;
        // The uploader is far behind: the spool already holds as many leaves as it may.
        let spool = Spool::default();
        assert!(spool.hold_leaves(MAX_HELD_LEAVES));
        let mut w = start_with(2048, Duration::from_secs(60), spool.clone());
        for n in 0..4 {
            let events = (1..=5).map(|k| event("gw/a", n * 5 + k)).collect();
            w.handle.submit(events, None).await.unwrap();
        }
        // Keep the WAL directory past stop_and_verify.
        let _wal_dir = std::mem::replace(&mut w._dir, tempfile::tempdir().unwrap());
        let closed = stop_and_verify(w).await;
        assert!(closed.len() >= 2, "segments rolled: {}", closed.len());
        for seg in &closed {
            assert!(seg.leaves.is_empty());
            let spilled = seg.spilled_leaves.as_ref().expect("leaves put aside");
            assert_eq!(*spilled, spilled_leaves_path(&seg.path));
            let key = auditlog::layout::segment_key(seg.first, seg.last);
            let hashed =
                crate::publish::tiles::leaves_of(&key, &std::fs::read(&seg.path).unwrap()).unwrap();
            assert_eq!(std::fs::read(spilled).unwrap(), hashed.concat());
        }
        assert_eq!(
            spool.held_leaves(),
            MAX_HELD_LEAVES,
            "spilled leaves are not counted"
        );

        // With room in the spool they stay in memory, and are counted until released.
        let spool = Spool::default();
        let w = start_with(2048, Duration::from_secs(60), spool.clone());
        for n in 0..4 {
            let events = (1..=5).map(|k| event("gw/a", n * 5 + k)).collect();
            w.handle.submit(events, None).await.unwrap();
        }
        let closed = stop_and_verify(w).await;
        let held: u64 = closed.iter().map(|s| s.leaves.len() as u64).sum();
        assert!(held > 0 && closed.iter().all(|s| s.spilled_leaves.is_none()));
        assert_eq!(spool.held_leaves(), held);
    }

    #[tokio::test]
    async fn after_shutdown_batches_are_refused_not_lost() {
        let w = start(1 << 20, Duration::from_secs(60));
        w.handle.submit(vec![event("gw/a", 1)], None).await.unwrap();
        w.handle.shutdown();
        let refused = w.handle.submit(vec![event("gw/a", 2)], None).await;
        assert!(refused.is_err(), "{refused:?}");
        stop_and_verify(w).await;
    }
}
