//! The operator's endpoints: the newest checkpoint, verification on demand, readiness and
//! metrics.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::http::auth::Role;
use crate::http::{AppState, HttpError};
use crate::read::verify::{self, VerifyOptions};
use crate::store::Store;

pub async fn get_checkpoint<S: Store + Clone>(
    State(state): State<Arc<AppState<S>>>,
) -> Result<Response, HttpError> {
    let checkpoint = state.head.borrow().checkpoint.clone();
    let text = checkpoint.ok_or_else(|| {
        HttpError::unavailable("no_checkpoint", "no checkpoint published yet").retry_after(1)
    })?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_string(),
    )
        .into_response())
}

pub async fn get_verify<S: Store + Clone>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    state.tokens.check(Role::Read, &headers)?;
    let _one_at_a_time = state.verify_lock.lock().await;
    // Also against the last checkpoint this sealer published, which catches a rollback.
    let trusted = tokio::fs::read_to_string(&state.last_checkpoint_file)
        .await
        .ok()
        .map(|text| (state.last_checkpoint_file.display().to_string(), text));
    let options = VerifyOptions {
        witnesses: Vec::new(),
        min_witnesses: 0,
        cosigned_max_age: None,
        incremental: false,
        mac_key: Some(state.mac_key.clone()),
        trusted,
        progress: false,
        storage_checks: true,
        min_retention_days: None,
    };
    let report = verify::verify(&state.store, &state.verifier, &options)
        .await
        .map_err(|e| HttpError::unavailable("store_unreadable", e.to_string()))?;
    *state.last_verification.write().await = Some(json!({
        "at": auditlog::timestamp::Timestamp::now().to_string(),
        "ok": report.ok,
        "problems": report.problem_count,
        "size": report.entries,
    }));
    Ok(axum::Json(report).into_response())
}

pub async fn get_ready<S: Store + Clone>(State(state): State<Arc<AppState<S>>>) -> Response {
    let m = &state.metrics;
    let ready = m.is_ready();
    let body = json!({
        "ready": ready,
        "writer_failed": m.health.writer_failed.load(Relaxed),
        "wal_healthy": m.health.wal_healthy.load(Relaxed),
        "store_healthy": m.health.store_healthy.load(Relaxed),
        "integrity_alarms": m.integrity_alarms.get(),
        "log_size": m.log_size.get(),
        "checkpoint_size": state.head.borrow().size,
        "upload_lag_entries": m.upload_lag(),
        "spool_bytes": state.spool.bytes(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// `GET /readyz/ingest`: 200 while events sent now would be made durable (the sealer has
/// started, its writer and write-ahead log are healthy, no commit has been waiting on the
/// disk for more than [`crate::metrics::COMMIT_STALLED`], its spool has room), even when the
/// store is down: the readiness a load balancer or a Service needs to take a dead or stalled
/// replica out without also taking every replica out during a store outage (the write-ahead
/// log keeps the entries until the store is back).
pub async fn get_ready_ingest<S: Store + Clone>(State(state): State<Arc<AppState<S>>>) -> Response {
    let h = &state.metrics.health;
    let spool_full = state.spool.bytes() >= state.spool_max_bytes;
    let wal_stalled = h.commit_stalled();
    let ready = h.ready.load(Relaxed)
        && !h.writer_failed.load(Relaxed)
        && h.wal_healthy.load(Relaxed)
        && !wal_stalled
        && !spool_full;
    let body = json!({
        "ready": ready,
        "writer_failed": h.writer_failed.load(Relaxed),
        "wal_healthy": h.wal_healthy.load(Relaxed),
        "wal_stalled": wal_stalled,
        "spool_full": spool_full,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

pub async fn get_metrics<S: Store + Clone>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    state.tokens.check(Role::Read, &headers)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response())
}
