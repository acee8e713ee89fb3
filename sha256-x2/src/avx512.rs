//! Sixteen SHA-256 compressions at once with AVX-512.
//!
//! Each 32-bit lane of a 512-bit register holds one message's word: the eight state words
//! and the sixteen schedule words are sixteen registers' worth, and one pass of FIPS 180-4
//! §6.2.2's 64 rounds compresses sixteen blocks. AVX-512 has the two operations this needs
//! cheaply: 32-bit rotation (`vprord`) and any three-input bitwise function
//! (`vpternlogd`: Σ's three-way XOR, Ch and Maj are one instruction each). Where the SHA
//! extensions are slow (about 1.7 cycles a byte on the Xeon this project's benchmarks ran on
//! last), this is about twice their rate.
//!
//! Lanes are independent; a lane outside the `active` mask keeps its state, so messages of
//! different lengths share a pass.

use std::arch::x86_64::{
    __m512i, _mm512_add_epi32, _mm512_loadu_si512, _mm512_mask_add_epi32, _mm512_ror_epi32,
    _mm512_set1_epi32, _mm512_set4_epi32, _mm512_shuffle_epi8, _mm512_shuffle_i32x4,
    _mm512_srli_epi32, _mm512_storeu_si512, _mm512_ternarylogic_epi32, _mm512_unpackhi_epi32,
    _mm512_unpackhi_epi64, _mm512_unpacklo_epi32, _mm512_unpacklo_epi64,
};

use crate::Block;
use crate::sha_ni::K;

/// How many compressions run at once.
pub(crate) const LANES: usize = 16;

/// One word of each of the sixteen lanes.
pub(crate) type Words = [u32; LANES];

/// Whether this CPU has the features `compress16` is compiled with.
pub(crate) fn available() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
}

#[inline]
#[target_feature(enable = "avx512f")]
fn load(words: &Words) -> __m512i {
    // SAFETY: `words` is 64 readable bytes; the load has no alignment requirement.
    unsafe { _mm512_loadu_si512(words.as_ptr().cast()) }
}

/// A block's sixteen words, read big-endian.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn load_block(block: &Block) -> __m512i {
    // SAFETY: `block` is 64 readable bytes; the load has no alignment requirement.
    let bytes = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
    // Each 32-bit word's bytes reversed (the same pattern in every 128-bit lane).
    let reverse = _mm512_set4_epi32(0x0c0d_0e0f, 0x0809_0a0b, 0x0405_0607, 0x0001_0203);
    _mm512_shuffle_epi8(bytes, reverse)
}

/// Rows to columns: `rows[i]` holds word `t` of block `i` in lane `t`; the result's `t`th
/// vector holds word `t` of block `i` in lane `i`.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose(rows: [__m512i; 16]) -> [__m512i; 16] {
    // Pairs of rows, 32-bit interleaved: within each 128-bit lane, words 4L and 4L+1 (even
    // outputs) or 4L+2 and 4L+3 (odd outputs) of both rows.
    let t: [__m512i; 16] = std::array::from_fn(|i| {
        let (a, b) = (rows[i & !1], rows[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi32(a, b)
        } else {
            _mm512_unpackhi_epi32(a, b)
        }
    });
    // Fours of rows, 64-bit interleaved: `u[4j + k]` holds, in 128-bit lane L, word 4L + k
    // of rows 4j to 4j+3.
    let u: [__m512i; 16] = std::array::from_fn(|i| {
        let (j, k) = (i / 4, i % 4);
        let (a, b) = (t[4 * j + k / 2], t[4 * j + 2 + k / 2]);
        if k % 2 == 0 {
            _mm512_unpacklo_epi64(a, b)
        } else {
            _mm512_unpackhi_epi64(a, b)
        }
    });
    // Gather the 128-bit lanes: word 4L + k of all rows is lane L of u[k], u[4+k], u[8+k],
    // u[12+k], in that order.
    let mut columns = rows;
    for k in 0..4 {
        let even_lanes = _mm512_shuffle_i32x4::<0x88>(u[k], u[4 + k]);
        let odd_lanes = _mm512_shuffle_i32x4::<0xDD>(u[k], u[4 + k]);
        let even_lanes_high = _mm512_shuffle_i32x4::<0x88>(u[8 + k], u[12 + k]);
        let odd_lanes_high = _mm512_shuffle_i32x4::<0xDD>(u[8 + k], u[12 + k]);
        columns[k] = _mm512_shuffle_i32x4::<0x88>(even_lanes, even_lanes_high);
        columns[8 + k] = _mm512_shuffle_i32x4::<0xDD>(even_lanes, even_lanes_high);
        columns[4 + k] = _mm512_shuffle_i32x4::<0x88>(odd_lanes, odd_lanes_high);
        columns[12 + k] = _mm512_shuffle_i32x4::<0xDD>(odd_lanes, odd_lanes_high);
    }
    columns
}

