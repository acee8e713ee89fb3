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
use crate::merkle::{Hash, leaf_hash_many};
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
    plan.finish(pieces, bytes, mac_key)
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
    /// Index of its first line in the segment (0-based): known for the first piece only.
    /// Counting the lines before every other piece would be a pass over the segment before
    /// the checking can start; a piece's check assumes it instead
    /// ([`PieceCheck::first_line`]), and [`SegmentPlan::finish`] checks the assumption.
    first_line: Option<usize>,
}

/// What one piece's lines show; joined by [`SegmentPlan::finish`].
#[derive(Debug, Clone)]
pub struct PieceCheck {
    /// The index in the segment of the piece's first line that the check used: the piece's
    /// own if the plan knew it, otherwise what the first line's `seq` says it is.
    first_line: usize,
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
        let mut start = 0;
        while start < body {
            // End at the newline at or after the target size, or at the end of the body.
            let end = memchr::memchr(b'\n', &bytes[(start + target).min(body)..body])
                .map_or(body, |at| (start + target).min(body) + at);
            plan.pieces.push(Piece {
                bytes: start..end,
                first_line: plan.pieces.is_empty().then_some(0),
            });
            if end == body {
                break;
            }
            start = end + 1;
        }
        if start == body {
            // The body ends with an empty line after a newline.
            plan.pieces.push(Piece {
                bytes: body..body,
                first_line: plan.pieces.is_empty().then_some(0),
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
        match piece.first_line {
            Some(known) => self.check_lines(piece, known, bytes, mac_key),
            None => {
                // Assume the first line is where its own `seq` puts it: true for a sound log,
                // and `finish` checks it.
                let (first_seq, _) = self.range.expect("planned segments are named");
                let lines = &bytes[piece.bytes.clone()];
                let first = &lines[..memchr::memchr(b'\n', lines).unwrap_or(lines.len())];
                let assumed = parse_line(first)
                    .ok()
                    .and_then(|(_, head)| head.seq.checked_sub(first_seq))
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(0);
                self.check_lines(piece, assumed, bytes, mac_key)
            }
        }
    }

    /// Check the lines of `piece`, its first line taken to be line `first_line` of the
    /// segment.
    fn check_lines(
        &self,
        piece: &Piece,
        first_line: usize,
        bytes: &[u8],
        mac_key: Option<&MacKey>,
    ) -> PieceCheck {
        let lines = &bytes[piece.bytes.clone()];
        let mut check = PieceCheck {
            first_line,
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
        // Records are hashed in batches (`sha256_x2` runs their hashes side by side): a record
        // that parsed waits in `batch` until it is full, or until a line that is not a record
        // comes. Whatever happens to a line is reported in line order all the same.
        let mut batch: Vec<ParsedLine<'_>> = Vec::with_capacity(BATCH);
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
                    batch.push(ParsedLine {
                        index: i,
                        record,
                        seq: head.seq,
                        previous,
                    });
                    previous = Some(record.chain);
                    if batch.len() == BATCH {
                        self.settle(&mut check, &mut batch, mac_key);
                    }
                }
                Err(message) => {
                    self.settle(&mut check, &mut batch, mac_key);
                    let at = self.location(first_line, i);
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
        self.settle(&mut check, &mut batch, mac_key);
        check.tail = previous;
        check
    }

    /// Hash the records in `batch` side by side, report what their hashes show in line
    /// order, and empty the batch.
    fn settle(
        &self,
        check: &mut PieceCheck,
        batch: &mut Vec<ParsedLine<'_>>,
        mac_key: Option<&MacKey>,
    ) {
        let n = batch.len();
        debug_assert!(n <= BATCH, "batches hold at most {BATCH} records");
        let mut leaves = [[0u8; 32]; BATCH];
        let entries: [&[u8]; BATCH] =
            std::array::from_fn(|i| batch.get(i).map_or(&[][..], |l| l.record.entry));
        leaf_hash_many(&entries[..n], &mut leaves[..n]);
        // Chain steps from the lines before, where those are records of this piece.
        let zero = [0u8; 32];
        let mut linked = [0usize; BATCH];
        let mut steps = [(&zero, &zero); BATCH];
        let mut m = 0;
        for (i, line) in batch.iter().enumerate() {
            if let Some(previous) = &line.previous {
                (linked[m], steps[m]) = (i, (previous, &leaves[i]));
                m += 1;
            }
        }
        let mut chains = [[0u8; 32]; BATCH];
        chain::next_many(&steps[..m], &mut chains[..m]);
        let mut chained = [None; BATCH];
        for (&i, step) in linked[..m].iter().zip(&chains) {
            chained[i] = Some(*step == batch[i].record.chain);
        }
        let mut macs_ok = [None; BATCH];
        if let Some(key) = mac_key {
            let stored: [(&Hash, &Hash); BATCH] = std::array::from_fn(|i| {
                batch
                    .get(i)
                    .map_or((&zero, &zero), |l| (&l.record.chain, &l.record.mac))
            });
            let mut ok = [false; BATCH];
            key.verify_many(&stored[..n], &mut ok[..n]);
            for (slot, ok) in macs_ok.iter_mut().zip(&ok[..n]) {
                *slot = Some(*ok);
            }
        }
        for (i, line) in batch.drain(..).enumerate() {
            self.report(check, &line, leaves[i], chained[i], macs_ok[i]);
        }
    }

    /// Record one parsed line's leaf and chain, and its problems in the order a reader meets
    /// them: its sequence number, its link to the line before (`chained`, unknown when that
    /// line is not a record or is in the piece before), its MAC (`mac_ok`, unknown without
    /// the key).
    fn report(
        &self,
        check: &mut PieceCheck,
        line: &ParsedLine<'_>,
        leaf: Hash,
        chained: Option<bool>,
        mac_ok: Option<bool>,
    ) {
        let (first_seq, _) = self.range.expect("planned segments are named");
        let expected = first_seq + (check.first_line + line.index) as u64;
        let at = || self.location(check.first_line, line.index);
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

    /// `key:line` of line `index` of a piece that starts at line `first_line`, lines
    /// numbered from 1 in the segment.
    fn location(&self, first_line: usize, index: usize) -> String {
        format!("{}:{}", self.key, first_line + index + 1)
    }

    /// Join the pieces' checks, given in order, into the segment's. `bytes` and `mac_key`
    /// are those the pieces were checked with: a piece whose check assumed the wrong first
    /// line (the segment is damaged before it) is checked again here with the right one, so
    /// that every problem names its line and expected `seq` exactly. A check made with the
    /// right first line, assumed or known, is the check.
    pub fn finish(
        self,
        mut pieces: Vec<PieceCheck>,
        bytes: &[u8],
        mac_key: Option<&MacKey>,
    ) -> SegmentCheck {
        assert_eq!(pieces.len(), self.pieces.len(), "one check per piece");
        let mut first_line = 0;
        for (check, piece) in pieces.iter_mut().zip(&self.pieces) {
            if check.first_line != first_line {
                *check = self.check_lines(piece, first_line, bytes, mac_key);
            }
            first_line += check.records as usize;
        }
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
        for piece in pieces {
            let mut problems = piece.problems.into_iter();
            if let (Some(prev), Some((leaf, stored))) = (tail_before, piece.first) {
                for p in problems.by_ref().take(piece.before_first_chain) {
                    keep(&mut check.problems, p.class, p.location, p.message);
                }
                if chain::next(&prev, &leaf) != stored {
                    let (first_seq, _) = check.range.expect("planned segments are named");
                    let expected = first_seq + piece.first_line as u64;
                    let location = format!("{}:{}", check.key, piece.first_line + 1);
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
/// How many parsed records [`SegmentPlan::check_piece`] hashes side by side: AVX-512 runs
/// sixteen SHA-256 compressions at once (`sha256_x2::lanes`).
const BATCH: usize = 16;

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
        plan.finish(checks.into_iter().rev().collect(), bytes, mac)
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

        /// Whole lines removed, repeated or moved leave every line well-formed, and a piece
        /// after the edit sees sound records at other places than its `seq`s say: split
        /// anywhere, the segment gives what one check gives, problem for problem.
        #[test]
        fn lines_removed_repeated_or_moved_split_anywhere_give_the_whole_check(
            n in 2usize..40,
            edits in proptest::collection::vec((any::<usize>(), any::<usize>(), 0u8..3), 1..4),
            pieces in 2usize..12,
        ) {
            let (key, bytes) = segment(n);
            let mut lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
            for (at, to, op) in edits {
                let (at, to) = (at % lines.len(), to % lines.len());
                match op {
                    0 if lines.len() > 1 => { lines.remove(at); }
                    1 => lines.insert(to, lines[at]),
                    _ => { let line = lines.remove(at); lines.insert(to, line); }
                }
            }
            let bytes = lines.concat();
            let mac = MacKey::new(&[9; 32]);
            same(&in_pieces(&key, &bytes, pieces, Some(&mac)), &check_segment(&key, &bytes, Some(&mac)))?;
        }
    }
}
