//! C2SP signed notes with Ed25519 keys.
//!
//! This module follows the C2SP `signed-note` specification (<https://c2sp.org/signed-note>,
//! v1.0.0) for the note format and Ed25519 signatures, and the key string encoding of
//! `golang.org/x/mod/sumdb/note` for signer and verifier keys.
//!
//! # Note format
//!
//! A signed note is a text ending in a newline, a blank line, and one or more signature lines:
//!
//! ```text
//! If you think cryptography is the answer to your problem,
//! then you don't know what your problem is.
//!
//! — PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=
//! ```
//!
//! - The whole note is UTF-8 and contains no ASCII control character (below U+0020) other than
//!   newline. The text includes its final newline but not the separating blank line; the text
//!   may contain empty lines, since the text ends at the *last* blank line of the note.
//! - A signature line is an em dash (U+2014), a space, the key name, a space, and the standard
//!   (RFC 4648 section 4, padded) base64 encoding of the 4-byte big-endian key ID followed by the
//!   signature, then a newline.
//! - Key names are non-empty and contain no Unicode white space and no `+`. (This module also
//!   rejects ASCII control characters in key names, which a note could not carry anyway.)
//! - An Ed25519 signature is the RFC 8032 signature of the note text bytes. The Ed25519 key ID is
//!   the first 4 bytes, read big-endian, of `SHA-256(key name || 0x0A || 0x01 || public key)`.
//!
//! # Verification
//!
//! A signature is identified by its (key name, key ID) pair. [`Note::verify`] ignores signatures
//! whose name or key ID differ from the verifier's, checks every signature whose name and key ID
//! both match (rejecting the note if any of them fails), and fails if there is none. The spec
//! asks verifiers to bound the number of signatures and to accept at least 16;
//! [`Note::parse`] rejects notes with more than [`MAX_SIGNATURES`] (100, the bound used by
//! `golang.org/x/mod/sumdb/note`).
//!
//! # Key strings
//!
//! - Verifier key: `<name>+<8 lowercase hex key ID>+<base64(0x01 || 32-byte public key)>`.
//! - Signer key: `PRIVATE+KEY+<name>+<8 lowercase hex key ID>+<base64(0x01 || 32-byte seed)>`.
//!
//! Both parsers check that the key ID matches the key and the name. Only the Ed25519 algorithm
//! (type byte `0x01`) is supported.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// The signature type identifier byte for Ed25519 in C2SP `signed-note`.
pub const ALG_ED25519: u8 = 0x01;

/// The largest number of signature lines [`Note::parse`] accepts.
pub const MAX_SIGNATURES: usize = 100;

/// The prefix of a signature line: em dash (U+2014) and a space.
pub(crate) const SIG_PREFIX: &str = "\u{2014} ";

/// The prefix of an encoded signer key.
pub(crate) const SKEY_PREFIX: &str = "PRIVATE+KEY+";

/// Errors from parsing keys, signing and parsing or verifying notes.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    /// A key name is empty or contains white space, `+` or a control character.
    #[error("invalid key name")]
    InvalidKeyName,
    /// A verifier key string is not `<name>+<hex id>+<base64 key>`.
    #[error("malformed verifier key")]
    MalformedVerifierKey,
    /// A signer key string is not `PRIVATE+KEY+<name>+<hex id>+<base64 key>`.
    #[error("malformed signer key")]
    MalformedSignerKey,
    /// A key string uses a signature algorithm other than Ed25519.
    #[error("unknown key algorithm {0:#04x}")]
    UnknownAlgorithm(u8),
    /// The key ID in a key string does not match the name and key.
    #[error("key id {claimed:08x} does not match the key, which has key id {computed:08x}")]
    KeyIdMismatch {
        /// The key ID written in the key string.
        claimed: u32,
        /// The key ID computed from the name and public key.
        computed: u32,
    },
    /// A public key is not a valid Ed25519 point, or is of small order.
    #[error("invalid ed25519 public key")]
    InvalidPublicKey,
    /// The note text is empty.
    #[error("empty note text")]
    EmptyText,
    /// The note text does not end in a newline.
    #[error("note text does not end in a newline")]
    MissingFinalNewline,
    /// The note contains an ASCII control character other than newline.
    #[error("control character in note")]
    ControlCharacter,
    /// Two signed notes to be merged sign different texts.
    #[error("the notes sign different texts")]
    DifferentText,
    /// The signed note has no blank line separating the text from the signatures.
    #[error("missing blank line before signatures")]
    MissingSeparator,
    /// The signed note has no signature lines after the blank line.
    #[error("note has no signature lines")]
    NoSignatureLines,
    /// The signed note does not end in a newline.
    #[error("signed note does not end in a newline")]
    MissingSignatureNewline,
    /// A signature line is malformed; the number is the 1-based line number in the signed note.
    #[error("malformed signature line {0}")]
    MalformedSignatureLine(usize),
    /// The note has more than [`MAX_SIGNATURES`] signature lines.
    #[error("too many signatures (more than {MAX_SIGNATURES})")]
    TooManySignatures,
    /// The note carries no signature by the expected key.
    #[error("no signature by key {name}+{key_id:08x}")]
    NoSignature {
        /// The verifier's key name.
        name: String,
        /// The verifier's key ID.
        key_id: u32,
    },
    /// A signature by the expected key does not verify.
    #[error("invalid signature by key {name}+{key_id:08x}")]
    InvalidSignature {
        /// The verifier's key name.
        name: String,
        /// The verifier's key ID.
        key_id: u32,
    },
}

