//! `sealer prove`: check that one entry is in the log, with nothing but the public key.
//!
//! The input is an inclusion bundle, as `GET /v1/proof/inclusion` answers it: the entry's
//! canonical JSON, its position, the tree size, the audit path, and the signed checkpoint of
//! that size. `--store` makes it from the store alone: the entry from its segment, the audit
//! path from the tiles (c2sp.org/tlog-tiles), no sealer and no index. `--url` fetches it from
//! a sealer. `--save` keeps the bundle either way; `--bundle` reads one handed over, for
//! example by an operator to an auditor. Checks, in order: the checkpoint's
//! signature with the public key, that it is of the bundle's tree size, that the entry
//! says it is at the bundle's position, and the audit path from the entry's leaf hash to the
//! checkpoint's root (RFC 9162 2.1.3.2). The format is in `docs/log-format.md`.
//!
//! With `--witness` keys, the bundle's checkpoint must also carry their valid cosignatures
//! (C2SP tlog-cosignature), at least `--min-witnesses` of them; `--store` and `--url` then
//! make the bundle against the newest cosigned checkpoint that covers the entry.
//!
//! Exit codes: 0 the entry is in the log; 1 a check failed; 2 the command could not run.

use std::path::PathBuf;

use anyhow::{Context, bail};
use auditlog::cosignature::CosignatureVerifier;
use auditlog::head::LogHead;
use auditlog::merkle::{self, Hash};
use auditlog::note::{Note, NoteVerifier};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::commands::args::{S3Args, open_logs};
use crate::commands::{EXIT_OK, EXIT_TAMPERED};
use crate::keys;
use crate::read::{StoredLog, cosigned, proofs};
use crate::store::Store;

#[derive(clap::Args, Debug)]
pub struct ProveArgs {
    /// An inclusion bundle (JSON, as `GET /v1/proof/inclusion` answers).
    #[arg(long, conflicts_with_all = ["url", "store", "seq", "size"])]
    bundle: Option<PathBuf>,
    /// Make the bundle from this store (a directory, file://PATH or s3://BUCKET/PREFIX/LOG):
    /// the entry from its segment, the proof from the tiles.
    #[arg(long, requires = "seq", conflicts_with = "url")]
    store: Option<String>,
    /// Fetch the bundle from this sealer (http://HOST:PORT).
    #[arg(long, requires = "seq")]
    url: Option<String>,
    /// With --store or --url: the entry's position.
    #[arg(long)]
    seq: Option<u64>,
    /// With --store or --url: prove against the stored checkpoint of this many entries
    /// [default: the newest].
    #[arg(long, conflicts_with = "bundle")]
    size: Option<u64>,
    /// With --url: file holding the sealer's read token.
    #[arg(long, requires = "url", conflicts_with = "bundle")]
    read_token_file: Option<PathBuf>,
    /// With --store or --url: also write the bundle here.
    #[arg(long, conflicts_with = "bundle")]
    save: Option<PathBuf>,
    #[command(flatten)]
    s3: S3Args,
    /// The log's public key (signing.pub).
    #[arg(long)]
    public_key: PathBuf,
    /// A witness whose cosignature counts: its public key (witness.pub, or the key string).
    /// Repeat for several. With --store or --url, the bundle is made against the newest
    /// cosigned checkpoint that covers the entry.
    #[arg(long = "witness")]
    witnesses: Vec<String>,
    /// Fail unless the bundle's checkpoint carries valid cosignatures by at least N of the
    /// --witness keys [default: 1 when --witness is given].
    #[arg(long, requires = "witnesses")]
    min_witnesses: Option<usize>,
}

/// An inclusion proof bundle.
#[derive(Debug, Deserialize, Serialize)]
pub struct Bundle {
    pub seq: u64,
    pub tree_size: u64,
    /// The entry's canonical JSON: the leaf data.
    pub entry: String,
    /// Base64 hashes, deepest first.
    pub proof: Vec<String>,
    /// The signed checkpoint (C2SP signed note) of `tree_size` entries.
    pub checkpoint: String,
}

