//! The verifier's reading of record text, 64 bytes at a time with AVX-512.
//!
//! After the hashing ([`sha256-x2`](../sha256_x2/index.html)), most of the time verifying
//! the audit log went into reading the records' text: the JSON of every entry, and the two
//! 64-digit hex hashes of every record (docs/log-format.md). This crate does both with
//! AVX-512, one register per 64 bytes:
//!
//! - [`skeleton`]: the token sequence of a compact JSON text, by which `auditlog` recognises
//!   an entry's structure instead of parsing it again;
//! - [`hex`]: 32 bytes from 64 lowercase hex digits, with the same answer on every CPU
//!   (eight digits at a time in a `u64` without AVX-512), and the digits of 32 bytes, four
//!   bytes at a time in a `u64` (the sealer writes two hashes per record).
//!
//! The CPU's features are detected at run time. Property tests compare each AVX-512 path
//! with a plain one. Each module says where its `unsafe` is; `auditlog`, which uses this
//! crate, forbids `unsafe` itself.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod hex;
pub mod skeleton;
