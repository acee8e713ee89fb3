//! RFC 6962 / RFC 9162 (section 2.1) Merkle tree hashing with SHA-256.
//!
//! - [`leaf_hash`] is `SHA-256(0x00 || data)`, [`node_hash`] is `SHA-256(0x01 || left || right)`
//!   and the empty tree hashes to `SHA-256("")` ([`empty_root`]).
//! - [`root_of`] is the Merkle Tree Hash (MTH) of a list of leaf hashes, and [`Frontier`] computes
//!   the same root incrementally, keeping only the roots of the perfect subtrees on the right
//!   edge of the tree (at most 64 hashes).
//! - [`inclusion_proof`] and [`consistency_proof`] generate the audit paths of RFC 9162 sections
//!   2.1.3.1 and 2.1.4.1; [`verify_inclusion`] and [`verify_consistency`] implement the
//!   verification algorithms of sections 2.1.3.2 and 2.1.4.2.
//!
//! All functions that take leaves take *leaf hashes* (the output of [`leaf_hash`]), never raw
//! entry bytes. Proof hashes are ordered as in the RFC: from the leaf (or the old tree) up to the
//! root.

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Domain separation prefix of a leaf hash (RFC 6962 section 2.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain separation prefix of an interior node hash (RFC 6962 section 2.1).
const NODE_PREFIX: u8 = 0x01;

/// Errors from proof generation, proof verification and [`Frontier::from_parts`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} out of range for tree size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The proof does not have the number of hashes the tree sizes and index call for.
    #[error("wrong proof length: expected {expected} hashes, got {got}")]
    WrongProofLength {
        /// The number of hashes a valid proof has.
        expected: usize,
        /// The number of hashes supplied.
        got: usize,
    },
    /// The root recomputed from the proof does not match the expected root(s).
    #[error("root mismatch: proof does not lead to the expected root")]
    RootMismatch,
    /// The tree sizes of a consistency proof are invalid (old size zero when generating a proof,
    /// or old size larger than the new size).
    #[error("bad tree sizes for consistency proof: old {old}, new {new}")]
    BadSizes {
        /// The old (first) tree size.
        old: u64,
        /// The new (second) tree size.
        new: u64,
    },
    /// A frontier needs exactly one hash per set bit of its size.
    #[error("frontier of size {size} needs {} hashes, got {hashes}", size.count_ones())]
    FrontierShape {
        /// The frontier size (number of leaves).
        size: u64,
        /// The number of hashes supplied.
        hashes: usize,
    },
}

/// The leaf hash of an entry: `SHA-256(0x00 || data)`.
#[must_use]
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([LEAF_PREFIX])
        .chain_update(data)
        .finalize()
        .into()
}

/// The leaf hashes of many entries at once, their compressions side by side (`sha256_x2`):
/// `out[i]` is `leaf_hash(entries[i])`.
///
/// # Panics
/// If `out` is not as long as `entries`.
pub fn leaf_hash_many(entries: &[&[u8]], out: &mut [Hash]) {
    assert_eq!(entries.len(), out.len(), "one hash per entry");
    // In groups on the stack: the verifier calls this for every batch of entries.
    const GROUP: usize = 16;
    for (entries, out) in entries.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
        let parts: [[&[u8]; 2]; GROUP] =
            std::array::from_fn(|i| [&[LEAF_PREFIX][..], entries.get(i).copied().unwrap_or(&[])]);
        let messages: [&[&[u8]]; GROUP] = std::array::from_fn(|i| &parts[i][..]);
        sha256_x2::digest_many(&messages[..entries.len()], out);
    }
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
#[must_use]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    crate::short_hash::prefixed_pair(NODE_PREFIX, left, right)
}

/// Many interior nodes' hashes at once (`sha256_x2`): `out[i]` is
/// `node_hash(children[i].0, children[i].1)`.
///
/// # Panics
/// If `out` is not as long as `children`.
pub fn node_hash_many(children: &[(&Hash, &Hash)], out: &mut [Hash]) {
    crate::short_hash::prefixed_pair_many(NODE_PREFIX, children, out);
}

