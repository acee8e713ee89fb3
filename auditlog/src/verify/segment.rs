//! Checking one segment on its own: framing, JSON, sequence numbers, the chain inside the
//! segment, and MACs.
//!
//! A segment holds up to 32 MiB of records, tens of milliseconds of hashing. So that one
//! segment keeps every core busy, [`SegmentPlan`] splits it at line boundaries into pieces
//! that are checked independently ([`SegmentPlan::check_piece`], on any thread) and joined in
//! order ([`SegmentPlan::finish`]), which also checks the chain across each boundary. The
//! result is the same, problem for problem, however the segment is split; [`check_segment`]
//! checks it as one piece.

use std::ops::Range;

use crate::chain::{self, MacKey};
use crate::entry::{EntryHead, EntryKind};
use crate::layout;
use crate::merkle::{Hash, leaf_hash, leaf_hash_two};
use crate::record::{Record, parse_record};

use super::{MAX_PROBLEMS, Problem, ProblemClass, keep};

/// The result of checking one segment on its own.
#[derive(Debug, Clone)]
pub struct SegmentCheck {
    pub key: String,
    /// `(first, last)` from the segment's name, if it is a valid name.
    pub range: Option<(u64, u64)>,
    pub records: u64,
    pub leaves: Vec<Hash>,
    /// Stored chain value of each record in `leaves`.
    pub chains: Vec<Hash>,
    /// Leaf hash and stored chain value of the first record, linked by
    /// [`super::StoreVerifier::absorb`].
    pub first: Option<(Hash, Hash)>,
    /// Stored chain value of the last record.
    pub last_chain: Option<Hash>,
    pub kinds: std::collections::BTreeMap<&'static str, u64>,
    pub problems: Vec<Problem>,
}

/// Check one segment's records: framing, JSON, sequence numbers, the chain inside the
/// segment, and MACs when the HMAC key is given.
pub fn check_segment(key: &str, bytes: &[u8], mac_key: Option<&MacKey>) -> SegmentCheck {
    let plan = SegmentPlan::new(key, bytes, 1);
    let pieces = (0..plan.pieces())
        .map(|i| plan.check_piece(i, bytes, mac_key))
        .collect();
    plan.finish(pieces)
}

/// A segment read and split into pieces of whole lines, for checking on several threads.
#[derive(Debug, Clone)]
pub struct SegmentPlan {
    key: String,
    range: Option<(u64, u64)>,
    pieces: Vec<Piece>,
    /// Found before any line is read: a bad name, a torn end, an empty segment.
    problems: Vec<Problem>,
}

#[derive(Debug, Clone)]
struct Piece {
    /// Its lines' bytes in the segment, without the newline that ends the last one.
    bytes: Range<usize>,
    /// Index of its first line in the segment (0-based).
    first_line: usize,
}

/// What one piece's lines show; joined by [`SegmentPlan::finish`].
#[derive(Debug, Clone)]
pub struct PieceCheck {
    records: u64,
    leaves: Vec<Hash>,
    chains: Vec<Hash>,
    /// Leaf hash and stored chain of the first line, if it is a valid record.
    first: Option<(Hash, Hash)>,
    /// How many of `problems` come before the first line's chain check, where a break
    /// across the boundary before this piece belongs in line order.
    before_first_chain: usize,
    /// Stored chain of the last line, if it is a valid record (the next piece's first
    /// record must follow from it).
    tail: Option<Hash>,
    /// Stored chain of the last valid record.
    last_chain: Option<Hash>,
    kinds: [u64; EntryKind::ALL.len()],
    problems: Vec<Problem>,
}

