//! Stage 4, read: what the store holds, checked and made queryable.
//!
//! - [`stored_log`]: one way to read a log in any store (checkpoints, segments, origin).
//! - [`verify`]: verification and export of a whole store.
//! - [`checked_segments`]: segments read and checked in parallel, handed over in log order.
//! - [`cosigned`]: witnesses' cosigned checkpoints, gathered per checkpoint.
//! - [`proofs`]: inclusion and consistency proofs from the store alone (tiles, segments).
//! - [`tiles`]: the tree's tiles in the store: roots, frontiers and proofs from them.
//! - [`head`]: the stored head, the value the uploader publishes and the rest watches.
//! - [`index`]: the query index (SQLite and the tree's levels), derived from the store.

pub mod checked_segments;
pub mod cosigned;
pub mod head;
pub mod index;
pub mod proofs;
pub mod stored_log;
pub mod tiles;
pub mod verify;

pub use stored_log::StoredLog;
