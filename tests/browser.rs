//! The live page in headless Chromium (Debian's `chromium`, installed by `cargo xtask
//! test`): it loads, shows new entries while traffic flows, applies a filter, opens an entry
//! and verifies its inclusion in the browser, shows a gap unmistakably, and reads in dark
//! mode. Screenshots go to `target/screenshots/` (the ones in `docs/screenshots/` come from
//! this test).

use std::path::PathBuf;
use std::time::Duration;

use harness::Sealer;
use harness::browser::Browser;
use serde_json::json;

const SOURCE: &str = "gw-web/0123456789abcdef";
const PATIENCE: Duration = Duration::from_secs(30);

fn event(seq: u64) -> String {
    let statuses = [200, 200, 201, 302, 404, 403, 503];
    let paths = ["/", "/shop/cart", "/admin/users", "/api/orders", "/login"];
    let mut e = json!({
        "source": {"id": SOURCE, "seq": seq},
        "event": {"start_time": "2026-11-28T09:00:00Z",
                  "http": {"request": {"method": (["GET", "POST"][seq as usize % 2])},
                           "response": {"status_code": statuses[seq as usize % 7]}},
                  "url": {"path": paths[seq as usize % 5], "scheme": "https"},
                  "server": {"address": "shop.example.com"},
                  "client": {"address": format!("198.51.100.{}", seq % 9)}}
    });
    if seq.is_multiple_of(3) {
        e["event"]["enduser"] =
            json!({"id": format!("user{}@example.com", seq % 4), "source": "jwt"});
    }
    e.to_string()
}

fn seal(s: &Sealer, seqs: impl Iterator<Item = u64>) {
    let body: String = seqs.map(|q| event(q) + "\n").collect();
    s.seal(&body);
}

fn screenshots() -> PathBuf {
    harness::workspace_root().join("target/screenshots")
}

fn rows(b: &mut Browser) -> u64 {
    b.eval("document.querySelectorAll('#entries tbody tr').length")
        .as_u64()
        .unwrap()
}

