//! 32 bytes to and from 64 lowercase hex digits (`0-9a-f`), strictly: every record of the log
//! holds two such hashes, written by the sealer in this one form.
//!
//! Writing ([`encode_lower_32`]) takes four bytes at a time in a `u64`, on every CPU.
//!
//! With AVX-512 (BW), the 64 digits are one register: two range comparisons check them, and
//! one multiply-add joins each pair of nibbles. Elsewhere, eight digits at a time in a `u64`.
//! `unsafe` here: the call of the `#[target_feature]` function after the CPU was seen to have
//! its features, and its load of the 64 digits and store of the 32 bytes, each from or to an
//! array borrowed for the call.

/// The 32 bytes that `hex` spells in lowercase digits, or `None` if any byte is not one of
/// `0-9a-f`.
pub fn decode_lower_32(hex: &[u8; 64]) -> Option<[u8; 32]> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512bw") {
        // SAFETY: the CPU has the feature `decode_avx512` enables.
        return unsafe { decode_avx512(hex) };
    }
    decode_in_words(hex)
}

/// [`decode_lower_32`] one register at a time.
///
/// # Safety
/// The CPU must have AVX-512 BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn decode_avx512(hex: &[u8; 64]) -> Option<[u8; 32]> {
    use std::arch::x86_64::*;
    // SAFETY: `hex` is 64 readable bytes; the load has no alignment requirement.
    let v = unsafe { _mm512_loadu_si512(hex.as_ptr().cast()) };
    let within = |from: u8, to: u8| {
        let offset = _mm512_sub_epi8(v, _mm512_set1_epi8(from as i8));
        _mm512_cmple_epu8_mask(offset, _mm512_set1_epi8((to - from) as i8))
    };
    let (digits, letters) = (within(b'0', b'9'), within(b'a', b'f'));
    if digits | letters != u64::MAX {
        return None;
    }
    // '0'-'9' are 0x30-0x39 and 'a'-'f' 0x61-0x66: the low nibble, plus 9 for a letter.
    let low = _mm512_and_si512(v, _mm512_set1_epi8(0x0f));
    let nibbles = _mm512_mask_add_epi8(low, letters, low, _mm512_set1_epi8(9));
    // Each pair into sixteen bits, the first digit high: 16 × first + 1 × second.
    let pairs = _mm512_maddubs_epi16(nibbles, _mm512_set1_epi16(0x0110));
    let bytes = _mm512_cvtepi16_epi8(pairs);
    let mut out = [0u8; 32];
    // SAFETY: `out` is 32 writable bytes; the store has no alignment requirement.
    unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), bytes) };
    Some(out)
}

/// [`decode_lower_32`] eight digits at a time, as the bytes of one `u64` (each step below
/// acts on all eight bytes at once).
fn decode_in_words(hex: &[u8; 64]) -> Option<[u8; 32]> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const LOW_NIBBLES: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    let mut out = [0u8; 32];
    for (o, digits) in out.chunks_exact_mut(4).zip(hex.chunks_exact(8)) {
        let x = u64::from_le_bytes(digits.try_into().expect("eight digits"));
        if x & HIGHS != 0 {
            return None;
        }
        // For bytes below 0x80, adding 0x80 - n sets a byte's high bit exactly where the
        // byte is at least n, without a carry into the next byte.
        let at_least = |n: u8| x.wrapping_add(ONES * u64::from(0x80 - n)) & HIGHS;
        let digit = at_least(b'0') & !at_least(b'9' + 1);
        let letter = at_least(b'a') & !at_least(b'f' + 1);
        if digit | letter != HIGHS {
            return None;
        }
        // The low nibble, plus 9 for a letter (bit 6 set).
        let nibbles = (x & LOW_NIBBLES) + ((x >> 6) & ONES) * 9;
        // Each pair of nibbles into the low byte of its 16 bits (the first digit is high),
        // then those four bytes together.
        let pairs =
            ((nibbles & 0x000f_000f_000f_000f) << 4) | ((nibbles >> 8) & 0x000f_000f_000f_000f);
        let pairs = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
        let pairs = (pairs | (pairs >> 16)) & 0xffff_ffff;
        o.copy_from_slice(&(pairs as u32).to_le_bytes());
    }
    Some(out)
}

/// The 64 lowercase hex digits of `bytes`, four bytes at a time: each step below acts on
/// all the bytes of one `u64` at once.
pub fn encode_lower_32(bytes: &[u8; 32]) -> [u8; 64] {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut out = [0u8; 64];
    for (digits, four) in out.chunks_exact_mut(8).zip(bytes.chunks_exact(4)) {
        let x = u64::from(u32::from_be_bytes(four.try_into().expect("four bytes")));
        // Spread the four bytes, then their nibbles, one per byte, the first nibble highest:
        // 0000abcd → 00ab00cd → 0a0b0c0d, then each byte hl → 0h0l.
        let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
        let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
        let nibbles = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
        // A nibble of 10 or more reaches 16 (bit 4) when 6 is added; no byte carries.
        let letters = ((nibbles + ONES * 6) >> 4) & ONES;
        // '0' + n for a digit, 'a' + n - 10 = '0' + n + 39 for a letter.
        let ascii = nibbles + ONES * u64::from(b'0') + letters * 39;
        digits.copy_from_slice(&ascii.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the answer must be: lowercase digits only, read by the `hex` crate.
    fn expected(digits: &[u8; 64]) -> Option<[u8; 32]> {
        let lowercase = digits
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
        lowercase.then(|| {
            let bytes = hex::decode(digits).expect("hex digits");
            bytes.try_into().expect("32 bytes")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// The digits of 32 bytes with up to three bytes replaced, often by bytes next to
        /// the valid ranges: both ways give the `hex` crate's answer.
        #[test]
        fn both_ways_read_what_the_hex_crate_reads(
            bytes in any::<[u8; 32]>(),
            edits in proptest::collection::vec(
                (
                    0usize..64,
                    prop_oneof![
                        prop::sample::select(b"/:`gAF@G\x7f\x80\xb0\xe6\xff\x00".to_vec()),
                        any::<u8>(),
                    ],
                ),
                0..4,
            ),
        ) {
            let mut digits: [u8; 64] = hex::encode(bytes).into_bytes().try_into().unwrap();
            for (at, byte) in edits {
                digits[at] = byte;
            }
            let want = expected(&digits);
            prop_assert_eq!(decode_in_words(&digits), want);
            prop_assert_eq!(decode_lower_32(&digits), want);
        }

        /// Writing gives the `hex` crate's lowercase digits.
        #[test]
        fn writing_gives_the_hex_crates_digits(bytes in any::<[u8; 32]>()) {
            prop_assert_eq!(encode_lower_32(&bytes).to_vec(), hex::encode(bytes).into_bytes());
        }
    }
}
