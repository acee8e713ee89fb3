//! A validating JSON scanner that reads the top-level members of an object without building
//! anything: each value is checked against the JSON grammar (RFC 8259) and skipped, and the
//! caller sees the members it asks for as raw bytes.
//!
//! Verification reads three members of every entry (`kind`, `seq`, `sealed_at`) and only
//! hashes the rest; this does that several times faster than a full deserialization, and
//! accepts exactly the documents `serde_json` accepts (property-tested in [`crate::entry`]).
//!
//! Three readers, fastest first, each leaving what it does not handle to the next: `shapes`
//! recognises an entry whose token sequence it has seen accepted (AVX-512, through
//! `text_simd`); `compact` reads the sealer's compact form in one loop; the general scanner
//! reads any JSON and words every error.

/// Why a document is not one JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct ScanError {
    pub what: &'static str,
    pub at: usize,
}

/// What a document that is not UTF-8 is told, wherever its first bad byte is.
const NOT_UTF8: &str = "not UTF-8";

/// Deepest nesting accepted (serde_json's default recursion limit).
const MAX_DEPTH: usize = 128;

/// Length of the leading run of `bytes` that a string holds as it is: ASCII, and no quote,
/// backslash or control character. Entries' strings are short, so this looks at eight bytes
/// at a time rather than paying a search call per string.
#[inline(always)]
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        // A byte's high bit is set in each mask where that byte is a quote, a backslash or
        // below 0x20, and in `x` itself where it is not ASCII. Borrows may also flag bytes
        // after the first match, never before it, so the lowest flagged byte is the first
        // special one.
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let special = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x)
            | x;
        let special = special & HIGHS;
        if special != 0 {
            return at + (special.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + words
        .remainder()
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c))
        .unwrap_or(words.remainder().len())
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn err<T>(&self, what: &'static str) -> Result<T, ScanError> {
        Err(ScanError { what, at: self.i })
    }

    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8, what: &'static str) -> Result<(), ScanError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(what)
        }
    }

    /// A string starting at `"`; its raw content (escapes left as they are), which is UTF-8.
    #[inline(always)]
    fn string(&mut self) -> Result<&'a [u8], ScanError> {
        self.eat(b'"', "expected a string")?;
        let start = self.i;
        let mut ascii = true;
        loop {
            // The plain run: ASCII, no quote, backslash or control character.
            self.i += plain_run(&self.b[self.i..]);
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    let content = &self.b[start..self.i - 1];
                    // A quote is never part of a multi-byte UTF-8 sequence, so the string
                    // ends here whatever its other bytes are.
                    if !ascii && std::str::from_utf8(content).is_err() {
                        return Err(ScanError {
                            what: NOT_UTF8,
                            at: 0,
                        });
                    }
                    return Ok(content);
                }
                Some(0x80..) => {
                    ascii = false;
                    self.i += 1;
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = self.b.get(self.i + 1..self.i + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return self.err("bad \\u escape");
                            }
                            self.i += 5;
                        }
                        _ => return self.err("bad escape"),
                    }
                }
                Some(_) => return self.err("control character in a string"),
                None => return self.err("unterminated string"),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<&'a [u8], ScanError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.err("bad number"),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return self.err("bad fraction");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return self.err("bad exponent");
            }
        }
        Ok(&self.b[start..self.i])
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), ScanError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            self.err("bad literal")
        }
    }

    /// [`Scanner::value`], with strings (most values) skipped without a call.
    #[inline(always)]
    fn member_value(&mut self, depth: usize) -> Result<(), ScanError> {
        if depth <= MAX_DEPTH && self.peek() == Some(b'"') {
            self.string().map(|_| ())
        } else {
            self.value(depth)
        }
    }

    /// Skip one value (whitespace before it already skipped).
    fn value(&mut self, depth: usize) -> Result<(), ScanError> {
        if depth > MAX_DEPTH {
            return self.err("nested too deeply");
        }
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.string()?;
                    self.ws();
                    self.eat(b':', "expected ':'")?;
                    self.ws();
                    self.member_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => {
                            self.i += 1;
                            self.ws();
                        }
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return self.err("expected ',' or '}'"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.member_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => {
                            self.i += 1;
                            self.ws();
                        }
                        Some(b']') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return self.err("expected ',' or ']'"),
                    }
                }
            }
            Some(b'"') => self.string().map(|_| ()),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number().map(|_| ()),
            _ => self.err("expected a value"),
        }
    }
}

