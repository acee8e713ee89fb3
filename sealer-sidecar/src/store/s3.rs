//! S3 with Object Lock: the store for a fleet (AWS S3, MinIO, Ceph RGW, SeaweedFS).
//!
//! Every object is written once, locked and checksummed. A PUT carries
//!
//! - `If-None-Match: *`, so an existing key is never replaced (the server answers 412);
//! - `x-amz-object-lock-mode: COMPLIANCE` and `x-amz-object-lock-retain-until-date`, so no
//!   one, not even the bucket's owner, can delete or shorten it before that date;
//! - `x-amz-checksum-sha256`, so the server refuses bytes damaged on the way (`BadDigest`).
//!
//! A 412 is resolved by reading the stored object: identical bytes are an idempotent retry,
//! different bytes are an integrity alarm, never "fixed" by overwriting.
//!
//! Locations are `s3://bucket/prefix`. A sealer writes its log under
//! `prefix/<log-id>/` ([`log_id`]); a verifier given `s3://bucket/prefix` finds every log
//! below it ([`S3Store::discover_logs`]). Credentials, region and endpoint come from the standard AWS
//! configuration chain (environment, profile, `AWS_ENDPOINT_URL`, ...).

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{BucketVersioningStatus, ObjectLockEnabled, ObjectLockMode};
use base64::Engine;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

use std::collections::BTreeMap;

use auditlog::verify::ProblemClass;

use super::{ObjectInfo, PutOutcome, StorageFinding, StoreError, check_key};

/// `s3://bucket/prefix`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Key prefix with a trailing `/`, or empty for the whole bucket.
    pub prefix: String,
}

impl S3Location {
    /// Parse `s3://bucket` or `s3://bucket/some/prefix`.
    pub fn parse(url: &str) -> anyhow::Result<S3Location> {
        let Some(rest) = url.strip_prefix("s3://") else {
            anyhow::bail!("{url:?} is not an S3 location: write s3://BUCKET/PREFIX");
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
        if !valid_bucket {
            anyhow::bail!(
                "{url:?}: {bucket:?} is not a valid bucket name (3 to 63 lowercase letters, \
                 digits, '-' or '.')"
            );
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            check_key(prefix).map_err(|e| anyhow::anyhow!("{url:?}: prefix {e}"))?;
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        })
    }

    /// The location of one log below this one.
    pub fn child(&self, log_id: &str) -> S3Location {
        S3Location {
            bucket: self.bucket.clone(),
            prefix: format!("{}{log_id}/", self.prefix),
        }
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "s3://{}/{}",
            self.bucket,
            self.prefix.trim_end_matches('/')
        )
    }
}

/// The directory name a log gets under a shared prefix: its origin with every character
/// other than ASCII letters, digits, `-` and `.` replaced by `_`
/// (`ingress-audit/gw-1` → `ingress-audit_gw-1`).
pub fn log_id(origin: &str) -> String {
    let id: String = origin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.starts_with('.') {
        format!("_{id}")
    } else {
        id
    }
}

/// How the sealer talks to S3.
#[derive(Clone, Debug)]
pub struct S3Options {
    /// Path-style requests (`http://host/bucket/key`), needed by most non-AWS servers.
    pub path_style: bool,
    /// COMPLIANCE retention given to every object, in days.
    pub retention_days: u32,
    /// Start against a bucket without versioning or Object Lock (development only).
    pub allow_unlocked: bool,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            path_style: false,
            retention_days: 365,
            allow_unlocked: false,
        }
    }
}

/// An S3 client from the standard AWS configuration chain. Without a configured region,
/// `us-east-1` (S3-compatible servers accept any).
pub async fn client(options: &S3Options) -> Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let mut config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(options.path_style)
        // The sealer sets its own SHA-256 checksum on every PUT; no extra CRC trailers.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        );
    if shared.region().is_none() {
        config = config.region(aws_sdk_s3::config::Region::new("us-east-1"));
    }
    Client::from_conf(config.build())
}

