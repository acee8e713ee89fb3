//! The tree's levels on disk: `level-NN` holds the hashes of the perfect subtrees of `2^NN`
//! leaves, 32 bytes each, in order ([`auditlog::subtrees`]). Appended by the indexer, read
//! with positioned reads by any number of proof requests.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use auditlog::merkle::{Hash, ProofError, node_hash};
use auditlog::subtrees::Subtrees;

const HASH: u64 = 32;

/// Appends leaves and keeps every level complete.
pub struct LevelWriter {
    dir: PathBuf,
    files: Vec<BufWriter<File>>,
    /// Nodes per level; `lens[0]` is the number of leaves.
    lens: Vec<u64>,
    /// The last node of each level whose count is odd: the left half of the next pair.
    pending: Vec<Option<Hash>>,
}

fn level_path(dir: &Path, level: usize) -> PathBuf {
    dir.join(format!("level-{level:02}"))
}

impl LevelWriter {
    /// Open the levels in `dir` and cut them back to at most `max_size` leaves, and to a
    /// consistent size: level `l` of a tree of `n` leaves holds exactly `n >> l` nodes, so
    /// cutting every level to that is a valid tree of `n` leaves.
    pub fn open_at_most(dir: &Path, max_size: u64) -> anyhow::Result<LevelWriter> {
        let mut l = 0;
        while level_path(dir, l).exists() {
            let path = level_path(dir, l);
            let keep = (max_size >> l) * HASH;
            if fs::metadata(&path)?.len() > keep {
                OpenOptions::new().write(true).open(&path)?.set_len(keep)?;
            }
            l += 1;
        }
        Self::open(dir)
    }

    /// Open the levels in `dir` and cut them back to a consistent `size` leaves: the largest
    /// size whose every level is complete (a crash may leave a level short or a file with
    /// a torn hash).
    pub fn open(dir: &Path) -> anyhow::Result<LevelWriter> {
        fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
        let leaves = match fs::metadata(level_path(dir, 0)) {
            Ok(m) => m.len() / HASH,
            Err(_) => 0,
        };
        // Level l must hold size >> l nodes: (size >> l) <= have_l, i.e.
        // size <= ((have_l + 1) << l) - 1. Take the largest size every level allows.
        let mut size = leaves;
        for level in 1..64 {
            if 1u64 << level > leaves {
                break;
            }
            let have = fs::metadata(level_path(dir, level)).map_or(0, |m| m.len() / HASH);
            size = size.min(((have + 1) << level) - 1);
        }
        let mut w = LevelWriter {
            dir: dir.to_owned(),
            files: Vec::new(),
            lens: Vec::new(),
            pending: Vec::new(),
        };
        let levels = if size == 0 {
            0
        } else {
            64 - size.leading_zeros() as usize
        };
        for l in 0..levels {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(level_path(dir, l))?;
            let n = size >> l;
            file.set_len(n * HASH)?;
            let pending = if n % 2 == 1 {
                let mut h = [0u8; 32];
                file.read_exact_at(&mut h, (n - 1) * HASH)?;
                Some(h)
            } else {
                None
            };
            w.files.push(BufWriter::new(file));
            w.lens.push(n);
            w.pending.push(pending);
        }
        // Levels above the consistent size are stale: remove them.
        let mut l = levels;
        while level_path(dir, l).exists() {
            fs::remove_file(level_path(dir, l))?;
            l += 1;
        }
        for f in &mut w.files {
            use std::io::Seek;
            f.seek(std::io::SeekFrom::End(0))?;
        }
        Ok(w)
    }

    /// Leaves stored.
    pub fn size(&self) -> u64 {
        self.lens.first().copied().unwrap_or(0)
    }

    fn append(&mut self, level: usize, hash: Hash) -> std::io::Result<()> {
        if self.files.len() == level {
            let file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(level_path(&self.dir, level))?;
            self.files.push(BufWriter::new(file));
            self.lens.push(0);
            self.pending.push(None);
        }
        self.files[level].write_all(&hash)?;
        self.lens[level] += 1;
        match self.pending[level].take() {
            None => self.pending[level] = Some(hash),
            Some(left) => self.append(level + 1, node_hash(&left, &hash))?,
        }
        Ok(())
    }

