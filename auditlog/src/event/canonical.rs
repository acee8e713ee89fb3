//! The ingest fast path: an ingest line whose event is already canonical, checked in one pass.
//!
//! [`IngestLine::parse`](super::IngestLine::parse) builds the typed event, validates it and
//! serializes it again to get its RFC 8785 form: about 1.8 µs per event, most of the sealer's
//! work (`docs/benchmarks.md`). The audit filter already writes each event in that form
//! (`filter/src/json_line.rs`). [`check`] walks the line once against the event schema and,
//! when the event's bytes are exactly what the slow path would produce, hands them back as
//! they are: no allocation, no re-serialization.
//!
//! It is a pure accelerator. It answers "this line is valid and its event is canonical, here
//! are its parts", or `None`, "not sure": anything unusual (whitespace, an escape where none
//! is needed, a member out of order, an unknown field, a number that is not a plain
//! integer, a string longer than the limit before unescaping, a `kind`) is left to the slow
//! path, which then accepts it (re-serialized) or refuses it with its precise error. A
//! property test holds the two paths equal: whatever [`check`] accepts, the slow path accepts
//! with the same source and byte-identical event.
//!
//! What "canonical" means here (RFC 8785 for this schema, which has no floats):
//! - no whitespace; members in the order of their names (all ASCII, so byte order);
//! - strings escape `"` and `\` and U+0000..U+001F only, the five with a short form
//!   (`\b \t \n \f \r`) by it and the others as `\u00hh` in lowercase hex; everything else,
//!   `/` and non-ASCII included, as is, in valid UTF-8;
//! - integers as plain decimal digits without leading zeros;
//! - timestamps in their one written form (`2026-11-28T07:00:00.123456789Z`).

use super::{Limits, MAX_SAFE_INTEGER, is_token_byte};
use crate::jcs::find_special;
use crate::timestamp::Timestamp;

/// The parts of an ingest line that passed [`check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CanonicalLine<'a> {
    pub source_id: &'a str,
    pub seq: u64,
    pub dropped_before: Option<u64>,
    /// The event object, byte for byte its canonical form.
    pub event: &'a [u8],
}

/// The line's parts if it is a valid ingest line whose event is already canonical; `None`
/// when the slow path must decide.
pub fn check<'a>(line: &'a [u8], limits: &Limits) -> Option<CanonicalLine<'a>> {
    let mut c = Cursor { b: line, i: 0 };
    c.eat(b'{')?;
    let (mut source, mut event) = (None, None);
    loop {
        match c.key()? {
            b"source" if source.is_none() => source = Some(c.source(limits)?),
            b"event" if event.is_none() => {
                let start = c.i;
                c.object(EVENT, limits)?;
                event = Some(&line[start..c.i]);
            }
            _ => return None,
        }
        if c.eat(b'}').is_some() {
            break;
        }
        c.eat(b',')?;
    }
    if c.i != line.len() {
        return None;
    }
    let (source_id, seq, dropped_before) = source?;
    Some(CanonicalLine {
        source_id,
        seq,
        dropped_before,
        event: event?,
    })
}

