//! The read side against the real sealer: `GET /v1/events` (filters, pagination), proofs
//! (`GET /v1/proof/*`, checked here with nothing but the public key and the auditlog
//! crate), the live stream (`GET /v1/stream`), and `sealer prove`.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use auditlog::head::LogHead;
use auditlog::merkle;
use auditlog::note::NoteVerifier;
use auditlog::query::{Fields, Filter};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use harness::Sealer;
use serde_json::{Value, json};

const SOURCE: &str = "gw-eu/00aa11bb22cc33dd";
const FAST: [&str; 4] = [
    "--segment-max-age",
    "100ms",
    "--checkpoint-interval",
    "200ms",
];

/// A varied access event: method, path, status and identity from `seq`.
fn varied(seq: u64) -> String {
    let methods = ["GET", "POST", "DELETE"];
    let paths = ["/admin/users", "/shop/cart", "/admin", "/health"];
    let statuses = [200, 201, 403, 404, 503];
    let mut event = json!({
        "start_time": format!("2026-11-28T09:{:02}:00Z", seq % 60),
        "http": {"request": {"method": methods[seq as usize % 3]},
                 "response": {"status_code": statuses[seq as usize % 5]}},
        "url": {"path": paths[seq as usize % 4]},
        "server": {"address": "shop.example.com"},
        "client": {"address": format!("203.0.113.{}", seq % 7)},
    });
    if seq.is_multiple_of(2) {
        event["enduser"] = json!({"id": format!("user-{}", seq % 3), "source": "header"});
    }
    json!({"source": {"id": SOURCE, "seq": seq}, "event": event}).to_string()
}

fn seal_varied(s: &Sealer, first: u64, n: u64) {
    let body: String = (first..first + n).map(|q| varied(q) + "\n").collect();
    s.seal(&body);
}

/// Wait until the index holds every entry sealed so far.
fn wait_indexed(s: &Sealer) -> u64 {
    s.wait_stored();
    let size = s.get_json("/readyz")["log_size"].as_u64().unwrap();
    s.wait_until(&format!("the index to reach {size} entries"), || {
        s.get_json("/v1/events?limit=1")["indexed_size"].as_u64() == Some(size)
    });
    size
}

/// Every page of `query` (without cursor), following `next_cursor`: the entries' positions.
fn all_pages(s: &Sealer, query: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => format!("/v1/events?{query}"),
            Some(c) => format!("/v1/events?{query}&cursor={c}"),
        };
        let page = s.get_json(&url);
        out.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

#[test]
fn the_query_api_answers_what_a_scan_of_the_store_answers() {
    let s = Sealer::start("e2e.test/query", &FAST);
    seal_varied(&s, 1, 120);
    wait_indexed(&s);
    let entries = s.export_entries();
    for query in [
        "status=4xx",
        "status=503&method=get",
        "path_prefix=/admin&kind=http",
        "identity=user-1",
        "client=203.0.113.3&status=2xx",
        "from=2026-11-28T09:10:00Z&to=2026-11-28T09:20:00Z",
        "q=SHOP/CART",
        "kind=start",
        "gateway=gw-eu&host=SHOP.EXAMPLE.COM",
    ] {
        let pairs: Vec<(&str, &str)> = query
            .split('&')
            .map(|kv| kv.split_once('=').unwrap())
            .collect();
        let filter = Filter::from_pairs(pairs).unwrap();
        let mut expected: Vec<(i64, u64)> = entries
            .iter()
            .filter(|e| filter.matches(&Fields::of(e), &e.to_string()))
            .map(|e| {
                let f = Fields::of(e);
                (f.time, f.seq)
            })
            .collect();
        expected.sort();
        assert!(
            !expected.is_empty(),
            "{query} selects nothing: a weak check"
        );
        let oldest: Vec<u64> = expected.iter().map(|(_, q)| *q).collect();
        assert_eq!(
            all_pages(&s, &format!("{query}&order=oldest&limit=7")),
            oldest,
            "{query}"
        );
        let newest: Vec<u64> = oldest.iter().rev().copied().collect();
        assert_eq!(
            all_pages(&s, &format!("{query}&limit=5")),
            newest,
            "{query}"
        );
    }

    // NDJSON: one entry per line, the next cursor in a header.
    // `kind` may repeat.
    let both = all_pages(&s, "kind=start&kind=http&limit=50").len();
    assert_eq!(both, entries.len());
    let (status, body) = s.get("/v1/events?format=ndjson&limit=3&status=404");
    assert_eq!(status, 200);
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines
            .iter()
            .all(|e| e["event"]["http"]["response"]["status_code"] == 404)
    );

    // Mistakes are named.
    for (query, names) in [
        ("statuss=404", "statuss"),
        ("status=4x", "status"),
        ("limit=0", "limit"),
        ("order=up", "order"),
        ("cursor=x", "cursor"),
        ("from=yesterday", "from"),
    ] {
        let (status, body) = s.get(&format!("/v1/events?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(names), "{query}: {body}");
    }
}

fn hashes(v: &Value) -> Vec<merkle::Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| B64.decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect()
}

