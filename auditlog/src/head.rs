//! The log head: what a checkpoint of this log says, beyond the C2SP fields.
//!
//! A checkpoint body of this log is a C2SP `tlog-checkpoint` with two extension lines:
//!
//! ```text
//! <origin>
//! <tree size>
//! <base64 Merkle root>
//! chain <64 hex: chain value of entry size-1, or the genesis value when size is 0>
//! time <RFC 3339 UTC with nanoseconds: when the sealer signed it>
//! ```
//!
//! The time line makes a checkpoint published on a schedule with no new entries distinct,
//! so silence is on the record; the chain line ties the signature to the hash chain too.

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::merkle::Hash;
use crate::note::{NoteSigner, NoteVerifier};
use crate::timestamp::Timestamp;

/// The state of a log that a checkpoint commits to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogHead {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    pub chain: Hash,
    pub time: Timestamp,
}

/// Why a checkpoint is not a valid head of this log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("checkpoint has no valid \"{0}\" extension line")]
    MissingExtension(&'static str),
}

impl LogHead {
    /// The C2SP checkpoint for this head.
    pub fn to_checkpoint(&self) -> Checkpoint {
        Checkpoint {
            origin: self.origin.clone(),
            size: self.size,
            root: self.root,
            extensions: vec![
                format!("chain {}", hex::encode(self.chain)),
                format!("time {}", self.time),
            ],
        }
    }

    /// Sign this head as a C2SP signed note.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, HeadError> {
        Ok(self.to_checkpoint().sign(signer)?)
    }

    /// Verify a signed checkpoint of the log named by the verifier key and read its head.
    pub fn open(signed: &str, verifier: &NoteVerifier) -> Result<LogHead, HeadError> {
        let cp = Checkpoint::open(signed, verifier, Some(verifier.name()))?;
        Self::from_checkpoint(cp)
    }

    /// Read the extension lines of an already verified checkpoint.
    pub fn from_checkpoint(cp: Checkpoint) -> Result<LogHead, HeadError> {
        let mut chain = None;
        let mut time = None;
        for line in &cp.extensions {
            if let Some(h) = line.strip_prefix("chain ") {
                chain = hex::decode(h).ok().and_then(|v| <Hash>::try_from(v).ok());
            } else if let Some(t) = line.strip_prefix("time ") {
                time = Timestamp::parse(t).ok();
            }
        }
        Ok(LogHead {
            origin: cp.origin,
            size: cp.size,
            root: cp.root,
            chain: chain.ok_or(HeadError::MissingExtension("chain"))?,
            time: time.ok_or(HeadError::MissingExtension("time"))?,
        })
    }

    /// The store key under which this head's checkpoint is written.
    pub fn key(&self) -> String {
        crate::layout::checkpoint_key(self.size, self.time.unix_nanos().max(0) as u64)
    }
}
