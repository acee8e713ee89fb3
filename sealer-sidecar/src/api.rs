//! The HTTP API. [`app`] builds the router, so tests can call it without a socket.
//!
//! | method and path      | what                                                        |
//! |----------------------|-------------------------------------------------------------|
//! | `POST /v1/events`    | ingest a batch (NDJSON or JSON array); 200 once durable     |
//! | `GET /v1/checkpoint` | the newest signed checkpoint (C2SP signed note)             |
//! | `GET /verify`        | verify the whole store now; JSON report                     |
//! | `GET /healthz`       | the process is alive                                        |
//! | `GET /readyz`        | ready to accept events and the store is healthy             |
//! | `GET /metrics`       | Prometheus text format                                      |

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use auditlog::chain::MacKey;
use auditlog::note::NoteVerifier;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::audit::{self, VerifyOptions};
use crate::auth::{Role, Tokens};
use crate::index::IndexReader;
use crate::ingest::{self, BodyFormat, IngestError, IngestLimits};
use crate::metrics::Metrics;
use crate::page;
use crate::read_api;
use crate::store::Store;
use crate::uploader::LatestCheckpoint;
use crate::writer::{LiveSender, SourceReport, SourceState, WriterHandle};

/// What the handlers share.
pub struct AppState<S> {
    /// Turns true when the sealer shuts down: long-lived answers (the live stream) end then,
    /// so the graceful shutdown does not wait for them.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    pub writer: WriterHandle,
    pub store: S,
    pub verifier: NoteVerifier,
    pub mac_key: MacKey,
    pub metrics: Arc<Metrics>,
    pub latest: LatestCheckpoint,
    pub limits: IngestLimits,
    pub max_body_bytes: usize,
    /// Bounds the batches parsed or waiting for the disk at once.
    pub inflight: Semaphore,
    /// Above this many spooled bytes (sealed, not yet stored), batches get 503.
    pub spool_max_bytes: u64,
    /// Bearer tokens by role ([`crate::auth`]).
    pub tokens: Tokens,
    /// The local copy of the newest checkpoint this sealer stored.
    pub last_checkpoint_file: std::path::PathBuf,
    /// Held by a verification, and by the uploader between storing a segment and its
    /// checkpoint, so `/verify` never sees a segment whose checkpoint is still being written.
    pub verify_lock: Arc<tokio::sync::Mutex<()>>,
    /// The query index (entries covered by stored checkpoints); `None` with `--index false`.
    pub index: Option<Arc<IndexReader>>,
    /// Entries as they are committed, for `GET /v1/stream`.
    pub live: LiveSender,
    /// When the last `GET /verify` ran and what it found, for the page.
    pub last_verification: tokio::sync::RwLock<Option<serde_json::Value>>,
}

pub fn app<S: Store + Clone>(state: Arc<AppState<S>>) -> Router {
    Router::new()
        .route(
            "/v1/events",
            post(post_events::<S>).get(read_api::get_events::<S>),
        )
        .route("/v1/checkpoint", get(get_checkpoint::<S>))
        .route("/verify", get(get_verify::<S>))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(get_ready::<S>))
        .route("/metrics", get(get_metrics::<S>))
        .route("/v1/proof/inclusion", get(read_api::get_inclusion::<S>))
        .route("/v1/proof/consistency", get(read_api::get_consistency::<S>))
        .route("/v1/stream", get(read_api::get_stream::<S>))
        .route("/v1/status", get(read_api::get_status::<S>))
        .route("/", get(page::get_index::<S>))
        .route("/assets/app.js", get(page::get_app_js))
        .route("/assets/style.css", get(page::get_style_css))
        // Bodies are read by the handler itself, under its own limit, after it has a slot.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// The probe endpoints alone, for `--health-listen`: nothing that reads or writes the log.
pub fn health_app<S: Store + Clone>(state: Arc<AppState<S>>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(get_ready::<S>))
        .with_state(state)
}

