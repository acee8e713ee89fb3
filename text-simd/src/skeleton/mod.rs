//! The skeleton of a compact JSON text: what each of its tokens is, and where it starts, found
//! 64 bytes at a time with AVX-512.
//!
//! Verifying the audit log reads every entry's JSON, and that was the verifier's largest cost
//! after hashing. Entries from one gateway differ in their strings and numbers, rarely in
//! their structure. So `auditlog` checks the grammar of each structure (an entry's *shape*)
//! once, and recognises it afterwards by this skeleton, which takes a few instructions per 64
//! bytes (`auditlog::json_scan`).
//!
//! A token here is one of `{ } [ ] : ,` (itself in the skeleton), a string (`"`, its opening
//! quote), or a run of other bytes outside strings (`0`: a number or a literal, or something
//! invalid, which the caller checks; `-1` and `true` have the same skeleton). The
//! skeleton is exact for texts with no backslash and no byte below 0x20 or above 0x7f,
//! anywhere, whose strings are all closed: there, quotes alternate between opening and
//! closing, so one prefix XOR over the quotes' positions says which bytes are in strings.
//! [`Skeleton::read`] says when a text is not such a text, or when it is longer than
//! [`MAX_LEN`], or when the CPU lacks AVX-512 ([`available`]); the caller then reads it
//! another way.
//!
//! `unsafe` here: the call of the `#[target_feature]` function, made only after the CPU was
//! seen to have its features; the masked loads of the text, which read only its bytes; and
//! the stores of whole registers into the spare capacity of the two vectors, reserved
//! beforehand. The property tests compare every result with a byte-at-a-time reader.

#[cfg(target_arch = "x86_64")]
mod avx512;

/// Longest text read: token starts are kept as `u16`.
pub const MAX_LEN: usize = u16::MAX as usize;

/// The tokens of one text, kept between texts so that reading allocates only when a text is
/// longer than any before.
#[derive(Debug, Default, Clone)]
pub struct Skeleton {
    tokens: Vec<u8>,
    starts: Vec<u16>,
}

impl Skeleton {
    /// An empty skeleton.
    pub fn new() -> Skeleton {
        Skeleton::default()
    }

    /// What each token of the last text read is: itself for `{ } [ ] : ,`, `"` for a string,
    /// `0` for a run of other bytes outside strings (a number or a literal).
    pub fn tokens(&self) -> &[u8] {
        &self.tokens
    }

    /// Where each token of the last text read starts in it.
    pub fn starts(&self) -> &[u16] {
        &self.starts
    }

    /// Read the tokens of `text`. `false` when the skeleton would not be exact or cannot be
    /// read here: `text` has a backslash, a byte below 0x20 or above 0x7f, or a string that is
    /// not closed; it is longer than [`MAX_LEN`]; or the CPU lacks AVX-512. The tokens are then
    /// meaningless.
    pub fn read(&mut self, text: &[u8]) -> bool {
        self.tokens.clear();
        self.starts.clear();
        if text.len() > MAX_LEN {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        if available() {
            // SAFETY: the CPU has the features that `avx512::read` enables.
            return unsafe { avx512::read(text, &mut self.tokens, &mut self.starts) };
        }
        false
    }
}

/// Whether [`Skeleton::read`] can read texts on this CPU (AVX-512 F, BW and VBMI2).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vbmi2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The skeleton one byte at a time, or `None` where [`Skeleton::read`] must say `false`.
    fn byte_at_a_time(text: &[u8]) -> Option<(Vec<u8>, Vec<u16>)> {
        if text.len() > MAX_LEN
            || text
                .iter()
                .any(|&c| !(0x20..=0x7f).contains(&c) || c == b'\\')
        {
            return None;
        }
        let (mut tokens, mut starts) = (Vec::new(), Vec::new());
        let (mut in_string, mut in_scalar) = (false, false);
        for (at, &c) in text.iter().enumerate() {
            let starts_token = if in_string {
                in_string = c != b'"';
                false
            } else {
                match c {
                    b'"' => {
                        in_string = true;
                        in_scalar = false;
                        true
                    }
                    b'{' | b'}' | b'[' | b']' | b':' | b',' => {
                        in_scalar = false;
                        true
                    }
                    _ => !std::mem::replace(&mut in_scalar, true),
                }
            };
            if starts_token {
                tokens.push(if in_scalar { b'0' } else { c });
                starts.push(at as u16);
            }
        }
        (!in_string).then_some((tokens, starts))
    }

    fn read(text: &[u8]) -> Option<(Vec<u8>, Vec<u16>)> {
        let mut skeleton = Skeleton::new();
        skeleton
            .read(text)
            .then(|| (skeleton.tokens().to_vec(), skeleton.starts().to_vec()))
    }

    #[test]
    fn an_entry_s_tokens() {
        if !available() {
            assert_eq!(read(b"{}"), None, "without AVX-512 nothing is read");
            return;
        }
        let text = br#"{"a":[1,-20,true],"b":{"c":"x y"},"d":null}"#;
        let (tokens, starts) = read(text).expect("readable");
        assert_eq!(tokens, br#"{":[0,0,0],":{":"},":0}"#);
        let at = |s: &str| {
            text.windows(s.len())
                .position(|w| w == s.as_bytes())
                .unwrap() as u16
        };
        assert_eq!(starts[0], 0);
        assert_eq!(starts[6], at("-20"));
        assert_eq!(starts[16], at("\"x y\""));
        assert_eq!(*starts.last().unwrap(), text.len() as u16 - 1);
        // What the skeleton cannot be exact for.
        for no in [
            &br#"{"a":"b\"c"}"#[..],
            b"{\"a\":\"\xc3\xa9\"}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\": 1}\t",
            br#"{"a":"b}"#,
        ] {
            assert_eq!(read(no), None, "{}", String::from_utf8_lossy(no));
        }
        assert_eq!(read(&vec![b'1'; MAX_LEN + 1]), None);
        assert!(read(&vec![b'1'; MAX_LEN]).is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Texts of up to 300 bytes (several chunks, tokens across chunk boundaries) from
        /// bytes that matter to the reader: it agrees with the byte-at-a-time reader.
        #[test]
        fn the_skeleton_is_the_byte_at_a_time_one(
            text in proptest::collection::vec(
                prop::sample::select(b"{}[]:,\"\"\"ab1-  \\\x01\x7f\x80\xff".to_vec()),
                0..300,
            ),
        ) {
            prop_assume!(available());
            prop_assert_eq!(read(&text), byte_at_a_time(&text));
        }

        /// Long runs without quotes or structure: strings and numbers that span chunks.
        #[test]
        fn long_strings_and_numbers_span_chunks(
            runs in proptest::collection::vec((0usize..150, any::<bool>()), 1..8),
        ) {
            prop_assume!(available());
            let mut text = Vec::new();
            for (len, quoted) in runs {
                if quoted { text.push(b'"'); }
                text.extend(std::iter::repeat_n(b'7', len));
                if quoted { text.push(b'"'); }
                text.push(b',');
            }
            prop_assert_eq!(read(&text), byte_at_a_time(&text));
        }
    }
}
