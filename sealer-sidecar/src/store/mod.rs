//! Write-once object storage for sealed segments and checkpoints.
//!
//! A [`Store`] has three operations. None of them can change or remove an object, and no
//! other code path in the sealer can: the log is append-only by construction.
//!
//! - [`Store::put_if_absent`] creates an object, or finds it already there. If the bytes
//!   already stored are identical, that is success (an idempotent retry after a crash); if
//!   they differ, it is [`StoreError::Conflict`], an integrity alarm that is never "fixed".
//! - [`Store::get`] reads an object.
//! - [`Store::list`] lists objects under a prefix, in key order.
//!
//! [`LocalStore`] is the default; [`S3Store`] keeps the log in S3 with Object Lock;
//! [`MemoryStore`] is for tests and can be told to fail.

mod local;
mod memory;
pub mod s3;

use std::future::Future;
use std::path::Path;

use bytes::Bytes;

pub use local::LocalStore;
pub use memory::{FailMode, MemoryStore};
#[cfg(feature = "s3")]
pub use s3::S3Store;
pub use s3::{S3Location, S3Options};

use auditlog::verify::ProblemClass;

/// An object's key and size, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

/// The result of a successful [`Store::put_if_absent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object was created by this call.
    Created,
    /// An identical object was already there.
    AlreadyPresent,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An object exists under the key with different content.
    #[error("integrity alarm: {key} already exists in the store with different content")]
    Conflict { key: String },
    #[error("store I/O failed on {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid store key {key:?}: {reason}")]
    BadKey { key: String, reason: &'static str },
    /// A remote store (S3) failed or refused the request.
    #[error("store request on {key} failed: {message}")]
    Remote { key: String, message: String },
}

/// Storage-level evidence against the log: `(class, key, message)`.
pub type StorageFinding = (ProblemClass, String, String);

