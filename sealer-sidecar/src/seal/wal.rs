//! The write-ahead log: where sealed records become durable before they are acknowledged.
//!
//! The WAL is a directory of files named `<first seq, 20 digits>.wal`, each holding sealed
//! record lines exactly as they will appear in the store. The open file grows by one
//! `write` + `fdatasync` per group of batches (group commit); when it is closed it is, byte
//! for byte, the segment the uploader stores, and it is removed only once the store has it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The open WAL file.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    first_seq: u64,
    len: u64,
    entries: u64,
    opened_at: Instant,
}

/// A closed WAL file, ready to become the segment `first..=last`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedWal {
    pub path: PathBuf,
    pub first: u64,
    pub last: u64,
}

/// Path of the WAL file whose first entry is `first_seq`.
pub fn wal_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

/// The WAL files in `dir`, ordered by first entry.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(first) = name.strip_suffix(".wal").and_then(|n| n.parse().ok()) {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Remove the leaf-hash files a previous run's writer put beside its WAL files
/// ([`crate::seal::writer::spilled_leaves_path`]): a start hashes its pending segments
/// itself, and they are never part of the log.
pub fn remove_spilled_leaves(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "leaves") {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Wal {
    /// Create a new, empty WAL file. Fails if it exists.
    pub fn create(dir: &Path, first_seq: u64) -> io::Result<Wal> {
        let path = wal_path(dir, first_seq);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)?;
        sync_dir(dir)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            path,
            file,
            first_seq,
            len: 0,
            entries: 0,
            opened_at: Instant::now(),
        })
    }

    /// Append `bytes` holding `entries` records and make them durable.
    ///
    /// On error the file is cut back to its previous length, so a failed group leaves no
    /// trace; if even that fails, the error says so and the WAL must not be used again.
    pub fn append(&mut self, bytes: &[u8], entries: u64) -> Result<(), AppendError> {
        let result = self
            .file
            .write_all(bytes)
            .and_then(|_| self.file.sync_data());
        match result {
            Ok(()) => {
                self.drop_cached(self.len, bytes.len() as u64);
                self.len += bytes.len() as u64;
                self.entries += entries;
                Ok(())
            }
            Err(write) => match self
                .file
                .set_len(self.len)
                .and_then(|_| self.file.sync_data())
            {
                Ok(()) => Err(AppendError::Rejected(write)),
                Err(cut) => Err(AppendError::Poisoned { write, cut }),
            },
        }
    }

    /// Let the kernel drop the page cache of bytes that are durable now. Nobody reads them
    /// back from these pages (the local store takes the file by hard link; an S3 upload
    /// reads it once), so keeping them only fills memory with the log; and pages freed here
    /// are the ones the next writes reuse, which on a VM is much cheaper than touching new
    /// memory (`docs/benchmarks.md`). Advice only: a failure changes nothing.
    fn drop_cached(&self, offset: u64, len: u64) {
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscall on a file descriptor this struct owns.
        unsafe {
            libc::posix_fadvise(
                self.file.as_raw_fd(),
                offset as libc::off_t,
                len as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            );
        }
    }

    pub fn entries(&self) -> u64 {
        self.entries
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub fn age(&self) -> std::time::Duration {
        self.opened_at.elapsed()
    }

    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// Close the file. An empty WAL is removed and gives `None`.
    pub fn close(self) -> io::Result<Option<ClosedWal>> {
        self.file.sync_all()?;
        if self.entries == 0 {
            fs::remove_file(&self.path)?;
            sync_dir(&self.dir)?;
            return Ok(None);
        }
        Ok(Some(ClosedWal {
            path: self.path,
            first: self.first_seq,
            last: self.first_seq + self.entries - 1,
        }))
    }
}

/// A failed [`Wal::append`].
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Nothing was made durable and the file is as before.
    #[error("write-ahead log write failed: {0}")]
    Rejected(io::Error),
    /// The write failed and the file could not be cut back.
    #[error("write-ahead log write failed ({write}) and could not be rolled back ({cut})")]
    Poisoned { write: io::Error, cut: io::Error },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_durable_lines_and_close_hands_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), 7).unwrap();
        assert!(wal.is_empty());
        wal.append(b"a\n", 1).unwrap();
        wal.append(b"b\nc\n", 2).unwrap();
        assert_eq!((wal.len(), wal.entries(), wal.first_seq()), (6, 3, 7));
        let closed = wal.close().unwrap().expect("not empty");
        assert_eq!((closed.first, closed.last), (7, 9));
        assert_eq!(fs::read(&closed.path).unwrap(), b"a\nb\nc\n");
        assert_eq!(list(dir.path()).unwrap(), [(7, wal_path(dir.path(), 7))]);
    }

    #[test]
    fn an_empty_file_is_removed_at_close_and_an_existing_one_never_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::create(dir.path(), 0).unwrap();
        assert_eq!(wal.close().unwrap(), None);
        assert!(list(dir.path()).unwrap().is_empty());
        let mut wal = Wal::create(dir.path(), 3).unwrap();
        wal.append(b"x\n", 1).unwrap();
        assert!(
            Wal::create(dir.path(), 3).is_err(),
            "never truncates a WAL file"
        );
        let mut later = Wal::create(dir.path(), 10).unwrap();
        later.append(b"y\n", 1).unwrap();
        let names: Vec<u64> = list(dir.path())
            .unwrap()
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(names, [3, 10], "in log order");
    }

    #[test]
    fn a_write_that_fails_and_cannot_be_cut_back_says_so() {
        // /dev/full fails every write (ENOSPC) and cannot be truncated: the append reports
        // both, so the writer stops using the WAL. (A full disk that can be cut back is
        // `AppendError::Rejected`; tests/disk.rs fills a real filesystem.)
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), 0).unwrap();
        wal.append(b"kept\n", 1).unwrap();
        wal.file = OpenOptions::new().append(true).open("/dev/full").unwrap();
        let err = wal.append(b"lost\n", 1).unwrap_err();
        assert!(matches!(err, AppendError::Poisoned { .. }), "{err}");
        assert_eq!((wal.len(), wal.entries()), (5, 1), "nothing counted");
        assert_eq!(fs::read(wal_path(dir.path(), 0)).unwrap(), b"kept\n");
    }
}
