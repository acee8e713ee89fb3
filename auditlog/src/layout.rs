//! Object names in a store. Every object is written once and never changed.
//!
//! ```text
//! segments/<first seq, 20 digits>-<last seq, 20 digits>.ndjson   sealed records, one per line
//! checkpoints/<tree size, 20 digits>-<unix ns, 20 digits>.note   signed checkpoints
//! witnessed/<tree size>-<unix ns>-<witness key ID, 8 hex>.note      the same, cosigned
//! tile/<L>/<N>[.p/<W>]                                              the tree ([`crate::tiles`])
//! ```
//!
//! Zero-padded decimal numbers make lexicographic order equal numeric order, so a plain
//! listing is already in log order.

/// Prefix of every segment object.
pub const SEGMENTS: &str = "segments/";
/// Prefix of every checkpoint object.
pub const CHECKPOINTS: &str = "checkpoints/";

/// Prefix of every cosigned checkpoint: a checkpoint with a witness's cosignature lines
/// added (C2SP tlog-cosignature), stored beside the plain one.
pub const WITNESSED: &str = "witnessed/";

/// The name of the checkpoint of `size` entries signed at `unix_nanos`, cosigned by the
/// witness whose key ID is `key_id`.
pub fn witnessed_key(size: u64, unix_nanos: u64, key_id: u32) -> String {
    format!("{WITNESSED}{size:020}-{unix_nanos:020}-{key_id:08x}.note")
}

/// Parse a cosigned checkpoint's name into `(size, unix_nanos, key_id)`.
pub fn parse_witnessed_key(key: &str) -> Option<(u64, u64, u32)> {
    let rest = key.strip_prefix(WITNESSED)?.strip_suffix(".note")?;
    let (pair, id) = rest.rsplit_once('-')?;
    if id.len() != 8
        || !id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    let (size, nanos) = parse_pair(pair)?;
    Some((size, nanos, u32::from_str_radix(id, 16).ok()?))
}

/// The name of the segment holding entries `first..=last`.
pub fn segment_key(first: u64, last: u64) -> String {
    format!("{SEGMENTS}{first:020}-{last:020}.ndjson")
}

/// Parse a segment name into `(first, last)`.
pub fn parse_segment_key(key: &str) -> Option<(u64, u64)> {
    let rest = key.strip_prefix(SEGMENTS)?.strip_suffix(".ndjson")?;
    let (first, last) = parse_pair(rest)?;
    (first <= last).then_some((first, last))
}

/// The name of a checkpoint of `size` entries signed at `unix_nanos`.
pub fn checkpoint_key(size: u64, unix_nanos: u64) -> String {
    format!("{CHECKPOINTS}{size:020}-{unix_nanos:020}.note")
}

/// Parse a checkpoint name into `(size, unix_nanos)`.
pub fn parse_checkpoint_key(key: &str) -> Option<(u64, u64)> {
    let rest = key.strip_prefix(CHECKPOINTS)?.strip_suffix(".note")?;
    parse_pair(rest)
}

fn parse_pair(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once('-')?;
    if a.len() != 20 || b.len() != 20 || !(a.bytes().chain(b.bytes())).all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort() {
        let a = segment_key(0, 99);
        let b = segment_key(100, 1_000_000);
        assert_eq!(
            a,
            "segments/00000000000000000000-00000000000000000099.ndjson"
        );
        assert!(a < b);
        assert_eq!(parse_segment_key(&b), Some((100, 1_000_000)));
        assert_eq!(parse_segment_key("segments/5-9.ndjson"), None);
        assert_eq!(parse_segment_key(&segment_key(9, 5)), None);
        let c = checkpoint_key(42, 1_700_000_000_000_000_000);
        assert_eq!(
            parse_checkpoint_key(&c),
            Some((42, 1_700_000_000_000_000_000))
        );
        assert_eq!(parse_checkpoint_key("checkpoints/x"), None);
        let w = witnessed_key(42, 7, 0xdead_beef);
        assert_eq!(
            w,
            "witnessed/00000000000000000042-00000000000000000007-deadbeef.note"
        );
        assert_eq!(parse_witnessed_key(&w), Some((42, 7, 0xdead_beef)));
        assert_eq!(parse_witnessed_key("witnessed/42-7-deadbeef.note"), None);
    }
}
