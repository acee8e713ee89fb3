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

use auditlog::entry::{EntryKind, EntrySource, GapEvent, SourceEndEvent, StartEvent};
use auditlog::merkle::Hash;
use auditlog::seal::LogSealer;
use auditlog::timestamp::Timestamp;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::ingest::{PreparedEvent, SourceReport, SourceState};
use crate::metrics::Metrics;
use crate::seal::sources::{Liveness, Observation, SourceTracker, Undo};
use crate::seal::wal::{AppendError, Wal};

/// What a batch got: the positions of the entries sealed for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ack {
    /// Events in the batch.
    pub accepted: u64,
    /// Entries sealed for the batch (its events plus any gap entries).
    pub sealed: u64,
    /// Events already sealed earlier (replays), not sealed again.
    pub duplicates: u64,
    /// Gap entries sealed for events that never arrived.
    pub gaps: u64,
    /// Log positions of the first and last entry sealed for the batch.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

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
}

/// The gap entries for events `first..=last` that never arrived, before an event whose
/// source declared it dropped `declared` events just before it: the declared ones (the last
/// of the range) as `declared_by_source`, any others as `sequence_jump`.
fn gap_events(first: u64, last: u64, declared: Option<u64>) -> Vec<GapEvent> {
    let size = last - first + 1;
    let declared = declared.unwrap_or(0).min(size);
    let gap = |first: u64, last: u64, reason: &str| GapEvent {
        count: last - first + 1,
        first_seq: first,
        last_seq: last,
        reason: reason.into(),
    };
    let mut out = Vec::with_capacity(2);
    if declared < size {
        out.push(gap(first, last - declared, "sequence_jump"));
    }
    if declared > 0 {
        out.push(gap(last - declared + 1, last, "declared_by_source"));
    }
    out
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
    let mut writer = Writer {
        spool: state.spool,
        sealer: state.sealer,
        sources: state.sources,
        liveness: state.liveness,
        ends: Vec::new(),
        wal_dir: state.wal_dir,
        live: state.live,
        wal: Some(wal),
        policy,
        segments,
        metrics,
        buf: Vec::with_capacity(1 << 20),
        undo: Undo::default(),
        failed: None,
    };
    writer.seal_start()?;
    let join = std::thread::Builder::new()
        .name("sealer-writer".into())
        .spawn(move || writer.run(rx))?;
    Ok((WriterHandle { tx }, join))
}

