//! Many SHA-256 computations at once.
//!
//! Verifying the audit log hashes every entry several times (its leaf hash, its chain step,
//! its MAC, its share of the tree), and the hashes of one entry do not depend on those of the
//! next. One SHA-256 stream cannot keep a core busy, so this crate runs several side by side:
//!
//! - **Sixteen at once with AVX-512** ([`compress_many`], [`digest_many`]; `avx512`): each
//!   32-bit lane of a 512-bit register holds one message's word, and one pass of the 64
//!   rounds compresses sixteen blocks. On the 2-core Xeon of this project's last benchmarks,
//!   whose SHA extensions take about 40 ns a block even two at a time, this took 30 to 36 ns a
//!   block.
//! - **Two at once with the x86 SHA extensions** ([`compress_two`], [`digest_two`]; `sha_ni`):
//!   each of the 32 `sha256rnds2` instructions of a block waits on the one before, and two
//!   interleaved streams fill those waits. On the 2-core AMD EPYC of earlier benchmarks, one
//!   block took 34 ns through `sha2::compress256` and 21 ns two at a time.
//! - **One at a time through the `sha2` crate** everywhere else (wasm, older CPUs).
//!
//! `cargo run --release -p sha256-x2 --example speed` measures all three side by side
//! (docs/benchmarks.md). The CPU's features are detected at run time; every path gives exactly
//! FIPS 180-4 SHA-256, and the tests compare each with `sha2::Sha256`.
//!
//! The crate's `unsafe` is in three places: calls of the `#[target_feature]` functions, made
//! only after the CPU is known to have the features they enable; an empty `asm!` that keeps
//! the two SHA-extension lanes' instructions in step; and in `avx512`, the loads and stores of
//! whole `[u32; 16]` words between memory and registers. `auditlog`, which uses this crate,
//! forbids `unsafe` itself.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

use sha2::digest::generic_array::GenericArray;

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod sha_ni;

/// The eight 32-bit words of SHA-256's state between blocks.
pub type State = [u32; 8];

/// One 64-byte block.
pub type Block = [u8; 64];

/// SHA-256's initial hash value (FIPS 180-4 §5.3.3).
pub const IV: State = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Compresses one block into one state (the `sha2` crate, which uses the SHA extensions
/// itself where it finds them).
pub fn compress(state: &mut State, block: &Block) {
    sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

/// Compresses `a_block` into `a` and `b_block` into `b`, interleaved where the CPU allows.
pub fn compress_two(a: &mut State, a_block: &Block, b: &mut State, b_block: &Block) {
    #[cfg(target_arch = "x86_64")]
    if sha_ni::available() {
        // SAFETY: `available` has just seen every feature `compress_two` is compiled with.
        unsafe { sha_ni::compress_two(a, a_block, b, b_block) };
        return;
    }
    compress(a, a_block);
    compress(b, b_block);
}

/// The digest of a final state: its words, big-endian.
pub fn output(state: &State) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// SHA-256 of two messages, each given as the concatenation of its parts, hashed side by side.
///
/// Where one message has more blocks than the other, its last ones are compressed alone.
pub fn digest_two(a: &[&[u8]], b: &[&[u8]]) -> [[u8; 32]; 2] {
    let (mut a_blocks, mut b_blocks) = (PaddedBlocks::new(a), PaddedBlocks::new(b));
    let (mut a_state, mut b_state) = (IV, IV);
    let (mut a_scratch, mut b_scratch) = ([0u8; 64], [0u8; 64]);
    #[cfg(target_arch = "x86_64")]
    if sha_ni::available() {
        loop {
            match (a_blocks.next(&mut a_scratch), b_blocks.next(&mut b_scratch)) {
                (Some(x), Some(y)) => {
                    // SAFETY: `available` has just seen every feature `compress_two` is
                    // compiled with.
                    unsafe { sha_ni::compress_two(&mut a_state, x, &mut b_state, y) };
                }
                (Some(x), None) => break compress(&mut a_state, x),
                (None, Some(y)) => break compress(&mut b_state, y),
                (None, None) => break,
            }
        }
    }
    // The blocks of the longer message (or of both, without the SHA extensions).
    while let Some(x) = a_blocks.next(&mut a_scratch) {
        compress(&mut a_state, x);
    }
    while let Some(y) = b_blocks.next(&mut b_scratch) {
        compress(&mut b_state, y);
    }
    [output(&a_state), output(&b_state)]
}

/// SHA-256 of one message given as the concatenation of its parts (the one-at-a-time path,
/// for a message left without a partner).
pub fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut blocks = PaddedBlocks::new(parts);
    let (mut state, mut scratch) = (IV, [0u8; 64]);
    while let Some(block) = blocks.next(&mut scratch) {
        compress(&mut state, block);
    }
    output(&state)
}

/// How many compressions [`compress_many`] and [`digest_many`] give the CPU at once: 16 with
/// AVX-512, 2 with the SHA extensions alone, 1 otherwise. Callers that gather work to hash
/// batch this many.
pub fn lanes() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if avx512::available() {
            return avx512::LANES;
        }
        if sha_ni::available() {
            return 2;
        }
    }
    1
}

