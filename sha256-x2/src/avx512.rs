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
    _mm512_set1_epi32, _mm512_srli_epi32, _mm512_storeu_si512, _mm512_ternarylogic_epi32,
};

use crate::sha_ni::K;

/// How many compressions run at once.
pub(crate) const LANES: usize = 16;

/// One word of each of the sixteen lanes.
pub(crate) type Words = [u32; LANES];

/// Whether this CPU has the features `compress16` is compiled with.
pub(crate) fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

#[inline]
#[target_feature(enable = "avx512f")]
fn load(words: &Words) -> __m512i {
    // SAFETY: `words` is 64 readable bytes; the load has no alignment requirement.
    unsafe { _mm512_loadu_si512(words.as_ptr().cast()) }
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

/// Compresses block `words` (word `t` of lane `l` at `words[t][l]`, already read big-endian)
/// into the states (`state[i][l]`) of the lanes set in `active`.
///
/// # Safety
/// The CPU must have AVX-512F (`available` says so).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn compress16(state: &mut [Words; 8], words: &[Words; 16], active: u16) {
    let mut w: [__m512i; 16] = std::array::from_fn(|t| load(&words[t]));
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
