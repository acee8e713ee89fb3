//! What every handler shares: [`AppState`].

use std::sync::Arc;

use auditlog::chain::MacKey;
use auditlog::note::NoteVerifier;
use tokio::sync::Semaphore;

use crate::http::auth::Tokens;
use crate::ingest::events::IngestLimits;
use crate::metrics::Metrics;
use crate::read::head::HeadWatch;
use crate::read::index::IndexReader;
use crate::seal::spool::Spool;
use crate::seal::writer::{LiveSender, WriterHandle};

/// What the handlers share.
pub struct AppState<S> {
    /// Turns true when the sealer shuts down: long-lived answers (the live stream) end then,
    /// so the graceful shutdown does not wait for them.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    pub writer: WriterHandle,
    pub store: S,
    pub verifier: NoteVerifier,
    pub mac_key: MacKey,
    pub metrics: Arc<Metrics>,
    /// What the store holds under its newest checkpoint (the uploader publishes it).
    pub head: HeadWatch,
    /// Bytes sealed and not yet stored.
    pub spool: Spool,
    pub limits: IngestLimits,
    pub max_body_bytes: usize,
    /// Buffers of earlier request bodies, read into again.
    pub body_buffers: crate::http::body_buffers::BodyBuffers,
    /// Bounds the batches parsed or waiting for the disk at once.
    pub inflight: Semaphore,
    /// Above this many spooled bytes (sealed, not yet stored), batches get 503.
    pub spool_max_bytes: u64,
    /// Bearer tokens by role ([`crate::http::auth`]).
    pub tokens: Tokens,
    /// The local copy of the newest checkpoint this sealer stored.
    pub last_checkpoint_file: std::path::PathBuf,
    /// Held by a verification, and by the uploader between storing a segment and its
    /// checkpoint, so `/verify` never sees a segment whose checkpoint is still being written.
    pub verify_lock: Arc<tokio::sync::Mutex<()>>,
    /// The query index (entries covered by stored checkpoints); `None` with `--index false`.
    pub index: Option<Arc<IndexReader>>,
    /// Entries as they are committed, for `GET /v1/stream`.
    pub live: LiveSender,
    /// When the last `GET /verify` ran and what it found, for the page.
    pub last_verification: tokio::sync::RwLock<Option<serde_json::Value>>,
    /// Each configured witness: what it last cosigned, or why it did not.
    pub witnesses: crate::publish::witnesses::Statuses,
    /// Their public keys: `cosigned=true` proofs count their valid cosignatures.
    pub witness_keys: Vec<auditlog::cosignature::CosignatureVerifier>,
}
