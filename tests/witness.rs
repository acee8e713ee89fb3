//! `sealer witness`, the C2SP tlog-witness, against checkpoints of a real sealed log: it
//! cosigns a log that grows, refuses a rollback and a fork signed with the log's real key
//! (keeping the fork as evidence), keeps its state across SIGKILL, and its cosignatures are
//! checked by a verifier written in Python from the spec (`tests/fixtures/verify_cosignature.py`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use auditlog::cosignature::CosignatureVerifier;
use auditlog::head::LogHead;
use auditlog::merkle::{self, Hash, leaf_hash};
use auditlog::note::{Note, NoteSigner};
use auditlog::record::parse_record;
use auditlog::witness::request_body;
use harness::Sealer;
use harness::browser::Browser;
use harness::sealer::{Serve, events, sealer_bin, sealer_cmd};

/// The store's checkpoints, `(size, signed note)`, smallest first (the newest of a size).
fn checkpoints(store: &Path) -> Vec<(u64, String)> {
    let mut names: Vec<String> = fs::read_dir(store.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut out: Vec<(u64, String)> = Vec::new();
    for n in names {
        let size: u64 = n[..20].parse().unwrap();
        let text = fs::read_to_string(store.join("checkpoints").join(&n)).unwrap();
        out.retain(|(s, _)| *s != size);
        out.push((size, text));
    }
    out
}

/// Every leaf hash of the store, in order.
fn leaves(store: &Path) -> Vec<Hash> {
    let mut names: Vec<PathBuf> = fs::read_dir(store.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for path in names {
        let bytes = fs::read(path).unwrap();
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            out.push(leaf_hash(parse_record(line).unwrap().entry));
        }
    }
    out
}

struct Witness {
    process: harness::Process,
    port: u16,
    args: Vec<PathBuf>,
    log: PathBuf,
}

impl Witness {
    /// `sealer witness` with `--key`, `--log` and `--state-dir` as given.
    fn start(key: &Path, log_key: &Path, state: &Path, log: &Path) -> Witness {
        let port = harness::free_port();
        let args = vec![key.to_owned(), log_key.to_owned(), state.to_owned()];
        let process = Self::spawn(port, &args, log);
        Witness {
            process,
            port,
            args,
            log: log.to_owned(),
        }
    }

    fn spawn(port: u16, args: &[PathBuf], log: &Path) -> harness::Process {
        Serve::witness(&sealer_bin(), port)
            .arg("--key")
            .arg(&args[0])
            .arg("--log")
            .arg(&args[1])
            .arg("--state-dir")
            .arg(&args[2])
            .start(log)
            .unwrap_or_else(|e| panic!("the witness did not start: {e:#}"))
    }

    fn restart_after_sigkill(&mut self) {
        self.process.kill();
        self.process = Self::spawn(self.port, &self.args, &self.log);
    }

    /// POST /add-checkpoint: status, content type and body.
    fn add(&self, old: u64, proof: &[Hash], checkpoint: &str) -> (u16, String, String) {
        let url = format!("http://127.0.0.1:{}/add-checkpoint", self.port);
        let result = ureq::post(&url).send_string(&request_body(old, proof, checkpoint));
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("POST {url}: {e}"),
        };
        let status = response.status();
        let content_type = response.header("content-type").unwrap_or("").to_owned();
        (status, content_type, response.into_string().unwrap())
    }

    fn metric(&self, name: &str) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        let text = ureq::get(&url).call().unwrap().into_string().unwrap();
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_owned()
    }
}

