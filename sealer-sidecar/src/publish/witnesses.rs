//! Asking witnesses to cosign (C2SP tlog-witness): for every checkpoint the uploader stores,
//! each configured witness (`--witness URL=VKEY`) gets `POST URL/add-checkpoint` with the
//! consistency proof, from the tiles, from the size it last cosigned. Its cosignature is
//! checked with its key and the cosigned checkpoint stored write-once under `witnessed/`,
//! beside the plain one.
//!
//! One task per witness, apart from the uploader: a witness that is down or slow delays
//! nothing and loses nothing. It is retried every [`RETRY`], always with the newest
//! checkpoint, so its cosignature comes later, on a later checkpoint.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use auditlog::cosignature::CosignatureVerifier;
use auditlog::head::LogHead;
use auditlog::layout;
use auditlog::note::{Note, NoteVerifier};
use auditlog::subtrees;
use auditlog::tiles::TileSet;
use auditlog::witness::request_body;
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::watch;

use crate::commands::http_client;
use crate::metrics::{WitnessReading, WitnessReadings};
use crate::read::head::HeadWatch;
use crate::read::tiles::with_tiles;
use crate::store::Store;

/// How long to wait before asking a witness that failed again.
pub const RETRY: Duration = Duration::from_secs(5);

/// A witness the sealer asks: its URL and its public key.
#[derive(Clone, Debug)]
pub struct WitnessConfig {
    pub url: String,
    pub key: CosignatureVerifier,
}

impl std::str::FromStr for WitnessConfig {
    type Err = anyhow::Error;

    /// `URL=VKEY`, where VKEY is the witness's public key (`witness.pub`'s content) or the
    /// path of that file.
    fn from_str(s: &str) -> anyhow::Result<WitnessConfig> {
        let Some((url, key)) = s.split_once('=') else {
            bail!(
                "--witness {s:?}: expected URL=VKEY (the witness's URL and its public key, or its witness.pub file)"
            );
        };
        if !url.starts_with("http://") {
            bail!("--witness {s:?}: the URL must be http://HOST:PORT[/PREFIX]");
        }
        let text = match std::fs::read_to_string(key) {
            Ok(t) => t,
            Err(_) => key.to_owned(),
        };
        let key = CosignatureVerifier::parse(&text).with_context(|| {
            format!("--witness {url}: {key:?} is not a witness public key (as `sealer keygen --witness` writes to witness.pub)")
        })?;
        Ok(WitnessConfig {
            url: url.trim_end_matches('/').to_owned(),
            key,
        })
    }
}

/// What `/v1/status` shows of a witness.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WitnessStatus {
    pub name: String,
    pub url: String,
    /// The size of the newest checkpoint it cosigned for this sealer.
    pub cosigned_size: Option<u64>,
    /// When it cosigned it (its timestamp, POSIX seconds).
    pub cosigned_at: Option<u64>,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<String>,
}

/// The status of every witness, shared with the HTTP side and the metrics.
pub type Statuses = Arc<Mutex<Vec<WitnessStatus>>>;

/// The metrics read the statuses at each scrape.
#[derive(Debug)]
pub struct StatusReadings(pub Statuses);

impl WitnessReadings for StatusReadings {
    fn read(&self) -> Vec<WitnessReading> {
        self.0
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|w| WitnessReading {
                name: w.name.clone(),
                cosigned_size: w.cosigned_size.unwrap_or(0),
                cosigned_at: w.cosigned_at.unwrap_or(0),
                failing: w.last_error.is_some(),
            })
            .collect()
    }
}

/// Ask `witness` to cosign every checkpoint published on `head`, until `stop`.
pub async fn follow<S: Store + Clone>(
    store: S,
    log_key: NoteVerifier,
    witness: WitnessConfig,
    index: usize,
    statuses: Statuses,
    mut head: HeadWatch,
    mut stop: watch::Receiver<bool>,
) {
    // The size the witness holds for this log, as far as we know (0 until it says otherwise).
    let mut held = 0u64;
    let mut done: Option<String> = None;
    loop {
        let checkpoint = head.borrow_and_update().checkpoint.clone();
        let mut failed = false;
        if let Some(text) = checkpoint.filter(|t| done.as_deref() != Some(&**t)) {
            match submit(&store, &log_key, &witness, &mut held, &text).await {
                Ok((size, at)) => {
                    done = Some(text.to_string());
                    let mut s = statuses.lock().expect("not poisoned");
                    s[index].cosigned_size = Some(size);
                    s[index].cosigned_at = Some(at);
                    s[index].last_error = None;
                }
                Err(e) => {
                    failed = true;
                    tracing::warn!(witness = %witness.url, error = format!("{e:#}"), "witness did not cosign; asking again later");
                    statuses.lock().expect("not poisoned")[index].last_error =
                        Some(format!("{e:#}"));
                }
            }
        }
        tokio::select! {
            changed = head.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(RETRY), if failed => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Submit `checkpoint`, store the cosigned one; its size and the cosignature's time.
async fn submit<S: Store>(
    store: &S,
    log_key: &NoteVerifier,
    witness: &WitnessConfig,
    held: &mut u64,
    checkpoint: &str,
) -> anyhow::Result<(u64, u64)> {
    let head = LogHead::open(checkpoint, log_key).context("our own checkpoint does not open")?;
    // At most twice: the second time from the size a 409 says the witness holds.
    for _ in 0..2 {
        let old = (*held).min(head.size);
        let proof = if old == 0 || old == head.size {
            Vec::new()
        } else {
            let mut tiles = TileSet::new(head.size);
            with_tiles(store, &mut tiles, |t| {
                subtrees::consistency_proof(t, old, head.size)
            })
            .await
            .context("cannot make the consistency proof from the tiles")?
        };
        let body = request_body(old, &proof, checkpoint);
        let (status, content_type, answer) =
            http_client::post(&witness.url, "/add-checkpoint", body).await?;
        match status {
            200 => {
                let cosigned = format!("{checkpoint}{answer}");
                let note = Note::parse(&cosigned)
                    .context("the witness's answer is not signature lines")?;
                let at = witness
                    .key
                    .verify(&note)
                    .context("the witness's answer has no valid cosignature by its key")?;
                let (_, nanos) = layout::parse_checkpoint_key(&head.key()).expect("our own key");
                let key = layout::witnessed_key(head.size, nanos, witness.key.key_id());
                store.put_if_absent(&key, Bytes::from(cosigned)).await?;
                *held = head.size;
                tracing::info!(
                    witness = witness.key.name(),
                    size = head.size,
                    key,
                    "checkpoint cosigned"
                );
                return Ok((head.size, at));
            }
            409 if content_type.starts_with("text/x.tlog.size") => {
                let size: u64 = answer
                    .trim()
                    .parse()
                    .with_context(|| format!("409 with a size that is not a number: {answer:?}"))?;
                if size > head.size {
                    bail!(
                        "the witness holds a checkpoint of {size} entries, more than this log's {}: \
                         it saw another history of this log (a fork, or a store rolled back)",
                        head.size
                    );
                }
                *held = size;
            }
            _ => bail!("{} answered {status}: {}", witness.url, answer.trim()),
        }
    }
    bail!("the witness's size kept changing")
}