/// Walk the members of the JSON object `doc`, calling `member(key, raw value)` for each one
/// at the top level; every value is validated. `doc` must be UTF-8 and hold nothing else.
///
/// # Errors
/// The first place where `doc` is not one JSON object.
pub fn object_members<'a>(
    doc: &'a [u8],
    mut member: impl FnMut(&'a [u8], &'a [u8]) -> Result<(), ScanError>,
) -> Result<(), ScanError> {
    let mut members = [(&[][..], &[][..]); compact::MEMBERS];
    if let Some(count) = shapes::object_members(doc, &mut members) {
        for (key, value) in &members[..count] {
            member(key, value)?;
        }
        return Ok(());
    }
    // The scan takes only ASCII outside strings and checks each string that is not ASCII,
    // so a document it accepts is UTF-8. One that is not is told so first, as if checked
    // before the scan.
    scan_members(doc, member).map_err(|e| {
        if e.what != NOT_UTF8 && std::str::from_utf8(doc).is_err() {
            ScanError {
                what: NOT_UTF8,
                at: 0,
            }
        } else {
            e
        }
    })
}

fn scan_members<'a>(
    doc: &'a [u8],
    mut member: impl FnMut(&'a [u8], &'a [u8]) -> Result<(), ScanError>,
) -> Result<(), ScanError> {
    let mut s = Scanner { b: doc, i: 0 };
    s.ws();
    s.eat(b'{', "expected an object")?;
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            let key = s.string()?;
            s.ws();
            s.eat(b':', "expected ':'")?;
            s.ws();
            let start = s.i;
            s.member_value(1)?;
            member(key, &doc[start..s.i])?;
            s.ws();
            match s.peek() {
                Some(b',') => {
                    s.i += 1;
                    s.ws();
                }
                Some(b'}') => {
                    s.i += 1;
                    break;
                }
                _ => return s.err("expected ',' or '}'"),
            }
        }
    }
    s.ws();
    if s.i != doc.len() {
        return s.err("trailing characters");
    }
    Ok(())
}

/// Entries recognised by their shape. Entries from one gateway differ in their strings and
/// numbers, rarely in their structure: the sequence of their tokens ([`text_simd::skeleton`], 64
/// bytes at a time with AVX-512). The compact reader checks each new sequence once; a text
/// with a sequence it accepted before is then in the compact subset exactly when its numbers
/// and literals are (its strings' bytes are checked with the skeleton), and its members are
/// where they were. Without AVX-512, or for a text the skeleton cannot be exact for, this is
/// the compact reader alone.
mod shapes {
    use std::cell::RefCell;

    use text_simd::skeleton::{self, Skeleton};

    use super::compact;

    /// Shapes remembered by each thread, the most recently seen first.
    const KNOWN: usize = 8;

    /// After this many texts in a row whose shape was not remembered, the next [`PAUSE`] go
    /// straight to the compact reader: a log whose entries all differ in structure pays
    /// little for the skeletons.
    const MISSES_BEFORE_PAUSE: u32 = 8;
    const PAUSE: u32 = 64;

    thread_local! {
        static SHAPES: RefCell<Shapes> = RefCell::new(Shapes::new());
    }

    struct Shapes {
        /// Whether this CPU reads skeletons.
        usable: bool,
        /// The last text's, kept for its buffers.
        skeleton: Skeleton,
        known: Vec<Shape>,
        misses: u32,
        paused: u32,
    }

    /// The token sequence of a text the compact reader accepted.
    struct Shape {
        tokens: Box<[u8]>,
        /// For each top-level member, the indices of three tokens: its key, its value's
        /// first, and the one after its value (`,` or the closing `}`).
        members: Vec<[u32; 3]>,
        /// Indices of the tokens that are numbers or literals.
        scalars: Box<[u32]>,
    }

