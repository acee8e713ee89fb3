//! Reading a store back: full verification and verified export.
//!
//! This drives the I/O-free [`auditlog::verify`] over a [`Store`]: it lists the store, starts
//! reading and checking the segments in parallel ([`CheckedSegments`]), loads the
//! checkpoints meanwhile, and absorbs the checked segments in log order. With
//! [`VerifyOptions::storage_checks`] it adds what only the storage can show (object versions,
//! delete markers and locks on S3).

use std::collections::VecDeque;
use std::io::Write;

use auditlog::chain::MacKey;
use auditlog::cosignature::CosignatureVerifier;
use auditlog::entry::EntryKind;
use auditlog::head::LogHead;
use auditlog::layout;
use auditlog::merkle;
use auditlog::merkle::{Frontier, Hash};
use auditlog::note::NoteVerifier;
use auditlog::query::{Fields, Filter};
use auditlog::record::parse_record;
use auditlog::tiles::{HEIGHT, MAX_LEVEL, TILES, TileBuilder, TileId, TileSet, WIDTH};
use auditlog::timestamp::Timestamp;
use auditlog::verify::{CosignedSummary, ProblemClass, Report, StoreVerifier, TileCheck};
use indicatif::{ProgressBar, ProgressStyle};

use crate::read::checked_segments::CheckedSegments;
use crate::read::cosigned::{self, Cosigned};
use crate::read::stored_log::{SEGMENT_SEARCH_WINDOW, segments_from_key};
use crate::read::tiles::{TilesError, with_tiles};
use crate::store::{ObjectInfo, Store, StoreError};

/// How to verify.
#[derive(Clone, Default)]
pub struct VerifyOptions {
    /// Check every MAC (needs the secret HMAC key).
    pub mac_key: Option<MacKey>,
    /// A checkpoint kept from an earlier verification: `(name, signed note)`.
    pub trusted: Option<(String, String)>,
    /// Show a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Also ask the store for storage-level evidence ([`Store::storage_findings`]).
    pub storage_checks: bool,
    /// With `storage_checks`: the retention every object must have, in days after it was
    /// written.
    pub min_retention_days: Option<u32>,
    /// With `trusted`: verify only what comes after it (its tree's right edge is read from
    /// the tiles). Without: every entry, and the trusted checkpoint among them.
    pub incremental: bool,
    /// Witnesses whose cosignatures count (`--witness`).
    pub witnesses: Vec<CosignatureVerifier>,
    /// How many of them must have cosigned the newest checkpoint (`--min-witnesses`).
    pub min_witnesses: usize,
    /// Also count a cosigned checkpoint signed within this age, not only one of the newest
    /// checkpoint's size (`--max-age` with `--min-witnesses`).
    pub cosigned_max_age: Option<std::time::Duration>,
}

/// Verify the whole store.
pub async fn verify<S: Store + Clone>(
    store: &S,
    verifier: &NoteVerifier,
    options: &VerifyOptions,
) -> Result<Report, StoreError> {
    Ok(verify_with_state(store, verifier, options).await?.0)
}

