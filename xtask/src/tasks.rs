//! Helpers shared by the tasks: running commands, locating the workspace and binaries.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The cargo that runs us.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Run a command, echoing it, and fail if it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("failed to start {}", show(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", show(cmd));
    }
    Ok(())
}

pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// The target directory cargo builds into.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Build the sealer (debug profile, shared with the tests) and return its path.
pub fn build_sealer(release: bool) -> anyhow::Result<PathBuf> {
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

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Wait until `GET url` answers 200, or fail after `tries` × 100 ms.
pub fn wait_http_ok(url: &str, tries: u32) -> anyhow::Result<()> {
    for _ in 0..tries {
        if let Ok(r) = ureq::get(url).call()
            && r.status() == 200
        {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!("{url} did not answer 200 in time")
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
