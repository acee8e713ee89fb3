//! RFC 8785 JSON Canonicalization Scheme (JCS) for [`serde_json::Value`].
//!
//! The canonical form of a JSON value is the byte string that every conforming implementation
//! produces for it, so it can be hashed, chained and signed:
//!
//! - no whitespace between tokens (RFC 8785 §3.2.1);
//! - `null`, `true` and `false` as such (§3.2.2.1);
//! - strings (§3.2.2.2) escape only `"` and `\` (as `\"` and `\\`) and U+0000..U+001F: U+0008,
//!   U+0009, U+000A, U+000C and U+000D as `\b`, `\t`, `\n`, `\f` and `\r`, the others as
//!   `\u00hh` with lowercase hexadecimal digits; every other character, `/`, U+007F and all
//!   non-ASCII characters included, is written as is, in UTF-8 (§3.2.4);
//! - numbers (§3.2.2.3) as ECMAScript's `Number.prototype.toString` writes the IEEE 754 double,
//!   e.g. `1e+21`, `1e-7`, `0.000001`, and `0` for minus zero (via [`ryu_js`]);
//! - object members sorted recursively by their names compared as arrays of UTF-16 code units
//!   (§3.2.3). This is *not* the order of [`serde_json::Map`] (a `BTreeMap`, which orders by UTF-8
//!   bytes, i.e. by code point): the two differ when a name has a character above U+FFFF (a
//!   surrogate pair, D800..DFFF in UTF-16) where the other has one in U+E000..U+FFFF. The members
//!   are therefore re-sorted here.
//!
//! # Integer policy
//!
//! I-JSON (RFC 7493 §2.2) and RFC 8785 Appendix B note (1) expect integers to lie within
//! ±(2^53−1), the range in which an IEEE 754 double — and thus JavaScript — holds every integer
//! exactly. A [`serde_json::Number`] holding an `i64` or `u64` outside that range is refused with
//! [`JcsError::UnsafeInteger`] rather than silently rounded. A number held as an `f64` is already a
//! double and is written per ECMAScript even when it is integral: `9007199254740992.0` is written
//! `9007199254740992` (RFC 8785 Appendix B). Note that JSON text without fraction or exponent is
//! read back (by serde_json and by [`is_canonical`]) as a `u64`/`i64` where it fits, which this
//! policy then refuses: integral `f64` values from 2^53 up to `u64::MAX` and from −2^53 down to
//! `i64::MIN` canonicalize, but their canonical text does not canonicalize again and is not
//! [`is_canonical`]. Beyond those bounds integers are read as doubles again
//! (`295147905179352830000` is canonical).
//!
//! # Parsing
//!
//! [`is_canonical`] parses with its own small I-JSON parser, not with serde_json: with its
//! default features (no `float_roundtrip`) serde_json's float parsing is not correctly rounded
//! and reads some shortest round-trip texts as the neighbouring double (`333333333.33333329`
//! from RFC 8785 §3.2.2 as 333333333.33333325, `2.4837449540019793e-158` as
//! `2.483744954001979e-158`), which would make canonical text of such doubles look
//! non-canonical. It also refuses duplicate member names, which serde_json silently collapses.
//!
//! # Relation to `serde_json::to_vec`
//!
//! serde_json escapes strings exactly as JCS does (same set of escaped characters, same short
//! escapes, lowercase `\u00hh`) and writes integers in plain decimal, so `serde_json::to_vec` of a
//! value whose object member names are all ASCII (where UTF-8 and UTF-16 order agree), whose
//! numbers are all integers within ±(2^53−1) and whose strings are arbitrary is byte-identical to
//! [`canonicalize`]; a `#[derive(Serialize)]` struct whose fields are declared in ASCII order
//! likewise. This does not hold for floating-point numbers: serde_json writes `1.0` and `1e21`
//! where JCS writes `1` and `1e+21`.
//!
//! RFC 8785 also requires rejecting lone surrogates, duplicate member names, NaN and infinities:
//! a Rust `str` cannot hold a lone surrogate, a `Map` cannot hold a duplicate name, and a
//! `serde_json::Number` cannot hold a non-finite value, so [`canonicalize`] only meets them as
//! input to [`is_canonical`], whose parser refuses them.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// The largest integer magnitude that an IEEE 754 double holds exactly together with all
/// smaller ones: 2^53 − 1 (`Number.MAX_SAFE_INTEGER` in ECMAScript).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a value has no canonical form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JcsError {
    /// An integer held as `i64`/`u64` outside ±(2^53−1); the payload is its decimal text.
    #[error("integer {0} is outside the I-JSON safe range ±(2^53-1) and cannot be canonicalized")]
    UnsafeInteger(String),
    /// A NaN or infinite number (JSON and RFC 8785 §3.2.2.3 forbid them); the payload is the
    /// value as Rust prints it.
    #[error("number {0} is not finite and cannot be canonicalized")]
    NonFiniteNumber(String),
}

