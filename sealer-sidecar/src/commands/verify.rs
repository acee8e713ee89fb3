//! `sealer verify` (and the verification `export` runs first): every log at a location,
//! each with the public key named after its origin, and the report.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use auditlog::head::LogHead;
use auditlog::note::NoteVerifier;
use auditlog::verify::Report;

use super::args::{StoreArgs, log_origin, open_logs};
use super::{EXIT_OK, EXIT_TAMPERED};
use crate::keys;
use crate::read::verify::{self, VerifyOptions};
use crate::store::{AnyStore, Store};

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    source: StoreArgs,
    /// A checkpoint trusted from an earlier run (as --save-checkpoint wrote it): the store
    /// must extend it. Only what comes after it is verified: the newest checkpoint's
    /// consistency with it, from the tiles, then the entries and tiles after its size.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// With --checkpoint: verify every entry again, not only those after it.
    #[arg(long, requires = "checkpoint")]
    full: bool,
    /// A witness whose cosignatures count: its public key (witness.pub, or the key string).
    /// Repeat for several witnesses.
    #[arg(long = "witness")]
    witnesses: Vec<String>,
    /// Fail (`missing_cosignature`) unless at least N of the --witness keys cosigned the
    /// newest checkpoint (the store's `witnessed/` objects), or, with --max-age, a checkpoint
    /// signed within that age.
    #[arg(long, default_value_t = 0)]
    min_witnesses: usize,
    /// After a successful run, save the newest checkpoint here (to pass as --checkpoint next time).
    #[arg(long)]
    save_checkpoint: Option<PathBuf>,
    /// Print the report as JSON (an array of `{store, report}` when the store holds
    /// several logs).
    #[arg(long)]
    json: bool,
    /// S3: every object must be locked in COMPLIANCE mode at least this many days after it
    /// was written (without it: locked, for any time).
    #[arg(long)]
    min_retention_days: Option<u32>,
    /// Fail (`stale`) unless the newest checkpoint was signed within this time (`90s`, `15m`,
    /// `2h`): a stalled or rolled-back log shows without a trusted checkpoint kept elsewhere.
    #[arg(long, value_parser = crate::config::parse_duration)]
    max_age: Option<std::time::Duration>,
}

/// How `verify` and `export` check.
#[derive(Default)]
pub struct VerifyFlags {
    pub progress: bool,
    /// `--save-checkpoint` was given (one log only).
    pub saving: bool,
    pub storage_checks: bool,
    pub min_retention_days: Option<u32>,
    /// With a trusted checkpoint: verify only what comes after it.
    pub incremental: bool,
    /// Witnesses whose cosignatures count, and how many must have cosigned.
    pub witnesses: Vec<auditlog::cosignature::CosignatureVerifier>,
    pub min_witnesses: usize,
    /// `--max-age`: a cosigned checkpoint signed within it counts too.
    pub max_age: Option<std::time::Duration>,
}

