//! The skeleton 64 bytes at a time: a comparison per byte class gives a 64-bit mask each,
//! masks give the token starts, and `vpcompressb` / `vpcompressw` pack the starts' bytes and
//! positions.

use std::arch::x86_64::*;

/// Positions 0..32 in the sixteen-bit lanes of a register.
const FIRST_32: [u16; 32] = {
    let mut lanes = [0u16; 32];
    let mut i = 0;
    while i < 32 {
        lanes[i] = i as u16;
        i += 1;
    }
    lanes
};

/// Bit `i` set where an odd number of bits `0..=i` of `bits` are set: with quotes that
/// alternate, the opening quotes and the bytes inside strings.
#[inline(always)]
fn prefix_xor(mut bits: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        bits ^= bits << shift;
    }
    bits
}

/// Fill `tokens` and `starts` (both empty) with `text`'s skeleton (`text.len()` at most
/// [`super::MAX_LEN`]); `false` when it is not exact (see the module docs).
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VBMI2.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi2,popcnt")]
pub(crate) unsafe fn read(text: &[u8], tokens: &mut Vec<u8>, starts: &mut Vec<u16>) -> bool {
    debug_assert!(tokens.is_empty() && starts.is_empty() && text.len() <= super::MAX_LEN);
    // A token starts at one byte, so a chunk starting at `at` follows at most `at` tokens;
    // its stores write one register of bytes and two of positions from there.
    tokens.reserve(text.len() + 64);
    starts.reserve(text.len() + 64);
    // SAFETY: `FIRST_32` is 64 readable bytes; the load has no alignment requirement.
    let first_32 = unsafe { _mm512_loadu_si512(FIRST_32.as_ptr().cast()) };
    let mut count = 0usize;
    // All ones while a string is open across a chunk boundary.
    let mut in_string = 0u64;
    // 1 when the chunk before ended inside a number or literal.
    let mut after_scalar = 0u64;
    // Bytes that make the skeleton inexact.
    let mut unusable = 0u64;
    for at in (0..text.len()).step_by(64) {
        let len = (text.len() - at).min(64);
        let valid = u64::MAX >> (64 - len);
        // SAFETY: the mask selects bytes `at..at + len` of `text`, all in bounds; the
        // masked-off bytes are neither read nor able to fault.
        let v = unsafe { _mm512_maskz_loadu_epi8(valid, text.as_ptr().add(at).cast()) };
        let is = |c: u8| _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(c as i8));
        let quotes = is(b'"');
        unusable |= (_mm512_cmplt_epu8_mask(v, _mm512_set1_epi8(0x20)) & valid)
            | _mm512_movepi8_mask(v)
            | is(b'\\');
        let inside = prefix_xor(quotes) ^ in_string;
        in_string = ((inside as i64) >> 63) as u64;
        let outside = !inside & !quotes & valid;
        let structural =
            (is(b'{') | is(b'}') | is(b'[') | is(b']') | is(b':') | is(b',')) & outside;
        let scalar = outside & !structural;
        let scalar_starts = scalar & !((scalar << 1) | after_scalar);
        after_scalar = scalar >> 63;
        let found = structural | (quotes & inside) | scalar_starts;

        // A number or literal is `0` in the skeleton, whatever its first byte.
        let kinds = _mm512_mask_blend_epi8(scalar_starts, v, _mm512_set1_epi8(b'0' as i8));
        let firsts = _mm512_maskz_compress_epi8(found, kinds);
        let base = _mm512_add_epi16(first_32, _mm512_set1_epi16(at as u16 as i16));
        let low = found as u32;
        let low_starts = _mm512_maskz_compress_epi16(low, base);
        let high_starts = _mm512_maskz_compress_epi16(
            (found >> 32) as u32,
            _mm512_add_epi16(base, _mm512_set1_epi16(32)),
        );
        let low_count = low.count_ones() as usize;
        // SAFETY: `count <= at`, so the stores end at most `at + 64` bytes and `at + 64`
        // positions in, within the capacity reserved (`text.len() + 64`, `at < text.len()`).
        unsafe {
            _mm512_storeu_si512(tokens.as_mut_ptr().add(count).cast(), firsts);
            let positions = starts.as_mut_ptr().add(count);
            _mm512_storeu_si512(positions.cast(), low_starts);
            _mm512_storeu_si512(positions.add(low_count).cast(), high_starts);
        }
        count += found.count_ones() as usize;
    }
    // SAFETY: the stores above wrote the first `count` bytes and positions, in order (each
    // chunk's start where the chunk before ended).
    unsafe {
        tokens.set_len(count);
        starts.set_len(count);
    }
    unusable == 0 && in_string == 0
}
