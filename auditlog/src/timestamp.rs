//! RFC 3339 UTC timestamps with nanosecond precision.
//!
//! A [`Timestamp`] is a count of nanoseconds since the Unix epoch (1970-01-01T00:00:00Z) in an
//! `i64`, which spans 1677-09-21T00:12:43.145224192Z ..= 2262-04-11T23:47:16.854775807Z. Leap
//! seconds are not counted (POSIX time): every day has 86 400 seconds.
//!
//! Its one written form ([`Display`](std::fmt::Display), [`serde::Serialize`]) is the RFC 3339
//! `date-time` (RFC 3339 §5.6) in UTC with exactly nine fraction digits and uppercase `T` and `Z`:
//! `2023-11-14T22:13:20.123456789Z`. Being fixed-width, these strings sort as the instants do.
//!
//! [`Timestamp::parse`] accepts any RFC 3339 `date-time`
//! `YYYY-MM-DDTHH:MM:SS[.f](Z|+HH:MM|-HH:MM)`, with 1 to 9 fraction digits, `T`/`t` and `Z`/`z`,
//! and converts a numeric offset to UTC (`-00:00`, "offset unknown", is taken as UTC). It refuses
//! dates that do not exist (February 30, month 13), the leap second `60` (which POSIX time cannot
//! represent), more than 9 fraction digits (below the nanosecond), and instants outside the `i64`
//! range. The calendar is the proleptic Gregorian one, converted with Howard Hinnant's
//! `days_from_civil` / `civil_from_days` algorithms.
//!
//! # Why not a date-time library
//!
//! `jiff` and `time` parse and format RFC 3339, and were tried (2026-12-04), but neither gives
//! the log's rules, which decide what an ingest event may contain and what is hashed:
//!
//! - `time` 0.3 (`Rfc3339`) accepts a space for `T` and silently cuts a fraction of more than
//!   9 digits to 9: an event would be sealed with a time other than the one it was sent with;
//! - `jiff` 0.2 accepts far more than RFC 3339 (`20261128T070000Z`, `2026-11-28T07:00Z`,
//!   `[Europe/Paris]` annotations) and turns the leap second `60` into `59`;
//! - the audit filter writes every event's `start_time` inside Envoy's V8, where core
//!   formatting costs: [`Timestamp::rfc3339`] compiles to 826 bytes of `.wasm` and formats
//!   without `core::fmt`; formatting with `jiff` (`{:.9}`) made the same module 31,501 bytes.
//!
//! So the one written form and the strict reading of RFC 3339 stay here, with their tests.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// An instant, as nanoseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a string is not an RFC 3339 timestamp that a [`Timestamp`] can hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimestampError {
    /// The string does not have the RFC 3339 `date-time` syntax, or a field is out of range.
    #[error("invalid RFC 3339 timestamp {input:?}: {reason}")]
    Invalid {
        /// The rejected input (its first 64 characters, then `…`, if longer).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A valid timestamp outside 1677-09-21T00:12:43.145224192Z ..= 2262-04-11T23:47:16.854775807Z.
    #[error(
        "invalid RFC 3339 timestamp {input:?}: outside the representable range \
         1677-09-21T00:12:43.145224192Z ..= 2262-04-11T23:47:16.854775807Z"
    )]
    OutOfRange {
        /// The rejected input (its first 64 characters, then `…`, if longer).
        input: String,
    },
}

impl Timestamp {
    /// The earliest representable instant, 1677-09-21T00:12:43.145224192Z.
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    /// The latest representable instant, 2262-04-11T23:47:16.854775807Z.
    pub const MAX: Timestamp = Timestamp(i64::MAX);
    /// The Unix epoch, 1970-01-01T00:00:00.000000000Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// The instant `n` nanoseconds after (or, negative, before) the Unix epoch.
    pub const fn from_unix_nanos(n: i64) -> Self {
        Timestamp(n)
    }

