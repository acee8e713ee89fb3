//! SHA-256 of the short, fixed-length messages hashed for every entry, block by block.
//!
//! A chain step hashes 64 bytes, a tree node 65, and the MAC of a chain value is two
//! compressions under the HMAC key's precomputed pads (RFC 2104). Each of these is exactly two
//! SHA-256 compressions of blocks padded here as FIPS 180-4 §5.1.1 says. Going through the
//! streaming hasher and the `hmac` crate costs about as much again in buffering and copying
//! of state, and verification does this three times per entry. The tests compare every
//! function with `sha2::Sha256` and `hmac::Hmac`.

use sha2::digest::generic_array::GenericArray;

use crate::merkle::Hash;

/// SHA-256's initial hash value (FIPS 180-4 §5.3.3).
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

const BLOCK: usize = 64;

fn compress(state: &mut [u32; 8], block: &[u8; BLOCK]) {
    sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

fn output(state: &[u32; 8]) -> Hash {
    let mut out = [0u8; 32];
    for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    out
}

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
        }

        #[test]
        fn same_as_the_hmac_crate(key in any::<[u8; 32]>(), message in any::<[u8; 32]>()) {
            let mut reference = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
            reference.update(&message);
            let expected: Hash = reference.finalize().into_bytes().into();
            prop_assert_eq!(HmacSha256::new(&key).mac(&message), expected);
        }
    }
}
