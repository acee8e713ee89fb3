//! Object names in a store. Every object is written once and never changed.
//!
//! ```text
//! segments/<first seq, 20 digits>-<last seq, 20 digits>.ndjson   sealed records, one per line
//! checkpoints/<tree size, 20 digits>-<unix ns, 20 digits>.note   signed checkpoints
//! ```
//!
//! Zero-padded decimal numbers make lexicographic order equal numeric order, so a plain
//! listing is already in log order.

/// Prefix of every segment object.
pub const SEGMENTS: &str = "segments/";
/// Prefix of every checkpoint object.
pub const CHECKPOINTS: &str = "checkpoints/";

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
    }
}