fn json_error(status: StatusCode, body: &IngestError) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn post_events<S: Store + Clone>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(refused) = state.tokens.check(Role::Ingest, &headers) {
        return refused;
    }
    let refuse = |status, error: IngestError| {
        Metrics::add(&state.metrics.batches_rejected_invalid, 1);
        json_error(status, &error)
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(format) = BodyFormat::from_content_type(content_type) else {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError {
                error: "unsupported_media_type",
                message: format!(
                    "content type {content_type:?} is not accepted; send application/x-ndjson or application/json"
                ),
                line: None,
                index: None,
                field: None,
            },
        );
    };
    let too_large = || IngestError {
        error: "too_large",
        message: format!(
            "request body exceeds {} bytes; split the batch",
            state.max_body_bytes
        ),
        line: None,
        index: None,
        field: None,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, too_large());
    }
    if let Some(refused) = spool_full(&state) {
        return refused;
    }
    // Wait for a slot before reading the body, so waiting requests hold no memory.
    let Ok(_permit) = state.inflight.acquire().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let body = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, too_large()),
    };
    let report = match source_report(&headers, &state.limits) {
        Ok(report) => report,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let events = match ingest::parse_batch(&body, format, &state.limits) {
        Ok(e) => e,
        Err(e) => {
            let status = if e.error == "too_large" {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return refuse(status, e);
        }
    };
    match state.writer.submit(events, report).await {
        Ok(ack) => (StatusCode::OK, axum::Json(ack)).into_response(),
        Err(e) => unavailable(&e),
    }
}

/// What the producer says about itself (the audit filter sends these with every batch and
/// heartbeat): `audit-source: <source id>`, `audit-source-seq: <highest number it has given
/// out>`, and `audit-source-closing: true` on its last batch.
fn source_report(
    headers: &HeaderMap,
    limits: &IngestLimits,
) -> Result<Option<SourceReport>, IngestError> {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let invalid = |field: &str, message: String| IngestError {
        error: "invalid_header",
        message,
        line: None,
        index: None,
        field: Some(field.to_owned()),
    };
    let Some(id) = text("audit-source") else {
        return Ok(None);
    };
    let max = limits.event.max_source_bytes;
    if id.is_empty() || id.len() > max || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "audit-source",
            format!("must be the source id: 1 to {max} printable ASCII characters"),
        ));
    }
    let announced = text("audit-source-seq")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|n| *n <= auditlog::event::MAX_SAFE_INTEGER)
        .ok_or_else(|| {
            invalid(
                "audit-source-seq",
                "must come with audit-source: the highest sequence number the source has given \
                 out (0 to 2^53-1)"
                    .into(),
            )
        })?;
    let state = match text("audit-source-closing") {
        None | Some("false") => SourceState::Open,
        Some("true") => SourceState::Closing,
        Some(other) => {
            return Err(invalid(
                "audit-source-closing",
                format!("must be true or false, not {other:?}"),
            ));
        }
    };
    Ok(Some(SourceReport {
        id: id.to_owned(),
        announced,
        state,
    }))
}

/// The 503 to answer while the store is behind (down, or slower than ingest) and the local
/// spool is full: the client keeps its events (the filter buffers or records a gap, the API
/// server retries) rather than the sealer dropping them.
pub(crate) fn spool_full<S: Store>(state: &AppState<S>) -> Option<Response> {
    let spooled = state.metrics.spool_bytes.load(Relaxed);
    if spooled < state.spool_max_bytes {
        return None;
    }
    Metrics::add(&state.metrics.batches_rejected_spool_full, 1);
    Some(
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            axum::Json(json!({
                "error": "spool_full",
                "message": format!(
                    "{spooled} bytes of sealed events wait for the store ({}); the spool limit \
                     (--spool-max-bytes) is {} bytes; retry later",
                    state.store.describe(),
                    state.spool_max_bytes
                ),
            })),
        )
            .into_response(),
    )
}

/// The 503 for a batch the writer could not make durable.
pub(crate) fn unavailable(e: &crate::writer::Unavailable) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        axum::Json(json!({"error": "unavailable", "message": e.to_string()})),
    )
        .into_response()
}

async fn get_checkpoint<S: Store + Clone>(State(state): State<Arc<AppState<S>>>) -> Response {
    match state.latest.read().await.clone() {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no checkpoint published yet\n",
        )
            .into_response(),
    }
}

async fn get_verify<S: Store + Clone>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = state.tokens.check(Role::Read, &headers) {
        return refused;
    }
    let _one_at_a_time = state.verify_lock.lock().await;
    // Also against the last checkpoint this sealer published, which catches a rollback.
    let trusted = tokio::fs::read_to_string(&state.last_checkpoint_file)
        .await
        .ok()
        .map(|text| (state.last_checkpoint_file.display().to_string(), text));
    let options = VerifyOptions {
        mac_key: Some(state.mac_key.clone()),
        trusted,
        progress: false,
        storage_checks: true,
        min_retention_days: None,
    };
    match audit::verify(&state.store, &state.verifier, &options).await {
        Ok(report) => {
            *state.last_verification.write().await = Some(json!({
                "at": auditlog::timestamp::Timestamp::now().to_string(),
                "ok": report.ok,
                "problems": report.problem_count,
                "size": report.entries,
            }));
            axum::Json(report).into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": "store_unreadable", "message": e.to_string()})),
        )
            .into_response(),
    }
}

async fn get_ready<S: Store + Clone>(State(state): State<Arc<AppState<S>>>) -> Response {
    let m = &state.metrics;
    let ready = m.is_ready();
    let body = json!({
        "ready": ready,
        "writer_failed": m.writer_failed.load(Relaxed),
        "wal_healthy": m.wal_healthy.load(Relaxed),
        "store_healthy": m.store_healthy.load(Relaxed),
        "integrity_alarms": m.integrity_alarms.load(Relaxed),
        "log_size": m.log_size.load(Relaxed),
        "checkpoint_size": m.checkpoint_size.load(Relaxed),
        "upload_lag_entries": m.upload_lag(),
        "spool_bytes": m.spool_bytes.load(Relaxed),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn get_metrics<S: Store + Clone>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = state.tokens.check(Role::Read, &headers) {
        return refused;
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