/// The root of the empty tree: `SHA-256("")`.
#[must_use]
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly smaller than `n` (`n >= 2`): the `k` of RFC 9162 2.1.1.
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// MTH of a non-empty list of leaf hashes, straight from the recursive definition.
fn mth(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [leaf] => *leaf,
        _ => {
            let k = split_point(leaves.len());
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// The Merkle Tree Hash (RFC 9162 2.1.1) of `leaves`, which must already be leaf hashes.
///
/// Returns [`empty_root`] for an empty slice.
#[must_use]
pub fn root_of(leaves: &[Hash]) -> Hash {
    mth(leaves)
}

/// Incremental builder keeping only the right-edge frontier: O(log n) memory, amortised ~1 node
/// hash per push.
///
/// The frontier of a tree of `size` leaves is the list of roots of the perfect subtrees the leaves
/// decompose into, one per set bit of `size`, largest (leftmost) first. It is all a log writer or
/// verifier needs to keep to extend the tree and compute its root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// An empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of leaves pushed so far.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf (already a leaf hash, see [`leaf_hash`]).
    ///
    /// # Panics
    /// If the tree already holds `u64::MAX` leaves.
    pub fn push(&mut self, leaf: Hash) {
        let new_size = self
            .size
            .checked_add(1)
            .expect("merkle frontier size overflow");
        // Every trailing one bit of the old size is a perfect subtree of the same height as the
        // node being carried up: merge them, like a binary counter increment.
        let mut carry = leaf;
        let mut bits = self.size;
        while bits & 1 == 1 {
            let left = self
                .hashes
                .pop()
                .expect("frontier holds one hash per set bit of its size");
            carry = node_hash(&left, &carry);
            bits >>= 1;
        }
        self.hashes.push(carry);
        self.size = new_size;
    }

    /// Appends many leaves, as [`push`](Self::push) of each in turn would, computing each
    /// level's new nodes side by side ([`node_hash_many`]): at every height, the new nodes
    /// pair up, the first with the frontier's subtree of that height if the old size has one,
    /// and a last one without a right sibling stays in the frontier.
    ///
    /// # Panics
    /// If the tree would hold more than `u64::MAX` leaves.
    pub fn extend(&mut self, leaves: &[Hash]) {
        let old_size = self.size;
        self.size = old_size
            .checked_add(leaves.len() as u64)
            .expect("merkle frontier size overflow");
        // The subtrees left over at each height, lowest first; the frontier's own from the
        // heights the new leaves do not reach stay where they are.
        let mut left_over = Vec::new();
        let mut nodes = leaves.to_vec();
        let mut parents = Vec::with_capacity(nodes.len() / 2 + 1);
        let mut height = 0;
        while !nodes.is_empty() {
            // The frontier has a subtree of this height iff the old size's bit is set: it is
            // the left sibling of the first new node.
            let left = (old_size >> height & 1 == 1).then(|| {
                self.hashes
                    .pop()
                    .expect("frontier holds one hash per set bit of its size")
            });
            let mut children = Vec::with_capacity(nodes.len() / 2 + 1);
            let mut in_order = left.iter().chain(&nodes);
            while let (Some(l), Some(r)) = (in_order.next(), in_order.next()) {
                children.push((l, r));
            }
            parents.clear();
            parents.resize(children.len(), [0; 32]);
            node_hash_many(&children, &mut parents);
            if (nodes.len() + usize::from(left.is_some())) % 2 == 1 {
                left_over.push(*nodes.last().expect("nodes is not empty"));
            }
            std::mem::swap(&mut nodes, &mut parents);
            height += 1;
        }
        self.hashes.extend(left_over.into_iter().rev());
        debug_assert_eq!(self.hashes.len(), self.size.count_ones() as usize);
    }

    /// The Merkle Tree Hash of all leaves pushed so far ([`empty_root`] if none), in
    /// O(log n) node hashes.
    #[must_use]
    pub fn root(&self) -> Hash {
        let mut rev = self.hashes.iter().rev();
        let Some(last) = rev.next() else {
            return empty_root();
        };
        // The rightmost (smallest) subtree is the right child of its left neighbour, and so on
        // up to the largest subtree, which is the left child of the root.
        rev.fold(*last, |right, left| node_hash(left, &right))
    }

    /// The roots of the frontier's perfect subtrees, left to right (largest first); one per set
    /// bit of [`size`](Self::size).
    #[must_use]
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Rebuilds a frontier from [`size`](Self::size) and [`hashes`](Self::hashes).
    ///
    /// # Errors
    /// [`ProofError::FrontierShape`] if `hashes.len() != size.count_ones()`.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, ProofError> {
        if hashes.len() != size.count_ones() as usize {
            return Err(ProofError::FrontierShape {
                size,
                hashes: hashes.len(),
            });
        }
        Ok(Self { size, hashes })
    }
}

