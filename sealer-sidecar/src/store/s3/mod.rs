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

//!
//! The S3 store is the cargo feature `s3` (on by default; `cargo xtask demo` builds without
//! it, to build in half the time). Built without it, the sealer still reads S3 locations and
//! answers that it cannot use them ([`open_logs`], [`open_log`], [`create_bucket`]).
//!
//! - `location`: `s3://bucket/prefix`, log ids, settings (always built);
//! - `client`: the S3 client and its error messages;
//! - `bucket`: checking a bucket is fit (versioning, Object Lock), creating one;
//! - `discovery`: the logs under a shared prefix;
//! - `locks`: lock forensics for verification (versions, delete markers, retention).

mod location;
pub use location::{S3Location, S3Options, log_id};

#[cfg(feature = "s3")]
mod bucket;
#[cfg(feature = "s3")]
mod client;
#[cfg(feature = "s3")]
mod discovery;
#[cfg(feature = "s3")]
mod locks;

#[cfg(not(feature = "s3"))]
pub use disabled::*;
#[cfg(feature = "s3")]
pub use enabled::*;

/// The answer of a sealer built without the `s3` feature to an S3 location.
#[cfg(not(feature = "s3"))]
mod disabled {
    use super::{S3Location, S3Options};
    use crate::store::AnyStore;

    fn not_built(location: &S3Location) -> anyhow::Error {
        anyhow::anyhow!(
            "{location}: this sealer was built without S3 support; build it with the cargo \
             feature `s3` (the default: `cargo build -p sealer-sidecar`)"
        )
    }

    pub async fn open_logs(base: &S3Location, _: &S3Options) -> anyhow::Result<Vec<AnyStore>> {
        Err(not_built(base))
    }

    pub async fn open_log(
        base: &S3Location,
        _log_id: &str,
        _: &S3Options,
    ) -> anyhow::Result<AnyStore> {
        Err(not_built(base))
    }

    pub async fn create_bucket(location: &S3Location, _: &S3Options) -> anyhow::Result<()> {
        Err(not_built(location))
    }
}

#[cfg(feature = "s3")]
mod enabled {
    use std::time::{Duration, SystemTime};

    use aws_sdk_s3::Client;
    use aws_sdk_s3::primitives::{ByteStream, DateTime};
    use aws_sdk_s3::types::ObjectLockMode;
    use base64::Engine;
    use bytes::Bytes;
    use sha2::{Digest, Sha256};

    pub use super::bucket::{BucketCheck, create_locked_bucket, open_log_store};
    pub use super::client::client;
    use super::client::{remote, sdk_error};
    pub use super::locks::{ObjectLock, ObjectVersion};
    use super::{S3Location, S3Options};

    use crate::store::{AnyStore, ObjectInfo, PutOutcome, StorageFinding, StoreError, check_key};

    /// Every log under `base`, for the commands that read stores.
    pub async fn open_logs(
        base: &S3Location,
        options: &S3Options,
    ) -> anyhow::Result<Vec<AnyStore>> {
        let client = client(options).await;
        let ids = S3Store::discover_logs(&client, base).await?;
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

    /// The log `log_id` under `base`, for `sealer serve` to write (its bucket checked first).
    pub async fn open_log(
        base: &S3Location,
        log_id: &str,
        options: &S3Options,
    ) -> anyhow::Result<AnyStore> {
        Ok(AnyStore::S3(open_log_store(base, log_id, options).await?))
    }

    /// Create the bucket of `location` with Object Lock (and so versioning) enabled.
    pub async fn create_bucket(location: &S3Location, options: &S3Options) -> anyhow::Result<()> {
        create_locked_bucket(&client(options).await, &location.bucket).await
    }

    /// A log under `s3://bucket/prefix/`.
    #[derive(Clone, Debug)]
    pub struct S3Store {
        pub(super) client: Client,
        pub(super) location: S3Location,
        /// Retention of new objects; `None` when the bucket has no Object Lock (allowed unlocked).
        pub(super) retention: Option<Duration>,
    }

    impl S3Store {
        /// GetObject, of the whole object or of an HTTP `range`; `None` if there is none.
        async fn get_object(
            &self,
            key: &str,
            range: Option<String>,
        ) -> Result<Option<Bytes>, StoreError> {
            check_key(key)?;
            let out = match self
                .client
                .get_object()
                .bucket(&self.location.bucket)
                .key(self.full_key(key))
                .set_range(range)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                    return Ok(None);
                }
                Err(e) => return Err(remote(key, sdk_error(&e))),
            };
            let body = out
                .body
                .collect()
                .await
                .map_err(|e| remote(key, format!("reading the object failed: {e}")))?;
            Ok(Some(body.into_bytes()))
        }

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

        pub(super) fn full_key(&self, key: &str) -> String {
            format!("{}{key}", self.location.prefix)
        }
    }

    impl crate::store::Store for S3Store {
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
            self.get_object(key, None).await
        }

        async fn get_range(
            &self,
            key: &str,
            offset: u64,
            len: u64,
        ) -> Result<Option<Bytes>, StoreError> {
            if len == 0 {
                check_key(key)?;
                return Ok(Some(Bytes::new()));
            }
            let range = format!("bytes={offset}-{}", offset + len - 1);
            self.get_object(key, Some(range)).await
        }

        async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
            self.list_after(prefix, "").await
        }

        async fn put_many_if_absent(&self, items: Vec<(String, Bytes)>) -> Result<(), StoreError> {
            use futures_util::StreamExt;
            // Small objects: the round trips dominate, so several go at once.
            let results: Vec<Result<PutOutcome, StoreError>> = futures_util::stream::iter(items)
                .map(|(key, bytes)| async move { self.put_if_absent(&key, bytes).await })
                .buffer_unordered(16)
                .collect()
                .await;
            results.into_iter().try_for_each(|r| r.map(|_| ()))
        }

        async fn list_after(
            &self,
            prefix: &str,
            start_after: &str,
        ) -> Result<Vec<ObjectInfo>, StoreError> {
            let full = self.full_key(prefix);
            let mut request = self
                .client
                .list_objects_v2()
                .bucket(&self.location.bucket)
                .prefix(&full);
            if !start_after.is_empty() {
                request = request.start_after(self.full_key(start_after));
            }
            let mut pages = request.into_paginator().send();
            let mut out = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| remote(prefix, sdk_error(&e)))?;
                for o in page.contents() {
                    let Some(key) = o.key().and_then(|k| k.strip_prefix(&self.location.prefix))
                    else {
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
            self.findings(min_retention_days).await
        }
    }
}
