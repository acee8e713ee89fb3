//! `sealer serve` configuration: flags, `SEALER_*` environment variables and an optional
//! TOML file, in that order of precedence, then the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

use auditlog::k8s::{self, Selection};

use crate::http::tls::TlsFiles;
use crate::store::S3Options;

/// Options of `sealer serve`. Every one can also be set in the config file under the same
/// name with `_` for `-` (e.g. `segment_max_age = "10s"`).
#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeOptions {
    /// Address to listen on [default: 127.0.0.1:8787].
    #[arg(long, env = "SEALER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Where sealed segments and checkpoints go: a directory, file://PATH, or
    /// s3://BUCKET/PREFIX (the log goes under PREFIX/LOG_ID/) [default: DATA_DIR/store].
    #[arg(long, env = "SEALER_STORE")]
    pub store: Option<String>,
    /// Working directory for the write-ahead log [default: ./sealer-data].
    #[arg(long, env = "SEALER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory holding signing.key and hmac.key (from `sealer keygen`).
    #[arg(long, env = "SEALER_KEYS")]
    pub keys: Option<PathBuf>,
    /// Generate throw-away keys for this run (development only; nobody can verify later).
    #[arg(long, env = "SEALER_DEV_KEYS")]
    #[serde(default)]
    pub dev_keys: bool,
    /// Origin (log name) for --dev-keys [default: dev.invalid/HOSTNAME].
    #[arg(long, env = "SEALER_ORIGIN")]
    pub origin: Option<String>,
    /// Publish a signed checkpoint at least this often, even with no traffic [default: 60s].
    #[arg(long, env = "SEALER_CHECKPOINT_INTERVAL", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub checkpoint_interval: Option<Duration>,
    /// Close the open segment when it is this old [default: 10s].
    #[arg(long, env = "SEALER_SEGMENT_MAX_AGE", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub segment_max_age: Option<Duration>,
    /// A source (a gateway worker) silent this long without closing is sealed as ended
    /// uncleanly: its last events may be missing [default: 60s]. The audit filter sends a
    /// heartbeat at least every 10 s by default, so keep this several times longer.
    #[arg(long, env = "SEALER_SOURCE_SILENCE_TIMEOUT", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub source_silence_timeout: Option<Duration>,
    /// Close the open segment when it reaches this many bytes [default: 8388608].
    #[arg(long, env = "SEALER_SEGMENT_MAX_BYTES")]
    pub segment_max_bytes: Option<u64>,
    /// Largest accepted request body in bytes (413 above) [default: 16777216].
    #[arg(long, env = "SEALER_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most events in one request (413 above) [default: 10000].
    #[arg(long, env = "SEALER_MAX_BATCH_EVENTS")]
    pub max_batch_events: Option<usize>,
    /// Largest single event in bytes [default: 65536].
    #[arg(long, env = "SEALER_MAX_EVENT_BYTES")]
    pub max_event_bytes: Option<usize>,
    /// Longest string field of an event in bytes [default: 8192].
    #[arg(long, env = "SEALER_MAX_FIELD_BYTES")]
    pub max_field_bytes: Option<usize>,
    /// Most batches being parsed or waiting for the disk at once [default: 64].
    #[arg(long, env = "SEALER_MAX_INFLIGHT_BATCHES")]
    pub max_inflight_batches: Option<usize>,
    /// Most bytes of sealed events waiting locally for the store; above it new batches get
    /// 503 until the store catches up [default: 1073741824].
    #[arg(long, env = "SEALER_SPOOL_MAX_BYTES")]
    pub spool_max_bytes: Option<u64>,
    /// This log's directory under an s3:// prefix [default: the origin, with characters
    /// other than letters, digits, '-' and '.' replaced by '_'].
    #[arg(long, env = "SEALER_LOG_ID")]
    pub log_id: Option<String>,
    /// S3: days of COMPLIANCE retention given to every object [default: 365].
    #[arg(long, env = "SEALER_S3_RETENTION_DAYS")]
    pub s3_retention_days: Option<u32>,
    /// S3: path-style requests (http://HOST/BUCKET/KEY), for MinIO, Ceph, SeaweedFS.
    #[arg(long, env = "SEALER_S3_PATH_STYLE")]
    #[serde(default)]
    pub s3_path_style: bool,
    /// File holding the bearer token that `POST /v1/events` requires (mode 0600).
    #[arg(long, env = "SEALER_INGEST_TOKEN_FILE")]
    pub ingest_token_file: Option<PathBuf>,
    /// File holding the bearer token the read side requires: `GET /verify`, `/metrics`,
    /// `/v1/events`, `/v1/proof/*`, `/v1/stream`, `/v1/status` and the page (mode 0600).
    #[arg(long, env = "SEALER_READ_TOKEN_FILE")]
    pub read_token_file: Option<PathBuf>,
    /// S3: start even if the bucket lacks versioning or Object Lock. DEVELOPMENT ONLY: the
    /// objects can then be deleted or overwritten.
    #[arg(long, env = "SEALER_ALLOW_UNLOCKED")]
    #[serde(default)]
    pub allow_unlocked: bool,
    /// Keep the query index (`GET /v1/events`, `GET /v1/proof/*`) in DATA_DIR/index
    /// [default: true]. It grows with the log (about the entry's size plus 64 bytes per
    /// entry); turn it off on a high-volume gateway whose disk holds the WAL.
    #[arg(long, env = "SEALER_INDEX")]
    pub index: Option<bool>,
    /// A witness to ask for a cosignature of every checkpoint (C2SP tlog-witness):
    /// `URL=VKEY`, its URL and its public key (or the path of its witness.pub). Repeat for
    /// several witnesses.
    #[arg(long = "witness")]
    #[serde(default, rename = "witnesses")]
    pub witnesses: Vec<String>,
    /// Also serve `GET /healthz` and `GET /readyz` (nothing else) on this address, for
    /// Kubernetes probes while --listen stays on loopback.
    #[arg(long, env = "SEALER_HEALTH_LISTEN")]
    pub health_listen: Option<SocketAddr>,
    /// Serve the Kubernetes audit webhook (`POST /v1/k8s/audit`) over TLS on this address.
    /// Needs --tls-cert, --tls-key, and --webhook-token-file and/or --webhook-client-ca.
    #[arg(long, env = "SEALER_WEBHOOK_LISTEN")]
    pub webhook_listen: Option<SocketAddr>,
    /// PEM certificate chain of the webhook listener (reloaded when the file changes).
    #[arg(long, env = "SEALER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the webhook listener (reloaded when the file changes).
    #[arg(long, env = "SEALER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// File holding the bearer token the webhook requires (mode 0600), unless the caller
    /// presents a client certificate signed by --webhook-client-ca.
    #[arg(long, env = "SEALER_WEBHOOK_TOKEN_FILE")]
    pub webhook_token_file: Option<PathBuf>,
    /// PEM CA certificates; a webhook caller with a client certificate they sign needs no token.
    #[arg(long, env = "SEALER_WEBHOOK_CLIENT_CA")]
    pub webhook_client_ca: Option<PathBuf>,
    /// Largest webhook request body in bytes (413 above) [default: 33554432].
    #[arg(long, env = "SEALER_WEBHOOK_MAX_BODY_BYTES")]
    pub webhook_max_body_bytes: Option<usize>,
    /// Answer a webhook call 503 (the API server retries, on another replica behind a
    /// Service) when its events are not durable within this time, instead of keeping the API
    /// server waiting on a stalled disk [default: 2s].
    #[arg(long, env = "SEALER_WEBHOOK_DEADLINE", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub webhook_deadline: Option<Duration>,
    /// Kubernetes resources whose audit events are sealed, as kubectl names them
    /// (RESOURCE.GROUP, or RESOURCE for the core group), comma-separated [default:
    /// ingresses.networking.k8s.io, ingressclasses.networking.k8s.io,
    /// gateways.gateway.networking.k8s.io, httproutes.gateway.networking.k8s.io,
    /// grpcroutes.gateway.networking.k8s.io, gateways.networking.istio.io,
    /// virtualservices.networking.istio.io, envoyfilters.networking.istio.io,
    /// wasmplugins.extensions.istio.io].
    #[arg(long, env = "SEALER_K8S_RESOURCES", value_delimiter = ',')]
    pub k8s_resources: Option<Vec<String>>,
    /// Audit stages sealed, comma-separated [default: ResponseComplete,Panic].
    #[arg(long, env = "SEALER_K8S_STAGES", value_delimiter = ',')]
    pub k8s_stages: Option<Vec<String>>,
    /// Request and response objects larger than this (as JSON) are sealed as their SHA-256
    /// and size [default: 65536].
    #[arg(long, env = "SEALER_K8S_MAX_OBJECT_BYTES")]
    pub k8s_max_object_bytes: Option<usize>,
}