/// Why a bundle does not prove its entry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofFailure {
    #[error("the checkpoint does not verify with the public key: {0}")]
    Checkpoint(String),
    #[error("the checkpoint is of {checkpoint} entries, the proof of {bundle}")]
    SizeMismatch { checkpoint: u64, bundle: u64 },
    #[error("the entry says it is at position {entry:?}, the bundle says {bundle}")]
    SeqMismatch { entry: Option<u64>, bundle: u64 },
    #[error("a proof hash is not 32 bytes of base64")]
    BadHash,
    #[error("the audit path does not lead from the entry to the checkpoint's root: {0}")]
    Path(String),
    #[error(
        "the checkpoint carries {found} of the {required} required witness cosignatures; \
         missing: {missing}"
    )]
    Cosignatures {
        found: usize,
        required: usize,
        missing: String,
    },
}

/// The valid cosignatures of `witnesses` on the bundle's checkpoint (name, POSIX seconds);
/// fails unless there are at least `required`.
pub fn check_cosigned(
    bundle: &Bundle,
    witnesses: &[CosignatureVerifier],
    required: usize,
) -> Result<Vec<(String, u64)>, ProofFailure> {
    let note =
        Note::parse(&bundle.checkpoint).map_err(|e| ProofFailure::Checkpoint(e.to_string()))?;
    let mut by = Vec::new();
    let mut missing = Vec::new();
    for w in witnesses {
        match w.verify(&note) {
            Ok(at) => by.push((w.name().to_owned(), at)),
            Err(e) => missing.push(format!("{} ({e})", w.name())),
        }
    }
    if by.len() < required {
        return Err(ProofFailure::Cosignatures {
            found: by.len(),
            required,
            missing: missing.join(", "),
        });
    }
    Ok(by)
}

/// Check `bundle` with `verifier`; on success, the checkpoint's head.
pub fn check(
    bundle: &Bundle,
    verifier: &auditlog::note::NoteVerifier,
) -> Result<LogHead, ProofFailure> {
    let head = LogHead::open(&bundle.checkpoint, verifier)
        .map_err(|e| ProofFailure::Checkpoint(e.to_string()))?;
    if head.size != bundle.tree_size {
        return Err(ProofFailure::SizeMismatch {
            checkpoint: head.size,
            bundle: bundle.tree_size,
        });
    }
    let entry_seq = serde_json::from_str::<serde_json::Value>(&bundle.entry)
        .ok()
        .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64));
    if entry_seq != Some(bundle.seq) {
        return Err(ProofFailure::SeqMismatch {
            entry: entry_seq,
            bundle: bundle.seq,
        });
    }
    let proof: Vec<Hash> = bundle
        .proof
        .iter()
        .map(|h| {
            B64.decode(h)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or(ProofFailure::BadHash)
        })
        .collect::<Result<_, _>>()?;
    merkle::verify_inclusion(
        &merkle::leaf_hash(bundle.entry.as_bytes()),
        bundle.seq,
        bundle.tree_size,
        &proof,
        &head.root,
    )
    .map_err(|e| ProofFailure::Path(e.to_string()))?;
    Ok(head)
}

/// Make the inclusion bundle of entry `seq` from a store, against the newest cosigned
/// checkpoint that covers it ([`cosigned::newest_covering`]), with every stored cosignature.
pub async fn cosigned_bundle_from_store<S: Store>(
    store: &S,
    log_key: &NoteVerifier,
    witnesses: &[CosignatureVerifier],
    required: usize,
    seq: u64,
    size: Option<u64>,
) -> anyhow::Result<Option<Bundle>> {
    let found = cosigned::newest_covering(store, log_key, witnesses, required, seq, size).await?;
    let Some(c) = found else { return Ok(None) };
    let inclusion = proofs::inclusion(store, seq, c.head.size)
        .await
        .with_context(|| format!("cannot prove entry {seq} from {}", store.describe()))?;
    Ok(Some(Bundle {
        seq,
        tree_size: c.head.size,
        entry: inclusion.entry,
        proof: inclusion.proof.iter().map(|h| B64.encode(h)).collect(),
        checkpoint: c.note.to_string(),
    }))
}

