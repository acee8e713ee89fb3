//! The published test vectors: `docs/test-vectors/log-v1.json`, also quoted in
//! `docs/log-format.md`. This test recomputes every value from the inputs with this crate and
//! compares. Set `AUDITLOG_WRITE_VECTORS=1` to rewrite the file after an intended change.

use std::path::PathBuf;

use auditlog::chain::{self, MacKey};
use auditlog::entry::{EntryKind, EntrySource, GapEvent, StartEvent};
use auditlog::event::IngestLine;
use auditlog::head::LogHead;
use auditlog::merkle::{self, leaf_hash};
use auditlog::note::NoteSigner;
use auditlog::record::parse_record;
use auditlog::seal::LogSealer;
use auditlog::tiles::{TileBuilder, TileId};
use auditlog::timestamp::Timestamp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ORIGIN: &str = "example.com/ingress-audit";

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

fn docs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn compute() -> Value {
    let hmac_key: [u8; 32] = std::array::from_fn(|i| i as u8);
    let seed: [u8; 32] = std::array::from_fn(|i| 0x20 + i as u8);
    let signer = NoteSigner::from_seed(ORIGIN, seed).unwrap();
    let mac = MacKey::new(&hmac_key);
    let mut sealer = LogSealer::new(ORIGIN, mac);
    let t = |s: &str| Timestamp::parse(s).unwrap();

    let start = serde_json::to_vec(&StartEvent {
        incarnation: "00000000000000a1".into(),
        sealer_version: "0.1.0".into(),
    })
    .unwrap();
    let ingest = br#"{"source":{"id":"gw-7d9f/w0/01","seq":1},"event":{"start_time":"2026-11-28T07:00:00.250Z","duration_ns":1250000,"request_id":"5d1b7c9e-8e0b-4d3a-9a51-2f4c1e7d0b6a","client":{"address":"203.0.113.7","port":51234},"enduser":{"id":"alice@example.com","source":"jwt"},"http":{"request":{"method":"POST","body":{"size":42,"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},"response":{"status_code":201,"body":{"size":17}}},"network":{"protocol":{"version":"2"}},"server":{"address":"shop.example.com"},"url":{"path":"/cart/items","query":"ref=mail","scheme":"https"},"user_agent":{"original":"curl/8.5.0"},"envoy":{"route":"shop","upstream_cluster":"outbound|8080||shop","upstream_host":"10.0.3.7:8080","response_flags":"-"}}}"#;
    let line = IngestLine::parse(ingest, &Default::default()).unwrap();
    let http = serde_json::to_vec(&line.event).unwrap();
    let source = EntrySource {
        id: line.source.id.clone(),
        seq: Some(1),
    };
    let gap = serde_json::to_vec(&GapEvent {
        count: 3,
        first_seq: 2,
        last_seq: 4,
        reason: "sequence_jump".into(),
    })
    .unwrap();
    let gap_source = EntrySource {
        id: line.source.id.clone(),
        seq: None,
    };
    let mut http5 = line.event.clone();
    http5.http.request.method = "GET".into();
    http5.http.request.body = None;
    http5.http.response.as_mut().unwrap().status_code = 200;
    let http5 = serde_json::to_vec(&http5).unwrap();
    let source5 = EntrySource {
        id: line.source.id.clone(),
        seq: Some(5),
    };

    let mut segment = Vec::new();
    let at = t("2026-11-28T07:00:00.300Z");
    sealer.seal(
        &mut segment,
        EntryKind::Start,
        t("2026-11-28T07:00:00Z"),
        None,
        &start,
    );
    sealer.seal(&mut segment, EntryKind::Http, at, Some(&source), &http);
    sealer.seal(&mut segment, EntryKind::Gap, at, Some(&gap_source), &gap);
    sealer.seal(&mut segment, EntryKind::Http, at, Some(&source5), &http5);

    let text = String::from_utf8(segment.clone()).unwrap();
    let mut entries = Vec::new();
    let mut leaves = Vec::new();
    for line in text.lines() {
        let r = parse_record(line.as_bytes()).unwrap();
        let leaf = leaf_hash(r.entry);
        leaves.push(leaf);
        entries.push(json!({
            "entry": std::str::from_utf8(r.entry).unwrap(),
            "leaf_hash": hex::encode(leaf),
            "chain": hex::encode(r.chain),
            "mac": hex::encode(r.mac),
            "record": line,
        }));
    }
    let head = LogHead {
        origin: ORIGIN.into(),
        size: sealer.size(),
        root: sealer.frontier().root(),
        chain: sealer.head(),
        time: t("2026-11-28T07:00:01Z"),
    };
    json!({
        "description": "ingress-audit-log v1 test vectors; see docs/log-format.md",
        "inputs": {
            "origin": ORIGIN,
            "hmac_key_hex": hex::encode(hmac_key),
            "ed25519_seed_hex": hex::encode(seed),
            "signer_key": signer.to_skey_string(),
            "verifier_key": signer.verifier().to_vkey_string(),
            "ingest_line": std::str::from_utf8(ingest).unwrap(),
        },
        "genesis": hex::encode(chain::genesis(ORIGIN)),
        "entries": entries,
        "segment_key": auditlog::layout::segment_key(0, sealer.size() - 1),
        "segment": text,
        "merkle": {
            "size": sealer.size(),
            "root": hex::encode(head.root),
            "inclusion_proof_index_2": merkle::inclusion_proof(&leaves, 2).unwrap().iter().map(hex::encode).collect::<Vec<_>>(),
            "consistency_proof_2_to_4": merkle::consistency_proof(&leaves, 2).unwrap().iter().map(hex::encode).collect::<Vec<_>>(),
            "root_size_2": hex::encode(merkle::root_of(&leaves[..2])),
        },
        "tiles": tile_vectors(&leaves),
        "checkpoint_key": head.key(),
        "checkpoint": head.sign(&signer).unwrap(),
        // What `GET /v1/proof/inclusion?seq=2` answers for this log, and `sealer prove`
        // checks: hashes in standard base64, as in checkpoints.
        "inclusion_bundle": {
            "seq": 2,
            "tree_size": sealer.size(),
            "entry": std::str::from_utf8(parse_record(text.lines().nth(2).unwrap().as_bytes()).unwrap().entry).unwrap(),
            "leaf_hash": B64.encode(leaves[2]),
            "proof": merkle::inclusion_proof(&leaves, 2).unwrap().iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
            "checkpoint": head.sign(&signer).unwrap(),
        },
    })
}