    /// [`compact::object_members`], through the shapes where it can.
    pub(super) fn object_members<'a>(
        doc: &'a [u8],
        out: &mut [(&'a [u8], &'a [u8]); compact::MEMBERS],
    ) -> Option<usize> {
        SHAPES.with_borrow_mut(|shapes| shapes.object_members(doc, out))
    }

    impl Shapes {
        fn new() -> Shapes {
            Shapes {
                usable: skeleton::available(),
                skeleton: Skeleton::new(),
                known: Vec::with_capacity(KNOWN),
                misses: 0,
                paused: 0,
            }
        }

        fn object_members<'a>(
            &mut self,
            doc: &'a [u8],
            out: &mut [(&'a [u8], &'a [u8]); compact::MEMBERS],
        ) -> Option<usize> {
            if !self.usable || self.paused > 0 || !self.skeleton.read(doc) {
                self.paused = self.paused.saturating_sub(1);
                return compact::object_members(doc, out);
            }
            let tokens = self.skeleton.tokens();
            if let Some(i) = self.known.iter().position(|s| *s.tokens == *tokens) {
                self.misses = 0;
                self.known[..=i].rotate_right(1);
                return self.known[0].members(doc, self.skeleton.starts(), out);
            }
            self.misses += 1;
            if self.misses == MISSES_BEFORE_PAUSE {
                (self.misses, self.paused) = (0, PAUSE);
            }
            let count = compact::object_members(doc, out)?;
            let shape = Shape::of(tokens);
            debug_assert_eq!(
                shape.members.len(),
                count,
                "{}",
                String::from_utf8_lossy(doc)
            );
            self.known.truncate(KNOWN - 1);
            self.known.insert(0, shape);
            Some(count)
        }
    }

    impl Shape {
        /// The shape of `tokens`, the skeleton of a text the compact reader accepted: it
        /// starts with `{` and ends with the matching `}`.
        fn of(tokens: &[u8]) -> Shape {
            let index = |i: usize| u32::try_from(i).expect("skeletons have under 2^16 tokens");
            let scalars = (0..tokens.len())
                .filter(|&i| tokens[i] == b'0')
                .map(index)
                .collect();
            let mut members = Vec::new();
            let mut key = 1;
            while key + 1 < tokens.len() {
                // `"key"`, `:`, then the value's tokens up to a `,` or `}` at the top level.
                let value = key + 2;
                let mut end = value;
                let mut depth = 0u32;
                loop {
                    match tokens[end] {
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' if depth > 0 => depth -= 1,
                        b'}' | b',' if depth == 0 => break,
                        _ => {}
                    }
                    end += 1;
                }
                members.push([index(key), index(value), index(end)]);
                key = end + 1;
            }
            Shape {
                tokens: tokens.into(),
                members,
                scalars,
            }
        }

        /// The members of `doc`, whose skeleton is this shape's and starts at `starts`, if its
        /// numbers and literals are in the compact subset.
        fn members<'a>(
            &self,
            doc: &'a [u8],
            starts: &[u16],
            out: &mut [(&'a [u8], &'a [u8]); compact::MEMBERS],
        ) -> Option<usize> {
            let at = |token: u32| usize::from(starts[token as usize]);
            // A number or literal ends where the next token starts (no whitespace here).
            if !self.scalars.iter().all(|&s| scalar(&doc[at(s)..at(s + 1)])) {
                return None;
            }
            for (slot, &[key, value, end]) in out.iter_mut().zip(&self.members) {
                // A key's closing quote is just before its colon.
                *slot = (&doc[at(key) + 1..at(key + 1) - 1], &doc[at(value)..at(end)]);
            }
            Some(self.members.len())
        }
    }

    /// A number or literal of the compact subset: `-?(0|[1-9][0-9]*)`, `true`, `false`,
    /// `null`.
    fn scalar(bytes: &[u8]) -> bool {
        match bytes.strip_prefix(b"-").unwrap_or(bytes) {
            [b'0'] => true,
            [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
            _ => matches!(bytes, b"true" | b"false" | b"null"),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::super::{mutation, tests::ENTRY};
        use super::*;
        use proptest::prelude::*;

        type Members<'a> = Option<Vec<(&'a [u8], &'a [u8])>>;

        fn through_shapes<'a>(shapes: &mut Shapes, doc: &'a [u8]) -> Members<'a> {
            let mut out = [(&[][..], &[][..]); compact::MEMBERS];
            let count = shapes.object_members(doc, &mut out)?;
            Some(out[..count].to_vec())
        }

        fn compact_only(doc: &[u8]) -> Members<'_> {
            let mut out = [(&[][..], &[][..]); compact::MEMBERS];
            let count = compact::object_members(doc, &mut out)?;
            Some(out[..count].to_vec())
        }

        #[test]
        fn a_known_shape_is_recognised_and_its_numbers_still_checked() {
            let mut shapes = Shapes::new();
            if !shapes.usable {
                return;
            }
            assert_eq!(through_shapes(&mut shapes, ENTRY), compact_only(ENTRY));
            assert_eq!(shapes.known.len(), 1);
            // Other strings and numbers, the same shape: recognised, not learned again.
            let text = String::from_utf8(ENTRY.to_vec()).unwrap();
            let other = text
                .replace("\"seq\":601", "\"seq\":98765")
                .replace("/a", "/bcd");
            let members = through_shapes(&mut shapes, other.as_bytes()).expect("compact");
            assert_eq!(Some(members), compact_only(other.as_bytes()));
            assert_eq!((shapes.known.len(), shapes.misses), (1, 0));
            // The same skeleton with a number or literal outside the subset, or invalid.
            for bad in [
                "\"seq\":6e1",
                "\"seq\":60.",
                "\"seq\":01",
                "\"seq\":-",
                "\"seq\":6-",
            ] {
                let doc = text.replace("\"seq\":601", bad);
                assert_eq!(through_shapes(&mut shapes, doc.as_bytes()), None, "{doc}");
                assert_eq!(compact_only(doc.as_bytes()), None, "{doc}");
            }
            let doc = text.replace("true", "tru");
            assert_eq!(through_shapes(&mut shapes, doc.as_bytes()), None, "{doc}");
            assert_eq!(shapes.known.len(), 1);
        }

        #[test]
        fn shapes_not_seen_again_pause_the_skeletons() {
            let mut shapes = Shapes::new();
            if !shapes.usable {
                return;
            }
            for i in 0..MISSES_BEFORE_PAUSE {
                let doc = format!(
                    "{{\"a{i}\":{}1{}}}",
                    "[".repeat(i as usize),
                    "]".repeat(i as usize)
                );
                assert!(through_shapes(&mut shapes, doc.as_bytes()).is_some());
            }
            assert_eq!((shapes.known.len(), shapes.paused), (KNOWN, PAUSE));
            assert!(through_shapes(&mut shapes, ENTRY).is_some());
            assert_eq!((shapes.known.len(), shapes.paused), (KNOWN, PAUSE - 1));
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]

            /// Read after the entry it was made from (its shape known), a mutated entry gets
            /// exactly what the compact reader gives it, members or refusal.
            #[test]
            fn a_known_shape_gives_what_the_compact_reader_gives(
                edits in mutation::edits(),
                cut in 0usize..420,
            ) {
                let mut shapes = Shapes::new();
                let bytes = mutation::apply(ENTRY, &edits);
                for doc in [ENTRY, &bytes[..], ENTRY, &bytes[..cut.min(bytes.len())], &bytes[..]] {
                    prop_assert_eq!(through_shapes(&mut shapes, doc), compact_only(doc),
                        "{}", String::from_utf8_lossy(doc));
                }
            }
        }
    }
}

