//! What the sealer counts and measures, for `GET /metrics` (the `prometheus-client` crate, in
//! the OpenMetrics text format).
//!
//! Metrics only count: nothing reads a metric to decide anything. The values other parts
//! steer by live elsewhere and are only shown here: the spool ([`crate::seal::spool`]), the
//! stored head ([`crate::read::head`]), and the sealer's health ([`Health`], which readiness
//! reads).
//!
//! Besides counters and gauges, four latency histograms (seconds):
//! `sealer_ingest_durable_seconds` (a `POST /v1/events` from arrival to its durable answer),
//! `sealer_wal_commit_seconds` (one group commit: write + `fdatasync`),
//! `sealer_segment_upload_seconds` (one segment into the store, its checkpoint included), and
//! `sealer_webhook_seconds` (a Kubernetes audit webhook call from arrival to answer).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A count that only goes up.
pub type Count = Counter<u64, AtomicU64>;
/// A value that goes up and down.
pub type Level = Gauge<u64, AtomicU64>;

/// The sealer's health, which readiness (`GET /readyz`) reads; shown as `sealer_ready`.
#[derive(Debug)]
pub struct Health {
    /// Set once the sealer has started and cleared when it shuts down.
    pub ready: AtomicBool,
    /// The write-ahead log failed and the writer refuses everything until a restart.
    pub writer_failed: AtomicBool,
    /// False while the last write-ahead log commit failed (e.g. the disk is full).
    pub wal_healthy: AtomicBool,
    /// False while the last store write failed.
    pub store_healthy: AtomicBool,
    /// An object was found in the store with content the sealer did not write.
    pub integrity_alarm: AtomicBool,
    /// When the writer's disk work in progress (a commit, a segment roll) started (Unix
    /// milliseconds; 0: none).
    pub commit_started_ms: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            ready: AtomicBool::new(false),
            writer_failed: AtomicBool::new(false),
            wal_healthy: AtomicBool::new(true),
            store_healthy: AtomicBool::new(true),
            integrity_alarm: AtomicBool::new(false),
            commit_started_ms: AtomicU64::new(0),
        }
    }
}

/// The writer's disk work (a write-ahead log commit, a segment roll) running longer than
/// this is a stalled disk: the sealer stops
/// being ready to ingest (`GET /readyz/ingest`), so a Service sends new calls elsewhere.
pub const COMMIT_STALLED: Duration = Duration::from_secs(2);

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Health {
    /// Mark a write-ahead log commit as started (`true`) or finished (`false`).
    pub fn committing(&self, started: bool) {
        let value = if started { unix_ms().max(1) } else { 0 };
        self.commit_started_ms.store(value, Relaxed);
    }

    /// A commit has been running for longer than [`COMMIT_STALLED`].
    pub fn commit_stalled(&self) -> bool {
        let started = self.commit_started_ms.load(Relaxed);
        started != 0 && unix_ms().saturating_sub(started) > COMMIT_STALLED.as_millis() as u64
    }

    /// Ready to accept events, with a healthy disk and store and no integrity alarm.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Relaxed)
            && !self.writer_failed.load(Relaxed)
            && self.wal_healthy.load(Relaxed)
            && self.store_healthy.load(Relaxed)
            && !self.integrity_alarm.load(Relaxed)
    }
}

/// Every metric the sealer exports. Shared by the writer, the uploader and the HTTP layer.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub health: Arc<Health>,
    pub events_received: Count,
    pub entries_sealed: Count,
    pub duplicates_dropped: Count,
    pub gap_entries: Count,
    pub source_ends_clean: Count,
    pub source_ends_unclean: Count,
    pub sources_open: Level,
    /// Readers of `GET /v1/stream` connected now (the live page, `sealer tail --url`).
    pub stream_readers: Level,
    pub batches_rejected_invalid: Count,
    pub batches_rejected_unavailable: Count,
    pub batches_rejected_spool_full: Count,
    pub wal_commits: Count,
    pub wal_failures: Count,
    pub segments_uploaded: Count,
    pub tiles_stored: Count,
    pub upload_retries: Count,
    pub checkpoints_published: Count,
    pub integrity_alarms: Count,
    pub k8s_audit_received: Count,
    pub k8s_audit_ignored: Count,
    pub webhook_unauthenticated: Count,
    /// Entries sealed into the WAL (the log size as the writer sees it).
    pub log_size: Level,
    /// Entries covered by the newest stored checkpoint, and when it was signed.
    pub checkpoint_size: Level,
    pub checkpoint_unix_seconds: Level,
    pub ingest_durable_seconds: Histogram,
    pub wal_commit_seconds: Histogram,
    pub segment_upload_seconds: Histogram,
    pub webhook_seconds: Histogram,
}

