//! `cargo xtask images [--tag-prefix PREFIX] [--version V]`: build the two container images
//! with the Docker on this machine, offline (`FROM scratch`, the legacy builder): the static
//! sealer (musl, release) and the filter (wasm, release), each from a context directory under
//! `target/images/` that holds only what its Dockerfile copies.

use std::process::Command;

use anyhow::Context;
use harness::images;
use harness::locate::target_dir;

use crate::tasks;

pub fn run(args: &[String]) -> anyhow::Result<u8> {
    let mut prefix = "ghcr.io/ingress-audit".to_owned();
    let mut version = env!("CARGO_PKG_VERSION").to_owned();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--tag-prefix" => prefix = it.next().context("--tag-prefix needs a value")?.clone(),
            "--version" => version = it.next().context("--version needs a value")?.clone(),
            other => anyhow::bail!(
                "unknown option {other:?}; usage: cargo xtask images [--tag-prefix PREFIX] [--version V]"
            ),
        }
    }
    let sealer = tasks::build_static_sealer(true)?;
    let wasm = tasks::build_filter()?;
    let root = target_dir().join("images");
    let sealer_ctx = images::sealer_context(&root.join("sealer"), &sealer)?;
    let filter_ctx = images::filter_context(&root.join("filter"), &wasm)?;
    let workspace = harness::workspace_root();
    for (dockerfile, name, ctx) in [
        ("sealer-sidecar/Dockerfile", "sealer", &sealer_ctx),
        ("filter/Dockerfile", "filter", &filter_ctx),
    ] {
        tasks::run(
            Command::new("docker")
                .env("DOCKER_BUILDKIT", "0")
                .arg("build")
                .arg("-f")
                .arg(workspace.join(dockerfile))
                .arg("-t")
                .arg(format!("{prefix}/{name}:{version}"))
                .arg(ctx),
        )?;
    }
    eprintln!(
        "xtask images: built {prefix}/sealer:{version} and {prefix}/filter:{version}; push them \
         with `docker push`"
    );
    Ok(0)
}
