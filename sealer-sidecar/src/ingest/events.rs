//! Parsing ingest bodies: NDJSON or a JSON array of [`IngestLine`]s, all or nothing.

use auditlog::entry::{EntryKind, EntrySource};
use auditlog::event::{IngestLine, Limits, canonical};
use bytes::Bytes;
use serde_json::value::RawValue;

use crate::ingest::PreparedEvent;

/// Bounds on one request.
#[derive(Clone, Copy, Debug)]
pub struct IngestLimits {
    pub max_batch_events: usize,
    pub max_event_bytes: usize,
    pub event: Limits,
}

/// The two accepted body formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/x-ndjson`: one event per line.
    Ndjson,
    /// `application/json`: an array of events (or one event object).
    Json,
}

impl BodyFormat {
    /// The format named by a `Content-Type` header, if it is one we accept.
    pub fn from_content_type(value: &str) -> Option<BodyFormat> {
        let mime = value.split(';').next().unwrap_or("").trim();
        match mime.to_ascii_lowercase().as_str() {
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
                Some(BodyFormat::Ndjson)
            }
            "application/json" => Some(BodyFormat::Json),
            _ => None,
        }
    }
}

/// What is wrong with a refused batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestErrorKind {
    /// A line or the body is not JSON.
    InvalidJson,
    /// JSON, but not a valid event.
    InvalidEvent,
    /// Too many events, or an event too big.
    TooLarge,
}

impl IngestErrorKind {
    /// The `error` code of the answer (`docs/http-api.md`).
    pub fn code(self) -> &'static str {
        match self {
            IngestErrorKind::InvalidJson => "invalid_json",
            IngestErrorKind::InvalidEvent => "invalid_event",
            IngestErrorKind::TooLarge => "too_large",
        }
    }
}

/// A refused batch: what is wrong and where. Nothing of the batch was sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestError {
    pub kind: IngestErrorKind,
    pub message: String,
    /// 1-based line of an NDJSON body.
    pub line: Option<usize>,
    /// 0-based index in a JSON array body.
    pub index: Option<usize>,
    /// Dotted path of the offending field inside the event.
    pub field: Option<String>,
}

impl IngestError {
    fn new(kind: IngestErrorKind, message: String) -> Self {
        IngestError {
            kind,
            message,
            line: None,
            index: None,
            field: None,
        }
    }
}

/// Parse and validate a whole body. The first bad event refuses the batch.
pub fn parse_batch(
    body: &Bytes,
    format: BodyFormat,
    limits: &IngestLimits,
) -> Result<Vec<PreparedEvent>, IngestError> {
    match format {
        BodyFormat::Ndjson => parse_ndjson(body, limits),
        BodyFormat::Json => parse_json(body, limits),
    }
}

fn parse_ndjson(body: &Bytes, limits: &IngestLimits) -> Result<Vec<PreparedEvent>, IngestError> {
    let mut out = Vec::with_capacity(body.len() / 400 + 1);
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    for (i, end) in ends.enumerate() {
        let line = &body[start..end];
        start = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        check_count(out.len(), limits)?;
        let event = prepare(body, line, limits).map_err(|mut e| {
            e.line = Some(i + 1);
            e
        })?;
        out.push(event);
    }
    Ok(out)
}

fn parse_json(body: &Bytes, limits: &IngestLimits) -> Result<Vec<PreparedEvent>, IngestError> {
    let trimmed = body.trim_ascii_start();
    if trimmed.first() == Some(&b'{') {
        return Ok(vec![prepare(body, body, limits)?]);
    }
    let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| {
        IngestError::new(
            IngestErrorKind::InvalidJson,
            format!("body is not a JSON array of events: {e}"),
        )
    })?;
    if items.len() > limits.max_batch_events {
        check_count(items.len(), limits)?;
    }
    items
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            prepare(body, raw.get().as_bytes(), limits).map_err(|mut e| {
                e.index = Some(i);
                e
            })
        })
        .collect()
}

fn check_count(n: usize, limits: &IngestLimits) -> Result<(), IngestError> {
    if n >= limits.max_batch_events {
        return Err(IngestError::new(
            IngestErrorKind::TooLarge,
            format!(
                "batch has more than {} events; split it",
                limits.max_batch_events
            ),
        ));
    }
    Ok(())
}