/// The audit webhook listener.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub listen: SocketAddr,
    pub tls: TlsFiles,
    pub token_file: Option<PathBuf>,
    pub max_body_bytes: usize,
    /// A call whose events are not durable within this time is answered 503.
    pub deadline: Duration,
    /// Which audit events are sealed.
    pub selection: Selection,
}

/// The audit stages the API server emits.
const AUDIT_STAGES: [&str; 4] = [
    "RequestReceived",
    "ResponseStarted",
    "ResponseComplete",
    "Panic",
];

impl ServeOptions {
    /// The webhook listener, if one is asked for; every webhook option without
    /// `--webhook-listen` is an error rather than silently unused.
    fn webhook(&self, f: &ServeOptions) -> anyhow::Result<Option<WebhookConfig>> {
        let Some(listen) = self.webhook_listen.or(f.webhook_listen) else {
            let set = [
                (
                    "--tls-cert",
                    self.tls_cert.is_some() || f.tls_cert.is_some(),
                ),
                ("--tls-key", self.tls_key.is_some() || f.tls_key.is_some()),
                (
                    "--webhook-token-file",
                    self.webhook_token_file.is_some() || f.webhook_token_file.is_some(),
                ),
                (
                    "--webhook-client-ca",
                    self.webhook_client_ca.is_some() || f.webhook_client_ca.is_some(),
                ),
            ];
            if let Some((flag, _)) = set.iter().find(|(_, set)| *set) {
                bail!("{flag} is only used by the audit webhook: give --webhook-listen ADDR too");
            }
            return Ok(None);
        };
        let (Some(cert), Some(key)) = (
            self.tls_cert.clone().or(f.tls_cert.clone()),
            self.tls_key.clone().or(f.tls_key.clone()),
        ) else {
            bail!(
                "--webhook-listen {listen}: the webhook serves TLS only; give --tls-cert FILE and \
                 --tls-key FILE (PEM)"
            );
        };
        let token_file = self
            .webhook_token_file
            .clone()
            .or(f.webhook_token_file.clone());
        let client_ca = self
            .webhook_client_ca
            .clone()
            .or(f.webhook_client_ca.clone());
        if token_file.is_none() && client_ca.is_none() {
            bail!(
                "--webhook-listen {listen}: the webhook must authenticate the API server; give \
                 --webhook-token-file FILE and/or --webhook-client-ca FILE"
            );
        }
        let mut selection = Selection::default();
        if let Some(names) = self.k8s_resources.clone().or(f.k8s_resources.clone()) {
            selection.resources = names
                .iter()
                .map(|n| k8s::parse_resource(n.trim()))
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("--k8s-resources: {e}"))?;
        }
        if let Some(stages) = self.k8s_stages.clone().or(f.k8s_stages.clone()) {
            let stages: Vec<String> = stages.iter().map(|s| s.trim().to_owned()).collect();
            if let Some(bad) = stages.iter().find(|s| !AUDIT_STAGES.contains(&s.as_str())) {
                bail!(
                    "--k8s-stages: {bad:?} is not an audit stage; use {}",
                    AUDIT_STAGES.join(", ")
                );
            }
            selection.stages = stages;
        }
        if let Some(n) = self.k8s_max_object_bytes.or(f.k8s_max_object_bytes) {
            selection.max_object_bytes = n;
        }
        Ok(Some(WebhookConfig {
            listen,
            tls: TlsFiles {
                cert,
                key,
                client_ca,
            },
            token_file,
            max_body_bytes: self
                .webhook_max_body_bytes
                .or(f.webhook_max_body_bytes)
                .unwrap_or(32 << 20),
            deadline: match self.webhook_deadline.or(f.webhook_deadline) {
                Some(d) if d.is_zero() => bail!(
                    "--webhook-deadline must be more than 0 (the time a call may take to \
                     become durable; default 2s)"
                ),
                Some(d) => d,
                None => Duration::from_secs(2),
            },
            selection,
        }))
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub store: String,
    pub data_dir: PathBuf,
    pub keys: Option<PathBuf>,
    pub dev_keys: bool,
    pub origin: Option<String>,
    pub checkpoint_interval: Duration,
    pub segment_max_age: Duration,
    pub source_silence_timeout: Duration,
    pub segment_max_bytes: u64,
    pub max_body_bytes: usize,
    pub max_batch_events: usize,
    pub max_event_bytes: usize,
    pub max_field_bytes: usize,
    pub max_inflight_batches: usize,
    pub spool_max_bytes: u64,
    pub log_id: Option<String>,
    pub s3: S3Options,
    pub ingest_token_file: Option<PathBuf>,
    pub read_token_file: Option<PathBuf>,
    pub webhook: Option<WebhookConfig>,
    pub health_listen: Option<SocketAddr>,
    pub index: bool,
    /// The witnesses asked to cosign each checkpoint.
    pub witnesses: Vec<crate::publish::witnesses::WitnessConfig>,
}

