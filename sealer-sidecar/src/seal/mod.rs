//! Stage 2, seal: prepared events become durable, chained, MAC'd records in the write-ahead
//! log, with group commit.
//!
//! - [`writer`]: the thread that seals groups of batches and answers each once durable.
//! - [`step`]: the seal step itself, a pure function of the log's state and a group.
//! - [`sources`]: per-source sequence numbers (gaps, replays) and liveness (ends).
//! - [`wal`]: the write-ahead log files.
//! - [`spool`]: bytes sealed and not yet stored, which bounds ingest.

pub mod sources;
pub mod spool;
pub mod step;
pub mod wal;
pub mod writer;