#[test]
fn proofs_verify_with_the_public_key_alone_and_tampering_is_caught() {
    let s = Sealer::start("e2e.test/proofs", &FAST);
    seal_varied(&s, 1, 40);
    let first = wait_indexed(&s);
    seal_varied(&s, 41, 25);
    let second = wait_indexed(&s);
    let verifier = NoteVerifier::parse(&std::fs::read_to_string(s.public_key()).unwrap()).unwrap();

    // Inclusion against the newest checkpoint.
    let bundle = s.get_json("/v1/proof/inclusion?seq=17");
    let head = LogHead::open(bundle["checkpoint"].as_str().unwrap(), &verifier).unwrap();
    assert_eq!(head.size, second);
    let entry = bundle["entry"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(entry).unwrap()["seq"], 17);
    let leaf = merkle::leaf_hash(entry.as_bytes());
    let proof = hashes(&bundle["proof"]);
    merkle::verify_inclusion(&leaf, 17, head.size, &proof, &head.root).unwrap();
    // A changed entry, or a changed proof hash, no longer verifies.
    // Entry 17 was a refused DELETE (403); the forgery says it succeeded.
    let forged = entry.replace("\"status_code\":403", "\"status_code\":200");
    assert_ne!(forged, entry);
    assert!(
        merkle::verify_inclusion(
            &merkle::leaf_hash(forged.as_bytes()),
            17,
            head.size,
            &proof,
            &head.root
        )
        .is_err()
    );
    let mut bent = proof.clone();
    bent[0][0] ^= 1;
    assert!(merkle::verify_inclusion(&leaf, 17, head.size, &bent, &head.root).is_err());

    // Consistency between the two checkpoints the sealer stored.
    let c = s.get_json(&format!("/v1/proof/consistency?from={first}&to={second}"));
    let old = LogHead::open(c["from_checkpoint"].as_str().unwrap(), &verifier).unwrap();
    let new = LogHead::open(c["to_checkpoint"].as_str().unwrap(), &verifier).unwrap();
    assert_eq!((old.size, new.size), (first, second));
    merkle::verify_consistency(first, second, &old.root, &new.root, &hashes(&c["proof"])).unwrap();

    // Inclusion against the older checkpoint, by size.
    let old_bundle = s.get_json(&format!("/v1/proof/inclusion?seq=3&size={first}"));
    let h = LogHead::open(old_bundle["checkpoint"].as_str().unwrap(), &verifier).unwrap();
    assert_eq!(h.size, first);

    // What cannot be proven is said so.
    let (status, body) = s.get(&format!("/v1/proof/inclusion?seq={second}"));
    assert_eq!(status, 404, "{body}");
    let (status, body) = s.get("/v1/proof/inclusion?seq=1&size=3");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no_checkpoint"), "{body}");

    // `sealer prove`: fetch, verify, save the bundle; then verify it offline; then a
    // tampered bundle fails with exit 1.
    let pk = s.public_key();
    let saved = s.root().join("bundle.json");
    let url = s.url("");
    let run = s.run(&[
        "prove",
        "--url",
        &url,
        "--seq",
        "17",
        "--public-key",
        pk.to_str().unwrap(),
        "--save",
        saved.to_str().unwrap(),
    ]);
    run.expect_code(0);
    assert!(run.stdout().contains("entry 17"), "{}", run.stdout());
    s.run(&[
        "prove",
        "--bundle",
        saved.to_str().unwrap(),
        "--public-key",
        pk.to_str().unwrap(),
    ])
    .expect_code(0);
    let mut tampered: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    tampered["entry"] = json!(forged);
    std::fs::write(&saved, tampered.to_string()).unwrap();
    let run = s.run(&[
        "prove",
        "--bundle",
        saved.to_str().unwrap(),
        "--public-key",
        pk.to_str().unwrap(),
    ]);
    run.expect_code(1);
}