/// `PATH(m, D[n])` of RFC 9162 2.1.3.1, appended to `out` (deepest sibling first).
fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if m < k {
        path(m, &leaves[..k], out);
        out.push(mth(&leaves[k..]));
    } else {
        path(m - k, &leaves[k..], out);
        out.push(mth(&leaves[..k]));
    }
}

/// `SUBPROOF(m, D[n], b)` of RFC 9162 2.1.4.1, appended to `out`.
fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(mth(leaves));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, out);
        out.push(mth(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(mth(&leaves[..k]));
    }
}

/// The inclusion proof (audit path, RFC 9162 2.1.3.1) of leaf `index` in the tree of `leaves`.
///
/// # Errors
/// [`ProofError::IndexOutOfRange`] if `index >= leaves.len()`.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let size = leaves.len() as u64;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::with_capacity(inclusion_proof_len(index, size));
    // `index < leaves.len()`, so it fits in a usize.
    path(index as usize, leaves, &mut out);
    Ok(out)
}

/// The consistency proof (RFC 9162 2.1.4.1) between the tree of the first `old_size` leaves and
/// the tree of all `leaves`. Empty if `old_size == leaves.len()`.
///
/// # Errors
/// [`ProofError::BadSizes`] unless `0 < old_size <= leaves.len()`.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, ProofError> {
    let new_size = leaves.len() as u64;
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::BadSizes {
            old: old_size,
            new: new_size,
        });
    }
    let mut out = Vec::new();
    // `old_size <= leaves.len()`, so it fits in a usize.
    subproof(old_size as usize, leaves, true, &mut out);
    Ok(out)
}

/// Number of significant bits of `x` (0 for 0).
fn bit_len(x: u64) -> u32 {
    u64::BITS - x.leading_zeros()
}