/// A short account of a failed request: the S3 error code, its message and the HTTP status
/// for an answer; the cause (connection refused, timeout, ...) for no answer.
fn sdk_error<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    match e {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let err = service.err();
            match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("{code}: {message} (HTTP {status})"),
                (Some(code), None) => format!("{code} (HTTP {status})"),
                _ => format!("HTTP {status}"),
            }
        }
        other => format!("{}", DisplayErrorContext(other)),
    }
}

fn remote(key: &str, message: String) -> StoreError {
    StoreError::Remote {
        key: key.to_owned(),
        message,
    }
}

/// What is wrong with a bucket for an audit log; empty when it is fit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketCheck {
    pub missing: Vec<&'static str>,
}

/// Open the log `log_id` under `base` (`s3://bucket/prefix`) for the sealer to write: the
/// bucket must exist with versioning and Object Lock, unless `allow_unlocked`.
pub async fn open_log(base: &str, log_id: &str, options: &S3Options) -> anyhow::Result<S3Store> {
    let location = S3Location::parse(base)?.child(log_id);
    let client = client(options).await;
    let probe = S3Store::new(client.clone(), location.clone(), None);
    let check = probe.check_bucket().await?;
    if check.missing.is_empty() {
        return Ok(S3Store::new(client, location, Some(options.retention_days)));
    }
    let missing = check.missing.join(" and ");
    if !options.allow_unlocked {
        anyhow::bail!(
            "bucket {:?} is not safe for an audit log: {missing}. Use a bucket created with \
             Object Lock enabled (which also enables versioning), e.g. `aws s3api create-bucket \
             --bucket NAME --object-lock-enabled-for-bucket`; or, for development only, pass \
             --allow-unlocked",
            location.bucket
        );
    }
    tracing::error!(
        bucket = %location.bucket,
        "DEVELOPMENT ONLY (--allow-unlocked): {missing}; objects are written WITHOUT a lock \
         and anyone with delete rights can remove or replace them. Never run this way in production"
    );
    Ok(S3Store::new(client, location, None))
}

/// Create `bucket` with Object Lock enabled (S3 then enables versioning too).
pub async fn create_locked_bucket(client: &Client, bucket: &str) -> anyhow::Result<()> {
    // AWS wants the region named for any region but us-east-1 (the API's default).
    let region = client.config().region().map(|r| r.as_ref().to_owned());
    let location = region.filter(|r| r != "us-east-1").map(|r| {
        aws_sdk_s3::types::CreateBucketConfiguration::builder()
            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                r.as_str(),
            ))
            .build()
    });
    client
        .create_bucket()
        .bucket(bucket)
        .object_lock_enabled_for_bucket(true)
        .set_create_bucket_configuration(location)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot create bucket {bucket:?}: {}", sdk_error(&e)))?;
    Ok(())
}

/// One stored version of an object, as `ListObjectVersions` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectVersion {
    /// Key relative to the store's prefix.
    pub key: String,
    pub version_id: String,
    pub delete_marker: bool,
}

/// An object's lock, as `HeadObject` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectLock {
    pub mode: Option<String>,
    pub retain_until: Option<SystemTime>,
    pub last_modified: Option<SystemTime>,
}

/// A log under `s3://bucket/prefix/`.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    location: S3Location,
    /// Retention of new objects; `None` when the bucket has no Object Lock (allowed unlocked).
    retention: Option<Duration>,
}

impl S3Store {
    /// A store at `location` that writes COMPLIANCE-locked objects with `retention_days`.
    pub fn new(client: Client, location: S3Location, retention_days: Option<u32>) -> S3Store {
        S3Store {
            client,
            location,
            retention: retention_days.map(|d| Duration::from_secs(u64::from(d) * 86_400)),
        }
    }

