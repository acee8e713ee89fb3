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
//! | 503    | `spool_full`, `unavailable` | not durable; the API server retries            |

use std::sync::Arc;

use auditlog::entry::EntryKind;
use auditlog::jcs;
use auditlog::k8s::{self, AuditEvent, Selection};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Serialize;
use serde_json::json;

use crate::http::AppState;
use crate::http::auth::{self, Role};
use crate::http::ingest::{spool_full, unavailable};
use crate::http::tls::ClientCertificate;
use crate::ingest::PreparedEvent;
use crate::metrics::Metrics;
use crate::store::Store;

/// What the webhook handler needs beside the shared state.
pub struct WebhookState<S> {
    pub app: Arc<AppState<S>>,
    pub selection: Selection,
    pub max_body_bytes: usize,
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

fn error(status: StatusCode, error: &str, message: String) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "message": message})),
    )
        .into_response()
}

/// A client certificate that chains to the client CA, or the webhook token.
#[allow(clippy::result_large_err)]
fn admit<S>(
    state: &WebhookState<S>,
    cert: ClientCertificate,
    headers: &HeaderMap,
) -> Result<(), Response> {
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

/// The canonical `event` of the entry for `event`. An object that has no canonical form
/// (an integer beyond 2^53) is kept as its SHA-256, like an oversized one, rather than
/// refusing the batch, which the API server would retry forever.
fn canonical_entry(event: &AuditEvent, selection: &Selection) -> Result<Vec<u8>, jcs::JcsError> {
    jcs::canonicalize(&k8s::entry_event(event, selection)).or_else(|_| {
        let hashed = Selection {
            max_object_bytes: 0,
            ..selection.clone()
        };
        jcs::canonicalize(&k8s::entry_event(event, &hashed))
    })
}

async fn post_audit<S: Store + Clone>(
    State(state): State<Arc<WebhookState<S>>>,
    Extension(cert): Extension<ClientCertificate>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let metrics = &state.app.metrics;
    if let Err(refused) = admit(&state, cert, &headers) {
        Metrics::add(&metrics.webhook_unauthenticated, 1);
        return refused;
    }
    let refuse = |status, code: &str, message: String| {
        Metrics::add(&metrics.batches_rejected_invalid, 1);
        error(status, code, message)
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("content type {content_type:?} is not accepted; send application/json"),
        );
    }
    if let Some(refused) = spool_full(&state.app) {
        return refused;
    }
    let Ok(_permit) = state.app.inflight.acquire().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let Ok(body) = axum::body::to_bytes(body, state.max_body_bytes).await else {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "request body exceeds {} bytes (--webhook-max-body-bytes); lower the API \
                 server's --audit-webhook-batch-max-size",
                state.max_body_bytes
            ),
        );
    };
    let list = match k8s::parse_event_list(&body) {
        Ok(list) => list,
        Err(e) => {
            return refuse(StatusCode::BAD_REQUEST, "invalid_event_list", e.to_string());
        }
    };
    let received = list.items.len() as u64;
    Metrics::add(&metrics.k8s_audit_received, received);
    let mut events = Vec::new();
    for (index, item) in list.items.iter().enumerate() {
        if !state.selection.selects(item) {
            continue;
        }
        let event_json = match canonical_entry(item, &state.selection) {
            Ok(json) => json,
            Err(e) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "invalid_event_list",
                    format!("items[{index}] (auditID {}): {e}", item.audit_id),
                );
            }
        };
        events.push(PreparedEvent {
            kind: EntryKind::K8sAudit,
            source: None,
            dropped_before: None,
            dedup_key: Some(k8s::dedup_key(item)),
            event_json: event_json.into(),
        });
    }
    let ignored = received - events.len() as u64;
    Metrics::add(&metrics.k8s_audit_ignored, ignored);
    if events.is_empty() {
        return axum::Json(Accepted {
            received,
            sealed: 0,
            duplicates: 0,
            ignored,
            first_seq: None,
            last_seq: None,
        })
        .into_response();
    }
    match state.app.writer.submit(events, None).await {
        Ok(ack) => axum::Json(Accepted {
            received,
            sealed: ack.sealed,
            duplicates: ack.duplicates,
            ignored,
            first_seq: ack.first_seq,
            last_seq: ack.last_seq,
        })
        .into_response(),
        Err(e) => unavailable(&e),
    }
}
