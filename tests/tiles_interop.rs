//! The store's checkpoints and tiles read by an independent implementation of C2SP
//! tlog-checkpoint and tlog-tiles: the `tlog_tiles` crate (crates.io, a port of Go's
//! `golang.org/x/mod/sumdb/tlog`), which shares no code with this project. It parses the
//! checkpoints, fetches tiles by its own coordinates, authenticates them against the signed
//! root, and proves and checks inclusion and consistency with its own algorithms.

use std::fs;
use std::path::{Path, PathBuf};

use auditlog::record::parse_record;
use auditlog::tiles::TileId;
use harness::Sealer;
use harness::sealer::events;
use tlog_tiles::{
    Checkpoint, Tile, TileHashReader, TileReader, check_record, check_tree, prove_record,
    prove_tree, record_hash,
};

/// Tiles from a local store, named as c2sp.org/tlog-tiles names them.
struct StoreTiles {
    store: PathBuf,
}

impl TileReader for StoreTiles {
    fn height(&self) -> u8 {
        8
    }

    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                assert!(!t.is_data(), "only hash tiles are asked for");
                let id = TileId {
                    level: t.level(),
                    index: t.level_index(),
                    width: t.width() as u16,
                };
                let want = t.width() as usize * 32;
                // The tile as named, or the full tile it is a prefix of.
                let bytes = fs::read(self.store.join(id.key()))
                    .or_else(|_| fs::read(self.store.join(TileId::full(id.level, id.index).key())))
                    .map_err(|_| tlog_tiles::Error::InvalidTile)?;
                if bytes.len() < want {
                    return Err(tlog_tiles::Error::InvalidTile);
                }
                Ok(bytes[..want].to_vec())
            })
            .collect()
    }

    fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
}

/// The checkpoints in a local store, parsed by `tlog_tiles` (the note body, up to the blank
/// line before the signatures), smallest tree first.
fn checkpoints(store: &Path) -> Vec<Checkpoint> {
    let mut out: Vec<Checkpoint> = fs::read_dir(store.join("checkpoints"))
        .unwrap()
        .map(|e| {
            let text = fs::read_to_string(e.unwrap().path()).unwrap();
            let body_end = text.find("\n\n").expect("a signed note") + 1;
            Checkpoint::from_bytes(&text.as_bytes()[..body_end])
                .unwrap_or_else(|e| panic!("tlog_tiles cannot parse {text:?}: {e}"))
        })
        .collect();
    out.sort_by_key(Checkpoint::size);
    out
}

/// Entry `seq`'s canonical bytes, from its segment.
fn entry(store: &Path, seq: u64) -> Vec<u8> {
    for e in fs::read_dir(store.join("segments")).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let (first, last) = name.split_once('-').unwrap();
        let (first, last): (u64, u64) = (first.parse().unwrap(), last.parse().unwrap());
        if (first..=last).contains(&seq) {
            let bytes = fs::read(&path).unwrap();
            let line = bytes
                .split(|&b| b == b'\n')
                .nth((seq - first) as usize)
                .unwrap();
            return parse_record(line).unwrap().entry.to_vec();
        }
    }
    panic!("no segment holds entry {seq}");
}

#[test]
fn an_independent_tlog_tiles_implementation_proves_entries_from_the_stored_tiles() {
    let mut s = Sealer::start(
        "e2e.test/tiles-interop",
        &["--index", "false", "--segment-max-age", "200ms"],
    );
    s.seal(&events("gw/interop", 1, 300));
    s.wait_stored();
    s.seal(&events("gw/interop", 301, 400));
    s.stop();
    let store = s.store();
    let all = checkpoints(&store);
    let newest = all.last().unwrap();
    let older = all
        .iter()
        .find(|c| c.size() > 1 && c.size() < newest.size())
        .unwrap();
    assert!(newest.size() > 600, "{}", newest.size());
    assert_eq!(newest.origin(), "e2e.test/tiles-interop");
    assert!(
        newest.extension().starts_with("chain "),
        "{}",
        newest.extension()
    );

    let reader = StoreTiles {
        store: store.clone(),
    };
    let (t, th) = (newest.size(), *newest.hash());
    for n in [0, 1, 255, 256, 257, older.size() - 1, t - 1] {
        let hashes = TileHashReader::new(t, th, &reader);
        let proof = prove_record(t, n, &hashes).unwrap_or_else(|e| panic!("entry {n}: {e:?}"));
        check_record(&proof, t, th, n, record_hash(&entry(&store, n)))
            .unwrap_or_else(|e| panic!("entry {n}: {e:?}"));
        // The proof is for this entry only.
        assert!(check_record(&proof, t, th, n, record_hash(b"another entry")).is_err());
    }
    let hashes = TileHashReader::new(t, th, &reader);
    let proof = prove_tree(t, older.size(), &hashes).unwrap();
    check_tree(&proof, t, th, older.size(), *older.hash()).unwrap();

    // An edited tile yields no proof that checks against the signed root: the reader refuses
    // the tile, or the proof made from it fails.
    let tile = store.join("tile/0/001");
    let mut bytes = fs::read(&tile).unwrap();
    bytes[5] ^= 1;
    fs::write(&tile, bytes).unwrap();
    let hashes = TileHashReader::new(t, th, &reader);
    if let Ok(proof) = prove_record(t, 300, &hashes) {
        assert!(
            check_record(&proof, t, th, 300, record_hash(&entry(&store, 300))).is_err(),
            "a proof through an edited tile must not check"
        );
    }
}
