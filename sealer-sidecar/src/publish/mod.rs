//! Stage 3, publish: closed segments go to the store, each followed by a signed checkpoint;
//! at start, the state to resume from is recovered from the store and the WAL.
//!
//! - [`uploader`]: stores segments in order and publishes checkpoints.
//! - [`tiles`]: the tree's tiles, stored before each checkpoint.
//! - [`witnesses`]: asks witnesses to cosign each checkpoint, and stores their cosignatures.
//! - [`recovery`]: rebuilds the writer's and the uploader's state at start.

pub mod recovery;
pub mod tiles;
pub mod uploader;
pub mod witnesses;
