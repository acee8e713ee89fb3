//! Buckets fit for an audit log: versioning and Object Lock, checked before the sealer writes
//! and created by `sealer create-bucket`.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{BucketVersioningStatus, ObjectLockEnabled};

use super::client::{client, sdk_error};
use super::{S3Location, S3Options, S3Store};

/// What is wrong with a bucket for an audit log; empty when it is fit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketCheck {
    pub missing: Vec<&'static str>,
}

/// Open the log `log_id` under `base` (`s3://bucket/prefix`) for the sealer to write: the
/// bucket must exist with versioning and Object Lock, unless `allow_unlocked`.
pub async fn open_log_store(
    base: &S3Location,
    log_id: &str,
    options: &S3Options,
) -> anyhow::Result<S3Store> {
    let location = base.child(log_id);
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

impl S3Store {
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
}
