//! One SHA-256 stream against several side by side, in one run:
//! `cargo run --release -p sha256-x2 --example speed`.
//!
//! It compresses single blocks one at a time, two at a time and as many at a time as
//! `compress_many` runs here (`lanes()`: 16 with AVX-512), then hashes entry-sized messages (a
//! prefix byte and 370 bytes, six blocks, as the verifier's leaf hashes) one at a time with
//! `sha2::Sha256`, two at a time with `digest_two` and many at a time with `digest_many`. It
//! prints the rates and their ratios to one at a time; each measure is the best of five
//! rounds.

use std::hint::black_box;
use std::time::Instant;

use sha2::{Digest, Sha256};

const BLOCKS: usize = 2_000_000;
const MESSAGES: usize = 200_000;
const LEN: usize = 370;

fn best_of_five(mut round: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            round();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let block = [7u8; 64];
    let (mut a, mut b) = (sha256_x2::IV, sha256_x2::IV);
    let one = best_of_five(|| {
        for _ in 0..BLOCKS {
            sha256_x2::compress(&mut a, black_box(&block));
        }
    });
    let two = best_of_five(|| {
        for _ in 0..BLOCKS / 2 {
            sha256_x2::compress_two(&mut a, black_box(&block), &mut b, black_box(&block));
        }
    });
    black_box((a, b));
    let mut states = vec![sha256_x2::IV; 64];
    let blocks = vec![block; 64];
    let many = best_of_five(|| {
        for _ in 0..BLOCKS / 64 {
            sha256_x2::compress_many(&mut states, black_box(&blocks));
        }
    });
    black_box(&states);
    let ns = |secs: f64, n: usize| secs / n as f64 * 1e9;
    println!(
        "blocks: one at a time {:.1} ns each, two at a time {:.1} ns each: {:.2}x",
        ns(one, BLOCKS),
        ns(two, BLOCKS),
        one / two
    );
    println!(
        "blocks: {} at a time {:.1} ns each: {:.2}x",
        sha256_x2::lanes(),
        ns(many, BLOCKS / 64 * 64),
        one / many
    );

    let messages: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|i| (0..LEN).map(|j| (i * 31 + j * 7) as u8).collect())
        .collect();
    let one = best_of_five(|| {
        for m in &messages {
            black_box(Sha256::new().chain_update([0u8]).chain_update(m).finalize());
        }
    });
    let two = best_of_five(|| {
        for pair in messages.chunks_exact(2) {
            black_box(sha256_x2::digest_two(&[&[0], &pair[0]], &[&[0], &pair[1]]));
        }
    });
    println!(
        "messages of 1+{LEN} bytes: sha2::Sha256 one at a time {:.0} ns each, digest_two {:.0} ns \
         each: {:.2}x",
        ns(one, MESSAGES),
        ns(two, MESSAGES),
        one / two
    );
    let many = best_of_five(|| {
        let mut out = [[0u8; 32]; 64];
        for group in messages.chunks_exact(64) {
            let parts: Vec<[&[u8]; 2]> = group.iter().map(|m| [&[0u8][..], &m[..]]).collect();
            let parts: Vec<&[&[u8]]> = parts.iter().map(|p| &p[..]).collect();
            sha256_x2::digest_many(&parts, &mut out);
            black_box(&out);
        }
    });
    println!(
        "messages of 1+{LEN} bytes: digest_many {:.0} ns each: {:.2}x",
        ns(many, MESSAGES / 64 * 64),
        one / many
    );
}