/// The fewest messages worth a pass of the sixteen AVX-512 lanes: one pass costs about what
/// eight or nine compressions one at a time or in pairs do (`examples/speed.rs`), so fewer go
/// in pairs or one at a time. Of a longer call, a last group of fewer than sixteen shares a
/// pass all the same.
#[cfg(target_arch = "x86_64")]
const AVX512_FEWEST: usize = 8;

/// Compresses `blocks[i]` into `states[i]` for every `i`, as many at once as the CPU allows.
///
/// # Panics
/// If the two slices differ in length.
pub fn compress_many(states: &mut [State], blocks: &[Block]) {
    assert_eq!(states.len(), blocks.len(), "one block per state");
    #[cfg(target_arch = "x86_64")]
    if avx512::available() && states.len() >= AVX512_FEWEST {
        // SAFETY: `available` has just seen the feature `compress_many_avx512` needs.
        return unsafe { compress_many_avx512(states, blocks) };
    }
    compress_many_in_pairs(states, blocks);
}

/// [`compress_many`] sixteen at a time.
///
/// # Safety
/// The CPU must have the features `avx512::available` looks for.
#[cfg(target_arch = "x86_64")]
unsafe fn compress_many_avx512(states: &mut [State], blocks: &[Block]) {
    for (states, blocks) in states
        .chunks_mut(avx512::LANES)
        .zip(blocks.chunks(avx512::LANES))
    {
        let mut lanes = [[0u32; avx512::LANES]; 8];
        for (lane, state) in states.iter().enumerate() {
            for (words, word) in lanes.iter_mut().zip(state) {
                words[lane] = *word;
            }
        }
        let zeros = [0u8; 64];
        let blocks: [&Block; avx512::LANES] =
            std::array::from_fn(|i| blocks.get(i).unwrap_or(&zeros));
        let active = (1u32 << states.len()) - 1;
        // SAFETY: the caller vouches for the features `compress16` needs.
        unsafe { avx512::compress16(&mut lanes, blocks, active as u16) };
        for (lane, state) in states.iter_mut().enumerate() {
            *state = std::array::from_fn(|i| lanes[i][lane]);
        }
    }
}

/// [`compress_many`] two at a time ([`compress_two`]).
fn compress_many_in_pairs(states: &mut [State], blocks: &[Block]) {
    let mut pairs = states.chunks_exact_mut(2).zip(blocks.chunks_exact(2));
    for (pair, blocks) in &mut pairs {
        let [a, b] = pair else {
            unreachable!("chunks of two")
        };
        compress_two(a, &blocks[0], b, &blocks[1]);
    }
    if states.len() % 2 == 1 {
        compress(states.last_mut().expect("odd"), blocks.last().expect("odd"));
    }
}

/// SHA-256 of each message, given as the concatenation of its parts, as many at once as the
/// CPU allows: `out[i]` is the digest of `messages[i]`.
///
/// # Panics
/// If the two slices differ in length.
pub fn digest_many(messages: &[&[&[u8]]], out: &mut [[u8; 32]]) {
    assert_eq!(messages.len(), out.len(), "one digest per message");
    #[cfg(target_arch = "x86_64")]
    if avx512::available() && messages.len() >= AVX512_FEWEST {
        // SAFETY: `available` has just seen the feature `digest_many_avx512` needs.
        return unsafe { digest_many_avx512(messages, out) };
    }
    digest_many_in_pairs(messages, out);
}