/// Make the inclusion bundle of entry `seq` from a store: against the newest checkpoint of
/// `size` entries, or the newest checkpoint.
pub async fn bundle_from_store<S: Store>(
    store: &S,
    seq: u64,
    size: Option<u64>,
) -> anyhow::Result<Bundle> {
    let log = StoredLog::new(store);
    let found = match size {
        Some(size) => log.checkpoint_at_size(size).await?.with_context(|| {
            format!(
                "{} has no checkpoint of {size} entries; leave --size out for the newest",
                store.describe()
            )
        })?,
        None => log
            .newest_checkpoint()
            .await?
            .with_context(|| format!("{} has no checkpoint", store.describe()))?,
    };
    if seq >= found.size {
        bail!(
            "entry {seq} is not covered by the checkpoint of {} entries ({})",
            found.size,
            found.key
        );
    }
    let checkpoint = log.read_checkpoint(&found).await?;
    let inclusion = proofs::inclusion(store, seq, found.size)
        .await
        .with_context(|| format!("cannot prove entry {seq} from {}", store.describe()))?;
    Ok(Bundle {
        seq,
        tree_size: found.size,
        entry: inclusion.entry,
        proof: inclusion.proof.iter().map(|h| B64.encode(h)).collect(),
        checkpoint,
    })
}