/// Reports whether `name` is a valid key name: non-empty, with no Unicode white space, no `+`
/// and no control character.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// The C2SP Ed25519 key ID: the first 4 bytes, big-endian, of
/// `SHA-256(name || 0x0A || 0x01 || public key)`.
fn ed25519_key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    key_id_for(ALG_ED25519, name, public_key)
}

/// A C2SP key ID: the first 4 bytes, big-endian, of `SHA-256(name || 0x0A || alg || key)`.
pub(crate) fn key_id_for(alg: u8, name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([alg]);
    h.update(public_key);
    let sum = h.finalize();
    u32::from_be_bytes([sum[0], sum[1], sum[2], sum[3]])
}

/// Parses exactly 8 lowercase hex digits.
pub(crate) fn parse_key_id(s: &str) -> Option<u32> {
    if s.len() != 8
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Splits `<name>+<hex id>+<base64>` into its parts; the base64 part may itself contain `+`.
pub(crate) fn split_key(s: &str) -> Option<(&str, &str, &str)> {
    let (name, rest) = s.split_once('+')?;
    let (id, key) = rest.split_once('+')?;
    Some((name, id, key))
}

/// Decodes `base64(0x01 || 32 bytes)` into the 32 bytes.
fn decode_ed25519_key(b64: &str, malformed: NoteError) -> Result<[u8; 32], NoteError> {
    decode_key_for(ALG_ED25519, b64, malformed)
}

/// Decodes `base64(alg || 32 bytes)` into the 32 bytes.
pub(crate) fn decode_key_for(
    expected: u8,
    b64: &str,
    malformed: NoteError,
) -> Result<[u8; 32], NoteError> {
    let raw = STANDARD.decode(b64).map_err(|_| malformed.clone())?;
    match raw.split_first() {
        None => Err(malformed),
        Some((&alg, _)) if alg != expected => Err(NoteError::UnknownAlgorithm(alg)),
        Some((_, key)) => key.try_into().map_err(|_| malformed),
    }
}

/// Checks that a note text is non-empty, ends in a newline and has no control character other
/// than newline.
pub(crate) fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() {
        return Err(NoteError::EmptyText);
    }
    if !text.ends_with('\n') {
        return Err(NoteError::MissingFinalNewline);
    }
    check_control(text)
}

/// Rejects ASCII control characters other than newline.
fn check_control(s: &str) -> Result<(), NoteError> {
    if s.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(NoteError::ControlCharacter);
    }
    Ok(())
}

