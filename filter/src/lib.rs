//! # filter: the ingress audit filter
//!
//! A proxy-wasm HTTP filter (ABI 0.2.1, Rust SDK `proxy-wasm` 0.2, target `wasm32-wasip1`)
//! that runs inside the Envoy or Istio ingress gateway and reports one access event per
//! request to the local sealer, which chains, signs and stores it (see `docs/log-format.md`).
//!
//! - Events follow the sealer's ingest schema ([`auditlog::event::HttpEvent`], OpenTelemetry
//!   names) and never contain credentials: only named headers are read, and secret query
//!   parameters are redacted.
//! - Each worker VM incarnation is its own source with sequence numbers 1, 2, 3, ...; batches
//!   are sent in order with `dispatch_http_call` and leave the buffer only on the sealer's 2xx,
//!   so loss shows up in the log as a `gap`.
//! - `fail_open` keeps traffic flowing while the sealer is away; `fail_closed` refuses
//!   requests it cannot audit.
//!
//! # Layout
//! - [`config`]: the plugin configuration (`docs/filter-config.md`).
//! - [`event`]: building the event from what was learned about a request.
//! - [`json_line`]: the same event written straight into its ingest line (the fast path).
//! - [`delivery`]: the bounded, ordered, retrying per-worker queue.
//! - [`pairs`]: reading the host's serialized header map in place.
//! - [`preformatted`]: the fast path, facts Envoy formatted natively (its `set_filter_state`
//!   filter and one CEL list), read in one host call each side.
//! - `plugin` (wasm only): the host glue; `host` (wasm only): the per-request host calls
//!   made without the SDK's copies.

pub mod config;
pub mod delivery;
pub mod event;
pub mod json_line;
pub mod pairs;
pub mod preformatted;

// The host glue; left out of test builds, so the unit tests also run compiled to wasm under a
// plain WASI runtime (`cargo xtask test` does), where no proxy-wasm host exists.
#[cfg(all(target_arch = "wasm32", not(test)))]
mod host;
#[cfg(all(target_arch = "wasm32", not(test)))]
mod plugin;