/// Verify the whole store and also return the recomputed tree and chain head.
pub async fn verify_with_state<S: Store + Clone>(
    store: &S,
    verifier: &NoteVerifier,
    options: &VerifyOptions,
) -> Result<(Report, Frontier, Hash), StoreError> {
    // An incremental run lists only what comes after the trusted tree (and the segment that
    // ends it), so that its cost follows the new entries, not the log's age.
    let resumable = match (&options.trusted, options.incremental) {
        (Some(trusted), true) => LogHead::open(&trusted.1, verifier)
            .ok()
            .filter(|head| head.size > 0)
            .map(|head| head.size),
        _ => None,
    };
    let mut objects = match resumable {
        Some(size) => list_from(store, size).await?,
        None => store.list("").await?,
    };
    let mut v = match (&options.trusted, options.incremental) {
        (Some(trusted), true) => match resume(store, verifier, options, trusted, &objects).await? {
            Ok(v) => v,
            Err((class, why)) => {
                let mut v = full_verifier(verifier, options);
                match class {
                    Some(class) => v.add_problem(class, trusted.0.clone(), why),
                    None => v.add_warning(format!("verified in full: {why}")),
                }
                if resumable.is_some() {
                    objects = store.list("").await?;
                }
                v
            }
        },
        _ => full_verifier(verifier, options),
    };
    let start = v.start();
    let mut segments = Vec::new();
    // Checkpoints and unknown objects, taken in key order once the segments are on their way.
    let mut others = Vec::new();
    for obj in objects {
        if obj.key.starts_with(layout::CHECKPOINTS) {
            if layout::parse_checkpoint_key(&obj.key).is_none_or(|(size, _)| size >= start) {
                others.push(obj);
            }
        } else if let Some((_, last)) = layout::parse_segment_key(&obj.key) {
            if last >= start {
                segments.push(obj);
            }
        } else if obj.key.starts_with(TILES) {
            v.add_tile(&obj.key);
        } else if obj.key.starts_with(layout::WITNESSED)
            && layout::parse_witnessed_key(&obj.key).is_some()
        {
            // Read by `check_cosignatures` when witnesses are given.
        } else {
            others.push(obj);
        }
    }
    let progress = progress_bar(options.progress, &segments);
    let mut checked = CheckedSegments::start(store, segments, options.mac_key.clone());
    for obj in others {
        if !obj.key.starts_with(layout::CHECKPOINTS) {
            v.unknown_object(&obj.key);
            continue;
        }
        match store.get(&obj.key).await? {
            Some(bytes) => match std::str::from_utf8(&bytes) {
                Ok(text) => v.add_checkpoint(&obj.key, text),
                Err(_) => v.add_checkpoint(&obj.key, ""),
            },
            None => continue,
        }
    }
    while let Some(check) = checked.next().await {
        let check = check?;
        if let Some(p) = &progress {
            p.inc(check.records);
        }
        v.absorb(check);
        let checks = v.take_tile_checks();
        compare_tiles(store, &mut v, checks).await?;
    }
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    let checks = v.finish_tiles();
    compare_tiles(store, &mut v, checks).await?;
    if start > 0 {
        check_consistency_from_tiles(store, &mut v).await?;
    }
    if options.storage_checks {
        for (class, key, message) in store.storage_findings(options.min_retention_days).await? {
            v.add_problem(class, key, message);
        }
    }
    let frontier = v.frontier().clone();
    let head = v.head();
    let mut report = v.finish();
    if !options.witnesses.is_empty() || options.min_witnesses > 0 {
        check_cosignatures(store, verifier, options, start, &mut report).await?;
    }
    Ok((report, frontier, head))
}

/// Check the cosigned checkpoints (`witnessed/`) of trees of at least `start` entries, and
/// require `min_witnesses` of the given witnesses to have cosigned a checkpoint that covers
/// the newest entries (of the newest checkpoint's size) or, with
/// [`VerifyOptions::cosigned_max_age`], one signed within that age. Copies that do not
/// verify, or that are not the checkpoint stored under their name, are `bad_cosignature`.
async fn check_cosignatures<S: Store>(
    store: &S,
    log_key: &NoteVerifier,
    options: &VerifyOptions,
    start: u64,
    report: &mut Report,
) -> Result<(), StoreError> {
    let Some(newest) = report.newest_checkpoint.clone() else {
        if options.min_witnesses > 0 {
            report.add_problem(
                ProblemClass::MissingCosignature,
                layout::WITNESSED.to_owned(),
                "no checkpoint, so no cosigned one".into(),
            );
        }
        return Ok(());
    };
    let now = Timestamp::now().unix_nanos();
    let eligible = |head: &LogHead| {
        head.size == newest.size
            || options.cosigned_max_age.is_some_and(|age| {
                now.saturating_sub(head.time.unix_nanos())
                    <= i64::try_from(age.as_nanos()).unwrap_or(i64::MAX)
            })
    };
    // The eligible checkpoint with the most cosignatures; the newest among equals.
    let mut best: Option<Cosigned> = None;
    // With a max age, a recent cosigned checkpoint counts even when it is older than the
    // trusted one an incremental run starts from (already verified then: only its
    // cosignatures are read, and problems are reported for the range verified now).
    let from = if options.cosigned_max_age.is_some() {
        0
    } else {
        start
    };
    for group in cosigned::newest_first(store, from).await? {
        let found = cosigned::gather(store, log_key, &options.witnesses, &group).await?;
        let verified_now = group[0].size >= start;
        if verified_now {
            for (key, why) in found.bad {
                report.add_problem(ProblemClass::BadCosignature, key, why);
            }
        } else if found.cosigned.as_ref().is_none_or(|c| !eligible(&c.head)) {
            // Older still are older in time too: nothing below here is recent.
            if found.cosigned.is_some() {
                break;
            }
            continue;
        }
        if let Some(c) = found.cosigned
            && eligible(&c.head)
            && best.as_ref().is_none_or(|b| c.by.len() > b.by.len())
        {
            best = Some(c);
        }
    }
    let cosigned_by = best.as_ref().map_or(0, |b| b.by.len());
    if let Some(b) = &best
        && !b.by.is_empty()
    {
        report.cosigned = Some(CosignedSummary {
            size: b.head.size,
            time: b.head.time,
            witnesses: b.by.clone(),
        });
    }
    if cosigned_by < options.min_witnesses {
        let missing: Vec<&str> = options
            .witnesses
            .iter()
            .map(|w| w.name())
            .filter(|n| !best.iter().flat_map(|b| &b.by).any(|(c, _)| c == n))
            .collect();
        let which = match options.cosigned_max_age {
            Some(age) => format!(
                "no checkpoint of {} entries, nor one signed within {age:?},",
                newest.size
            ),
            None => format!("the newest checkpoint ({} entries)", newest.size),
        };
        report.add_problem(
            ProblemClass::MissingCosignature,
            newest.key.clone(),
            format!(
                "{which} carries {} of the {} required witness cosignatures; missing: {} (a \
                 witness refused it, as for a fork or a rollback, or has not cosigned it yet)",
                cosigned_by,
                options.min_witnesses,
                missing.join(", ")
            ),
        );
    }
    Ok(())
}