impl SegmentPlan {
    /// Split `bytes`, the segment stored under `key`, into at most `pieces` pieces of about
    /// the same size, each starting at a line.
    pub fn new(key: &str, bytes: &[u8], pieces: usize) -> SegmentPlan {
        let mut plan = SegmentPlan {
            key: key.to_owned(),
            range: layout::parse_segment_key(key),
            pieces: Vec::new(),
            problems: Vec::new(),
        };
        if plan.range.is_none() {
            plan.problem(
                ProblemClass::UnknownObject,
                key.to_owned(),
                "not a segment name (segments/<20 digits>-<20 digits>.ndjson)".into(),
            );
            return plan;
        }
        let body = match bytes.last() {
            None => 0,
            Some(b'\n') => bytes.len() - 1,
            Some(_) => {
                let line_no = memchr::memchr_iter(b'\n', bytes).count() + 1;
                plan.problem(
                    ProblemClass::TornSegment,
                    format!("{key}:{line_no}"),
                    "last line has no newline: the segment was cut or torn".into(),
                );
                bytes.len()
            }
        };
        if body == 0 {
            plan.problem(
                ProblemClass::SegmentNameMismatch,
                key.to_owned(),
                "segment is empty".into(),
            );
            return plan;
        }
        let target = body.div_ceil(pieces.max(1));
        let (mut start, mut first_line) = (0, 0);
        while start < body {
            // End at the newline at or after the target size, or at the end of the body.
            let end = memchr::memchr(b'\n', &bytes[(start + target).min(body)..body])
                .map_or(body, |at| (start + target).min(body) + at);
            plan.pieces.push(Piece {
                bytes: start..end,
                first_line,
            });
            if end == body {
                break;
            }
            first_line += memchr::memchr_iter(b'\n', &bytes[start..=end]).count();
            start = end + 1;
        }
        if start == body {
            // The body ends with an empty line after a newline.
            plan.pieces.push(Piece {
                bytes: body..body,
                first_line,
            });
        }
        plan
    }

    /// How many pieces to check.
    pub fn pieces(&self) -> usize {
        self.pieces.len()
    }

    fn problem(&mut self, class: ProblemClass, location: String, message: String) {
        keep(&mut self.problems, class, location, message);
    }

    /// Check the lines of piece `index` of `bytes` (the same bytes the plan was made from).
    pub fn check_piece(&self, index: usize, bytes: &[u8], mac_key: Option<&MacKey>) -> PieceCheck {
        let piece = &self.pieces[index];
        let lines = &bytes[piece.bytes.clone()];
        let mut check = PieceCheck {
            records: 0,
            leaves: Vec::with_capacity(lines.len() / 400 + 1),
            chains: Vec::with_capacity(lines.len() / 400 + 1),
            first: None,
            before_first_chain: 0,
            tail: None,
            last_chain: None,
            kinds: [0; EntryKind::ALL.len()],
            problems: Vec::new(),
        };
        // Records are hashed two at a time (`sha256_x2`): a record that parsed waits here for
        // the next one. Whatever happens to a line is reported in line order all the same.
        let mut waiting: Option<ParsedLine<'_>> = None;
        let mut previous: Option<Hash> = None;
        let lines = memchr::memchr_iter(b'\n', lines)
            .chain(std::iter::once(lines.len()))
            .scan(0, |start, end| {
                let line = &lines[*start..end];
                *start = end + 1;
                Some(line)
            });
        for (i, line) in lines.enumerate() {
            check.records += 1;
            match parse_line(line) {
                Ok((record, head)) => {
                    check.kinds[head.kind as usize] += 1;
                    let parsed = ParsedLine {
                        index: i,
                        record,
                        seq: head.seq,
                        previous,
                    };
                    previous = Some(record.chain);
                    match waiting.take() {
                        None => waiting = Some(parsed),
                        Some(earlier) => {
                            self.settle_two(piece, &mut check, earlier, parsed, mac_key)
                        }
                    }
                }
                Err(message) => {
                    if let Some(earlier) = waiting.take() {
                        self.settle_one(piece, &mut check, earlier, mac_key);
                    }
                    let at = self.location(piece, i);
                    keep(
                        &mut check.problems,
                        ProblemClass::MalformedRecord,
                        at,
                        message,
                    );
                    previous = None;
                }
            }
        }
        if let Some(last) = waiting {
            self.settle_one(piece, &mut check, last, mac_key);
        }
        check.tail = previous;
        check
    }

