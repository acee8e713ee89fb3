//! # sealer: the audit log's writer, store and verifier
//!
//! The `sealer` binary runs beside an ingress gateway. It takes access events over HTTP on
//! loopback, seals them into the hash-chained, HMAC'd, Merkle-committed log defined by the
//! [`auditlog`] crate, acknowledges a batch only once it is durable in the write-ahead log,
//! stores finished segments write-once, and publishes Ed25519-signed C2SP checkpoints. On a
//! separate TLS listener it can also take the Kubernetes API server's audit webhook and seal
//! the changes to the resources that decide exposure ([`webhook`]). The same binary verifies a
//! store offline.
//!
//! # Layout
//! - [`cli`]: the command line (`serve`, `verify`, `keygen`, `export`, `checkpoint`).
//! - [`config`]: `serve` configuration from flags, environment and file.
//! - [`server`]: wiring of `serve`: recovery, writer, uploader, HTTP, shutdown.
//! - [`api`]: the HTTP API; [`read_api`]: its read side (query, proofs, live stream);
//!   [`page`]: the live page at `/`.
//! - [`webhook`]: the Kubernetes audit webhook, on its own TLS listener ([`tls`]).
//! - [`auth`]: bearer tokens by role.
//! - [`ingest`]: parsing and validating ingest bodies.
//! - [`writer`]: the thread that seals batches into the WAL with group commit.
//! - [`wal`]: the write-ahead log files.
//! - [`sources`]: per-source sequence numbers, gaps and replays.
//! - [`uploader`]: stores segments and publishes signed checkpoints.
//! - [`recovery`]: rebuilds state from the store and the WAL at start.
//! - [`store`]: the write-once storage trait and its implementations.
//! - [`audit`]: verification and export over a store.
//! - [`index`]: the query index (SQLite and the tree's levels), derived from the store.
//! - [`keys`]: key files.
//! - [`prove`]: `sealer prove`, checking one entry's inclusion proof offline.
//! - [`tail`]: `sealer tail`, following new entries from a sealer or a store.
//! - [`http_client`]: the little HTTP client of the commands that call a sealer.
//! - [`metrics`]: Prometheus metrics.

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod http_client;
pub mod index;
pub mod ingest;
pub mod keys;
pub mod metrics;
pub mod page;
pub mod prove;
pub mod read_api;
pub mod recovery;
pub mod server;
pub mod sources;
pub mod store;
pub mod tail;
pub mod tls;
pub mod uploader;
pub mod wal;
pub mod webhook;
pub mod writer;