pub async fn run(args: ProveArgs) -> anyhow::Result<u8> {
    let verifier = keys::load_public(&args.public_key)?;
    let witnesses = keys::load_witness_keys(&args.witnesses)?;
    let required = args
        .min_witnesses
        .unwrap_or(usize::from(!witnesses.is_empty()));
    if required > witnesses.len() {
        bail!(
            "--min-witnesses {required} but only {} --witness key(s) given",
            witnesses.len()
        );
    }
    let text = match (&args.bundle, &args.url) {
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the bundle {}", path.display()))?,
        (None, None) if args.store.is_some() => {
            let location = args.store.as_deref().expect("checked");
            let seq = args.seq.expect("clap requires --seq");
            let stores = open_logs(location, &args.s3).await?;
            let [store] = stores.as_slice() else {
                bail!(
                    "--store {location} holds {} logs: name one (s3://BUCKET/PREFIX/LOG_ID)",
                    stores.len()
                );
            };
            let bundle = if witnesses.is_empty() {
                bundle_from_store(store, seq, args.size).await?
            } else {
                let found = cosigned_bundle_from_store(
                    store, &verifier, &witnesses, required, seq, args.size,
                )
                .await?;
                let Some(bundle) = found else {
                    eprintln!(
                        "error: entry {seq} is NOT proven: no checkpoint in {} that covers it{} \
                         carries {required} valid cosignature(s) of the --witness keys",
                        store.describe(),
                        args.size
                            .map(|s| format!(" (of {s} entries)"))
                            .unwrap_or_default()
                    );
                    return Ok(EXIT_TAMPERED);
                };
                bundle
            };
            let text = serde_json::to_string_pretty(&bundle).expect("a bundle serializes");
            if let Some(save) = &args.save {
                std::fs::write(save, &text)
                    .with_context(|| format!("failed to write {}", save.display()))?;
            }
            text
        }
        (None, Some(url)) => {
            let mut path = format!(
                "/v1/proof/inclusion?seq={}",
                args.seq.expect("clap requires --seq")
            );
            if let Some(size) = args.size {
                path.push_str(&format!("&size={size}"));
            }
            if !witnesses.is_empty() {
                path.push_str(&format!("&cosigned=true&min_witnesses={required}"));
            }
            let token = args
                .read_token_file
                .as_deref()
                .map(|p| keys::read_secret(p, keys::Secret::Token))
                .transpose()?;
            let (status, body) =
                crate::commands::http_client::get(url, &path, token.as_deref().map(str::trim))
                    .await?;
            if status == 404 && body.contains("not_cosigned") {
                eprintln!(
                    "error: entry {} is NOT proven: {url} says: {}",
                    args.seq.unwrap_or(0),
                    body.trim()
                );
                return Ok(EXIT_TAMPERED);
            }
            if status != 200 {
                bail!("{url}{path} answered {status}: {body}");
            }
            if let Some(save) = &args.save {
                std::fs::write(save, &body)
                    .with_context(|| format!("failed to write {}", save.display()))?;
            }
            body
        }
        (None, None) => bail!("give --bundle FILE, --store STORE --seq N, or --url URL --seq N"),
    };
    let bundle: Bundle = serde_json::from_str(&text).context("not an inclusion bundle")?;
    let checked = check(&bundle, &verifier)
        .and_then(|head| Ok((head, check_cosigned(&bundle, &witnesses, required)?)));
    match checked {
        Ok((head, cosigned_by)) => {
            println!(
                "entry {} is in log {} (checkpoint of {} entries, root {}, signed by {})",
                bundle.seq,
                verifier.name(),
                head.size,
                B64.encode(head.root),
                verifier.name()
            );
            for (name, at) in cosigned_by {
                println!(
                    "cosigned by witness {name} at {}",
                    auditlog::timestamp::Timestamp::from_unix_nanos(
                        i64::try_from(at)
                            .unwrap_or(i64::MAX)
                            .saturating_mul(1_000_000_000)
                    )
                );
            }
            println!("{}", bundle.entry);
            Ok(EXIT_OK)
        }
        Err(e) => {
            eprintln!("error: entry {} is NOT proven: {e}", bundle.seq);
            Ok(EXIT_TAMPERED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditlog::note::NoteVerifier;
    use proptest::prelude::*;

    fn vectors() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/test-vectors/log-v1.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn published() -> (Bundle, NoteVerifier) {
        let v = vectors();
        let bundle: Bundle = serde_json::from_value(v["inclusion_bundle"].clone()).unwrap();
        let verifier = NoteVerifier::parse(v["inputs"]["verifier_key"].as_str().unwrap()).unwrap();
        (bundle, verifier)
    }

    #[test]
    fn the_published_bundle_proves_its_entry() {
        let (bundle, verifier) = published();
        let head = check(&bundle, &verifier).unwrap();
        assert_eq!(head.size, 4);
    }

    #[test]
    fn every_kind_of_tampering_is_named() {
        let (good, verifier) = published();
        let tamper = |f: &dyn Fn(&mut Bundle)| {
            let mut b = Bundle {
                proof: good.proof.clone(),
                entry: good.entry.clone(),
                checkpoint: good.checkpoint.clone(),
                ..good
            };
            f(&mut b);
            check(&b, &verifier).unwrap_err()
        };
        assert!(matches!(
            tamper(&|b| b.entry = b.entry.replace("\"count\":3", "\"count\":1")),
            ProofFailure::Path(_)
        ));
        assert!(matches!(
            tamper(&|b| b.seq = 1),
            ProofFailure::SeqMismatch { .. }
        ));
        assert!(matches!(
            tamper(&|b| b.tree_size = 5),
            ProofFailure::SizeMismatch { .. }
        ));
        assert!(matches!(
            tamper(&|b| b.checkpoint = b.checkpoint.replacen("\n4\n", "\n5\n", 1)),
            ProofFailure::Checkpoint(_)
        ));
        assert!(matches!(
            tamper(&|b| b.proof[0] = "AAAA".into()),
            ProofFailure::BadHash
        ));
        assert!(matches!(
            tamper(&|b| {
                b.proof.pop();
            }),
            ProofFailure::Path(_)
        ));
        // The same name, another key: the signature does not verify.
        let other = auditlog::note::NoteSigner::from_seed("example.com/ingress-audit", [9u8; 32])
            .unwrap()
            .verifier();
        assert!(matches!(
            check(&good, &other),
            Err(ProofFailure::Checkpoint(_))
        ));
    }

    proptest! {
        #[test]
        fn any_flipped_proof_bit_is_caught(hash in 0usize..8, byte in 0usize..32, bit in 0u8..8) {
            let (good, verifier) = published();
            let mut proof = good.proof.clone();
            let i = hash % proof.len();
            let mut raw = B64.decode(&proof[i]).unwrap();
            raw[byte] ^= 1 << bit;
            proof[i] = B64.encode(raw);
            let bad = Bundle { proof, entry: good.entry.clone(), checkpoint: good.checkpoint.clone(), ..good };
            prop_assert!(matches!(check(&bad, &verifier), Err(ProofFailure::Path(_))));
        }
    }
}
