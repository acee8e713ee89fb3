//! `POST /v1/events`: a batch of events, answered 200 once durable.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::http::AppState;
use crate::http::auth::Role;
use crate::ingest::events::{self, BodyFormat, IngestError, IngestLimits};
use crate::ingest::{SourceReport, SourceState};
use crate::metrics::Metrics;
use crate::store::Store;

fn json_error(status: StatusCode, body: &IngestError) -> Response {
    (status, axum::Json(body)).into_response()
}

pub async fn post_events<S: Store + Clone>(
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
    let events = match events::parse_batch(&body, format, &state.limits) {
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
    let spooled = state.spool.bytes();
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
pub(crate) fn unavailable(e: &crate::seal::writer::Unavailable) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        axum::Json(json!({"error": "unavailable", "message": e.to_string()})),
    )
        .into_response()
}
