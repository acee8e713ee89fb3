//! The HTTP API of a running `sealer serve`: what it accepts, what it refuses and why, and
//! what it acknowledges.

use std::time::{Duration, Instant};

use auditlog::head::LogHead;
use auditlog::note::NoteVerifier;
use e2e::{Sealer, event, events};
use serde_json::{Value, json};

const SOURCE: &str = "gw/w0/a";

fn sealer(origin: &str) -> Sealer {
    Sealer::start(origin, &["--checkpoint-interval", "2s"])
}

/// Panic with the sealer's diagnostics unless `ok`.
fn check(s: &Sealer, ok: bool, what: impl std::fmt::Display) {
    if !ok {
        s.fail(&what.to_string());
    }
}

/// Panic unless a POST answered `status` with a JSON body whose members include `expected`.
fn expect_answer(s: &Sealer, answer: (u16, Value), status: u16, expected: Value) -> Value {
    let (got, body) = answer;
    let matches = expected
        .as_object()
        .expect("an object")
        .iter()
        .all(|(k, v)| &body[k] == v);
    check(
        s,
        got == status && matches,
        format!("expected {status} with {expected}, got {got} with {body}"),
    );
    body
}

/// An event line with one member replaced (by dotted path) or removed (`None`).
fn event_with(seq: u64, path: &[&str], value: Option<Value>) -> String {
    let mut v: Value = serde_json::from_str(&event(SOURCE, seq, 200)).unwrap();
    let (last, parents) = path.split_last().unwrap();
    let mut obj = &mut v;
    for p in parents {
        obj = &mut obj[*p];
    }
    let obj = obj.as_object_mut().unwrap();
    match value {
        Some(x) => obj.insert(last.to_string(), x),
        None => obj.remove(*last),
    };
    v.to_string()
}

#[test]
fn text_plain_is_415() {
    let s = sealer("e2e.test/api-415");
    let answer = s.post("text/plain", &events(SOURCE, 1, 2));
    expect_answer(&s, answer, 415, json!({"error": "unsupported_media_type"}));
    check(
        &s,
        s.metric("sealer_log_size") == 1,
        "nothing but the start entry sealed",
    );
}

#[test]
fn invalid_event_is_400_naming_line_and_field() {
    let s = sealer("e2e.test/api-400");
    let good = events(SOURCE, 1, 2);

    let ill_typed = event_with(3, &["event", "http", "request", "method"], Some(json!(7)));
    let body = expect_answer(
        &s,
        s.post_ndjson(&format!("{good}{ill_typed}\n")),
        400,
        json!({"error": "invalid_event", "line": 3, "field": "event.http.request.method"}),
    );
    check(&s, body.get("index").is_none(), "no index for NDJSON");

    let missing = event_with(3, &["event", "url"], None);
    let body = expect_answer(
        &s,
        s.post_ndjson(&format!("{good}{missing}\n")),
        400,
        json!({"error": "invalid_event", "line": 3, "field": "event"}),
    );
    let message = body["message"].as_str().unwrap_or("");
    check(
        &s,
        message.contains("url"),
        format!("message names url: {body}"),
    );

    let unknown = event_with(3, &["extra"], Some(json!(1)));
    expect_answer(
        &s,
        s.post_ndjson(&format!("{good}{unknown}\n")),
        400,
        json!({"error": "invalid_event", "line": 3, "field": "extra"}),
    );

    expect_answer(
        &s,
        s.post_ndjson(&format!("{good}{{not json\n")),
        400,
        json!({"error": "invalid_json", "line": 3}),
    );
}

