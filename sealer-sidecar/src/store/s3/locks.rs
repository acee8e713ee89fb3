//! Lock forensics: what only the storage can show against the log. A key with more than
//! one version or with a delete marker, and an object not locked in COMPLIANCE mode for
//! the required days after it was written.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use auditlog::verify::ProblemClass;
use aws_sdk_s3::primitives::DateTime;

use super::S3Store;
use super::client::{remote, sdk_error};
use crate::store::{StorageFinding, StoreError};

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

impl S3Store {
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

    /// Storage-level evidence against the log (see [`crate::store::Store::storage_findings`]).
    pub(super) async fn findings(
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
}