/// The tiles (c2sp.org/tlog-tiles) of the four-entry log, in hex, and of a synthetic tree of
/// 600 leaves whose leaf `i` is `SHA-256(0x00 || decimal i)`: each tile's key, its SHA-256 and
/// (for the level-1 tile) its hashes, and the tree's root.
fn tile_vectors(leaves: &[merkle::Hash]) -> Value {
    let tiles = |leaves: &[merkle::Hash]| {
        let mut b = TileBuilder::new();
        let mut out = Vec::new();
        for leaf in leaves {
            b.push(*leaf, |id, bytes| out.push((id, bytes)));
        }
        out.extend(b.partial_tiles());
        out
    };
    let log: serde_json::Map<String, Value> = tiles(leaves)
        .into_iter()
        .map(|(id, bytes)| (id.key(), json!(hex::encode(bytes))))
        .collect();
    let synthetic: Vec<merkle::Hash> = (0..600u32)
        .map(|i| leaf_hash(i.to_string().as_bytes()))
        .collect();
    let synthetic_tiles: Vec<Value> = tiles(&synthetic)
        .into_iter()
        .map(|(id, bytes)| {
            let mut v = json!({
                "key": id.key(),
                "hashes": id.width,
                "sha256": hex::encode(Sha256::digest(&bytes)),
            });
            if id.level == 1 {
                v["hex"] = json!(hex::encode(&bytes));
            }
            v
        })
        .collect();
    json!({
        "log": log,
        "synthetic_600": {
            "leaf": "SHA-256(0x00 || the decimal digits of i), i = 0..599",
            "root": hex::encode(merkle::root_of(&synthetic)),
            "tiles": synthetic_tiles,
        },
        "index_path_1234067": TileId::full(1, 1_234_067).key(),
    })
}

#[test]
fn published_vectors_match_this_implementation() {
    let computed = compute();
    let path = docs().join("test-vectors/log-v1.json");
    let pretty = serde_json::to_string_pretty(&computed).unwrap() + "\n";
    if std::env::var_os("AUDITLOG_WRITE_VECTORS").is_some() {
        std::fs::write(&path, &pretty).unwrap();
    }
    let published = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let published: Value = serde_json::from_str(&published).unwrap();
    assert_eq!(published, computed, "{} is out of date", path.display());
}

#[test]
fn log_format_document_quotes_the_vectors() {
    let v = compute();
    let doc = std::fs::read_to_string(docs().join("log-format.md")).unwrap();
    let quoted = [
        v["genesis"].as_str().unwrap(),
        v["entries"][0]["entry"].as_str().unwrap(),
        v["entries"][0]["leaf_hash"].as_str().unwrap(),
        v["entries"][0]["chain"].as_str().unwrap(),
        v["entries"][0]["mac"].as_str().unwrap(),
        v["merkle"]["root"].as_str().unwrap(),
        v["inputs"]["verifier_key"].as_str().unwrap(),
        v["tiles"]["log"]["tile/0/000.p/4"].as_str().unwrap(),
        v["tiles"]["synthetic_600"]["root"].as_str().unwrap(),
        v["tiles"]["synthetic_600"]["tiles"][3]["hex"]
            .as_str()
            .unwrap(),
    ];
    for t in v["tiles"]["synthetic_600"]["tiles"].as_array().unwrap() {
        for q in [t["key"].as_str().unwrap(), t["sha256"].as_str().unwrap()] {
            assert!(doc.contains(q), "docs/log-format.md does not quote {q}");
        }
    }
    for q in quoted {
        assert!(doc.contains(q), "docs/log-format.md does not quote {q}");
    }
    for line in v["checkpoint"].as_str().unwrap().lines() {
        assert!(
            doc.contains(line),
            "docs/log-format.md does not quote checkpoint line {line:?}"
        );
    }
}
