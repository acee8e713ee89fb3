//! Witness cosignatures: C2SP `tlog-cosignature`, the Ed25519 `cosignature/v1` type.
//!
//! A cosignature is a note signature line added to a checkpoint by a *cosigner* (a witness)
//! that checked the checkpoint is consistent with everything it saw of the log before. It
//! signs, with its own Ed25519 key, the message
//!
//! ```text
//! cosignature/v1
//! time <POSIX seconds, decimal>
//! <the checkpoint's note body, with its final newline>
//! ```
//!
//! and the line's base64 payload is `key ID (4 bytes) || timestamp (8 bytes, big-endian) ||
//! Ed25519 signature (64 bytes)`. The key ID is `SHA-256(name || "\n" || 0x04 || public
//! key)[:4]`, and keys are encoded as C2SP signed-note keys with algorithm byte `0x04`:
//! `<name>+<hex key ID>+<base64(0x04 || key)>` (and `PRIVATE+KEY+…` for the secret one).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::note::{
    Note, NoteError, SIG_PREFIX, SKEY_PREFIX, check_text, decode_key_for, is_valid_name,
    key_id_for, parse_key_id, split_key,
};

/// The signed-note algorithm byte of Ed25519 `cosignature/v1`.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// Bytes of a cosignature after the key ID: timestamp and signature.
const TIMESTAMPED_SIGNATURE_LEN: usize = 8 + 64;

/// The message a `cosignature/v1` signs over a checkpoint's note body.
#[must_use]
pub fn signed_message(timestamp: u64, body: &str) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