    /// Hash one record that parsed, alone, and report what its hashes show.
    fn settle_one(
        &self,
        piece: &Piece,
        check: &mut PieceCheck,
        line: ParsedLine<'_>,
        mac_key: Option<&MacKey>,
    ) {
        let leaf = leaf_hash(line.record.entry);
        let chained = line
            .previous
            .map(|prev| chain::next(&prev, &leaf) == line.record.chain);
        let mac_ok = mac_key.map(|k| k.verify(&line.record.chain, &line.record.mac));
        self.report(piece, check, &line, leaf, chained, mac_ok);
    }

    /// Hash two records that parsed, side by side, and report what their hashes show, the
    /// earlier first.
    fn settle_two(
        &self,
        piece: &Piece,
        check: &mut PieceCheck,
        a: ParsedLine<'_>,
        b: ParsedLine<'_>,
        mac_key: Option<&MacKey>,
    ) {
        let [leaf_a, leaf_b] = leaf_hash_two(a.record.entry, b.record.entry);
        let (chained_a, chained_b) = match (a.previous, b.previous) {
            (Some(prev_a), Some(prev_b)) => {
                let [x, y] = chain::next_two((&prev_a, &leaf_a), (&prev_b, &leaf_b));
                (Some(x == a.record.chain), Some(y == b.record.chain))
            }
            (prev_a, prev_b) => (
                prev_a.map(|prev| chain::next(&prev, &leaf_a) == a.record.chain),
                prev_b.map(|prev| chain::next(&prev, &leaf_b) == b.record.chain),
            ),
        };
        let (mac_a, mac_b) = match mac_key {
            Some(k) => {
                let [x, y] = k.verify_two(
                    (&a.record.chain, &a.record.mac),
                    (&b.record.chain, &b.record.mac),
                );
                (Some(x), Some(y))
            }
            None => (None, None),
        };
        self.report(piece, check, &a, leaf_a, chained_a, mac_a);
        self.report(piece, check, &b, leaf_b, chained_b, mac_b);
    }

    /// Record one parsed line's leaf and chain, and its problems in the order a reader meets
    /// them: its sequence number, its link to the line before (`chained`, unknown when that
    /// line is not a record or is in the piece before), its MAC (`mac_ok`, unknown without
    /// the key).
    fn report(
        &self,
        piece: &Piece,
        check: &mut PieceCheck,
        line: &ParsedLine<'_>,
        leaf: Hash,
        chained: Option<bool>,
        mac_ok: Option<bool>,
    ) {
        let (first_seq, _) = self.range.expect("planned segments are named");
        let expected = first_seq + (piece.first_line + line.index) as u64;
        let at = || self.location(piece, line.index);
        let problems = &mut check.problems;
        if line.seq != expected {
            let message = format!("entry has seq {} where {expected} belongs", line.seq);
            keep(problems, ProblemClass::SequenceMismatch, at(), message);
        }
        check.leaves.push(leaf);
        check.chains.push(line.record.chain);
        if line.index == 0 {
            check.first = Some((leaf, line.record.chain));
            check.before_first_chain = problems.len();
        }
        if chained == Some(false) {
            keep(
                problems,
                ProblemClass::ChainBroken,
                at(),
                not_chained(expected),
            );
        }
        if mac_ok == Some(false) {
            let message = format!("entry {expected} has a MAC that the HMAC key does not produce");
            keep(problems, ProblemClass::MacMismatch, at(), message);
        }
        check.last_chain = Some(line.record.chain);
    }

    /// `key:line` of line `index` of `piece`, lines numbered from 1 in the segment.
    fn location(&self, piece: &Piece, index: usize) -> String {
        format!("{}:{}", self.key, piece.first_line + index + 1)
    }