/// An Ed25519 note signing key with its key name.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// Builds a signer from a key name and a 32-byte Ed25519 seed (RFC 8032 private key).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        if !is_valid_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let key = SigningKey::from_bytes(&seed);
        let key_id = ed25519_key_id(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Parses an encoded signer key `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`,
    /// ignoring surrounding white space, and checks the key ID.
    pub fn parse(skey: &str) -> Result<Self, NoteError> {
        let rest = skey
            .trim()
            .strip_prefix(SKEY_PREFIX)
            .ok_or(NoteError::MalformedSignerKey)?;
        let (name, id, b64) = split_key(rest).ok_or(NoteError::MalformedSignerKey)?;
        if !is_valid_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let claimed = parse_key_id(id).ok_or(NoteError::MalformedSignerKey)?;
        let seed = decode_ed25519_key(b64, NoteError::MalformedSignerKey)?;
        let signer = Self::from_seed(name, seed)?;
        if signer.key_id != claimed {
            return Err(NoteError::KeyIdMismatch {
                claimed,
                computed: signer.key_id,
            });
        }
        Ok(signer)
    }

    /// The encoded signer key: `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
    ///
    /// This string is the secret key; keep it secret.
    pub fn to_skey_string(&self) -> String {
        let mut raw = [0u8; 33];
        raw[0] = ALG_ED25519;
        raw[1..].copy_from_slice(self.key.as_bytes());
        format!(
            "{SKEY_PREFIX}{}+{:08x}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(raw)
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The verifier for this signer's public key.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` and returns the signed note: the text, a blank line, and one signature line.
    ///
    /// The text must be non-empty, end in a newline and contain no control character other than
    /// newline.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let signature = self.key.sign(text.as_bytes()).to_bytes();
        let mut raw = Vec::with_capacity(4 + signature.len());
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&signature);
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(raw)
        ))
    }
}

/// An Ed25519 note verification key with its key name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses an encoded verifier key `<name>+<hex id>+<base64(0x01 || public key)>`, ignoring
    /// surrounding white space, and checks the key ID.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let (name, id, b64) = split_key(vkey.trim()).ok_or(NoteError::MalformedVerifierKey)?;
        if !is_valid_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let claimed = parse_key_id(id).ok_or(NoteError::MalformedVerifierKey)?;
        let public = decode_ed25519_key(b64, NoteError::MalformedVerifierKey)?;
        let computed = ed25519_key_id(name, &public);
        if computed != claimed {
            return Err(NoteError::KeyIdMismatch { claimed, computed });
        }
        let key = VerifyingKey::from_bytes(&public).map_err(|_| NoteError::InvalidPublicKey)?;
        if key.is_weak() {
            return Err(NoteError::InvalidPublicKey);
        }
        Ok(Self {
            name: name.to_owned(),
            key_id: claimed,
            key,
        })
    }

    /// The encoded verifier key: `<name>+<hex id>+<base64(0x01 || public key)>`.
    pub fn to_vkey_string(&self) -> String {
        let mut raw = [0u8; 33];
        raw[0] = ALG_ED25519;
        raw[1..].copy_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, STANDARD.encode(raw))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Reports whether `signature` (without the key ID prefix) is a valid signature of `msg`.
    fn verify_bytes(&self, msg: &[u8], signature: &[u8]) -> bool {
        let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        self.key
            .verify_strict(msg, &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

/// A parsed signed note: its text and its signatures, none of them verified yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The note text, including its final newline but not the blank line after it.
    pub text: String,
    /// The signatures, in the order of the signature lines.
    pub signatures: Vec<NoteSignature>,
}

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key ID (the first 4 bytes of the encoded signature, big-endian).
    pub key_id: u32,
    /// The signature bytes that follow the key ID.
    pub signature: Vec<u8>,
}