    /// Nanoseconds since the Unix epoch (negative before it).
    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// The current time from [`SystemTime::now`], saturated to the representable range.
    pub fn now() -> Self {
        let nanos: i128 = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
            Err(before) => i128::try_from(before.duration().as_nanos()).map_or(i128::MIN, |n| -n),
        };
        Timestamp(clamp_i64(nanos))
    }

    /// Parses an RFC 3339 `date-time`, converting its offset to UTC.
    ///
    /// # Errors
    ///
    /// [`TimestampError::Invalid`] for bad syntax, a date that does not exist, a field out of
    /// range (including the leap second `60`) or more than 9 fraction digits;
    /// [`TimestampError::OutOfRange`] for an instant that an `i64` of nanoseconds cannot hold.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        Timestamp::parse_bytes(s.as_bytes())
    }

    /// [`Timestamp::parse`] of text given as bytes (the verifier reads every entry's
    /// `sealed_at` from the record's bytes); bytes that are not UTF-8 are invalid.
    ///
    /// # Errors
    /// As [`Timestamp::parse`].
    pub fn parse_bytes(b: &[u8]) -> Result<Self, TimestampError> {
        let shown = || shorten(&String::from_utf8_lossy(b));
        let invalid = |reason: String| TimestampError::Invalid {
            input: shown(),
            reason,
        };
        let p = Parts::parse(b).map_err(|r| invalid(r.to_owned()))?;

        if !(1..=12).contains(&p.month) {
            return Err(invalid(format!("month {:02} is not 01..=12", p.month)));
        }
        let month_days = days_in_month(p.year, p.month);
        if p.day < 1 || p.day > month_days {
            return Err(invalid(format!(
                "day {:02} does not exist in {:04}-{:02}, which has {month_days} days",
                p.day, p.year, p.month
            )));
        }
        if p.hour > 23 {
            return Err(invalid(format!("hour {:02} is not 00..=23", p.hour)));
        }
        if p.minute > 59 {
            return Err(invalid(format!("minute {:02} is not 00..=59", p.minute)));
        }
        if p.second == 60 {
            return Err(invalid(
                "leap second 60 cannot be represented in POSIX time".to_owned(),
            ));
        }
        if p.second > 59 {
            return Err(invalid(format!("second {:02} is not 00..=59", p.second)));
        }
        if p.offset_hour > 23 {
            return Err(invalid(format!(
                "offset hour {:02} is not 00..=23",
                p.offset_hour
            )));
        }
        if p.offset_minute > 59 {
            return Err(invalid(format!(
                "offset minute {:02} is not 00..=59",
                p.offset_minute
            )));
        }

        let days = days_from_civil(i64::from(p.year), p.month, p.day);
        let local_seconds = days * SECONDS_PER_DAY
            + i64::from(p.hour) * 3600
            + i64::from(p.minute) * 60
            + i64::from(p.second);
        let offset_seconds = i64::from(p.offset_sign)
            * (i64::from(p.offset_hour) * 3600 + i64::from(p.offset_minute) * 60);
        // local time = UTC + offset
        let utc_seconds = local_seconds - offset_seconds;
        let nanos = i128::from(utc_seconds) * i128::from(NANOS_PER_SECOND) + i128::from(p.nanos);
        i64::try_from(nanos)
            .map(Timestamp)
            .map_err(|_| TimestampError::OutOfRange { input: shown() })
    }
}

impl Timestamp {
    /// The RFC 3339 text [`Display`](fmt::Display) writes, as bytes: every `i64` falls in the
    /// years 1677 to 2262, so it is always 30 bytes. For writers that cannot afford
    /// `core::fmt` (the audit filter, inside Envoy's V8).
    pub fn rfc3339(&self) -> [u8; 30] {
        let seconds = self.0.div_euclid(NANOS_PER_SECOND);
        let nanos = self.0.rem_euclid(NANOS_PER_SECOND);
        let days = seconds.div_euclid(SECONDS_PER_DAY);
        let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let mut out = *b"0000-00-00T00:00:00.000000000Z";
        let mut digits = |at: usize, width: usize, mut value: i64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        digits(0, 4, year);
        digits(5, 2, i64::from(month));
        digits(8, 2, i64::from(day));
        digits(11, 2, second_of_day / 3600);
        digits(14, 2, second_of_day / 60 % 60);
        digits(17, 2, second_of_day % 60);
        digits(20, 9, nanos);
        out
    }
}