/// The RFC 8785 canonical form of `value`, as UTF-8 bytes.
///
/// # Errors
///
/// [`JcsError::UnsafeInteger`] for an integer outside ±(2^53−1) anywhere in `value`.
pub fn canonicalize(value: &Value) -> Result<Vec<u8>, JcsError> {
    let mut out = Vec::new();
    write_canonical(value, &mut out)?;
    Ok(out)
}

/// Appends the RFC 8785 canonical form of `value` to `out`.
///
/// # Errors
///
/// As [`canonicalize`]. On error, `out` may hold part of the output after its original content.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) -> Result<(), JcsError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(members) => write_object(members, out)?,
    }
    Ok(())
}

/// Appends `s` to `out` as a canonical JSON string literal, quotes included (RFC 8785 §3.2.2.2).
pub fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most strings need no escape at all: find the first byte that does, eight at a time.
    let Some(first) = find_special(bytes, 0) else {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    };
    out.extend_from_slice(&bytes[..first]);
    let mut run_start = first;
    for (i, &b) in bytes.iter().enumerate().skip(first) {
        // Only ASCII bytes are ever escaped; the bytes of a multi-byte UTF-8 sequence are all
        // >= 0x80, so runs are cut on character boundaries.
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x09 => b't',
            0x0A => b'n',
            0x0C => b'f',
            0x0D => b'r',
            0x00..=0x1F => b'u',
            _ => continue,
        };
        out.extend_from_slice(&bytes[run_start..i]);
        run_start = i + 1;
        if short == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0x0F)],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', short]);
        }
    }
    out.extend_from_slice(&bytes[run_start..]);
    out.push(b'"');
}

/// The position, at or after `from`, of the first byte that is `"`, `\` or a control
/// character (below U+0020): the bytes a JSON string cannot hold as they are. Eight bytes at
/// a time (the usual SWAR tests for a zero byte and for a byte below a bound), since strings
/// are mostly long runs of plain text.
pub fn find_special(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    let mut i = from;
    while i + 8 <= bytes.len() {
        let w = u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let quote = has_zero(w ^ (ONES * u64::from(b'"')));
        let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
        if below_space | quote | backslash != 0 {
            break;
        }
        i += 8;
    }
    bytes[i..]
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .map(|p| i + p)
}

/// Parses `bytes` as JSON and reports whether they are already exactly their canonical form.
///
/// The bytes are parsed as RFC 8259 JSON under the I-JSON constraints (RFC 7493) that RFC 8785
/// §3.1 requires: valid UTF-8, no duplicate member names, no lone surrogate escapes, numbers
/// within double range. Numbers with a fraction or an exponent, and integers beyond `u64`/`i64`,
/// are converted to the nearest double (correctly rounded, which serde_json's default parser is
/// not); other integers are integers, under the integer policy of this module. The result is
/// true iff the bytes are a single such value, nested at most 127 deep (serde_json's own limit),
/// equal to its canonical form: no whitespace, members in UTF-16 order, canonical escapes and
/// number forms.
pub fn is_canonical(bytes: &[u8]) -> bool {
    let Some(value) = parse(bytes) else {
        return false;
    };
    let mut out = Vec::with_capacity(bytes.len());
    write_canonical(&value, &mut out).is_ok() && out == bytes
}