/// [`digest_many`] sixteen at a time. Messages of different lengths share each pass while
/// they last; a lane whose message has ended is left out of the rest (`active`).
///
/// # Safety
/// The CPU must have the features `avx512::available` looks for.
#[cfg(target_arch = "x86_64")]
unsafe fn digest_many_avx512(messages: &[&[&[u8]]], out: &mut [[u8; 32]]) {
    let zeros = [0u8; 64];
    let mut scratch = [[0u8; 64]; avx512::LANES];
    for (messages, out) in messages
        .chunks(avx512::LANES)
        .zip(out.chunks_mut(avx512::LANES))
    {
        let mut padded: [Option<PaddedBlocks<'_>>; avx512::LANES] =
            std::array::from_fn(|lane| messages.get(lane).map(|m| PaddedBlocks::new(m)));
        let mut lanes: [[u32; avx512::LANES]; 8] = IV.map(|word| [word; avx512::LANES]);
        loop {
            let mut active = 0u16;
            let mut blocks = [&zeros; avx512::LANES];
            for (lane, (padded, scratch)) in padded.iter_mut().zip(&mut scratch).enumerate() {
                if let Some(block) = padded.as_mut().and_then(|p| p.next(scratch)) {
                    blocks[lane] = block;
                    active |= 1 << lane;
                }
            }
            if active == 0 {
                break;
            }
            // SAFETY: the caller vouches for the features `compress16` needs.
            unsafe { avx512::compress16(&mut lanes, blocks, active) };
        }
        for (lane, digest) in out.iter_mut().enumerate() {
            *digest = output(&std::array::from_fn(|i| lanes[i][lane]));
        }
    }
}

/// [`digest_many`] two at a time ([`digest_two`]).
fn digest_many_in_pairs(messages: &[&[&[u8]]], out: &mut [[u8; 32]]) {
    let mut pairs = messages.chunks_exact(2).zip(out.chunks_exact_mut(2));
    for (pair, out) in &mut pairs {
        let [a, b] = digest_two(pair[0], pair[1]);
        out[0] = a;
        out[1] = b;
    }
    if messages.len() % 2 == 1 {
        *out.last_mut().expect("odd") = digest(messages.last().expect("odd"));
    }
}

/// The blocks of a message padded as FIPS 180-4 §5.1.1 says: the message, the byte 0x80,
/// zeros, and the message's length in bits as a 64-bit big-endian number, which ends a block.
struct PaddedBlocks<'a> {
    parts: &'a [&'a [u8]],
    /// The next part to copy from, and how far into it.
    part: usize,
    offset: usize,
    bits: u64,
    marker_written: bool,
    finished: bool,
}

