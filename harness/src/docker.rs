//! A private Docker engine for the image tests: Debian's `dockerd` (package `docker.io`),
//! run as root with its own socket, data root and exec root in a temporary directory, no
//! bridge network (containers use the host's network or none) and the `vfs` storage driver
//! (works on any filesystem, and our images are one layer). Nothing is pulled: images build
//! `FROM scratch` with the legacy builder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::process::{Process, Run, show_cmd};

/// `dockerd`: `AUDIT_DOCKERD_BIN`, else Debian's `/usr/sbin/dockerd`.
pub fn dockerd_bin() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("AUDIT_DOCKERD_BIN")
        .map_or_else(|| PathBuf::from("/usr/sbin/dockerd"), PathBuf::from);
    if !path.is_file() {
        bail!(
            "dockerd not found at {} (AUDIT_DOCKERD_BIN): run `cargo xtask test` (or `cargo \
             xtask tools`), which installs Debian's docker.io",
            path.display()
        );
    }
    Ok(path)
}

/// The Docker client of the same package.
pub fn docker_bin() -> PathBuf {
    std::env::var_os("AUDIT_DOCKER_BIN")
        .map_or_else(|| PathBuf::from("/usr/bin/docker"), PathBuf::from)
}

/// A running private Docker engine, stopped when dropped.
pub struct Docker {
    dir: PathBuf,
    daemon: Process,
}

impl Docker {
    /// Start dockerd with everything under `dir` (keep the path short: containerd's sockets
    /// live under it) and wait until it answers.
    pub fn start(dir: &Path) -> anyhow::Result<Docker> {
        std::fs::create_dir_all(dir)?;
        let mut cmd = Command::new(dockerd_bin()?);
        cmd.arg(format!(
            "--host=unix://{}",
            dir.join("docker.sock").display()
        ))
        .arg(format!("--data-root={}", dir.join("data").display()))
        .arg(format!("--exec-root={}", dir.join("x").display()))
        .arg(format!("--pidfile={}", dir.join("docker.pid").display()))
        .args([
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--storage-driver=vfs",
        ]);
        let mut daemon = Process::spawn("dockerd", cmd, &dir.join("dockerd.log"))?
            .with_stop_patience(Duration::from_secs(20));
        daemon.wait_for("dockerd to answer", Duration::from_secs(60), || {
            let out = client(dir).arg("version").output().ok()?;
            out.status.success().then_some(())
        })?;
        Ok(Docker {
            dir: dir.to_owned(),
            daemon,
        })
    }

    /// `docker ARGS` against this engine, run to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut cmd = client(&self.dir);
        cmd.args(args);
        Run::new(
            &mut cmd,
            format!("the end of dockerd's log:\n{}", self.daemon.log_tail(20)),
        )
    }

    /// `docker ARGS` as a [`Command`] (to spawn a long-running container).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = client(&self.dir);
        cmd.args(args);
        cmd
    }

    /// `docker build` with the legacy builder (BuildKit would pull its frontend).
    pub fn build(&self, dockerfile: &Path, tag: &str, context: &Path) -> anyhow::Result<()> {
        let mut cmd = client(&self.dir);
        cmd.env("DOCKER_BUILDKIT", "0")
            .arg("build")
            .arg("-f")
            .arg(dockerfile)
            .args(["-t", tag])
            .arg(context);
        let out = cmd
            .output()
            .with_context(|| format!("failed to run {}", show_cmd(&cmd)))?;
        if !out.status.success() {
            bail!(
                "{} failed:\n{}{}",
                show_cmd(&cmd),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

fn client(dir: &Path) -> Command {
    let mut cmd = Command::new(docker_bin());
    cmd.env(
        "DOCKER_HOST",
        format!("unix://{}", dir.join("docker.sock").display()),
    )
    .env("DOCKER_CONFIG", dir.join("client"));
    cmd
}
