//! The hash chain and the per-entry HMAC.
//!
//! For the entry at position `seq` with canonical bytes `E`:
//!
//! ```text
//! leaf(seq)  = SHA-256(0x00 || E)                     (the RFC 6962 leaf hash)
//! chain(-1)  = SHA-256("ingress-audit-log/v1 genesis\n" || origin)
//! chain(seq) = SHA-256(chain(seq-1) || leaf(seq))
//! mac(seq)   = HMAC-SHA256(hmac_key, chain(seq))
//! ```
//!
//! The chain binds every entry to all entries before it and to the log's identity, so an
//! entry spliced in from another log breaks it. The MAC proves that the holder of the HMAC
//! key wrote the chain; the Ed25519-signed checkpoints prove it to anyone with the public key.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::merkle::Hash;
use crate::short_hash::{self, HmacSha256};

/// Domain-separation prefix of the genesis value; also versions the format.
pub const GENESIS_PREFIX: &[u8] = b"ingress-audit-log/v1 genesis\n";

/// The chain value before the first entry of the log named `origin`.
pub fn genesis(origin: &str) -> Hash {
    Sha256::new()
        .chain_update(GENESIS_PREFIX)
        .chain_update(origin.as_bytes())
        .finalize()
        .into()
}

/// One step of the chain.
pub fn next(previous: &Hash, leaf: &Hash) -> Hash {
    short_hash::pair(previous, leaf)
}

/// Many chain steps at once (a batch of entries' steps, checked side by side by the
/// verifier): `out[i]` is `next(inputs[i].0, inputs[i].1)`.
///
/// # Panics
/// If `out` is not as long as `inputs`.
pub fn next_many(inputs: &[(&Hash, &Hash)], out: &mut [Hash]) {
    short_hash::pair_many(inputs, out);
}

/// Length of an HMAC key in bytes.
pub const MAC_KEY_LEN: usize = 32;

/// The secret HMAC-SHA256 key, with its inner and outer pads precomputed.
#[derive(Clone)]
pub struct MacKey {
    prepared: HmacSha256,
}

impl MacKey {
    pub fn new(key: &[u8; MAC_KEY_LEN]) -> Self {
        MacKey {
            prepared: HmacSha256::new(key),
        }
    }

    /// The MAC of one chain value.
    pub fn mac(&self, chain: &Hash) -> Hash {
        self.prepared.mac(chain)
    }

    /// The MACs of many chain values at once, side by side: `out[i]` is the MAC of
    /// `chains[i]`.
    ///
    /// # Panics
    /// If `out` is not as long as `chains`.
    pub fn mac_many(&self, chains: &[&Hash], out: &mut [Hash]) {
        self.prepared.mac_many(chains, out);
    }

    /// Constant-time check of a stored MAC.
    pub fn verify(&self, chain: &Hash, mac: &Hash) -> bool {
        self.prepared.mac(chain).ct_eq(mac).into()
    }

    /// [`MacKey::verify`] of many `(chain, stored MAC)` pairs at once: `out[i]` says whether
    /// `pairs[i]`'s MAC is right.
    ///
    /// # Panics
    /// If `out` is not as long as `pairs`.
    pub fn verify_many(&self, pairs: &[(&Hash, &Hash)], out: &mut [bool]) {
        assert_eq!(pairs.len(), out.len(), "one answer per MAC");
        // In groups on the stack: the verifier calls this for every batch of entries.
        const GROUP: usize = 16;
        for (pairs, out) in pairs.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
            let chains: [&Hash; GROUP] =
                std::array::from_fn(|i| pairs.get(i).map_or(&[0; 32], |p| p.0));
            let mut macs = [[0u8; 32]; GROUP];
            self.prepared
                .mac_many(&chains[..pairs.len()], &mut macs[..pairs.len()]);
            for ((ok, mac), (_, stored)) in out.iter_mut().zip(&macs).zip(pairs) {
                *ok = difference(mac, stored).ct_eq(&0).into();
            }
        }
    }
}

/// The bits where two hashes differ, folded into one word without an early exit: compared
/// with 0 in constant time, as a byte-by-byte `ct_eq` of the hashes would be, at an eighth of
/// the steps (the verifier compares every record's MAC).
fn difference(a: &Hash, b: &Hash) -> u64 {
    let word = |bytes: &[u8]| u64::from_ne_bytes(bytes.try_into().expect("eight bytes"));
    a.chunks_exact(8)
        .zip(b.chunks_exact(8))
        .fold(0, |d, (x, y)| d | (word(x) ^ word(y)))
}

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn steps_and_macs_at_once_are_each_alone(
            key in any::<[u8; MAC_KEY_LEN]>(),
            hashes in proptest::collection::vec(any::<[u8; 32]>(), 1..40),
            wrong in proptest::collection::vec(any::<bool>(), 40),
        ) {
            let pairs: Vec<(&Hash, &Hash)> = hashes.iter().zip(hashes.iter().rev()).collect();
            let mut steps = vec![[0u8; 32]; pairs.len()];
            next_many(&pairs, &mut steps);
            let expected: Vec<Hash> = pairs.iter().map(|(a, b)| next(a, b)).collect();
            prop_assert_eq!(steps, expected);
            let key = MacKey::new(&key);
            // Each chain value with its right MAC, or with a wrong one where `wrong` says.
            let macs: Vec<Hash> = hashes
                .iter()
                .zip(&wrong)
                .map(|(h, &w)| if w { *h } else { key.mac(h) })
                .collect();
            let stored: Vec<(&Hash, &Hash)> = hashes.iter().zip(&macs).collect();
            let mut ok = vec![false; stored.len()];
            key.verify_many(&stored, &mut ok);
            let expected: Vec<bool> = stored.iter().map(|(c, m)| key.verify(c, m)).collect();
            prop_assert_eq!(&ok, &expected);
            for (ok, &w) in ok.iter().zip(&wrong) {
                prop_assert_eq!(*ok, !w);
            }
        }
    }

    #[test]
    fn a_mac_one_bit_off_anywhere_is_refused() {
        let key = MacKey::new(&[7; MAC_KEY_LEN]);
        let chain = [3u8; 32];
        let mac = key.mac(&chain);
        let wrong: Vec<Hash> = (0..256)
            .map(|bit| {
                let mut m = mac;
                m[bit / 8] ^= 1 << (bit % 8);
                m
            })
            .collect();
        let stored: Vec<(&Hash, &Hash)> = std::iter::once(&mac)
            .chain(&wrong)
            .map(|m| (&chain, m))
            .collect();
        let mut ok = vec![false; stored.len()];
        key.verify_many(&stored, &mut ok);
        assert!(ok[0]);
        assert!(ok[1..].iter().all(|ok| !ok));
    }
}
