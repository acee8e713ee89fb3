//! The end-to-end tests: the real `sealer` binary, the filter in Envoy 1.40, S3 with Object
//! Lock (SeaweedFS), the live page in headless Chromium. Each file is a module of this one
//! binary (`tests/tamper.rs` holds `tamper::*`); what starts and stops the components is the
//! `harness` crate, shared with `cargo xtask`.
//!
//! `cargo xtask test` installs every component and builds the binaries first; a test that
//! cannot find a component fails, naming the command that provides it.

mod api;
mod browser;
mod crash;
mod disk;
mod ecosystem;
mod envoy_config;
mod filter;
mod images;
mod k8s_apiserver;
mod k8s_failover;
mod k8s_guide;
mod k8s_manifests;
mod k8s_webhook;
mod query;
mod s3;
mod tamper;
mod tiles_interop;
mod witness;

use harness::envoy::config::{self, Ports};

/// The value of a lookup that must succeed; otherwise panic with its message, which names
/// what is missing and the command that provides it.
pub fn required<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| panic!("{e:#}"))
}

/// The audit filter built for Envoy.
pub fn filter_wasm() -> std::path::PathBuf {
    required(harness::locate::filter_wasm())
}

/// The shipped standalone gateway config on free ports beside `sealer_port`, with the built
/// filter and `plugin_json` as its configuration.
pub fn gateway_config(sealer_port: u16, plugin_json: &str) -> String {
    required(config::standalone(
        Ports::free(sealer_port),
        &filter_wasm(),
        plugin_json,
    ))
}
