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
use crate::store::{AnyStore, LocalStore, Store};

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
        options: ServeOptions,
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
    /// Verify a store, then print its entries as NDJSON on stdout.
    Export {
        #[command(flatten)]
        source: StoreArgs,
        /// Print full sealed records (chain, entry, mac) instead of entries.
        #[arg(long)]
        records: bool,
    },
    /// Print the newest signed checkpoint in a store.
    Checkpoint {
        /// The store: a directory or file://PATH.
        #[arg(long)]
        store: String,
        /// Verify the checkpoint's signature with this public key before printing it.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct StoreArgs {
    /// The store: a directory or file://PATH.
    #[arg(long)]
    store: String,
    /// The log's public key (signing.pub).
    #[arg(long)]
    public_key: PathBuf,
    /// The secret HMAC key (hmac.key), to check every entry's MAC too.
    #[arg(long)]
    hmac_key: Option<PathBuf>,
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
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
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
        Command::Keygen { out, origin } => {
            let origin = origin.unwrap_or_else(|| format!("ingress-audit/{}", keys::hostname()));
            let written = keys::generate(&out, &origin)?;
            for p in written {
                println!("wrote {}", p.display());
            }
            println!("origin: {origin}");
            Ok(EXIT_OK)
        }
        Command::Export { source, records } => {
            let (store, report) = verify_store(&source, None, false).await?;
            if !report.ok {
                print_report(&mut std::io::stderr(), &report)?;
                eprintln!("error: the store failed verification; nothing exported");
                return Ok(EXIT_TAMPERED);
            }
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            audit::export(&store, records, &mut out).await?;
            Ok(EXIT_OK)
        }
        Command::Checkpoint { store, public_key } => {
            let store = open_existing(&store)?;
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

fn open_existing(location: &str) -> anyhow::Result<AnyStore> {
    if location.contains("://") && !location.starts_with("file://") {
        return AnyStore::open(location);
    }
    let path = location.strip_prefix("file://").unwrap_or(location);
    Ok(AnyStore::Local(LocalStore::open_existing(path)?))
}

async fn verify_store(
    args: &StoreArgs,
    trusted: Option<&Path>,
    progress: bool,
) -> anyhow::Result<(AnyStore, Report)> {
    let verifier = keys::load_public(&args.public_key)?;
    let mac_key = match &args.hmac_key {
        Some(p) => Some(keys::load_mac_key(p)?),
        None => None,
    };
    let trusted = match trusted {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("failed to read trusted checkpoint {}", p.display()))?;
            LogHead::open(&text, &verifier).with_context(|| {
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
    let store = open_existing(&args.store)?;
    let options = VerifyOptions {
        mac_key,
        trusted,
        progress,
    };
    let report = audit::verify(&store, &verifier, &options)
        .await
        .with_context(|| format!("failed to read store {}", args.store))?;
    Ok((store, report))
}

async fn verify(args: VerifyArgs) -> anyhow::Result<u8> {
    let (store, report) = verify_store(&args.source, args.checkpoint.as_deref(), true).await?;
    if args.json {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_report(&mut std::io::stdout(), &report)?;
    }
    if !report.ok {
        return Ok(EXIT_TAMPERED);
    }
    if let (Some(path), Some(newest)) = (args.save_checkpoint, &report.newest_checkpoint) {
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