    /// Join the pieces' checks, given in order, into the segment's.
    pub fn finish(self, pieces: Vec<PieceCheck>) -> SegmentCheck {
        assert_eq!(pieces.len(), self.pieces.len(), "one check per piece");
        let records: u64 = pieces.iter().map(|p| p.records).sum();
        let mut check = SegmentCheck {
            key: self.key,
            range: self.range,
            records,
            leaves: Vec::with_capacity(records as usize),
            chains: Vec::with_capacity(records as usize),
            first: pieces.first().and_then(|p| p.first),
            last_chain: None,
            kinds: Default::default(),
            problems: self.problems,
        };
        let mut kinds = [0u64; EntryKind::ALL.len()];
        let mut tail_before: Option<Hash> = None;
        for (piece, plan) in pieces.into_iter().zip(&self.pieces) {
            let mut problems = piece.problems.into_iter();
            if let (Some(prev), Some((leaf, stored))) = (tail_before, piece.first) {
                for p in problems.by_ref().take(piece.before_first_chain) {
                    keep(&mut check.problems, p.class, p.location, p.message);
                }
                if chain::next(&prev, &leaf) != stored {
                    let (first_seq, _) = check.range.expect("planned segments are named");
                    let expected = first_seq + plan.first_line as u64;
                    let location = format!("{}:{}", check.key, plan.first_line + 1);
                    let message = not_chained(expected);
                    keep(
                        &mut check.problems,
                        ProblemClass::ChainBroken,
                        location,
                        message,
                    );
                }
            }
            for p in problems {
                if check.problems.len() >= MAX_PROBLEMS {
                    break;
                }
                check.problems.push(p);
            }
            check.leaves.extend(piece.leaves);
            check.chains.extend(piece.chains);
            for (total, n) in kinds.iter_mut().zip(piece.kinds) {
                *total += n;
            }
            check.last_chain = piece.last_chain.or(check.last_chain);
            tail_before = piece.tail;
        }
        for (kind, n) in EntryKind::ALL.iter().zip(kinds) {
            if n > 0 {
                check.kinds.insert(kind.as_str(), n);
            }
        }
        if let Some((first_seq, last_seq)) = check.range
            && !self.pieces.is_empty()
        {
            let expected_count = last_seq - first_seq + 1;
            if check.records != expected_count {
                keep(
                    &mut check.problems,
                    ProblemClass::SegmentNameMismatch,
                    check.key.clone(),
                    format!(
                        "name promises {expected_count} entries ({first_seq}..={last_seq}), \
                         the segment holds {}",
                        check.records
                    ),
                );
            }
        }
        check
    }
}

/// A line that is a record with a valid entry, not yet hashed.
struct ParsedLine<'a> {
    /// Its index in the piece.
    index: usize,
    record: Record<'a>,
    seq: u64,
    /// The stored chain value of the line before, if that line is a record in this piece.
    previous: Option<Hash>,
}

/// The record on a line and its entry's head, or why the line is not one (the message of a
/// `malformed_record` problem).
fn parse_line(line: &[u8]) -> Result<(Record<'_>, EntryHead), String> {
    let record = parse_record(line).map_err(|e| e.to_string())?;
    let head =
        EntryHead::parse(record.entry).map_err(|e| format!("entry is not a valid entry: {e}"))?;
    Ok((record, head))
}