    /// Append a leaf hash.
    pub fn push(&mut self, leaf: Hash) -> std::io::Result<()> {
        self.append(0, leaf)
    }

    /// Write buffered hashes to the files, so readers see them.
    pub fn flush(&mut self) -> std::io::Result<()> {
        for f in &mut self.files {
            f.flush()?;
        }
        Ok(())
    }

    /// Start over, empty.
    pub fn clear(&mut self) -> anyhow::Result<()> {
        self.files.clear();
        self.lens.clear();
        self.pending.clear();
        let mut l = 0;
        while level_path(&self.dir, l).exists() {
            fs::remove_file(level_path(&self.dir, l))?;
            l += 1;
        }
        Ok(())
    }
}

/// Reads nodes from the level files. Only ask for nodes of a size the writer has flushed.
pub struct LevelReader {
    dir: PathBuf,
}

impl LevelReader {
    pub fn new(dir: &Path) -> LevelReader {
        LevelReader {
            dir: dir.to_owned(),
        }
    }
}

impl Subtrees for LevelReader {
    type Error = anyhow::Error;

    fn node(&self, level: u32, index: u64) -> anyhow::Result<Hash> {
        let path = level_path(&self.dir, level as usize);
        let file = File::open(&path).with_context(|| format!("index level {}", path.display()))?;
        let mut h = [0u8; 32];
        file.read_exact_at(&mut h, index * HASH).map_err(|_| {
            anyhow::Error::from(ProofError::IndexOutOfRange {
                index: index << level,
                size: 0,
            })
            .context(format!("node ({level}, {index}) is not in the index yet"))
        })?;
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditlog::merkle;
    use auditlog::subtrees;

    fn leaf(i: u64) -> Hash {
        merkle::leaf_hash(&i.to_be_bytes())
    }

    #[test]
    fn proofs_from_files_match_and_a_torn_level_is_cut_back() {
        let dir = tempfile::tempdir().unwrap();
        let leaves: Vec<Hash> = (0..37).map(leaf).collect();
        let mut w = LevelWriter::open(dir.path()).unwrap();
        for l in &leaves[..20] {
            w.push(*l).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        // Reopen and go on: the pending left halves come back from the files.
        let mut w = LevelWriter::open(dir.path()).unwrap();
        assert_eq!(w.size(), 20);
        for l in &leaves[20..] {
            w.push(*l).unwrap();
        }
        w.flush().unwrap();
        let r = LevelReader::new(dir.path());
        for size in [1, 2, 20, 37] {
            let tree = &leaves[..size as usize];
            assert_eq!(subtrees::root(&r, size).unwrap(), merkle::root_of(tree));
            assert_eq!(
                subtrees::inclusion_proof(&r, size / 2, size).unwrap(),
                merkle::inclusion_proof(tree, size / 2).unwrap()
            );
        }
        drop(w);
        // A crash between levels: level 1 lost its last node, level 0 has half a hash more.
        let l1 = level_path(dir.path(), 1);
        let len = fs::metadata(&l1).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&l1)
            .unwrap()
            .set_len(len - 32)
            .unwrap();
        let mut f = OpenOptions::new()
            .append(true)
            .open(level_path(dir.path(), 0))
            .unwrap();
        f.write_all(&[7u8; 16]).unwrap();
        let w = LevelWriter::open(dir.path()).unwrap();
        // Leaves 34 and 35 lost their parent: keep 34 as a pending left half, drop 35.
        assert_eq!(
            w.size(),
            35,
            "cut back to the largest size every level completes"
        );
        let r = LevelReader::new(dir.path());
        assert_eq!(
            subtrees::root(&r, 35).unwrap(),
            merkle::root_of(&leaves[..35])
        );
        drop(w);
        // Cut back to any smaller size: still a valid tree, and it grows on from there.
        let mut w = LevelWriter::open_at_most(dir.path(), 21).unwrap();
        assert_eq!(w.size(), 21);
        for l in &leaves[21..] {
            w.push(*l).unwrap();
        }
        w.flush().unwrap();
        assert_eq!(subtrees::root(&r, 37).unwrap(), merkle::root_of(&leaves));
    }
}