impl fmt::Display for Timestamp {
    /// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, always 9 fraction digits, uppercase `T` and `Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.rfc3339();
        f.write_str(std::str::from_utf8(&text).expect("digits and ASCII punctuation"))
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an RFC 3339 timestamp string \"YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)\", \
                     such as \"2023-11-14T22:13:20.123456789Z\"",
                )
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse(v).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

/// The fields of a syntactically valid RFC 3339 `date-time`, not yet range-checked.
#[derive(Debug, PartialEq, Eq)]
struct Parts {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    /// +1 or -1 (also +1 for `Z`).
    offset_sign: i8,
    offset_hour: u32,
    offset_minute: u32,
}

impl Parts {
    /// The form the sealer writes, `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, read at fixed places
    /// (every entry's `sealed_at` is in it, and verification reads them all); `None` for any
    /// other text, which [`Parts::parse`] then reads in full.
    fn sealed_form(b: &[u8]) -> Option<Parts> {
        /// The form, `d` standing for a digit, padded to four words.
        const FORM: &[u8; 32] = b"dddd-dd-ddTdd:dd:dd.dddddddddZ\0\0";
        /// Word `w` of the form: its bytes where `digit` is false, 0xff for each `d` where it
        /// is true (and 0 for other bytes).
        const fn form_word(w: usize, digit: bool) -> u64 {
            let mut word = 0u64;
            let mut i = 0;
            while i < 8 {
                let f = FORM[8 * w + i];
                let byte = match (f == b'd', digit) {
                    (true, true) => 0xff,
                    (false, false) => f,
                    _ => 0,
                };
                word |= (byte as u64) << (8 * i);
                i += 1;
            }
            word
        }
        const SEPARATORS: [u64; 4] = [
            form_word(0, false),
            form_word(1, false),
            form_word(2, false),
            form_word(3, false),
        ];
        const DIGITS: [u64; 4] = [
            form_word(0, true),
            form_word(1, true),
            form_word(2, true),
            form_word(3, true),
        ];
        const HIGH_NIBBLES: u64 = 0xf0f0_f0f0_f0f0_f0f0;
        const LOW_NIBBLES: u64 = 0x0f0f_0f0f_0f0f_0f0f;
        if b.len() != 30 {
            return None;
        }
        let mut padded = [0u8; 32];
        padded[..30].copy_from_slice(b);
        for (w, bytes) in padded.chunks_exact(8).enumerate() {
            let x = u64::from_le_bytes(bytes.try_into().expect("eight bytes"));
            // Every byte not a digit is the form's; every digit is 0x30 to 0x39 (a low
            // nibble plus 6 stays below 0x10 exactly when it is at most 9).
            let separators_wrong = (x ^ SEPARATORS[w]) & !DIGITS[w];
            let not_digit_high = ((x & HIGH_NIBBLES) ^ 0x3030_3030_3030_3030) & DIGITS[w];
            let not_digit_low =
                ((x & LOW_NIBBLES) + 0x0606_0606_0606_0606) & 0x1010_1010_1010_1010 & DIGITS[w];
            if separators_wrong | not_digit_high | not_digit_low != 0 {
                return None;
            }
        }
        let number = |range: std::ops::Range<usize>| {
            b[range]
                .iter()
                .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'))
        };
        Some(Parts {
            year: number(0..4),
            month: number(5..7),
            day: number(8..10),
            hour: number(11..13),
            minute: number(14..16),
            second: number(17..19),
            nanos: number(20..29),
            offset_sign: 1,
            offset_hour: 0,
            offset_minute: 0,
        })
    }

