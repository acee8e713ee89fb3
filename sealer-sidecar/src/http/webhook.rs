//! The Kubernetes audit webhook: `POST /v1/k8s/audit` on its own TLS listener.
//!
//! kube-apiserver's webhook backend (`--audit-webhook-config-file`) posts `audit.k8s.io/v1`
//! `EventList`s, in batch or blocking mode. The events about the selected resources and
//! stages ([`auditlog::k8s::Selection`]) are sealed as `k8s_audit` entries; the others are
//! counted and dropped. The answer is 200 only once the sealed entries are durable; any
//! other answer makes the API server retry, and a redelivered event (same `auditID` and
//! `stage`) is sealed once ([`crate::seal::sources`]).
//!
//! The listener is reached over the network, so it serves TLS only ([`crate::http::tls`]) and
//! admits a caller that presents a client certificate signed by `--webhook-client-ca`, or
//! one that sends the bearer token of `--webhook-token-file`. Nothing else is routed here:
//! ingest and reads stay on the loopback listener.
//!
//! | status | `error`                  | when                                              |
//! |--------|--------------------------|---------------------------------------------------|
//! | 200    |                          | sealed (or all duplicates, or nothing selected)   |
//! | 400    | `invalid_event_list`     | not an `audit.k8s.io/v1` `EventList`               |
//! | 401    | `unauthorized`           | no client certificate and no or a wrong token     |
//! | 403    | `forbidden`              | another role's token                              |
//! | 413    | `too_large`              | body over `--webhook-max-body-bytes`              |
//! | 415    | `unsupported_media_type` | not `application/json`                            |
//! | 503    | `spool_full`, `unavailable` | not durable (or not within `--webhook-deadline`); the API server retries |
//!
//! It answers fast or fails fast: a failed write-ahead log refuses at once, and events not
//! durable within `--webhook-deadline` are answered 503 with `Retry-After: 1`, so the API server's retry can reach a healthy
//! replica instead of waiting out its 30 s request timeout. If those events become durable
//! after all, the retry that reaches this sealer is a duplicate and sealed once.

use std::sync::Arc;

use auditlog::k8s::Selection;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Serialize;

use crate::http::auth::{self, Role};
use crate::http::ingest::{spool_full, unavailable};
use crate::http::tls::ClientCertificate;
use crate::http::{AppState, HttpError};
use crate::ingest::k8s::{self, PreparedList};
use crate::metrics::Metrics;
use crate::seal::writer::Ack;
use crate::store::Store;

/// What the webhook handler needs beside the shared state.
pub struct WebhookState<S> {
    pub app: Arc<AppState<S>>,
    pub selection: Selection,
    pub max_body_bytes: usize,
    /// See [`crate::config::WebhookConfig::deadline`].
    pub deadline: std::time::Duration,
}

/// The webhook listener's routes: the audit endpoint and a liveness probe.
pub fn router<S: Store + Clone>(state: Arc<WebhookState<S>>) -> Router {
    Router::new()
        .route("/v1/k8s/audit", post(post_audit::<S>))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// The answer to an accepted `EventList`.
#[derive(Debug, Serialize)]
struct Accepted {
    /// Events in the list.
    received: u64,
    /// Entries sealed for it.
    sealed: u64,
    /// Events sealed before (a redelivery), not sealed again.
    duplicates: u64,
    /// Events outside the selected resources and stages.
    ignored: u64,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
}

/// A client certificate that chains to the client CA, or the webhook token.
fn admit<S>(
    state: &WebhookState<S>,
    cert: ClientCertificate,
    headers: &HeaderMap,
) -> Result<(), HttpError> {
    if cert.0 {
        return Ok(());
    }
    let tokens = &state.app.tokens;
    if !tokens.has(Role::Webhook) {
        return Err(auth::refusal(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this endpoint needs a client certificate signed by the CA of --webhook-client-ca"
                .into(),
        ));
    }
    tokens.check(Role::Webhook, headers)
}

/// A 503 also closes the connection: the API server's retry opens a new one, which the
/// Service in front of the replicas may send to a healthy replica (an HTTP/1.1 keep-alive
/// connection would bring it back here).
async fn post_audit<S: Store + Clone>(
    state: State<Arc<WebhookState<S>>>,
    cert: Extension<ClientCertificate>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match seal_audit(state, cert, headers, body).await {
        Ok(answer) => answer,
        Err(e) => {
            let unavailable = e.status == StatusCode::SERVICE_UNAVAILABLE;
            let mut response = e.into_response();
            if unavailable {
                response.headers_mut().insert(
                    header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            response
        }
    }
}

async fn seal_audit<S: Store + Clone>(
    State(state): State<Arc<WebhookState<S>>>,
    Extension(cert): Extension<ClientCertificate>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let started = std::time::Instant::now();
    let metrics = &state.app.metrics;
    if let Err(refused) = admit(&state, cert, &headers) {
        Metrics::add(&metrics.webhook_unauthenticated, 1);
        return Err(refused);
    }
    let list = match read_list(&state, &headers, body).await {
        Ok(list) => list,
        Err(e) => {
            if e.status != StatusCode::SERVICE_UNAVAILABLE {
                Metrics::add(&metrics.batches_rejected_invalid, 1);
            }
            return Err(e);
        }
    };
    Metrics::add(&metrics.k8s_audit_received, list.received);
    Metrics::add(&metrics.k8s_audit_ignored, list.ignored());
    let (received, ignored) = (list.received, list.ignored());
    let ack = if list.events.is_empty() {
        Ack::default()
    } else if metrics.health.commit_stalled() {
        // Queue nothing more behind a stalled disk: every retry would add a copy.
        return Err(HttpError::unavailable(
            "unavailable",
            "the write-ahead log's disk has been stalled for over 2 s; retry (another \
             replica, through the Service)",
        )
        .retry_after(1));
    } else {
        let durable = state.app.writer.submit(list.events, None);
        match tokio::time::timeout(state.deadline, durable).await {
            Ok(ack) => ack.map_err(|e| unavailable(&e))?,
            Err(_) => {
                return Err(HttpError::unavailable(
                    "unavailable",
                    format!(
                        "the events are not durable within {:?} (--webhook-deadline): the \
                         disk or the writer is stalled; retry",
                        state.deadline
                    ),
                )
                .retry_after(1));
            }
        }
    };
    Metrics::observe(&metrics.webhook_seconds, started.elapsed());
    Ok(axum::Json(Accepted {
        received,
        sealed: ack.sealed,
        duplicates: ack.duplicates,
        ignored,
        first_seq: ack.first_seq,
        last_seq: ack.last_seq,
    })
    .into_response())
}

/// The request's `EventList`, prepared, or the answer to send.
async fn read_list<S: Store>(
    state: &WebhookState<S>,
    headers: &HeaderMap,
    body: Body,
) -> Result<PreparedList, HttpError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("content type {content_type:?} is not accepted; send application/json"),
        ));
    }
    spool_full(&state.app)?;
    let Ok(_permit) = state.app.inflight.acquire().await else {
        return Err(HttpError::unavailable(
            "unavailable",
            "the sealer is shutting down",
        ));
    };
    let body = axum::body::to_bytes(body, state.max_body_bytes)
        .await
        .map_err(|_| {
            HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "request body exceeds {} bytes (--webhook-max-body-bytes); lower the API \
                     server's --audit-webhook-batch-max-size",
                    state.max_body_bytes
                ),
            )
        })?;
    k8s::prepare(&body, &state.selection)
        .map_err(|e| HttpError::bad_request("invalid_event_list", e.to_string()))
}
