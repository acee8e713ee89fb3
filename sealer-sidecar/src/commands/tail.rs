//! `sealer tail`: print entries as they arrive, as NDJSON, with the filters of
//! `GET /v1/events`.
//!
//! - `--url http://HOST:PORT` follows a running sealer's `GET /v1/stream`: entries appear
//!   the moment they are durable in its write-ahead log.
//! - `--store DIR|s3://BUCKET/PREFIX` follows a store, every log under an S3 prefix: entries
//!   appear once their segment is stored (`--segment-max-age`, 10 s by default). Tail does
//!   not verify what it prints; `sealer verify` does.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use auditlog::query::{Fields, Filter};
use auditlog::record::parse_record;
use http_body_util::BodyExt;

use crate::commands::EXIT_OK;
use crate::commands::args::{FilterArgs, S3Args};
use crate::keys;
use crate::read::StoredLog;
use crate::store::{AnyStore, Store};

#[derive(clap::Args, Debug)]
pub struct TailArgs {
    /// Follow a running sealer (http://HOST:PORT).
    #[arg(long, conflicts_with = "store", required_unless_present = "store")]
    url: Option<String>,
    /// With --url: file holding the sealer's read token.
    #[arg(long, requires = "url")]
    read_token_file: Option<PathBuf>,
    /// Follow a store: a directory, file://PATH, or s3://BUCKET/PREFIX (every log under it).
    #[arg(long)]
    store: Option<String>,
    /// With --store: print what is already stored first.
    #[arg(long, requires = "store")]
    from_start: bool,
    /// With --store: how often to look for new segments.
    #[arg(long, default_value = "1s", value_parser = crate::config::parse_duration, conflicts_with = "url")]
    interval: Duration,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    s3: S3Args,
}

pub async fn run(args: TailArgs) -> anyhow::Result<u8> {
    let filter = args.filter.filter()?;
    match (&args.url, &args.store) {
        (Some(url), _) => follow_sealer(url, &args, &filter).await,
        (None, Some(store)) => follow_store(store, &args, &filter).await,
        (None, None) => bail!("give --url URL or --store STORE"),
    }
}

/// The query string of the filter options.
fn query_of(args: &FilterArgs) -> String {
    let mut q = String::new();
    for (name, value) in args.pairs() {
        q.push(if q.is_empty() { '?' } else { '&' });
        q.push_str(name);
        q.push('=');
        for b in value.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~:".contains(&b) {
                q.push(b as char);
            } else {
                q.push_str(&format!("%{b:02X}"));
            }
        }
    }
    q
}

async fn follow_sealer(url: &str, args: &TailArgs, _filter: &Filter) -> anyhow::Result<u8> {
    let token = args
        .read_token_file
        .as_deref()
        .map(|p| keys::read_secret(p, keys::Secret::Token))
        .transpose()?;
    let path = format!("/v1/stream{}", query_of(&args.filter));
    let response =
        crate::commands::http_client::request(url, &path, token.as_deref().map(str::trim)).await?;
    if response.status() != 200 {
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        bail!(
            "{url}{path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let mut body = response.into_body();
    let mut pending = Vec::new();
    let mut event = String::new();
    let stdout = std::io::stdout();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("the stream broke off")?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        pending.extend_from_slice(data);
        while let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line).trim_end().to_owned();
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_owned();
            } else if let Some(data) = line.strip_prefix("data: ") {
                let mut out = stdout.lock();
                if event == "entry" {
                    writeln!(out, "{data}")?;
                } else if event == "lagged" {
                    eprintln!("warning: too slow for the stream; entries were skipped: {data}");
                }
                out.flush()?;
            } else if line.is_empty() {
                event.clear();
            }
        }
    }
    eprintln!("the sealer closed the stream");
    Ok(EXIT_OK)
}

async fn follow_store(location: &str, args: &TailArgs, filter: &Filter) -> anyhow::Result<u8> {
    let logs = crate::commands::args::open_logs(location, &args.s3).await?;
    let mut seen: Vec<HashSet<String>> = vec![HashSet::new(); logs.len()];
    if !args.from_start {
        for (log, seen) in logs.iter().zip(&mut seen) {
            let segments = StoredLog::new(log).segments().await?;
            seen.extend(segments.into_iter().map(|s| s.key));
        }
    }
    loop {
        for (log, seen) in logs.iter().zip(&mut seen) {
            print_new(log, seen, filter).await?;
        }
        tokio::time::sleep(args.interval).await;
    }
}

async fn print_new(
    log: &AnyStore,
    seen: &mut HashSet<String>,
    filter: &Filter,
) -> anyhow::Result<()> {
    let fresh: Vec<String> = StoredLog::new(log)
        .segments()
        .await?
        .into_iter()
        .map(|s| s.key)
        .filter(|k| !seen.contains(k))
        .collect();
    let stdout = std::io::stdout();
    for key in fresh {
        let Some(bytes) = log.get(&key).await? else {
            continue;
        };
        let mut out = stdout.lock();
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let record = parse_record(line).map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
            let text = std::str::from_utf8(record.entry)?;
            let value: serde_json::Value = serde_json::from_str(text)?;
            if filter.matches(&Fields::of(&value), text) {
                writeln!(out, "{text}")?;
            }
        }
        out.flush()?;
        seen.insert(key);
    }
    Ok(())
}