    pub fn location(&self) -> &S3Location {
        &self.location
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.location.prefix)
    }

    /// Whether the bucket exists with versioning and Object Lock enabled.
    pub async fn check_bucket(&self) -> anyhow::Result<BucketCheck> {
        let bucket = &self.location.bucket;
        if let Err(e) = self.client.head_bucket().bucket(bucket).send().await {
            let status = e.raw_response().map(|r| r.status().as_u16());
            if status == Some(404) {
                anyhow::bail!(
                    "bucket {bucket:?} does not exist; create it with Object Lock enabled \
                     (aws s3api create-bucket --bucket {bucket} --object-lock-enabled-for-bucket)"
                );
            }
            anyhow::bail!("cannot reach bucket {bucket:?}: {}", sdk_error(&e));
        }
        let mut check = BucketCheck::default();
        let versioning = self
            .client
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetBucketVersioning on {bucket:?}: {}", sdk_error(&e)))?;
        if versioning.status() != Some(&BucketVersioningStatus::Enabled) {
            check.missing.push("versioning is not enabled");
        }
        match self
            .client
            .get_object_lock_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => {
                let enabled = out
                    .object_lock_configuration()
                    .and_then(|c| c.object_lock_enabled())
                    == Some(&ObjectLockEnabled::Enabled);
                if !enabled {
                    check.missing.push("Object Lock is not enabled");
                }
            }
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => {
                check.missing.push("Object Lock is not enabled");
            }
            Err(e) => anyhow::bail!(
                "GetObjectLockConfiguration on {bucket:?}: {}",
                sdk_error(&e)
            ),
        }
        Ok(check)
    }

    /// Every version and delete marker under the store's prefix.
    pub async fn versions(&self) -> Result<Vec<ObjectVersion>, StoreError> {
        let mut out = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.location.bucket)
                .prefix(&self.location.prefix)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| remote(&self.location.prefix, sdk_error(&e)))?;
            let strip = |k: Option<&str>| {
                k.and_then(|k| k.strip_prefix(&self.location.prefix))
                    .map(str::to_owned)
            };
            for v in page.versions() {
                if let Some(key) = strip(v.key()) {
                    out.push(ObjectVersion {
                        key,
                        version_id: v.version_id().unwrap_or("null").to_owned(),
                        delete_marker: false,
                    });
                }
            }
            for m in page.delete_markers() {
                if let Some(key) = strip(m.key()) {
                    out.push(ObjectVersion {
                        key,
                        version_id: m.version_id().unwrap_or("null").to_owned(),
                        delete_marker: true,
                    });
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// The lock on the current version of `key`; `None` if there is none (deleted).
    pub async fn lock(&self, key: &str) -> Result<Option<ObjectLock>, StoreError> {
        let head = match self
            .client
            .head_object()
            .bucket(&self.location.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(head) => head,
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => {
                return Ok(None);
            }
            Err(e) => return Err(remote(key, sdk_error(&e))),
        };
        let time = |t: Option<&DateTime>| t.and_then(|t| SystemTime::try_from(*t).ok());
        Ok(Some(ObjectLock {
            mode: head.object_lock_mode().map(|m| m.as_str().to_owned()),
            retain_until: time(head.object_lock_retain_until_date()),
            last_modified: time(head.last_modified()),
        }))
    }

    /// The names of the logs directly below `location` (`prefix/<log-id>/checkpoints/...`),
    /// or, if `location` is itself a log, that one (as `""`).
    pub async fn discover_logs(
        client: &Client,
        location: &S3Location,
    ) -> anyhow::Result<Vec<String>> {
        let own = format!("{}checkpoints/", location.prefix);
        let mut logs = Vec::new();
        let mut pages = client
            .list_objects_v2()
            .bucket(&location.bucket)
            .prefix(&location.prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| anyhow::anyhow!("listing {location}: {}", sdk_error(&e)))?;
            for p in page.common_prefixes() {
                let Some(p) = p.prefix() else { continue };
                if p == own || p == format!("{}segments/", location.prefix) {
                    return Ok(vec![String::new()]);
                }
                if let Some(id) = p
                    .strip_prefix(&location.prefix)
                    .and_then(|r| r.strip_suffix('/'))
                {
                    logs.push(id.to_owned());
                }
            }
        }
        Ok(logs)
    }
}

