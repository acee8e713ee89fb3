//! The `sealer` command line. Exit codes: 0 success (for `verify`: the store verified),
//! 1 verification found tampering or an inconsistency, 2 the command could not run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use auditlog::head::LogHead;
use auditlog::layout;
use auditlog::verify::Report;
use clap::{Parser, Subcommand};

use crate::audit::{self, VerifyOptions};
use crate::config::ServeOptions;
use crate::keys;
use crate::store::{self, AnyStore, LocalStore, S3Location, S3Options, S3Store, Store};
use auditlog::note::NoteVerifier;

pub const EXIT_OK: u8 = 0;
pub const EXIT_TAMPERED: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "sealer",
    version,
    about = "Seal ingress access events into a chained, signed, write-once audit log, and verify it."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the sealer: ingest events over HTTP, seal, store, publish checkpoints.
    Serve {
        #[command(flatten)]
        options: Box<ServeOptions>,
        /// TOML config file; flags and SEALER_* variables override it.
        #[arg(long, env = "SEALER_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Verify a store offline. Exit 0 verified, 1 tampering found, 2 could not run.
    Verify(VerifyArgs),
    /// Create signing.key, signing.pub and hmac.key in a directory.
    Keygen {
        /// Directory for the key files (created if needed; existing keys are never replaced).
        #[arg(long)]
        out: PathBuf,
        /// The log's origin, which names the key [default: ingress-audit/HOSTNAME].
        #[arg(long)]
        origin: Option<String>,
    },
    /// Verify a store, then print its entries (those the filters select) on stdout.
    Export {
        #[command(flatten)]
        source: StoreArgs,
        /// Print full sealed records (chain, entry, mac) instead of entries.
        #[arg(long, conflicts_with = "format")]
        records: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = audit::ExportFormat::Ndjson)]
        format: audit::ExportFormat,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Create an S3 bucket with Object Lock enabled (which enables versioning), fit for
    /// `serve --store s3://BUCKET/PREFIX`.
    CreateBucket {
        /// s3://BUCKET (a prefix, if given, is ignored).
        #[arg(long)]
        store: String,
        #[command(flatten)]
        s3: S3Args,
    },
    /// Check that one entry is in the log, from an inclusion proof bundle and the public
    /// key alone. Exit 0 proven, 1 not proven, 2 could not run.
    Prove(crate::prove::ProveArgs),
    /// Print entries as they arrive (NDJSON), from a running sealer or from a store.
    Tail(crate::tail::TailArgs),
    /// Print the newest signed checkpoint in a store (one log).
    Checkpoint {
        /// The store: a directory, file://PATH, or s3://BUCKET/PREFIX/LOG_ID.
        #[arg(long)]
        store: String,
        /// Verify the checkpoint's signature with this public key before printing it.
        #[arg(long)]
        public_key: Option<PathBuf>,
        #[command(flatten)]
        s3: S3Args,
    },
}

/// The filters of `GET /v1/events` (docs/http-api.md), as options.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct FilterArgs {
    /// Entries whose time is at or after this (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Entries whose time is before this (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// Entry kinds: start, http, gap, k8s_audit (comma-separated).
    #[arg(long)]
    kind: Option<String>,
    /// The gateway (the source id up to its first '/').
    #[arg(long)]
    gateway: Option<String>,
    /// HTTP method, or Kubernetes verb (any case).
    #[arg(long)]
    method: Option<String>,
    /// Host (server.address, any case).
    #[arg(long)]
    host: Option<String>,
    /// Path prefix (url.path, or the audit event's requestURI).
    #[arg(long)]
    path_prefix: Option<String>,
    /// Status code (404) or class (4xx).
    #[arg(long)]
    status: Option<String>,
    /// Who: enduser.id, or the audit event's user.username.
    #[arg(long)]
    identity: Option<String>,
    /// Client address.
    #[arg(long)]
    client: Option<String>,
    /// Free text: a substring of the entry's JSON (ASCII case ignored).
    #[arg(long)]
    q: Option<String>,
}