    fn parse(b: &[u8]) -> Result<Parts, &'static str> {
        match Parts::sealed_form(b) {
            Some(parts) => Ok(parts),
            None => Parts::parse_any(b),
        }
    }

    /// Any RFC 3339 form this type accepts.
    fn parse_any(b: &[u8]) -> Result<Parts, &'static str> {
        const EXPECTED: &str = "expected \"YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)\"";
        let mut r = Reader { b, at: 0 };
        let year = r.digits(4).ok_or(EXPECTED)?;
        r.literal(b"-").ok_or(EXPECTED)?;
        let month = r.digits(2).ok_or(EXPECTED)?;
        r.literal(b"-").ok_or(EXPECTED)?;
        let day = r.digits(2).ok_or(EXPECTED)?;
        r.literal(b"Tt")
            .ok_or("expected 'T' between the date and the time")?;
        let hour = r.digits(2).ok_or(EXPECTED)?;
        r.literal(b":").ok_or(EXPECTED)?;
        let minute = r.digits(2).ok_or(EXPECTED)?;
        r.literal(b":").ok_or(EXPECTED)?;
        let second = r.digits(2).ok_or(EXPECTED)?;

        let mut nanos = 0;
        if r.literal(b".").is_some() {
            let start = r.at;
            while r.at < b.len() && b[r.at].is_ascii_digit() {
                r.at += 1;
            }
            let count = r.at - start;
            if count == 0 {
                return Err("expected at least one fraction digit after '.'");
            }
            if count > 9 {
                return Err("more than 9 fraction digits (finer than a nanosecond)");
            }
            for &d in &b[start..r.at] {
                nanos = nanos * 10 + u32::from(d - b'0');
            }
            nanos *= 10u32.pow(9 - count as u32);
        }

        let (offset_sign, offset_hour, offset_minute) = match r.next() {
            Some(b'Z' | b'z') => (1, 0, 0),
            Some(sign @ (b'+' | b'-')) => {
                let h = r.digits(2).ok_or("expected a time offset \"±HH:MM\"")?;
                r.literal(b":").ok_or("expected a time offset \"±HH:MM\"")?;
                let m = r.digits(2).ok_or("expected a time offset \"±HH:MM\"")?;
                (if sign == b'-' { -1 } else { 1 }, h, m)
            }
            _ => return Err("expected a time offset 'Z' or \"±HH:MM\""),
        };
        if r.at != b.len() {
            return Err("unexpected characters after the time offset");
        }
        Ok(Parts {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
            offset_sign,
            offset_hour,
            offset_minute,
        })
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.at)?;
        self.at += 1;
        Some(c)
    }

    /// Consumes one byte if it is one of `allowed`.
    fn literal(&mut self, allowed: &[u8]) -> Option<()> {
        let c = *self.b.get(self.at)?;
        if allowed.contains(&c) {
            self.at += 1;
            Some(())
        } else {
            None
        }
    }

    /// Consumes exactly `n` ASCII digits.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let digits = self.b.get(self.at..self.at + n)?;
        let mut v = 0u32;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(d - b'0');
        }
        self.at += n;
        Some(v)
    }
}

