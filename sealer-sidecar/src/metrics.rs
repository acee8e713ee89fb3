//! Counters and gauges, rendered in the Prometheus text exposition format.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Every metric the sealer exports. Shared by the writer, the uploader and the HTTP layer.
#[derive(Debug, Default)]
pub struct Metrics {
    /// The spool, shown (not steered) here.
    pub spool: crate::seal::spool::Spool,
    pub events_received: AtomicU64,
    pub entries_sealed: AtomicU64,
    pub duplicates_dropped: AtomicU64,
    pub gap_entries: AtomicU64,
    /// Sources that closed cleanly, and sources that went silent without closing.
    pub source_ends_clean: AtomicU64,
    pub source_ends_unclean: AtomicU64,
    /// Sources heard from and not ended.
    pub sources_open: AtomicU64,
    pub batches_rejected_invalid: AtomicU64,
    pub batches_rejected_unavailable: AtomicU64,
    pub wal_commits: AtomicU64,
    pub wal_fsync_nanos: AtomicU64,
    pub wal_failures: AtomicU64,
    pub segments_uploaded: AtomicU64,
    pub upload_retries: AtomicU64,
    pub checkpoints_published: AtomicU64,
    pub integrity_alarms: AtomicU64,
    pub batches_rejected_spool_full: AtomicU64,
    /// Kubernetes audit events received on the webhook, sealed or not.
    pub k8s_audit_received: AtomicU64,
    /// Of those, events outside the selection (resource or stage), not sealed.
    pub k8s_audit_ignored: AtomicU64,
    /// Webhook calls refused for missing or wrong credentials.
    pub webhook_unauthenticated: AtomicU64,
    /// Entries sealed into the WAL (the log size as the writer sees it).
    pub log_size: AtomicU64,
    /// Entries covered by the newest stored checkpoint.
    pub checkpoint_size: AtomicU64,
    pub checkpoint_unix_seconds: AtomicU64,
    pub writer_failed: AtomicBool,
    /// False while the last write-ahead log commit failed (e.g. the disk is full).
    pub wal_healthy: AtomicBool,
    /// False while the last store write failed.
    pub store_healthy: AtomicBool,
    /// Set once the sealer has started and cleared when it shuts down.
    pub ready: AtomicBool,
}

impl Metrics {
    /// Metrics that show `spool` (the writer and the uploader keep it).
    pub fn new(spool: crate::seal::spool::Spool) -> Self {
        let m = Metrics {
            spool,
            ..Metrics::default()
        };
        m.wal_healthy.store(true, Relaxed);
        m.store_healthy.store(true, Relaxed);
        m
    }