impl FilterArgs {
    /// The options given, as `(query parameter, value)`.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        let all = [
            ("from", &self.from),
            ("to", &self.to),
            ("kind", &self.kind),
            ("gateway", &self.gateway),
            ("method", &self.method),
            ("host", &self.host),
            ("path_prefix", &self.path_prefix),
            ("status", &self.status),
            ("identity", &self.identity),
            ("client", &self.client),
            ("q", &self.q),
        ];
        all.iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
            .collect()
    }

    /// The filter, or an error naming the option.
    pub fn filter(&self) -> anyhow::Result<auditlog::query::Filter> {
        auditlog::query::Filter::from_pairs(self.pairs()).map_err(|e| match e.split_once(':') {
            // "path_prefix: ..." names the option --path-prefix.
            Some((name, rest)) if !name.contains(' ') => {
                anyhow::anyhow!("--{}:{rest}", name.replace('_', "-"))
            }
            _ => anyhow::anyhow!("{e}"),
        })
    }
}

#[derive(clap::Args, Debug)]
struct StoreArgs {
    /// The store: a directory, file://PATH, or s3://BUCKET/PREFIX (every log under the
    /// prefix is verified).
    #[arg(long)]
    store: String,
    /// A log's public key (signing.pub). Repeat for several logs: each log is checked with
    /// the key named after its origin.
    #[arg(long, required = true)]
    public_key: Vec<PathBuf>,
    /// The secret HMAC key (hmac.key), to check every entry's MAC too (one log only).
    #[arg(long)]
    hmac_key: Option<PathBuf>,
    #[command(flatten)]
    s3: S3Args,
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct S3Args {
    /// S3: path-style requests (http://HOST/BUCKET/KEY), for MinIO, Ceph, SeaweedFS.
    #[arg(long, env = "SEALER_S3_PATH_STYLE")]
    s3_path_style: bool,
}

impl S3Args {
    fn options(&self) -> S3Options {
        S3Options {
            path_style: self.s3_path_style,
            ..S3Options::default()
        }
    }
}

#[derive(clap::Args, Debug)]
struct VerifyArgs {
    #[command(flatten)]
    source: StoreArgs,
    /// A checkpoint trusted from an earlier run: the store must still contain it.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
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
}

/// Parse the command line and run it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(matches!(cli.command, Command::Serve { .. }));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn init_tracing(serving: bool) {
    let default = if serving { "info" } else { "warn" };
    use std::io::IsTerminal;
    let filter = match std::env::var("SEALER_LOG") {
        Ok(spec) => tracing_subscriber::EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("warning: ignoring SEALER_LOG={spec:?} ({e}); using {default:?}");
            tracing_subscriber::EnvFilter::new(default)
        }),
        Err(_) => tracing_subscriber::EnvFilter::new(default),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr)
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Serve { options, config } => {
            let config = options.resolve(config.as_deref())?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("failed to listen on {}", config.listen))?;
            crate::server::run(config, listener, crate::server::shutdown_signal()).await?;
            Ok(EXIT_OK)
        }
        Command::Verify(args) => verify(args).await,
        Command::Prove(args) => crate::prove::run(args).await,
        Command::Tail(args) => crate::tail::run(args).await,
        Command::Keygen { out, origin } => {
            let origin = origin.unwrap_or_else(|| format!("ingress-audit/{}", keys::hostname()));
            let written = keys::generate(&out, &origin)?;
            for p in written {
                println!("wrote {}", p.display());
            }
            println!("origin: {origin}");
            Ok(EXIT_OK)
        }
        Command::Export {
            source,
            records,
            format,
            filter,
        } => {
            let options = audit::ExportOptions {
                records,
                filter: filter.filter()?,
                format,
            };
            let flags = VerifyFlags {
                storage_checks: true,
                ..VerifyFlags::default()
            };
            let checked = verify_logs(&source, None, &flags).await?;
            let mut failed = false;
            for (store, report) in &checked {
                if !report.ok {
                    eprintln!("log at {}:", store.describe());
                    print_report(&mut std::io::stderr(), report)?;
                    failed = true;
                }
            }
            if failed {
                eprintln!("error: the store failed verification; nothing exported");
                return Ok(EXIT_TAMPERED);
            }
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let stores: Vec<AnyStore> = checked.into_iter().map(|(s, _)| s).collect();
            if stores.len() == 1 {
                audit::export(&stores[0], &options, &mut out).await?;
            } else {
                audit::export_merged(&stores, &options, &mut out).await?;
            }
            Ok(EXIT_OK)
        }
        Command::CreateBucket { store, s3 } => {
            let location = S3Location::parse(&store)?;
            let client = store::s3::client(&s3.options()).await;
            store::s3::create_locked_bucket(&client, &location.bucket).await?;
            println!(
                "created bucket {} with Object Lock and versioning enabled",
                location.bucket
            );
            Ok(EXIT_OK)
        }
        Command::Checkpoint {
            store,
            public_key,
            s3,
        } => {
            let mut logs = open_logs(&store, &s3).await?;
            if logs.len() != 1 {
                anyhow::bail!(
                    "{store} holds {} logs; name one: {store}/LOG_ID",
                    logs.len()
                );
            }
            let store = logs.remove(0);
            let newest = store
                .list(layout::CHECKPOINTS)
                .await?
                .into_iter()
                .filter(|o| layout::parse_checkpoint_key(&o.key).is_some())
                .max_by_key(|o| layout::parse_checkpoint_key(&o.key))
                .context("the store has no checkpoint")?;
            let bytes = store
                .get(&newest.key)
                .await?
                .context("checkpoint disappeared")?;
            let text = String::from_utf8(bytes.to_vec())
                .with_context(|| format!("{} is not UTF-8", newest.key))?;
            if let Some(pk) = public_key {
                let verifier = keys::load_public(&pk)?;
                if let Err(e) = LogHead::open(&text, &verifier) {
                    eprintln!("error: {}: {e}", newest.key);
                    return Ok(EXIT_TAMPERED);
                }
            }
            print!("{text}");
            Ok(EXIT_OK)
        }
    }
}

