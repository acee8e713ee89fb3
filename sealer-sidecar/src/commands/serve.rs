//! `sealer serve`: recovery, then the writer thread, the uploader task and the HTTP server,
//! all stopped by one shutdown signal.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use anyhow::{Context, bail};
use auditlog::event::Limits;
use tokio::net::TcpListener;
use tokio::sync::{RwLock, Semaphore, broadcast, mpsc, watch};

use crate::config::ServeConfig;
use crate::http::auth::Tokens;
use crate::http::tls::{self, ReloadingTls};
use crate::http::webhook::{self, WebhookState};
use crate::http::{AppState, app, health_app};
use crate::ingest::events::IngestLimits;
use crate::keys::{self, SealerKeys};
use crate::metrics::Metrics;
use crate::publish::uploader::{Uploader, UploaderConfig};
use crate::publish::{recovery, witnesses};
use crate::read::head::StoredHead;
use crate::read::index;
use crate::seal::sources::Liveness;
use crate::seal::spool::Spool;
use crate::seal::writer::{self, SegmentPolicy, WriterState};
use crate::store::{self, AnyStore, Store};

/// Take an exclusive lock on the data directory, so two sealers never share a WAL.
fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create data directory {}", dir.display()))?;
    let path = dir.join("sealer.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    // SAFETY: flock on a valid, open file descriptor has no memory-safety preconditions.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        bail!(
            "another sealer is already running with data directory {}",
            dir.display()
        );
    }
    Ok(file)
}

fn load_keys(config: &ServeConfig) -> anyhow::Result<SealerKeys> {
    match &config.keys {
        Some(dir) => keys::load_dir(dir),
        None => {
            let origin = config
                .origin
                .clone()
                .unwrap_or_else(|| format!("dev.invalid/{}", keys::hostname()));
            tracing::warn!(
                origin,
                "DEVELOPMENT KEYS: generated for this run only and never saved; \
                 nobody will be able to verify this log's checkpoints later"
            );
            keys::ephemeral(&origin)
        }
    }
}

