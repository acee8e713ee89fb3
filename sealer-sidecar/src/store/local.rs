//! The local write-once directory store.
//!
//! Each object is written as follows, so that a crash at any moment leaves either no object
//! or the complete object, and an existing object is never replaced:
//!
//! 1. create `.tmp/<random>` with `O_CREAT|O_EXCL`, write the bytes, `fsync` it;
//! 2. make it read-only (mode 0444);
//! 3. `link(2)` it to its final name: `link` fails with `EEXIST` instead of replacing, unlike
//!    `rename(2)`;
//! 4. `fsync` the directory that now holds the name, then remove the temporary name.
//!
//! If the final name already exists, the stored bytes are compared with the new ones:
//! identical is success, different is [`StoreError::Conflict`].
//!
//! A closed write-ahead log file on the same filesystem is stored without a copy: it was
//! fsync'd when it was closed and is never written again, so it is made read-only and linked
//! into place directly (steps 2 to 4), halving the bytes written per entry.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{ObjectInfo, PutOutcome, Store, StoreError, check_key};

const TMP_DIR: &str = ".tmp";

#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Open (creating if needed) a store rooted at `path`.
    pub fn open(path: impl AsRef<Path>) -> anyhow::Result<LocalStore> {
        let root = path.as_ref().to_path_buf();
        fs::create_dir_all(root.join(TMP_DIR)).map_err(|e| {
            anyhow::anyhow!(
                "failed to create store directory {}: {e}",
                root.join(TMP_DIR).display()
            )
        })?;
        Ok(LocalStore { root })
    }

    /// Open an existing store for reading; fails if the directory does not exist.
    pub fn open_existing(path: impl AsRef<Path>) -> anyhow::Result<LocalStore> {
        let root = path.as_ref().to_path_buf();
        if !root.is_dir() {
            anyhow::bail!("store directory {} does not exist", root.display());
        }
        Ok(LocalStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn put_blocking(&self, key: &str, bytes: &[u8]) -> Result<PutOutcome, StoreError> {
        let io = |e: std::io::Error| StoreError::Io {
            key: key.to_owned(),
            source: e,
        };
        let target = self.root.join(key);
        if target.exists() {
            return self.compare_existing(key, &target, bytes);
        }
        let parent = target.parent().expect("keys are checked to name a file");
        fs::create_dir_all(parent).map_err(io)?;
        let tmp_dir = self.root.join(TMP_DIR);
        fs::create_dir_all(&tmp_dir).map_err(io)?;
        let tmp = tmp_dir.join(random_name());
        let result = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            f.set_permissions(Permissions::from_mode(0o444))?;
            drop(f);
            fs::hard_link(&tmp, &target)
        })();
        let outcome = match result {
            Ok(()) => {
                sync_dir(parent).map_err(io)?;
                Ok(PutOutcome::Created)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                self.compare_existing(key, &target, bytes)
            }
            Err(e) => Err(io(e)),
        };
        // The temporary name is ours alone; removing it never touches a stored object.
        let _ = fs::remove_file(&tmp);
        outcome
    }

    /// Write every object to a temporary file, flush the filesystem once (`syncfs`), then
    /// link each into place and sync each directory once.
    fn put_many_blocking(&self, items: &[(String, Bytes)]) -> Result<(), StoreError> {
        let tmp_dir = self.root.join(TMP_DIR);
        let io_at = |key: &str| {
            let key = key.to_owned();
            move |e: std::io::Error| StoreError::Io { key, source: e }
        };
        fs::create_dir_all(&tmp_dir).map_err(io_at(TMP_DIR))?;
        let mut staged = Vec::new();
        let result = (|| {
            for (key, bytes) in items {
                check_key(key)?;
                let target = self.root.join(key);
                if target.exists() {
                    self.compare_existing(key, &target, bytes)?;
                    continue;
                }
                let tmp = tmp_dir.join(random_name());
                let write = || -> std::io::Result<()> {
                    let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
                    f.write_all(bytes)?;
                    f.set_permissions(Permissions::from_mode(0o444))
                };
                staged.push((key.as_str(), bytes, target, tmp.clone()));
                write().map_err(io_at(key))?;
            }
            if staged.is_empty() {
                return Ok(());
            }
            // One flush for all of them: their data is on disk before any is linked.
            let dir = File::open(&tmp_dir).map_err(io_at(TMP_DIR))?;
            // SAFETY: syncfs takes a valid open file descriptor and has no memory effects.
            if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) } != 0 {
                return Err(io_at(TMP_DIR)(std::io::Error::last_os_error()));
            }
            let mut dirs = std::collections::BTreeSet::new();
            for (key, bytes, target, tmp) in &staged {
                let parent = target.parent().expect("keys are checked to name a file");
                fs::create_dir_all(parent).map_err(io_at(key))?;
                match fs::hard_link(tmp, target) {
                    Ok(()) => {
                        dirs.insert(parent.to_owned());
                    }
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        self.compare_existing(key, target, bytes)?;
                    }
                    Err(e) => return Err(io_at(key)(e)),
                }
            }
            for dir in dirs {
                sync_dir(&dir).map_err(io_at(&dir.display().to_string()))?;
            }
            Ok(())
        })();
        // The temporary names are ours alone; removing them never touches a stored object.
        for (_, _, _, tmp) in &staged {
            let _ = fs::remove_file(tmp);
        }
        result
    }

    fn put_file_blocking(&self, key: &str, source: &Path) -> Result<PutOutcome, StoreError> {
        let io = |e: std::io::Error| StoreError::Io {
            key: key.to_owned(),
            source: e,
        };
        let target = self.root.join(key);
        let parent = target.parent().expect("keys are checked to name a file");
        fs::create_dir_all(parent).map_err(io)?;
        fs::set_permissions(source, Permissions::from_mode(0o444)).map_err(io)?;
        match fs::hard_link(source, &target) {
            Ok(()) => {
                sync_dir(parent).map_err(io)?;
                Ok(PutOutcome::Created)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let bytes = fs::read(source).map_err(io)?;
                self.compare_existing(key, &target, &bytes)
            }
            // Another filesystem (EXDEV) or no hard links: copy the bytes instead.
            Err(_) => {
                let bytes = fs::read(source).map_err(io)?;
                self.put_blocking(key, &bytes)
            }
        }
    }

    fn compare_existing(
        &self,
        key: &str,
        target: &Path,
        bytes: &[u8],
    ) -> Result<PutOutcome, StoreError> {
        let existing = fs::read(target).map_err(|e| StoreError::Io {
            key: key.to_owned(),
            source: e,
        })?;
        if existing == bytes {
            // Make sure the earlier writer's link is durable before reporting success.
            if let Some(parent) = target.parent() {
                sync_dir(parent).map_err(|e| StoreError::Io {
                    key: key.to_owned(),
                    source: e,
                })?;
            }
            Ok(PutOutcome::AlreadyPresent)
        } else {
            Err(StoreError::Conflict {
                key: key.to_owned(),
            })
        }
    }

    /// The keys under `prefix` that sort after `start_after` ("" for all). A directory
    /// whose keys all sort before `start_after` is not read at all: listing the tiles after
    /// a size reads the directories on the tree's right edge, not every tile.
    fn list_after_blocking(
        &self,
        prefix: &str,
        start_after: &str,
    ) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut out = Vec::new();
        // Only the directory the prefix names is walked: listing `segments/` must not visit
        // every tile.
        if prefix.starts_with('/') || prefix.split('/').any(|p| p == ".." || p == ".") {
            return Err(StoreError::BadKey {
                key: prefix.to_owned(),
                reason: "a prefix must stay inside the store",
            });
        }
        let dir_key = match prefix.rfind('/') {
            Some(i) => &prefix[..=i],
            None => "",
        };
        let range = Range {
            prefix,
            start_after,
        };
        walk(&self.root.join(dir_key), dir_key, &range, &mut out).map_err(|e| StoreError::Io {
            key: prefix.to_owned(),
            source: e,
        })?;
        // Already in order but for names that sort between a directory's name and its
        // children's keys (`a-b` between `a` and `a/…`); a stable sort of sorted keys is one
        // pass.
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

