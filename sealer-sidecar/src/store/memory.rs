//! An in-memory store for tests, which can be told to fail.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::{ObjectInfo, PutOutcome, Store, StoreError, check_key};

/// How the next puts fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Puts succeed.
    Never,
    /// Puts fail and nothing is written.
    Fail,
    /// Puts write the object, then report an error (a lost acknowledgement).
    FailAfterWrite,
}

#[derive(Clone, Debug)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    objects: BTreeMap<String, Bytes>,
    fail: FailMode,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            inner: Arc::new(Mutex::new(Inner {
                objects: BTreeMap::new(),
                fail: FailMode::Never,
            })),
        }
    }
}

impl MemoryStore {
    pub fn set_fail(&self, mode: FailMode) {
        self.inner.lock().unwrap().fail = mode;
    }

    /// Replace an object behind the store's back, as an attacker would.
    pub fn tamper(&self, key: &str, bytes: Bytes) {
        self.inner.lock().unwrap().objects.insert(key.into(), bytes);
    }

    fn injected(key: &str) -> StoreError {
        StoreError::Io {
            key: key.to_owned(),
            source: std::io::Error::other("injected failure"),
        }
    }
}

impl Store for MemoryStore {
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome, StoreError> {
        check_key(key)?;
        let mut inner = self.inner.lock().unwrap();
        if inner.fail == FailMode::Fail {
            return Err(Self::injected(key));
        }
        let outcome = match inner.objects.get(key) {
            Some(existing) if *existing == bytes => PutOutcome::AlreadyPresent,
            Some(_) => {
                return Err(StoreError::Conflict {
                    key: key.to_owned(),
                });
            }
            None => {
                inner.objects.insert(key.to_owned(), bytes);
                PutOutcome::Created
            }
        };
        if inner.fail == FailMode::FailAfterWrite {
            return Err(Self::injected(key));
        }
        Ok(outcome)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(self.inner.lock().unwrap().objects.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let inner = self.inner.lock().unwrap();
        Ok(inner
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectInfo {
                key: k.clone(),
                size: v.len() as u64,
            })
            .collect())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}
