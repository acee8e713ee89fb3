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

/// Two chain steps at once (two entries' steps, checked side by side by the verifier).
pub fn next_two(first: (&Hash, &Hash), second: (&Hash, &Hash)) -> [Hash; 2] {
    short_hash::pair_two(first, second)
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

    /// Constant-time check of a stored MAC.
    pub fn verify(&self, chain: &Hash, mac: &Hash) -> bool {
        self.prepared.mac(chain).ct_eq(mac).into()
    }

    /// [`MacKey::verify`] of two stored MACs at once.
    pub fn verify_two(&self, first: (&Hash, &Hash), second: (&Hash, &Hash)) -> [bool; 2] {
        let [x, y] = self.prepared.mac_two(first.0, second.0);
        [x.ct_eq(first.1).into(), y.ct_eq(second.1).into()]
    }
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
        fn two_steps_and_macs_at_once_are_two_of_each(
            key in any::<[u8; MAC_KEY_LEN]>(),
            hashes in any::<[[u8; 32]; 4]>(),
        ) {
            let [a, b, c, d] = &hashes;
            prop_assert_eq!(next_two((a, b), (c, d)), [next(a, b), next(c, d)]);
            let key = MacKey::new(&key);
            let (mac_a, mac_c) = (key.mac(a), key.mac(c));
            prop_assert_eq!(key.verify_two((a, &mac_a), (c, &mac_c)), [true, true]);
            prop_assert_eq!(key.verify_two((a, &mac_c), (c, &mac_c)), [a == c, true]);
            prop_assert_eq!(key.verify_two((a, &mac_a), (c, b)), [true, key.verify(c, b)]);
        }
    }
}