impl ServeOptions {
    /// Fill what the flags and environment left unset from `file`, then from the defaults.
    pub fn resolve(self, file: Option<&Path>) -> anyhow::Result<ServeConfig> {
        let f = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("failed to read config file {}", path.display()))?;
                toml::from_str::<ServeOptions>(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => ServeOptions::default(),
        };
        let webhook = self.webhook(&f)?;
        let data_dir = self
            .data_dir
            .or(f.data_dir)
            .unwrap_or_else(|| PathBuf::from("sealer-data"));
        let store = self
            .store
            .or(f.store)
            .unwrap_or_else(|| data_dir.join("store").to_string_lossy().into_owned());
        let config = ServeConfig {
            listen: self
                .listen
                .or(f.listen)
                .unwrap_or_else(|| "127.0.0.1:8787".parse().expect("valid address")),
            store,
            data_dir,
            keys: self.keys.or(f.keys),
            dev_keys: self.dev_keys || f.dev_keys,
            origin: self.origin.or(f.origin),
            checkpoint_interval: self
                .checkpoint_interval
                .or(f.checkpoint_interval)
                .unwrap_or(Duration::from_secs(60)),
            segment_max_age: self
                .segment_max_age
                .or(f.segment_max_age)
                .unwrap_or(Duration::from_secs(10)),
            source_silence_timeout: self
                .source_silence_timeout
                .or(f.source_silence_timeout)
                .unwrap_or(Duration::from_secs(60)),
            segment_max_bytes: self
                .segment_max_bytes
                .or(f.segment_max_bytes)
                .unwrap_or(8 << 20),
            max_body_bytes: self.max_body_bytes.or(f.max_body_bytes).unwrap_or(16 << 20),
            max_batch_events: self
                .max_batch_events
                .or(f.max_batch_events)
                .unwrap_or(10_000),
            max_event_bytes: self
                .max_event_bytes
                .or(f.max_event_bytes)
                .unwrap_or(64 << 10),
            max_field_bytes: self
                .max_field_bytes
                .or(f.max_field_bytes)
                .unwrap_or(8 << 10),
            max_inflight_batches: self
                .max_inflight_batches
                .or(f.max_inflight_batches)
                .unwrap_or(64),
            spool_max_bytes: self
                .spool_max_bytes
                .or(f.spool_max_bytes)
                .unwrap_or(1 << 30),
            log_id: self.log_id.or(f.log_id),
            ingest_token_file: self.ingest_token_file.or(f.ingest_token_file),
            read_token_file: self.read_token_file.or(f.read_token_file),
            webhook,
            health_listen: self.health_listen.or(f.health_listen),
            index: self.index.or(f.index).unwrap_or(true),
            witnesses: if self.witnesses.is_empty() {
                &f.witnesses
            } else {
                &self.witnesses
            }
            .iter()
            .map(|w| w.parse())
            .collect::<anyhow::Result<_>>()?,
            s3: S3Options {
                path_style: self.s3_path_style || f.s3_path_style,
                retention_days: self
                    .s3_retention_days
                    .or(f.s3_retention_days)
                    .unwrap_or(S3Options::default().retention_days),
                allow_unlocked: self.allow_unlocked || f.allow_unlocked,
            },
        };
        config.check()?;
        Ok(config)
    }
}

