//! C2SP transparency log checkpoints.
//!
//! This module follows the C2SP `tlog-checkpoint` specification
//! (<https://c2sp.org/tlog-checkpoint>). A checkpoint is a signed note ([`crate::note`], C2SP
//! `signed-note`) whose text is:
//!
//! ```text
//! example.com/behind-the-sofa
//! 20852163
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//! ```
//!
//! 1. the **origin**, a non-empty unique identifier of the log (recommended, but not required,
//!    to be a schema-less URL without spaces or `+`);
//! 2. the **tree size**, in ASCII decimal without leading zeroes (`0` for the empty tree);
//! 3. the **root hash**, the standard padded base64 encoding of the 32-byte RFC 6962 Merkle
//!    tree root at that size;
//! 4. optional **extension lines**, opaque and non-empty. The spec says their use is NOT
//!    RECOMMENDED, since log monitors cannot audit them (and ML-DSA-44 cosignatures do not sign
//!    them). They are parsed and kept, but this crate does not write any.
//!
//! Every line ends in a newline, and no line may be empty.
//!
//! The spec says the log's key name in its signature line SHOULD match the origin.
//! [`Checkpoint::sign`] enforces that for the checkpoints we sign; [`Checkpoint::open`] does not
//! require it (the verifier key is what is trusted), but can check the origin against an
//! expected value. As the `signed-note` spec requires, signatures by other keys (for example
//! witness cosignatures) are ignored, and the body is parsed only after the signature verifies.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::merkle::Hash;
use crate::note::{Note, NoteError, NoteSigner, NoteVerifier};

/// Errors from building, parsing, signing or opening a checkpoint.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// The body does not end in a newline.
    #[error("checkpoint body does not end in a newline")]
    MissingFinalNewline,
    /// The body contains an ASCII control character other than newline (such as CR).
    #[error("control character in checkpoint body")]
    ControlCharacter,
    /// The body has fewer than three lines.
    #[error("checkpoint body has fewer than three lines")]
    TooFewLines,
    /// A line of the body is empty; the number is the 1-based line number.
    #[error("empty line {0} in checkpoint body")]
    EmptyLine(usize),
    /// The origin is empty or contains a newline or control character.
    #[error("invalid checkpoint origin")]
    InvalidOrigin,
    /// The tree size is not a decimal `u64` without leading zeroes.
    #[error("malformed tree size")]
    MalformedSize,
    /// The root hash is not the padded standard base64 encoding of 32 bytes.
    #[error("malformed root hash")]
    MalformedRootHash,
    /// An extension line is empty or contains a newline or control character.
    #[error("invalid extension line")]
    InvalidExtension,
    /// The signer's key name is not the checkpoint origin.
    #[error("signer key name {key_name} does not match checkpoint origin {origin}")]
    KeyNameMismatch {
        /// The checkpoint origin.
        origin: String,
        /// The signer's key name.
        key_name: String,
    },
    /// The checkpoint origin is not the expected one.
    #[error("checkpoint origin {found} does not match expected origin {expected}")]
    OriginMismatch {
        /// The expected origin.
        expected: String,
        /// The origin in the checkpoint.
        found: String,
    },
    /// The signed note is malformed or its signature does not verify.
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// A transparency log checkpoint: the tree head of a log at a given size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line.
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The RFC 6962 Merkle tree root hash at `size`.
    pub root: Hash,
    /// Extension lines, without their newlines (usually none).
    pub extensions: Vec<String>,
}

/// Reports whether `line` can be a non-empty line of a checkpoint body.
fn is_valid_line(line: &str) -> bool {
    !line.is_empty() && !line.bytes().any(|b| b < 0x20)
}

/// Parses a tree size: ASCII decimal, no sign, no leading zeroes unless it is `0`, fits `u64`.
fn parse_size(s: &str) -> Result<u64, CheckpointError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(CheckpointError::MalformedSize);
    }
    s.parse().map_err(|_| CheckpointError::MalformedSize)
}