/// The logs at a location: the one in a local directory, or every log under an S3 prefix.
pub(crate) async fn open_logs(location: &str, s3: &S3Args) -> anyhow::Result<Vec<AnyStore>> {
    if !store::is_s3(location) {
        if location.contains("://") && !location.starts_with("file://") {
            anyhow::bail!(
                "unsupported store location {location:?}: give a directory path, file://PATH \
                 or s3://BUCKET/PREFIX"
            );
        }
        let path = location.strip_prefix("file://").unwrap_or(location);
        return Ok(vec![AnyStore::Local(LocalStore::open_existing(path)?)]);
    }
    let base = S3Location::parse(location)?;
    let client = store::s3::client(&s3.options()).await;
    let ids = S3Store::discover_logs(&client, &base).await?;
    if ids.is_empty() {
        anyhow::bail!(
            "no log under {base}: a log is a prefix holding checkpoints/ and segments/ \
             (PREFIX/LOG_ID/checkpoints/...)"
        );
    }
    Ok(ids
        .into_iter()
        .map(|id| {
            let location = if id.is_empty() {
                base.clone()
            } else {
                base.child(&id)
            };
            AnyStore::S3(S3Store::new(client.clone(), location, None))
        })
        .collect())
}

/// The origin a log's first checkpoint names (its first line).
async fn log_origin(store: &AnyStore) -> anyhow::Result<Option<String>> {
    let Some(first) = store.list(layout::CHECKPOINTS).await?.into_iter().next() else {
        return Ok(None);
    };
    let bytes = store.get(&first.key).await?.unwrap_or_default();
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .next()
        .map(str::to_owned))
}

/// How `verify` and `export` check.
#[derive(Default)]
struct VerifyFlags {
    progress: bool,
    /// `--save-checkpoint` was given (one log only).
    saving: bool,
    storage_checks: bool,
    min_retention_days: Option<u32>,
}

/// Verify every log at `args.store`, each with the public key named after its origin.
async fn verify_logs(
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
    };
    audit::verify(store, verifier, &options)
        .await
        .with_context(|| format!("failed to read store {}", store.describe()))
}

async fn verify(args: VerifyArgs) -> anyhow::Result<u8> {
    let flags = VerifyFlags {
        progress: true,
        saving: args.save_checkpoint.is_some(),
        storage_checks: true,
        min_retention_days: args.min_retention_days,
    };
    let checked = verify_logs(&args.source, args.checkpoint.as_deref(), &flags).await?;
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

fn print_report(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    if r.ok {
        writeln!(
            out,
            "OK: log {} verified: {} entries in {} segments, {} signed checkpoints{}",
            r.origin,
            r.entries,
            r.segments,
            r.checkpoints,
            if r.mac_checked {
                ", every MAC checked"
            } else {
                ""
            }
        )?;
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
    writeln!(out, "root {}  chain head {}", r.root, r.chain_head)?;
    for w in &r.warnings {
        writeln!(out, "note: {w}")?;
    }
    Ok(())
}