#[test]
fn the_stream_shows_entries_as_they_are_sealed() {
    let s = Sealer::start("e2e.test/stream", &[]);
    let url = s.url("/v1/stream?status=5xx");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let response = ureq::get(&url)
            .timeout(Duration::from_secs(60))
            .call()
            .expect("the stream opens");
        assert_eq!(response.header("content-type"), Some("text/event-stream"));
        for line in BufReader::new(response.into_reader()).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Once the stream is subscribed, seal: 10 events, 2 of them 503s.
    s.wait_metric("sealer_stream_readers", 1);
    seal_varied(&s, 1, 10);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 2 {
        let wait = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(wait) else {
            s.fail(&format!("the stream showed {} of 2 entries", seen.len()));
        };
        if let Some(data) = line.strip_prefix("data: ") {
            let entry: Value = serde_json::from_str(data).unwrap();
            seen.push(
                entry["event"]["http"]["response"]["status_code"]
                    .as_u64()
                    .unwrap(),
            );
        }
    }
    assert_eq!(seen, [503, 503], "only what the filter selects, as sealed");
    // An open stream does not hold up a graceful shutdown.
    let mut s = s;
    s.stop();
}

#[test]
fn read_endpoints_need_the_read_token() {
    let s = Sealer::start_with_tokens("e2e.test/read-auth", &FAST);
    let (ingest, read) = s.tokens.clone().unwrap();
    for path in [
        "/v1/events",
        "/v1/proof/inclusion?seq=0",
        "/v1/proof/consistency?from=1&to=1",
        "/v1/stream",
    ] {
        let url = s.url(path);
        let status = |token: Option<&str>| {
            let mut req = ureq::get(&url).timeout(Duration::from_secs(10));
            if let Some(t) = token {
                req = req.set("Authorization", &format!("Bearer {t}"));
            }
            match req.call() {
                Ok(r) => r.status(),
                Err(ureq::Error::Status(code, _)) => code,
                Err(e) => panic!("{path}: {e}"),
            }
        };
        assert_eq!(status(None), 401, "{path}");
        assert_eq!(
            status(Some(&ingest)),
            403,
            "{path}: the ingest token cannot read"
        );
        assert_ne!(status(Some(&read)), 401, "{path}");
        assert_ne!(status(Some(&read)), 403, "{path}");
    }
}

#[test]
fn export_filters_and_writes_csv() {
    let s = Sealer::start("e2e.test/export-filter", &FAST);
    seal_varied(&s, 1, 50);
    s.wait_stored();
    let entries = s.export_entries();
    let filter = Filter::from_pairs([("status", "4xx"), ("path_prefix", "/admin")]).unwrap();
    let expected: Vec<u64> = entries
        .iter()
        .filter(|e| filter.matches(&Fields::of(e), &e.to_string()))
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(!expected.is_empty());
    let (store, pk) = (s.store_arg(), s.public_key());
    let pk = pk.to_str().unwrap();
    let base = ["export", "--store", &store, "--public-key", pk];
    let filters = ["--status", "4xx", "--path-prefix", "/admin"];
    let run = s.run(&[&base[..], &filters[..]].concat());
    run.expect_code(0);
    let got: Vec<u64> = run
        .stdout()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(got, expected);

    let run = s.run(&[&base[..], &filters[..], &["--format", "csv"][..]].concat());
    run.expect_code(0);
    let out = run.stdout();
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("log,seq,kind,time,sealed_at,gateway,method,host,path,status,identity,client")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), expected.len());
    for (row, seq) in rows.iter().zip(&expected) {
        assert_eq!(row[1], seq.to_string());
        assert_eq!(row[2], "http");
        assert!(
            row[8].starts_with("/admin") && row[9].starts_with('4'),
            "{row:?}"
        );
    }

    let run = s.run(&[&base[..], &["--path-prefix", "/a", "--status", "4x"][..]].concat());
    run.expect_code(2);
    assert!(
        String::from_utf8_lossy(&run.output.stderr).contains("--status"),
        "the error names the option"
    );
}