struct Writer {
    spool: crate::seal::spool::Spool,
    sealer: LogSealer,
    sources: SourceTracker,
    liveness: Liveness,
    /// Sources whose `source_end` the group being committed seals: `(id, clean)`.
    ends: Vec<(String, bool)>,
    wal_dir: PathBuf,
    live: LiveSender,
    wal: Option<Wal>,
    policy: SegmentPolicy,
    segments: tokio::sync::mpsc::UnboundedSender<ClosedSegment>,
    metrics: Arc<Metrics>,
    buf: Vec<u8>,
    undo: Undo,
    /// Set when the WAL can no longer be trusted; every batch is refused from then on.
    failed: Option<String>,
}

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
        self.sealer.seal(
            &mut self.buf,
            EntryKind::Start,
            Timestamp::now(),
            None,
            &json,
        );
        let wal = self.wal.as_mut().expect("WAL open at start");
        wal.append(&self.buf, 1).map_err(std::io::Error::other)?;
        self.metrics.log_size.store(self.sealer.size(), Relaxed);
        Metrics::add(&self.metrics.entries_sealed, 1);
        tracing::info!(seq = self.sealer.size() - 1, incarnation = %event.incarnation, "sealed start entry");
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
            if !group.is_empty() {
                self.commit(&mut group);
            }
            if shutting_down || self.time_to_roll() == Some(Duration::ZERO) {
                self.roll(!shutting_down);
            }
        }
        // Refuse whatever arrived after the shutdown request.
        while let Ok(cmd) = rx.try_recv() {
            if let Command::Batch(job) = cmd {
                let _ = job
                    .reply
                    .send(Err(Unavailable("the sealer is shutting down".into())));
            }
        }
        tracing::info!(size = self.sealer.size(), "writer stopped");
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
        let before = self.sealer.clone();
        self.undo.clear();
        self.buf.clear();
        self.ends.clear();
        let sealed_at = Timestamp::now();
        let mut acks = Vec::with_capacity(group.len());
        let mut entries = 0u64;
        let mut gaps = 0u64;
        let mut duplicates = 0u64;
        let mut received = 0u64;
        for job in group.iter() {
            let events = &job.events;
            let mut ack = Ack {
                accepted: events.len() as u64,
                ..Ack::default()
            };
            received += events.len() as u64;
            for ev in events {
                if let Some(key) = &ev.dedup_key
                    && self.sources.observe_key(key, &mut self.undo) == Observation::Duplicate
                {
                    ack.duplicates += 1;
                    continue;
                }
                if let Some(src) = &ev.source
                    && let Some(seq) = src.seq
                {
                    match self.sources.observe(&src.id, seq, &mut self.undo) {
                        Observation::Duplicate => {
                            ack.duplicates += 1;
                            continue;
                        }
                        Observation::Gap { first, last } => {
                            for gap in gap_events(first, last, ev.dropped_before) {
                                let json = serde_json::to_vec(&gap).expect("serializable");
                                let source = EntrySource {
                                    id: src.id.clone(),
                                    seq: None,
                                };
                                let s = self.sealer.seal(
                                    &mut self.buf,
                                    EntryKind::Gap,
                                    sealed_at,
                                    Some(&source),
                                    &json,
                                );
                                ack.first_seq.get_or_insert(s.seq);
                                ack.last_seq = Some(s.seq);
                                ack.gaps += 1;
                                ack.sealed += 1;
                            }
                        }
                        Observation::Next => {}
                    }
                }
                let s = self.sealer.seal(
                    &mut self.buf,
                    ev.kind,
                    sealed_at,
                    ev.source.as_ref(),
                    &ev.event_json,
                );
                ack.first_seq.get_or_insert(s.seq);
                ack.last_seq = Some(s.seq);
                ack.sealed += 1;
            }
            if let Some(report) = &job.report
                && report.state != SourceState::Open
            {
                self.seal_end(report, sealed_at, &mut ack);
            }
            entries += ack.sealed;
            gaps += ack.gaps;
            duplicates += ack.duplicates;
            acks.push(ack);
        }
        let started = Instant::now();
        let wal = self.wal.as_mut().expect("WAL is open while running");
        let result = if entries == 0 {
            Ok(())
        } else {
            wal.append(&self.buf, entries)
        };
        Metrics::add(
            &self.metrics.wal_fsync_nanos,
            started.elapsed().as_nanos() as u64,
        );
        match result {
            Ok(()) => {
                let m = &self.metrics;
                m.wal_healthy.store(true, Relaxed);
                if entries > 0 {
                    Metrics::add(&m.wal_commits, 1);
                    self.spool.add(self.buf.len() as u64);
                }
                Metrics::add(&m.entries_sealed, entries);
                Metrics::add(&m.gap_entries, gaps);
                Metrics::add(&m.duplicates_dropped, duplicates);
                Metrics::add(&m.events_received, received);
                m.log_size.store(self.sealer.size(), Relaxed);
                self.note_heard(group);
                // Copy the records only when someone watches.
                if entries > 0 && self.live.receiver_count() > 0 {
                    let _ = self.live.send(Arc::new(LiveBatch {
                        first_seq: before.size(),
                        records: self.buf.clone(),
                    }));
                }
                for (job, ack) in group.drain(..).zip(acks) {
                    let _ = job.reply.send(Ok(ack));
                }
            }
            Err(e) => {
                self.sealer = before;
                self.sources.rollback(&mut self.undo);
                Metrics::add(&self.metrics.wal_failures, 1);
                self.metrics.wal_healthy.store(false, Relaxed);
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

    /// Seal the end of the source a report is about: a gap for numbers it announced that
    /// never arrived, then its `source_end`. A repeated close is not sealed again.
    fn seal_end(&mut self, report: &SourceReport, sealed_at: Timestamp, ack: &mut Ack) {
        let watermark = self.sources.watermark(&report.id).unwrap_or(0);
        let last = report.announced.max(watermark);
        if !self.sources.end(&report.id, last, &mut self.undo) {
            return;
        }
        let source = EntrySource {
            id: report.id.clone(),
            seq: None,
        };
        let clean = report.state == SourceState::Closing;
        let mut seal = |sealer: &mut LogSealer, buf: &mut Vec<u8>, kind, json: &[u8]| {
            let s = sealer.seal(buf, kind, sealed_at, Some(&source), json);
            ack.first_seq.get_or_insert(s.seq);
            ack.last_seq = Some(s.seq);
            ack.sealed += 1;
        };
        if report.announced > watermark {
            let gap = GapEvent {
                count: report.announced - watermark,
                first_seq: watermark + 1,
                last_seq: report.announced,
                reason: "announced_never_arrived".into(),
            };
            let json = serde_json::to_vec(&gap).expect("serializable");
            seal(&mut self.sealer, &mut self.buf, EntryKind::Gap, &json);
            ack.gaps += 1;
        }
        let end = SourceEndEvent {
            clean,
            last_seq: last,
            reason: if clean {
                "closed".into()
            } else {
                format!(
                    "silent for {} s without closing: events it numbered after last_seq, if \
                     any, are missing",
                    self.liveness.timeout().as_secs()
                )
            },
        };
        let json = serde_json::to_vec(&end).expect("serializable");
        seal(&mut self.sealer, &mut self.buf, EntryKind::SourceEnd, &json);
        self.ends.push((report.id.clone(), clean));
    }

    /// After a durable commit: who was heard from, and who ended.
    fn note_heard(&mut self, group: &[Job]) {
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
        for (id, clean) in self.ends.drain(..) {
            self.liveness.ended(&id);
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
        self.metrics
            .sources_open
            .store(self.liveness.open() as u64, Relaxed);
    }

    fn fail(&mut self, reason: String) {
        self.metrics.writer_failed.store(true, Relaxed);
        self.metrics.ready.store(false, Relaxed);
        self.failed = Some(format!(
            "the write-ahead log failed and the sealer must be restarted: {reason}"
        ));
    }

    /// Close the open WAL file as a segment; open a new one if `reopen`.
    fn roll(&mut self, reopen: bool) {
        let Some(wal) = self.wal.take() else { return };
        match wal.close() {
            Ok(Some(closed)) => {
                let seg = ClosedSegment {
                    path: closed.path,
                    first: closed.first,
                    last: closed.last,
                    root: self.sealer.frontier().root(),
                    chain: self.sealer.head(),
                };
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
            match Wal::create(&self.wal_dir, self.sealer.size()) {
                Ok(w) => self.wal = Some(w),
                Err(e) => {
                    tracing::error!(error = %e, dir = %self.wal_dir.display(), "failed to open a new write-ahead log file");
                    self.fail(e.to_string());
                }
            }
        }
    }
}