#[test]
fn a_witness_cosigns_a_growing_log_and_refuses_forks_and_rollbacks_across_crashes() {
    let mut s = Sealer::start("e2e.test/witnessed", &["--segment-max-age", "200ms"]);
    s.seal(&events("gw/w", 1, 20));
    s.wait_stored();
    s.seal(&events("gw/w", 21, 30));
    s.stop();
    let store = s.store();
    let all = checkpoints(&store);
    let (big, big_cp) = all.last().unwrap().clone();
    let (small, small_cp) = all
        .iter()
        .find(|(n, _)| *n > 1 && *n < big)
        .unwrap()
        .clone();
    let leaves = leaves(&store);
    assert_eq!(leaves.len() as u64, big);

    let keys = s.root().join("witness-keys");
    sealer_cmd(&[
        "keygen",
        "--witness",
        "--out",
        keys.to_str().unwrap(),
        "--origin",
        "witness.test/w1",
    ])
    .status()
    .unwrap()
    .success()
    .then_some(())
    .expect("keygen --witness");
    let vkey = fs::read_to_string(keys.join("witness.pub")).unwrap();
    let cosigner = CosignatureVerifier::parse(&vkey).unwrap();
    let state = s.root().join("witness-state");
    let mut w = Witness::start(
        &keys.join("witness.key"),
        &s.public_key(),
        &state,
        &s.root().join("witness.log"),
    );

    // First contact: from size 0, no proof.
    let (status, _, line) = w.add(0, &[], &small_cp);
    assert_eq!(status, 200, "{line}");
    let cosigned = Note::parse(&format!("{small_cp}{line}")).unwrap();
    cosigner
        .verify(&cosigned)
        .expect("the witness's cosignature verifies");

    // The log grew: the witness wants the proof from what it holds.
    let (status, content_type, body) = w.add(0, &[], &big_cp);
    assert_eq!(
        (status, content_type.as_str(), body.clone()),
        (409, "text/x.tlog.size", format!("{small}\n"))
    );
    let proof = merkle::consistency_proof(&leaves, small).unwrap();
    let (status, _, line) = w.add(small, &proof, &big_cp);
    assert_eq!(status, 200, "{line}");
    let cosigned_big = format!("{big_cp}{line}");

    // An independent verifier, from the spec, agrees; and refuses another body.
    let python = harness::locate::cryptography_python().unwrap_or_else(|e| panic!("{e:#}"));
    let script = harness::workspace_root().join("tests/fixtures/verify_cosignature.py");
    let check = |note: &str| {
        let file = s.root().join("cosigned.note");
        fs::write(&file, note).unwrap();
        Command::new(&python)
            .arg(&script)
            .arg(keys.join("witness.pub"))
            .arg(&file)
            .output()
            .unwrap()
    };
    let out = check(&cosigned_big);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ours = cosigner
        .verify(&Note::parse(&cosigned_big).unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        ours.to_string()
    );
    let out = check(&cosigned_big.replacen(&format!("\n{big}\n"), &format!("\n{}\n", big + 1), 1));
    assert!(
        !out.status.success(),
        "a changed checkpoint must not verify"
    );

    // A rollback: an older checkpoint is refused, whatever old size is claimed.
    assert_eq!(w.add(big, &[], &small_cp).0, 400);
    let (status, _, body) = w.add(0, &[], &small_cp);
    assert_eq!((status, body), (409, format!("{big}\n")));

    // A fork signed with the log's real key: the same size, another history.
    let signer = NoteSigner::parse(&fs::read_to_string(s.signing_key()).unwrap()).unwrap();
    let mut head = LogHead::open(&big_cp, &signer.verifier()).unwrap();
    head.root = merkle::root_of(
        &leaves[..leaves.len() - 1]
            .iter()
            .chain([&[7u8; 32]])
            .copied()
            .collect::<Vec<_>>(),
    );
    let forked = head.sign(&signer).unwrap();
    let (status, _, body) = w.add(big, &[], &forked);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("fork"), "{body}");
    let evidence: Vec<_> = fs::read_dir(state.join("evidence")).unwrap().collect();
    assert_eq!(evidence.len(), 1, "the fork is kept as evidence");
    assert!(w.metric("witness_forks_total").ends_with(" 1"));
    // A longer fork that claims to extend the cosigned tree: the proof fails (422).
    let mut longer = head.clone();
    longer.size += 3;
    let forked_longer = longer.sign(&signer).unwrap();
    assert_eq!(w.add(big, &proof, &forked_longer).0, 422);

    // Killed with SIGKILL, it comes back with the state it answered for.
    w.restart_after_sigkill();
    let (status, _, body) = w.add(0, &[], &big_cp);
    assert_eq!((status, body), (409, format!("{big}\n")));
    let (status, _, _) = w.add(big, &[], &big_cp);
    assert_eq!(status, 200, "the same checkpoint again is cosigned again");

    // Not a followed log; not the log's key.
    let stranger = NoteSigner::from_seed("e2e.test/other", [4; 32]).unwrap();
    let mut other = LogHead::open(&big_cp, &signer.verifier()).unwrap();
    other.origin = "e2e.test/other".into();
    assert_eq!(w.add(0, &[], &other.sign(&stranger).unwrap()).0, 404);
    let impostor = NoteSigner::from_seed("e2e.test/witnessed", [5; 32]).unwrap();
    assert_eq!(w.add(big, &[], &head.sign(&impostor).unwrap()).0, 403);
}

