//! Proofs from the stored levels of the tree, for logs too large to rehash per proof.
//!
//! [`crate::merkle`] generates proofs from the full list of leaf hashes, rehashing the tree
//! each time: O(n). A log server instead keeps, for every level `l`, the hashes of the
//! perfect subtrees of `2^l` leaves aligned at multiples of `2^l` (level 0: the leaf hashes;
//! level 1: the hashes of leaf pairs; ...), about `2n` hashes in all. Every subtree the
//! RFC 9162 recursion visits starts at such an aligned position, so any Merkle Tree Hash it
//! needs is one stored node, or (on the right edge of a tree that is not perfect) the
//! combination of at most one node per level. A proof then costs O(log² n) node reads.
//!
//! [`Subtrees`] is where the nodes come from (a file per level in the sealer, memory in
//! [`Levels`]); the proofs are byte-for-byte those of [`crate::merkle::inclusion_proof`] and
//! [`crate::merkle::consistency_proof`] (property-tested below).

use crate::merkle::{Hash, ProofError, node_hash};

/// Stored perfect-subtree hashes.
pub trait Subtrees {
    type Error: From<ProofError>;

    /// The hash of the perfect subtree of `2^level` leaves starting at leaf
    /// `index << level`. Only asked for subtrees inside the tree the proof is for.
    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// Largest power of two strictly below `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH of the `len` leaves from `start`; `start` is aligned as the recursion aligns it.
fn range_hash<T: Subtrees>(t: &T, start: u64, len: u64) -> Result<Hash, T::Error> {
    debug_assert!(len >= 1);
    if len.is_power_of_two() {
        let level = len.trailing_zeros();
        debug_assert_eq!(start % len, 0);
        return t.node(level, start >> level);
    }
    let k = split_point(len);
    Ok(node_hash(
        &range_hash(t, start, k)?,
        &range_hash(t, start + k, len - k)?,
    ))
}

/// `PATH(m, D[start..start+n])`, deepest sibling first.
fn path<T: Subtrees>(
    t: &T,
    m: u64,
    start: u64,
    n: u64,
    out: &mut Vec<Hash>,
) -> Result<(), T::Error> {
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path(t, m, start, k, out)?;
        out.push(range_hash(t, start + k, n - k)?);
    } else {
        path(t, m - k, start + k, n - k, out)?;
        out.push(range_hash(t, start, k)?);
    }
    Ok(())
}

/// `SUBPROOF(m, D[start..start+n], complete)`.
fn subproof<T: Subtrees>(
    t: &T,
    m: u64,
    start: u64,
    n: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<(), T::Error> {
    if m == n {
        if !complete {
            out.push(range_hash(t, start, n)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(t, m, start, k, complete, out)?;
        out.push(range_hash(t, start + k, n - k)?);
    } else {
        subproof(t, m - k, start + k, n - k, false, out)?;
        out.push(range_hash(t, start, k)?);
    }
    Ok(())
}

/// The root of the tree of the first `size` leaves.
pub fn root<T: Subtrees>(t: &T, size: u64) -> Result<Hash, T::Error> {
    if size == 0 {
        return Ok(crate::merkle::empty_root());
    }
    range_hash(t, 0, size)
}

/// The inclusion proof of leaf `index` in the tree of the first `size` leaves (RFC 9162
/// 2.1.3.1).
pub fn inclusion_proof<T: Subtrees>(t: &T, index: u64, size: u64) -> Result<Vec<Hash>, T::Error> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size }.into());
    }
    let mut out = Vec::new();
    path(t, index, 0, size, &mut out)?;
    Ok(out)
}

/// The consistency proof between the trees of the first `old` and `new` leaves (RFC 9162
/// 2.1.4.1); empty when they are equal.
pub fn consistency_proof<T: Subtrees>(t: &T, old: u64, new: u64) -> Result<Vec<Hash>, T::Error> {
    if old == 0 || old > new {
        return Err(ProofError::BadSizes { old, new }.into());
    }
    let mut out = Vec::new();
    subproof(t, old, 0, new, true, &mut out)?;
    Ok(out)
}

/// The levels in memory: `levels[l][i]` is the node `(l, i)`.
#[derive(Debug, Clone, Default)]
pub struct Levels {
    levels: Vec<Vec<Hash>>,
}

impl Levels {
    /// Append a leaf hash, completing the perfect subtrees it closes.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(hash);
            let n = self.levels[level].len();
            if n % 2 == 1 {
                return;
            }
            hash = node_hash(&self.levels[level][n - 2], &self.levels[level][n - 1]);
            level += 1;
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }
}

impl Subtrees for Levels {
    type Error = ProofError;

    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(ProofError::IndexOutOfRange {
                index: index << level,
                size: self.size(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle;
    use proptest::prelude::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
            .collect()
    }

    fn levels_of(leaves: &[Hash]) -> Levels {
        let mut l = Levels::default();
        for leaf in leaves {
            l.push(*leaf);
        }
        l
    }

    proptest! {
        #[test]
        fn proofs_from_levels_equal_proofs_from_leaves(n in 1u64..300, a in 0u64..300, b in 0u64..300) {
            let all = leaves(n);
            let levels = levels_of(&all);
            // Any prefix of the levels serves any smaller tree.
            let size = 1 + b % n;
            let tree = &all[..size as usize];
            prop_assert_eq!(root(&levels, size).unwrap(), merkle::root_of(tree));
            let index = a % size;
            prop_assert_eq!(
                inclusion_proof(&levels, index, size).unwrap(),
                merkle::inclusion_proof(tree, index).unwrap()
            );
            let old = 1 + a % size;
            prop_assert_eq!(
                consistency_proof(&levels, old, size).unwrap(),
                merkle::consistency_proof(tree, old).unwrap()
            );
        }
    }

    #[test]
    fn out_of_range_requests_are_refused() {
        let levels = levels_of(&leaves(5));
        assert!(matches!(
            inclusion_proof(&levels, 5, 5),
            Err(ProofError::IndexOutOfRange { .. })
        ));
        assert!(matches!(
            consistency_proof(&levels, 0, 5),
            Err(ProofError::BadSizes { .. })
        ));
        assert!(matches!(
            consistency_proof(&levels, 6, 5),
            Err(ProofError::BadSizes { .. })
        ));
        assert!(
            inclusion_proof(&levels, 0, 6).is_err(),
            "beyond what is stored"
        );
    }
}