/// The RFC 8785 §3.2.3 order of two member names: by UTF-16 code units, as unsigned integers.
fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn write_object(members: &Map<String, Value>, out: &mut Vec<u8>) -> Result<(), JcsError> {
    let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
    // The map is in code point order, which agrees with UTF-16 order unless names have
    // characters above U+FFFF; sort_by is a stable merge sort and cheap on sorted input.
    sorted.sort_by(|(a, _), (b, _)| utf16_cmp(a, b));
    out.push(b'{');
    for (i, (name, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(name, out);
        out.push(b':');
        write_canonical(value, out)?;
    }
    out.push(b'}');
    Ok(())
}

fn write_number(n: &Number, out: &mut Vec<u8>) -> Result<(), JcsError> {
    if let Some(u) = n.as_u64() {
        if u > MAX_SAFE_INTEGER {
            return Err(JcsError::UnsafeInteger(u.to_string()));
        }
        out.extend_from_slice(u.to_string().as_bytes());
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(JcsError::UnsafeInteger(i.to_string()));
        }
        out.extend_from_slice(i.to_string().as_bytes());
    } else {
        // Without serde_json's `arbitrary_precision` feature a number is u64, i64 or f64.
        let f = n.as_f64().unwrap_or(f64::NAN);
        write_f64(f, out)?;
    }
    Ok(())
}

/// Writes `f` as ECMAScript's `Number.prototype.toString` does (RFC 8785 §3.2.2.3).
fn write_f64(f: f64, out: &mut Vec<u8>) -> Result<(), JcsError> {
    if !f.is_finite() {
        return Err(JcsError::NonFiniteNumber(f.to_string()));
    }
    let mut buf = ryu_js::Buffer::new();
    out.extend_from_slice(buf.format_finite(f).as_bytes());
    Ok(())
}

/// How deep [`parse`] lets arrays and objects nest: 127, the most that serde_json's parser
/// accepts.
const MAX_DEPTH: usize = 127;

/// Parses a JSON text (RFC 8259) under the I-JSON constraints of RFC 8785 §3.1 into a [`Value`].
///
/// Unlike `serde_json::from_slice` with serde_json's default features, this converts numbers
/// to the *nearest* double (Rust's `str::parse::<f64>` is correctly rounded), so that the
/// canonical text of a double reads back as the same double; serde_json's default parser can be
/// one unit in the last place off (it reads `333333333.33333329`, from RFC 8785 §3.2.2, as
/// 333333333.33333325). It also refuses duplicate member names instead of keeping the last.
/// Integers without fraction or exponent are kept as `u64`/`i64` where they fit, as serde_json
/// does. `None` for anything that is not exactly one such value, optionally surrounded by
/// whitespace.
fn parse(bytes: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut p = Parser { text, at: 0 };
    p.skip_whitespace();
    let value = p.value(0)?;
    p.skip_whitespace();
    (p.at == text.len()).then_some(value)
}