impl<'a> PaddedBlocks<'a> {
    fn new(parts: &'a [&'a [u8]]) -> Self {
        let bytes: usize = parts.iter().map(|p| p.len()).sum();
        PaddedBlocks {
            parts,
            part: 0,
            offset: 0,
            bits: (bytes as u64) * 8,
            marker_written: false,
            finished: false,
        }
    }

    /// The next block: borrowed from the message where 64 bytes of one part remain, copied
    /// into `scratch` otherwise (across parts, and for the padding).
    #[inline]
    fn next<'s>(&mut self, scratch: &'s mut Block) -> Option<&'s Block>
    where
        'a: 's,
    {
        if self.finished {
            return None;
        }
        if let Some(part) = self.parts.get(self.part)
            && let Some(block) = part.get(self.offset..self.offset + 64)
        {
            self.offset += 64;
            if self.offset == part.len() {
                self.part += 1;
                self.offset = 0;
            }
            return Some(block.try_into().expect("64 bytes"));
        }
        let mut filled = 0;
        while filled < 64 && self.part < self.parts.len() {
            let rest = &self.parts[self.part][self.offset..];
            let n = rest.len().min(64 - filled);
            scratch[filled..filled + n].copy_from_slice(&rest[..n]);
            filled += n;
            self.offset += n;
            if self.offset == self.parts[self.part].len() {
                self.part += 1;
                self.offset = 0;
            }
        }
        if filled == 64 {
            return Some(scratch);
        }
        if !self.marker_written {
            scratch[filled] = 0x80;
            filled += 1;
            self.marker_written = true;
        }
        scratch[filled..].fill(0);
        if filled <= 56 {
            scratch[56..].copy_from_slice(&self.bits.to_be_bytes());
            self.finished = true;
        }
        Some(scratch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    fn reference(parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    /// Splits `bytes` at the given cut points (taken modulo its length) into parts.
    fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut parts = Vec::new();
        let mut start = 0;
        for c in cuts.into_iter().chain([bytes.len()]) {
            parts.push(&bytes[start..c]);
            start = c;
        }
        parts
    }

    #[test]
    fn known_answers() {
        // FIPS 180-2 appendix B.1 and B.2, and the empty message.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let two_blocks = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let [x, y] = digest_two(
            &[b"abc"],
            &[b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"],
        );
        assert_eq!(hex(&x), abc);
        assert_eq!(hex(&y), two_blocks);
        assert_eq!(hex(&digest(&[])), empty);
        let [e, a] = digest_two(&[], &[b"a", b"", b"bc"]);
        assert_eq!((hex(&e).as_str(), hex(&a).as_str()), (empty, abc));
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_same_digests_as_sha2(
            a in proptest::collection::vec(any::<u8>(), 0..400),
            b in proptest::collection::vec(any::<u8>(), 0..400),
            a_cuts in proptest::collection::vec(any::<usize>(), 0..4),
            b_cuts in proptest::collection::vec(any::<usize>(), 0..4),
        ) {
            let (a_parts, b_parts) = (split(&a, &a_cuts), split(&b, &b_cuts));
            let [x, y] = digest_two(&a_parts, &b_parts);
            prop_assert_eq!(x, reference(&[&a]));
            prop_assert_eq!(y, reference(&[&b]));
            prop_assert_eq!(digest(&a_parts), reference(&[&a]));
        }

        #[test]
        fn compress_two_is_two_compressions(
            a in any::<[u32; 8]>(), b in any::<[u32; 8]>(),
            x in proptest::collection::vec(any::<u8>(), 64),
            y in proptest::collection::vec(any::<u8>(), 64),
        ) {
            let (x, y): (Block, Block) = (x.try_into().unwrap(), y.try_into().unwrap());
            let (mut a1, mut b1) = (a, b);
            compress(&mut a1, &x);
            compress(&mut b1, &y);
            let (mut a2, mut b2) = (a, b);
            compress_two(&mut a2, &x, &mut b2, &y);
            prop_assert_eq!((a2, b2), (a1, b1));
            #[cfg(target_arch = "x86_64")]
            if sha_ni::available() {
                let (mut a3, mut b3) = (a, b);
                // SAFETY: the features were just detected.
                unsafe { sha_ni::compress_two(&mut a3, &x, &mut b3, &y) };
                prop_assert_eq!((a3, b3), (a1, b1));
            }
        }

        /// Every path of `digest_many` (sixteen lanes where the CPU has AVX-512, pairs
        /// everywhere) gives `sha2`'s digests, for any number of messages of any lengths.
        #[test]
        fn many_digests_are_sha2s(
            messages in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..300), proptest::collection::vec(any::<usize>(), 0..3)),
                0..40,
            ),
        ) {
            let parts: Vec<Vec<&[u8]>> = messages.iter().map(|(m, cuts)| split(m, cuts)).collect();
            let parts: Vec<&[&[u8]]> = parts.iter().map(Vec::as_slice).collect();
            let expected: Vec<[u8; 32]> = messages.iter().map(|(m, _)| reference(&[m])).collect();
            let mut out = vec![[0u8; 32]; messages.len()];
            digest_many(&parts, &mut out);
            prop_assert_eq!(&out, &expected);
            out.fill([0; 32]);
            digest_many_in_pairs(&parts, &mut out);
            prop_assert_eq!(&out, &expected);
            #[cfg(target_arch = "x86_64")]
            if avx512::available() {
                out.fill([0; 32]);
                // SAFETY: the feature was just detected.
                unsafe { digest_many_avx512(&parts, &mut out) };
                prop_assert_eq!(&out, &expected);
            }
        }

        #[test]
        fn many_compressions_are_compressions(
            inputs in proptest::collection::vec(
                (any::<[u32; 8]>(), proptest::collection::vec(any::<u8>(), 64)),
                0..40,
            ),
        ) {
            let blocks: Vec<Block> = inputs.iter().map(|(_, b)| b.clone().try_into().unwrap()).collect();
            let start: Vec<State> = inputs.iter().map(|(s, _)| *s).collect();
            let mut expected = start.clone();
            for (state, block) in expected.iter_mut().zip(&blocks) {
                compress(state, block);
            }
            let mut states = start.clone();
            compress_many(&mut states, &blocks);
            prop_assert_eq!(&states, &expected);
            let mut states = start.clone();
            compress_many_in_pairs(&mut states, &blocks);
            prop_assert_eq!(&states, &expected);
            #[cfg(target_arch = "x86_64")]
            if avx512::available() {
                let mut states = start.clone();
                // SAFETY: the feature was just detected.
                unsafe { compress_many_avx512(&mut states, &blocks) };
                prop_assert_eq!(&states, &expected);
            }
        }
    }
}