impl ServeConfig {
    fn check(&self) -> anyhow::Result<()> {
        let tokens = self.ingest_token_file.is_some() && self.read_token_file.is_some();
        if !self.listen.ip().is_loopback() && !tokens {
            bail!(
                "--listen {}: a listener beyond loopback needs bearer tokens for both roles: \
                 give --ingest-token-file and --read-token-file (or listen on 127.0.0.1 beside \
                 the gateway)",
                self.listen
            );
        }
        if self.keys.is_some() && self.dev_keys {
            bail!("--keys and --dev-keys exclude each other: choose one");
        }
        if self.keys.is_none() && !self.dev_keys {
            bail!(
                "no keys: give --keys DIR (create them with `sealer keygen --out DIR`), \
                 or --dev-keys for throw-away development keys"
            );
        }
        if self.checkpoint_interval < Duration::from_millis(100) {
            bail!("--checkpoint-interval must be at least 100ms");
        }
        if self.source_silence_timeout < Duration::from_millis(100) {
            bail!("--source-silence-timeout must be at least 100ms");
        }
        if self.segment_max_age < Duration::from_millis(10) {
            bail!("--segment-max-age must be at least 10ms");
        }
        if self.s3.retention_days == 0 {
            bail!("--s3-retention-days must be at least 1");
        }
        if let Some(id) = &self.log_id {
            crate::store::check_log_id(id)?;
        }
        if self.max_batch_events == 0 || self.max_inflight_batches == 0 {
            bail!("--max-batch-events and --max-inflight-batches must be at least 1");
        }
        Ok(())
    }
}