struct Parser<'a> {
    text: &'a str,
    /// Byte offset into `text`. Outside string literals it is always on a character boundary
    /// (the grammar there is ASCII); inside one, text is only sliced at ASCII `"` and `\`.
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.at += 1;
        }
        found
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn skip_digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    fn keyword(&mut self, word: &str, value: Value) -> Option<Value> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Some(value)
        } else {
            None
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        match self.peek()? {
            b'n' => self.keyword("null", Value::Null),
            b't' => self.keyword("true", Value::Bool(true)),
            b'f' => self.keyword("false", Value::Bool(false)),
            b'"' => self.string().map(Value::String),
            b'-' | b'0'..=b'9' => self.number(),
            b'[' if depth < MAX_DEPTH => {
                self.at += 1;
                self.skip_whitespace();
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Some(Value::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.skip_whitespace();
                    if self.eat(b']') {
                        return Some(Value::Array(items));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                    self.skip_whitespace();
                }
            }
            b'{' if depth < MAX_DEPTH => {
                self.at += 1;
                self.skip_whitespace();
                let mut members = Map::new();
                if self.eat(b'}') {
                    return Some(Value::Object(members));
                }
                loop {
                    if self.peek() != Some(b'"') {
                        return None;
                    }
                    let name = self.string()?;
                    self.skip_whitespace();
                    if !self.eat(b':') {
                        return None;
                    }
                    self.skip_whitespace();
                    let value = self.value(depth + 1)?;
                    if members.insert(name, value).is_some() {
                        return None; // duplicate member name
                    }
                    self.skip_whitespace();
                    if self.eat(b'}') {
                        return Some(Value::Object(members));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                    self.skip_whitespace();
                }
            }
            _ => None,
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<Value> {
        let start = self.at;
        self.eat(b'-');
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                self.skip_digits();
            }
            _ => return None,
        }
        let mut integer = true;
        if self.eat(b'.') {
            integer = false;
            if self.skip_digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integer = false;
            self.at += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.skip_digits() == 0 {
                return None;
            }
        }
        let token = &self.text[start..self.at];
        if integer {
            if let Ok(u) = token.parse::<u64>() {
                return Some(Value::from(u));
            }
            if let Ok(i) = token.parse::<i64>() {
                return Some(Value::from(i));
            }
        }
        // Correctly rounded; an overflow gives an infinity, which from_f64 refuses.
        let f: f64 = token.parse().ok()?;
        Number::from_f64(f).map(Value::Number)
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.at..self.at + 4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.at += 4;
        u32::from_str_radix(digits, 16).ok()
    }

    /// A string literal starting at the opening quote.
    fn string(&mut self) -> Option<String> {
        self.at += 1;
        let mut out = String::new();
        let mut run = self.at;
        loop {
            match self.peek()? {
                b'"' => {
                    out.push_str(&self.text[run..self.at]);
                    self.at += 1;
                    return Some(out);
                }
                b'\\' => {
                    out.push_str(&self.text[run..self.at]);
                    self.at += 1;
                    let escape = self.peek()?;
                    self.at += 1;
                    out.push(match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let unit = self.hex4()?;
                            match unit {
                                0xD800..=0xDBFF => {
                                    // A high surrogate must be followed by an escaped low one.
                                    if !(self.eat(b'\\') && self.eat(b'u')) {
                                        return None;
                                    }
                                    let low = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&low) {
                                        return None;
                                    }
                                    char::from_u32(
                                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00),
                                    )?
                                }
                                // from_u32 refuses a lone low surrogate.
                                _ => char::from_u32(unit)?,
                            }
                        }
                        _ => return None,
                    });
                    run = self.at;
                }
                0x00..=0x1F => return None,
                _ => self.at += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_special_finds_the_first_byte_to_escape_wherever_it_is() {
        for len in 0..40 {
            let plain = vec![b'a'; len];
            assert_eq!(find_special(&plain, 0), None);
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x1f, 0x0a] {
                    let mut bytes = plain.clone();
                    bytes[at] = special;
                    assert_eq!(find_special(&bytes, 0), Some(at), "{len} {at} {special}");
                    assert_eq!(find_special(&bytes, at), Some(at));
                    assert_eq!(find_special(&bytes, at + 1), None);
                }
                // Bytes that look close but need no escape.
                for harmless in [0x20, 0x21, 0x7f, 0x80, 0xff, b'#', b']'] {
                    let mut bytes = plain.clone();
                    bytes[at] = harmless;
                    assert_eq!(find_special(&bytes, 0), None, "{harmless:#x}");
                }
            }
        }
    }
    use proptest::prelude::*;
    use serde_json::json;

    fn canon_str(v: &Value) -> String {
        String::from_utf8(canonicalize(v).unwrap()).unwrap()
    }

    fn f64_canon(bits: u64) -> String {
        let mut out = Vec::new();
        write_f64(f64::from_bits(bits), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// RFC 8785 §3.2.3: the sorting test data and its expected order.
    #[test]
    fn rfc8785_sorting_example() {
        let input = r#"{
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\ud83d\ude00": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let value: Value = serde_json::from_str(input).unwrap();
        let canon = canonicalize(&value).unwrap();
        let reparsed: Map<String, Value> = serde_json::from_slice(&canon).unwrap();
        // The canonical text lists members in canonical order; read it back in that order.
        let order: Vec<&str> = {
            let text = std::str::from_utf8(&canon).unwrap();
            let mut names: Vec<(&str, usize)> = reparsed
                .values()
                .map(|v| {
                    let s = v.as_str().unwrap();
                    (s, text.find(&format!("\"{s}\"")).unwrap())
                })
                .collect();
            names.sort_by_key(|&(_, at)| at);
            names.into_iter().map(|(s, _)| s).collect()
        };
        assert_eq!(
            order,
            [
                "Carriage Return",
                "One",
                "Control",
                "Latin Small Letter O With Diaeresis",
                "Euro Sign",
                "Emoji: Grinning Face",
                "Hebrew Letter Dalet With Dagesh",
            ]
        );
        let expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
            \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
            \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(String::from_utf8(canon.clone()).unwrap(), expected);
        assert!(is_canonical(&canon));
    }

    /// The one place where UTF-8 (code point) order and UTF-16 order disagree.
    #[test]
    fn utf16_order_differs_from_btreemap_order() {
        let value = json!({ "\u{e000}": 1, "\u{10000}": 2 });
        // serde_json's map iterates in code point order...
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["\u{e000}", "\u{10000}"]);
        // ...but U+10000 is D800 DC00 in UTF-16, below E000.
        assert_eq!(canon_str(&value), "{\"\u{10000}\":2,\"\u{e000}\":1}");
        assert_eq!(utf16_cmp("\u{ffff}", "\u{10000}"), Ordering::Greater);
        assert_eq!(utf16_cmp("\u{d7ff}", "\u{10000}"), Ordering::Less);
        assert_eq!(utf16_cmp("", "a"), Ordering::Less);
        assert_eq!(utf16_cmp("a", "aa"), Ordering::Less);
        assert_eq!(utf16_cmp("aa", "ab"), Ordering::Less);
    }

    /// RFC 8785 Appendix B, every row of its table of number serialization samples.
    #[test]
    fn rfc8785_appendix_b_numbers() {
        let rows: [(u64, &str); 24] = [
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, expected) in rows {
            assert_eq!(f64_canon(bits), expected, "IEEE 754 {bits:016x}");
            // Through a serde_json::Value too (the table's values are all finite).
            let value = Value::Number(Number::from_f64(f64::from_bits(bits)).unwrap());
            assert_eq!(canon_str(&value), expected, "IEEE 754 {bits:016x}");
        }
        // The table's NaN and Infinity rows have no JSON representation.
        for bits in [0x7fffffffffffffff_u64, 0x7ff0000000000000] {
            let mut out = Vec::new();
            assert!(matches!(
                write_f64(f64::from_bits(bits), &mut out),
                Err(JcsError::NonFiniteNumber(_))
            ));
        }
        assert!(Number::from_f64(f64::NAN).is_none());
    }

    #[test]
    fn es_number_forms() {
        for (f, expected) in [
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1e-7, "1e-7"),
            (1e-6, "0.000001"),
            (-0.0, "0"),
            (0.0, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (4.5, "4.5"),
            (0.002, "0.002"),
            (1e30, "1e+30"),
            (1e-27, "1e-27"),
        ] {
            let mut out = Vec::new();
            write_f64(f, &mut out).unwrap();
            assert_eq!(std::str::from_utf8(&out).unwrap(), expected, "{f:e}");
        }
    }

    /// RFC 8785 §3.2.2 / §3.2.3 / §3.2.4: the sample object, its canonical text and bytes.
    #[test]
    fn rfc8785_primitive_serialization_example() {
        let input = r#"{
            "numbers": [333333333.33333329, 1E30, 4.50,
                        2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;
        let value = parse(input.as_bytes()).unwrap();
        let expected = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,\
            1e+30,4.5,0.002,1e-27],\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
        assert_eq!(canon_str(&value), expected);
        let hex = "7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72 \
                   75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a \
                   5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31 \
                   65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37 \
                   5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30 \
                   30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d";
        let bytes: Vec<u8> = hex
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        assert_eq!(canonicalize(&value).unwrap(), bytes);
    }

    #[test]
    fn string_escaping() {
        let mut out = Vec::new();
        write_string("", &mut out);
        assert_eq!(out, b"\"\"");
        for (c, expected) in [
            ('\u{0}', "\\u0000"),
            ('\u{1}', "\\u0001"),
            ('\u{7}', "\\u0007"),
            ('\u{8}', "\\b"),
            ('\t', "\\t"),
            ('\n', "\\n"),
            ('\u{b}', "\\u000b"),
            ('\u{c}', "\\f"),
            ('\r', "\\r"),
            ('\u{e}', "\\u000e"),
            ('\u{f}', "\\u000f"),
            ('\u{10}', "\\u0010"),
            ('\u{1a}', "\\u001a"),
            ('\u{1f}', "\\u001f"),
            ('"', "\\\""),
            ('\\', "\\\\"),
            ('/', "/"),
            (' ', " "),
            ('\u{7f}', "\u{7f}"),
            ('\u{80}', "\u{80}"),
            ('\u{2028}', "\u{2028}"),
            ('\u{feff}', "\u{feff}"),
            ('\u{ffff}', "\u{ffff}"),
            ('\u{1f600}', "\u{1f600}"),
        ] {
            let mut out = Vec::new();
            write_string(&c.to_string(), &mut out);
            assert_eq!(
                std::str::from_utf8(&out).unwrap(),
                format!("\"{expected}\""),
                "U+{:04X}",
                u32::from(c)
            );
        }
        let mut out = b"prefix:".to_vec();
        write_string("a\"b\\c\u{1}d\u{e9}\u{1f600}e\n", &mut out);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "prefix:\"a\\\"b\\\\c\\u0001d\u{e9}\u{1f600}e\\n\""
        );
    }

    #[test]
    fn literals_arrays_and_nesting() {
        let value = json!({
            "z": [null, true, false, [], {}, [1, [2, {"b": 1, "a": 2}]]],
            "a": {"y": {"d": "x", "c": -3}, "x": 0},
        });
        assert_eq!(
            canon_str(&value),
            r#"{"a":{"x":0,"y":{"c":-3,"d":"x"}},"z":[null,true,false,[],{},[1,[2,{"a":2,"b":1}]]]}"#
        );
        let mut out = b"[".to_vec();
        write_canonical(&json!("x"), &mut out).unwrap();
        assert_eq!(out, b"[\"x\"");
    }

    #[test]
    fn integer_policy() {
        let max = MAX_SAFE_INTEGER;
        assert_eq!(max, 9_007_199_254_740_991);
        assert_eq!(canon_str(&json!(max)), "9007199254740991");
        assert_eq!(canon_str(&json!(-(max as i64))), "-9007199254740991");
        for (value, text) in [
            (json!(max + 1), "9007199254740992"),
            (json!(-(max as i64) - 1), "-9007199254740992"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!(i64::MIN), "-9223372036854775808"),
        ] {
            assert_eq!(
                canonicalize(&value),
                Err(JcsError::UnsafeInteger(text.to_owned()))
            );
        }
        // Deep inside a structure too.
        let nested = json!({"a": [1, {"b": u64::MAX}]});
        assert!(matches!(
            canonicalize(&nested),
            Err(JcsError::UnsafeInteger(_))
        ));
        assert_eq!(
            JcsError::UnsafeInteger("9007199254740992".into()).to_string(),
            "integer 9007199254740992 is outside the I-JSON safe range ±(2^53-1) and cannot be \
             canonicalized"
        );
        // A number that serde_json holds as f64 is a double already and is written per ES.
        assert_eq!(canon_str(&json!(9007199254740992.0)), "9007199254740992");
        assert_eq!(canon_str(&json!(2.0)), "2");
        // ...but its canonical text reads back as a u64, which the policy refuses.
        assert!(!is_canonical(b"9007199254740992"));
        assert!(is_canonical(b"9007199254740991"));
        // Beyond u64 serde_json reads a double again.
        assert!(is_canonical(b"295147905179352830000"));
        // "-0" is read as the double -0.0, written 0.
        assert_eq!(canon_str(&serde_json::from_str("-0").unwrap()), "0");
    }

    #[test]
    fn is_canonical_cases() {
        for yes in [
            &b"null"[..],
            b"true",
            b"0",
            b"-1",
            b"1.5",
            b"1e+21",
            b"\"\"",
            b"[]",
            b"{}",
            b"{\"a\":1,\"b\":[true,false,null]}",
            b"\"\\u001f\\n/\xc3\xa9\"",
            b"{\"\xf0\x9f\x98\x80\":1,\"\xee\x80\x80\":2}",
        ] {
            assert!(is_canonical(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b""[..],
            b" null",
            b"null\n",
            b"{\"b\":1,\"a\":2}",
            b"{\"a\": 1}",
            b"{\"a\":1,\"a\":1}",
            b"1.0",
            b"1E+21",
            b"1e21",
            b"-0",
            b"0.10",
            b"\"\\u001F\"",
            b"\"\\/\"",
            b"\"\\u00e9\"",
            b"\"\\ud800\"",
            b"\"\xff\"",
            b"{\"\xee\x80\x80\":2,\"\xf0\x9f\x98\x80\":1}",
            b"9007199254740993",
            b"[1,]",
            b"nul",
        ] {
            assert!(!is_canonical(no), "{}", String::from_utf8_lossy(no));
        }
    }

    /// Bit patterns of finite doubles that serde_json reads back as the same double: all but the
    /// integral ones with 2^53 <= |x| < 2^64, whose plain-integer text serde_json reads as u64/i64.
    fn reparseable_f64() -> impl Strategy<Value = f64> {
        any::<u64>().prop_map(f64::from_bits).prop_filter(
            "finite, and not an integer that serde_json reads back as i64/u64",
            |f| {
                f.is_finite()
                    && !(f.fract() == 0.0
                        && f.abs() > MAX_SAFE_INTEGER as f64
                        && f.abs() < 18_446_744_073_709_551_616.0)
            },
        )
    }

    fn safe_int() -> impl Strategy<Value = i64> {
        let m = MAX_SAFE_INTEGER as i64;
        prop_oneof![-m..=m, Just(m), Just(-m), -1000i64..1000]
    }

    fn any_string() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            // Dense in the characters that need escaping or sort differently.
            prop::collection::vec(
                prop_oneof![
                    (0u32..0x80).prop_map(|c| char::from_u32(c).unwrap()),
                    Just('\u{e000}'),
                    Just('\u{ffff}'),
                    Just('\u{10000}'),
                    Just('\u{1f600}'),
                    any::<char>(),
                ],
                0..8
            )
            .prop_map(|cs| cs.into_iter().collect()),
        ]
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            safe_int().prop_map(Value::from),
            reparseable_f64().prop_map(|f| Value::Number(Number::from_f64(f).unwrap())),
            any_string().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any_string(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn any_int_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any_string().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any_string(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn ascii_int_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            safe_int().prop_map(Value::from),
            any_string().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map("[ -~]{0,6}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn canonical_form_is_a_fixed_point(v in any_value()) {
            let once = canonicalize(&v).unwrap();
            let reparsed = parse(&once).unwrap();
            prop_assert_eq!(&canonicalize(&reparsed).unwrap(), &once);
            prop_assert!(is_canonical(&once));
        }

        /// With serde_json's own parser the property holds as long as there are no floats (its
        /// default float parsing is not correctly rounded; see `parse`).
        #[test]
        fn canonical_form_is_a_fixed_point_through_serde_json(v in ascii_int_value()) {
            let once = canonicalize(&v).unwrap();
            let reparsed: Value = serde_json::from_slice(&once).unwrap();
            prop_assert_eq!(&reparsed, &v);
            prop_assert_eq!(&canonicalize(&reparsed).unwrap(), &once);
        }

        #[test]
        fn parse_agrees_with_serde_json_without_floats(v in any_int_value()) {
            let compact = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(parse(&compact), Some(v.clone()));
            let pretty = serde_json::to_vec_pretty(&v).unwrap();
            prop_assert_eq!(parse(&pretty), Some(v.clone()));
        }

        #[test]
        fn parse_reads_back_every_value(v in any_value()) {
            // serde_json writes doubles in its own shortest round-trip form ("1.0", "1e-7");
            // parse must read them back to the very same double.
            let text = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(parse(&text), Some(v.clone()));
        }

        #[test]
        fn serde_json_matches_jcs_for_ascii_names_and_safe_integers(v in ascii_int_value()) {
            prop_assert_eq!(serde_json::to_vec(&v).unwrap(), canonicalize(&v).unwrap());
        }

        #[test]
        fn serde_json_escapes_strings_as_jcs(s in any_string()) {
            let mut out = Vec::new();
            write_string(&s, &mut out);
            prop_assert_eq!(serde_json::to_vec(&s).unwrap(), out);
        }

        #[test]
        fn f64_text_reads_back_exactly(f in reparseable_f64()) {
            let mut out = Vec::new();
            write_f64(f, &mut out).unwrap();
            let text = std::str::from_utf8(&out).unwrap();
            // Rust's own parser, which is correctly rounded.
            prop_assert_eq!(text.parse::<f64>().unwrap().to_bits(), (f + 0.0).to_bits());
        }

        #[test]
        fn is_canonical_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = is_canonical(&bytes);
        }
    }

    #[test]
    fn parse_numbers_exactly() {
        // RFC 8785 §3.2.2's sample number: the nearest double is 41b3de4355555555.
        let v = parse(b"333333333.33333329").unwrap();
        assert_eq!(v.as_f64().unwrap().to_bits(), 0x41b3de4355555555);
        assert_eq!(
            "333333333.33333329".parse::<f64>().unwrap().to_bits(),
            0x41b3de4355555555
        );
        assert_eq!(parse(b"18446744073709551615"), Some(json!(u64::MAX)));
        assert_eq!(parse(b"-9223372036854775808"), Some(json!(i64::MIN)));
        assert!(parse(b"18446744073709551616").unwrap().is_f64());
        assert!(parse(b"-9223372036854775809").unwrap().is_f64());
        assert!(parse(b"1.0").unwrap().is_f64());
        assert!(parse(b"1e0").unwrap().is_f64());
        assert_eq!(parse(b"1e-400").unwrap().as_f64(), Some(0.0));
        for bad in [
            &b"1e400"[..],
            b"-1e400",
            b"01",
            b"-",
            b"+1",
            b"1.",
            b".5",
            b"1e",
            b"1e+",
            b"-a",
            b"0x10",
            b"NaN",
            b"Infinity",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn parse_strings_and_structure() {
        assert_eq!(
            parse(br#" { "a" : [ 1 , "x\u00e9\ud83d\ude00\/\b\f\n\r\t\"\\" ] } "#),
            Some(json!({"a": [1, "x\u{e9}\u{1f600}/\u{8}\u{c}\n\r\t\"\\"]}))
        );
        for bad in [
            &b"\"\\ud800\""[..],
            b"\"\\udc00\"",
            b"\"\\ud800\\u0041\"",
            b"\"\\ud800x\"",
            b"\"\\u12\"",
            b"\"\\u12g4\"",
            b"\"\\x\"",
            b"\"\x01\"",
            b"\"\xc3\"",
            b"\"abc",
            b"{\"a\":1,\"a\":2}",
            b"{\"a\" 1}",
            b"{a:1}",
            b"{\"a\":1,}",
            b"[1 2]",
            b"[",
            b"]",
            b"nul",
            b"truex",
            b"1 2",
            b"",
            b"   ",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let deep_ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(deep_ok.as_bytes()).is_some());
        let too_deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(parse(too_deep.as_bytes()), None);
        // serde_json's limit is the same.
        assert!(serde_json::from_str::<Value>(&deep_ok).is_ok());
        assert!(serde_json::from_str::<Value>(&too_deep).is_err());
    }

    /// Every character U+0000..U+00FF (and a few beyond) escapes the same in serde_json and JCS.
    #[test]
    fn serde_json_escaping_is_jcs_exhaustive_low_range() {
        for c in (0u32..0x800).filter_map(char::from_u32) {
            let s = format!("a{c}b");
            let mut out = Vec::new();
            write_string(&s, &mut out);
            assert_eq!(
                serde_json::to_vec(&s).unwrap(),
                out,
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    /// A `#[derive(Serialize)]` struct with fields declared in ASCII order serializes canonically.
    #[test]
    fn typed_struct_with_ordered_fields_is_canonical() {
        #[derive(serde::Serialize)]
        struct Inner {
            id: u64,
            note: Option<String>,
        }
        #[derive(serde::Serialize)]
        struct Entry {
            actor: String,
            inner: Inner,
            seq: i64,
            tags: Vec<String>,
        }
        let entry = Entry {
            actor: "ali\u{e9}\n\"ce\"\u{1}".into(),
            inner: Inner { id: 7, note: None },
            seq: -42,
            tags: vec!["x".into(), "\u{1f600}".into()],
        };
        let bytes = serde_json::to_vec(&entry).unwrap();
        assert!(is_canonical(&bytes));
        let value = serde_json::to_value(&entry).unwrap();
        assert_eq!(canonicalize(&value).unwrap(), bytes);
    }
}