/// A verifier for the whole log (and the trusted checkpoint, if any, among the rest).
fn full_verifier(verifier: &NoteVerifier, options: &VerifyOptions) -> StoreVerifier {
    let mut v = StoreVerifier::new(verifier.clone(), options.mac_key.is_some());
    if let Some((name, text)) = &options.trusted
        && let Err(problem) = v.add_trusted_checkpoint(name, text)
    {
        v.add_problem(ProblemClass::BadCheckpoint, name.clone(), problem);
    }
    v
}

/// What an incremental run from a tree of `size` entries reads: the segments from
/// [`SEGMENT_SEARCH_WINDOW`] entries before `size` (if the one ending at `size` is not among
/// them, the run lists everything and verifies in full), the checkpoints of at least `size`
/// entries,
/// and on each level the tiles from the one holding the level's hashes at `size` (the
/// tree's right edge, which the consistency proof reads too). Objects before those, and
/// objects under other names, are checked by a full run only.
async fn list_from<S: Store>(store: &S, size: u64) -> Result<Vec<ObjectInfo>, StoreError> {
    let from = size.saturating_sub(SEGMENT_SEARCH_WINDOW);
    let mut objects = store
        .list_after(layout::SEGMENTS, &segments_from_key(from))
        .await?;
    let after = format!("{}{size:020}", layout::CHECKPOINTS);
    objects.extend(store.list_after(layout::CHECKPOINTS, &after).await?);
    for level in 0..=MAX_LEVEL {
        let prefix = format!("{TILES}{level}/");
        let first = (size >> (HEIGHT * u32::from(level))) / WIDTH;
        let level_objects = match first.checked_sub(1) {
            None => store.list(&prefix).await?,
            Some(before) => {
                let after = TileId::full(level, before).key();
                store.list_after(&prefix, &after).await?
            }
        };
        objects.extend(level_objects);
    }
    Ok(objects)
}

/// Why verification cannot resume from the trusted checkpoint: a problem to report (then
/// the log is verified in full), or `None` with a reason to verify in full anyway.
type NoResume = (Option<ProblemClass>, String);