#[test]
fn the_live_page_shows_filters_and_proves_entries() {
    let s = Sealer::start(
        "e2e.test/live-page",
        &[
            "--segment-max-age",
            "100ms",
            "--checkpoint-interval",
            "200ms",
        ],
    );
    seal(&s, 1..=30);
    s.wait_stored();
    let mut b = Browser::start();
    b.emulate(1280, 800, false);
    b.navigate(&s.url("/"));
    // History from the index: the start entry and 30 events.
    b.wait_for(
        "the history",
        "document.querySelectorAll('#entries tbody tr').length >= 31",
        PATIENCE,
    );
    b.wait_for(
        "the live stream",
        "document.querySelector('#live').textContent === 'live'",
        PATIENCE,
    );
    b.wait_for(
        "the checkpoint",
        "document.querySelector('#checkpoint').textContent.includes('entries')",
        PATIENCE,
    );

    // Traffic while the page is open: new rows arrive through the stream.
    let before = rows(&mut b);
    seal(&s, 31..=45);
    b.wait_for(
        "15 new rows",
        &format!(
            "document.querySelectorAll('#entries tbody tr').length >= {}",
            before + 15
        ),
        PATIENCE,
    );
    let newest = b.eval("document.querySelector('#entries tbody tr').dataset.seq");
    assert_eq!(newest, json!("45"), "the newest entry on top");
    // A lost range is a gap entry, shown in red.
    s.seal(&(event(50) + "\n"));
    b.wait_for(
        "the gap row",
        "document.querySelector('#entries tbody tr.gap') !== null",
        PATIENCE,
    );
    let gap = b.eval("document.querySelector('#entries tbody tr.gap').textContent");
    assert!(
        gap.as_str().unwrap().contains("GAP: 4 event(s) lost"),
        "{gap}"
    );
    b.wait_for(
        "the chart",
        "document.querySelectorAll('#chart rect').length > 0",
        PATIENCE,
    );
    b.screenshot(&screenshots().join("live-page.png"));

    // A filter: only 5xx, from the index and the stream alike.
    b.eval(
        "document.querySelector('#filters [name=status]').value = '5xx';
         document.querySelector('#filters button[type=submit]').click(); true",
    );
    let expected = (1..=50u64)
        .filter(|q| *q <= 45 || *q == 50)
        .filter(|q| q % 7 == 6)
        .count() as u64;
    s.wait_stored();
    b.wait_for(
        "the filtered rows",
        &format!(
            "(() => {{ const r = [...document.querySelectorAll('#entries tbody tr')];
                return r.length === {expected} && r.every(tr => tr.children[5].textContent === '503'); }})()"
        ),
        PATIENCE,
    );
    assert_eq!(
        b.eval("location.hash.includes('status=5xx')"),
        json!(true),
        "the filter is in the address, to share"
    );
    b.screenshot(&screenshots().join("filtered-5xx.png"));

    // Open an entry and verify its inclusion, the checkpoint's signature included.
    let public_key = std::fs::read_to_string(s.public_key()).unwrap();
    b.eval("document.querySelector('#entries tbody tr').click(); true");
    b.wait_for(
        "the detail view",
        "!document.querySelector('#detail').hidden",
        PATIENCE,
    );
    b.eval(&format!(
        "document.querySelector('#pubkey').value = {}; true",
        json!(public_key.trim())
    ));
    // The entry may not be under a stored checkpoint yet: verify again until it is.
    let included = harness::wait::until("the inclusion to verify", PATIENCE, || {
        b.eval("document.querySelector('#verify-inclusion').click(); true");
        let verdict = b.wait_for(
            "a verdict",
            "(() => { const t = document.querySelector('#inclusion').textContent;
                      return t && !t.startsWith('fetching') ? t : ''; })()",
            PATIENCE,
        );
        let text = verdict.as_str().unwrap().to_owned();
        text.starts_with("included").then_some(text)
    });
    let text = included.unwrap_or_else(|timeout| panic!("{timeout}"));
    assert!(
        text.contains("signature verifies with the key given"),
        "{text}"
    );
    assert_eq!(
        b.eval("document.querySelector('#inclusion').className"),
        json!("ok")
    );
    b.emulate(1280, 800, true);
    let background = b.eval("getComputedStyle(document.body).backgroundColor");
    assert_eq!(background, json!("rgb(20, 23, 28)"), "dark mode");
    b.screenshot(&screenshots().join("entry-detail-dark.png"));

    // A tampered proof is shown as such: the page recomputes the path itself.
    b.eval(
        "(() => { const orig = window.fetch;
            window.fetch = async (...a) => {
              const r = await orig(...a);
              if (!String(a[0]).includes('/v1/proof/')) return r;
              const j = await r.json();
              j.entry = j.entry.replace('\"seq\":', '\"seq\": ');
              return new Response(JSON.stringify(j), {status: 200});
            }; return true; })()",
    );
    b.eval("document.querySelector('#verify-inclusion').click(); true");
    let verdict = b.wait_for(
        "the tampered verdict",
        "(() => { const t = document.querySelector('#inclusion').textContent;
                  return t && !t.startsWith('fetching') ? t : ''; })()",
        PATIENCE,
    );
    assert!(
        verdict.as_str().unwrap().starts_with("NOT INCLUDED"),
        "{verdict}"
    );
}

#[test]
fn the_page_needs_the_read_token_beyond_loopback_rules() {
    let s = Sealer::start_with_tokens("e2e.test/page-auth", &[]);
    let (ingest, read) = s.tokens.clone().unwrap();
    let get = |auth: Option<String>| {
        let mut req = ureq::get(&s.url("/"));
        if let Some(a) = &auth {
            req = req.set("Authorization", a);
        }
        match req.call() {
            Ok(r) => (r.status(), r.header("www-authenticate").map(str::to_owned)),
            Err(ureq::Error::Status(c, r)) => (c, r.header("www-authenticate").map(str::to_owned)),
            Err(e) => panic!("{e}"),
        }
    };
    use base64::Engine;
    let basic = |t: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("auditor:{t}"))
        )
    };
    let (status, challenge) = get(None);
    assert_eq!(status, 401);
    assert!(
        challenge.as_deref().unwrap_or("").starts_with("Basic "),
        "a browser is asked for the token: {challenge:?}"
    );
    assert_eq!(
        get(Some(basic(&ingest))).0,
        403,
        "the ingest token cannot read"
    );
    assert_eq!(get(Some(basic(&read))).0, 200);
    assert_eq!(get(Some(format!("Bearer {read}"))).0, 200);
}