/// One event: `bytes`, a part of `body`.
fn prepare(
    body: &Bytes,
    bytes: &[u8],
    limits: &IngestLimits,
) -> Result<PreparedEvent, IngestError> {
    if bytes.len() > limits.max_event_bytes {
        return Err(IngestError::new(
            IngestErrorKind::TooLarge,
            format!(
                "event is {} bytes; the limit is {}",
                bytes.len(),
                limits.max_event_bytes
            ),
        ));
    }
    // The fast path: a line whose event is already canonical (as the audit filter writes
    // it) is taken as it is; anything else is parsed, validated and re-serialized.
    if let Some(line) = canonical::check(bytes, &limits.event) {
        return Ok(PreparedEvent {
            dedup_key: None,
            kind: EntryKind::Http,
            source: Some(EntrySource {
                id: line.source_id.to_owned(),
                seq: Some(line.seq),
            }),
            dropped_before: line.dropped_before,
            event_json: body.slice_ref(line.event),
        });
    }
    let line = IngestLine::parse(bytes, &limits.event).map_err(|e| IngestError {
        kind: if e.syntax {
            IngestErrorKind::InvalidJson
        } else {
            IngestErrorKind::InvalidEvent
        },
        message: e.to_string(),
        line: None,
        index: None,
        field: (!e.field.is_empty()).then(|| e.field.clone()),
    })?;
    let event_json = line.event.canonical_json();
    Ok(PreparedEvent {
        dedup_key: None,
        kind: EntryKind::Http,
        source: Some(EntrySource {
            id: line.source.id,
            seq: Some(line.source.seq),
        }),
        dropped_before: line.source.dropped_before,
        event_json: event_json.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> IngestLimits {
        IngestLimits {
            max_batch_events: 3,
            max_event_bytes: 4096,
            event: Limits::default(),
        }
    }

    fn line(seq: u64) -> String {
        format!(
            r#"{{"source":{{"id":"gw/w0/a","seq":{seq}}},"event":{{"start_time":"2026-11-28T07:00:00Z","http":{{"request":{{"method":"GET"}},"response":{{"status_code":200}}}},"url":{{"path":"/"}}}}}}"#
        )
    }

    #[test]
    fn parses_ndjson_and_arrays() {
        let body = format!("{}\n\n{}\r\n", line(1), line(2));
        let events = parse_batch(&Bytes::from(body), BodyFormat::Ndjson, &limits()).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].source.as_ref().unwrap().seq, Some(2));
        let body = format!("[{},{}]", line(1), line(2));
        let events = parse_batch(&Bytes::from(body), BodyFormat::Json, &limits()).unwrap();
        assert_eq!(events.len(), 2);
        assert!(auditlog::jcs::is_canonical(&events[0].event_json));
    }

    #[test]
    fn names_line_and_field() {
        let bad = line(2).replace(r#""method":"GET""#, r#""method":7"#);
        let body = format!("{}\n{bad}\n", line(1));
        let err = parse_batch(&Bytes::from(body), BodyFormat::Ndjson, &limits()).unwrap_err();
        assert_eq!(err.kind, IngestErrorKind::InvalidEvent);
        assert_eq!(err.line, Some(2));
        assert_eq!(err.field.as_deref(), Some("event.http.request.method"));

        let err = parse_batch(
            &Bytes::from_static(b"{not json\n"),
            BodyFormat::Ndjson,
            &limits(),
        )
        .unwrap_err();
        assert_eq!(
            (err.kind, err.line),
            (IngestErrorKind::InvalidJson, Some(1))
        );

        let missing = line(1).replace(r#","url":{"path":"/"}"#, "");
        let err = parse_batch(&Bytes::from(missing), BodyFormat::Ndjson, &limits()).unwrap_err();
        assert!(err.message.contains("missing field `url`"), "{err:?}");
        assert_eq!(err.field.as_deref(), Some("event"));
    }

    #[test]
    fn enforces_batch_limit() {
        let body = (1..=4).map(line).collect::<Vec<_>>().join("\n");
        let err = parse_batch(&Bytes::from(body), BodyFormat::Ndjson, &limits()).unwrap_err();
        assert_eq!(err.kind, IngestErrorKind::TooLarge);
    }

    #[test]
    fn the_published_example_events_are_valid() {
        let body = include_bytes!("../../../examples/events.ndjson");
        let events = parse_batch(&Bytes::from_static(body), BodyFormat::Ndjson, &limits()).unwrap();
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn content_types() {
        assert_eq!(
            BodyFormat::from_content_type("application/x-ndjson; charset=utf-8"),
            Some(BodyFormat::Ndjson)
        );
        assert_eq!(
            BodyFormat::from_content_type("Application/JSON"),
            Some(BodyFormat::Json)
        );
        assert_eq!(BodyFormat::from_content_type("text/plain"), None);
    }
}