/// 100 µs to about 13 s, doubling.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// A value another part keeps and the metrics only show, read at each scrape (the spool,
/// which the writer and the uploader keep). Implemented where the value lives, so the metrics
/// depend on no stage.
pub trait Reading: std::fmt::Debug + Send + Sync + 'static {
    fn read(&self) -> u64;
}

/// A constant reading.
impl Reading for u64 {
    fn read(&self) -> u64 {
        *self
    }
}

/// One witness as the metrics show it (kept by [`crate::publish::witnesses`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WitnessReading {
    pub name: String,
    /// Size of the newest checkpoint it cosigned (0: none yet).
    pub cosigned_size: u64,
    /// When it cosigned it (POSIX seconds; 0: never).
    pub cosigned_at: u64,
    /// The last request to it failed (down, refused, or an answer that did not verify).
    pub failing: bool,
}

/// The witnesses' states, read at each scrape.
pub trait WitnessReadings: std::fmt::Debug + Send + Sync + 'static {
    fn read(&self) -> Vec<WitnessReading>;
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(0)
    }
}

impl Metrics {
    /// Metrics that show the bytes of `spool` (the writer and the uploader keep it).
    pub fn new(spool: impl Reading) -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            health: Arc::new(Health::default()),
            events_received: Count::default(),
            entries_sealed: Count::default(),
            duplicates_dropped: Count::default(),
            gap_entries: Count::default(),
            source_ends_clean: Count::default(),
            source_ends_unclean: Count::default(),
            sources_open: Level::default(),
            stream_readers: Level::default(),
            batches_rejected_invalid: Count::default(),
            batches_rejected_unavailable: Count::default(),
            batches_rejected_spool_full: Count::default(),
            wal_commits: Count::default(),
            wal_failures: Count::default(),
            segments_uploaded: Count::default(),
            tiles_stored: Count::default(),
            upload_retries: Count::default(),
            checkpoints_published: Count::default(),
            integrity_alarms: Count::default(),
            k8s_audit_received: Count::default(),
            k8s_audit_ignored: Count::default(),
            webhook_unauthenticated: Count::default(),
            log_size: Level::default(),
            checkpoint_size: Level::default(),
            checkpoint_unix_seconds: Level::default(),
            ingest_durable_seconds: latency(),
            wal_commit_seconds: latency(),
            segment_upload_seconds: latency(),
            webhook_seconds: latency(),
        };
        m.register(Box::new(spool));
        m
    }

    /// Also show each witness's state: `sealer_witness_cosigned_size`,
    /// `sealer_witness_cosigned_timestamp_seconds` and `sealer_witness_failing`, labelled
    /// `witness="<name>"`.
    #[must_use]
    pub fn with_witnesses(mut self, witnesses: impl WitnessReadings) -> Self {
        self.registry
            .register_collector(Box::new(WitnessesShown(Box::new(witnesses))));
        self
    }

    fn register(&mut self, spool: Box<dyn Reading>) {
        let r = &mut self.registry;
        // Counters are exposed with the `_total` suffix.
        let counters: [(&str, &str, &Count); 19] = [
            (
                "sealer_events_received",
                "Events received in valid batches.",
                &self.events_received,
            ),
            (
                "sealer_entries_sealed",
                "Entries sealed into the write-ahead log (all kinds).",
                &self.entries_sealed,
            ),
            (
                "sealer_duplicates_dropped",
                "Replayed events already sealed, not sealed again.",
                &self.duplicates_dropped,
            ),
            (
                "sealer_gap_entries",
                "Gap entries sealed for events that never arrived.",
                &self.gap_entries,
            ),
            (
                "sealer_source_ends_clean",
                "Sources (gateway worker incarnations) that closed cleanly: all their events are sealed.",
                &self.source_ends_clean,
            ),
            (
                "sealer_source_ends_unclean",
                "Sources that went silent without closing: events they numbered last may be missing.",
                &self.source_ends_unclean,
            ),
            (
                "sealer_batches_rejected_invalid",
                "Batches refused for invalid input (4xx).",
                &self.batches_rejected_invalid,
            ),
            (
                "sealer_batches_rejected_unavailable",
                "Batches refused because they could not be made durable (503).",
                &self.batches_rejected_unavailable,
            ),
            (
                "sealer_batches_rejected_spool_full",
                "Batches refused with 503 because the local spool was full (the store is behind).",
                &self.batches_rejected_spool_full,
            ),
            (
                "sealer_wal_commits",
                "Group commits (write + fdatasync) of the write-ahead log.",
                &self.wal_commits,
            ),
            (
                "sealer_wal_failures",
                "Failed write-ahead log commits.",
                &self.wal_failures,
            ),
            (
                "sealer_segments_uploaded",
                "Segments written to the store.",
                &self.segments_uploaded,
            ),
            (
                "sealer_tiles_stored",
                "Tiles of the Merkle tree (C2SP tlog-tiles) written to the store.",
                &self.tiles_stored,
            ),
            (
                "sealer_upload_retries",
                "Store writes that failed and were retried with backoff (the store was down or refused).",
                &self.upload_retries,
            ),
            (
                "sealer_checkpoints_published",
                "Signed checkpoints written to the store.",
                &self.checkpoints_published,
            ),
            (
                "sealer_integrity_alarms",
                "Objects found in the store with unexpected content.",
                &self.integrity_alarms,
            ),
            (
                "sealer_k8s_audit_events_received",
                "Kubernetes audit events received on the webhook (sealed, duplicate or ignored).",
                &self.k8s_audit_received,
            ),
            (
                "sealer_k8s_audit_events_ignored",
                "Kubernetes audit events outside the selected resources and stages, not sealed.",
                &self.k8s_audit_ignored,
            ),
            (
                "sealer_webhook_unauthenticated",
                "Webhook calls refused for a missing or wrong token and no client certificate.",
                &self.webhook_unauthenticated,
            ),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
        let gauges: [(&str, &str, &Level); 5] = [
            (
                "sealer_sources_open",
                "Sources heard from that have not ended.",
                &self.sources_open,
            ),
            (
                "sealer_stream_readers",
                "Readers of GET /v1/stream connected now.",
                &self.stream_readers,
            ),
            (
                "sealer_log_size",
                "Entries sealed (the next sequence number).",
                &self.log_size,
            ),
            (
                "sealer_checkpoint_size",
                "Entries covered by the newest stored checkpoint.",
                &self.checkpoint_size,
            ),
            (
                "sealer_checkpoint_timestamp_seconds",
                "Unix time of the newest stored checkpoint.",
                &self.checkpoint_unix_seconds,
            ),
        ];
        for (name, help, gauge) in gauges {
            r.register(name, help, gauge.clone());
        }
        let histograms: [(&str, &str, &Histogram); 4] = [
            (
                "sealer_ingest_durable_seconds",
                "POST /v1/events, from arrival to the answer once durable.",
                &self.ingest_durable_seconds,
            ),
            (
                "sealer_wal_commit_seconds",
                "One group commit of the write-ahead log (write + fdatasync).",
                &self.wal_commit_seconds,
            ),
            (
                "sealer_segment_upload_seconds",
                "One segment stored, with its checkpoint.",
                &self.segment_upload_seconds,
            ),
            (
                "sealer_webhook_seconds",
                "A Kubernetes audit webhook call, from arrival to answer.",
                &self.webhook_seconds,
            ),
        ];
        for (name, help, histogram) in histograms {
            r.register(name, help, histogram.clone());
        }
        r.register_collector(Box::new(Shown {
            spool,
            health: self.health.clone(),
            log_size: self.log_size.clone(),
            checkpoint_size: self.checkpoint_size.clone(),
        }));
    }

    pub fn add(counter: &Count, n: u64) {
        counter.inc_by(n);
    }

    /// The time since `since`, observed in `histogram`.
    pub fn observe(histogram: &Histogram, elapsed: Duration) {
        histogram.observe(elapsed.as_secs_f64());
    }

    /// Ready to accept events, with a healthy disk and store and no integrity alarm.
    pub fn is_ready(&self) -> bool {
        self.health.is_ready()
    }

    /// Entries sealed but not yet in the store under a checkpoint.
    pub fn upload_lag(&self) -> u64 {
        self.log_size
            .get()
            .saturating_sub(self.checkpoint_size.get())
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

/// The values shown at each scrape that other parts keep: the spool, readiness, the upload
/// lag.
#[derive(Debug)]
struct Shown {
    spool: Box<dyn Reading>,
    health: Arc<Health>,
    log_size: Level,
    checkpoint_size: Level,
}

impl Collector for Shown {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauges = [
            (
                "sealer_spool_bytes",
                "Bytes of sealed entries kept locally until the store has them.",
                self.spool.read(),
            ),
            (
                "sealer_upload_lag_entries",
                "Entries sealed but not yet covered by a stored checkpoint.",
                self.log_size
                    .get()
                    .saturating_sub(self.checkpoint_size.get()),
            ),
            (
                "sealer_ready",
                "1 when the sealer accepts events, its disk and store are healthy and no \
                 integrity alarm was raised.",
                u64::from(self.health.is_ready()),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// The witnesses' states, shown at each scrape.
#[derive(Debug)]
struct WitnessesShown(Box<dyn WitnessReadings>);

impl Collector for WitnessesShown {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let witnesses = self.0.read();
        type Family = (&'static str, &'static str, fn(&WitnessReading) -> u64);
        let families: [Family; 3] = [
            (
                "sealer_witness_cosigned_size",
                "Size of the newest checkpoint of this log the witness cosigned (0: none yet).",
                |w| w.cosigned_size,
            ),
            (
                "sealer_witness_cosigned_timestamp_seconds",
                "When the witness cosigned it (its cosignature's time; 0: never).",
                |w| w.cosigned_at,
            ),
            (
                "sealer_witness_failing",
                "1 while the last request to the witness failed (down, refused, or an answer \
                 that did not verify).",
                |w| u64::from(w.failing),
            ),
        ];
        for (name, help, value) in families {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for w in &witnesses {
                let labels = [("witness", w.name.as_str())];
                ConstGauge::new(value(w)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::spool::Spool;

    #[test]
    fn renders_counters_gauges_histograms_and_what_others_keep() {
        let spool = Spool::new(4096);
        let m = Metrics::new(spool);
        Metrics::add(&m.events_received, 3);
        m.log_size.set(10);
        m.checkpoint_size.set(7);
        Metrics::observe(&m.wal_commit_seconds, Duration::from_millis(3));
        m.health.ready.store(true, Relaxed);
        let text = m.render();
        for line in [
            "sealer_events_received_total 3",
            "sealer_log_size 10",
            "sealer_spool_bytes 4096",
            "sealer_upload_lag_entries 3",
            "sealer_ready 1",
            "sealer_wal_commit_seconds_count 1",
            "# TYPE sealer_ingest_durable_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_commit_running_too_long_is_a_stall() {
        let h = Health::default();
        assert!(!h.commit_stalled(), "no commit running");
        h.committing(true);
        assert!(!h.commit_stalled(), "a commit just started");
        let long_ago = unix_ms() - COMMIT_STALLED.as_millis() as u64 - 1000;
        h.commit_started_ms.store(long_ago, Relaxed);
        assert!(h.commit_stalled());
        h.committing(false);
        assert!(!h.commit_stalled());
    }

    #[derive(Debug)]
    struct TwoWitnesses;

    impl WitnessReadings for TwoWitnesses {
        fn read(&self) -> Vec<WitnessReading> {
            vec![
                WitnessReading {
                    name: "w1.example/a".into(),
                    cosigned_size: 42,
                    cosigned_at: 1_764_000_000,
                    failing: false,
                },
                WitnessReading {
                    name: "w2.example/b".into(),
                    failing: true,
                    ..WitnessReading::default()
                },
            ]
        }
    }

    #[test]
    fn shows_each_witness_with_its_name() {
        let text = Metrics::new(0).with_witnesses(TwoWitnesses).render();
        for line in [
            "sealer_witness_cosigned_size{witness=\"w1.example/a\"} 42",
            "sealer_witness_cosigned_timestamp_seconds{witness=\"w1.example/a\"} 1764000000",
            "sealer_witness_failing{witness=\"w1.example/a\"} 0",
            "sealer_witness_cosigned_size{witness=\"w2.example/b\"} 0",
            "sealer_witness_failing{witness=\"w2.example/b\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
    }
}