/// The compact form the sealer writes (RFC 8785 output without escapes), read by a loop
/// with no recursion and no whitespace or escape handling: most of an entry's verification
/// time went into the general scanner. It accepts a subset of JSON only: no whitespace,
/// strings of printable ASCII without escapes, integers, `true`, `false`, `null`, at most
/// [`compact::MAX_DEPTH`] levels and [`compact::MEMBERS`] members at the top. Anything else,
/// valid or not, is left to the general scanner, which also words every error.
mod compact {
    use super::plain_run;

    /// Most top-level members read here (an entry has five or six).
    pub(super) const MEMBERS: usize = 8;

    /// Deepest nesting read here, below the general scanner's limit.
    pub(super) const MAX_DEPTH: u32 = 63;

    /// The top-level members of `doc` into `out`, and how many there are; `None` if `doc`
    /// is not in the compact subset.
    pub(super) fn object_members<'a>(
        doc: &'a [u8],
        out: &mut [(&'a [u8], &'a [u8]); MEMBERS],
    ) -> Option<usize> {
        let mut i = 0;
        expect(doc, &mut i, b'{')?;
        let mut count = 0;
        if doc.get(i) == Some(&b'}') {
            i += 1;
        } else {
            loop {
                let key = key(doc, &mut i)?;
                let start = i;
                i = value(doc, i)?;
                *out.get_mut(count)? = (key, &doc[start..i]);
                count += 1;
                match doc.get(i)? {
                    b',' => i += 1,
                    b'}' => {
                        i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        (i == doc.len()).then_some(count)
    }

    fn expect(doc: &[u8], i: &mut usize, c: u8) -> Option<()> {
        (doc.get(*i) == Some(&c)).then(|| *i += 1)
    }

    /// A string of plain characters (the quotes included), its content returned.
    #[inline(always)]
    fn string<'a>(doc: &'a [u8], i: &mut usize) -> Option<&'a [u8]> {
        expect(doc, i, b'"')?;
        let start = *i;
        *i += plain_run(&doc[start..]);
        let content = &doc[start..*i];
        expect(doc, i, b'"')?;
        Some(content)
    }

    /// A member's key and the colon after it.
    #[inline(always)]
    fn key<'a>(doc: &'a [u8], i: &mut usize) -> Option<&'a [u8]> {
        let key = string(doc, i)?;
        expect(doc, i, b':')?;
        Some(key)
    }

    /// The end of the value at `i`: containers are followed with a stack of one bit per
    /// level (set for an array) instead of recursion.
    fn value(doc: &[u8], mut i: usize) -> Option<usize> {
        let mut arrays = 0u64;
        let mut depth = 0u32;
        loop {
            // A value starts at `i`.
            match *doc.get(i)? {
                b'"' => {
                    string(doc, &mut i)?;
                }
                open @ (b'{' | b'[') => {
                    i += 1;
                    let close = if open == b'{' { b'}' } else { b']' };
                    if doc.get(i) == Some(&close) {
                        i += 1;
                    } else {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            return None;
                        }
                        if open == b'{' {
                            arrays &= !(1 << depth);
                            key(doc, &mut i)?;
                        } else {
                            arrays |= 1 << depth;
                        }
                        continue;
                    }
                }
                b't' => i = literal(doc, i, b"true")?,
                b'f' => i = literal(doc, i, b"false")?,
                b'n' => i = literal(doc, i, b"null")?,
                b'-' | b'0'..=b'9' => i = integer(doc, i)?,
                _ => return None,
            }
            // A value ended before `i`: close containers until one goes on.
            loop {
                if depth == 0 {
                    return Some(i);
                }
                let in_array = arrays & (1 << depth) != 0;
                match *doc.get(i)? {
                    b',' => {
                        i += 1;
                        if !in_array {
                            key(doc, &mut i)?;
                        }
                        break;
                    }
                    b'}' if !in_array => {}
                    b']' if in_array => {}
                    _ => return None,
                }
                i += 1;
                depth -= 1;
            }
        }
    }

    fn literal(doc: &[u8], i: usize, word: &[u8]) -> Option<usize> {
        doc[i..].starts_with(word).then_some(i + word.len())
    }

    /// `-?(0|[1-9][0-9]*)`; a fraction or an exponent is left to the general scanner.
    fn integer(doc: &[u8], mut i: usize) -> Option<usize> {
        if doc.get(i) == Some(&b'-') {
            i += 1;
        }
        match *doc.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                i += 1;
                while doc.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            _ => return None,
        }
        match doc.get(i) {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(super) const ENTRY: &[u8] = br#"{"event":{"client":{"address":"198.51.100.7"},"http":{"request":{"headers":{"x":["a","b"]},"method":"GET"},"response":{"status_code":200}},"n":[1,-25,0,true,false,null,{},[]],"url":{"path":"/a"}},"kind":"http","sealed_at":"2026-12-04T22:51:31.690563000Z","seq":601,"source":{"id":"gw/a","seq":9}}"#;

    /// Keys and raw values of a document's top-level members.
    type Members<'a> = Vec<(&'a [u8], &'a [u8])>;

    fn general(doc: &[u8]) -> Result<Members<'_>, ScanError> {
        let mut members = Vec::new();
        scan_members(doc, |k, v| {
            members.push((k, v));
            Ok(())
        })?;
        if std::str::from_utf8(doc).is_err() {
            return Err(ScanError {
                what: NOT_UTF8,
                at: 0,
            });
        }
        Ok(members)
    }

    #[test]
    fn a_sealed_entry_is_read_by_the_compact_reader() {
        let mut members = [(&[][..], &[][..]); compact::MEMBERS];
        let count = compact::object_members(ENTRY, &mut members).expect("compact");
        assert_eq!(&members[..count], general(ENTRY).unwrap().as_slice());
        let keys: Vec<&[u8]> = members[..count].iter().map(|m| m.0).collect();
        assert_eq!(
            keys,
            [&b"event"[..], b"kind", b"sealed_at", b"seq", b"source"]
        );
        // Valid JSON outside the subset goes to the general scanner.
        for other in [
            &br#"{ "seq":1}"#[..],
            br#"{"seq":1.5}"#,
            br#"{"seq":1e3}"#,
            br#"{"k":"a\"b"}"#,
            "{\"k\":\"\u{e9}\"}".as_bytes(),
            br#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}"#,
        ] {
            assert!(compact::object_members(other, &mut members).is_none());
            assert!(general(other).is_ok());
        }
        // Invalid JSON is never read as compact.
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(70), "]".repeat(70));
        for bad in [
            &br#"{"a":[1}}"#[..],
            br#"{"a":{"b":1]}"#,
            br#"{"a":[1,"b":2]}"#,
            br#"{"a":{"b":1,2}}"#,
            br#"{"a":1,2}"#,
            br#"{"a":01}"#,
            br#"{"a":-}"#,
            br#"{"a":tru}"#,
            br#"{"a":"x}"#,
            br#"{"a":1}x"#,
            br#"{"a":1,}"#,
            br#"{"a":[1,]}"#,
            br#"{"a":{"b"}}"#,
            br#"{,}"#,
            br#"{"a":1"#,
            br#"["a"]"#,
            b"{\"a\":\"\x01\"}",
        ] {
            assert!(
                compact::object_members(bad, &mut members).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert!(general(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(compact::object_members(deep.as_bytes(), &mut members).is_none());
        assert!(general(deep.as_bytes()).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Whatever the compact reader accepts, the general scanner accepts with the same
        /// members, and the two are never both wrong the same way: on an entry with bytes
        /// replaced, inserted or removed, and cut short.
        #[test]
        fn the_compact_reader_accepts_only_what_the_scanner_accepts_alike(
            edits in mutation::edits(),
            cut in 0usize..420,
        ) {
            let bytes = mutation::apply(ENTRY, &edits);
            for doc in [&bytes[..], &bytes[..cut.min(bytes.len())]] {
                let mut members = [(&[][..], &[][..]); compact::MEMBERS];
                if let Some(count) = compact::object_members(doc, &mut members) {
                    let general = general(doc);
                    prop_assert!(general.is_ok(), "{:?}: {:?}", String::from_utf8_lossy(doc), general);
                    let general = general.unwrap();
                    prop_assert_eq!(&members[..count], general.as_slice());
                }
            }
        }
    }
}

/// Documents with bytes that change JSON structure replaced, inserted or removed: the
/// readers' property tests compare what they make of them.
#[cfg(test)]
pub(crate) mod mutation {
    use proptest::prelude::*;

    /// Bytes that change JSON structure, and a few that make it invalid UTF-8.
    const SIGNIFICANT: &[u8] = b"{}[]\",:\\0123456789-+.eEtrufalsn \t\x01u\xc3\xa9";

    /// One edit: a position (taken modulo the length), a byte of [`SIGNIFICANT`], and
    /// whether it replaces, is inserted or removes.
    pub(crate) type Edit = (usize, usize, u8);

    /// Up to three edits.
    pub(crate) fn edits() -> impl Strategy<Value = Vec<Edit>> {
        proptest::collection::vec((0usize..400, 0usize..SIGNIFICANT.len(), 0u8..3), 0..4)
    }

    /// `doc` with `edits` made in turn.
    pub(crate) fn apply(doc: &[u8], edits: &[Edit]) -> Vec<u8> {
        let mut bytes = doc.to_vec();
        for &(at, c, op) in edits {
            let at = at % (bytes.len() + 1);
            let c = SIGNIFICANT[c];
            match op {
                0 if at < bytes.len() => bytes[at] = c,
                1 => bytes.insert(at, c),
                _ if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {}
            }
        }
        bytes
    }
}