#[inline]
#[target_feature(enable = "avx512f")]
fn store(v: __m512i, words: &mut Words) {
    // SAFETY: `words` is 64 writable bytes; the store has no alignment requirement.
    unsafe { _mm512_storeu_si512(words.as_mut_ptr().cast(), v) }
}

/// `x ^ y ^ z`, one instruction.
#[inline]
#[target_feature(enable = "avx512f")]
fn xor3(x: __m512i, y: __m512i, z: __m512i) -> __m512i {
    _mm512_ternarylogic_epi32::<0x96>(x, y, z)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn add(x: __m512i, y: __m512i) -> __m512i {
    _mm512_add_epi32(x, y)
}

/// Round `t` (a literal), its state words in `s` at slots that turn with the round: `a` is at
/// `s[(8 - t % 8) % 8]`, `b` after it, and so on, so that no register is moved between rounds.
/// From round 16 on, it first extends the message schedule ring `w` by one word.
macro_rules! round {
    ($s:ident, $w:ident, $t:literal) => {{
        const T: usize = $t;
        const fn at(i: usize) -> usize {
            (i + 8 - T % 8) % 8
        }
        if T >= 16 {
            // W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16], in a ring of sixteen.
            let (w2, w15) = ($w[(T + 14) % 16], $w[(T + 1) % 16]);
            let s0 = xor3(
                _mm512_ror_epi32::<7>(w15),
                _mm512_ror_epi32::<18>(w15),
                _mm512_srli_epi32::<3>(w15),
            );
            let s1 = xor3(
                _mm512_ror_epi32::<17>(w2),
                _mm512_ror_epi32::<19>(w2),
                _mm512_srli_epi32::<10>(w2),
            );
            $w[T % 16] = add(add($w[T % 16], s0), add($w[(T + 9) % 16], s1));
        }
        let (a, b, c) = ($s[at(0)], $s[at(1)], $s[at(2)]);
        let (e, f, g, h) = ($s[at(4)], $s[at(5)], $s[at(6)], $s[at(7)]);
        #[allow(clippy::cast_possible_wrap)]
        let kw = add($w[T % 16], _mm512_set1_epi32(K[T] as i32));
        let sigma1 = xor3(
            _mm512_ror_epi32::<6>(e),
            _mm512_ror_epi32::<11>(e),
            _mm512_ror_epi32::<25>(e),
        );
        // Ch(e, f, g) = (e & f) ^ (!e & g): truth table 0xCA.
        let ch = _mm512_ternarylogic_epi32::<0xCA>(e, f, g);
        let t1 = add(add(h, sigma1), add(ch, kw));
        let sigma0 = xor3(
            _mm512_ror_epi32::<2>(a),
            _mm512_ror_epi32::<13>(a),
            _mm512_ror_epi32::<22>(a),
        );
        // Maj(a, b, c): truth table 0xE8.
        let maj = _mm512_ternarylogic_epi32::<0xE8>(a, b, c);
        $s[at(3)] = add($s[at(3)], t1);
        $s[at(7)] = add(t1, add(sigma0, maj));
    }};
}

macro_rules! rounds {
    ($s:ident, $w:ident; $($t:literal)*) => {$( round!($s, $w, $t); )*};
}

/// Compresses `blocks[l]` into the state of lane `l` (`state[i][l]`) for the lanes set in
/// `active`; the others' blocks are read but their states kept.
///
/// # Safety
/// The CPU must have AVX-512F and AVX-512BW (`available` says so).
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn compress16(state: &mut [Words; 8], blocks: [&Block; LANES], active: u16) {
    let mut w = transpose(std::array::from_fn(|i| load_block(blocks[i])));
    let start: [__m512i; 8] = std::array::from_fn(|i| load(&state[i]));
    let mut s = start;
    rounds!(s, w;
        0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60
        61 62 63);
    // After 64 rounds (a multiple of 8) the slots are back where they started.
    for (i, v) in s.into_iter().enumerate() {
        let begun = start[i];
        store(
            _mm512_mask_add_epi32(begun, active, begun, v),
            &mut state[i],
        );
    }
}
