//! The witness's decisions, C2SP `tlog-witness`, without I/O.
//!
//! A log submits each new checkpoint with `POST <prefix>/add-checkpoint`: a body of
//!
//! ```text
//! old <size of the checkpoint the witness last cosigned for this log>
//! <zero or more base64 hashes: the RFC 6962 consistency proof from that size>
//!
//! <the signed checkpoint>
//! ```
//!
//! The witness keeps, per log, the latest checkpoint it cosigned. It cosigns the new one only
//! if it is signed by the log's key and provably extends that one; otherwise it answers with
//! the spec's status: 400 (malformed, or an old size above the new size), 403 (no valid
//! signature by the log), 404 (unknown log), 409 (the old size is not the one it holds, with
//! that size as the body; or the same size with another root: a fork), 422 (the consistency
//! proof does not verify).
//!
//! [`decide`] is the whole rule. The caller (the `sealer witness` server) looks up the log,
//! holds its lock across [`decide`] and persisting the new state, so two submissions cannot
//! interleave and roll the state back.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::head::LogHead;
use crate::merkle::{self, Hash};
use crate::note::{Note, NoteVerifier};

/// At most this many consistency proof lines (the spec's limit).
pub const MAX_PROOF_LINES: usize = 63;

/// A parsed `add-checkpoint` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old_size: u64,
    pub proof: Vec<Hash>,
    /// The signed checkpoint, as sent.
    pub checkpoint: String,
}

/// A refusal: the HTTP status and the body to answer with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// The answer's body (`text/x.tlog.size` for a 409 size mismatch, else plain text).
    pub body: String,
    /// Whether the submission is evidence against the log (a fork or an inconsistent
    /// history, validly signed): the witness keeps it.
    pub evidence: bool,
}

impl Refusal {
    fn new(status: u16, body: impl Into<String>) -> Refusal {
        Refusal {
            status,
            body: body.into(),
            evidence: false,
        }
    }

    fn evidence(status: u16, body: impl Into<String>) -> Refusal {
        Refusal {
            status,
            body: body.into(),
            evidence: true,
        }
    }

    /// The `Content-Type` of the answer.
    #[must_use]
    pub fn content_type(&self) -> &'static str {
        if self.status == 409 && !self.evidence {
            "text/x.tlog.size"
        } else {
            "text/plain; charset=utf-8"
        }
    }
}

/// Parse an `add-checkpoint` body.
///
/// # Errors
/// A 400 refusal naming what is malformed.
pub fn parse_request(body: &str) -> Result<AddCheckpoint, Refusal> {
    let bad = |what: &str| Refusal::new(400, format!("malformed add-checkpoint request: {what}\n"));
    let (head, checkpoint) = body
        .split_once("\n\n")
        .ok_or_else(|| bad("no empty line before the checkpoint"))?;
    let mut lines = head.split('\n');
    let old = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .ok_or_else(|| bad("the first line is not `old <size>`"))?;
    if old.is_empty()
        || (old.len() > 1 && old.starts_with('0'))
        || !old.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad("the old size is not a decimal without leading zeros"));
    }
    let old_size: u64 = old.parse().map_err(|_| bad("the old size is too large"))?;
    let mut proof = Vec::new();
    for line in lines {
        if proof.len() == MAX_PROOF_LINES {
            return Err(bad("more than 63 consistency proof lines"));
        }
        let hash = STANDARD
            .decode(line)
            .ok()
            .and_then(|b| Hash::try_from(b).ok())
            .ok_or_else(|| bad("a consistency proof line is not a base64 hash"))?;
        proof.push(hash);
    }
    Ok(AddCheckpoint {
        old_size,
        proof,
        checkpoint: checkpoint.to_owned(),
    })
}

/// The request body for submitting `checkpoint` with the proof from `old_size`.
#[must_use]
pub fn request_body(old_size: u64, proof: &[Hash], checkpoint: &str) -> String {
    let mut body = format!("old {old_size}\n");
    for h in proof {
        body.push_str(&STANDARD.encode(h));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(checkpoint);
    body
}

/// What the witness holds for a log: the latest checkpoint it cosigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosigned {
    pub size: u64,
    pub root: Hash,
    /// The signed checkpoint, as submitted.
    pub checkpoint: String,
}

/// An accepted submission: the new state to persist, and the note body to cosign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub state: Cosigned,
    pub body: String,
}

