//! Reading a store back: full verification and verified export.
//!
//! This drives the I/O-free [`auditlog::verify`] over a [`Store`]: it lists the store, loads
//! checkpoints, then fetches segments and checks them on a pool of blocking threads, several
//! at a time, absorbing the results in log order.

use std::collections::VecDeque;
use std::io::Write;

use auditlog::chain::MacKey;
use auditlog::layout;
use auditlog::merkle::{Frontier, Hash};
use auditlog::note::NoteVerifier;
use auditlog::record::parse_record;
use auditlog::verify::{ProblemClass, Report, SegmentCheck, StoreVerifier, check_segment};
use indicatif::{ProgressBar, ProgressStyle};

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
}

/// Verify the whole store.
pub async fn verify<S: Store>(
    store: &S,
    verifier: &NoteVerifier,
    options: &VerifyOptions,
) -> Result<Report, StoreError> {
    Ok(verify_with_state(store, verifier, options).await?.0)
}

/// Verify the whole store and also return the recomputed tree and chain head.
pub async fn verify_with_state<S: Store>(
    store: &S,
    verifier: &NoteVerifier,
    options: &VerifyOptions,
) -> Result<(Report, Frontier, Hash), StoreError> {
    let mut v = StoreVerifier::new(verifier.clone(), options.mac_key.is_some());
    if let Some((name, text)) = &options.trusted
        && let Err(problem) = v.add_trusted_checkpoint(name, text)
    {
        v.add_problem(ProblemClass::BadCheckpoint, name.clone(), problem);
    }
    let objects = store.list("").await?;
    let mut segments = Vec::new();
    for obj in objects {
        if obj.key.starts_with(layout::CHECKPOINTS) {
            match store.get(&obj.key).await? {
                Some(bytes) => match std::str::from_utf8(&bytes) {
                    Ok(text) => v.add_checkpoint(&obj.key, text),
                    Err(_) => v.add_checkpoint(&obj.key, ""),
                },
                None => continue,
            }
        } else if obj.key.starts_with(layout::SEGMENTS)
            && layout::parse_segment_key(&obj.key).is_some()
        {
            segments.push(obj);
        } else {
            v.unknown_object(&obj.key);
        }
    }
    let progress = progress_bar(options.progress, &segments);
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut in_flight: VecDeque<tokio::task::JoinHandle<Result<SegmentCheck, StoreError>>> =
        VecDeque::new();
    let mut queue = segments.into_iter();
    loop {
        while in_flight.len() < parallel + 1 {
            let Some(obj) = queue.next() else { break };
            let store_bytes = store.get(&obj.key).await?;
            let mac = options.mac_key.clone();
            in_flight.push_back(tokio::task::spawn_blocking(move || {
                let bytes = store_bytes.unwrap_or_default();
                Ok(check_segment(&obj.key, &bytes, mac.as_ref()))
            }));
        }
        let Some(next) = in_flight.pop_front() else {
            break;
        };
        let check = next.await.expect("segment check does not panic")?;
        if let Some(p) = &progress {
            p.inc(check.records);
        }
        v.absorb(check);
    }
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    let frontier = v.frontier().clone();
    let head = v.head();
    Ok((v.finish(), frontier, head))
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
    records: bool,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let mut n = 0;
    for obj in store.list(layout::SEGMENTS).await? {
        let Some(bytes) = store.get(&obj.key).await? else {
            continue;
        };
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if records {
                out.write_all(line)?;
            } else {
                let r = parse_record(line).map_err(|e| anyhow::anyhow!("{}: {e}", obj.key))?;
                out.write_all(r.entry)?;
            }
            out.write_all(b"\n")?;
            n += 1;
        }
    }
    out.flush()?;
    Ok(n)
}