/// What a member's value must be.
#[derive(Clone, Copy)]
enum Value {
    /// A string field, at most `Limits::max_field_bytes` long.
    Text,
    /// An integer from 0 to the given bound.
    Uint(u64),
    /// An HTTP token of 1 to 32 bytes.
    Method,
    /// 64 lowercase hex digits.
    Sha256,
    /// A timestamp in its written form.
    Time,
    /// `mtls`, `jwt` or `header`.
    IdentitySource,
    /// An array of up to 64 text fields.
    TextList,
    Object(&'static [Field]),
}

/// A member of an object in the schema. Members are listed in canonical (name) order.
struct Field {
    name: &'static [u8],
    required: bool,
    value: Value,
}

const fn req(name: &'static str, value: Value) -> Field {
    Field {
        name: name.as_bytes(),
        required: true,
        value,
    }
}

const fn opt(name: &'static str, value: Value) -> Field {
    Field {
        name: name.as_bytes(),
        required: false,
        value,
    }
}

/// [`super::HttpEvent`], member by member, with the bounds `HttpEvent::validate` applies.
const EVENT: &[Field] = &[
    opt(
        "client",
        Value::Object(&[req("address", Value::Text), opt("port", Value::Uint(65535))]),
    ),
    opt("duration_ns", Value::Uint(MAX_SAFE_INTEGER)),
    opt(
        "enduser",
        Value::Object(&[req("id", Value::Text), req("source", Value::IdentitySource)]),
    ),
    opt(
        "envoy",
        Value::Object(&[
            opt("response_code_details", Value::Text),
            opt("response_flags", Value::Text),
            opt("route", Value::Text),
            opt("upstream_cluster", Value::Text),
            opt("upstream_host", Value::Text),
        ]),
    ),
    req(
        "http",
        Value::Object(&[
            req(
                "request",
                Value::Object(&[
                    opt("body", Value::Object(BODY)),
                    req("method", Value::Method),
                ]),
            ),
            opt(
                "response",
                Value::Object(&[
                    opt("body", Value::Object(BODY)),
                    req("status_code", Value::Uint(999)),
                ]),
            ),
        ]),
    ),
    opt(
        "network",
        Value::Object(&[req(
            "protocol",
            Value::Object(&[req("version", Value::Text)]),
        )]),
    ),
    opt("request_id", Value::Text),
    opt("server", Value::Object(&[req("address", Value::Text)])),
    req("start_time", Value::Time),
    opt("unavailable", Value::TextList),
    req(
        "url",
        Value::Object(&[
            req("path", Value::Text),
            opt("query", Value::Text),
            opt("scheme", Value::Text),
        ]),
    ),
    opt("user_agent", Value::Object(&[req("original", Value::Text)])),
];

const BODY: &[Field] = &[
    opt("sha256", Value::Sha256),
    opt("size", Value::Uint(MAX_SAFE_INTEGER)),
];

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    /// A member name followed by `:`. Names of this schema need no escapes.
    fn key(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        let len = self.b[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        self.i += len;
        self.eat(b'"')?;
        self.eat(b':')?;
        Some(&self.b[start..start + len])
    }

    /// A canonical string: its raw text between the quotes. Valid UTF-8, escapes only where
    /// RFC 8785 writes them, in the form it writes them.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            self.i = find_special(self.b, self.i)?;
            match self.b[self.i] {
                b'"' => break,
                b'\\' => self.escape()?,
                _ => return None,
            }
        }
        let raw = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        self.i += 1;
        Some(raw)
    }

    /// One escape in the form RFC 8785 writes it.
    fn escape(&mut self) -> Option<()> {
        let next = *self.b.get(self.i + 1)?;
        match next {
            b'"' | b'\\' | b'b' | b't' | b'n' | b'f' | b'r' => self.i += 2,
            b'u' => {
                // `\u00hh` only for the control characters without a short form.
                let hex = self.b.get(self.i + 2..self.i + 6)?;
                let lower_hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
                if &hex[..2] != b"00" || !hex[2..].iter().all(|&c| lower_hex(c)) {
                    return None;
                }
                let code = u8::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()?;
                if code >= 0x20 || matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                    return None;
                }
                self.i += 6;
            }
            _ => return None,
        }
        Some(())
    }

    /// A string that needed no escape at all.
    fn plain_string(&mut self) -> Option<&'a str> {
        let s = self.string()?;
        (!s.contains('\\')).then_some(s)
    }

    /// A canonical non-negative integer no larger than `max`.
    fn uint(&mut self, max: u64) -> Option<u64> {
        let start = self.i;
        let len = self.b[start..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(self.b.len() - start);
        let digits = &self.b[start..start + len];
        if digits.is_empty() || digits.len() > 16 || (digits[0] == b'0' && digits.len() > 1) {
            return None;
        }
        let n = digits
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        self.i += len;
        (n <= max).then_some(n)
    }

    fn value(&mut self, value: Value, limits: &Limits) -> Option<()> {
        match value {
            // The raw text is never shorter than the string it stands for; a raw text over the
            // limit may still be within it, which the slow path decides.
            Value::Text => (self.string()?.len() <= limits.max_field_bytes).then_some(()),
            Value::Uint(max) => self.uint(max).map(drop),
            Value::Method => {
                let m = self.plain_string()?;
                (!m.is_empty() && m.len() <= 32 && m.bytes().all(is_token_byte)).then_some(())
            }
            Value::Sha256 => {
                let h = self.plain_string()?;
                let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
                (h.len() == 64 && h.bytes().all(hex)).then_some(())
            }
            Value::Time => {
                let t = self.plain_string()?;
                let parsed = Timestamp::parse(t).ok()?;
                (parsed.rfc3339() == t.as_bytes()).then_some(())
            }
            Value::IdentitySource => {
                matches!(self.plain_string()?, "mtls" | "jwt" | "header").then_some(())
            }
            Value::TextList => {
                self.eat(b'[')?;
                if self.eat(b']').is_some() {
                    return Some(());
                }
                for _ in 0..64 {
                    self.value(Value::Text, limits)?;
                    if self.eat(b']').is_some() {
                        return Some(());
                    }
                    self.eat(b',')?;
                }
                None
            }
            Value::Object(fields) => self.object(fields, limits),
        }
    }

    /// An object whose members follow `fields` in order, every required one present.
    fn object(&mut self, fields: &[Field], limits: &Limits) -> Option<()> {
        self.eat(b'{')?;
        let mut next = 0;
        if self.eat(b'}').is_none() {
            loop {
                let name = self.key()?;
                let at = next + fields[next..].iter().position(|f| f.name == name)?;
                if fields[next..at].iter().any(|f| f.required) {
                    return None;
                }
                self.value(fields[at].value, limits)?;
                next = at + 1;
                if self.eat(b'}').is_some() {
                    break;
                }
                self.eat(b',')?;
            }
        }
        (!fields[next..].iter().any(|f| f.required)).then_some(())
    }

    /// The `source` member's value: `{"dropped_before":N,"id":"...","seq":N}`, `dropped_before`
    /// optional, members in any order, each checked as `validate_source` does.
    fn source(&mut self, limits: &Limits) -> Option<(&'a str, u64, Option<u64>)> {
        self.eat(b'{')?;
        let (mut id, mut seq, mut dropped) = (None, None, None);
        loop {
            match self.key()? {
                b"id" if id.is_none() => id = Some(self.plain_string()?),
                b"seq" if seq.is_none() => seq = Some(self.uint(MAX_SAFE_INTEGER)?),
                b"dropped_before" if dropped.is_none() => {
                    dropped = Some(self.uint(MAX_SAFE_INTEGER)?)
                }
                _ => return None,
            }
            if self.eat(b'}').is_some() {
                break;
            }
            self.eat(b',')?;
        }
        let (id, seq) = (id?, seq?);
        let id_ok = !id.is_empty()
            && id.len() <= limits.max_source_bytes
            && id.bytes().all(|b| b.is_ascii_graphic());
        let dropped_ok = dropped.is_none_or(|n| n > 0 && n < seq);
        (id_ok && seq > 0 && dropped_ok).then_some((id, seq, dropped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::IngestLine;

    const LINE: &str = r#"{"source":{"id":"gw/w0/a","seq":7},"event":{"client":{"address":"10.0.0.7","port":51234},"duration_ns":1200,"envoy":{"response_flags":"-","route":"r1"},"http":{"request":{"body":{"size":0},"method":"GET"},"response":{"body":{"size":3},"status_code":200}},"network":{"protocol":{"version":"1.1"}},"request_id":"abc","server":{"address":"example.com"},"start_time":"2026-11-28T07:00:00.000000000Z","url":{"path":"/a/b","query":"x=1"},"user_agent":{"original":"curl/8 \"q\" \\ \u0001 é"}}}"#;

    fn slow(line: &[u8]) -> Option<(String, u64, Option<u64>, Vec<u8>)> {
        let parsed = IngestLine::parse(line, &Limits::default()).ok()?;
        Some((
            parsed.source.id,
            parsed.source.seq,
            parsed.source.dropped_before,
            parsed.event.canonical_json(),
        ))
    }

    fn fast(line: &[u8]) -> Option<(String, u64, Option<u64>, Vec<u8>)> {
        let c = check(line, &Limits::default())?;
        Some((
            c.source_id.to_owned(),
            c.seq,
            c.dropped_before,
            c.event.to_vec(),
        ))
    }

    #[test]
    fn a_canonical_line_passes_as_it_is() {
        let c = check(LINE.as_bytes(), &Limits::default()).expect("canonical");
        assert_eq!((c.source_id, c.seq, c.dropped_before), ("gw/w0/a", 7, None));
        assert_eq!(fast(LINE.as_bytes()), slow(LINE.as_bytes()));
    }

    #[test]
    fn anything_not_exactly_canonical_goes_to_the_slow_path() {
        let cases = [
            // whitespace, an unneeded escape, members out of order, an unknown member
            LINE.replacen("\"seq\":7", "\"seq\": 7", 1),
            LINE.replace("/a/b", "\\/a\\/b"),
            LINE.replace("\"duration_ns\":1200,", "")
                .replace("\"http\"", "\"duration_ns\":1200,\"http\""),
            LINE.replace("\"request_id\":\"abc\"", "\"request_id\":\"abc\",\"x\":1"),
            // a number with a leading zero, a fraction, a status out of range
            LINE.replace("\"size\":3", "\"size\":03"),
            LINE.replace("\"size\":3", "\"size\":3.0"),
            LINE.replace("200", "1000"),
            // a timestamp in another form of the same instant
            LINE.replace(".000000000Z", "Z"),
            // an escape in uppercase hex, or for a character that has a short form
            LINE.replace("\\u0001", "\\u001F"),
            LINE.replace("\\u0001", "\\u000a"),
            // a kind, which only the slow path handles
            LINE.replacen('{', "{\"kind\":\"http\",", 1),
            // a missing required member, a duplicate
            LINE.replace("\"method\":\"GET\"", ""),
            LINE.replace("\"seq\":7", "\"seq\":7,\"seq\":8"),
            // dropped_before must be below seq
            LINE.replace("\"seq\":7", "\"dropped_before\":7,\"seq\":7"),
            // trailing bytes
            format!("{LINE} "),
        ];
        for case in cases {
            assert_eq!(fast(case.as_bytes()), None, "{case}");
        }
    }

    #[test]
    fn dropped_before_and_member_order_of_the_source() {
        let line = LINE.replace(
            "{\"id\":\"gw/w0/a\",\"seq\":7}",
            "{\"seq\":7,\"dropped_before\":2,\"id\":\"gw/w0/a\"}",
        );
        let c = check(line.as_bytes(), &Limits::default()).expect("accepted");
        assert_eq!(c.dropped_before, Some(2));
        assert_eq!(fast(line.as_bytes()), slow(line.as_bytes()));
    }

    #[test]
    fn every_single_byte_change_is_either_refused_or_agrees_with_the_slow_path() {
        let line = LINE.as_bytes();
        for i in 0..line.len() {
            for b in [
                b'"', b'\\', b'0', b'9', b'a', b'{', b'}', b',', b' ', 0x01, 0xc3,
            ] {
                let mut changed = line.to_vec();
                changed[i] = b;
                if let Some(f) = fast(&changed) {
                    assert_eq!(Some(f), slow(&changed), "byte {i} set to {b:#x}");
                }
            }
        }
    }
}
