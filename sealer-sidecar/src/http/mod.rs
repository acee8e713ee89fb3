//! Stage 5, HTTP: the sealer's API. [`app`] builds the router, so tests can call it without
//! a socket; [`health_app`] is the probes alone (`--health-listen`).
//!
//! | method and path      | what                                                        | module |
//! |----------------------|-------------------------------------------------------------|--------|
//! | `POST /v1/events`    | ingest a batch (NDJSON or JSON array); 200 once durable     | [`ingest`] |
//! | `GET /v1/checkpoint` | the newest signed checkpoint (C2SP signed note)             | [`ops`] |
//! | `GET /verify`        | verify the whole store now; JSON report                     | [`ops`] |
//! | `GET /healthz`       | the process is alive                                        | here |
//! | `GET /readyz`        | ready to accept events and the store is healthy             | [`ops`] |
//! | `GET /metrics`       | Prometheus text format                                      | [`ops`] |
//! | `GET /v1/events`, `/v1/proof/*`, `/v1/stream`, `/v1/status` | the read API      | [`read`] |
//! | `GET /`, `/assets/*` | the live page                                               | [`page`] |
//!
//! The Kubernetes audit webhook has its own TLS listener and router ([`webhook`], [`tls`]);
//! [`auth`] checks bearer tokens by role; [`state`] is what every handler shares; [`error`]
//! renders every error answer.

pub mod auth;
pub mod body_buffers;
pub mod error;
pub mod ingest;
pub mod ops;
pub mod page;
pub mod read;
pub mod state;
pub mod tls;
pub mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use error::HttpError;
pub use state::AppState;

use crate::store::Store;

pub fn app<S: Store + Clone>(state: Arc<AppState<S>>) -> Router {
    Router::new()
        .route(
            "/v1/events",
            post(ingest::post_events::<S>).get(read::get_events::<S>),
        )
        .route("/v1/checkpoint", get(ops::get_checkpoint::<S>))
        .route("/verify", get(ops::get_verify::<S>))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ops::get_ready::<S>))
        .route("/readyz/ingest", get(ops::get_ready_ingest::<S>))
        .route("/metrics", get(ops::get_metrics::<S>))
        .route("/v1/proof/inclusion", get(read::get_inclusion::<S>))
        .route("/v1/proof/consistency", get(read::get_consistency::<S>))
        .route("/v1/stream", get(read::get_stream::<S>))
        .route("/v1/status", get(read::get_status::<S>))
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
        .route("/readyz", get(ops::get_ready::<S>))
        .route("/readyz/ingest", get(ops::get_ready_ingest::<S>))
        .with_state(state)
}
