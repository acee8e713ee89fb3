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
//! Exit codes: 0 the entry is in the log; 1 a check failed; 2 the command could not run.

use std::path::PathBuf;

use anyhow::{Context, bail};
use auditlog::head::LogHead;
use auditlog::merkle::{self, Hash};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::commands::args::{S3Args, open_logs};
use crate::commands::{EXIT_OK, EXIT_TAMPERED};
use crate::keys;
use crate::read::{StoredLog, proofs};
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
            let bundle = bundle_from_store(store, seq, args.size).await?;
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
            let token = args
                .read_token_file
                .as_deref()
                .map(|p| keys::read_secret(p, keys::Secret::Token))
                .transpose()?;
            let (status, body) =
                crate::commands::http_client::get(url, &path, token.as_deref().map(str::trim))
                    .await?;
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
    match check(&bundle, &verifier) {
        Ok(head) => {
            println!(
                "entry {} is in log {} (checkpoint of {} entries, root {}, signed by {})",
                bundle.seq,
                verifier.name(),
                head.size,
                B64.encode(head.root),
                verifier.name()
            );
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