/// Bytes in the WAL directory: sealed entries the store does not have yet.
fn spooled_bytes(wal_dir: &std::path::Path) -> u64 {
    std::fs::read_dir(wal_dir)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The configured store; an S3 bucket is checked for Object Lock first.
async fn open_store(config: &ServeConfig, origin: &str) -> anyhow::Result<AnyStore> {
    if !store::is_s3(&config.store) {
        return AnyStore::open_local(&config.store);
    }
    let log_id = config
        .log_id
        .clone()
        .unwrap_or_else(|| store::s3::log_id(origin));
    let base = store::S3Location::parse(&config.store)?;
    store::s3::open_log(&base, &log_id, &config.s3).await
}

/// Open the query index in `dir`. One that is ahead of the store, or whose tree disagrees
/// with it (another store, or a store rolled back), is rebuilt.
fn open_index(
    dir: &Path,
    stored: &StoredHead,
) -> anyhow::Result<(index::IndexWriter, index::IndexReader)> {
    let (mut writer, reader) = index::open(dir)
        .with_context(|| format!("failed to open the index in {}", dir.display()))?;
    let ahead = writer.size() > stored.size;
    let differs =
        writer.size() == stored.size && writer.size() > 0 && writer.chain() != Some(stored.chain);
    if ahead || differs {
        tracing::warn!(
            indexed = writer.size(),
            stored = stored.size,
            "the index does not match the store; rebuilding it"
        );
        writer.clear()?;
    }
    reader.published().store(writer.size(), Relaxed);
    Ok((writer, reader))
}

/// Run the sealer until `shutdown` resolves, then drain and stop cleanly.
pub async fn run(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let keys = load_keys(&config)?;
    let webhook = config.webhook.as_ref();
    let tokens = Tokens::load(
        config.ingest_token_file.as_deref(),
        config.read_token_file.as_deref(),
        webhook.and_then(|w| w.token_file.as_deref()),
    )?;
    // The webhook's certificate and address are checked before the (possibly long) recovery.
    let webhook_listener = match webhook {
        Some(w) => {
            let tls = ReloadingTls::new(w.tls.clone())?;
            let listener = TcpListener::bind(w.listen)
                .await
                .with_context(|| format!("--webhook-listen {}: failed to listen", w.listen))?;
            Some((tls, listener))
        }
        None => None,
    };
    let health_listener = match config.health_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("--health-listen {addr}: failed to listen"))?,
        ),
        None => None,
    };
    let verifier = keys.signer.verifier();
    let store = open_store(&config, verifier.name()).await?;
    let _lock = lock_data_dir(&config.data_dir)?;
    let wal_dir = config.data_dir.join("wal");

    tracing::info!(store = %store.describe(), origin = verifier.name(), "recovering");
    let recovered =
        recovery::recover(&store, &config.data_dir, &wal_dir, &verifier, &keys.mac_key).await?;
    tracing::info!(
        stored_entries = recovered.stored.size,
        log_size = recovered.sealer.size(),
        pending_segments = recovered.pending.len(),
        torn_bytes = recovered.torn_bytes,
        sources = recovered.sources.len(),
        "recovered"
    );

    let spool = Spool::new(spooled_bytes(&wal_dir));
    // What each witness last cosigned: shown by /v1/status and the metrics.
    let witness_statuses: witnesses::Statuses = Arc::new(std::sync::Mutex::new(
        config
            .witnesses
            .iter()
            .map(|w| witnesses::WitnessStatus {
                name: w.key.name().to_owned(),
                url: w.url.clone(),
                ..Default::default()
            })
            .collect(),
    ));
    let metrics = Arc::new(
        Metrics::new(spool.clone())
            .with_witnesses(witnesses::StatusReadings(witness_statuses.clone())),
    );
    metrics.checkpoint_size.set(recovered.stored.size);
    let index = if config.index {
        Some(open_index(
            &config.data_dir.join("index"),
            &recovered.stored,
        )?)
    } else {
        None
    };
    let (live, _) = broadcast::channel(1024);

    let (seg_tx, seg_rx) = mpsc::unbounded_channel();
    for seg in recovered.pending {
        // Recovery hashed their leaves: they count against the spool's bound until stored.
        spool.add_held_leaves(seg.leaves.len() as u64);
        seg_tx.send(seg).expect("receiver is alive");
    }
    let (writer, writer_thread) = writer::spawn(
        WriterState {
            spool: spool.clone(),
            liveness: {
                // Every source the log leaves open is heard from "now": one that never speaks
                // again is sealed as ended after the timeout.
                let mut liveness = Liveness::new(config.source_silence_timeout);
                let now = std::time::Instant::now();
                for (id, seq) in recovered.sources.open_sources() {
                    liveness.heard(id, seq, now);
                }
                liveness
            },
            sealer: recovered.sealer,
            sources: recovered.sources,
            wal_dir,
            live: live.clone(),
        },
        SegmentPolicy {
            max_bytes: config.segment_max_bytes,
            max_age: config.segment_max_age,
        },
        seg_tx,
        metrics.clone(),
    )
    .context("failed to start the writer")?;

    let (head_tx, head) = watch::channel(recovered.stored);
    let verify_lock = Arc::new(tokio::sync::Mutex::new(()));
    let (stop_uploads_tx, stop_uploads_rx) = watch::channel(false);
    let uploader = Uploader::new(UploaderConfig {
        store: store.clone(),
        signer: keys.signer,
        checkpoint_interval: config.checkpoint_interval,
        metrics: metrics.clone(),
        head: head_tx,
        spool: spool.clone(),
        publish_lock: verify_lock.clone(),
        last_checkpoint_file: recovery::last_checkpoint_path(&config.data_dir),
        tiles: recovered.tiles,
    });
    let uploader_task = tokio::spawn(uploader.run(seg_rx, stop_uploads_rx));
    let (stop_index_tx, stop_index_rx) = watch::channel(false);
    let (index_reader, index_task) = match index {
        Some((writer, reader)) => {
            let task = tokio::spawn(index::follow(
                store.clone(),
                writer,
                reader.published(),
                head.clone(),
                stop_index_rx,
            ));
            (Some(Arc::new(reader)), Some(task))
        }
        None => (None, None),
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    // Witnesses: one task each, apart from the uploader (a slow one delays nothing).
    for (i, w) in config.witnesses.iter().enumerate() {
        tracing::info!(witness = w.key.name(), url = %w.url, "asking this witness to cosign each checkpoint");
        tokio::spawn(witnesses::follow(
            store.clone(),
            verifier.clone(),
            w.clone(),
            i,
            witness_statuses.clone(),
            head.clone(),
            stop_rx.clone(),
        ));
    }
    let state = Arc::new(AppState {
        stopping: stop_rx.clone(),
        writer: writer.clone(),
        store,
        verifier,
        mac_key: keys.mac_key,
        metrics: metrics.clone(),
        head,
        spool,
        limits: IngestLimits {
            max_batch_events: config.max_batch_events,
            max_event_bytes: config.max_event_bytes,
            event: Limits {
                max_field_bytes: config.max_field_bytes,
                ..Limits::default()
            },
        },
        max_body_bytes: config.max_body_bytes,
        body_buffers: Default::default(),
        inflight: Semaphore::new(config.max_inflight_batches),
        spool_max_bytes: config.spool_max_bytes,
        tokens,
        verify_lock,
        last_checkpoint_file: recovery::last_checkpoint_path(&config.data_dir),
        index: index_reader,
        live,
        last_verification: RwLock::new(None),
        witnesses: witness_statuses,
        witness_keys: config.witnesses.iter().map(|w| w.key.clone()).collect(),
    });
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let webhook_task = match (webhook_listener, &config.webhook) {
        (Some((tls, listener)), Some(w)) => {
            tracing::info!(
                listen = %listener.local_addr()?,
                client_ca = w.tls.client_ca.is_some(),
                token = w.token_file.is_some(),
                resources = w.selection.resources.len(),
                "audit webhook ready (TLS)"
            );
            let router = webhook::router(Arc::new(WebhookState {
                app: state.clone(),
                selection: w.selection.clone(),
                max_body_bytes: w.max_body_bytes,
                deadline: w.deadline,
            }));
            Some(tokio::spawn(tls::serve(
                listener,
                tls,
                router,
                stop_rx.clone(),
            )))
        }
        _ => None,
    };
    let health_task = match health_listener {
        Some(listener) => {
            tracing::info!(listen = %listener.local_addr()?, "probes (/healthz, /readyz) served");
            let mut stop = stop_rx.clone();
            let probes = axum::serve(listener, health_app(state.clone())).with_graceful_shutdown(
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            );
            Some(tokio::spawn(probes.into_future()))
        }
        None => None,
    };
    metrics.health.ready.store(true, Relaxed);
    tracing::info!(listen = %listener.local_addr()?, "sealer ready");
    let mut stop = stop_rx.clone();
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Some(task) = webhook_task {
        task.await?;
    }
    if let Some(task) = health_task {
        task.await?.context("probe listener failed")?;
    }

    tracing::info!("shutting down: sealing what is queued and storing the last segment");
    metrics.health.ready.store(false, Relaxed);
    writer.shutdown();
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    let _ = stop_uploads_tx.send(true);
    uploader_task.await?;
    let _ = stop_index_tx.send(true);
    if let Some(task) = index_task {
        task.await?;
    }
    served.context("HTTP server failed")
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
