//! A validating JSON scanner that reads the top-level members of an object without building
//! anything: each value is checked against the JSON grammar (RFC 8259) and skipped, and the
//! caller sees the members it asks for as raw bytes.
//!
//! Verification reads three members of every entry (`kind`, `seq`, `sealed_at`) and only
//! hashes the rest; this does that several times faster than a full deserialization, and
//! accepts exactly the documents `serde_json` accepts (property-tested in [`crate::entry`]).

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
    member: impl FnMut(&'a [u8], &'a [u8]) -> Result<(), ScanError>,
) -> Result<(), ScanError> {
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
