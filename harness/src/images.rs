//! The container images' build contexts, as the Dockerfiles' headers describe them: a
//! directory holding only what the image copies. `cargo xtask images` and `tests/images.rs`
//! both make them here, so the tested image is the one users build.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::locate::target_dir;

/// The Rust target of the static sealer.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// Where the image's CA certificates come from (Debian's `ca-certificates`).
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The static sealer `cargo xtask test` builds (`dev` profile) or `cargo xtask images`
/// (`release`).
pub fn static_sealer_bin(release: bool) -> anyhow::Result<PathBuf> {
    let bin = target_dir()
        .join(MUSL_TARGET)
        .join(if release { "release" } else { "debug" })
        .join("sealer");
    if !bin.is_file() {
        bail!(
            "the static sealer {} is missing: `cargo xtask test` (or `cargo xtask images`) \
             builds it",
            bin.display()
        );
    }
    Ok(bin)
}

/// `dir` emptied, with `files` (source, name in the context) copied in.
fn context(dir: &Path, files: &[(&Path, &str)]) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("failed to empty {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    for (source, name) in files {
        std::fs::copy(source, dir.join(name)).with_context(|| {
            format!("failed to copy {} into {}", source.display(), dir.display())
        })?;
    }
    Ok(dir.to_owned())
}

/// The context of `sealer-sidecar/Dockerfile`: `sealer` and `ca-certificates.crt`.
pub fn sealer_context(dir: &Path, static_sealer: &Path) -> anyhow::Result<PathBuf> {
    context(
        dir,
        &[
            (static_sealer, "sealer"),
            (Path::new(CA_BUNDLE), "ca-certificates.crt"),
        ],
    )
}

/// The context of `filter/Dockerfile` (and `Dockerfile.installer`): `filter.wasm`.
pub fn filter_context(dir: &Path, wasm: &Path) -> anyhow::Result<PathBuf> {
    context(dir, &[(wasm, "filter.wasm")])
}
