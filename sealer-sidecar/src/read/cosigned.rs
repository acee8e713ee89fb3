//! Cosigned checkpoints in a store (C2SP tlog-cosignature): each witness's cosigned copy of a
//! checkpoint is its own write-once object, `witnessed/<size>-<signed at>-<witness key
//! ID>.note`. A reader gathers the copies of one checkpoint into one note that carries every
//! stored cosignature ([`gather`]), and counts the valid cosignatures of the witnesses it
//! trusts. `sealer verify --min-witnesses`, `sealer prove --witness` and the read API's
//! `cosigned=true` proofs read them this way.
//!
//! A copy counts only if the log's key signs it and it is the same checkpoint as the plain
//! one stored under the same size and time, which verification compares with the entries:
//! a cosignature then vouches for the log's tree, not for some other text.

use auditlog::cosignature::{CosignatureError, CosignatureVerifier};
use auditlog::head::LogHead;
use auditlog::layout;
use auditlog::note::{Note, NoteVerifier};

use crate::store::{Store, StoreError};

/// A cosigned checkpoint object, by its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignedRef {
    pub key: String,
    pub size: u64,
    pub unix_nanos: u64,
    /// The key ID of the witness that cosigned it.
    pub key_id: u32,
}

/// One checkpoint with the cosignatures stored for it.
#[derive(Clone, Debug)]
pub struct Cosigned {
    /// The checkpoint, as the log signed it.
    pub head: LogHead,
    /// The checkpoint with every stored cosignature line: what a bundle carries.
    pub note: Note,
    /// Valid cosignatures by the witnesses asked about: name and time (POSIX seconds).
    pub by: Vec<(String, u64)>,
}

/// What [`gather`] found for one checkpoint.
#[derive(Debug, Default)]
pub struct Gathered {
    /// The checkpoint, if any copy counts.
    pub cosigned: Option<Cosigned>,
    /// Copies or cosignatures that do not count: key and why. Evidence of tampering with
    /// `witnessed/` (or a witness whose key is not the one given).
    pub bad: Vec<(String, String)>,
}

/// The cosigned checkpoint objects of trees of at least `min_size` entries, grouped by
/// checkpoint, the newest checkpoint first.
pub async fn newest_first<S: Store>(
    store: &S,
    min_size: u64,
) -> Result<Vec<Vec<CosignedRef>>, StoreError> {
    let after = match min_size.checked_sub(1) {
        // Names sort by size: everything after the last possible name of `min_size - 1`.
        Some(below) => format!("{}{below:020}.", layout::WITNESSED),
        None => String::new(),
    };
    let mut refs: Vec<CosignedRef> = store
        .list_after(layout::WITNESSED, &after)
        .await?
        .into_iter()
        .filter_map(|o| {
            let (size, unix_nanos, key_id) = layout::parse_witnessed_key(&o.key)?;
            Some(CosignedRef {
                key: o.key,
                size,
                unix_nanos,
                key_id,
            })
        })
        .collect();
    refs.sort_by_key(|r| (r.size, r.unix_nanos, r.key_id));
    let mut groups: Vec<Vec<CosignedRef>> = Vec::new();
    for r in refs.into_iter().rev() {
        match groups.last_mut() {
            Some(g) if (g[0].size, g[0].unix_nanos) == (r.size, r.unix_nanos) => g.push(r),
            _ => groups.push(vec![r]),
        }
    }
    Ok(groups)
}

/// Read one checkpoint's cosigned copies (`group`, all of one size and time) and gather them
/// into one note; count the valid cosignatures of `witnesses`.
pub async fn gather<S: Store>(
    store: &S,
    log_key: &NoteVerifier,
    witnesses: &[CosignatureVerifier],
    group: &[CosignedRef],
) -> Result<Gathered, StoreError> {
    let Some(first) = group.first() else {
        return Ok(Gathered::default());
    };
    let plain_key = layout::checkpoint_key(first.size, first.unix_nanos);
    let plain = match store.get(&plain_key).await? {
        Some(bytes) => Note::parse(&String::from_utf8_lossy(&bytes)).ok(),
        None => None,
    };
    let mut out: Option<Cosigned> = None;
    let mut bad = Vec::new();
    for r in group {
        let Some(bytes) = store.get(&r.key).await? else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let copy = match (Note::parse(&text), LogHead::open(&text, log_key)) {
            (Ok(note), Ok(head)) => (note, head),
            (Err(e), _) => {
                bad.push((r.key.clone(), format!("not a signed note: {e}")));
                continue;
            }
            (_, Err(e)) => {
                bad.push((
                    r.key.clone(),
                    format!("not a checkpoint signed by the log's key: {e}"),
                ));
                continue;
            }
        };
        let (mut note, head) = copy;
        if head.key() != plain_key {
            bad.push((
                r.key.clone(),
                format!(
                    "holds the checkpoint of {} entries signed at {}, not the one its name says",
                    head.size, head.time
                ),
            ));
            continue;
        }
        if plain.as_ref().map(|p| &p.text) != Some(&note.text) {
            bad.push((
                r.key.clone(),
                format!(
                    "is not the checkpoint stored as {plain_key} (missing or different): a \
                     cosignature of another history"
                ),
            ));
            continue;
        }
        // Each copy on its own: a line that does not verify is reported against the copy
        // that holds it and left out, so it cannot cancel a valid cosignature elsewhere.
        for w in witnesses {
            match w.verify(&note) {
                Ok(_) | Err(CosignatureError::Missing { .. }) => {}
                Err(e) => {
                    bad.push((r.key.clone(), e.to_string()));
                    note.signatures
                        .retain(|sig| sig.name != w.name() || sig.key_id != w.key_id());
                }
            }
        }
        match &mut out {
            None => {
                out = Some(Cosigned {
                    head,
                    note,
                    by: Vec::new(),
                })
            }
            Some(c) => {
                if let Err(e) = c.note.merge(&note) {
                    bad.push((r.key.clone(), format!("cannot be gathered: {e}")));
                }
            }
        }
    }
    if let Some(c) = &mut out {
        for w in witnesses {
            if let Ok(at) = w.verify(&c.note) {
                c.by.push((w.name().to_owned(), at));
            }
        }
    }
    Ok(Gathered { cosigned: out, bad })
}

/// The newest cosigned checkpoint that covers entry `seq` (of `size` entries, if given) and
/// carries valid cosignatures by at least `required` (at least one) of `witnesses`; without
/// witnesses, the newest with any stored cosignature.
pub async fn newest_covering<S: Store>(
    store: &S,
    log_key: &NoteVerifier,
    witnesses: &[CosignatureVerifier],
    required: usize,
    seq: u64,
    size: Option<u64>,
) -> Result<Option<Cosigned>, StoreError> {
    // The smallest tree that covers `seq` has `seq + 1` entries.
    let Some(covering) = seq.checked_add(1) else {
        return Ok(None);
    };
    if size.is_some_and(|s| s < covering) {
        return Ok(None);
    }
    for group in newest_first(store, size.unwrap_or(covering)).await? {
        if size.is_some_and(|s| s != group[0].size) {
            continue;
        }
        let Some(c) = gather(store, log_key, witnesses, &group).await?.cosigned else {
            continue;
        };
        if c.head.size < covering {
            continue;
        }
        let enough = if witnesses.is_empty() {
            // The log's own signature and at least one more line.
            c.note.signatures.len() > 1
        } else {
            c.by.len() >= required.max(1)
        };
        if enough {
            return Ok(Some(c));
        }
    }
    Ok(None)
}
