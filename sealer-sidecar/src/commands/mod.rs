//! The `sealer` command line. Exit codes: 0 success (for `verify`: the store verified),
//! 1 verification found tampering or an inconsistency, 2 the command could not run.

pub mod args;
pub mod http_client;
pub mod monitor;
pub mod prove;
pub mod serve;
pub mod tail;
pub mod verify;
pub mod witness;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use auditlog::head::LogHead;
use clap::{Parser, Subcommand};

use crate::config::ServeOptions;
use crate::keys;
use crate::read::StoredLog;
use crate::read::verify as read_verify;
use crate::store::{self, AnyStore, S3Location, Store};
use args::{FilterArgs, S3Args, StoreArgs, open_logs};
use verify::{VerifyArgs, VerifyFlags, print_report, verify_logs};

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
    /// Create signing.key, signing.pub and hmac.key in a directory (with --witness:
    /// witness.key and witness.pub, a witness's cosigning key).
    Keygen {
        /// Directory for the key files (created if needed; existing keys are never replaced).
        #[arg(long)]
        out: PathBuf,
        /// The log's origin, which names the key [default: ingress-audit/HOSTNAME]; with
        /// --witness, the witness's name [default: witness/HOSTNAME].
        #[arg(long)]
        origin: Option<String>,
        /// Create a witness key (C2SP tlog-cosignature, Ed25519 cosignature/v1) instead.
        #[arg(long)]
        witness: bool,
    },
    /// Run a witness (C2SP tlog-witness): cosign each submitted checkpoint of the logs it
    /// follows that is consistent with the last one it cosigned, and refuse forks and
    /// rollbacks, keeping them as evidence.
    Witness(crate::commands::witness::WitnessArgs),
    /// Verify a store on a schedule (incrementally, in full every --full-every) and expose
    /// the outcome as Prometheus metrics, for alerting.
    Monitor(crate::commands::monitor::MonitorArgs),
    /// Verify a store, then print its entries (those the filters select) on stdout.
    Export {
        #[command(flatten)]
        source: StoreArgs,
        /// Print full sealed records (chain, entry, mac) instead of entries.
        #[arg(long, conflicts_with = "format")]
        records: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = read_verify::ExportFormat::Ndjson)]
        format: read_verify::ExportFormat,
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
    Prove(crate::commands::prove::ProveArgs),
    /// Print entries as they arrive (NDJSON), from a running sealer or from a store.
    Tail(crate::commands::tail::TailArgs),
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

/// Parse the command line and run it. `before_serving` runs first for the long-running
/// commands, before any thread is started (the binary tunes the allocator there).
pub fn main(before_serving: fn()) -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(
        cli.command,
        Command::Serve { .. } | Command::Witness(_) | Command::Monitor(_)
    );
    if serving {
        before_serving();
    }
    init_tracing(serving);
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
            crate::commands::serve::run(
                config,
                listener,
                crate::commands::serve::shutdown_signal(),
            )
            .await?;
            Ok(EXIT_OK)
        }
        Command::Verify(args) => verify::run(args).await,
        Command::Prove(args) => crate::commands::prove::run(args).await,
        Command::Tail(args) => crate::commands::tail::run(args).await,
        Command::Keygen {
            out,
            origin,
            witness: true,
        } => {
            let name = origin.unwrap_or_else(|| format!("witness/{}", keys::hostname()));
            for p in keys::generate_witness(&out, &name)? {
                println!("wrote {}", p.display());
            }
            println!("witness: {name}");
            Ok(EXIT_OK)
        }
        Command::Witness(args) => crate::commands::witness::run(args).await,
        Command::Monitor(args) => crate::commands::monitor::run(args).await,
        Command::Keygen { out, origin, .. } => {
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
            let options = read_verify::ExportOptions {
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
                read_verify::export(&stores[0], &options, &mut out).await?;
            } else {
                read_verify::export_merged(&stores, &options, &mut out).await?;
            }
            Ok(EXIT_OK)
        }
        Command::CreateBucket { store, s3 } => {
            let location = S3Location::parse(&store)?;
            store::s3::create_bucket(&location, &s3.options()).await?;
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
            let log = StoredLog::new(&store);
            let newest = log
                .newest_checkpoint()
                .await?
                .context("the store has no checkpoint")?;
            let text = log.read_checkpoint(&newest).await?;
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