    /// Ready to accept events, with a healthy disk and store and no integrity alarm.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Relaxed)
            && !self.writer_failed.load(Relaxed)
            && self.wal_healthy.load(Relaxed)
            && self.store_healthy.load(Relaxed)
            && self.integrity_alarms.load(Relaxed) == 0
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Entries sealed but not yet in the store under a checkpoint.
    pub fn upload_lag(&self) -> u64 {
        self.log_size
            .load(Relaxed)
            .saturating_sub(self.checkpoint_size.load(Relaxed))
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let c = |a: &AtomicU64| a.load(Relaxed);
        metric(
            "sealer_events_received_total",
            "counter",
            "Events received in valid batches.",
            c(&self.events_received),
        );
        metric(
            "sealer_entries_sealed_total",
            "counter",
            "Entries sealed into the write-ahead log (all kinds).",
            c(&self.entries_sealed),
        );
        metric(
            "sealer_duplicates_dropped_total",
            "counter",
            "Replayed events already sealed, not sealed again.",
            c(&self.duplicates_dropped),
        );
        metric(
            "sealer_gap_entries_total",
            "counter",
            "Gap entries sealed for events that never arrived.",
            c(&self.gap_entries),
        );
        metric(
            "sealer_source_ends_clean_total",
            "counter",
            "Sources (gateway worker incarnations) that closed cleanly: all their events are sealed.",
            c(&self.source_ends_clean),
        );
        metric(
            "sealer_source_ends_unclean_total",
            "counter",
            "Sources that went silent without closing: events they numbered last may be missing.",
            c(&self.source_ends_unclean),
        );
        metric(
            "sealer_sources_open",
            "gauge",
            "Sources heard from that have not ended.",
            c(&self.sources_open),
        );
        metric(
            "sealer_batches_rejected_invalid_total",
            "counter",
            "Batches refused for invalid input (4xx).",
            c(&self.batches_rejected_invalid),
        );
        metric(
            "sealer_batches_rejected_unavailable_total",
            "counter",
            "Batches refused because they could not be made durable (503).",
            c(&self.batches_rejected_unavailable),
        );
        metric(
            "sealer_wal_commits_total",
            "counter",
            "Group commits (write + fdatasync) of the write-ahead log.",
            c(&self.wal_commits),
        );
        metric(
            "sealer_wal_fsync_seconds_total",
            "counter",
            "Time spent in write-ahead log commits, in seconds (integer part).",
            c(&self.wal_fsync_nanos) / 1_000_000_000,
        );
        metric(
            "sealer_wal_failures_total",
            "counter",
            "Failed write-ahead log commits.",
            c(&self.wal_failures),
        );
        metric(
            "sealer_segments_uploaded_total",
            "counter",
            "Segments written to the store.",
            c(&self.segments_uploaded),
        );
        metric(
            "sealer_upload_retries_total",
            "counter",
            "Store writes that failed and were retried with backoff (the store was down or refused).",
            c(&self.upload_retries),
        );
        metric(
            "sealer_spool_bytes",
            "gauge",
            "Bytes of sealed entries kept locally until the store has them.",
            self.spool.bytes(),
        );
        metric(
            "sealer_batches_rejected_spool_full_total",
            "counter",
            "Batches refused with 503 because the local spool was full (the store is behind).",
            c(&self.batches_rejected_spool_full),
        );
        metric(
            "sealer_k8s_audit_events_received_total",
            "counter",
            "Kubernetes audit events received on the webhook (sealed, duplicate or ignored).",
            c(&self.k8s_audit_received),
        );
        metric(
            "sealer_k8s_audit_events_ignored_total",
            "counter",
            "Kubernetes audit events outside the selected resources and stages, not sealed.",
            c(&self.k8s_audit_ignored),
        );
        metric(
            "sealer_webhook_unauthenticated_total",
            "counter",
            "Webhook calls refused for a missing or wrong token and no client certificate.",
            c(&self.webhook_unauthenticated),
        );
        metric(
            "sealer_checkpoints_published_total",
            "counter",
            "Signed checkpoints written to the store.",
            c(&self.checkpoints_published),
        );
        metric(
            "sealer_integrity_alarms_total",
            "counter",
            "Objects found in the store with unexpected content.",
            c(&self.integrity_alarms),
        );
        metric(
            "sealer_log_size",
            "gauge",
            "Entries sealed (the next sequence number).",
            c(&self.log_size),
        );
        metric(
            "sealer_checkpoint_size",
            "gauge",
            "Entries covered by the newest stored checkpoint.",
            c(&self.checkpoint_size),
        );
        metric(
            "sealer_checkpoint_timestamp_seconds",
            "gauge",
            "Unix time of the newest stored checkpoint.",
            c(&self.checkpoint_unix_seconds),
        );
        metric(
            "sealer_upload_lag_entries",
            "gauge",
            "Entries sealed but not yet covered by a stored checkpoint.",
            self.upload_lag(),
        );
        metric(
            "sealer_ready",
            "gauge",
            "1 when the sealer accepts events, its disk and store are healthy and no integrity alarm was raised.",
            u64::from(self.is_ready()),
        );
        out
    }
}