/// A cosigner's secret key, with its name.
#[derive(Clone)]
pub struct Cosigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cosigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl Cosigner {
    /// A cosigner named `name` with the Ed25519 key of `seed` (RFC 8032 private key).
    ///
    /// # Errors
    /// [`NoteError::InvalidKeyName`].
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Cosigner, NoteError> {
        if !is_valid_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let key = SigningKey::from_bytes(&seed);
        Ok(Cosigner {
            name: name.to_owned(),
            key_id: key_id_for(ALG_COSIGNATURE_V1, name, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// Parse `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 || seed)>`.
    ///
    /// # Errors
    /// A malformed key, another algorithm, or a key ID that does not match.
    pub fn parse(skey: &str) -> Result<Cosigner, NoteError> {
        let rest = skey
            .trim()
            .strip_prefix(SKEY_PREFIX)
            .ok_or(NoteError::MalformedSignerKey)?;
        let (name, id, b64) = split_key(rest).ok_or(NoteError::MalformedSignerKey)?;
        let claimed = parse_key_id(id).ok_or(NoteError::MalformedSignerKey)?;
        let seed = decode_key_for(ALG_COSIGNATURE_V1, b64, NoteError::MalformedSignerKey)?;
        let cosigner = Cosigner::from_seed(name, seed)?;
        if cosigner.key_id != claimed {
            return Err(NoteError::KeyIdMismatch {
                claimed,
                computed: cosigner.key_id,
            });
        }
        Ok(cosigner)
    }

    /// The secret key string; keep it secret.
    #[must_use]
    pub fn to_skey_string(&self) -> String {
        let mut raw = vec![ALG_COSIGNATURE_V1];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "{SKEY_PREFIX}{}+{:08x}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(raw)
        )
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier for this cosigner's public key.
    #[must_use]
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The cosignature line (with its newline) for the checkpoint whose note body is `body`,
    /// made at `timestamp` (POSIX seconds).
    ///
    /// # Errors
    /// A body that is not a note text (empty, no final newline, control characters).
    pub fn cosign(&self, body: &str, timestamp: u64) -> Result<String, NoteError> {
        check_text(body)?;
        let message = signed_message(timestamp, body);
        let signature = self.key.sign(message.as_bytes()).to_bytes();
        let mut raw = Vec::with_capacity(4 + TIMESTAMPED_SIGNATURE_LEN);
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(&signature);
        Ok(format!(
            "{SIG_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(raw)
        ))
    }
}

/// A cosigner's public key, with its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

/// Why a checkpoint does not carry a valid cosignature by a given cosigner.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    #[error("no cosignature by {name}+{key_id:08x}")]
    Missing { name: String, key_id: u32 },
    #[error("the cosignature by {name}+{key_id:08x} does not verify")]
    Invalid { name: String, key_id: u32 },
    #[error("the cosignature by {name}+{key_id:08x} is not a timestamp and a signature")]
    Malformed { name: String, key_id: u32 },
}

impl CosignatureVerifier {
    /// Parse `<name>+<hex key ID>+<base64(0x04 || public key)>`.
    ///
    /// # Errors
    /// A malformed key, another algorithm, a key ID that does not match, or an invalid point.
    pub fn parse(vkey: &str) -> Result<CosignatureVerifier, NoteError> {
        let (name, id, b64) = split_key(vkey.trim()).ok_or(NoteError::MalformedVerifierKey)?;
        if !is_valid_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let claimed = parse_key_id(id).ok_or(NoteError::MalformedVerifierKey)?;
        let public = decode_key_for(ALG_COSIGNATURE_V1, b64, NoteError::MalformedVerifierKey)?;
        let computed = key_id_for(ALG_COSIGNATURE_V1, name, &public);
        if computed != claimed {
            return Err(NoteError::KeyIdMismatch { claimed, computed });
        }
        let key = VerifyingKey::from_bytes(&public).map_err(|_| NoteError::InvalidPublicKey)?;
        if key.is_weak() {
            return Err(NoteError::InvalidPublicKey);
        }
        Ok(CosignatureVerifier {
            name: name.to_owned(),
            key_id: claimed,
            key,
        })
    }

    #[must_use]
    pub fn to_vkey_string(&self) -> String {
        let mut raw = vec![ALG_COSIGNATURE_V1];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, STANDARD.encode(raw))
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID (the first 4 bytes of its cosignature lines).
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The timestamp of this cosigner's valid cosignature on `note`. Lines of other keys are
    /// ignored; every line with this cosigner's name and key ID must verify.
    ///
    /// # Errors
    /// No such line, or one that does not verify.
    pub fn verify(&self, note: &Note) -> Result<u64, CosignatureError> {
        let (name, key_id) = (self.name.clone(), self.key_id);
        let mut newest = None;
        for sig in &note.signatures {
            if sig.name != self.name || sig.key_id != self.key_id {
                continue;
            }
            if sig.signature.len() != TIMESTAMPED_SIGNATURE_LEN {
                return Err(CosignatureError::Malformed { name, key_id });
            }
            let (ts, signature) = sig.signature.split_at(8);
            let timestamp = u64::from_be_bytes(ts.try_into().expect("8 bytes"));
            let signature =
                Signature::from_bytes(signature.try_into().expect("64 bytes after the timestamp"));
            let message = signed_message(timestamp, &note.text);
            if timestamp > i64::MAX as u64
                || self
                    .key
                    .verify_strict(message.as_bytes(), &signature)
                    .is_err()
            {
                return Err(CosignatureError::Invalid { name, key_id });
            }
            newest = newest.max(Some(timestamp));
        }
        newest.ok_or(CosignatureError::Missing { name, key_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::NoteSigner;

    const BODY: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    fn witness() -> Cosigner {
        Cosigner::from_seed("witness.example.com/w1", [7; 32]).unwrap()
    }

    #[test]
    fn keys_round_trip_and_use_their_own_algorithm() {
        let w = witness();
        let again = Cosigner::parse(&w.to_skey_string()).unwrap();
        assert_eq!(again.verifier(), w.verifier());
        let vkey = w.verifier().to_vkey_string();
        assert_eq!(CosignatureVerifier::parse(&vkey).unwrap(), w.verifier());
        // The log's note keys (0x01) are not cosigner keys, and the reverse.
        let log = NoteSigner::from_seed("witness.example.com/w1", [7; 32]).unwrap();
        assert_eq!(
            CosignatureVerifier::parse(&log.verifier().to_vkey_string()),
            Err(NoteError::UnknownAlgorithm(0x01))
        );
        assert_eq!(
            crate::note::NoteVerifier::parse(&vkey),
            Err(NoteError::UnknownAlgorithm(0x04))
        );
        assert_ne!(
            log.key_id(),
            w.key_id,
            "the algorithm byte is in the key ID"
        );
    }

    #[test]
    fn a_cosignature_verifies_with_its_timestamp_and_nothing_else_does() {
        let w = witness();
        let log = NoteSigner::from_seed("example.com/behind-the-sofa", [1; 32]).unwrap();
        let signed = log.sign(BODY).unwrap();
        let line = w.cosign(BODY, 1_679_315_147).unwrap();
        let cosigned = format!("{signed}{line}");
        let note = Note::parse(&cosigned).unwrap();
        assert_eq!(w.verifier().verify(&note), Ok(1_679_315_147));
        note.verify(&log.verifier()).unwrap();

        // The payload: key ID, big-endian timestamp, 64-byte signature.
        let raw = &note.signatures[1].signature;
        assert_eq!(raw.len(), 72);
        assert_eq!(&raw[..8], &1_679_315_147u64.to_be_bytes());

        // Another body, another time, another witness.
        let other = Note::parse(&format!(
            "{}{line}",
            log.sign(&BODY.replace("20852163", "20852164")).unwrap()
        ))
        .unwrap();
        assert!(matches!(
            w.verifier().verify(&other),
            Err(CosignatureError::Invalid { .. })
        ));
        let mut bytes = STANDARD
            .decode(line.trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        bytes[11] ^= 1; // the timestamp's last byte
        let retimed = format!(
            "{signed}{SIG_PREFIX}witness.example.com/w1 {}\n",
            STANDARD.encode(&bytes)
        );
        assert!(matches!(
            w.verifier().verify(&Note::parse(&retimed).unwrap()),
            Err(CosignatureError::Invalid { .. })
        ));
        let stranger = Cosigner::from_seed("witness.example.com/w1", [8; 32]).unwrap();
        assert!(matches!(
            stranger.verifier().verify(&note),
            Err(CosignatureError::Missing { .. })
        ));
    }

    /// The message is the spec's: two header lines, then the whole body.
    #[test]
    fn the_signed_message_is_the_specs() {
        assert_eq!(
            signed_message(1_679_315_147, BODY),
            "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
    }

    /// The spec's example (c2sp.org/tlog-cosignature, with the stray `\n` inside its last
    /// base64 removed) parses as a checkpoint with a log signature and a `cosignature/v1`
    /// line: key ID, the timestamp of the message above, a 64-byte signature. The spec
    /// publishes no public key for `witness.example.com/w1`, so its signature cannot be
    /// checked; a key of that name and another key ID does not count it.
    #[test]
    fn the_specs_example_has_the_cosignature_layout() {
        let example = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\
            \u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\
            \u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";
        let note = Note::parse(example).unwrap();
        assert_eq!(note.text, BODY);
        let cosig = &note.signatures[1];
        assert_eq!(cosig.name, "witness.example.com/w1");
        assert_eq!(cosig.key_id, 0x8d66_cf3f);
        assert_eq!(cosig.signature.len(), TIMESTAMPED_SIGNATURE_LEN);
        let timestamp = u64::from_be_bytes(cosig.signature[..8].try_into().unwrap());
        assert_eq!(timestamp, 1_679_315_147);
        assert!(matches!(
            witness().verifier().verify(&note),
            Err(CosignatureError::Missing { .. })
        ));
    }
}