impl Note {
    /// Parses a signed note without verifying any signature.
    ///
    /// Rejects control characters, a missing blank line or final newline, malformed signature
    /// lines and more than [`MAX_SIGNATURES`] signatures.
    pub fn parse(signed: &str) -> Result<Note, NoteError> {
        check_control(signed)?;
        let split = signed.rfind("\n\n").ok_or(NoteError::MissingSeparator)?;
        let (text, sigs) = (&signed[..split + 1], &signed[split + 2..]);
        if sigs.is_empty() {
            return Err(NoteError::NoSignatureLines);
        }
        let Some(sigs) = sigs.strip_suffix('\n') else {
            return Err(NoteError::MissingSignatureNewline);
        };
        // Line numbers are 1-based in the signed note: the text lines, the blank line, then
        // the signature lines.
        let first_line = text.bytes().filter(|&b| b == b'\n').count() + 2;
        let mut signatures = Vec::new();
        for (i, line) in sigs.split('\n').enumerate() {
            if i >= MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            let sig = parse_signature_line(line)
                .ok_or(NoteError::MalformedSignatureLine(first_line + i))?;
            signatures.push(sig);
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Ok if a signature by this verifier (same name and key id) is present and valid; ignores
    /// other signers.
    ///
    /// Every signature line with the verifier's name and key ID must verify.
    pub fn verify(&self, verifier: &NoteVerifier) -> Result<(), NoteError> {
        let mut found = false;
        for sig in &self.signatures {
            if sig.name != verifier.name || sig.key_id != verifier.key_id {
                continue;
            }
            if !verifier.verify_bytes(self.text.as_bytes(), &sig.signature) {
                return Err(NoteError::InvalidSignature {
                    name: verifier.name.clone(),
                    key_id: verifier.key_id,
                });
            }
            found = true;
        }
        if found {
            Ok(())
        } else {
            Err(NoteError::NoSignature {
                name: verifier.name.clone(),
                key_id: verifier.key_id,
            })
        }
    }
}

impl fmt::Display for Note {
    /// The signed note again: the text, a blank line, and one line per signature.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.text)?;
        for sig in &self.signatures {
            let mut raw = Vec::with_capacity(4 + sig.signature.len());
            raw.extend_from_slice(&sig.key_id.to_be_bytes());
            raw.extend_from_slice(&sig.signature);
            writeln!(f, "{SIG_PREFIX}{} {}", sig.name, STANDARD.encode(raw))?;
        }
        Ok(())
    }
}

impl Note {
    /// Add the signature lines of `other`, a note of the same text, that this one lacks (the
    /// cosignatures several witnesses added to one checkpoint, gathered into one note).
    ///
    /// # Errors
    /// `other` signs another text, or the note would carry more than [`MAX_SIGNATURES`].
    pub fn merge(&mut self, other: &Note) -> Result<(), NoteError> {
        if other.text != self.text {
            return Err(NoteError::DifferentText);
        }
        for sig in &other.signatures {
            if !self.signatures.contains(sig) {
                if self.signatures.len() >= MAX_SIGNATURES {
                    return Err(NoteError::TooManySignatures);
                }
                self.signatures.push(sig.clone());
            }
        }
        Ok(())
    }
}

/// Parses `— <name> <base64(key id || signature)>` (without the newline).
fn parse_signature_line(line: &str) -> Option<NoteSignature> {
    let (name, b64) = line.strip_prefix(SIG_PREFIX)?.split_once(' ')?;
    if !is_valid_name(name) {
        return None;
    }
    let raw = STANDARD.decode(b64).ok()?;
    if raw.len() < 5 {
        return None;
    }
    let (id, signature) = raw.split_at(4);
    Some(NoteSignature {
        name: name.to_owned(),
        key_id: u32::from_be_bytes([id[0], id[1], id[2], id[3]]),
        signature: signature.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_note_prints_as_parsed_and_merges_the_signatures_of_the_same_text() {
        let signed = format!("{TEXT}\n{PETER_SIG}");
        let mut note = Note::parse(&signed).unwrap();
        assert_eq!(note.to_string(), signed);
        let other = Note::parse(&format!("{TEXT}\n{ENOCH_SIG}{PETER_SIG}")).unwrap();
        note.merge(&other).unwrap();
        assert_eq!(note.to_string(), format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}"));
        let elsewhere = Note::parse(&format!("Another text.\n\n{PETER_SIG}")).unwrap();
        assert_eq!(note.merge(&elsewhere), Err(NoteError::DifferentText));
    }

    // Known-answer values from golang.org/x/mod/sumdb/note (note.go package documentation and
    // note_test.go: TestNewVerifier, TestNewSigner, TestSign, TestOpen).
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    fn peter() -> NoteSigner {
        NoteSigner::parse(PETER_SKEY).unwrap()
    }

    fn signed_by_peter() -> String {
        format!("{TEXT}\n{PETER_SIG}")
    }

    #[test]
    fn known_answer_sign() {
        let signer = peter();
        assert_eq!(signer.name(), "PeterNeumann");
        assert_eq!(signer.key_id(), 0xc74f20a3);
        assert_eq!(signer.to_skey_string(), PETER_SKEY);
        assert_eq!(signer.sign(TEXT).unwrap(), signed_by_peter());
    }

    #[test]
    fn known_answer_verify() {
        let verifier = NoteVerifier::parse(PETER_VKEY).unwrap();
        assert_eq!(verifier.name(), "PeterNeumann");
        assert_eq!(verifier.key_id(), 0xc74f20a3);
        assert_eq!(verifier.to_vkey_string(), PETER_VKEY);
        assert_eq!(peter().verifier(), verifier);

        let note = Note::parse(&signed_by_peter()).unwrap();
        assert_eq!(note.text, TEXT);
        assert_eq!(note.signatures.len(), 1);
        assert_eq!(note.signatures[0].name, "PeterNeumann");
        assert_eq!(note.signatures[0].key_id, 0xc74f20a3);
        assert_eq!(note.signatures[0].signature.len(), 64);
        note.verify(&verifier).unwrap();
    }

    #[test]
    fn known_answer_two_signers() {
        let peter = NoteVerifier::parse(PETER_VKEY).unwrap();
        let enoch = NoteVerifier::parse(ENOCH_VKEY).unwrap();
        assert_eq!(enoch.key_id(), 0xaf0cfe78);
        let note = Note::parse(&format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}")).unwrap();
        assert_eq!(note.signatures.len(), 2);
        note.verify(&peter).unwrap();
        note.verify(&enoch).unwrap();

        // Only Enoch signed: no signature by Peter.
        let note = Note::parse(&format!("{TEXT}\n{ENOCH_SIG}")).unwrap();
        note.verify(&enoch).unwrap();
        assert_eq!(
            note.verify(&peter),
            Err(NoteError::NoSignature {
                name: "PeterNeumann".into(),
                key_id: 0xc74f20a3
            })
        );
        assert_eq!(
            note.verify(&peter).unwrap_err().to_string(),
            "no signature by key PeterNeumann+c74f20a3"
        );
    }

    #[test]
    fn go_invalid_signature() {
        // From TestOpen: four base64 characters inserted into Peter's signature.
        let bad = format!("{TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        let note = Note::parse(&bad).unwrap();
        let err = note
            .verify(&NoteVerifier::parse(PETER_VKEY).unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid signature by key PeterNeumann+c74f20a3"
        );
    }

    #[test]
    fn go_malformed_notes() {
        // From TestOpen's badMsgs (minus the invalid UTF-8 one, which &str rules out).
        let bad = [
            TEXT.to_owned(),
            format!("{TEXT}\n"),
            format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
            format!("\x01{TEXT}\n{PETER_SIG}"),
            format!(
                "{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
            ),
            format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
        ];
        for msg in &bad {
            assert!(Note::parse(msg).is_err(), "accepted {msg:?}");
        }
        assert_eq!(
            Note::parse(&format!("{TEXT}\n{PETER_SIG}Unexpected line.\n")),
            Err(NoteError::MalformedSignatureLine(5))
        );
    }

    #[test]
    fn malformed_signature_lines() {
        let good_b64 = &PETER_SIG["\u{2014} PeterNeumann ".len()..PETER_SIG.len() - 1];
        let bad_lines = [
            format!("- PeterNeumann {good_b64}"),
            format!("\u{2014}PeterNeumann {good_b64}"),
            format!("\u{2014} PeterNeumann  {good_b64}"),
            format!("\u{2014} PeterNeumann {good_b64} "),
            format!("\u{2014} Peter+Neumann {good_b64}"),
            format!("\u{2014}  {good_b64}"),
            "\u{2014} PeterNeumann".to_owned(),
            "\u{2014} PeterNeumann ".to_owned(),
            "\u{2014} PeterNeumann AAAAAA==".to_owned(), // 4 bytes: key ID only
            "\u{2014} PeterNeumann AAAAAAA".to_owned(),  // missing padding
            "\u{2014} PeterNeumann AAAAAAB=".to_owned(), // non-canonical trailing bits
            "\u{2014} PeterNeumann AAAA-_A=".to_owned(), // URL-safe alphabet
        ];
        for line in &bad_lines {
            let msg = format!("{TEXT}\n{line}\n");
            assert_eq!(
                Note::parse(&msg),
                Err(NoteError::MalformedSignatureLine(4)),
                "{line:?}"
            );
        }
    }

    #[test]
    fn signature_limit() {
        let verifier = NoteVerifier::parse(PETER_VKEY).unwrap();
        // The spec requires accepting at least 16 signatures.
        let note = Note::parse(&format!("{TEXT}\n{}", PETER_SIG.repeat(16))).unwrap();
        note.verify(&verifier).unwrap();
        let note = Note::parse(&format!("{TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES))).unwrap();
        assert_eq!(note.signatures.len(), MAX_SIGNATURES);
        assert_eq!(
            Note::parse(&format!("{TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES + 1))),
            Err(NoteError::TooManySignatures)
        );
    }

    #[test]
    fn go_verifier_key_manglings() {
        NoteVerifier::parse(PETER_VKEY).unwrap();
        let b = PETER_VKEY.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if i == 0 && j == b.len() {
                    continue;
                }
                let s = std::str::from_utf8(&b[i..j]).unwrap();
                assert!(NoteVerifier::parse(s).is_err(), "accepted {s:?}");
            }
        }
        let mut b = b.to_vec();
        for i in 0..b.len() {
            b[i] += 1;
            let s = std::str::from_utf8(&b).unwrap();
            assert!(NoteVerifier::parse(s).is_err(), "accepted {s:?}");
            b[i] -= 1;
        }
        // Wrong length key, with adjusted key hash.
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
            ),
            Err(NoteError::MalformedVerifierKey)
        );
        // Unknown algorithm, with adjusted key hash.
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(NoteError::UnknownAlgorithm(0x65))
        );
        // Wrong key ID.
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(NoteError::KeyIdMismatch {
                claimed: 0xc74f20a4,
                computed: 0xc74f20a3
            })
        );
        // Upper-case hex is not the canonical encoding.
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(NoteError::MalformedVerifierKey)
        );
    }

    #[test]
    fn go_signer_key_manglings() {
        let b = PETER_SKEY.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if i == 0 && j == b.len() {
                    continue;
                }
                let s = std::str::from_utf8(&b[i..j]).unwrap();
                assert!(NoteSigner::parse(s).is_err(), "accepted {s:?}");
            }
        }
        let mut b = b.to_vec();
        for i in 0..b.len() {
            b[i] += 1;
            let s = std::str::from_utf8(&b).unwrap();
            assert!(NoteSigner::parse(s).is_err(), "accepted {s:?}");
            b[i] -= 1;
        }
    }

    #[test]
    fn key_strings_trim_whitespace() {
        let v = NoteVerifier::parse(&format!("  {PETER_VKEY}\n")).unwrap();
        assert_eq!(v.to_vkey_string(), PETER_VKEY);
        let s = NoteSigner::parse(&format!("\t{PETER_SKEY}\r\n")).unwrap();
        assert_eq!(s.to_skey_string(), PETER_SKEY);
    }

    #[test]
    fn weak_public_key_rejected() {
        // The identity point (small order) as a public key, with a matching key ID.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let id = ed25519_key_id("weak", &identity);
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(&identity);
        let vkey = format!("weak+{id:08x}+{}", STANDARD.encode(raw));
        assert_eq!(NoteVerifier::parse(&vkey), Err(NoteError::InvalidPublicKey));
    }

    #[test]
    fn key_names() {
        for bad in [
            "",
            "a b",
            "a+b",
            "a\tb",
            "a\nb",
            "a\u{a0}b",
            "a\u{2003}b",
            "a\u{1}b",
        ] {
            assert_eq!(
                NoteSigner::from_seed(bad, [7; 32]).unwrap_err(),
                NoteError::InvalidKeyName,
                "{bad:?}"
            );
        }
        for good in ["a", "example.com/log", "ünïcödé/\u{2014}"] {
            let s = NoteSigner::from_seed(good, [7; 32]).unwrap();
            let signed = s.sign("x\n").unwrap();
            Note::parse(&signed).unwrap().verify(&s.verifier()).unwrap();
        }
    }

    #[test]
    fn round_trip_keys() {
        let signer = NoteSigner::from_seed("example.com/log", [42; 32]).unwrap();
        let again = NoteSigner::parse(&signer.to_skey_string()).unwrap();
        assert_eq!(again.name(), signer.name());
        assert_eq!(again.key_id(), signer.key_id());
        assert_eq!(again.to_skey_string(), signer.to_skey_string());
        let verifier = NoteVerifier::parse(&signer.verifier().to_vkey_string()).unwrap();
        assert_eq!(verifier, signer.verifier());
        assert!(
            signer
                .to_skey_string()
                .starts_with("PRIVATE+KEY+example.com/log+")
        );
    }

    #[test]
    fn debug_hides_seed() {
        let signer = peter();
        let debug = format!("{signer:?}");
        assert!(debug.contains("PeterNeumann") && debug.contains("c74f20a3"));
        let seed_b64 = PETER_SKEY.rsplit('+').next().unwrap();
        assert!(!debug.contains(seed_b64));
        assert!(!debug.contains(&format!("{:?}", signer.key.as_bytes())));
    }

    #[test]
    fn round_trip_texts() {
        let signer = NoteSigner::from_seed("example.com/log", [1; 32]).unwrap();
        let verifier = signer.verifier();
        for text in [
            "\n",
            "a\n",
            "a\n\nb\n",
            "a\n\n",
            "\n\n\n",
            "tab\u{a0}less — ünïcode\n",
        ] {
            let signed = signer.sign(text).unwrap();
            let note = Note::parse(&signed).unwrap();
            assert_eq!(note.text, text);
            assert_eq!(note.signatures.len(), 1);
            note.verify(&verifier).unwrap();
        }
    }

    #[test]
    fn sign_rejects_bad_text() {
        let signer = peter();
        assert_eq!(signer.sign(""), Err(NoteError::EmptyText));
        assert_eq!(signer.sign("abc"), Err(NoteError::MissingFinalNewline));
        assert_eq!(signer.sign("a\r\n"), Err(NoteError::ControlCharacter));
        assert_eq!(signer.sign("a\tb\n"), Err(NoteError::ControlCharacter));
        assert_eq!(signer.sign("\0\n"), Err(NoteError::ControlCharacter));
    }

    #[test]
    fn parse_rejects_structure() {
        assert_eq!(Note::parse(""), Err(NoteError::MissingSeparator));
        assert_eq!(Note::parse(TEXT), Err(NoteError::MissingSeparator));
        assert_eq!(
            Note::parse(&format!("{TEXT}\n")),
            Err(NoteError::NoSignatureLines)
        );
        assert_eq!(
            Note::parse(&format!("{TEXT}\n{}", PETER_SIG.trim_end())),
            Err(NoteError::MissingSignatureNewline)
        );
        assert_eq!(
            Note::parse(&signed_by_peter().replace('\n', "\r\n")),
            Err(NoteError::ControlCharacter)
        );
    }

    #[test]
    fn tampered_text() {
        let verifier = peter().verifier();
        let signed = signed_by_peter();
        // Change one byte of the text ("If" -> "Ig").
        let tampered = signed.replacen("If", "Ig", 1);
        let note = Note::parse(&tampered).unwrap();
        assert_eq!(
            note.verify(&verifier),
            Err(NoteError::InvalidSignature {
                name: "PeterNeumann".into(),
                key_id: 0xc74f20a3
            })
        );
        // Or tamper with the parsed note directly.
        let mut note = Note::parse(&signed).unwrap();
        note.text.push('\n');
        assert!(matches!(
            note.verify(&verifier),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn tampered_signature() {
        let signer = peter();
        let verifier = signer.verifier();
        let signed = signed_by_peter();
        for i in [0, 31, 32, 63] {
            for bit in [0x01u8, 0x80] {
                let mut note = Note::parse(&signed).unwrap();
                note.signatures[0].signature[i] ^= bit;
                assert!(matches!(
                    note.verify(&verifier),
                    Err(NoteError::InvalidSignature { .. })
                ));
                // Also through the encoded form.
                let mut raw = signer.key_id().to_be_bytes().to_vec();
                raw.extend_from_slice(&note.signatures[0].signature);
                let line = format!("\u{2014} PeterNeumann {}\n", STANDARD.encode(raw));
                let reparsed = Note::parse(&format!("{TEXT}\n{line}")).unwrap();
                assert!(matches!(
                    reparsed.verify(&verifier),
                    Err(NoteError::InvalidSignature { .. })
                ));
            }
        }
        // Truncated or extended signatures are invalid too.
        let mut note = Note::parse(&signed).unwrap();
        note.signatures[0].signature.pop();
        assert!(note.verify(&verifier).is_err());
        let mut note = Note::parse(&signed).unwrap();
        note.signatures[0].signature.push(0);
        assert!(note.verify(&verifier).is_err());
    }

    #[test]
    fn wrong_key_and_name() {
        let signed = signed_by_peter();
        let note = Note::parse(&signed).unwrap();
        // Different key, same name: different key ID, so the signature is not by this key.
        let other = NoteSigner::from_seed("PeterNeumann", [9; 32]).unwrap();
        assert!(matches!(
            note.verify(&other.verifier()),
            Err(NoteError::NoSignature { .. })
        ));
        // Same key, different name: different key ID and name.
        let seed: [u8; 32] = peter().key.to_bytes();
        let renamed = NoteSigner::from_seed("PeterNeuman", seed).unwrap();
        assert!(matches!(
            note.verify(&renamed.verifier()),
            Err(NoteError::NoSignature { .. })
        ));
        // Same name and key ID but a different key (a key ID collision): must fail verification.
        let impostor = NoteVerifier {
            name: "PeterNeumann".into(),
            key_id: 0xc74f20a3,
            key: other.key.verifying_key(),
        };
        assert!(matches!(
            note.verify(&impostor),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn unknown_signatures_ignored() {
        let verifier = peter().verifier();
        let sig_b64 = &PETER_SIG["\u{2014} PeterNeumann ".len()..PETER_SIG.len() - 1];
        // Same key ID, other name; same name, other key ID; an unrelated short signature.
        let mut raw = STANDARD.decode(sig_b64).unwrap();
        raw[0] ^= 1;
        let other_id = STANDARD.encode(&raw);
        let extra = format!(
            "\u{2014} CarmenSandiego {sig_b64}\n\u{2014} PeterNeumann {other_id}\n\u{2014} witness.example/w AAAAAAA=\n"
        );
        for signed in [
            format!("{TEXT}\n{extra}{PETER_SIG}"),
            format!("{TEXT}\n{PETER_SIG}{extra}"),
        ] {
            let note = Note::parse(&signed).unwrap();
            assert_eq!(note.signatures.len(), 4);
            note.verify(&verifier).unwrap();
        }
        // Without Peter's own signature, the look-alikes do not count.
        let note = Note::parse(&format!("{TEXT}\n{extra}")).unwrap();
        assert!(matches!(
            note.verify(&verifier),
            Err(NoteError::NoSignature { .. })
        ));
    }

    #[test]
    fn every_matching_signature_must_verify() {
        let verifier = peter().verifier();
        let bad = format!("{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        for signed in [
            format!("{TEXT}\n{PETER_SIG}{bad}"),
            format!("{TEXT}\n{bad}{PETER_SIG}"),
        ] {
            let note = Note::parse(&signed).unwrap();
            assert!(matches!(
                note.verify(&verifier),
                Err(NoteError::InvalidSignature { .. })
            ));
        }
    }

    #[test]
    fn c2sp_spec_example_parses() {
        // The example note of c2sp.org/signed-note (its public key is not published).
        let signed = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n\u{2014} quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";
        let note = Note::parse(signed).unwrap();
        assert_eq!(
            note.text,
            "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n"
        );
        assert_eq!(note.signatures.len(), 1);
        assert_eq!(note.signatures[0].name, "quasimodo.example/salvatore");
        assert_eq!(note.signatures[0].signature.len(), 64);
        assert!(matches!(
            note.verify(&peter().verifier()),
            Err(NoteError::NoSignature { .. })
        ));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Note::parse(&s);
        }

        #[test]
        fn parse_never_panics_near_valid(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("\n".to_owned()),
                    Just("\n\n".to_owned()),
                    Just("\u{2014} ".to_owned()),
                    Just(" ".to_owned()),
                    Just("+".to_owned()),
                    Just("=".to_owned()),
                    Just("PeterNeumann".to_owned()),
                    Just(PETER_SIG.to_owned()),
                    "[A-Za-z0-9+/=]{0,96}",
                    any::<String>(),
                ],
                0..12,
            )
        ) {
            let s = parts.concat();
            if let Ok(note) = Note::parse(&s) {
                let _ = note.verify(&peter().verifier());
            }
            let _ = NoteVerifier::parse(&s);
            let _ = NoteSigner::parse(&s);
        }

        #[test]
        fn sign_parse_verify_round_trip(
            lines in proptest::collection::vec("[^\\x00-\\x1f]{0,40}", 1..6),
            seed in any::<[u8; 32]>(),
        ) {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let signer = NoteSigner::from_seed("example.com/prop", seed).unwrap();
            let signed = signer.sign(&text).unwrap();
            let note = Note::parse(&signed).unwrap();
            prop_assert_eq!(&note.text, &text);
            prop_assert_eq!(note.verify(&signer.verifier()), Ok(()));
        }
    }
}
