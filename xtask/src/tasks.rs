//! Helpers shared by the tasks: running commands, building the binaries. Starting the
//! components and templating their configurations is the `harness` crate's, shared with the
//! end-to-end tests.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use harness::locate::target_dir;
use harness::process::show_cmd;

/// The cargo that runs us.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(harness::workspace_root());
    c
}

/// Run a command, echoing it, and fail if it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", show_cmd(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("failed to start {}", show_cmd(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", show_cmd(cmd));
    }
    Ok(())
}

/// Build the sealer, with the S3 store (debug profile, shared with the tests; or release),
/// and return its path.
pub fn build_sealer(release: bool) -> anyhow::Result<PathBuf> {
    build_sealer_with(release, true)
}

/// [`build_sealer`], with or without the S3 store (the cargo feature `s3`): without, the
/// sealer and its dependencies build in about half the time.
pub fn build_sealer_with(release: bool, s3: bool) -> anyhow::Result<PathBuf> {
    let mut c = cargo();
    c.args([
        "build",
        "--quiet",
        "-p",
        "sealer-sidecar",
        "--bin",
        "sealer",
    ]);
    if release {
        c.arg("--release");
    }
    if !s3 {
        c.arg("--no-default-features");
    }
    run(&mut c)?;
    let bin = target_dir()
        .join(if release { "release" } else { "debug" })
        .join("sealer");
    if !bin.exists() {
        bail!("built the sealer but {} does not exist", bin.display());
    }
    Ok(bin)
}

/// Build the audit filter for Envoy (`wasm32-wasip1`, profile `wasm-release`) and return the
/// path of its `.wasm`. Needs [`crate::tools::wasm_target`].
pub fn build_filter() -> anyhow::Result<PathBuf> {
    run(cargo().args([
        "build",
        "-p",
        "filter",
        "--target",
        crate::tools::WASM_TARGET,
        "--profile",
        "wasm-release",
    ]))?;
    let wasm = target_dir()
        .join(crate::tools::WASM_TARGET)
        .join("wasm-release")
        .join("filter.wasm");
    if !wasm.exists() {
        bail!("built the filter but {} does not exist", wasm.display());
    }
    Ok(wasm)
}

/// Build the sealer as one static binary (musl) for the `FROM scratch` image, in the `dev`
/// profile for the tests or `release`; return its path.
pub fn build_static_sealer(release: bool) -> anyhow::Result<PathBuf> {
    let musl_gcc = crate::tools::musl()?;
    let mut c = cargo();
    c.args([
        "build",
        "-p",
        "sealer-sidecar",
        "--bin",
        "sealer",
        "--target",
    ])
    .arg(crate::tools::MUSL_TARGET)
    .env("CC_x86_64_unknown_linux_musl", &musl_gcc);
    if release {
        c.arg("--release");
    }
    run(&mut c)?;
    let bin = target_dir()
        .join(crate::tools::MUSL_TARGET)
        .join(if release { "release" } else { "debug" })
        .join("sealer");
    if !bin.exists() {
        bail!(
            "built the static sealer but {} does not exist",
            bin.display()
        );
    }
    Ok(bin)
}

/// The number that follows the option `flag` in `args`.
pub fn number_after<'a>(
    flag: &str,
    args: &mut impl Iterator<Item = &'a String>,
) -> anyhow::Result<u64> {
    args.next()
        .with_context(|| format!("{flag} needs a number"))?
        .parse()
        .with_context(|| format!("{flag} needs a number"))
}

/// One unlabelled metric from the sealer at `base` (`http://127.0.0.1:PORT`), from its
/// Prometheus `/metrics`; `None` if the sealer does not answer (5 s timeout) or lacks it.
pub fn sealer_metric(base: &str, name: &str) -> Option<u64> {
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(5))
        .build();
    let text = agent
        .get(&format!("{base}/metrics"))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A fresh directory under the target directory, removed by nobody: demo and bench output
/// stays inspectable.
pub fn scratch_dir(name: &str) -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let dir = target_dir().join("xtask").join(format!("{name}-{nanos}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    Ok(dir)
}
