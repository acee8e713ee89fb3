//! The sealed log in someone else's tools: DuckDB (PyPI `duckdb`, installed by
//! `cargo xtask test` into its tools directory) reads the exported NDJSON and the
//! sealed segments themselves, and counts what the query API counts.

use std::path::PathBuf;
use std::process::Command;

use harness::Sealer;
use serde_json::{Value, json};

/// The Python with DuckDB: `AUDIT_DUCKDB_PYTHON` (set by `cargo xtask test`), else the one
/// `cargo xtask test` installs.
fn duckdb_python() -> PathBuf {
    harness::locate::duckdb_python().unwrap_or_else(|e| panic!("{e:#}"))
}

fn event(seq: u64) -> String {
    let status = [200, 404, 403, 500][seq as usize % 4];
    json!({"source": {"id": "gw-duck/0123456789abcdef", "seq": seq},
           "event": {"start_time": "2026-11-28T09:00:00Z",
                     "http": {"request": {"method": "GET"}, "response": {"status_code": status}},
                     "url": {"path": format!("/p/{seq}")}}})
    .to_string()
}

/// Every page of a query, counted.
fn count_api(s: &Sealer, query: &str) -> u64 {
    let mut n = 0;
    let mut cursor = String::new();
    loop {
        let page = s.get_json(&format!("/v1/events?limit=1000&{query}{cursor}"));
        n += page["entries"].as_array().unwrap().len() as u64;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return n,
        }
    }
}

#[test]
fn duckdb_counts_what_the_query_api_counts() {
    let s = Sealer::start(
        "e2e.test/duckdb",
        &[
            "--segment-max-age",
            "100ms",
            "--checkpoint-interval",
            "200ms",
            "--segment-max-bytes",
            "20000",
        ],
    );
    for batch in 0..5 {
        let body: String = (1 + batch * 100..=(batch + 1) * 100)
            .map(|q| event(q) + "\n")
            .collect();
        s.seal(&body);
    }
    s.wait_stored();
    let total = s.get_json("/readyz")["log_size"].as_u64().unwrap();
    s.wait_until("the index to catch up", || {
        s.get_json("/v1/events?limit=1")["indexed_size"].as_u64() == Some(total)
    });
    let api_total = count_api(&s, "");
    let api_4xx = count_api(&s, "status=4xx&kind=http");
    assert_eq!(api_total, total);
    assert_eq!(api_4xx, 250);

    let export = s.root().join("entries.ndjson");
    let run = s.run(&[
        "export",
        "--store",
        &s.store_arg(),
        "--public-key",
        s.public_key().to_str().unwrap(),
    ]);
    run.expect_code(0);
    std::fs::write(&export, run.stdout()).unwrap();
    let segments = s.store().join("segments");
    assert!(
        std::fs::read_dir(&segments).unwrap().count() > 3,
        "several segments, so DuckDB reads a glob"
    );

    let script = r#"
import duckdb, json, sys
export, segments = sys.argv[1], sys.argv[2]
con = duckdb.connect()
def one(sql):
    return con.execute(sql).fetchone()[0]
print(json.dumps({
  "export_total": one(f"SELECT count(*) FROM read_json('{export}', format='newline_delimited')"),
  "export_4xx": one(f"SELECT count(*) FROM read_json('{export}', format='newline_delimited') "
                    "WHERE kind = 'http' AND event.http.response.status_code BETWEEN 400 AND 499"),
  "segments_total": one(f"SELECT count(*) FROM read_json('{segments}/*.ndjson', format='newline_delimited')"),
  "segments_4xx": one(f"SELECT count(*) FROM read_json('{segments}/*.ndjson', format='newline_delimited') "
                      "WHERE entry.kind = 'http' AND entry.event.http.response.status_code BETWEEN 400 AND 499"),
  "segments_max_seq": one(f"SELECT max(entry.seq) FROM read_json('{segments}/*.ndjson', format='newline_delimited')"),
}))
"#;
    let out = Command::new(duckdb_python())
        .args(["-c", script])
        .arg(&export)
        .arg(&segments)
        .output()
        .expect("DuckDB's Python runs");
    assert!(
        out.status.success(),
        "DuckDB failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        counts,
        json!({"export_total": total, "export_4xx": api_4xx,
               "segments_total": total, "segments_4xx": api_4xx,
               "segments_max_seq": total - 1})
    );
}