/// Lines a child prints, read on a thread, so a test can wait for them with a deadline.
fn lines_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn wait_lines(rx: &std::sync::mpsc::Receiver<String>, n: usize, what: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(line) => out.push(serde_json::from_str(&line).unwrap()),
            Err(_) => panic!("{what}: {} of {n} entries arrived", out.len()),
        }
    }
    out
}

#[test]
fn tail_follows_a_sealer_and_a_store() {
    let s = Sealer::start("e2e.test/tail", &FAST);
    let url = s.url("");
    let mut live = harness::sealer::sealer_cmd(&["tail", "--url", &url, "--status", "5xx"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let live_lines = lines_of(&mut live);
    let store = s.store_arg();
    let mut stored = harness::sealer::sealer_cmd(&[
        "tail",
        "--store",
        &store,
        "--from-start",
        "--kind",
        "http",
        "--interval",
        "100ms",
    ])
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let stored_lines = lines_of(&mut stored);
    s.wait_metric("sealer_stream_readers", 1);
    seal_varied(&s, 1, 20);
    let from_sealer = wait_lines(&live_lines, 4, "tail --url");
    assert!(
        from_sealer
            .iter()
            .all(|e| e["event"]["http"]["response"]["status_code"] == 503)
    );
    let from_store = wait_lines(&stored_lines, 20, "tail --store");
    let seqs: Vec<u64> = from_store
        .iter()
        .map(|e| e["source"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    for mut child in [live, stored] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// As the gateway sidecars run: no index. Queries say so; proofs come from the store's
/// tiles and verify with the public key alone.
#[test]
fn without_the_index_queries_say_so_and_proofs_still_work() {
    let s = Sealer::start(
        "e2e.test/no-index",
        &["--index", "false", "--segment-max-age", "200ms"],
    );
    s.seal(&(varied(1) + "\n"));
    let (status, body) = s.get("/v1/events");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("index_disabled"), "{body}");
    assert_eq!(s.get_json("/v1/status")["indexed_size"], Value::Null);
    assert!(!s.data_dir().join("index").exists(), "no index on disk");

    seal_varied(&s, 2, 300);
    let verifier =
        NoteVerifier::parse(std::fs::read_to_string(s.public_key()).unwrap().trim()).unwrap();
    let size = s.wait_for("a checkpoint of all 301 events and the start entry", || {
        let head = s.get_json("/v1/status");
        (head["checkpoint_size"].as_u64() == Some(302) && head["checkpoint"].is_string())
            .then_some(302u64)
    });
    let b = s.get_json(&format!("/v1/proof/inclusion?seq=290&size={size}"));
    let head = LogHead::open(b["checkpoint"].as_str().unwrap(), &verifier).unwrap();
    let entry = b["entry"].as_str().unwrap();
    merkle::verify_inclusion(
        &merkle::leaf_hash(entry.as_bytes()),
        290,
        size,
        &hashes(&b["proof"]),
        &head.root,
    )
    .unwrap();
    let first = std::fs::read_dir(s.store().join("checkpoints"))
        .unwrap()
        .map(|e| {
            e.unwrap().file_name().to_str().unwrap()[..20]
                .parse::<u64>()
                .unwrap()
        })
        .filter(|n| *n > 0)
        .min()
        .unwrap();
    let c = s.get_json(&format!("/v1/proof/consistency?from={first}&to={size}"));
    let old = LogHead::open(c["from_checkpoint"].as_str().unwrap(), &verifier).unwrap();
    merkle::verify_consistency(first, size, &old.root, &head.root, &hashes(&c["proof"])).unwrap();
}

/// `sealer prove --store`: the bundle from the store alone (segments and tiles), with no
/// sealer running, checked and saved; the saved bundle proves offline too.
#[test]
fn prove_makes_the_bundle_from_the_store_alone() {
    let mut s = Sealer::start("e2e.test/prove-store", &["--index", "false"]);
    seal_varied(&s, 1, 700);
    s.stop();
    let (pk, store) = (s.public_key(), s.store());
    let saved = s.root().join("from-store.json");
    for seq in [0u64, 255, 256, 600, 700] {
        let run = s.run(&[
            "prove",
            "--store",
            store.to_str().unwrap(),
            "--seq",
            &seq.to_string(),
            "--public-key",
            pk.to_str().unwrap(),
            "--save",
            saved.to_str().unwrap(),
        ]);
        run.expect_code(0);
        assert!(
            run.stdout().contains(&format!("entry {seq} is in log")),
            "{}",
            run.stdout()
        );
        let bundle: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
        assert_eq!(bundle["seq"], seq);
        s.run(&[
            "prove",
            "--bundle",
            saved.to_str().unwrap(),
            "--public-key",
            pk.to_str().unwrap(),
        ])
        .expect_code(0);
    }
    // Against an older checkpoint, by size; and an entry beyond it is refused (exit 2).
    let sizes: Vec<u64> = std::fs::read_dir(store.join("checkpoints"))
        .unwrap()
        .map(|e| {
            e.unwrap().file_name().to_str().unwrap()[..20]
                .parse()
                .unwrap()
        })
        .collect();
    let older = *sizes.iter().filter(|n| **n > 1).min().unwrap();
    let args = |seq: u64| {
        vec![
            "prove".to_owned(),
            "--store".to_owned(),
            store.to_str().unwrap().to_owned(),
            "--seq".to_owned(),
            seq.to_string(),
            "--size".to_owned(),
            older.to_string(),
            "--public-key".to_owned(),
            pk.to_str().unwrap().to_owned(),
        ]
    };
    let run_args = |seq| {
        let a = args(seq);
        s.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    run_args(older - 1).expect_code(0);
    let run = run_args(older);
    run.expect_code(2);
    assert!(run.stderr().contains("not covered"), "{}", run.stderr());

    // A tile edited in the store: the proof through it no longer leads to the root.
    let tile = store.join("tile/0/000");
    let mut bytes = std::fs::read(&tile).unwrap();
    bytes[32 * 9] ^= 1;
    std::fs::write(&tile, bytes).unwrap();
    let run = s.run(&[
        "prove",
        "--store",
        store.to_str().unwrap(),
        "--seq",
        "8",
        "--public-key",
        pk.to_str().unwrap(),
    ]);
    run.expect_code(1);
    assert!(run.stderr().contains("NOT proven"), "{}", run.stderr());
}

#[test]
fn an_index_edited_on_disk_is_rebuilt_and_answers_stay_true() {
    let mut s = Sealer::start("e2e.test/index-rebuild", &FAST);
    seal_varied(&s, 1, 30);
    wait_indexed(&s);
    s.stop();
    // Someone edits the index (with Python's sqlite3): the chain value it keeps for its last
    // entry, which the start-up check compares with the store's, and a row that now points
    // at another entry.
    let db = s.data_dir().join("index/entries.sqlite");
    let edit = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1])\n\
             c.execute(\"UPDATE meta SET value = ? WHERE key = 'chain'\", ('00' * 32,))\n\
             c.commit()",
        ])
        .arg(&db)
        .status()
        .unwrap();
    assert!(edit.success());
    s.restart();
    let log = std::fs::read_to_string(s.log_path()).unwrap();
    assert!(
        log.contains("the index does not match the store; rebuilding it"),
        "{log}"
    );
    wait_indexed(&s);
    assert_eq!(all_pages(&s, "kind=http&limit=50").len(), 30);
    // Free text is matched on the entries read from the store: /admin/users is every 4th.
    let texts = all_pages(&s, "q=ADMIN/USERS&limit=3");
    let expected: Vec<u64> = (1..=30u64).filter(|n| n % 4 == 0).rev().collect();
    assert_eq!(texts, expected);
}
