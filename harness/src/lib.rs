//! The development harness: starts and stops the real components the end-to-end tests and the
//! `cargo xtask` tasks run (the sealer, Envoy 1.40, SeaweedFS, headless Chromium), templates
//! their configurations from the files we ship, and waits on conditions instead of sleeping.
//!
//! Never shipped: only `tests/` and `xtask/` depend on it.
//!
//! - [`locate`]: the workspace, the target directory, the installed tools (each error names
//!   the command that installs what is missing: nothing skips silently).
//! - [`process`]: a child process with its log in a file, stopped when dropped
//!   ([`process::Process`]); a finished command with assertions on it ([`process::Run`]).
//! - [`wait`]: poll a condition until it holds, with a deadline that names what was awaited.
//! - [`sealer`]: `sealer serve` started on a free port ([`sealer::Serve`]), and the test
//!   driver around it ([`sealer::Sealer`]) with its own keys, store and data directory.
//! - [`envoy`]: the shipped `envoy-config/standalone/envoy.yaml` with our ports, filter and
//!   plugin configuration ([`envoy::config`]), and a running Envoy ([`envoy::Envoy`]).
//! - [`seaweedfs`]: S3 with Object Lock (`weed mini`); an S3 client with the feature
//!   `s3-client`.
//! - [`browser`]: headless Chromium over the DevTools protocol.
//! - [`docker`]: a private Docker engine (Debian's dockerd) for the image tests.
//! - [`images`]: the container images' build contexts.
//! - [`kube`]: a real Kubernetes control plane on loopback (etcd, kube-apiserver, kubectl).
//! - [`pki`]: test certificates and an independent TLS client.
//! - [`files`]: listings and writable copies of a store, for failure messages and tampering.
//!
//! Two styles of error, by who calls: what the tasks use returns [`anyhow::Result`] with the
//! log to read; what only tests use (the `Sealer` driver, `Run`'s assertions, the browser)
//! panics with everything needed to understand the failure, as a test assertion does.

pub mod browser;
pub mod docker;
pub mod envoy;
pub mod files;
pub mod images;
pub mod kube;
pub mod locate;
pub mod pki;
pub mod process;
pub mod sealer;
pub mod seaweedfs;
pub mod wait;

pub use locate::{free_port, workspace_root};
pub use process::{Process, Run};
pub use sealer::Sealer;