/// Write-once object storage. Keys are `/`-separated relative paths.
pub trait Store: Send + Sync + 'static {
    fn put_if_absent(
        &self,
        key: &str,
        bytes: Bytes,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;

    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;

    /// Create several small objects, as [`Store::put_if_absent`] does each, but made durable
    /// together: the local store writes them all, then flushes once, where one at a time would
    /// cost two `fsync`s each (the tiles of a segment are hundreds of 8 KiB objects). An
    /// error leaves some created and some not; calling again with the same objects is safe.
    fn put_many_if_absent(
        &self,
        items: Vec<(String, Bytes)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            for (key, bytes) in items {
                self.put_if_absent(&key, bytes).await?;
            }
            Ok(())
        }
    }

    /// The whole object, read into `buf` (its content replaced, its memory reused), for a
    /// reader of many large objects: verification reads every segment, and fresh memory for
    /// each 32 MiB segment costs more than reading it from the page cache. The default copies
    /// what [`Store::get`] returns; the local store reads the file straight into `buf`.
    fn get_into(
        &self,
        key: &str,
        mut buf: Vec<u8>,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send {
        async move {
            Ok(self.get(key).await?.map(|bytes| {
                buf.clear();
                buf.extend_from_slice(&bytes);
                buf
            }))
        }
    }

    /// Several small objects, in the order of `keys`: what verification asks for the tiles
    /// of each segment. The default gets them one after the other; the local store reads them
    /// all in one blocking task instead of handing each read to another thread.
    fn get_many(
        &self,
        keys: Vec<String>,
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>, StoreError>> + Send {
        async move {
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                out.push(self.get(&key).await?);
            }
            Ok(out)
        }
    }

    /// `len` bytes of an object from byte `offset` (fewer at its end). The default reads
    /// the whole object; the local store reads only those bytes, S3 sends a range request.
    fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send {
        async move {
            Ok(self.get(key).await?.map(|b| {
                let start = (offset as usize).min(b.len());
                let end = (offset.saturating_add(len) as usize).min(b.len());
                b.slice(start..end)
            }))
        }
    }

    /// Up to `len` bytes of an object from byte `offset` (fewer at its end), appended to
    /// `buf`, whose memory is reused: a reader that goes through a large object a piece at a
    /// time keeps one small buffer instead of faulting in fresh memory for each piece, or
    /// holding the whole object. The default copies what [`Store::get_range`] returns; the
    /// local store reads the file straight into `buf`.
    fn get_range_into(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        mut buf: Vec<u8>,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send {
        async move {
            Ok(self.get_range(key, offset, len).await?.map(|bytes| {
                buf.extend_from_slice(&bytes);
                buf
            }))
        }
    }

    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<ObjectInfo>, StoreError>> + Send;

    /// The objects under `prefix` whose keys sort after `start_after`, in key order: what a
    /// reader that knows where it stands needs (the checkpoints after its own, the segments
    /// after a size), without listing the whole history. The default lists and filters; S3
    /// starts the listing there.
    fn list_after(
        &self,
        prefix: &str,
        start_after: &str,
    ) -> impl Future<Output = Result<Vec<ObjectInfo>, StoreError>> + Send {
        async move {
            let mut all = self.list(prefix).await?;
            all.retain(|o| o.key.as_str() > start_after);
            Ok(all)
        }
    }

    /// Store the content of a closed, never-again-written local file. The default reads it
    /// and calls [`Store::put_if_absent`]; the local store links the file instead of copying.
    fn put_file_if_absent(
        &self,
        key: &str,
        path: &Path,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send {
        async move {
            let bytes = tokio::fs::read(path).await.map_err(|e| StoreError::Io {
                key: key.to_owned(),
                source: e,
            })?;
            self.put_if_absent(key, Bytes::from(bytes)).await
        }
    }

    /// A short description for logs and reports (`local:/var/lib/audit`).
    fn describe(&self) -> String;

    /// Evidence of tampering that only the storage can show, beyond what the log's own
    /// checks find: for S3, a key with more than one version or a delete marker, and an
    /// object not locked in COMPLIANCE mode for `min_retention_days` after it was written.
    /// The local store has none to offer.
    fn storage_findings(
        &self,
        _min_retention_days: Option<u32>,
    ) -> impl Future<Output = Result<Vec<StorageFinding>, StoreError>> + Send {
        async { Ok(Vec::new()) }
    }
}

/// Any store the sealer can be configured with: [`AnyStore::open_local`] or an [`S3Store`].
#[derive(Clone, Debug)]
pub enum AnyStore {
    Local(LocalStore),
    #[cfg(feature = "s3")]
    S3(S3Store),
}

/// Whether `location` names an S3 store (`s3://...`).
pub fn is_s3(location: &str) -> bool {
    location.starts_with("s3://")
}

impl AnyStore {
    /// Open a local store from its location: a directory path or `file://PATH`, created if
    /// needed. S3 stores are opened with [`S3Store::new`] after their bucket is checked.
    pub fn open_local(location: &str) -> anyhow::Result<AnyStore> {
        if location.contains("://") && !location.starts_with("file://") {
            anyhow::bail!(
                "unsupported store location {location:?}: give a directory path, file://PATH \
                 or s3://BUCKET/PREFIX"
            );
        }
        let path = location.strip_prefix("file://").unwrap_or(location);
        Ok(AnyStore::Local(LocalStore::open(path)?))
    }
}

impl Store for AnyStore {
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome, StoreError> {
        match self {
            AnyStore::Local(s) => s.put_if_absent(key, bytes).await,
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.put_if_absent(key, bytes).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self {
            AnyStore::Local(s) => s.get(key).await,
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.get(key).await,
        }
    }

    async fn get_into(&self, key: &str, buf: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            AnyStore::Local(s) => s.get_into(key, buf).await,
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.get_into(key, buf).await,
        }
    }

    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<Bytes>>, StoreError> {
        match self {
            AnyStore::Local(s) => s.get_many(keys).await,
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.get_many(keys).await,
        }
    }

    async fn put_many_if_absent(&self, items: Vec<(String, Bytes)>) -> Result<(), StoreError> {
        match self {
            AnyStore::Local(s) => s.put_many_if_absent(items).await,
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.put_many_if_absent(items).await,
        }
    }

    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Bytes>, StoreError> {
        match self {
            AnyStore::Local(s) => s.get_range(key, offset, len).await,
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.get_range(key, offset, len).await,
        }
    }

    async fn get_range_into(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        buf: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            AnyStore::Local(s) => s.get_range_into(key, offset, len, buf).await,
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.get_range_into(key, offset, len, buf).await,
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        match self {
            AnyStore::Local(s) => s.list(prefix).await,
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.list(prefix).await,
        }
    }

    async fn list_after(
        &self,
        prefix: &str,
        start_after: &str,
    ) -> Result<Vec<ObjectInfo>, StoreError> {
        match self {
            AnyStore::Local(s) => s.list_after(prefix, start_after).await,
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.list_after(prefix, start_after).await,
        }
    }

    async fn put_file_if_absent(&self, key: &str, path: &Path) -> Result<PutOutcome, StoreError> {
        match self {
            AnyStore::Local(s) => s.put_file_if_absent(key, path).await,
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.put_file_if_absent(key, path).await,
        }
    }

    fn describe(&self) -> String {
        match self {
            AnyStore::Local(s) => s.describe(),
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.describe(),
        }
    }

    async fn storage_findings(
        &self,
        min_retention_days: Option<u32>,
    ) -> Result<Vec<StorageFinding>, StoreError> {
        match self {
            AnyStore::Local(s) => s.storage_findings(min_retention_days).await,
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.storage_findings(min_retention_days).await,
        }
    }
}

/// A log id must be one key component: `--log-id` names a directory under the prefix.
pub fn check_log_id(id: &str) -> anyhow::Result<()> {
    if id.contains('/') {
        anyhow::bail!("--log-id {id:?} must not contain '/': it names one directory");
    }
    check_key(id).map_err(|e| anyhow::anyhow!("--log-id {id:?}: {e}"))
}

/// Reject keys that could escape the store or name something odd.
pub(crate) fn check_key(key: &str) -> Result<(), StoreError> {
    let bad = |reason| {
        Err(StoreError::BadKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() || key.starts_with('/') || key.ends_with('/') {
        return bad("must be a relative path naming a file");
    }
    if key
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == ".." || part.starts_with('.'))
    {
        return bad("path components must be non-empty and not start with '.'");
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
    {
        return bad("only ASCII letters, digits, '-', '_', '.' and '/' are allowed");
    }
    Ok(())
}
