//! SHA-256 of the short, fixed-length messages hashed for every entry, block by block.
//!
//! A chain step hashes 64 bytes, a tree node 65, and the MAC of a chain value is two
//! compressions under the HMAC key's precomputed pads (RFC 2104). Each of these is exactly two
//! SHA-256 compressions of blocks padded here as FIPS 180-4 §5.1.1 says. Going through the
//! streaming hasher and the `hmac` crate costs about as much again in buffering and copying
//! of state, and verification does this three times per entry. The tests compare every
//! function with `sha2::Sha256` and `hmac::Hmac`.
//!
//! The `_many` functions do the same for many messages at once: the verifier has a batch of
//! entries' chain steps and MACs to compute at a time, and `sha256_x2` runs their
//! compressions side by side (sixteen at once with AVX-512, two with the SHA extensions).

use sha256_x2::{IV, compress, compress_many, output};

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

/// How many messages the `_many` functions hash side by side; longer inputs go in turns.
const BATCH: usize = 16;

/// Hashes two-block messages side by side: `out[i]` is the digest of the message whose
/// blocks `blocks(i)` gives, from the initial state.
fn two_blocks_many(n: usize, blocks: impl Fn(usize) -> [[u8; BLOCK]; 2], out: &mut [Hash]) {
    for (start, out) in (0..n).step_by(BATCH).zip(out.chunks_mut(BATCH)) {
        let count = out.len();
        let mut states = [IV; BATCH];
        let (mut firsts, mut seconds) = ([[0u8; BLOCK]; BATCH], [[0u8; BLOCK]; BATCH]);
        for i in 0..count {
            [firsts[i], seconds[i]] = blocks(start + i);
        }
        compress_many(&mut states[..count], &firsts[..count]);
        compress_many(&mut states[..count], &seconds[..count]);
        for (digest, state) in out.iter_mut().zip(&states) {
            *digest = output(state);
        }
    }
}

/// [`pair`] of each of `inputs`, side by side: `out[i]` is the hash of `inputs[i]`.
///
/// # Panics
/// If `out` is not as long as `inputs`.
pub(crate) fn pair_many(inputs: &[(&Hash, &Hash)], out: &mut [Hash]) {
    assert_eq!(inputs.len(), out.len(), "one hash per pair");
    let padding = last_block(&[], 64);
    two_blocks_many(
        inputs.len(),
        |i| {
            let (a, b) = inputs[i];
            let mut block = [0u8; BLOCK];
            block[..32].copy_from_slice(a);
            block[32..].copy_from_slice(b);
            [block, padding]
        },
        out,
    );
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

/// [`prefixed_pair`] of each of `inputs`, side by side.
///
/// # Panics
/// If `out` is not as long as `inputs`.
pub(crate) fn prefixed_pair_many(prefix: u8, inputs: &[(&Hash, &Hash)], out: &mut [Hash]) {
    assert_eq!(inputs.len(), out.len(), "one hash per pair");
    two_blocks_many(
        inputs.len(),
        |i| {
            let (a, b) = inputs[i];
            let mut block = [0u8; BLOCK];
            block[0] = prefix;
            block[1..33].copy_from_slice(a);
            block[33..].copy_from_slice(&b[..31]);
            [block, last_block(&b[31..], 65)]
        },
        out,
    );
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

    /// The MACs of `messages`, side by side: `out[i]` is the MAC of `messages[i]`.
    ///
    /// # Panics
    /// If `out` is not as long as `messages`.
    pub(crate) fn mac_many(&self, messages: &[&Hash], out: &mut [Hash]) {
        assert_eq!(messages.len(), out.len(), "one MAC per message");
        let message_len = (BLOCK + 32) as u64;
        for (messages, out) in messages.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            let count = messages.len();
            let mut blocks = [[0u8; BLOCK]; BATCH];
            let mut states = [self.inner; BATCH];
            for (block, message) in blocks.iter_mut().zip(messages) {
                *block = last_block(*message, message_len);
            }
            compress_many(&mut states[..count], &blocks[..count]);
            for (block, inner) in blocks.iter_mut().zip(&states[..count]) {
                *block = last_block(&output(inner), message_len);
            }
            let mut states = [self.outer; BATCH];
            compress_many(&mut states[..count], &blocks[..count]);
            for (mac, state) in out.iter_mut().zip(&states) {
                *mac = output(state);
            }
        }
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

        /// Any number of pairs, in any number of batches, hashed side by side.
        #[test]
        fn many_at_once_are_each_alone(
            hashes in proptest::collection::vec(any::<[u8; 32]>(), 1..40),
            p in any::<u8>(),
            key in any::<[u8; 32]>(),
        ) {
            let inputs: Vec<(&Hash, &Hash)> =
                hashes.iter().zip(hashes.iter().rev()).collect();
            let mut out = vec![[0u8; 32]; inputs.len()];
            pair_many(&inputs, &mut out);
            let expected: Vec<Hash> = inputs.iter().map(|(a, b)| hash(&[*a, *b])).collect();
            prop_assert_eq!(&out, &expected);
            prefixed_pair_many(p, &inputs, &mut out);
            let expected: Vec<Hash> =
                inputs.iter().map(|(a, b)| hash(&[&[p], *a, *b])).collect();
            prop_assert_eq!(&out, &expected);
            let prepared = HmacSha256::new(&key);
            let messages: Vec<&Hash> = hashes.iter().collect();
            prepared.mac_many(&messages, &mut out);
            let expected: Vec<Hash> = hashes.iter().map(|m| prepared.mac(m)).collect();
            prop_assert_eq!(&out, &expected);
        }

        #[test]
        fn same_as_the_hmac_crate(key in any::<[u8; 32]>(), message in any::<[u8; 32]>()) {
            let mut reference = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
            reference.update(&message);
            let expected: Hash = reference.finalize().into_bytes().into();
            let prepared = HmacSha256::new(&key);
            prop_assert_eq!(prepared.mac(&message), expected);
        }
    }
}