/// A verifier resumed at the trusted checkpoint, from the tiles of its right edge.
async fn resume<S: Store>(
    store: &S,
    verifier: &NoteVerifier,
    options: &VerifyOptions,
    (name, text): &(String, String),
    objects: &[ObjectInfo],
) -> Result<Result<StoreVerifier, NoResume>, StoreError> {
    let head = match LogHead::open(text, verifier) {
        Ok(h) => h,
        Err(e) => {
            return Ok(Err((
                Some(ProblemClass::BadCheckpoint),
                format!("trusted checkpoint {name} is not valid for this log: {e}"),
            )));
        }
    };
    if head.size == 0 {
        return Ok(Err((
            None,
            "the trusted checkpoint is of the empty log".into(),
        )));
    }
    // Only a checkpoint at a segment's end can be resumed from.
    let at_boundary = objects
        .iter()
        .any(|o| layout::parse_segment_key(&o.key).is_some_and(|(_, last)| last + 1 == head.size));
    if !at_boundary {
        return Ok(Err((
            None,
            format!(
                "no segment of the store ends at entry {} (the trusted checkpoint's size)",
                head.size - 1
            ),
        )));
    }
    let mut set = TileSet::new(head.size);
    let edge = with_tiles(store, &mut set, |t| {
        Ok((TileBuilder::resume(t)?, t.frontier()?))
    })
    .await;
    let (builder, frontier) = match edge {
        Ok(edge) => edge,
        Err(TilesError::Store(e)) => return Err(e),
        Err(e) => {
            return Ok(Err((
                None,
                format!("the tiles of the trusted checkpoint's tree are not usable: {e}"),
            )));
        }
    };
    Ok(StoreVerifier::resume(
        verifier.clone(),
        options.mac_key.is_some(),
        (name, text),
        builder,
        frontier,
    )
    .map_err(|why| (Some(ProblemClass::TileMismatch), why)))
}

/// The consistency proof, from the tiles, from the trusted checkpoint to the newest one.
async fn check_consistency_from_tiles<S: Store>(
    store: &S,
    v: &mut StoreVerifier,
) -> Result<(), StoreError> {
    let (Some(trusted), Some(newest)) = (v.trusted_checkpoint(), v.newest_checkpoint()) else {
        return Ok(());
    };
    let (old, new) = (trusted.size, newest.size);
    if new < old {
        return Ok(()); // reported as truncated
    }
    let roots = (hex_hash(&trusted.root), hex_hash(&newest.root));
    let (Some(old_root), Some(new_root)) = roots else {
        return Ok(());
    };
    let key = newest.key.clone();
    let mut set = TileSet::new(new);
    let proof = with_tiles(store, &mut set, |t| {
        auditlog::subtrees::consistency_proof(t, old, new)
    })
    .await;
    let failure = match proof {
        Ok(proof) => merkle::verify_consistency(old, new, &old_root, &new_root, &proof)
            .err()
            .map(|e| format!("the tiles' consistency proof does not verify: {e}")),
        Err(TilesError::Store(e)) => return Err(e),
        Err(e) => Some(format!("no consistency proof from the tiles: {e}")),
    };
    if let Some(why) = failure {
        v.add_problem(
            ProblemClass::CheckpointMismatch,
            key,
            format!("not consistent with the trusted checkpoint of {old} entries: {why}"),
        );
    }
    Ok(())
}

fn hex_hash(s: &str) -> Option<Hash> {
    hex::decode(s).ok()?.try_into().ok()
}

/// Fetch each tile and compare it with what the entries give.
async fn compare_tiles<S: Store>(
    store: &S,
    v: &mut StoreVerifier,
    checks: Vec<TileCheck>,
) -> Result<(), StoreError> {
    let keys = checks.iter().map(|c| c.id.key()).collect();
    for (check, stored) in checks.iter().zip(store.get_many(keys).await?) {
        v.check_tile(check, stored.as_deref());
    }
    Ok(())
}

fn progress_bar(enabled: bool, segments: &[ObjectInfo]) -> Option<ProgressBar> {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let total: u64 = segments
        .iter()
        .filter_map(|o| layout::parse_segment_key(&o.key))
        .map(|(a, b)| b - a + 1)
        .sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "verifying {bar:40} {human_pos}/{human_len} entries {per_sec} eta {eta}",
        )
        .expect("valid template"),
    );
    Some(bar)
}

/// Write every entry (or, with `records`, every full record line) to `out`, in log order.
/// The caller verifies first.
pub async fn export<S: Store>(
    store: &S,
    options: &ExportOptions,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    export_merged(std::slice::from_ref(store), options, out).await
}