impl super::Store for S3Store {
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome, StoreError> {
        check_key(key)?;
        let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
        let mut put = self
            .client
            .put_object()
            .bucket(&self.location.bucket)
            .key(self.full_key(key))
            .if_none_match("*")
            .checksum_sha256(sha)
            .body(ByteStream::from(bytes.clone()));
        if let Some(retention) = self.retention {
            put = put
                .object_lock_mode(ObjectLockMode::Compliance)
                .object_lock_retain_until_date(DateTime::from(SystemTime::now() + retention));
        }
        // The payload is not hashed a second time for the signature: the signed
        // x-amz-checksum-sha256 header already binds the bytes, and the server checks it.
        match put.customize().disable_payload_signing().send().await {
            Ok(_) => Ok(PutOutcome::Created),
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(412) => {
                // The key exists: an earlier attempt of ours, or someone else's object.
                match self.get(key).await? {
                    Some(stored) if stored == bytes => Ok(PutOutcome::AlreadyPresent),
                    _ => Err(StoreError::Conflict {
                        key: self.full_key(key),
                    }),
                }
            }
            Err(e) => Err(remote(key, sdk_error(&e))),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        check_key(key)?;
        let out = match self
            .client
            .get_object()
            .bucket(&self.location.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(remote(key, sdk_error(&e))),
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| remote(key, format!("reading the object failed: {e}")))?;
        Ok(Some(body.into_bytes()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let full = self.full_key(prefix);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.location.bucket)
            .prefix(&full)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| remote(prefix, sdk_error(&e)))?;
            for o in page.contents() {
                let Some(key) = o.key().and_then(|k| k.strip_prefix(&self.location.prefix)) else {
                    continue;
                };
                out.push(ObjectInfo {
                    key: key.to_owned(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn describe(&self) -> String {
        self.location.to_string()
    }

    async fn storage_findings(
        &self,
        min_retention_days: Option<u32>,
    ) -> Result<Vec<StorageFinding>, StoreError> {
        let mut findings = Vec::new();
        let mut by_key: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        for v in self.versions().await? {
            let counts = by_key.entry(v.key).or_default();
            if v.delete_marker {
                counts.1 += 1;
            } else {
                counts.0 += 1;
            }
        }
        for (key, (versions, markers)) in &by_key {
            if *markers > 0 {
                findings.push((
                    ProblemClass::ObjectDeleted,
                    key.clone(),
                    format!(
                        "{markers} delete marker(s): someone deleted this object (a locked \
                         version stays in the bucket; list its versions to recover it)"
                    ),
                ));
            }
            if *versions > 1 {
                findings.push((
                    ProblemClass::ObjectRewritten,
                    key.clone(),
                    format!(
                        "{versions} versions: the object was written again after it was sealed \
                         (the log reads the newest; the oldest is the original)"
                    ),
                ));
            }
        }
        // The lock of every current object, read several at a time.
        let current: Vec<String> = by_key
            .iter()
            .filter(|(_, (versions, _))| *versions > 0)
            .map(|(k, _)| k.clone())
            .collect();
        let mut pending = tokio::task::JoinSet::new();
        let mut keys = current.into_iter();
        loop {
            while pending.len() < LOCK_READS_IN_FLIGHT {
                let Some(key) = keys.next() else { break };
                let store = self.clone();
                pending.spawn(async move {
                    let lock = store.lock(&key).await;
                    (key, lock)
                });
            }
            let Some(done) = pending.join_next().await else {
                break;
            };
            let (key, lock) = done.expect("a lock read does not panic");
            if let Some(problem) = lock?.and_then(|l| lock_problem(&l, min_retention_days)) {
                findings.push((ProblemClass::NotLocked, key, problem));
            }
        }
        Ok(findings)
    }
}

/// Object lock reads in flight during verification.
const LOCK_READS_IN_FLIGHT: usize = 16;

/// Clock difference tolerated between the sealer (which sets retain-until) and the server
/// (which sets last-modified).
const CLOCK_SLACK: Duration = Duration::from_secs(300);

/// What is wrong with an object's lock, if anything.
fn lock_problem(lock: &ObjectLock, min_retention_days: Option<u32>) -> Option<String> {
    if lock.mode.as_deref() != Some("COMPLIANCE") {
        return Some(match &lock.mode {
            None => {
                "not locked: no Object Lock retention (anyone with delete rights can remove it)"
                    .to_owned()
            }
            Some(m) => {
                format!("locked in {m} mode, not COMPLIANCE (privileged users can remove it)")
            }
        });
    }
    let Some(until) = lock.retain_until else {
        return Some("COMPLIANCE mode without a retain-until date".to_owned());
    };
    if let (Some(days), Some(written)) = (min_retention_days, lock.last_modified) {
        let required = written + Duration::from_secs(u64::from(days) * 86_400);
        if until + CLOCK_SLACK < required {
            return Some(format!(
                "retained until {}, earlier than the policy's {days} days after it was written ({})",
                DateTime::from(until),
                DateTime::from(required)
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_with_and_without_prefix() {
        let l = S3Location::parse("s3://audit-logs/prod/eu").unwrap();
        assert_eq!(l.bucket, "audit-logs");
        assert_eq!(l.prefix, "prod/eu/");
        assert_eq!(l.to_string(), "s3://audit-logs/prod/eu");
        assert_eq!(l.child("gw-1").prefix, "prod/eu/gw-1/");
        let l = S3Location::parse("s3://audit-logs/").unwrap();
        assert_eq!(l.prefix, "");
        assert_eq!(S3Location::parse("s3://audit-logs").unwrap().prefix, "");
        for bad in [
            "audit-logs/x",
            "s3://",
            "s3://AB",
            "s3://Audit/x",
            "s3://audit/../x",
            "s3://audit/a//b",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn locks_are_judged_against_the_policy() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let day = Duration::from_secs(86_400);
        let lock = |mode: Option<&str>, until: Option<SystemTime>| ObjectLock {
            mode: mode.map(str::to_owned),
            retain_until: until,
            last_modified: Some(t0),
        };
        assert_eq!(
            lock_problem(&lock(Some("COMPLIANCE"), Some(t0 + 30 * day)), Some(30)),
            None
        );
        assert_eq!(
            lock_problem(&lock(Some("COMPLIANCE"), Some(t0 + 2 * day)), None),
            None
        );
        let short = lock_problem(&lock(Some("COMPLIANCE"), Some(t0 + 29 * day)), Some(30));
        assert!(short.unwrap().contains("earlier than the policy's 30 days"));
        assert!(
            lock_problem(&lock(Some("GOVERNANCE"), Some(t0 + 99 * day)), Some(1))
                .unwrap()
                .contains("not COMPLIANCE")
        );
        assert!(
            lock_problem(&lock(None, None), None)
                .unwrap()
                .starts_with("not locked")
        );
        assert!(lock_problem(&lock(Some("COMPLIANCE"), None), None).is_some());
    }

    #[test]
    fn log_ids_are_safe_key_components() {
        assert_eq!(log_id("ingress-audit/gw-1"), "ingress-audit_gw-1");
        assert_eq!(log_id("e2e.test/a b"), "e2e.test_a_b");
        assert_eq!(log_id(".hidden"), "_.hidden");
        for origin in ["ingress-audit/gw-1", "x/y/z", "ünï/code", ".a"] {
            check_key(&log_id(origin)).unwrap();
        }
    }
}
