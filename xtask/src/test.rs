//! `cargo xtask test`: install what the tests need, then run every gate and every test.
//!
//! Installed first (see `tools.rs`): rustfmt, clippy, the `wasm32-wasip1` target, Envoy
//! 1.40, SeaweedFS 4.48 and DuckDB 2.0.0 in the tools directory outside the clone
//! (`~/.cache/ingress-audit/tools`), Chromium from Debian, whose
//! paths the tests get in `AUDIT_ENVOY_BIN`, `AUDIT_WEED_BIN`, `AUDIT_DUCKDB_PYTHON`, `AUDIT_CRYPTOGRAPHY_PYTHON` and
//! `AUDIT_CHROMIUM_BIN`, and Wasmtime (PyPI), which runs the filter's unit tests compiled to
//! wasm. The Kubernetes control plane (see `kubernetes.rs`): kube-apiserver 1.20.2, built
//! once from Debian's source package into the tools directory, etcd and kubectl from Debian
//! (`AUDIT_KUBE_APISERVER_BIN`, `AUDIT_ETCD_BIN`, `AUDIT_KUBECTL_BIN`).
//! `cargo xtask tools` installs all of this and stops.
//!
//! Gates, in order: `cargo fmt --check`, `cargo clippy -D warnings` on every target,
//! `cargo doc` without warnings, then the whole test suite (unit, property and end-to-end
//! tests of the real binaries and of Envoy with the audit filter) with cargo-nextest when
//! present, else `cargo test`, after the doc tests. Everything shares the workspace's one
//! target directory.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

use crate::kubernetes;
use crate::tasks::{self, cargo};
use crate::tools;

/// Make sure the toolchain components the gates use are installed.
fn install_tools() -> anyhow::Result<bool> {
    let installed = Command::new("rustup")
        .args(["component", "list", "--installed"])
        .output()
        .context("failed to run rustup (the Rust toolchain is installed with rustup)")?;
    let list = String::from_utf8_lossy(&installed.stdout);
    for component in ["rustfmt", "clippy"] {
        if !list.lines().any(|l| l.starts_with(component)) {
            tasks::run(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    let nextest = cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    Ok(nextest)
}

/// Seconds of fuzzing per target in a test run (without a sanitizer a target runs 60,000 to
/// 360,000 inputs a second here; `cargo xtask fuzz` runs 300 s each).
const FUZZ_SECONDS: u64 = 12;

/// What the tests run, installed: whether cargo-nextest is there, the WASI runner of the
/// filter's wasm tests, and the tools the end-to-end tests find in `AUDIT_*` variables.
pub struct Installed {
    pub nextest: bool,
    pub wasi_runner: String,
    pub env: Vec<(&'static str, PathBuf)>,
}

/// Install everything the tests need (`cargo xtask tools` stops here).
pub fn install(args: &[String]) -> anyhow::Result<Installed> {
    if let Some(a) = args.first() {
        anyhow::bail!("`cargo xtask test` and `cargo xtask tools` take no options (got {a:?})");
    }
    let nextest = install_tools()?;
    tools::wasm_target()?;
    let env = vec![
        ("AUDIT_ENVOY_BIN", tools::envoy()?),
        ("AUDIT_WEED_BIN", tools::seaweedfs()?),
        ("AUDIT_CHROMIUM_BIN", tools::chromium()?),
        ("AUDIT_DUCKDB_PYTHON", tools::duckdb()?),
        ("AUDIT_CRYPTOGRAPHY_PYTHON", tools::cryptography()?),
        ("AUDIT_WASMTIME_PYTHON", tools::wasmtime_python()?),
        ("AUDIT_ETCD_BIN", kubernetes::etcd()?),
        ("AUDIT_KUBECTL_BIN", kubernetes::kubectl()?),
        ("AUDIT_KUBE_APISERVER_BIN", kubernetes::kube_apiserver()?),
        ("AUDIT_DOCKERD_BIN", tools::dockerd()?),
    ];
    tools::musl()?;
    Ok(Installed {
        nextest,
        wasi_runner: tools::wasi_runner()?,
        env,
    })
}

pub fn run(args: &[String]) -> anyhow::Result<u8> {
    let Installed {
        nextest,
        wasi_runner,
        env,
    } = install(args)?;
    tasks::run(cargo().args(["fmt", "--all", "--check"]))?;
    tasks::run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The sealer without the S3 store, as `cargo xtask demo` builds it (its tests are linted
    // above; only the library and the binary change without the feature).
    tasks::run(cargo().args([
        "clippy",
        "-p",
        "sealer-sidecar",
        "--no-default-features",
        "--lib",
        "--bins",
        "--",
        "-D",
        "warnings",
    ]))?;
    tasks::run(
        cargo()
            .args(["doc", "--workspace", "--no-deps", "--quiet"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    // End-to-end tests run the real binaries: build them first.
    tasks::run(cargo().args(["build", "--workspace", "--bins"]))?;
    // The filter again, as Envoy runs it: lints on the wasm target, then the .wasm the
    // Envoy tests load.
    tasks::run(cargo().args([
        "clippy",
        "-p",
        "filter",
        "--target",
        "wasm32-wasip1",
        "--",
        "-D",
        "warnings",
    ]))?;
    tasks::build_filter()?;
    // The static sealer the image tests put in a `FROM scratch` image.
    tasks::build_static_sealer(false)?;
    // The filter's pure logic again, compiled to wasm and run under Wasmtime (WASI).
    tasks::run(
        cargo()
            .args([
                "test",
                "-p",
                "filter",
                "--lib",
                "--target",
                "wasm32-wasip1",
                "--quiet",
            ])
            .env("CARGO_TARGET_WASM32_WASIP1_RUNNER", &wasi_runner),
    )?;
    tasks::run(cargo().args(["test", "--workspace", "--doc", "--quiet"]))?;
    // Every parser of untrusted input under libFuzzer, briefly (`cargo xtask fuzz` for long).
    crate::fuzz::fuzz(&crate::fuzz::TARGETS, FUZZ_SECONDS)?;
    // The full suite runs last, so its summary is the last thing printed.
    if nextest {
        tasks::run(
            cargo()
                .args([
                    "nextest",
                    "run",
                    "--workspace",
                    "--no-fail-fast",
                    "--failure-output",
                    "final",
                ])
                .envs(env.iter().map(|(k, v)| (k, v))),
        )?;
    } else {
        tasks::run(
            cargo()
                .args([
                    "test",
                    "--workspace",
                    "--no-fail-fast",
                    "--lib",
                    "--bins",
                    "--tests",
                ])
                .envs(env.iter().map(|(k, v)| (k, v))),
        )?;
    }
    eprintln!("xtask test: every gate and test passed");
    Ok(0)
}
