//! `cargo xtask test`: install what the tests need, then run every gate and every test.
//!
//! Installed first (see `tools.rs`): rustfmt, clippy, the `wasm32-wasip1` target, Envoy
//! 1.40, SeaweedFS 4.48 and DuckDB 2.0.0 in the tools directory outside the clone
//! (`~/.cache/ingress-audit/tools`), Chromium from Debian, whose
//! paths the tests get in `AUDIT_ENVOY_BIN`, `AUDIT_WEED_BIN`, `AUDIT_DUCKDB_PYTHON`, `AUDIT_CRYPTOGRAPHY_PYTHON` and
//! `AUDIT_CHROMIUM_BIN`, and Wasmtime (PyPI), which runs the filter's unit tests compiled to
//! wasm.
//!
//! Gates, in order: `cargo fmt --check`, `cargo clippy -D warnings` on every target,
//! `cargo doc` without warnings, then the whole test suite (unit, property and end-to-end
//! tests of the real binaries and of Envoy with the audit filter) with cargo-nextest when
//! present, else `cargo test`, after the doc tests. Everything shares the workspace's one
//! target directory.

use std::process::Command;

use anyhow::Context;

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

pub fn run(args: &[String]) -> anyhow::Result<u8> {
    if let Some(a) = args.first() {
        anyhow::bail!("`cargo xtask test` takes no options (got {a:?})");
    }
    let nextest = install_tools()?;
    tools::wasm_target()?;
    let envoy = tools::envoy()?;
    let weed = tools::seaweedfs()?;
    let wasi_runner = tools::wasi_runner()?;
    let wasmtime_python = tools::wasmtime_python()?;
    let chromium = tools::chromium()?;
    let duckdb = tools::duckdb()?;
    let cryptography = tools::cryptography()?;
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
                .env("AUDIT_ENVOY_BIN", &envoy)
                .env("AUDIT_WEED_BIN", &weed)
                .env("AUDIT_CHROMIUM_BIN", &chromium)
                .env("AUDIT_DUCKDB_PYTHON", &duckdb)
                .env("AUDIT_CRYPTOGRAPHY_PYTHON", &cryptography)
                .env("AUDIT_WASMTIME_PYTHON", &wasmtime_python),
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
                .env("AUDIT_ENVOY_BIN", &envoy)
                .env("AUDIT_WEED_BIN", &weed)
                .env("AUDIT_CHROMIUM_BIN", &chromium)
                .env("AUDIT_DUCKDB_PYTHON", &duckdb)
                .env("AUDIT_CRYPTOGRAPHY_PYTHON", &cryptography)
                .env("AUDIT_WASMTIME_PYTHON", &wasmtime_python),
        )?;
    }
    eprintln!("xtask test: every gate and test passed");
    Ok(0)
}
