//! SHA-256 of the short, fixed-length messages hashed for every entry, block by block.
//!
//! A chain step hashes 64 bytes, a tree node 65, and the MAC of a chain value is two
//! compressions under the HMAC key's precomputed pads (RFC 2104). Each of these is exactly two
//! SHA-256 compressions of blocks padded here as FIPS 180-4 §5.1.1 says. Going through the
//! streaming hasher and the `hmac` crate costs about as much again in buffering and copying
//! of state, and verification does this three times per entry. The tests compare every
//! function with `sha2::Sha256` and `hmac::Hmac`.
//!
//! The `_two` functions do the same for two messages at once: the verifier has two entries'
//! chain steps and MACs to compute at a time, and `sha256_x2` interleaves their compressions.

use sha256_x2::{IV, compress, compress_two, output};

use crate::merkle::Hash;

const BLOCK: usize = 64;

/// The last block of a message of `total_len` bytes whose final `tail` bytes (fewer than
/// 56) start the block: the tail, the 0x80 marker, zeros, and the length in bits.
fn last_block(tail: &[u8], total_len: u64) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    block[..tail.len()].copy_from_slice(tail);
    block[tail.len()] = 0x80;
    block[BLOCK - 8..].copy_from_slice(&(total_len * 8).to_be_bytes());
    block
}

/// `SHA-256(a || b)`: one block of data and one of padding.
pub(crate) fn pair(a: &Hash, b: &Hash) -> Hash {
    let mut block = [0u8; BLOCK];
    block[..32].copy_from_slice(a);
    block[32..].copy_from_slice(b);
    let mut state = IV;
    compress(&mut state, &block);
    compress(&mut state, &last_block(&[], 64));
    output(&state)
}

/// `SHA-256(a || b)` of two pairs at once: [`pair`] twice, the compressions interleaved
/// (`sha256_x2`).
pub(crate) fn pair_two(first: (&Hash, &Hash), second: (&Hash, &Hash)) -> [Hash; 2] {
    let block = |(a, b): (&Hash, &Hash)| {
        let mut block = [0u8; BLOCK];
        block[..32].copy_from_slice(a);
        block[32..].copy_from_slice(b);
        block
    };
    let (mut x, mut y) = (IV, IV);
    compress_two(&mut x, &block(first), &mut y, &block(second));
    let padding = last_block(&[], 64);
    compress_two(&mut x, &padding, &mut y, &padding);
    [output(&x), output(&y)]
}

/// `SHA-256(prefix || a || b)`, 65 bytes: the second block holds `b`'s last byte.
pub(crate) fn prefixed_pair(prefix: u8, a: &Hash, b: &Hash) -> Hash {
    let mut block = [0u8; BLOCK];
    block[0] = prefix;
    block[1..33].copy_from_slice(a);
    block[33..].copy_from_slice(&b[..31]);
    let mut state = IV;
    compress(&mut state, &block);
    compress(&mut state, &last_block(&b[31..], 65));
    output(&state)
}

/// [`prefixed_pair`] of two triples at once, the compressions interleaved.
pub(crate) fn prefixed_pair_two(
    prefix: u8,
    first: (&Hash, &Hash),
    second: (&Hash, &Hash),
) -> [Hash; 2] {
    let blocks = |(a, b): (&Hash, &Hash)| {
        let mut block = [0u8; BLOCK];
        block[0] = prefix;
        block[1..33].copy_from_slice(a);
        block[33..].copy_from_slice(&b[..31]);
        (block, last_block(&b[31..], 65))
    };
    let ((x1, x2), (y1, y2)) = (blocks(first), blocks(second));
    let (mut x, mut y) = (IV, IV);
    compress_two(&mut x, &x1, &mut y, &y1);
    compress_two(&mut x, &x2, &mut y, &y2);
    [output(&x), output(&y)]
}

/// HMAC-SHA256 under one key of at most 64 bytes, with the states after its inner and outer
/// pads computed once.
#[derive(Clone)]
pub(crate) struct HmacSha256 {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl HmacSha256 {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        let pad = |byte: u8| {
            let mut block = [byte; BLOCK];
            for (b, k) in block.iter_mut().zip(key) {
                *b ^= k;
            }
            let mut state = IV;
            compress(&mut state, &block);
            state
        };
        HmacSha256 {
            inner: pad(0x36),
            outer: pad(0x5c),
        }
    }

    /// The MAC of a 32-byte message.
    pub(crate) fn mac(&self, message: &Hash) -> Hash {
        let mut inner = self.inner;
        compress(&mut inner, &last_block(message, (BLOCK + 32) as u64));
        let mut outer = self.outer;
        compress(
            &mut outer,
            &last_block(&output(&inner), (BLOCK + 32) as u64),
        );
        output(&outer)
    }

    /// The MACs of two 32-byte messages at once, the compressions interleaved.
    pub(crate) fn mac_two(&self, first: &Hash, second: &Hash) -> [Hash; 2] {
        let message_len = (BLOCK + 32) as u64;
        let (mut x, mut y) = (self.inner, self.inner);
        compress_two(
            &mut x,
            &last_block(first, message_len),
            &mut y,
            &last_block(second, message_len),
        );
        let (inner_x, inner_y) = (output(&x), output(&y));
        let (mut x, mut y) = (self.outer, self.outer);
        compress_two(
            &mut x,
            &last_block(&inner_x, message_len),
            &mut y,
            &last_block(&inner_y, message_len),
        );
        [output(&x), output(&y)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::Mac;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    fn hash(parts: &[&[u8]]) -> Hash {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    #[test]
    fn known_answer() {
        // SHA-256 of 64 zero bytes.
        assert_eq!(
            hex::encode(pair(&[0; 32], &[0; 32])),
            "f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b"
        );
    }

    proptest! {
        #[test]
        fn same_as_the_streaming_hasher(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), p in any::<u8>()) {
            prop_assert_eq!(pair(&a, &b), hash(&[&a, &b]));
            prop_assert_eq!(prefixed_pair(p, &a, &b), hash(&[&[p], &a, &b]));
            prop_assert_eq!(pair_two((&a, &b), (&b, &a)), [hash(&[&a, &b]), hash(&[&b, &a])]);
            prop_assert_eq!(
                prefixed_pair_two(p, (&a, &b), (&b, &a)),
                [hash(&[&[p], &a, &b]), hash(&[&[p], &b, &a])]
            );
        }

        #[test]
        fn same_as_the_hmac_crate(key in any::<[u8; 32]>(), message in any::<[u8; 32]>()) {
            let mut reference = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
            reference.update(&message);
            let expected: Hash = reference.finalize().into_bytes().into();
            let prepared = HmacSha256::new(&key);
            prop_assert_eq!(prepared.mac(&message), expected);
            let [first, second] = prepared.mac_two(&message, &key);
            prop_assert_eq!(first, expected);
            prop_assert_eq!(second, prepared.mac(&key));
        }
    }
}
