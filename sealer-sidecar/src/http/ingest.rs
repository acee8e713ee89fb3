//! `POST /v1/events`: a batch of events, answered 200 once durable.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::http::auth::Role;
use crate::http::body_buffers::ReadError;
use crate::http::{AppState, HttpError};
use crate::ingest::events::{self, BodyFormat, IngestError, IngestErrorKind, IngestLimits};
use crate::ingest::{PreparedEvent, SourceReport, SourceState};
use crate::metrics::Metrics;
use crate::store::Store;

impl From<IngestError> for HttpError {
    fn from(e: IngestError) -> HttpError {
        let status = match e.kind {
            IngestErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            IngestErrorKind::InvalidJson | IngestErrorKind::InvalidEvent => StatusCode::BAD_REQUEST,
        };
        let mut error = HttpError::new(status, e.kind.code(), e.message);
        error.body.line = e.line;
        error.body.index = e.index;
        error.body.field = e.field;
        error
    }
}

pub async fn post_events<S: Store + Clone>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let started = std::time::Instant::now();
    state.tokens.check(Role::Ingest, &headers)?;
    let events = match read_batch(&state, &headers, body).await {
        Ok(batch) => batch,
        Err(e) => {
            if e.status != StatusCode::SERVICE_UNAVAILABLE {
                Metrics::add(&state.metrics.batches_rejected_invalid, 1);
            }
            return Err(e);
        }
    };
    let (events, report, body) = events;
    let ack = state.writer.submit(events, report).await;
    // The writer has dropped the events: the body's buffer serves a later request.
    state.body_buffers.give_back(body);
    let ack = ack.map_err(|e| unavailable(&e))?;
    Metrics::observe(&state.metrics.ingest_durable_seconds, started.elapsed());
    Ok((StatusCode::OK, axum::Json(ack)).into_response())
}

/// The batch of a request: its events, what its source reports and the body they were read
/// from; or the answer to send.
async fn read_batch<S: Store>(
    state: &AppState<S>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Vec<PreparedEvent>, Option<SourceReport>, Bytes), HttpError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(format) = BodyFormat::from_content_type(content_type) else {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "content type {content_type:?} is not accepted; send application/x-ndjson or \
                 application/json"
            ),
        ));
    };
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "request body exceeds {} bytes; split the batch",
                state.max_body_bytes
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
        return Err(too_large());
    }
    spool_full(state)?;
    // Wait for a slot before reading the body, so waiting requests hold no memory.
    let Ok(_permit) = state.inflight.acquire().await else {
        return Err(HttpError::unavailable(
            "unavailable",
            "the sealer is shutting down",
        ));
    };
    let body = match state
        .body_buffers
        .read(body, declared, state.max_body_bytes)
        .await
    {
        Ok(body) => body,
        Err(ReadError::TooLarge) => return Err(too_large()),
        Err(ReadError::Io(e)) => {
            return Err(HttpError::bad_request(
                "body_unreadable",
                format!("the request body could not be read: {e}"),
            ));
        }
    };
    let report = source_report(headers, &state.limits)?;
    let events = events::parse_batch(&body, format, &state.limits)?;
    Ok((events, report, body))
}

/// What the producer says about itself (the audit filter sends these with every batch and
/// heartbeat): `audit-source: <source id>`, `audit-source-seq: <highest number it has given
/// out>`, and `audit-source-closing: true` on its last batch.
fn source_report(
    headers: &HeaderMap,
    limits: &IngestLimits,
) -> Result<Option<SourceReport>, HttpError> {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let invalid = |field: &str, message: String| {
        HttpError::bad_request("invalid_header", message).field(field)
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
pub(crate) fn spool_full<S: Store>(state: &AppState<S>) -> Result<(), HttpError> {
    let spooled = state.spool.bytes();
    if spooled < state.spool_max_bytes {
        return Ok(());
    }
    Metrics::add(&state.metrics.batches_rejected_spool_full, 1);
    Err(HttpError::unavailable(
        "spool_full",
        format!(
            "{spooled} bytes of sealed events wait for the store ({}); the spool limit \
             (--spool-max-bytes) is {} bytes; retry later",
            state.store.describe(),
            state.spool_max_bytes
        ),
    )
    .retry_after(5))
}

/// The 503 for a batch the writer could not make durable.
pub(crate) fn unavailable(e: &crate::seal::writer::Unavailable) -> HttpError {
    HttpError::unavailable("unavailable", e.to_string()).retry_after(1)
}
