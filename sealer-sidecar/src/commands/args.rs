//! What several commands take: where a store is and with which keys ([`StoreArgs`]), S3
//! settings ([`S3Args`]), the query filters ([`FilterArgs`]), and opening every log at a
//! location ([`open_logs`]).

use std::path::PathBuf;

use crate::read::StoredLog;
use crate::store::{self, AnyStore, LocalStore, S3Location, S3Options};

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
        auditlog::query::Filter::from_pairs(self.pairs()).map_err(|e| {
            // The parameter `path_prefix` is the option --path-prefix.
            anyhow::anyhow!("--{}: {}", e.param.replace('_', "-"), e.message)
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct StoreArgs {
    /// The store: a directory, file://PATH, or s3://BUCKET/PREFIX (every log under the
    /// prefix is verified).
    #[arg(long)]
    pub store: String,
    /// A log's public key (signing.pub). Repeat for several logs: each log is checked with
    /// the key named after its origin.
    #[arg(long, required = true)]
    pub public_key: Vec<PathBuf>,
    /// The secret HMAC key (hmac.key), to check every entry's MAC too (one log only).
    #[arg(long)]
    pub hmac_key: Option<PathBuf>,
    #[command(flatten)]
    pub s3: S3Args,
}

#[derive(clap::Args, Debug, Clone)]
pub struct S3Args {
    /// S3: path-style requests (http://HOST/BUCKET/KEY), for MinIO, Ceph, SeaweedFS.
    #[arg(long, env = "SEALER_S3_PATH_STYLE")]
    s3_path_style: bool,
}

impl S3Args {
    pub fn options(&self) -> S3Options {
        S3Options {
            path_style: self.s3_path_style,
            ..S3Options::default()
        }
    }
}

/// The logs at a location: the one in a local directory, or every log under an S3 prefix.
pub async fn open_logs(location: &str, s3: &S3Args) -> anyhow::Result<Vec<AnyStore>> {
    if !store::is_s3(location) {
        if location.contains("://") && !location.starts_with("file://") {
            anyhow::bail!(
                "unsupported store location {location:?}: give a directory path, file://PATH \
                 or s3://BUCKET/PREFIX"
            );
        }
        let path = location.strip_prefix("file://").unwrap_or(location);
        // A directory of logs (a fleet's, one subdirectory per log) is opened log by log.
        let fleet = fleet_logs(std::path::Path::new(path));
        if !fleet.is_empty() {
            return fleet
                .iter()
                .map(|dir| Ok(AnyStore::Local(LocalStore::open_existing(dir)?)))
                .collect();
        }
        return Ok(vec![AnyStore::Local(LocalStore::open_existing(path)?)]);
    }
    store::s3::open_logs(&S3Location::parse(location)?, &s3.options()).await
}

/// The subdirectories of `dir` that are logs, in name order, when `dir` itself is not one.
fn fleet_logs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let is_log = |d: &std::path::Path| {
        [auditlog::layout::CHECKPOINTS, auditlog::layout::SEGMENTS]
            .iter()
            .any(|p| d.join(p.trim_end_matches('/')).is_dir())
    };
    if is_log(dir) {
        return Vec::new();
    }
    let mut logs: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && is_log(p))
        .collect();
    logs.sort();
    logs
}

/// The origin a log's first checkpoint names (its first line).
pub async fn log_origin(store: &AnyStore) -> anyhow::Result<Option<String>> {
    Ok(StoredLog::new(store).origin().await?)
}
