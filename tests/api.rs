//! The HTTP API of a running `sealer serve`: what it accepts, what it refuses and why, and
//! what it acknowledges.

use auditlog::head::LogHead;
use auditlog::note::NoteVerifier;
use harness::Sealer;
use harness::sealer::{event, events};
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

/// A valid NDJSON batch of exactly `len` bytes: events from seq 1, the last one's URL path
/// padded to fill.
fn batch_of_exactly(len: usize) -> (String, u64) {
    let mut body = String::new();
    let mut seq = 1;
    // Leave room for one more event with a short path.
    while body.len() + 2 * event(SOURCE, seq, 200).len() + 2 < len {
        body += &(event(SOURCE, seq, 200) + "\n");
        seq += 1;
    }
    let short = event_with(seq, &["event", "url", "path"], Some(json!("/")));
    let pad = len - body.len() - short.len() - 1;
    let path = format!("/{}", "x".repeat(pad));
    body += &(event_with(seq, &["event", "url", "path"], Some(json!(path))) + "\n");
    assert_eq!(body.len(), len);
    (body, seq)
}

/// The members of a JSON object, sorted.
fn members(body: &Value) -> Vec<String> {
    let mut keys: Vec<String> = body
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[test]
fn missing_top_level_member_is_invalid_event() {
    let s = sealer("e2e.test/api-missing-member");
    let good = events(SOURCE, 1, 2);
    for member in ["source", "event"] {
        let line = event_with(3, &[member], None);
        let body = expect_answer(
            &s,
            s.post_ndjson(&format!("{good}{line}\n")),
            400,
            json!({"error": "invalid_event", "line": 3}),
        );
        check(
            &s,
            members(&body) == ["error", "line", "message"],
            format!("exactly error, line and message without {member}: {body}"),
        );
        let message = body["message"].as_str().unwrap_or("");
        check(
            &s,
            message.contains(member),
            format!("the message names the missing {member}: {body}"),
        );
        check(
            &s,
            !message.is_empty() && !message.starts_with(": "),
            format!("the message does not start with an empty field name: {body}"),
        );
    }
    check(
        &s,
        s.metric("sealer_log_size") == 1,
        "nothing but the start entry sealed",
    );
}

#[test]
fn one_bad_line_seals_nothing() {
    let s = sealer("e2e.test/api-atomic");
    s.seal(&events(SOURCE, 1, 2));
    let size = s.metric("sealer_log_size");
    check(
        &s,
        size == 3,
        format!("start entry and 2 events, got {size}"),
    );
    let rejected = s.metric("sealer_batches_rejected_invalid_total");

    let good = [
        event(SOURCE, 3, 200),
        event(SOURCE, 4, 200),
        event(SOURCE, 5, 200),
    ];
    let bad = event_with(
        99,
        &["event", "http", "response", "status_code"],
        Some(json!(-1)),
    );
    let body = format!("{}\n{}\n{bad}\n{}\n", good[0], good[1], good[2]);
    expect_answer(
        &s,
        s.post_ndjson(&body),
        400,
        json!({"error": "invalid_event", "line": 3, "field": "event.http.response.status_code"}),
    );
    check(
        &s,
        s.metric("sealer_log_size") == size,
        "a refused batch seals nothing",
    );
    check(
        &s,
        s.metric("sealer_batches_rejected_invalid_total") == rejected + 1,
        "the refused batch is counted",
    );

    // The good lines' source sequence numbers were not consumed: they seal as new.
    let ack = s.seal(&(good.join("\n") + "\n"));
    check(
        &s,
        ack["accepted"] == 3
            && ack["sealed"] == 3
            && ack["duplicates"] == 0
            && ack["gaps"] == 0
            && ack["first_seq"] == size
            && ack["last_seq"] == size + 2,
        format!("the good lines sealed at {size}..: {ack}"),
    );
}

#[test]
fn body_over_the_limit_is_413() {
    let s = Sealer::start(
        "e2e.test/api-body-limit",
        &["--checkpoint-interval", "2s", "--max-body-bytes", "4096"],
    );
    let (too_big, _) = batch_of_exactly(4097);
    let (status, body) = s.post_ndjson(&too_big);
    check(
        &s,
        status == 413 && body["error"] == "too_large",
        format!("a 4097-byte body: expected 413 too_large, got {status}: {body}"),
    );
    check(
        &s,
        s.metric("sealer_batches_rejected_invalid_total") == 1,
        "the refused body is counted",
    );
    check(
        &s,
        s.metric("sealer_log_size") == 1,
        "nothing of the refused body sealed",
    );

    let (fits, n) = batch_of_exactly(4096);
    let ack = s.seal(&fits);
    check(
        &s,
        ack["accepted"] == n && ack["sealed"] == n && ack["first_seq"] == 1,
        format!("a 4096-byte body of {n} events seals them all: {ack}"),
    );
}

#[test]
fn batch_over_the_limit_is_413() {
    let s = Sealer::start(
        "e2e.test/api-batch-limit",
        &["--checkpoint-interval", "2s", "--max-batch-events", "10"],
    );
    expect_answer(
        &s,
        s.post_ndjson(&events(SOURCE, 1, 11)),
        413,
        json!({"error": "too_large"}),
    );
    let array: Vec<String> = (1..=11).map(|seq| event(SOURCE, seq, 200)).collect();
    expect_answer(
        &s,
        s.post("application/json", &format!("[{}]", array.join(","))),
        413,
        json!({"error": "too_large"}),
    );
    check(
        &s,
        s.metric("sealer_log_size") == 1,
        "nothing of the refused batches sealed",
    );

    let ack = s.seal(&events(SOURCE, 1, 10));
    check(
        &s,
        ack["accepted"] == 10 && ack["sealed"] == 10 && ack["duplicates"] == 0,
        format!("a batch of exactly 10 events is accepted: {ack}"),
    );
    let array: Vec<String> = (11..=20).map(|seq| event(SOURCE, seq, 200)).collect();
    expect_answer(
        &s,
        s.post("application/json", &format!("[{}]", array.join(","))),
        200,
        json!({"accepted": 10, "sealed": 10, "duplicates": 0, "first_seq": 11}),
    );
}

#[test]
fn json_array_and_single_object_bodies() {
    let s = sealer("e2e.test/api-json");
    let array: Vec<String> = (1..=3).map(|seq| event(SOURCE, seq, 200)).collect();
    expect_answer(
        &s,
        s.post("application/json", &format!("[{}]", array.join(","))),
        200,
        json!({"accepted": 3, "sealed": 3, "duplicates": 0, "gaps": 0, "first_seq": 1, "last_seq": 3}),
    );
    expect_answer(
        &s,
        s.post("application/json", &event(SOURCE, 4, 200)),
        200,
        json!({"accepted": 1, "sealed": 1, "duplicates": 0, "gaps": 0, "first_seq": 4, "last_seq": 4}),
    );

    let bad = event_with(6, &["event", "http", "request", "method"], Some(json!(7)));
    let body = format!(
        "[{},{bad},{}]",
        event(SOURCE, 5, 200),
        event(SOURCE, 7, 200)
    );
    let answer = expect_answer(
        &s,
        s.post("application/json", &body),
        400,
        json!({"error": "invalid_event", "index": 1, "field": "event.http.request.method"}),
    );
    check(&s, answer.get("line").is_none(), "no line for a JSON array");
    check(
        &s,
        s.metric("sealer_log_size") == 5,
        "the refused array sealed nothing",
    );
}

#[test]
fn replayed_batch_is_acknowledged_as_duplicates() {
    let s = sealer("e2e.test/api-replay");
    let batch = events(SOURCE, 1, 5);
    let first = s.seal(&batch);
    check(
        &s,
        first["sealed"] == 5 && first["duplicates"] == 0 && first["first_seq"] == 1,
        format!("first delivery sealed: {first}"),
    );
    let size = s.metric("sealer_log_size");
    check(
        &s,
        size == 6,
        format!("start entry and 5 events, got {size}"),
    );

    expect_answer(
        &s,
        s.post_ndjson(&batch),
        200,
        json!({"accepted": 5, "sealed": 0, "duplicates": 5, "gaps": 0,
               "first_seq": null, "last_seq": null}),
    );
    check(
        &s,
        s.metric("sealer_log_size") == size,
        "a replay seals nothing",
    );
}

#[test]
fn sequence_jump_seals_a_gap() {
    let mut s = sealer("e2e.test/api-gap");
    s.seal(&events(SOURCE, 1, 3));
    let ack = s.seal(&(event(SOURCE, 7, 200) + "\n"));
    check(
        &s,
        ack["accepted"] == 1
            && ack["gaps"] == 1
            && ack["sealed"] == 2
            && ack["duplicates"] == 0
            && ack["first_seq"] == 4
            && ack["last_seq"] == 5,
        format!("a gap entry and the event: {ack}"),
    );
    s.stop();

    let entries = s.export_entries();
    let at = entries
        .iter()
        .position(|e| e["kind"] == "http" && e["source"]["seq"] == 7)
        .unwrap_or_else(|| s.fail("no entry with source seq 7"));
    check(&s, at > 0, "the entry of seq 7 is not the first");
    let gap = &entries[at - 1];
    check(
        &s,
        gap["kind"] == "gap"
            && gap["event"]
                == json!({"count": 3, "first_seq": 4, "last_seq": 6, "reason": "sequence_jump"})
            && gap["source"] == json!({"id": SOURCE})
            && gap["seq"] == 4,
        format!("a gap entry for 4..=6 right before seq 7: {gap}"),
    );
    check(
        &s,
        entries.iter().filter(|e| e["kind"] == "gap").count() == 1,
        "exactly one gap entry",
    );
}

#[test]
fn checkpoint_endpoint_returns_a_signed_note() {
    let s = Sealer::start(
        "e2e.test/api-checkpoint",
        &["--checkpoint-interval", "2s", "--segment-max-age", "200ms"],
    );
    s.seal(&events(SOURCE, 1, 3));
    let verifier = NoteVerifier::parse(&std::fs::read_to_string(s.public_key()).unwrap())
        .expect("signing.pub is a verifier key");

    // Wait until a checkpoint covers the start entry and the 3 events.
    let (text, head) = s.wait_for("a checkpoint of 4 entries", || {
        let (status, text) = s.get("/v1/checkpoint");
        if status != 200 {
            return None;
        }
        let head = LogHead::open(&text, &verifier)
            .unwrap_or_else(|e| s.fail(&format!("checkpoint does not verify ({e}):\n{text}")));
        (head.size == 4).then_some((text, head))
    });
    check(
        &s,
        text.lines().next() == Some(s.origin.as_str()),
        format!("the first line is the origin:\n{text}"),
    );
    check(
        &s,
        head.origin == s.origin,
        "the head's origin is the log's",
    );

    // The signed root is the root of the store's entries.
    let report = s.get_json("/verify");
    let root: String = head.root.iter().map(|b| format!("{b:02x}")).collect();
    check(
        &s,
        report["entries"] == 4 && report["root"] == root.as_str(),
        format!("signed root {root} is the store's: {report}"),
    );

    // A byte changed anywhere breaks the signature.
    let forged = text.replacen("\n4\n", "\n5\n", 1);
    check(&s, forged != text, "the size line was edited");
    check(
        &s,
        LogHead::open(&forged, &verifier).is_err(),
        "an edited checkpoint does not verify",
    );
}

#[test]
fn verify_metrics_ready_and_health_endpoints() {
    let s = sealer("e2e.test/api-endpoints");
    s.seal(&events(SOURCE, 1, 4));

    let report = s.get_json("/verify");
    check(
        &s,
        report["ok"] == true && report["mac_checked"] == true && report["problem_count"] == 0,
        format!("the store verifies with MACs: {report}"),
    );

    let sealed = s.metric("sealer_entries_sealed_total");
    check(
        &s,
        sealed == 5,
        format!("start entry and 4 events sealed, got {sealed}"),
    );
    check(
        &s,
        s.metric("sealer_log_size") == 5,
        "sealer_log_size is the next position",
    );
    check(
        &s,
        s.metric("sealer_events_received_total") == 4,
        "4 events received",
    );

    let ready = s.get_json("/readyz");
    check(
        &s,
        ready["ready"] == true && ready["writer_failed"] == false && ready["log_size"] == 5,
        format!("ready: {ready}"),
    );
    let (status, body) = s.get("/healthz");
    check(
        &s,
        status == 200,
        format!("/healthz answered {status}: {body}"),
    );
}

#[test]
fn restart_after_sigkill_keeps_sources_and_positions() {
    let mut s = sealer("e2e.test/api-restart");
    let batch = events(SOURCE, 1, 5);
    let ack = s.seal(&batch);
    check(
        &s,
        ack["sealed"] == 5 && ack["first_seq"] == 1 && ack["last_seq"] == 5,
        format!("sealed at 1..=5: {ack}"),
    );

    s.kill9();
    s.restart();

    expect_answer(
        &s,
        s.post_ndjson(&batch),
        200,
        json!({"accepted": 5, "sealed": 0, "duplicates": 5, "gaps": 0, "first_seq": null}),
    );
    // Entry 6 is the second start entry; the next event goes to 7, with no gap.
    expect_answer(
        &s,
        s.post_ndjson(&(event(SOURCE, 6, 200) + "\n")),
        200,
        json!({"accepted": 1, "sealed": 1, "duplicates": 0, "gaps": 0, "first_seq": 7, "last_seq": 7}),
    );
    s.stop();

    let run = s.verify(&["--json"]);
    run.expect_code(0);
    let report = run.json();
    if report["entries"] != 8 || report["entries_by_kind"] != json!({"start": 2, "http": 6}) {
        run.fail("expected 8 entries: 2 start entries and 6 events");
    }
}

/// The sources come back at start from the snapshot saved beside the WAL when a segment
/// closed, plus the stored entries after it: replays of events sealed before and after the
/// snapshot are both recognised, without the sealer reading the whole log.
#[test]
fn sources_come_back_from_the_snapshot_and_the_entries_after_it() {
    let mut s = Sealer::start("e2e.test/api-snapshot", &["--segment-max-age", "200ms"]);
    let before = events(SOURCE, 1, 5);
    s.seal(&before);
    s.wait_stored();
    let snapshots = |s: &Sealer| -> Vec<String> {
        std::fs::read_dir(s.data_dir().join("wal"))
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter(|n| n.ends_with(".sources"))
            .collect()
    };
    let first = snapshots(&s);
    check(
        &s,
        first.len() == 1,
        format!("one snapshot after the first segment: {first:?}"),
    );
    // A second segment, fewer than 100,000 entries later: no new snapshot, its entries are
    // read back from the store at start.
    let after = events("gw-b/0123456789abcdef", 1, 4);
    s.seal(&after);
    s.wait_stored();
    check(
        &s,
        snapshots(&s) == first,
        format!("still one snapshot: {:?}", snapshots(&s)),
    );
    s.stop();
    s.restart();
    for (batch, n) in [(&before, 5), (&after, 4)] {
        expect_answer(
            &s,
            s.post_ndjson(batch),
            200,
            json!({"accepted": n, "sealed": 0, "duplicates": n, "gaps": 0}),
        );
    }
    expect_answer(
        &s,
        s.post_ndjson(&(event("gw-b/0123456789abcdef", 5, 200) + "\n")),
        200,
        json!({"accepted": 1, "sealed": 1, "duplicates": 0, "gaps": 0}),
    );
}

#[test]
fn tokens_guard_each_role_and_neither_token_acts_as_the_other() {
    let s = Sealer::start_with_tokens("e2e.test/api-tokens", &[]);
    let (ingest, read) = s.tokens.clone().unwrap();
    let agent = ureq::AgentBuilder::new().build();
    let call = |method: &str, path: &str, token: Option<&str>| -> (u16, String) {
        let mut req = agent.request(method, &s.url(path));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let result = if method == "POST" {
            req.set("Content-Type", "application/x-ndjson")
                .send_string(&events("gw/1", 1, 2))
        } else {
            req.call()
        };
        match result {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => s.fail(&format!("{method} {path}: {e}")),
        }
    };
    let wrong = "w".repeat(45);
    for (method, path, token, expected) in [
        ("POST", "/v1/events", None, 401),
        ("POST", "/v1/events", Some(wrong.as_str()), 401),
        ("POST", "/v1/events", Some(read.as_str()), 403),
        ("GET", "/verify", None, 401),
        ("GET", "/verify", Some(ingest.as_str()), 403),
        ("GET", "/metrics", None, 401),
        ("GET", "/metrics", Some(ingest.as_str()), 403),
        ("GET", "/healthz", None, 200),
        ("GET", "/readyz", None, 200),
        ("POST", "/v1/events", Some(ingest.as_str()), 200),
        ("GET", "/verify", Some(read.as_str()), 200),
        ("GET", "/metrics", Some(read.as_str()), 200),
    ] {
        let (status, body) = call(method, path, token);
        check(
            &s,
            status == expected,
            format!("{method} {path} with {token:?}: {status} (expected {expected}): {body}"),
        );
        if status == 401 {
            check(
                &s,
                body.contains("token"),
                format!("401 body names the token: {body}"),
            );
        }
    }
    // Only the batch sent with the ingest token was sealed; the others were refused before
    // their body was read.
    check(
        &s,
        s.metric("sealer_events_received_total") == 2,
        "exactly one batch of 2 events sealed",
    );
}

#[test]
fn a_token_file_readable_by_others_is_refused_at_start() {
    let s = sealer("e2e.test/api-token-perms");
    let token = s.root().join("loose.token");
    std::fs::write(&token, "x".repeat(40)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (keys, data) = (s.keys_dir(), s.root().join("data-2"));
    let run = s.run(&[
        "serve",
        "--keys",
        keys.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--ingest-token-file",
        token.to_str().unwrap(),
    ]);
    run.expect_code(2);
    let stderr = String::from_utf8_lossy(&run.output.stderr).into_owned();
    check(
        &s,
        stderr.contains("mode 0644") && stderr.contains("chmod 600"),
        format!("the error names the mode and the fix: {stderr}"),
    );
}

#[test]
fn a_loss_the_source_declares_is_sealed_as_declared() {
    let mut s = sealer("e2e.test/api-declared-gap");
    s.seal(&events(SOURCE, 1, 3));
    // Seq 10 says the source dropped the 4 events before it (6..=9); 4 and 5 are unexplained.
    let mut line: Value = serde_json::from_str(&event(SOURCE, 10, 200)).unwrap();
    line["source"]["dropped_before"] = json!(4);
    let ack = s.seal(&format!("{line}\n"));
    check(&s, ack["gaps"] == 2, format!("two gap entries: {ack}"));
    // A declaration that covers more than the source has sent is refused.
    line["source"]["seq"] = json!(11);
    line["source"]["dropped_before"] = json!(11);
    let (status, body) = s.post_ndjson(&format!("{line}\n"));
    check(
        &s,
        status == 400 && body["field"] == "source.dropped_before",
        format!("400 naming source.dropped_before: {body}"),
    );
    s.stop();

    let gaps: Vec<Value> = s
        .export_entries()
        .into_iter()
        .filter(|e| e["kind"] == "gap")
        .map(|e| e["event"].clone())
        .collect();
    check(
        &s,
        gaps == vec![
            json!({"count": 2, "first_seq": 4, "last_seq": 5, "reason": "sequence_jump"}),
            json!({"count": 4, "first_seq": 6, "last_seq": 9, "reason": "declared_by_source"}),
        ],
        format!("a jump for 4..=5, a declared loss for 6..=9: {gaps:?}"),
    );
}

/// POST an NDJSON body with the `audit-source*` headers a gateway worker sends.
fn post_as_source(
    s: &Sealer,
    body: &str,
    source: &str,
    announced: &str,
    closing: bool,
) -> (u16, Value) {
    let mut request = ureq::post(&s.url("/v1/events"))
        .set("Content-Type", "application/x-ndjson")
        .set("audit-source", source)
        .set("audit-source-seq", announced);
    if closing {
        request = request.set("audit-source-closing", "true");
    }
    let (status, text) = match request.send_string(body) {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => s.fail(&format!("POST /v1/events: {e}")),
    };
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn a_source_that_closes_or_goes_silent_ends_in_the_log() {
    let mut s = Sealer::start(
        "e2e.test/api-source-end",
        &[
            "--checkpoint-interval",
            "2s",
            "--source-silence-timeout",
            "1s",
        ],
    );
    let (a, b) = ("gw/w0/closing", "gw/w1/silent");
    // Source a delivers 1 and 2, having numbered 3 (still waiting with it), then closes
    // without ever sending 3: a gap for it, then its clean end.
    expect_answer(
        &s,
        post_as_source(&s, &events(a, 1, 2), a, "3", false),
        200,
        json!({"sealed": 2}),
    );
    expect_answer(
        &s,
        post_as_source(&s, "", a, "3", true),
        200,
        json!({"accepted": 0, "sealed": 2, "gaps": 1}),
    );
    // Its close repeated (an answer lost on the way) is not sealed again.
    expect_answer(
        &s,
        post_as_source(&s, "", a, "3", true),
        200,
        json!({"sealed": 0}),
    );
    // Source b sends one event and a heartbeat, then nothing.
    expect_answer(
        &s,
        post_as_source(&s, &events(b, 1, 1), b, "1", false),
        200,
        json!({"sealed": 1}),
    );
    expect_answer(
        &s,
        post_as_source(&s, "", b, "1", false),
        200,
        json!({"sealed": 0}),
    );
    // A report the sealer cannot read is refused, naming the header.
    expect_answer(
        &s,
        post_as_source(&s, "", b, "one", false),
        400,
        json!({"error": "invalid_header", "field": "audit-source-seq"}),
    );
    s.wait_for("b's unclean end", || {
        (s.metric("sealer_source_ends_unclean_total") == 1).then_some(())
    });
    check(
        &s,
        s.metric("sealer_source_ends_clean_total") == 1,
        "a's clean end",
    );
    check(
        &s,
        s.metric("sealer_sources_open") == 0,
        "no source left open",
    );
    s.stop();
    s.verify(&[]).expect_code(0);
    let entries = s.export_entries();
    let of = |id: &str| -> Vec<(String, Value)> {
        entries
            .iter()
            .filter(|e| e["source"]["id"] == id)
            .map(|e| (e["kind"].as_str().unwrap().to_owned(), e["event"].clone()))
            .collect()
    };
    let a_entries = of(a);
    let kinds: Vec<&str> = a_entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["http", "http", "gap", "source_end"]);
    assert_eq!(a_entries[2].1["reason"], "announced_never_arrived");
    assert_eq!(
        (&a_entries[2].1["first_seq"], &a_entries[2].1["last_seq"]),
        (&json!(3), &json!(3))
    );
    assert_eq!(
        a_entries[3].1,
        json!({"clean": true, "last_seq": 3, "reason": "closed"})
    );
    let b_entries = of(b);
    let kinds: Vec<&str> = b_entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["http", "source_end"]);
    assert_eq!(b_entries[1].1["clean"], false);
    assert_eq!(b_entries[1].1["last_seq"], 1);

    // After a restart, ended sources stay ended: no second end past the timeout. A third
    // source that goes silent after the restart shows the timeout has passed.
    s.restart();
    let c = "gw/w0/c";
    expect_answer(
        &s,
        post_as_source(&s, &events(c, 1, 1), c, "1", false),
        200,
        json!({"sealed": 1}),
    );
    s.wait_for("c's unclean end", || {
        (s.metric("sealer_source_ends_unclean_total") >= 1).then_some(())
    });
    check(
        &s,
        s.metric("sealer_sources_open") == 0,
        "ended sources stay ended",
    );
    s.stop();
    let ended: Vec<String> = s
        .export_entries()
        .iter()
        .filter(|e| e["kind"] == "source_end")
        .map(|e| e["source"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ended, [a, b, c], "one end per source, none repeated");
}