/// What `sealer export` writes.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Full sealed records (chain, entry, MAC) instead of entries (NDJSON only).
    pub records: bool,
    /// Only the entries this filter selects.
    pub filter: Filter,
    pub format: ExportFormat,
}

/// The output format of `sealer export`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    #[default]
    Ndjson,
    /// RFC 4180 CSV with a header row: the query fields of each entry.
    Csv,
}

/// The CSV columns: the log, then the query fields of `auditlog::query`.
pub const CSV_HEADER: &str =
    "log,seq,kind,time,sealed_at,gateway,method,host,path,status,identity,client";

/// One CSV field, quoted when it must be (RFC 4180).
fn csv_field(out: &mut Vec<u8>, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(value.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(value.as_bytes());
    }
}

fn csv_row(log: &str, f: &Fields) -> Vec<u8> {
    let time = |ns: i64| Timestamp::from_unix_nanos(ns).to_string();
    let cells = [
        log.to_owned(),
        f.seq.to_string(),
        f.kind.map_or("", EntryKind::as_str).to_owned(),
        time(f.time),
        time(f.sealed_at),
        f.gateway.clone().unwrap_or_default(),
        f.method.clone().unwrap_or_default(),
        f.host.clone().unwrap_or_default(),
        f.path.clone().unwrap_or_default(),
        f.status.map(|s| s.to_string()).unwrap_or_default(),
        f.identity.clone().unwrap_or_default(),
        f.client.clone().unwrap_or_default(),
    ];
    let mut out = Vec::new();
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_field(&mut out, c);
    }
    out
}

/// Like [`export`] for several logs at once, merged into one stream ordered by each
/// entry's `sealed_at` (each log's own order is kept). The caller verifies first.
pub async fn export_merged<S: Store>(
    stores: &[S],
    options: &ExportOptions,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let csv = options.format == ExportFormat::Csv;
    let filtering = options.filter != Filter::default();
    if csv {
        out.write_all(CSV_HEADER.as_bytes())?;
        out.write_all(b"\r\n")?;
    }
    /// One log's records not yet written: the keys of its remaining segments and the lines
    /// left of the current one.
    struct Cursor {
        segments: VecDeque<String>,
        lines: VecDeque<(String, Vec<u8>)>,
    }
    let mut cursors = Vec::with_capacity(stores.len());
    for store in stores {
        let segments = store.list(layout::SEGMENTS).await?;
        cursors.push(Cursor {
            segments: segments.into_iter().map(|o| o.key).collect(),
            lines: VecDeque::new(),
        });
    }
    let mut n = 0;
    loop {
        let mut next: Option<(usize, String)> = None;
        for (i, c) in cursors.iter_mut().enumerate() {
            while c.lines.is_empty() {
                let Some(key) = c.segments.pop_front() else {
                    break;
                };
                let bytes = stores[i].get(&key).await?.unwrap_or_default();
                c.lines = bytes
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| (key.clone(), l.to_vec()))
                    .collect();
            }
            let Some((key, line)) = c.lines.front() else {
                continue;
            };
            let at = sealed_at(line).map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
            if next.as_ref().is_none_or(|(_, best)| at < *best) {
                next = Some((i, at));
            }
        }
        let Some((i, _)) = next else { break };
        let (key, line) = cursors[i].lines.pop_front().expect("peeked above");
        let r = parse_record(&line).map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
        let fields = if filtering || csv {
            let text = std::str::from_utf8(r.entry).map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
            let fields = Fields::of(&value);
            if !options.filter.matches(&fields, text) {
                continue;
            }
            Some(fields)
        } else {
            None
        };
        match (csv, fields) {
            (true, Some(f)) => {
                out.write_all(&csv_row(&stores[i].describe(), &f))?;
                out.write_all(b"\r\n")?;
            }
            _ if options.records => {
                out.write_all(&line)?;
                out.write_all(b"\n")?;
            }
            _ => {
                out.write_all(r.entry)?;
                out.write_all(b"\n")?;
            }
        }
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

/// An entry's `sealed_at` (canonical RFC 3339, so text order is time order).
fn sealed_at(record_line: &[u8]) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct Sealed {
        sealed_at: String,
    }
    let r = parse_record(record_line)?;
    Ok(serde_json::from_slice::<Sealed>(r.entry)?.sealed_at)
}