/// Verify every log at `args.store`, each with the public key named after its origin.
pub async fn verify_logs(
    args: &StoreArgs,
    trusted: Option<&Path>,
    flags: &VerifyFlags,
) -> anyhow::Result<Vec<(AnyStore, Report)>> {
    let verifiers = args
        .public_key
        .iter()
        .map(|p| keys::load_public(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let logs = open_logs(&args.store, &args.s3).await?;
    let logs_count = logs.len();
    if logs.len() > 1 && (args.hmac_key.is_some() || trusted.is_some() || flags.saving) {
        anyhow::bail!(
            "{} holds {} logs; --hmac-key, --checkpoint and --save-checkpoint apply to one \
             log: give {}/LOG_ID",
            args.store,
            logs.len(),
            args.store
        );
    }
    let mut out = Vec::new();
    for store in logs {
        // One log and one key: that key (a wrong one is reported as bad checkpoints). Several
        // logs: each needs the key named after its origin.
        let verifier = if verifiers.len() == 1 && logs_count == 1 {
            verifiers[0].clone()
        } else {
            let origin = log_origin(&store).await?;
            match verifiers
                .iter()
                .find(|v| Some(v.name()) == origin.as_deref())
            {
                Some(v) => v.clone(),
                None => anyhow::bail!(
                    "log at {} has origin {:?}, and no --public-key is named after it",
                    store.describe(),
                    origin.unwrap_or_default()
                ),
            }
        };
        let report = verify_one(&store, &verifier, args, trusted, flags).await?;
        out.push((store, report));
    }
    Ok(out)
}

async fn verify_one(
    store: &AnyStore,
    verifier: &NoteVerifier,
    args: &StoreArgs,
    trusted: Option<&Path>,
    flags: &VerifyFlags,
) -> anyhow::Result<Report> {
    let mac_key = match &args.hmac_key {
        Some(p) => Some(keys::load_mac_key(p)?),
        None => None,
    };
    let trusted = match trusted {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("failed to read trusted checkpoint {}", p.display()))?;
            LogHead::open(&text, verifier).with_context(|| {
                format!(
                    "{} is not a checkpoint of log {} signed by this public key",
                    p.display(),
                    verifier.name()
                )
            })?;
            Some((p.display().to_string(), text))
        }
        None => None,
    };
    let options = VerifyOptions {
        mac_key,
        trusted,
        progress: flags.progress,
        storage_checks: flags.storage_checks,
        min_retention_days: flags.min_retention_days,
        incremental: flags.incremental,
        witnesses: flags.witnesses.clone(),
        min_witnesses: flags.min_witnesses,
        cosigned_max_age: flags.max_age,
    };
    verify::verify(store, verifier, &options)
        .await
        .with_context(|| format!("failed to read store {}", store.describe()))
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<u8> {
    let flags = VerifyFlags {
        progress: true,
        saving: args.save_checkpoint.is_some(),
        storage_checks: true,
        min_retention_days: args.min_retention_days,
        incremental: !args.full,
        witnesses: keys::load_witness_keys(&args.witnesses)?,
        min_witnesses: args.min_witnesses,
        max_age: args.max_age,
    };
    if flags.min_witnesses > flags.witnesses.len() {
        anyhow::bail!(
            "--min-witnesses {} but only {} --witness key(s) given",
            flags.min_witnesses,
            flags.witnesses.len()
        );
    }
    let mut checked = verify_logs(&args.source, args.checkpoint.as_deref(), &flags).await?;
    if let Some(max_age) = args.max_age {
        let now = auditlog::timestamp::Timestamp::now();
        for (_, report) in &mut checked {
            report.require_fresh(max_age, now);
        }
    }
    let several = checked.len() > 1;
    if args.json {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        if several {
            let all: Vec<_> = checked
                .iter()
                .map(|(s, r)| serde_json::json!({"store": s.describe(), "report": r}))
                .collect();
            serde_json::to_writer_pretty(&mut out, &all)?;
        } else {
            serde_json::to_writer_pretty(&mut out, &checked[0].1)?;
        }
        writeln!(out)?;
    } else {
        for (store, report) in &checked {
            if several {
                println!("log at {}:", store.describe());
            }
            print_report(&mut std::io::stdout(), report)?;
        }
        if several {
            let failed = checked.iter().filter(|(_, r)| !r.ok).count();
            println!("{} logs, {failed} failed", checked.len());
        }
    }
    if checked.iter().any(|(_, r)| !r.ok) {
        return Ok(EXIT_TAMPERED);
    }
    let (store, report) = &checked[0];
    if let (false, Some(path), Some(newest)) =
        (several, args.save_checkpoint, &report.newest_checkpoint)
    {
        let bytes = store
            .get(&newest.key)
            .await?
            .context("newest checkpoint disappeared")?;
        std::fs::write(&path, &bytes)
            .with_context(|| format!("failed to write {}", path.display()))?;
        if !args.json {
            println!(
                "saved checkpoint of size {} to {}",
                newest.size,
                path.display()
            );
        }
    }
    Ok(EXIT_OK)
}

pub fn print_report(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    if r.ok {
        writeln!(
            out,
            "OK: log {} verified: {} entries in {} segments, {} signed checkpoints, {} tiles{}",
            r.origin,
            r.entries - r.verified_from,
            r.segments,
            r.checkpoints,
            r.tiles_checked,
            if r.mac_checked {
                ", every MAC checked"
            } else {
                ""
            }
        )?;
        if r.verified_from > 0 {
            writeln!(
                out,
                "  entries {}..{} after the trusted checkpoint; it and the newest checkpoint are \
                 consistent (proof from the tiles); the log now holds {} entries",
                r.verified_from, r.entries, r.entries
            )?;
        }
    } else {
        writeln!(
            out,
            "FAILED: log {}: {} problem(s) found; the first:",
            r.origin, r.problem_count
        )?;
        writeln!(out, "  {}", r.problems[0])?;
        if r.problems.len() > 1 {
            writeln!(out, "all problems:")?;
            for p in r.problems.iter().take(50) {
                let class = serde_json::to_value(p.class).unwrap_or_default();
                writeln!(out, "  [{}] {p}", class.as_str().unwrap_or(""))?;
            }
        }
    }
    if let Some(c) = &r.newest_checkpoint {
        writeln!(
            out,
            "newest checkpoint: size {} signed at {} ({})",
            c.size, c.time, c.key
        )?;
    }
    if let Some(c) = &r.trusted_checkpoint {
        writeln!(
            out,
            "trusted checkpoint: size {} signed at {}",
            c.size, c.time
        )?;
    }
    if let Some(c) = &r.cosigned {
        let by: Vec<&str> = c.witnesses.iter().map(|(name, _)| name.as_str()).collect();
        writeln!(
            out,
            "cosigned checkpoint: size {} signed at {}, by {}",
            c.size,
            c.time,
            by.join(", ")
        )?;
    }
    writeln!(out, "root {}  chain head {}", r.root, r.chain_head)?;
    for w in &r.warnings {
        writeln!(out, "note: {w}")?;
    }
    Ok(())
}