fn not_chained(seq: u64) -> String {
    format!(
        "entry {seq} does not chain to the entry before it \
         (modified, inserted, removed or reordered)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::EntrySource;
    use crate::seal::LogSealer;
    use crate::timestamp::Timestamp;
    use proptest::prelude::*;

    fn segment(n: usize) -> (String, Vec<u8>) {
        let mut sealer = LogSealer::new("example.com/pieces", MacKey::new(&[9; 32]));
        let mut bytes = Vec::new();
        for i in 0..n {
            let source = EntrySource {
                id: "gw/a".into(),
                seq: Some(i as u64),
            };
            let at = Timestamp::from_unix_nanos(1_800_000_000_000_000_000 + i as i64);
            let event = format!(r#"{{"n":{i}}}"#);
            sealer.seal(
                &mut bytes,
                EntryKind::Http,
                at,
                Some(&source),
                event.as_bytes(),
            );
        }
        (layout::segment_key(0, n as u64 - 1), bytes)
    }

    fn in_pieces(key: &str, bytes: &[u8], pieces: usize, mac: Option<&MacKey>) -> SegmentCheck {
        let plan = SegmentPlan::new(key, bytes, pieces);
        let checks = (0..plan.pieces())
            .rev()
            .map(|i| plan.check_piece(i, bytes, mac))
            .collect::<Vec<_>>();
        plan.finish(checks.into_iter().rev().collect())
    }

    fn same(a: &SegmentCheck, b: &SegmentCheck) -> Result<(), TestCaseError> {
        prop_assert_eq!(&a.key, &b.key);
        prop_assert_eq!(a.range, b.range);
        prop_assert_eq!(a.records, b.records);
        prop_assert_eq!(&a.leaves, &b.leaves);
        prop_assert_eq!(&a.chains, &b.chains);
        prop_assert_eq!(a.first, b.first);
        prop_assert_eq!(a.last_chain, b.last_chain);
        prop_assert_eq!(&a.kinds, &b.kinds);
        prop_assert_eq!(&a.problems, &b.problems);
        Ok(())
    }

    #[test]
    fn a_sound_segment_split_anywhere_has_no_problems() {
        let (key, bytes) = segment(30);
        for pieces in 1..40 {
            let check = in_pieces(&key, &bytes, pieces, Some(&MacKey::new(&[9; 32])));
            assert!(check.problems.is_empty(), "{pieces}: {:?}", check.problems);
            assert_eq!(check.records, 30);
        }
        let planned = SegmentPlan::new(&key, &bytes, 7).pieces();
        assert!((2..=7).contains(&planned), "{planned} pieces");
    }

    #[test]
    fn a_break_at_a_boundary_is_found_in_line_order() {
        let (key, bytes) = segment(4);
        let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
        // Lines 1 and 3 swapped: line 3 (seq 2 expected, holds 0) does not chain to line 2.
        let swapped = [lines[2], lines[1], lines[0], lines[3]].concat();
        for pieces in 1..5 {
            let check = in_pieces(&key, &swapped, pieces, None);
            let found: Vec<_> = check
                .problems
                .iter()
                .map(|p| (p.class, p.location.rsplit(':').next().unwrap().to_owned()))
                .collect();
            assert_eq!(
                found,
                [
                    (ProblemClass::SequenceMismatch, "1".to_owned()),
                    (ProblemClass::ChainBroken, "2".to_owned()),
                    (ProblemClass::SequenceMismatch, "3".to_owned()),
                    (ProblemClass::ChainBroken, "3".to_owned()),
                    (ProblemClass::ChainBroken, "4".to_owned()),
                ],
                "{pieces} pieces"
            );
        }
    }

    proptest! {
        /// However a damaged segment is split, the pieces joined give what one check gives.
        #[test]
        fn pieces_join_to_the_whole(
            n in 1usize..25,
            edits in proptest::collection::vec((any::<usize>(), prop::sample::select(b"\n{}\"x0".to_vec()), 0u8..3), 0..6),
            pieces in 1usize..12,
            with_mac in any::<bool>(),
        ) {
            let (key, mut bytes) = segment(n);
            for (at, c, op) in edits {
                let at = at % (bytes.len() + 1);
                match op {
                    0 if at < bytes.len() => bytes[at] = c,
                    1 => bytes.insert(at, c),
                    _ if at < bytes.len() => { bytes.remove(at); }
                    _ => {}
                }
            }
            let mac = MacKey::new(&[9; 32]);
            let mac = with_mac.then_some(&mac);
            same(&in_pieces(&key, &bytes, pieces, mac), &check_segment(&key, &bytes, mac))?;
        }
    }
}
