//! Sealed records: one line of a segment file.
//!
//! ```text
//! {"chain":"<64 hex>","entry":<canonical entry bytes>,"mac":"<64 hex>"}\n
//! ```
//!
//! The line is itself RFC 8785 canonical JSON, so any JSON tool reads it (`jq .entry`), and
//! the entry bytes appear in it verbatim, so a verifier hashes them without re-serializing.

use text_simd::hex::encode_lower_32;

use crate::merkle::Hash;

const PREFIX: &[u8] = b"{\"chain\":\"";
const MIDDLE: &[u8] = b"\",\"entry\":";
const MAC_PART: &[u8] = b",\"mac\":\"";
const SUFFIX: &[u8] = b"\"}";

/// Append one record line, with its trailing newline.
pub fn write_record(out: &mut Vec<u8>, entry: &[u8], chain: &Hash, mac: &Hash) {
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(&encode_lower_32(chain));
    out.extend_from_slice(MIDDLE);
    out.extend_from_slice(entry);
    out.extend_from_slice(MAC_PART);
    out.extend_from_slice(&encode_lower_32(mac));
    out.extend_from_slice(SUFFIX);
    out.push(b'\n');
}

/// A parsed record line. `entry` borrows the exact bytes that were hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub entry: &'a [u8],
    pub chain: Hash,
    pub mac: Hash,
}

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("line does not start with {{\"chain\":\"<64 hex>\",\"entry\":")]
    BadPrefix,
    #[error("line does not end with ,\"mac\":\"<64 hex>\"}}")]
    BadSuffix,
    #[error("{field} is not 64 lowercase hex digits")]
    BadHex { field: &'static str },
}

/// Parse one line (without its newline). Only the framing is checked here; the entry's JSON
/// is checked by whoever reads it.
pub fn parse_record(line: &[u8]) -> Result<Record<'_>, RecordError> {
    let head_len = PREFIX.len() + 64 + MIDDLE.len();
    let tail_len = MAC_PART.len() + 64 + SUFFIX.len();
    if line.len() < head_len + 2 + tail_len {
        return Err(if line.starts_with(PREFIX) {
            RecordError::BadSuffix
        } else {
            RecordError::BadPrefix
        });
    }
    if !line.starts_with(PREFIX) || &line[PREFIX.len() + 64..head_len] != MIDDLE {
        return Err(RecordError::BadPrefix);
    }
    let tail = &line[line.len() - tail_len..];
    if !tail.starts_with(MAC_PART) || !tail.ends_with(SUFFIX) {
        return Err(RecordError::BadSuffix);
    }
    let chain = decode_hex(&line[PREFIX.len()..PREFIX.len() + 64])
        .ok_or(RecordError::BadHex { field: "chain" })?;
    let mac = decode_hex(&tail[MAC_PART.len()..MAC_PART.len() + 64])
        .ok_or(RecordError::BadHex { field: "mac" })?;
    Ok(Record {
        entry: &line[head_len..line.len() - tail_len],
        chain,
        mac,
    })
}

/// Strict lowercase hex, as written by [`write_record`]: 64 digits, `0-9a-f` (eight digits
/// at a time, or all 64 at once with AVX-512: [`text_simd::hex`]).
fn decode_hex(hex: &[u8]) -> Option<Hash> {
    text_simd::hex::decode_lower_32(hex.try_into().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut line = Vec::new();
        write_record(&mut line, br#"{"seq":0}"#, &[0xab; 32], &[0x01; 32]);
        assert_eq!(line.last(), Some(&b'\n'));
        let text = std::str::from_utf8(&line).unwrap();
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["entry"]["seq"], 0);
        assert_eq!(v["chain"].as_str().unwrap(), "ab".repeat(32));
        let r = parse_record(&line[..line.len() - 1]).unwrap();
        assert_eq!(r.entry, br#"{"seq":0}"#);
        assert_eq!(r.chain, [0xab; 32]);
        assert_eq!(r.mac, [0x01; 32]);
    }

    #[test]
    fn rejects_damaged_framing() {
        let mut line = Vec::new();
        write_record(&mut line, br#"{"seq":0}"#, &[0xab; 32], &[0x01; 32]);
        line.pop();
        for cut in 0..line.len() {
            assert!(parse_record(&line[..cut]).is_err(), "cut at {cut}");
        }
        let mut upper = line.clone();
        upper[PREFIX.len()] = b'A';
        assert_eq!(
            parse_record(&upper),
            Err(RecordError::BadHex { field: "chain" })
        );
    }
}