/// The sealer asks a witness to cosign each checkpoint and stores the cosigned checkpoint.
/// With the witness down, sealing goes on and verification with `--min-witnesses 1` fails,
/// naming the missing cosignature; once the witness is up, the cosignature catches up on a
/// later checkpoint and the store verifies with it.
#[test]
fn sealing_goes_on_while_a_witness_is_down_and_its_cosignature_catches_up() {
    let root = tempfile::tempdir().unwrap();
    let keys = root.path().join("witness-keys");
    assert!(
        sealer_cmd(&[
            "keygen",
            "--witness",
            "--out",
            keys.to_str().unwrap(),
            "--origin",
            "witness.test/w2"
        ])
        .status()
        .unwrap()
        .success()
    );
    let wpub = keys.join("witness.pub");
    let port = harness::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let witness_arg = format!("{url}={}", wpub.display());
    let mut s = Sealer::start(
        "e2e.test/witnessed-outage",
        &[
            "--segment-max-age",
            "200ms",
            "--checkpoint-interval",
            "1s",
            "--witness",
            &witness_arg,
        ],
    );
    // The witness is down: sealing goes on.
    s.seal(&events("gw/o", 1, 10));
    s.wait_stored();
    let status = s.get_json("/v1/status");
    let w = &status["witnesses"][0];
    assert_eq!(w["name"], "witness.test/w2", "{status}");
    s.wait_until("the witness's failure is shown", || {
        !s.get_json("/v1/status")["witnesses"][0]["last_error"].is_null()
    });
    let wpub_arg = wpub.to_str().unwrap();
    s.verify(&["--json", "--witness", wpub_arg, "--min-witnesses", "1"])
        .expect_code(1)
        .expect_class("missing_cosignature");

    // The witness comes up: the next checkpoint is cosigned and stored.
    let state = root.path().join("witness-state");
    let _witness = Serve::witness(&sealer_bin(), port)
        .arg("--key")
        .arg(keys.join("witness.key"))
        .arg("--log")
        .arg(s.public_key())
        .arg("--state-dir")
        .arg(&state)
        .start(&root.path().join("witness.log"))
        .unwrap_or_else(|e| panic!("{e:#}"));
    s.seal(&events("gw/o", 11, 10));
    s.wait_until("the newest checkpoint is cosigned", || {
        let st = s.get_json("/v1/status");
        st["witnesses"][0]["cosigned_size"] == st["checkpoint_size"]
            && st["witnesses"][0]["last_error"].is_null()
    });
    s.stop();
    let run = s.verify(&["--json", "--witness", wpub_arg, "--min-witnesses", "1"]);
    // The sealer's last checkpoint, signed at shutdown, may not have been cosigned yet.
    if run.code() != 0 {
        run.expect_class("missing_cosignature");
    }
    let witnessed: Vec<PathBuf> = fs::read_dir(s.store().join("witnessed"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        !witnessed.is_empty(),
        "cosigned checkpoints are stored beside the plain ones"
    );
    let newest = checkpoints(&s.store()).last().unwrap().0;
    let cosigned_newest = witnessed.iter().any(|p| {
        p.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&format!("{newest:020}"))
    });
    assert_eq!(
        run.code() == 0,
        cosigned_newest,
        "verify agrees with what is stored"
    );

    // A cosigned checkpoint edited in a copy of the store is caught.
    let copy = s.copy_store("edited-cosignature");
    let target = copy
        .join("witnessed")
        .join(witnessed[0].file_name().unwrap());
    let text = fs::read_to_string(&target).unwrap();
    let last = text.trim_end().rsplit(' ').next().unwrap().to_owned();
    let mut raw =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &last).unwrap();
    raw[20] ^= 1;
    let edited = text.replace(
        &last,
        &base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw),
    );
    fs::write(&target, edited).unwrap();
    s.verify_store(&copy, &["--json", "--witness", wpub_arg])
        .expect_code(1)
        .expect_class("bad_cosignature");
}