/// Parses a root hash: exactly 44 characters of padded, canonical standard base64.
fn parse_root(s: &str) -> Result<Hash, CheckpointError> {
    if s.len() != 44 {
        return Err(CheckpointError::MalformedRootHash);
    }
    let raw = STANDARD
        .decode(s)
        .map_err(|_| CheckpointError::MalformedRootHash)?;
    raw.try_into()
        .map_err(|_| CheckpointError::MalformedRootHash)
}

impl Checkpoint {
    /// The note text: origin, size, base64 root hash and extension lines, each ending in a
    /// newline.
    ///
    /// This does not validate the fields; [`Checkpoint::sign`] does.
    pub fn to_body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for ext in &self.extensions {
            body.push_str(ext);
            body.push('\n');
        }
        body
    }

    /// Parses a checkpoint body (a note text) strictly.
    ///
    /// Rejects a missing final newline, control characters (including CR), empty lines, fewer
    /// than three lines, a size with leading zeroes, sign or overflow, and a root hash that is not
    /// 44 characters of canonical padded standard base64 for 32 bytes.
    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        if text.bytes().any(|b| b < 0x20 && b != b'\n') {
            return Err(CheckpointError::ControlCharacter);
        }
        let Some(text) = text.strip_suffix('\n') else {
            return Err(CheckpointError::MissingFinalNewline);
        };
        let lines: Vec<&str> = text.split('\n').collect();
        if let Some(i) = lines.iter().position(|l| l.is_empty()) {
            return Err(CheckpointError::EmptyLine(i + 1));
        }
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::TooFewLines);
        };
        Ok(Self {
            origin: (*origin).to_owned(),
            size: parse_size(size)?,
            root: parse_root(root)?,
            extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
        })
    }

    /// Checks that the fields can be written as a valid body.
    fn check(&self) -> Result<(), CheckpointError> {
        if !is_valid_line(&self.origin) {
            return Err(CheckpointError::InvalidOrigin);
        }
        if !self.extensions.iter().all(|e| is_valid_line(e)) {
            return Err(CheckpointError::InvalidExtension);
        }
        Ok(())
    }

    /// Signs the checkpoint and returns the signed note.
    ///
    /// The signer's key name must equal the origin (the spec's SHOULD, enforced here).
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, CheckpointError> {
        self.check()?;
        if signer.name() != self.origin {
            return Err(CheckpointError::KeyNameMismatch {
                origin: self.origin.clone(),
                key_name: signer.name().to_owned(),
            });
        }
        Ok(signer.sign(&self.to_body())?)
    }

    /// Parse a signed checkpoint note, check a valid signature by `verifier`, check origin ==
    /// expected_origin if Some.
    ///
    /// Signatures by other keys are ignored. The body is parsed only once the signature is
    /// verified.
    pub fn open(
        signed: &str,
        verifier: &NoteVerifier,
        expected_origin: Option<&str>,
    ) -> Result<Self, CheckpointError> {
        let note = Note::parse(signed)?;
        note.verify(verifier)?;
        let checkpoint = Self::parse_body(&note.text)?;
        if let Some(expected) = expected_origin
            && checkpoint.origin != expected
        {
            return Err(CheckpointError::OriginMismatch {
                expected: expected.to_owned(),
                found: checkpoint.origin,
            });
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ORIGIN: &str = "example.com/behind-the-sofa";
    // The example body of c2sp.org/tlog-checkpoint.
    const SPEC_BODY: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    const SPEC_SIG: &str = "\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";

    fn signer() -> NoteSigner {
        NoteSigner::from_seed(ORIGIN, [5; 32]).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: ORIGIN.to_owned(),
            size: 20852163,
            root: STANDARD
                .decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
                .unwrap()
                .try_into()
                .unwrap(),
            extensions: vec![],
        }
    }

    fn body_with(size: &str, root: &str) -> String {
        format!("{ORIGIN}\n{size}\n{root}\n")
    }

    #[test]
    fn spec_example_body() {
        let cp = Checkpoint::parse_body(SPEC_BODY).unwrap();
        assert_eq!(cp, checkpoint());
        assert_eq!(cp.to_body(), SPEC_BODY);
    }

    #[test]
    fn spec_example_note_parses_but_is_not_ours() {
        // The spec does not publish the example's public key: the note parses, and our key finds
        // no signature of its own in it.
        let signed = format!("{SPEC_BODY}\n{SPEC_SIG}");
        let note = Note::parse(&signed).unwrap();
        assert_eq!(note.text, SPEC_BODY);
        assert_eq!(note.signatures[0].name, ORIGIN);
        assert_eq!(
            Checkpoint::open(&signed, &signer().verifier(), Some(ORIGIN)),
            Err(CheckpointError::Note(NoteError::NoSignature {
                name: ORIGIN.to_owned(),
                key_id: signer().key_id()
            }))
        );
    }

    #[test]
    fn round_trip_body() {
        let mut cp = checkpoint();
        for size in [0, 1, 10, u64::MAX] {
            cp.size = size;
            assert_eq!(Checkpoint::parse_body(&cp.to_body()).unwrap(), cp);
        }
        cp.extensions = vec!["ext one".to_owned(), "— ünïcode +=/".to_owned()];
        let body = cp.to_body();
        assert!(body.ends_with("\next one\n— ünïcode +=/\n"));
        assert_eq!(Checkpoint::parse_body(&body).unwrap(), cp);
    }

    #[test]
    fn sign_and_open() {
        let signer = signer();
        let verifier = signer.verifier();
        let cp = checkpoint();
        let signed = cp.sign(&signer).unwrap();
        assert!(signed.starts_with(&format!("{SPEC_BODY}\n\u{2014} {ORIGIN} ")));
        assert_eq!(
            Checkpoint::open(&signed, &verifier, Some(ORIGIN)),
            Ok(cp.clone())
        );
        assert_eq!(Checkpoint::open(&signed, &verifier, None), Ok(cp.clone()));

        let mut with_ext = cp.clone();
        with_ext.extensions.push("hint".to_owned());
        let signed = with_ext.sign(&signer).unwrap();
        assert_eq!(
            Checkpoint::open(&signed, &verifier, Some(ORIGIN)),
            Ok(with_ext)
        );
    }

    #[test]
    fn open_ignores_cosignatures() {
        let signer = signer();
        let signed = checkpoint().sign(&signer).unwrap();
        let witness = NoteSigner::from_seed("witness.example/w1", [6; 32]).unwrap();
        let cosig = witness.sign(SPEC_BODY).unwrap();
        let cosig_line = &cosig[SPEC_BODY.len() + 1..];
        for both in [
            format!("{signed}{cosig_line}"),
            format!(
                "{SPEC_BODY}\n{cosig_line}{}",
                &signed[SPEC_BODY.len() + 1..]
            ),
        ] {
            assert_eq!(
                Checkpoint::open(&both, &signer.verifier(), Some(ORIGIN)),
                Ok(checkpoint())
            );
            assert_eq!(
                Checkpoint::open(&both, &witness.verifier(), Some(ORIGIN)),
                Ok(checkpoint())
            );
        }
    }

    #[test]
    fn wrong_origin_rejected() {
        let signed = checkpoint().sign(&signer()).unwrap();
        let err = Checkpoint::open(&signed, &signer().verifier(), Some("example.com/other"));
        assert_eq!(
            err,
            Err(CheckpointError::OriginMismatch {
                expected: "example.com/other".to_owned(),
                found: ORIGIN.to_owned()
            })
        );
        // A log signing under another origin with its key is also caught by expected_origin.
        let other = NoteSigner::from_seed("example.com/other", [5; 32]).unwrap();
        let mut cp = checkpoint();
        cp.origin = "example.com/other".to_owned();
        let signed = cp.sign(&other).unwrap();
        assert!(matches!(
            Checkpoint::open(&signed, &other.verifier(), Some(ORIGIN)),
            Err(CheckpointError::OriginMismatch { .. })
        ));
    }

    #[test]
    fn wrong_key_rejected() {
        let signed = checkpoint().sign(&signer()).unwrap();
        let other = NoteSigner::from_seed(ORIGIN, [8; 32]).unwrap();
        assert!(matches!(
            Checkpoint::open(&signed, &other.verifier(), Some(ORIGIN)),
            Err(CheckpointError::Note(NoteError::NoSignature { .. }))
        ));
    }

    #[test]
    fn tampered_checkpoint_rejected() {
        let signer = signer();
        let signed = checkpoint().sign(&signer).unwrap();
        // Size 20852163 -> 20852164.
        let tampered = signed.replacen("20852163", "20852164", 1);
        assert_ne!(tampered, signed);
        assert!(matches!(
            Checkpoint::open(&tampered, &signer.verifier(), Some(ORIGIN)),
            Err(CheckpointError::Note(NoteError::InvalidSignature { .. }))
        ));
        // An added extension line.
        let tampered = signed.replacen("2I=\n", "2I=\nextra\n", 1);
        assert!(matches!(
            Checkpoint::open(&tampered, &signer.verifier(), Some(ORIGIN)),
            Err(CheckpointError::Note(NoteError::InvalidSignature { .. }))
        ));
    }

    #[test]
    fn signed_but_malformed_body_rejected() {
        let signer = signer();
        let signed = signer.sign(&format!("{ORIGIN}\n1\n")).unwrap();
        assert_eq!(
            Checkpoint::open(&signed, &signer.verifier(), Some(ORIGIN)),
            Err(CheckpointError::TooFewLines)
        );
        let signed = signer
            .sign(&format!("{ORIGIN}\n01\n{}\n", "A".repeat(43) + "="))
            .unwrap();
        assert_eq!(
            Checkpoint::open(&signed, &signer.verifier(), Some(ORIGIN)),
            Err(CheckpointError::MalformedSize)
        );
    }

    #[test]
    fn sign_checks_fields_and_key_name() {
        let signer = signer();
        let mut cp = checkpoint();
        cp.origin = "example.com/other".to_owned();
        assert_eq!(
            cp.sign(&signer),
            Err(CheckpointError::KeyNameMismatch {
                origin: "example.com/other".to_owned(),
                key_name: ORIGIN.to_owned()
            })
        );
        for origin in ["", "a\nb", "a\rb"] {
            cp.origin = origin.to_owned();
            assert_eq!(cp.sign(&signer), Err(CheckpointError::InvalidOrigin));
        }
        let mut cp = checkpoint();
        for ext in ["", "a\nb", "a\tb"] {
            cp.extensions = vec![ext.to_owned()];
            assert_eq!(cp.sign(&signer), Err(CheckpointError::InvalidExtension));
        }
    }

    #[test]
    fn size_strictness() {
        let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        for (size, want) in [
            ("0", Some(0)),
            ("7", Some(7)),
            ("18446744073709551615", Some(u64::MAX)),
            ("00", None),
            ("01", None),
            ("+1", None),
            ("-1", None),
            (" 1", None),
            ("1 ", None),
            ("1_0", None),
            ("0x10", None),
            ("１", None), // full-width digit
            ("18446744073709551616", None),
        ] {
            let got = Checkpoint::parse_body(&body_with(size, root)).map(|c| c.size);
            match want {
                Some(n) => assert_eq!(got, Ok(n), "{size:?}"),
                None => assert_eq!(got, Err(CheckpointError::MalformedSize), "{size:?}"),
            }
        }
    }

    #[test]
    fn root_strictness() {
        let good = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        assert!(Checkpoint::parse_body(&body_with("1", good)).is_ok());
        let bad = [
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I", // no padding
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=", // non-canonical trailing bits
            "CsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=", // URL-safe alphabet
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=AAAA", // 35 bytes
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I==", // extra padding
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2",  // 31 bytes
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jx",    // 30 bytes
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I= ", // trailing space
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2IA", // 44 chars, no padding: 33 bytes
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2Ië", // non-ASCII
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxqw==", // 31 bytes, 44 chars
        ];
        for root in bad {
            assert_eq!(
                Checkpoint::parse_body(&body_with("1", root)),
                Err(CheckpointError::MalformedRootHash),
                "{root:?}"
            );
        }
    }

    #[test]
    fn body_structure_strictness() {
        let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        let cases = [
            (String::new(), CheckpointError::MissingFinalNewline),
            ("\n".to_owned(), CheckpointError::EmptyLine(1)),
            (
                SPEC_BODY[..SPEC_BODY.len() - 1].to_owned(),
                CheckpointError::MissingFinalNewline,
            ),
            (
                format!("{ORIGIN}\r\n1\n{root}\n"),
                CheckpointError::ControlCharacter,
            ),
            (
                format!("{ORIGIN}\n1\n{root}\r\n"),
                CheckpointError::ControlCharacter,
            ),
            (format!("{ORIGIN}\n1\n"), CheckpointError::TooFewLines),
            (format!("{ORIGIN}\n"), CheckpointError::TooFewLines),
            (format!("\n1\n{root}\n"), CheckpointError::EmptyLine(1)),
            (
                format!("{ORIGIN}\n\n1\n{root}\n"),
                CheckpointError::EmptyLine(2),
            ),
            (
                format!("{ORIGIN}\n1\n{root}\n\n"),
                CheckpointError::EmptyLine(4),
            ),
            (
                format!("{ORIGIN}\n1\n{root}\next\n\nmore\n"),
                CheckpointError::EmptyLine(5),
            ),
            (
                format!("{ORIGIN}\n1\n{root}\next\u{0}\n"),
                CheckpointError::ControlCharacter,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(Checkpoint::parse_body(&body), Err(want), "{body:?}");
        }
        // The origin need not be a URL: clients must not assume its format.
        let cp = Checkpoint::parse_body(&format!("Some Log + 1\n1\n{root}\n")).unwrap();
        assert_eq!(cp.origin, "Some Log + 1");
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            CheckpointError::MalformedSize.to_string(),
            "malformed tree size"
        );
        assert_eq!(
            CheckpointError::from(NoteError::InvalidSignature {
                name: "a".into(),
                key_id: 0xab
            })
            .to_string(),
            "invalid signature by key a+000000ab"
        );
    }

    proptest! {
        #[test]
        fn parse_body_never_panics(s in any::<String>()) {
            let _ = Checkpoint::parse_body(&s);
        }

        #[test]
        fn parse_body_never_panics_near_valid(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("\n".to_owned()),
                    Just(ORIGIN.to_owned()),
                    Just("0".to_owned()),
                    "[0-9]{1,22}",
                    "[A-Za-z0-9+/=]{40,48}",
                    any::<String>(),
                ],
                0..8,
            )
        ) {
            let s = parts.concat();
            let _ = Checkpoint::parse_body(&s);
            let _ = Checkpoint::open(&s, &signer().verifier(), Some(ORIGIN));
        }

        #[test]
        fn body_round_trip(
            origin in "[^\\x00-\\x1f]{1,30}",
            size in any::<u64>(),
            root in any::<[u8; 32]>(),
            extensions in proptest::collection::vec("[^\\x00-\\x1f]{1,20}", 0..4),
        ) {
            let cp = Checkpoint { origin, size, root, extensions };
            prop_assert_eq!(Checkpoint::parse_body(&cp.to_body()), Ok(cp));
        }

        #[test]
        fn sign_open_round_trip(size in any::<u64>(), root in any::<[u8; 32]>()) {
            let cp = Checkpoint { origin: ORIGIN.to_owned(), size, root, extensions: vec![] };
            let signed = cp.sign(&signer()).unwrap();
            prop_assert_eq!(Checkpoint::open(&signed, &signer().verifier(), Some(ORIGIN)), Ok(cp));
        }
    }
}
