//! `sealer witness`: a C2SP tlog-witness for the logs it follows.
//!
//! For each log (named by the origin of its public key) it keeps the latest checkpoint it
//! cosigned, in `STATE_DIR/logs/`, written durably (temporary file, fsync, rename, fsync of
//! the directory) before it answers: a witness killed at any moment comes back with the
//! last state it answered for, never an older one. `POST /add-checkpoint` decides with
//! [`auditlog::witness::decide`] under the log's lock, so two submissions cannot interleave.
//! A validly signed checkpoint that forks or rewrites the history it cosigned is refused and
//! kept, with the checkpoint it held, in `STATE_DIR/evidence/`; it is logged at ERROR and
//! counted in `/metrics`.
//!
//! Exit codes: 0 stopped cleanly, 2 could not start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use anyhow::{Context, bail};
use auditlog::cosignature::Cosigner;
use auditlog::head::LogHead;
use auditlog::note::NoteVerifier;
use auditlog::timestamp::Timestamp;
use auditlog::witness::{self, Cosigned, Refusal};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::commands::EXIT_OK;
use crate::keys;

#[derive(clap::Args, Debug)]
pub struct WitnessArgs {
    /// The witness's secret key (witness.key, from `sealer keygen --witness`).
    #[arg(long)]
    key: PathBuf,
    /// The public key (signing.pub) of a log to witness; repeat for each log.
    #[arg(long = "log", required = true)]
    logs: Vec<PathBuf>,
    /// Where the latest cosigned checkpoint of each log, and evidence of forks, are kept.
    #[arg(long)]
    state_dir: PathBuf,
    /// Address to serve `POST /add-checkpoint`, `/metrics` and `/healthz` on.
    #[arg(long, default_value = "127.0.0.1:8790")]
    listen: SocketAddr,
}

/// One log the witness follows.
struct Followed {
    key: NoteVerifier,
    /// The latest checkpoint cosigned; the lock is held from the decision to the answer.
    held: Mutex<Option<Cosigned>>,
    cosigned: AtomicU64,
    refused: AtomicU64,
    evidence: AtomicU64,
    size: AtomicU64,
}

struct Witness {
    cosigner: Cosigner,
    logs: HashMap<String, Followed>,
    state_dir: PathBuf,
}

/// The file holding a log's latest cosigned checkpoint (named by a hash of the origin, which
/// may hold any character but white space and `+`).
fn state_file(state_dir: &Path, origin: &str) -> PathBuf {
    let id = hex::encode(&Sha256::digest(origin.as_bytes())[..16]);
    state_dir.join("logs").join(format!("{id}.checkpoint"))
}