/// `sealer keygen --witness` into `dir`: the public key's path.
fn witness_keys(dir: &Path, name: &str) -> PathBuf {
    assert!(
        sealer_cmd(&[
            "keygen",
            "--witness",
            "--out",
            dir.to_str().unwrap(),
            "--origin",
            name
        ])
        .status()
        .unwrap()
        .success()
    );
    dir.join("witness.pub")
}

/// What the page's inclusion check says once it has a verdict.
fn inclusion_verdict(b: &mut Browser) -> String {
    b.eval("document.querySelector('#inclusion').textContent = ''; document.querySelector('#verify-inclusion').click(); true");
    let verdict = b.wait_for(
        "a verdict",
        "(() => { const t = document.querySelector('#inclusion').textContent;
                  return t && !t.startsWith('fetching') ? t : ''; })()",
        Duration::from_secs(30),
    );
    verdict.as_str().unwrap().to_owned()
}

/// Everyone who reads the log sees the witnesses: the sealer's metrics and the live page show
/// which witness cosigned the newest checkpoint; the page, `sealer prove` (from the store and
/// from the sealer) and `sealer verify --max-age` check the cosignatures with the witness's
/// key, and a key that did not cosign does not count.
#[test]
fn metrics_the_page_prove_and_verify_show_and_check_the_cosignatures() {
    let root = tempfile::tempdir().unwrap();
    let wpub = witness_keys(&root.path().join("witness-keys"), "witness.test/w3");
    let other = witness_keys(&root.path().join("other-keys"), "witness.test/never");
    let port = harness::free_port();
    let witness_arg = format!("http://127.0.0.1:{port}={}", wpub.display());
    let mut s = Sealer::start(
        "e2e.test/witnessed-readers",
        &[
            "--segment-max-age",
            "200ms",
            "--checkpoint-interval",
            "300ms",
            "--witness",
            &witness_arg,
        ],
    );
    let _witness = Serve::witness(&sealer_bin(), port)
        .arg("--key")
        .arg(root.path().join("witness-keys/witness.key"))
        .arg("--log")
        .arg(s.public_key())
        .arg("--state-dir")
        .arg(root.path().join("witness-state"))
        .start(&root.path().join("witness.log"))
        .unwrap_or_else(|e| panic!("{e:#}"));
    s.seal(&events("gw/r", 1, 12));
    s.wait_stored();
    let cosigned = s.wait_for("the newest checkpoint to be cosigned", || {
        let st = s.get_json("/v1/status");
        let w = &st["witnesses"][0];
        (w["cosigned_size"] == st["checkpoint_size"] && w["last_error"].is_null())
            .then(|| w["cosigned_size"].as_u64().unwrap())
    });
    let (_, metrics) = s.get("/metrics");
    let metric = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    assert_eq!(
        metric("sealer_witness_failing{witness=\"witness.test/w3\"}"),
        0
    );
    // At least that size: a later checkpoint may have been cosigned since.
    assert!(metric("sealer_witness_cosigned_size{witness=\"witness.test/w3\"}") >= cosigned);
    assert!(metric("sealer_witness_cosigned_timestamp_seconds{witness=\"witness.test/w3\"}") > 0);

    // The page: who cosigned the newest checkpoint, and the cosignature checked in the
    // browser with the witness's key.
    let mut b = Browser::start();
    b.navigate(&s.url("/"));
    b.wait_for(
        "the witness on the page",
        "(document.querySelector('#witnesses')?.textContent ?? '').includes('witness.test/w3 cosigned the newest checkpoint')",
        Duration::from_secs(30),
    );
    b.wait_for(
        "the history",
        "document.querySelectorAll('#entries tbody tr').length >= 12",
        Duration::from_secs(30),
    );
    b.eval("document.querySelector('#entries tbody tr:last-child').click(); true");
    b.wait_for(
        "the detail view",
        "!document.querySelector('#detail').hidden",
        Duration::from_secs(30),
    );
    let wkey = fs::read_to_string(&wpub).unwrap();
    b.eval(&format!(
        "document.querySelector('#witness-keys').value = {}; true",
        serde_json::json!(wkey.trim())
    ));
    let verdict = inclusion_verdict(&mut b);
    assert!(
        verdict.starts_with("included")
            && verdict.contains("Cosigned by witness witness.test/w3 at"),
        "{verdict}"
    );
    assert_eq!(
        b.eval("document.querySelector('#inclusion').className"),
        serde_json::json!("ok")
    );
    let okey = fs::read_to_string(&other).unwrap();
    b.eval(&format!(
        "document.querySelector('#witness-keys').value = {}; true",
        serde_json::json!(format!("{} {}", wkey.trim(), okey.trim()))
    ));
    let verdict = inclusion_verdict(&mut b);
    assert!(
        verdict.contains("NOT COSIGNED: no cosignature by witness.test/never"),
        "{verdict}"
    );
    assert_eq!(
        b.eval("document.querySelector('#inclusion').className"),
        serde_json::json!("bad")
    );
    // A cosignature altered on the way is caught by the page itself.
    b.eval(&format!(
        "document.querySelector('#witness-keys').value = {}; true",
        serde_json::json!(wkey.trim())
    ));
    b.eval(
        "(() => { const orig = window.fetch;
            window.fetch = async (...a) => {
              const r = await orig(...a);
              if (!String(a[0]).includes('/v1/proof/')) return r;
              const j = await r.json();
              const lines = j.checkpoint.split('\\n');
              const i = lines.findIndex((l) => l.startsWith('\\u2014 witness.test/w3 '));
              const raw = Uint8Array.from(atob(lines[i].split(' ')[2]), (c) => c.charCodeAt(0));
              raw[40] ^= 1;
              lines[i] = lines[i].split(' ').slice(0, 2).join(' ') + ' ' + btoa(String.fromCharCode(...raw));
              j.checkpoint = lines.join('\\n');
              return new Response(JSON.stringify(j), {status: 200});
            }; return true; })()",
    );
    let verdict = inclusion_verdict(&mut b);
    assert!(
        verdict.contains("THE COSIGNATURE BY witness.test/w3 DOES NOT VERIFY"),
        "{verdict}"
    );

    // sealer prove, from the sealer and from the store.
    let (wpub_arg, other_arg) = (wpub.to_str().unwrap(), other.to_str().unwrap());
    let url = s.url("");
    let prove = |s: &Sealer, extra: &[&str]| {
        let pk = s.public_key();
        let mut args = vec!["prove", "--public-key", pk.to_str().unwrap(), "--seq", "3"];
        args.extend(extra);
        s.run(&args)
    };
    let run = prove(&s, &["--url", &url, "--witness", wpub_arg]);
    run.expect_code(0);
    assert!(
        run.stdout()
            .contains("cosigned by witness witness.test/w3 at"),
        "{}",
        run.stdout()
    );
    // Two witnesses required, one of them never asked: the sealer has no such checkpoint.
    let both_witnesses = [
        "--witness",
        wpub_arg,
        "--witness",
        other_arg,
        "--min-witnesses",
        "2",
    ];
    prove(&s, &[&["--url", &url][..], &both_witnesses].concat()).expect_code(1);
    // A position no tree covers is refused, not a panic.
    let (status, body) = s.get("/v1/proof/inclusion?seq=18446744073709551615&cosigned=true");
    assert_eq!(status, 404, "{body}");
    s.stop();
    let store = s.store_arg();
    let run = prove(&s, &["--store", &store, "--witness", wpub_arg]);
    run.expect_code(0);
    assert!(run.stdout().contains("cosigned by witness witness.test/w3"));
    prove(&s, &["--store", &store, "--witness", other_arg]).expect_code(1);
    prove(&s, &[&["--store", &store][..], &both_witnesses].concat()).expect_code(1);

    // verify: a cosigned checkpoint signed within --max-age counts even when the sealer's
    // last checkpoint, signed as it stopped, was not cosigned.
    let run = s.verify(&[
        "--json",
        "--witness",
        wpub_arg,
        "--min-witnesses",
        "1",
        "--max-age",
        "1h",
    ]);
    run.expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(
        report["cosigned"]["witnesses"][0][0], "witness.test/w3",
        "{report}"
    );
    s.verify(&[
        "--json",
        "--witness",
        other_arg,
        "--min-witnesses",
        "1",
        "--max-age",
        "1h",
    ])
    .expect_code(1)
    .expect_class("missing_cosignature");

    // Incrementally from a trusted newest checkpoint, a recent cosigned one still counts.
    let trusted = root.path().join("trusted.note");
    s.verify(&["--save-checkpoint", trusted.to_str().unwrap()])
        .expect_code(0);
    s.verify(&[
        "--checkpoint",
        trusted.to_str().unwrap(),
        "--witness",
        wpub_arg,
        "--min-witnesses",
        "1",
        "--max-age",
        "1h",
    ])
    .expect_code(0);

    // A planted copy with a broken line for the witness is named, and does not cancel the
    // witness's valid cosignature of the same checkpoint.
    let copy = s.copy_store("planted-cosignature");
    let genuine = fs::read_dir(copy.join("witnessed"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let text = fs::read_to_string(&genuine).unwrap();
    let line = text.lines().last().unwrap().to_owned();
    let mut raw = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        line.rsplit(' ').next().unwrap(),
    )
    .unwrap();
    raw[40] ^= 1;
    let broken = format!(
        "{} {}",
        line.rsplit_once(' ').unwrap().0,
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw)
    );
    let name = genuine.file_name().unwrap().to_str().unwrap().to_owned();
    let planted = copy
        .join("witnessed")
        .join(format!("{}00000000.note", &name[..name.len() - 13]));
    fs::write(&planted, text.replace(&line, &broken)).unwrap();
    let run = s.verify_store(
        &copy,
        &[
            "--json",
            "--witness",
            wpub_arg,
            "--min-witnesses",
            "1",
            "--max-age",
            "1h",
        ],
    );
    run.expect_code(1)
        .expect_class("bad_cosignature")
        .expect_no_class("missing_cosignature");
    let planted_key = format!(
        "witnessed/{}",
        planted.file_name().unwrap().to_str().unwrap()
    );
    assert!(
        run.problems()
            .iter()
            .any(|(class, at)| class == "bad_cosignature" && at == &planted_key),
        "{:?}",
        run.problems()
    );

    // The monitor shows the witness's agreement.
    let listen = format!("127.0.0.1:{}", harness::free_port());
    let monitor = sealer_cmd(&[
        "monitor",
        "--store",
        &store,
        "--public-key",
        s.public_key().to_str().unwrap(),
        "--state-dir",
        root.path().join("monitor-state").to_str().unwrap(),
        "--interval",
        "300ms",
        "--max-age",
        "1h",
        "--witness",
        wpub_arg,
        "--witness",
        other_arg,
        "--listen",
        &listen,
    ]);
    let _monitor =
        harness::Process::spawn("the monitor", monitor, &root.path().join("monitor.log")).unwrap();
    s.wait_until("the monitor shows who cosigned", || {
        let m = ureq::get(&format!("http://{listen}/metrics"))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default();
        has_sample(
            &m,
            "audit_monitor_witness_cosigned{witness=\"witness.test/w3\"} 1",
        ) && has_sample(
            &m,
            "audit_monitor_witness_cosigned{witness=\"witness.test/never\"} 0",
        )
    });
}