/// The keys a listing wants: under `prefix`, after `start_after`.
struct Range<'a> {
    prefix: &'a str,
    start_after: &'a str,
}

impl Range<'_> {
    /// Whether a key under the directory `dir_key` (ending in `/`) can be wanted: one
    /// starts with the prefix or the prefix with it, and not every key under it sorts before
    /// `start_after` (a key under it starts with `dir_key`; all of them sort before
    /// `start_after` exactly when `dir_key` does and is not its beginning).
    fn may_hold(&self, dir_key: &str) -> bool {
        (dir_key.starts_with(self.prefix) || self.prefix.starts_with(dir_key))
            && (dir_key > self.start_after || self.start_after.starts_with(dir_key))
    }

    fn wants(&self, key: &str) -> bool {
        key.starts_with(self.prefix) && key > self.start_after
    }
}

#[cfg(test)]
thread_local! {
    /// How many directories this thread's listings have read (tests only).
    static DIRECTORIES_READ: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Every file under `dir` (whose key is `dir_key`, empty or ending in `/`) that `range`
/// wants, in name order: directories that cannot hold one are not read, and files are only
/// looked at once their name matches. A store holds tens of thousands of tiles, and every
/// full verification lists them.
fn walk(
    dir: &Path,
    dir_key: &str,
    range: &Range,
    out: &mut Vec<ObjectInfo>,
) -> std::io::Result<()> {
    #[cfg(test)]
    DIRECTORIES_READ.set(DIRECTORIES_READ.get() + 1);
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut entries: Vec<(String, fs::DirEntry)> = entries
        .map(|entry| entry.map(|e| (e.file_name().to_string_lossy().into_owned(), e)))
        .filter(|named| !matches!(named, Ok((name, _)) if name.starts_with('.')))
        .collect::<std::io::Result<_>>()?;
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (name, entry) in entries {
        let key = format!("{dir_key}{name}");
        if entry.file_type()?.is_dir() {
            let dir_key = key + "/";
            if range.may_hold(&dir_key) {
                walk(&entry.path(), &dir_key, range, out)?;
            }
        } else if range.wants(&key) {
            let size = entry.metadata()?.len();
            out.push(ObjectInfo { key, size });
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn random_name() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source is available");
    hex::encode(b)
}

impl Store for LocalStore {
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome, StoreError> {
        check_key(key)?;
        let this = self.clone();
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || this.put_blocking(&key, &bytes))
            .await
            .expect("store task does not panic")
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        check_key(key)?;
        let path = self.root.join(key);
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io {
                key: key.to_owned(),
                source: e,
            }),
        }
    }

    async fn put_many_if_absent(&self, items: Vec<(String, Bytes)>) -> Result<(), StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.put_many_blocking(&items))
            .await
            .expect("store task does not panic")
    }

    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<Bytes>>, StoreError> {
        for key in &keys {
            check_key(key)?;
        }
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            keys.into_iter()
                .map(|key| match fs::read(root.join(&key)) {
                    Ok(b) => Ok(Some(Bytes::from(b))),
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(StoreError::Io { key, source: e }),
                })
                .collect()
        })
        .await
        .expect("store task does not panic")
    }

    async fn get_into(&self, key: &str, mut buf: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let path = self.root.join(key);
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(StoreError::Io { key, source: e }),
            };
            buf.clear();
            match file.read_to_end(&mut buf) {
                Ok(_) => Ok(Some(buf)),
                Err(e) => Err(StoreError::Io { key, source: e }),
            }
        })
        .await
        .expect("store task does not panic")
    }

    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Bytes>, StoreError> {
        let read = self.get_range_into(key, offset, len, Vec::new()).await?;
        Ok(read.map(Bytes::from))
    }

    async fn get_range_into(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        mut buf: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let path = self.root.join(key);
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let io = |e: std::io::Error| StoreError::Io {
                key: key.clone(),
                source: e,
            };
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io(e)),
            };
            let size = file.metadata().map_err(io)?.len();
            let len = len.min(size.saturating_sub(offset)) as usize;
            let start = buf.len();
            buf.resize(start + len, 0);
            file.read_exact_at(&mut buf[start..], offset).map_err(io)?;
            Ok(Some(buf))
        })
        .await
        .expect("store task does not panic")
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.list_after(prefix, "").await
    }

    async fn list_after(
        &self,
        prefix: &str,
        start_after: &str,
    ) -> Result<Vec<ObjectInfo>, StoreError> {
        let this = self.clone();
        let (prefix, start_after) = (prefix.to_owned(), start_after.to_owned());
        tokio::task::spawn_blocking(move || this.list_after_blocking(&prefix, &start_after))
            .await
            .expect("store task does not panic")
    }

    async fn put_file_if_absent(&self, key: &str, path: &Path) -> Result<PutOutcome, StoreError> {
        check_key(key)?;
        let this = self.clone();
        let key = key.to_owned();
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || this.put_file_blocking(&key, &path))
            .await
            .expect("store task does not panic")
    }

    fn describe(&self) -> String {
        format!("local:{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Listings come in key order whatever the directories hold, only under the prefix,
    /// with each object's size.
    #[tokio::test]
    async fn listings_are_in_key_order_and_only_under_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        // `a-b` sorts between `a` and everything under `a/`; `tile/0/x001/...` deeper.
        let keys = [
            "a/z",
            "a-b",
            "a/b/c",
            "ab",
            "tile/0/x001/002",
            "tile/0/003",
            "tile/0/x001/001.p/7",
            "tile/1/000",
        ];
        for (i, key) in keys.iter().enumerate() {
            let bytes = Bytes::from(vec![b'x'; i + 1]);
            store.put_if_absent(key, bytes).await.unwrap();
        }
        let mut sorted: Vec<&str> = keys.to_vec();
        sorted.sort_unstable();
        let size_of = |key: &str| keys.iter().position(|k| *k == key).unwrap() as u64 + 1;
        for prefix in [
            "",
            "a",
            "a/",
            "a-",
            "tile/0/",
            "tile/0/x001/00",
            "tile/2/",
            "zz",
        ] {
            let listed = store.list(prefix).await.unwrap();
            let expected: Vec<&str> = sorted
                .iter()
                .copied()
                .filter(|k| k.starts_with(prefix))
                .collect();
            let got: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
            assert_eq!(got, expected, "prefix {prefix:?}");
            for o in &listed {
                assert_eq!(o.size, size_of(&o.key), "{}", o.key);
            }
            // After any point, from any key or between keys: the same keys, filtered.
            let points = sorted
                .iter()
                .flat_map(|k| {
                    [
                        k.to_string(),
                        format!("{k}/"),
                        format!("{k}0"),
                        k[..k.len() - 1].to_string(),
                    ]
                })
                .chain([
                    "".into(),
                    "a/".into(),
                    "tile/0/x".into(),
                    "tile/0/x001/".into(),
                    "~".into(),
                ]);
            for start_after in points {
                let listed = store.list_after(prefix, &start_after).await.unwrap();
                let got: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
                let wanted: Vec<&str> = expected
                    .iter()
                    .copied()
                    .filter(|k| *k > start_after.as_str())
                    .collect();
                assert_eq!(got, wanted, "prefix {prefix:?} after {start_after:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_listing_after_a_key_does_not_read_the_directories_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        for key in ["tile/0/x001/001", "tile/0/x002/001", "tile/0/x003/001"] {
            store
                .put_if_absent(key, Bytes::from_static(b"h"))
                .await
                .unwrap();
        }
        let read = |start_after: &str| {
            DIRECTORIES_READ.set(0);
            let keys: Vec<String> = store
                .list_after_blocking("tile/0/", start_after)
                .unwrap()
                .into_iter()
                .map(|o| o.key)
                .collect();
            (keys, DIRECTORIES_READ.get())
        };
        // tile/0/, x002/ and x003/, not x001/.
        assert_eq!(
            read("tile/0/x002/000"),
            (vec!["tile/0/x002/001".into(), "tile/0/x003/001".into()], 3)
        );
        assert_eq!(read("").1, 4);
    }

    #[tokio::test]
    async fn a_range_is_appended_to_the_buffer_and_stops_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let key = "segments/r.ndjson";
        store
            .put_if_absent(key, Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        let buf = b"kept".to_vec();
        let buf = store.get_range_into(key, 2, 3, buf).await.unwrap().unwrap();
        assert_eq!(buf, b"kept234");
        let buf = store.get_range_into(key, 8, 5, buf).await.unwrap().unwrap();
        assert_eq!(buf, b"kept23489");
        let buf = store
            .get_range_into(key, 10, 5, buf)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(buf, b"kept23489");
        let missing = store.get_range_into("segments/none.ndjson", 0, 1, Vec::new());
        assert!(missing.await.unwrap().is_none());
    }

    #[tokio::test]
    async fn writes_once_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let key = "segments/a.ndjson";
        let put = store.put_if_absent(key, Bytes::from_static(b"one\n")).await;
        assert_eq!(put.unwrap(), PutOutcome::Created);
        let again = store.put_if_absent(key, Bytes::from_static(b"one\n")).await;
        assert_eq!(again.unwrap(), PutOutcome::AlreadyPresent);
        let other = store.put_if_absent(key, Bytes::from_static(b"two\n")).await;
        assert!(matches!(other, Err(StoreError::Conflict { .. })));
        assert_eq!(store.get(key).await.unwrap().unwrap(), &b"one\n"[..]);
        let mode = fs::metadata(dir.path().join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444);
        assert!(
            fs::read_dir(dir.path().join(TMP_DIR))
                .unwrap()
                .next()
                .is_none()
        );
        let listed = store.list("segments/").await.unwrap();
        assert_eq!(
            listed,
            vec![ObjectInfo {
                key: key.into(),
                size: 4
            }]
        );
        assert_eq!(store.get("segments/missing").await.unwrap(), None);
    }

    #[tokio::test]
    async fn links_closed_files_without_replacing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path().join("store")).unwrap();
        let wal = dir.path().join("0.wal");
        fs::write(&wal, b"line\n").unwrap();
        let put = store.put_file_if_absent("segments/s.ndjson", &wal).await;
        assert_eq!(put.unwrap(), PutOutcome::Created);
        let again = store.put_file_if_absent("segments/s.ndjson", &wal).await;
        assert_eq!(again.unwrap(), PutOutcome::AlreadyPresent);
        let other = dir.path().join("1.wal");
        fs::write(&other, b"different\n").unwrap();
        let conflict = store.put_file_if_absent("segments/s.ndjson", &other).await;
        assert!(matches!(conflict, Err(StoreError::Conflict { .. })));
        let stored = dir.path().join("store/segments/s.ndjson");
        assert_eq!(fs::read(&stored).unwrap(), b"line\n");
        assert_eq!(
            fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
            0o444
        );
    }

    #[tokio::test]
    async fn rejects_keys_that_escape() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        for key in ["../x", "/etc/passwd", "a/../../b", ".tmp/x", "a//b", "a b"] {
            let r = store.put_if_absent(key, Bytes::from_static(b"x")).await;
            assert!(matches!(r, Err(StoreError::BadKey { .. })), "{key}");
        }
    }
}