/// The number of hashes in the inclusion proof of `index` in a tree of `size` (`index < size`):
/// the levels below the point where the leaf's path leaves the right edge, plus one per perfect
/// subtree to its left above that point.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    debug_assert!(index < size);
    let inner = bit_len(index ^ (size - 1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// The number of hashes in the consistency proof between sizes `0 < old < new`.
fn consistency_proof_len(old: u64, new: u64) -> usize {
    debug_assert!(0 < old && old < new);
    let inner = bit_len((old - 1) ^ (new - 1));
    let border = (old - 1).checked_shr(inner).unwrap_or(0).count_ones();
    // Levels below the largest perfect subtree ending at `old` are not needed; if that subtree is
    // the whole old tree, its root is the old root and is left out of the proof too.
    let shift = old.trailing_zeros();
    let seed = usize::from(!old.is_power_of_two());
    seed + (inner - shift + border) as usize
}

/// Right-shifts `fn_` and `sn` together until the low bit of `fn_` is set or `fn_` is zero.
fn shift_to_set_bit(fn_: &mut u64, sn: &mut u64) {
    let shift = if *fn_ == 0 { 0 } else { fn_.trailing_zeros() };
    *fn_ >>= shift;
    *sn >>= shift;
}

/// Verifies that `leaf` (a leaf hash) is at `index` in the tree of `size` leaves with `root`,
/// following RFC 9162 2.1.3.2.
///
/// # Errors
/// [`ProofError::IndexOutOfRange`] if `index >= size`, [`ProofError::WrongProofLength`] if the
/// proof is not exactly as long as a proof for `(index, size)`, [`ProofError::RootMismatch`] if
/// the recomputed root differs from `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    let mut fn_ = index;
    let mut sn = size - 1;
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            // Unreachable after the length check; kept as the RFC's step 4.1.
            return Err(ProofError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            shift_to_set_bit(&mut fn_, &mut sn);
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `old_size` leaves with `old_root` is a prefix of the tree of
/// `new_size` leaves with `new_root`, following RFC 9162 2.1.4.2.
///
/// Equal sizes need an empty proof and equal roots. An old size of zero needs an empty proof and
/// `old_root == empty_root()`: the empty tree is a prefix of every tree.
///
/// # Errors
/// [`ProofError::BadSizes`] if `old_size > new_size`, [`ProofError::WrongProofLength`] if the
/// proof is not exactly as long as a proof for `(old_size, new_size)`,
/// [`ProofError::RootMismatch`] if either recomputed root differs.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::BadSizes {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        let matches = if old_size == 0 {
            *old_root == empty_root() && (new_size != 0 || *new_root == empty_root())
        } else {
            old_root == new_root
        };
        return if matches {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    let expected = consistency_proof_len(old_size, new_size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    // Step 2: if the old tree is a perfect subtree, its root is the implicit first element.
    let (seed, rest) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        (&proof[0], &proof[1..])
    };
    // Steps 3 and 4.
    let mut fn_ = old_size - 1;
    let mut sn = new_size - 1;
    let shift = fn_.trailing_ones();
    fn_ >>= shift;
    sn >>= shift;
    // Steps 5 and 6.
    let mut fr = *seed;
    let mut sr = *seed;
    for c in rest {
        if sn == 0 {
            // Unreachable after the length check; kept as the RFC's step 6.1.
            return Err(ProofError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            shift_to_set_bit(&mut fn_, &mut sn);
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 7.
    if sn != 0 {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    fn hs(list: &[&str]) -> Vec<Hash> {
        list.iter().map(|s| h(s)).collect()
    }

    /// Leaf inputs of the Certificate Transparency reference test tree.
    const CT_INPUTS: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    /// MTH of the first 1..=8 reference leaves, as published in the Certificate Transparency
    /// and Trillian test suites (and recomputed independently with python3 hashlib).
    const CT_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn ct_leaves() -> Vec<Hash> {
        CT_INPUTS
            .iter()
            .map(|s| leaf_hash(&hex::decode(s).unwrap()))
            .collect()
    }

    #[test]
    fn merkle_known_hashes() {
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(root_of(&[]), empty_root());
        assert_eq!(Frontier::new().root(), empty_root());
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn merkle_ct_reference_roots() {
        let leaves = ct_leaves();
        let mut frontier = Frontier::new();
        for (n, expected) in (1..=8).zip(CT_ROOTS) {
            frontier.push(leaves[n - 1]);
            assert_eq!(hex::encode(root_of(&leaves[..n])), expected, "size {n}");
            assert_eq!(hex::encode(frontier.root()), expected, "frontier size {n}");
            assert_eq!(frontier.size(), n as u64);
        }
    }

    #[test]
    fn merkle_frontier_shape() {
        let leaves = ct_leaves();
        let mut frontier = Frontier::new();
        for leaf in &leaves[..7] {
            frontier.push(*leaf);
        }
        assert_eq!(
            frontier.hashes(),
            &[
                root_of(&leaves[..4]),
                root_of(&leaves[4..6]),
                root_of(&leaves[6..7])
            ]
        );
        assert_eq!(
            Frontier::from_parts(7, frontier.hashes()[..2].to_vec()),
            Err(ProofError::FrontierShape { size: 7, hashes: 2 })
        );
        assert_eq!(
            ProofError::FrontierShape { size: 7, hashes: 2 }.to_string(),
            "frontier of size 7 needs 3 hashes, got 2"
        );
        assert_eq!(Frontier::from_parts(0, vec![]), Ok(Frontier::new()));
    }

    /// Inclusion proofs of the reference tree: (index, size, path), from the Trillian
    /// `log_verifier_test.go` vectors (which number leaves from 1).
    #[test]
    fn merkle_ct_reference_inclusion_proofs() {
        let leaves = ct_leaves();
        let cases: [(u64, usize, Vec<Hash>); 5] = [
            (0, 1, vec![]),
            (
                0,
                8,
                hs(&[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ]),
            ),
            (
                5,
                8,
                hs(&[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ]),
            ),
            (
                2,
                3,
                hs(&["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
            ),
            (
                1,
                5,
                hs(&[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ]),
            ),
        ];
        for (index, size, expected) in cases {
            let proof = inclusion_proof(&leaves[..size], index).unwrap();
            assert_eq!(proof, expected, "index {index} size {size}");
            let root = h(CT_ROOTS[size - 1]);
            verify_inclusion(&leaves[index as usize], index, size as u64, &proof, &root).unwrap();
        }
    }

    /// Consistency proofs of the reference tree: (old, new, proof), from the Trillian
    /// `log_verifier_test.go` vectors.
    #[test]
    fn merkle_ct_reference_consistency_proofs() {
        let leaves = ct_leaves();
        let cases: [(u64, usize, Vec<Hash>); 4] = [
            (1, 1, vec![]),
            (
                1,
                8,
                hs(&[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ]),
            ),
            (
                6,
                8,
                hs(&[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ]),
            ),
            (
                2,
                5,
                hs(&[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ]),
            ),
        ];
        for (old, new, expected) in cases {
            let proof = consistency_proof(&leaves[..new], old).unwrap();
            assert_eq!(proof, expected, "old {old} new {new}");
            let old_root = h(CT_ROOTS[old as usize - 1]);
            let new_root = h(CT_ROOTS[new - 1]);
            verify_consistency(old, new as u64, &old_root, &new_root, &proof).unwrap();
        }
    }

    #[test]
    fn merkle_edge_cases() {
        let leaves = ct_leaves();
        let root8 = root_of(&leaves);
        assert_eq!(
            inclusion_proof(&leaves, 8),
            Err(ProofError::IndexOutOfRange { index: 8, size: 8 })
        );
        assert_eq!(
            inclusion_proof(&[], 0),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            verify_inclusion(&leaves[0], 0, 0, &[], &empty_root()),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            consistency_proof(&leaves, 0),
            Err(ProofError::BadSizes { old: 0, new: 8 })
        );
        assert_eq!(
            consistency_proof(&leaves, 9),
            Err(ProofError::BadSizes { old: 9, new: 8 })
        );
        assert_eq!(consistency_proof(&leaves, 8), Ok(vec![]));
        assert_eq!(
            verify_consistency(9, 8, &root8, &root8, &[]),
            Err(ProofError::BadSizes { old: 9, new: 8 })
        );
        // Equal sizes: empty proof, equal roots.
        verify_consistency(8, 8, &root8, &root8, &[]).unwrap();
        assert_eq!(
            verify_consistency(8, 8, &root8, &leaves[0], &[]),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(8, 8, &root8, &root8, &[root8]),
            Err(ProofError::WrongProofLength {
                expected: 0,
                got: 1
            })
        );
        // The empty tree is a prefix of every tree.
        verify_consistency(0, 8, &empty_root(), &root8, &[]).unwrap();
        verify_consistency(0, 0, &empty_root(), &empty_root(), &[]).unwrap();
        assert_eq!(
            verify_consistency(0, 8, &root8, &root8, &[]),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 0, &empty_root(), &root8, &[]),
            Err(ProofError::RootMismatch)
        );
        // A non-trivial consistency proof cannot be empty.
        assert_eq!(
            verify_consistency(1, 2, &leaves[0], &root_of(&leaves[..2]), &[]),
            Err(ProofError::WrongProofLength {
                expected: 1,
                got: 0
            })
        );
        assert_eq!(
            ProofError::IndexOutOfRange { index: 8, size: 8 }.to_string(),
            "leaf index 8 out of range for tree size 8"
        );
    }

    /// Distinct leaf hashes for a tree of `n` leaves, varied by `seed`.
    fn random_leaves(n: usize, seed: u64) -> Vec<Hash> {
        (0..n as u64)
            .map(|i| {
                let mut data = [0u8; 16];
                data[..8].copy_from_slice(&seed.to_le_bytes());
                data[8..].copy_from_slice(&i.to_le_bytes());
                leaf_hash(&data)
            })
            .collect()
    }

    /// `proof` with byte `byte` of hash `at` flipped.
    fn flipped(proof: &[Hash], at: usize, byte: usize) -> Vec<Hash> {
        let mut bad = proof.to_vec();
        bad[at][byte] ^= 0x01;
        bad
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn leaf_and_node_hashes_at_once_are_each_alone(
            entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..20),
        ) {
            let entries: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
            let mut leaves = vec![[0u8; 32]; entries.len()];
            leaf_hash_many(&entries, &mut leaves);
            let expected: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
            prop_assert_eq!(&leaves, &expected);
            let children: Vec<(&Hash, &Hash)> = leaves.iter().zip(leaves.iter().rev()).collect();
            let mut nodes = vec![[0u8; 32]; children.len()];
            node_hash_many(&children, &mut nodes);
            let expected: Vec<Hash> = children.iter().map(|(l, r)| node_hash(l, r)).collect();
            prop_assert_eq!(nodes, expected);
        }

        /// Leaves added in runs of any length, from any size, give the frontier that pushing
        /// them one by one gives.
        #[test]
        fn extending_is_pushing_each(
            runs in proptest::collection::vec(0usize..140, 1..6),
            seed in any::<u64>(),
        ) {
            let leaves = random_leaves(runs.iter().sum(), seed);
            let (mut extended, mut pushed) = (Frontier::new(), Frontier::new());
            let mut done = 0;
            for run in runs {
                let run = &leaves[done..done + run];
                extended.extend(run);
                for leaf in run {
                    pushed.push(*leaf);
                }
                done += run.len();
                prop_assert_eq!(&extended, &pushed);
            }
            prop_assert_eq!(extended.root(), root_of(&leaves));
        }

        #[test]
        fn merkle_frontier_matches_root_of(n in 1usize..300, seed in any::<u64>()) {
            let leaves = random_leaves(n, seed);
            let mut frontier = Frontier::new();
            for (i, leaf) in leaves.iter().enumerate() {
                frontier.push(*leaf);
                prop_assert_eq!(frontier.size(), i as u64 + 1);
                prop_assert_eq!(frontier.hashes().len(), frontier.size().count_ones() as usize);
                prop_assert_eq!(frontier.root(), root_of(&leaves[..=i]));
                let rebuilt = Frontier::from_parts(frontier.size(), frontier.hashes().to_vec());
                prop_assert_eq!(rebuilt.as_ref(), Ok(&frontier));
                // A rebuilt frontier keeps growing the same tree.
                if let Some(next) = leaves.get(i + 1) {
                    let mut rebuilt = rebuilt.unwrap();
                    rebuilt.push(*next);
                    prop_assert_eq!(rebuilt.root(), root_of(&leaves[..i + 2]));
                }
            }
            prop_assert!(
                Frontier::from_parts(frontier.size(), frontier.hashes()[1..].to_vec()).is_err()
            );
        }

        #[test]
        fn merkle_inclusion_proofs(
            n in 1usize..300,
            seed in any::<u64>(),
            pick in any::<prop::sample::Index>(),
            byte in 0usize..32,
        ) {
            let leaves = random_leaves(n, seed);
            let size = n as u64;
            let root = root_of(&leaves);
            let index = pick.index(n);
            let leaf = leaves[index];
            let index = index as u64;
            let proof = inclusion_proof(&leaves, index).unwrap();
            prop_assert_eq!(verify_inclusion(&leaf, index, size, &proof, &root), Ok(()));

            // Every leaf of the tree verifies.
            for (i, l) in leaves.iter().enumerate() {
                let p = inclusion_proof(&leaves, i as u64).unwrap();
                prop_assert_eq!(verify_inclusion(l, i as u64, size, &p, &root), Ok(()));
            }
            // Any flipped byte in the proof, the leaf or the root is rejected.
            for at in 0..proof.len() {
                for b in [byte, 0, 31] {
                    let bad = flipped(&proof, at, b);
                    prop_assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
                }
            }
            let bad_leaf = flipped(&[leaf], 0, byte)[0];
            prop_assert!(verify_inclusion(&bad_leaf, index, size, &proof, &root).is_err());
            let bad_root = flipped(&[root], 0, byte)[0];
            prop_assert_eq!(
                verify_inclusion(&leaf, index, size, &proof, &bad_root),
                Err(ProofError::RootMismatch)
            );
            // Any other index is rejected.
            for other in 0..size + 2 {
                if other != index {
                    prop_assert!(verify_inclusion(&leaf, other, size, &proof, &root).is_err());
                }
            }
            // Wrong sizes are rejected. (Some sizes give the leaf the same path, e.g. leaf 0 in
            // trees of 3 and 4 leaves; no verifier can tell those apart from the proof alone.)
            prop_assert!(verify_inclusion(&leaf, index, size * 2, &proof, &root).is_err());
            prop_assert!(verify_inclusion(&leaf, index, size / 2, &proof, &root).is_err());
            prop_assert!(verify_inclusion(&leaf, index, index, &proof, &root).is_err());
            // Truncated or extended proofs are rejected.
            if !proof.is_empty() {
                prop_assert!(verify_inclusion(&leaf, index, size, &proof[1..], &root).is_err());
                let short = &proof[..proof.len() - 1];
                prop_assert!(verify_inclusion(&leaf, index, size, short, &root).is_err());
            }
            let mut long = proof.clone();
            long.push(root);
            prop_assert!(verify_inclusion(&leaf, index, size, &long, &root).is_err());
            let mut long = vec![leaf];
            long.extend_from_slice(&proof);
            prop_assert!(verify_inclusion(&leaf, index, size, &long, &root).is_err());
        }

        #[test]
        fn merkle_consistency_proofs(
            n in 1usize..300,
            seed in any::<u64>(),
            pick in any::<prop::sample::Index>(),
            byte in 0usize..32,
        ) {
            let leaves = random_leaves(n, seed);
            let new = n as u64;
            let old = pick.index(n) as u64 + 1;
            let old_root = root_of(&leaves[..old as usize]);
            let new_root = root_of(&leaves);
            let proof = consistency_proof(&leaves, old).unwrap();
            prop_assert_eq!(verify_consistency(old, new, &old_root, &new_root, &proof), Ok(()));

            // Every old size verifies, and the frontier of the new tree agrees.
            let mut frontier = Frontier::new();
            for (m, leaf) in (1..=new).zip(&leaves) {
                frontier.push(*leaf);
                let p = consistency_proof(&leaves, m).unwrap();
                prop_assert_eq!(
                    verify_consistency(m, new, &frontier.root(), &new_root, &p),
                    Ok(())
                );
            }

            if old == new {
                prop_assert!(proof.is_empty());
                return Ok(());
            }
            // Any flipped byte in the proof or either root is rejected.
            for at in 0..proof.len() {
                for b in [byte, 0, 31] {
                    let bad = flipped(&proof, at, b);
                    prop_assert!(verify_consistency(old, new, &old_root, &new_root, &bad).is_err());
                }
            }
            let bad_old = flipped(&[old_root], 0, byte)[0];
            prop_assert!(verify_consistency(old, new, &bad_old, &new_root, &proof).is_err());
            let bad_new = flipped(&[new_root], 0, byte)[0];
            prop_assert!(verify_consistency(old, new, &old_root, &bad_new, &proof).is_err());
            prop_assert!(verify_consistency(old, new, &new_root, &old_root, &proof).is_err());
            // Wrong sizes are rejected (see the inclusion test for why not every size can be).
            for other in 0..new + 2 {
                if other != old {
                    prop_assert!(
                        verify_consistency(other, new, &old_root, &new_root, &proof).is_err(),
                        "old size {} accepted instead of {}", other, old
                    );
                }
            }
            prop_assert!(verify_consistency(old, new * 2, &old_root, &new_root, &proof).is_err());
            prop_assert!(verify_consistency(old, old, &old_root, &new_root, &proof).is_err());
            // Truncated or extended proofs are rejected.
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, &proof[1..]).is_err());
            let short = &proof[..proof.len() - 1];
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, short).is_err());
            let mut long = proof.clone();
            long.push(new_root);
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, &long).is_err());
            let mut long = vec![proof[0]];
            long.extend_from_slice(&proof);
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, &long).is_err());
        }
    }
}
