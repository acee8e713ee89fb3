//! `cargo xtask fuzz [--seconds N] [--target NAME]`: every parser of untrusted input under
//! libFuzzer (`fuzz/`, cargo-fuzz), N seconds per target (default 300).
//!
//! Targets: `ingest_line` (a line of `POST /v1/events`), `segment` (stored record lines),
//! `checkpoint` (signed-note checkpoints), `filter_config` (the plugin configuration),
//! `k8s_event_list` (a Kubernetes audit webhook body).
//! Each run starts from the fixed seeds in `fuzz/seeds/<target>/` (real inputs) plus the
//! corpus grown by earlier runs in `target/fuzz-corpus/<target>/`, and first replays every
//! input in `fuzz/regressions/<target>/`: each crash ever found is kept there, so it stays
//! fixed. A crash fails the task and leaves its input in `fuzz/artifacts/<target>/`.
//!
//! cargo-fuzz needs the coverage flags of nightly Rust; this machine has stable only, so the
//! fuzz build runs with `RUSTC_BOOTSTRAP=1`, which unlocks them on the stable compiler.
//!
//! No sanitizer (`-s none`): every parser fuzzed here is safe Rust (`auditlog` forbids
//! `unsafe`; the filter's configuration and the sealer's ingest have none), where bounds and
//! overflow checks (debug assertions are on) already turn a memory error into a crash.
//! AddressSanitizer would find nothing more and costs build time and executions per second.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

use crate::tasks;
use crate::tools;

/// The fuzz targets, as named in `fuzz/Cargo.toml`.
pub const TARGETS: [&str; 5] = [
    "ingest_line",
    "segment",
    "checkpoint",
    "filter_config",
    "k8s_event_list",
];

pub fn run(args: &[String]) -> anyhow::Result<u8> {
    let mut seconds = 300;
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => seconds = tasks::number_after(a, &mut it)?.max(1),
            "--target" => only = Some(it.next().context("--target needs a name")?.clone()),
            other => {
                anyhow::bail!("unknown fuzz option {other:?} (expected --seconds N, --target NAME)")
            }
        }
    }
    let targets: Vec<&str> = match &only {
        Some(t) if TARGETS.contains(&t.as_str()) => vec![t.as_str()],
        Some(t) => anyhow::bail!("no fuzz target {t:?}; the targets are {TARGETS:?}"),
        None => TARGETS.to_vec(),
    };
    fuzz(&targets, seconds)?;
    Ok(0)
}

/// Replay the regressions of each target, then fuzz it for `seconds`.
pub fn fuzz(targets: &[&str], seconds: u64) -> anyhow::Result<()> {
    let cargo_fuzz = tools::cargo_fuzz()?;
    let root = harness::workspace_root();
    let fuzz_dir = root.join("fuzz");
    let target_dir = harness::locate::target_dir().join("fuzz");
    // `cargo fuzz SUBCOMMAND --target-dir DIR ARGS...`: the option goes before the arguments,
    // which may end in `-- LIBFUZZER-OPTIONS`.
    let command = |args: &[&str]| {
        let (subcommand, rest) = args.split_first().expect("a cargo-fuzz subcommand");
        let mut cmd = Command::new(&cargo_fuzz);
        cmd.arg(subcommand)
            .arg("--target-dir")
            .arg(&target_dir)
            .args(rest)
            .current_dir(&fuzz_dir)
            .env("RUSTC_BOOTSTRAP", "1");
        cmd
    };
    tasks::run(&mut command(&["build", "-O", "-s", "none"]))?;
    for target in targets {
        let regressions = fuzz_dir.join("regressions").join(target);
        for input in files(&regressions)? {
            let input = input.to_str().context("UTF-8 path")?.to_owned();
            tasks::run(&mut command(&["run", "-O", "-s", "none", target, &input]))?;
        }
        let corpus = harness::locate::target_dir()
            .join("fuzz-corpus")
            .join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("failed to create {}", corpus.display()))?;
        let seeds = fuzz_dir.join("seeds").join(target);
        let (corpus, seeds) = (
            corpus.to_str().context("UTF-8")?,
            seeds.to_str().context("UTF-8")?,
        );
        let budget = format!("-max_total_time={seconds}");
        tasks::run(&mut command(&[
            "run",
            "-O",
            "-s",
            "none",
            target,
            corpus,
            seeds,
            "--",
            &budget,
            "-print_final_stats=1",
        ]))
        .with_context(|| {
            format!(
                "fuzz target {target} failed: its input is in fuzz/artifacts/{target}/; add \
                 it to fuzz/regressions/{target}/ once fixed"
            )
        })?;
    }
    Ok(())
}

/// The files in `dir` (none if it does not exist), in name order.
fn files(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut out = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("failed to list {}", dir.display())),
    };
    out.sort();
    Ok(out)
}
