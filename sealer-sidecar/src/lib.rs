//! # sealer: the audit log's writer, store and verifier
//!
//! The `sealer` binary runs beside an ingress gateway. It takes access events over HTTP on
//! loopback, seals them into the hash-chained, HMAC'd, Merkle-committed log defined by the
//! [`auditlog`] crate, acknowledges a batch only once it is durable in the write-ahead log,
//! stores finished segments write-once, and publishes Ed25519-signed C2SP checkpoints. On a
//! separate TLS listener it can also take the Kubernetes API server's audit webhook and seal
//! the changes to the resources that decide exposure. The same binary verifies a store
//! offline, proves entries and follows a log.
//!
//! # Layout
//!
//! The folders are the stages an event goes through, in order:
//!
//! | folder | stage | what happens there |
//! |---|---|---|
//! | [`ingest`] | 1. ingest | request bodies become [`ingest::PreparedEvent`]s (validated, canonical) |
//! | [`seal`] | 2. seal | the writer thread chains and MACs them into the write-ahead log, in group commits ([`seal::writer`], [`seal::wal`], [`seal::sources`]) |
//! | [`publish`] | 3. publish | the uploader stores closed segments and signs checkpoints; recovery rebuilds the state at start |
//! | [`store`] | (storage) | the write-once `Store` trait: a local directory, S3 with Object Lock, and a fault-injecting memory store for tests |
//! | [`read`] | 4. read | verification and export of a store, and the query index |
//! | [`http`] | 5. HTTP | the routes: ingest, the read API, the live page, probes, metrics; auth, TLS and the Kubernetes audit webhook |
//! | [`commands`] | 6. commands | the command line: `serve` wires the stages together; `verify`, `export`, `prove`, `tail`, ... |
//!
//! Beside them: [`config`] (the `serve` configuration from flags, environment and file),
//! [`keys`] (key files) and [`metrics`] (Prometheus metrics).
//!
//! Dependencies point one way: `ingest` ← `seal` ← `publish` → `read` → `store`; `http` uses
//! them all, and `commands` uses everything.
//!
//! **Where to start reading:** [`commands::serve::run`] wires a running sealer from start to
//! shutdown; [`seal::writer`] is the heart of the write path; [`read::verify`] is what an
//! auditor runs. The log format itself (entries, chain, tree, checkpoints, verification)
//! is in the [`auditlog`] crate and `docs/log-format.md`.

pub mod commands;
pub mod config;
pub mod http;
pub mod ingest;
pub mod keys;
pub mod metrics;
pub mod publish;
pub mod read;
pub mod seal;
pub mod store;

#[cfg(test)]
mod testing;