/// Whether OpenMetrics `text` holds the sample line `sample` (`name{labels} value`), not
/// just the words somewhere (a `# HELP` line may hold them too).
fn has_sample(text: &str, sample: &str) -> bool {
    text.lines().any(|l| l == sample)
}

/// The metric names a rule's expression uses (`audit_monitor_…`, `witness_…`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("audit_monitor_") || word.starts_with("witness_") {
            names.push(word.to_owned());
        }
    }
    names
}

/// `sealer monitor` verifies on a schedule: a tampered store becomes a failing metric within
/// an interval. The shipped alert rules use only metrics the monitor and the witness export.
#[test]
fn the_monitor_turns_tampering_into_a_failing_metric_and_the_alert_rules_match_it() {
    let mut s = Sealer::start("e2e.test/monitored", &["--segment-max-age", "200ms"]);
    s.seal(&events("gw/m", 1, 40));
    s.stop();
    let state = s.root().join("monitor-state");
    let port = harness::free_port();
    let listen = format!("127.0.0.1:{port}");
    let cmd = sealer_cmd(&[
        "monitor",
        "--store",
        s.store().to_str().unwrap(),
        "--public-key",
        s.public_key().to_str().unwrap(),
        "--hmac-key",
        s.hmac_key().to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--interval",
        "300ms",
        "--full-every",
        "1s",
        "--listen",
        &listen,
    ]);
    let _monitor =
        harness::Process::spawn("the monitor", cmd, &s.root().join("monitor.log")).unwrap();
    let metrics = || -> String {
        ureq::get(&format!("http://{listen}/metrics"))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default()
    };
    s.wait_until("the monitor verifies the log", || {
        has_sample(&metrics(), "audit_monitor_last_run_ok 1")
    });
    assert!(
        state.join("trusted.note").exists(),
        "the verified checkpoint is kept; the monitor on {listen} says:\n{}\nits log:\n{}",
        metrics(),
        fs::read_to_string(s.root().join("monitor.log")).unwrap_or_default()
    );
    let healthy = metrics();
    assert!(
        has_sample(&healthy, "audit_monitor_log_entries 41"),
        "{healthy}"
    );

    // Tamper with an entry: within an interval or two (a full run comes every second) the
    // metric fails and names the problem.
    let segment = fs::read_dir(s.store().join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let bytes = fs::read(&segment).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    fs::write(&segment, text.replacen("\"seq\":1", "\"seq\":9", 1)).unwrap();
    s.wait_until("the monitor reports the tampering", || {
        let m = metrics();
        has_sample(&m, "audit_monitor_last_run_ok 0")
            && m.contains("\naudit_monitor_problems{class=")
    });

    // Every metric the alert rules use is exported by the monitor or the witness.
    let keys = s.root().join("witness-keys");
    assert!(
        sealer_cmd(&["keygen", "--witness", "--out", keys.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    let w = Witness::start(
        &keys.join("witness.key"),
        &s.public_key(),
        &s.root().join("w-state"),
        &s.root().join("w.log"),
    );
    let witness_metrics = ureq::get(&format!("http://127.0.0.1:{}/metrics", w.port))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let exported = format!("{healthy}{witness_metrics}");
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &fs::read_to_string(
            harness::workspace_root().join("envoy-config/monitoring/audit-alerts.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for rule in rules["groups"][0]["rules"].as_sequence().unwrap() {
        let expr = rule["expr"].as_str().unwrap();
        for name in metric_names(expr) {
            assert!(
                exported.contains(&format!("# TYPE {}", name.trim_end_matches("_total"))),
                "{name} (in {expr}) is not exported"
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "the rules name the metrics: {checked}");
}