fn clamp_i64(n: i128) -> i64 {
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

/// The input as quoted in an error: at most 64 characters.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

fn is_leap_year(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // [0, 399]
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a count of days since 1970-01-01 (Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both fit in u32 by the bounds above.
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(n: i64) -> String {
        Timestamp::from_unix_nanos(n).to_string()
    }

    fn parse(s: &str) -> i64 {
        Timestamp::parse(s)
            .unwrap_or_else(|e| panic!("{e}"))
            .unix_nanos()
    }

    /// Expected values computed independently with Python's `datetime` and `date -u`.
    #[test]
    fn known_values_format() {
        for (n, s) in [
            (0, "1970-01-01T00:00:00.000000000Z"),
            (1, "1970-01-01T00:00:00.000000001Z"),
            (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123456789Z"),
            (-1, "1969-12-31T23:59:59.999999999Z"),
            (-1_000_000_000, "1969-12-31T23:59:59.000000000Z"),
            (-86_400_000_000_001, "1969-12-30T23:59:59.999999999Z"),
            (951_782_400_000_000_000, "2000-02-29T00:00:00.000000000Z"),
            (-2_203_891_200_000_000_000, "1900-03-01T00:00:00.000000000Z"),
            (1_709_208_000_000_000_000, "2024-02-29T12:00:00.000000000Z"),
            (946_684_799_000_000_000, "1999-12-31T23:59:59.000000000Z"),
            (i64::MIN, "1677-09-21T00:12:43.145224192Z"),
            (i64::MAX, "2262-04-11T23:47:16.854775807Z"),
        ] {
            assert_eq!(ts(n), s);
            assert_eq!(parse(s), n, "{s}");
        }
        assert_eq!(Timestamp::MIN.to_string(), "1677-09-21T00:12:43.145224192Z");
        assert_eq!(Timestamp::MAX.to_string(), "2262-04-11T23:47:16.854775807Z");
        assert_eq!(Timestamp::UNIX_EPOCH.unix_nanos(), 0);
    }

    #[test]
    fn offsets_fractions_and_case() {
        for (s, n) in [
            ("2023-11-15T00:13:20+02:00", 1_700_000_000_000_000_000),
            ("2023-11-14T17:13:20-05:00", 1_700_000_000_000_000_000),
            ("2023-11-14T22:13:20Z", 1_700_000_000_000_000_000),
            ("2023-11-14t22:13:20z", 1_700_000_000_000_000_000),
            ("2023-11-14T22:13:20+00:00", 1_700_000_000_000_000_000),
            ("2023-11-14T22:13:20-00:00", 1_700_000_000_000_000_000),
            ("2000-01-01T05:30:00+05:30", 946_684_800_000_000_000),
            ("1969-12-31T19:00:00-05:00", 0),
            ("2023-11-14T22:13:20.1Z", 1_700_000_000_100_000_000),
            ("2023-11-14T22:13:20.123Z", 1_700_000_000_123_000_000),
            ("2023-11-14T22:13:20.000000001Z", 1_700_000_000_000_000_001),
            (
                "2023-11-15T00:13:20.123456789+02:00",
                1_700_000_000_123_456_789,
            ),
            ("1969-12-31T23:59:59.5Z", -500_000_000),
            ("1969-12-31T23:59:59.999999999-00:00", -1),
            ("2023-11-14T22:13:20.123456789Z", 1_700_000_000_123_456_789),
            // Offsets that move the edge instants back into range.
            ("2262-04-12T01:47:16+02:00", 9_223_372_036_000_000_000),
            ("1677-09-20T23:12:44-01:00", -9_223_372_036_000_000_000),
        ] {
            assert_eq!(parse(s), n, "{s}");
        }
    }

    #[test]
    fn leap_years() {
        assert_eq!(parse("2000-02-29T00:00:00Z"), 951_782_400_000_000_000);
        assert_eq!(parse("2024-02-29T12:00:00Z"), 1_709_208_000_000_000_000);
        for s in [
            "1900-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-02-30T00:00:00Z",
        ] {
            assert!(
                matches!(Timestamp::parse(s), Err(TimestampError::Invalid { .. })),
                "{s}"
            );
        }
        assert_eq!(
            Timestamp::parse("1900-02-29T00:00:00Z")
                .unwrap_err()
                .to_string(),
            "invalid RFC 3339 timestamp \"1900-02-29T00:00:00Z\": day 29 does not exist in \
             1900-02, which has 28 days"
        );
        assert!(is_leap_year(2000) && is_leap_year(2024) && is_leap_year(1600));
        assert!(!is_leap_year(1900) && !is_leap_year(2100) && !is_leap_year(2023));
    }

    #[test]
    fn rejects() {
        for s in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-11-14 22:13:20Z",
            "2023-11-14T22:13Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20.1234567891Z",
            "2023-11-14T22:13:20,5Z",
            "2023-11-14T22:13:20+0200",
            "2023-11-14T22:13:20+02",
            "2023-11-14T22:13:20+2:00",
            "2023-11-14T22:13:20ZZ",
            "2023-11-14T22:13:20Z ",
            " 2023-11-14T22:13:20Z",
            "+2023-11-14T22:13:20Z",
            "23-11-14T22:13:20Z",
            "2023-1-14T22:13:20Z",
            "2023-11-14T22:13:20UTC",
            "２０２３-11-14T22:13:20Z",
            "2023-13-01T00:00:00Z",
            "2023-00-01T00:00:00Z",
            "2023-01-00T00:00:00Z",
            "2023-01-32T00:00:00Z",
            "2023-04-31T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T23:60:00Z",
            "2016-12-31T23:59:60Z",
            "2023-11-14T23:59:61Z",
            "2023-11-14T22:13:20+24:00",
            "2023-11-14T22:13:20+00:60",
        ] {
            assert!(
                matches!(Timestamp::parse(s), Err(TimestampError::Invalid { .. })),
                "{s:?} -> {:?}",
                Timestamp::parse(s)
            );
        }
        assert_eq!(
            Timestamp::parse("2016-12-31T23:59:60Z")
                .unwrap_err()
                .to_string(),
            "invalid RFC 3339 timestamp \"2016-12-31T23:59:60Z\": leap second 60 cannot be \
             represented in POSIX time"
        );
        assert_eq!(
            Timestamp::parse("2023-13-01T00:00:00Z")
                .unwrap_err()
                .to_string(),
            "invalid RFC 3339 timestamp \"2023-13-01T00:00:00Z\": month 13 is not 01..=12"
        );
    }

    #[test]
    fn out_of_range() {
        for s in [
            "2262-04-11T23:47:16.854775808Z",
            "1677-09-21T00:12:43.145224191Z",
            "2262-04-11T23:47:16.854775807-00:01",
            "9999-12-31T23:59:59.999999999Z",
            "0000-01-01T00:00:00Z",
            "1677-09-21T00:12:43.145224192+00:01",
        ] {
            assert_eq!(
                Timestamp::parse(s),
                Err(TimestampError::OutOfRange { input: s.into() }),
                "{s}"
            );
        }
        assert_eq!(parse("2262-04-11T23:47:16.854775807Z"), i64::MAX);
        assert_eq!(parse("1677-09-21T00:12:43.145224192Z"), i64::MIN);
        assert_eq!(parse("1677-09-20T23:12:43.145224192-01:00"), i64::MIN);
    }

    #[test]
    fn long_input_is_shortened_in_errors() {
        let long = "x".repeat(1000);
        let TimestampError::Invalid { input, .. } = Timestamp::parse(&long).unwrap_err() else {
            panic!("expected Invalid");
        };
        assert_eq!(input, format!("{}…", "x".repeat(64)));
    }

    #[test]
    fn calendar_algorithms() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(0, 3, 1), -719_468);
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
        // Every day over 0000..=9999 round-trips, and consecutive days are consecutive dates.
        let first = days_from_civil(0, 1, 1);
        let last = days_from_civil(9999, 12, 31);
        let mut prev = civil_from_days(first - 1);
        for d in first..=last {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
            assert!(dd >= 1 && dd <= days_in_month(y as u32, m));
            let next_of_prev = if prev.2 < days_in_month(prev.0.max(0) as u32, prev.1) {
                (prev.0, prev.1, prev.2 + 1)
            } else if prev.1 < 12 {
                (prev.0, prev.1 + 1, 1)
            } else {
                (prev.0 + 1, 1, 1)
            };
            if d > first {
                assert_eq!((y, m, dd), next_of_prev);
            }
            prev = (y, m, dd);
        }
    }

    #[test]
    fn serde() {
        let t = Timestamp::from_unix_nanos(1_700_000_000_123_456_789);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2023-11-14T22:13:20.123456789Z\"");
        let back: Timestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        let offset: Timestamp =
            serde_json::from_str("\"2023-11-15T00:13:20.123456789+02:00\"").unwrap();
        assert_eq!(offset, t);

        let err = serde_json::from_str::<Timestamp>("\"2023-02-30T00:00:00Z\"").unwrap_err();
        assert!(
            err.to_string().starts_with(
                "invalid RFC 3339 timestamp \"2023-02-30T00:00:00Z\": day 30 does not exist"
            ),
            "{err}"
        );
        let err = serde_json::from_str::<Timestamp>("1700000000").unwrap_err();
        assert!(
            err.to_string().contains(
                "an RFC 3339 timestamp string \"YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)\""
            ),
            "{err}"
        );
        assert_eq!(
            "1970-01-01T00:00:00Z".parse::<Timestamp>(),
            Ok(Timestamp::UNIX_EPOCH)
        );
    }

    #[test]
    fn now_is_plausible() {
        let a = Timestamp::now();
        let b = Timestamp::now();
        assert!(a <= b);
        // After 2023-11-14 and before 2262.
        assert!(a.unix_nanos() > 1_700_000_000_000_000_000);
    }

    #[test]
    fn order_matches_string_order() {
        let mut v: Vec<Timestamp> = [i64::MIN, -1, 0, 1, 1_700_000_000_123_456_789, i64::MAX]
            .into_iter()
            .map(Timestamp::from_unix_nanos)
            .collect();
        v.reverse();
        v.sort();
        let strings: Vec<String> = v.iter().map(ToString::to_string).collect();
        let mut sorted = strings.clone();
        sorted.sort();
        assert_eq!(strings, sorted);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        #[test]
        fn format_parse_round_trip(n in any::<i64>()) {
            let t = Timestamp::from_unix_nanos(n);
            let s = t.to_string();
            prop_assert_eq!(s.len(), 30);
            prop_assert_eq!(Timestamp::parse(&s), Ok(t));
            // Lowercase t and z are accepted too.
            prop_assert_eq!(Timestamp::parse(&s.to_lowercase()), Ok(t));
        }

        #[test]
        fn offsets_convert_to_utc(n in (i64::MIN / 2)..(i64::MAX / 2), sign in prop::bool::ANY, h in 0u32..24, m in 0u32..60) {
            let offset = (i64::from(h) * 3600 + i64::from(m) * 60) * NANOS_PER_SECOND;
            let offset = if sign { offset } else { -offset };
            // Write the UTC instant n as local time at that offset.
            let local = Timestamp::from_unix_nanos(n + offset).to_string();
            let s = format!("{}{}{h:02}:{m:02}", &local[..29], if sign { '+' } else { '-' });
            prop_assert_eq!(Timestamp::parse(&s), Ok(Timestamp::from_unix_nanos(n)));
        }

        /// The sealer's form, read at fixed places, gives what the full reader gives, for
        /// any digits (months, days and times out of range too), and refuses exactly what is
        /// not in the form: near-valid text, and the form with one byte replaced by any byte.
        #[test]
        fn the_sealed_form_reads_as_the_full_reader_does(
            s in "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{8,10}[Zz+]",
            at in 0usize..30,
            byte in prop_oneof![
                prop::sample::select(b"/0123456789:-.TZ \x00\x80\xb9".to_vec()),
                any::<u8>(),
            ],
        ) {
            let mut replaced = s.clone().into_bytes();
            if let Some(b) = replaced.get_mut(at) {
                *b = byte;
            }
            for b in [s.as_bytes(), &replaced] {
                let in_form = b.len() == 30
                    && b.iter().zip(b"dddd-dd-ddTdd:dd:dd.dddddddddZ").all(|(&c, &f)| {
                        if f == b'd' { c.is_ascii_digit() } else { c == f }
                    });
                match Parts::sealed_form(b) {
                    Some(fast) => {
                        prop_assert!(in_form);
                        prop_assert_eq!(Ok(fast), Parts::parse_any(b));
                    }
                    None => prop_assert!(!in_form, "{:?}", String::from_utf8_lossy(b)),
                }
            }
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Timestamp::parse(&s);
        }

        #[test]
        fn parse_never_panics_near_valid(s in "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?([Zz]|[+-][0-9]{2}:[0-9]{2})?.{0,2}") {
            if let Ok(t) = Timestamp::parse(&s) {
                // Whatever parses formats and parses back to itself.
                prop_assert_eq!(Timestamp::parse(&t.to_string()), Ok(t));
            }
        }
    }
}