/// Parse `250ms`, `10s`, `5m`, `1h`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 10s, 5m, 1h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!(
            "invalid duration {s:?}: unit must be ms, s, m or h"
        )),
    }
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn flags_override_file_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sealer.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nsegment_max_age = \"2s\"\ndev_keys = true\n",
        )
        .unwrap();
        let flags = ServeOptions {
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..Default::default()
        };
        let c = flags.resolve(Some(&file)).unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.segment_max_age, Duration::from_secs(2));
        assert_eq!(c.checkpoint_interval, Duration::from_secs(60));
        assert!(c.dev_keys);

        std::fs::write(&file, "segment_max_agee = \"2s\"\n").unwrap();
        let err = ServeOptions::default().resolve(Some(&file)).unwrap_err();
        assert!(format!("{err:#}").contains("segment_max_agee"), "{err:#}");
    }

    #[test]
    fn refuses_to_listen_beyond_loopback() {
        let flags = ServeOptions {
            listen: Some("0.0.0.0:8787".parse().unwrap()),
            dev_keys: true,
            ..Default::default()
        };
        let err = flags.resolve(None).unwrap_err();
        assert!(err.to_string().contains("--ingest-token-file"), "{err}");
        let with_tokens = ServeOptions {
            listen: Some("0.0.0.0:8787".parse().unwrap()),
            dev_keys: true,
            ingest_token_file: Some("ingest.token".into()),
            read_token_file: Some("read.token".into()),
            ..Default::default()
        };
        assert!(with_tokens.resolve(None).is_ok());
    }

    #[test]
    fn webhook_options_are_checked_together() {
        let base = || ServeOptions {
            dev_keys: true,
            ..Default::default()
        };
        let err = ServeOptions {
            tls_cert: Some("c.pem".into()),
            ..base()
        }
        .resolve(None)
        .unwrap_err();
        assert!(err.to_string().contains("--webhook-listen"), "{err}");
        let listen = || ServeOptions {
            webhook_listen: Some("0.0.0.0:8443".parse().unwrap()),
            ..base()
        };
        let err = listen().resolve(None).unwrap_err();
        assert!(err.to_string().contains("--tls-cert"), "{err}");
        let tls = || ServeOptions {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            ..listen()
        };
        let err = tls().resolve(None).unwrap_err();
        assert!(err.to_string().contains("--webhook-token-file"), "{err}");
        let ok = ServeOptions {
            webhook_client_ca: Some("ca.pem".into()),
            k8s_resources: Some(vec![
                "ingresses.networking.k8s.io".into(),
                "services".into(),
            ]),
            k8s_stages: Some(vec!["ResponseComplete".into()]),
            ..tls()
        }
        .resolve(None)
        .unwrap();
        let webhook = ok.webhook.unwrap();
        assert_eq!(
            webhook.selection.resources,
            vec![
                ("networking.k8s.io".to_owned(), "ingresses".to_owned()),
                ("".to_owned(), "services".to_owned())
            ]
        );
        assert_eq!(webhook.selection.stages, vec!["ResponseComplete"]);
        let err = ServeOptions {
            webhook_token_file: Some("t".into()),
            k8s_stages: Some(vec!["Done".into()]),
            ..tls()
        }
        .resolve(None)
        .unwrap_err();
        assert!(
            err.to_string().contains("\"Done\" is not an audit stage"),
            "{err}"
        );
    }

    #[test]
    fn keys_are_required() {
        let err = ServeOptions::default().resolve(None).unwrap_err();
        assert!(err.to_string().contains("sealer keygen"), "{err}");
    }
}