/// Decide on a submission for the log of `log_key`, given what the witness holds for it.
///
/// # Errors
/// The refusal to answer with.
pub fn decide(
    held: Option<&Cosigned>,
    request: &AddCheckpoint,
    log_key: &NoteVerifier,
) -> Result<Accepted, Refusal> {
    let note = Note::parse(&request.checkpoint)
        .map_err(|e| Refusal::new(400, format!("the checkpoint is not a signed note: {e}\n")))?;
    if note.verify(log_key).is_err() {
        return Err(Refusal::new(
            403,
            format!("no valid signature by the log's key {}\n", log_key.name()),
        ));
    }
    let head = LogHead::open(&request.checkpoint, log_key)
        .map_err(|e| Refusal::new(400, format!("not a checkpoint of this log: {e}\n")))?;
    if request.old_size > head.size {
        return Err(Refusal::new(
            400,
            format!(
                "old size {} is above the checkpoint's size {}\n",
                request.old_size, head.size
            ),
        ));
    }
    let held_size = held.map_or(0, |c| c.size);
    if request.old_size != held_size {
        return Err(Refusal::new(409, format!("{held_size}\n")));
    }
    match held {
        Some(c) if c.size == head.size => {
            if c.root != head.root {
                return Err(Refusal::evidence(
                    409,
                    format!(
                        "fork: the checkpoint of {} entries has another root than the one this \
                         witness cosigned\n",
                        head.size
                    ),
                ));
            }
        }
        Some(c) => {
            if merkle::verify_consistency(c.size, head.size, &c.root, &head.root, &request.proof)
                .is_err()
            {
                return Err(Refusal::evidence(
                    422,
                    format!(
                        "the consistency proof from {} to {} entries does not verify: the log \
                         is not an extension of the checkpoint this witness cosigned\n",
                        c.size, head.size
                    ),
                ));
            }
        }
        None => {
            if !request.proof.is_empty() {
                return Err(Refusal::new(422, "the proof from size 0 must be empty\n"));
            }
        }
    }
    Ok(Accepted {
        state: Cosigned {
            size: head.size,
            root: head.root,
            checkpoint: request.checkpoint.clone(),
        },
        body: note.text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;
    use crate::note::NoteSigner;
    use crate::timestamp::Timestamp;

    const ORIGIN: &str = "example.com/witnessed";

    fn signer() -> NoteSigner {
        NoteSigner::from_seed(ORIGIN, [3; 32]).unwrap()
    }

    fn leaves(n: usize, salt: &str) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("{salt}{i}").as_bytes()))
            .collect()
    }

    fn checkpoint(leaves: &[Hash]) -> String {
        LogHead {
            origin: ORIGIN.into(),
            size: leaves.len() as u64,
            root: merkle::root_of(leaves),
            chain: [0; 32],
            time: Timestamp::from_unix_nanos(1_800_000_000_000_000_000),
        }
        .sign(&signer())
        .unwrap()
    }

    fn submit(
        held: Option<&Cosigned>,
        old: u64,
        proof: Vec<Hash>,
        cp: String,
    ) -> Result<Accepted, Refusal> {
        let body = request_body(old, &proof, &cp);
        let request = parse_request(&body).unwrap();
        assert_eq!(request.checkpoint, cp);
        decide(held, &request, &signer().verifier())
    }

    #[test]
    fn a_log_that_grows_is_cosigned_and_a_fork_or_rollback_is_refused() {
        let all = leaves(10, "e");
        let first = submit(None, 0, vec![], checkpoint(&all[..4])).unwrap();
        assert_eq!(first.state.size, 4);
        let proof = merkle::consistency_proof(&all, 4).unwrap();
        let second = submit(Some(&first.state), 4, proof, checkpoint(&all)).unwrap();
        assert_eq!(second.state.size, 10);

        // Rollback: an older checkpoint, from the size it actually extends.
        let r = submit(Some(&second.state), 0, vec![], checkpoint(&all[..4])).unwrap_err();
        assert_eq!(
            (r.status, r.body.as_str(), r.content_type()),
            (409, "10\n", "text/x.tlog.size")
        );
        // A fork at the same size: another history, validly signed.
        let other = leaves(10, "forged");
        let r = submit(Some(&second.state), 10, vec![], checkpoint(&other)).unwrap_err();
        assert!(r.status == 409 && r.evidence, "{r:?}");
        // A fork that claims to extend the held checkpoint.
        let longer = leaves(12, "forged");
        let bogus = merkle::consistency_proof(&longer, 10).unwrap();
        let r = submit(Some(&second.state), 10, bogus, checkpoint(&longer)).unwrap_err();
        assert!(r.status == 422 && r.evidence, "{r:?}");
        // Old size above the new size; a checkpoint signed by another key.
        let r = submit(Some(&second.state), 11, vec![], checkpoint(&all)).unwrap_err();
        assert_eq!(r.status, 400);
        let stranger = NoteSigner::from_seed(ORIGIN, [9; 32]).unwrap();
        let head = LogHead::open(&checkpoint(&all), &signer().verifier()).unwrap();
        let foreign = head.sign(&stranger).unwrap();
        let r = submit(Some(&second.state), 10, vec![], foreign).unwrap_err();
        assert_eq!(r.status, 403);
    }

    #[test]
    fn malformed_requests_are_400() {
        for body in [
            "old 01\n\nx\n",
            "old -1\n\nx\n",
            "new 1\n\nx\n",
            "old 1\nnot base64!\n\nx\n",
            "old 1\n",
        ] {
            assert_eq!(parse_request(body).unwrap_err().status, 400, "{body:?}");
        }
        let many = format!(
            "old 1\n{}\nx\n",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n".repeat(64)
        );
        assert_eq!(parse_request(&many).unwrap_err().status, 400);
    }
}