/// Replace `path` with `text` durably.
fn write_durably(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().expect("state files are in a directory");
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

impl Witness {
    fn load(args: &WitnessArgs) -> anyhow::Result<Witness> {
        let cosigner = keys::load_witness(&args.key)?;
        let mut logs = HashMap::new();
        for path in &args.logs {
            let key = keys::load_public(path)?;
            let origin = key.name().to_owned();
            let file = state_file(&args.state_dir, &origin);
            let held = match std::fs::read_to_string(&file) {
                Ok(text) => {
                    let head = LogHead::open(&text, &key).with_context(|| {
                        format!(
                            "{} does not hold a checkpoint of {origin} signed by {}: the \
                             witness will not start without the state it had (restore it, \
                             do not delete it)",
                            file.display(),
                            path.display()
                        )
                    })?;
                    Some(Cosigned {
                        size: head.size,
                        root: head.root,
                        checkpoint: text,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e).context(format!("failed to read {}", file.display())),
            };
            if logs.contains_key(&origin) {
                bail!("--log {}: the log {origin} is given twice", path.display());
            }
            tracing::info!(
                origin,
                size = held.as_ref().map_or(0, |c| c.size),
                "following log"
            );
            let size = AtomicU64::new(held.as_ref().map_or(0, |c| c.size));
            logs.insert(
                origin,
                Followed {
                    key,
                    held: Mutex::new(held),
                    cosigned: AtomicU64::new(0),
                    refused: AtomicU64::new(0),
                    evidence: AtomicU64::new(0),
                    size,
                },
            );
        }
        Ok(Witness {
            cosigner,
            logs,
            state_dir: args.state_dir.clone(),
        })
    }

    /// Decide on one submission; the answer's status, content type and body.
    async fn add_checkpoint(&self, body: &str) -> (u16, &'static str, String) {
        const TEXT: &str = "text/plain; charset=utf-8";
        let request = match witness::parse_request(body) {
            Ok(r) => r,
            Err(r) => return (r.status, r.content_type(), r.body),
        };
        let origin = request.checkpoint.lines().next().unwrap_or_default();
        let Some(log) = self.logs.get(origin) else {
            return (
                404,
                TEXT,
                format!("this witness does not follow {origin:?}\n"),
            );
        };
        let mut held = log.held.lock().await;
        match witness::decide(held.as_ref(), &request, &log.key) {
            Ok(accepted) => {
                let file = state_file(&self.state_dir, origin);
                let text = accepted.state.checkpoint.clone();
                let persisted = tokio::task::spawn_blocking(move || write_durably(&file, &text))
                    .await
                    .expect("the state write does not panic");
                if let Err(e) = persisted {
                    tracing::error!(origin, error = %e, "cannot persist the state; not cosigning");
                    return (
                        503,
                        TEXT,
                        format!("the witness cannot persist its state: {e}\n"),
                    );
                }
                let now = (Timestamp::now().unix_nanos() / 1_000_000_000).max(0) as u64;
                let line = match self.cosigner.cosign(&accepted.body, now) {
                    Ok(l) => l,
                    Err(e) => return (400, TEXT, format!("cannot cosign: {e}\n")),
                };
                tracing::info!(origin, size = accepted.state.size, "cosigned");
                log.size.store(accepted.state.size, Relaxed);
                log.cosigned.fetch_add(1, Relaxed);
                *held = Some(accepted.state);
                (200, TEXT, line)
            }
            Err(refusal) => {
                log.refused.fetch_add(1, Relaxed);
                if refusal.evidence {
                    log.evidence.fetch_add(1, Relaxed);
                    self.keep_evidence(origin, held.as_ref(), body, &refusal);
                } else {
                    tracing::warn!(
                        origin,
                        status = refusal.status,
                        reason = refusal.body.trim(),
                        "refused"
                    );
                }
                (refusal.status, refusal.content_type(), refusal.body)
            }
        }
    }

    /// Keep a refused, validly signed checkpoint with the one held, as evidence of a fork.
    fn keep_evidence(&self, origin: &str, held: Option<&Cosigned>, body: &str, r: &Refusal) {
        let at = Timestamp::now().unix_nanos();
        let id = hex::encode(&Sha256::digest(origin.as_bytes())[..16]);
        let path = self
            .state_dir
            .join("evidence")
            .join(format!("{id}-{at}.txt"));
        let held_text = held.map_or("(none)\n", |c| c.checkpoint.as_str());
        let record = format!(
            "origin {origin}\nrefused {} {}\n--- the checkpoint this witness had cosigned ---\n{held_text}--- the submission ---\n{body}",
            r.status,
            r.body.trim()
        );
        match write_durably(&path, &record) {
            Ok(()) => tracing::error!(
                origin,
                evidence = %path.display(),
                reason = r.body.trim(),
                "FORK: a validly signed checkpoint does not extend the one this witness cosigned; both are kept"
            ),
            Err(e) => {
                tracing::error!(origin, error = %e, reason = r.body.trim(), "FORK, and the evidence could not be written")
            }
        }
    }

    fn metrics(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&Followed) -> u64| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            let suffix = if kind == "counter" { "_total" } else { "" };
            for (origin, log) in &self.logs {
                out.push_str(&format!(
                    "{name}{suffix}{{log=\"{origin}\"}} {}\n",
                    value(log)
                ));
            }
        };
        family(
            "witness_cosigned",
            "counter",
            "Checkpoints cosigned.",
            &|l| l.cosigned.load(Relaxed),
        );
        family(
            "witness_refused",
            "counter",
            "Submissions refused (any status).",
            &|l| l.refused.load(Relaxed),
        );
        family(
            "witness_forks",
            "counter",
            "Validly signed checkpoints refused as a fork or an inconsistent history (kept as evidence).",
            &|l| l.evidence.load(Relaxed),
        );
        family(
            "witness_checkpoint_size",
            "gauge",
            "Size of the latest checkpoint cosigned.",
            &|l| l.size.load(Relaxed),
        );
        out.push_str("# EOF\n");
        out
    }
}

async fn post_add_checkpoint(State(w): State<Arc<Witness>>, body: String) -> Response {
    let (status, content_type, body) = w.add_checkpoint(&body).await;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn get_metrics(State(w): State<Arc<Witness>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        w.metrics(),
    )
        .into_response()
}

pub async fn run(args: WitnessArgs) -> anyhow::Result<u8> {
    let witness = Arc::new(Witness::load(&args)?);
    let app = axum::Router::new()
        .route("/add-checkpoint", axum::routing::post(post_add_checkpoint))
        .route("/metrics", axum::routing::get(get_metrics))
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .with_state(witness.clone());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}: failed to listen", args.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        witness = witness.cosigner.name(),
        logs = witness.logs.len(),
        "witness ready"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::commands::serve::shutdown_signal())
        .await?;
    Ok(EXIT_OK)
}
