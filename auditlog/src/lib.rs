//! # auditlog: the sealed audit log format
//!
//! This crate is the specification of the ingress audit log in code: what an entry is, how
//! entries are chained, authenticated and committed to, how checkpoints are signed, and how a
//! store is verified. It does no I/O and depends on no runtime, network or cloud crate, so the
//! sealer, the offline verifier and any future verifier share one implementation.
//!
//! Standards followed:
//! - entries are serialized with RFC 8785 JSON canonicalization ([`jcs`]);
//! - every entry is a leaf of an RFC 6962 / RFC 9162 Merkle tree ([`merkle`]);
//! - checkpoints are C2SP `tlog-checkpoint` bodies ([`checkpoint`]) inside C2SP `signed-note`
//!   envelopes signed with Ed25519 ([`note`]);
//! - the tree's hashes are stored as C2SP `tlog-tiles` hash tiles ([`tiles`]).
//!
//! The byte-level format is documented in `docs/log-format.md`, with test vectors that the
//! tests in this crate check.
//!
//! # Layout
//! - [`timestamp`]: RFC 3339 UTC timestamps with nanoseconds.
//! - [`jcs`]: RFC 8785 canonical JSON.
//! - [`json_scan`]: a validating scan of a JSON object's top-level members.
//! - [`merkle`]: RFC 6962 tree hashing, incremental frontier, inclusion and consistency proofs.
//! - [`subtrees`]: the same proofs from stored tree levels, in O(log² n) node reads.
//! - [`tiles`]: the tree in the store as C2SP tlog-tiles hash tiles.
//! - [`note`]: C2SP signed notes and Ed25519 note keys.
//! - [`checkpoint`]: C2SP tlog-checkpoint bodies.
//! - [`cosignature`]: witness cosignatures, C2SP tlog-cosignature (Ed25519 `cosignature/v1`).
//! - [`event`]: the ingest schema of access events, validated before sealing.
//! - [`k8s`]: Kubernetes audit events (`audit.k8s.io/v1`): which are sealed, what is kept.
//! - [`entry`]: entry kinds and their canonical bytes.
//! - [`chain`]: the hash chain and the per-entry HMAC.
//! - `short_hash`: SHA-256 and HMAC of the fixed-length messages hashed per entry.
//! - [`record`]: one sealed record, one line of a segment file.
//! - [`seal`]: the writer's state machine (entry → record).
//! - [`head`]: what this log's checkpoints carry (size, root, chain head, time).
//! - [`layout`]: object names in a store.
//! - [`verify`]: verification of a whole store, without I/O.
//! - [`query`]: the fields a query filters entries on, and the filter.
//! - [`witness`]: a witness's decisions on submitted checkpoints (C2SP tlog-witness).

#![forbid(unsafe_code)]
pub mod chain;
pub mod checkpoint;
pub mod cosignature;
pub mod entry;
pub mod event;
pub mod head;
pub mod jcs;
pub mod json_scan;
pub mod k8s;
pub mod layout;
pub mod merkle;
pub mod note;
pub mod query;
pub mod record;
pub mod seal;
mod short_hash;
pub mod subtrees;
pub mod tiles;
pub mod timestamp;
pub mod verify;
pub mod witness;
