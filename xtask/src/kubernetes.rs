//! The Kubernetes control plane the tests run for real: kube-apiserver built from Debian's
//! source package (no registry ships the binary), etcd from Debian's `etcd-server`, kubectl
//! from Debian's `kubernetes-client`.
//!
//! The build, done once per machine (about 8 minutes on 2 cores), goes into the tools
//! directory outside the clone, like Envoy and SeaweedFS:
//!
//! 1. `apt-get source kubernetes` with a private apt configuration (a `deb-src` line for
//!    `bookworm main` on the mirror the system's apt already uses, signed by Debian's archive
//!    keyring): the system's own sources stay untouched.
//! 2. Debian's `golang-1.19-go` and `rsync`, then
//!    `make WHAT=cmd/kube-apiserver KUBE_GIT_VERSION=v1.20.2 KUBE_BUILD_PLATFORMS=linux/amd64`
//!    in the tree (a plain `go build` lacks the generated OpenAPI definitions).
//!    The tree vendors `github.com/modern-go/reflect2` 1.0.1, whose map iteration crashes
//!    the API server (SIGSEGV in `mapiternext`) when built with Go 1.18 or later; it is
//!    replaced by Debian's `golang-github-modern-go-reflect2-dev` (1.0.2, the fixed release)
//!    before the build.
//! 3. The binary is kept as `kube-apiserver-1.20.2/kube-apiserver`, with `recipe.txt` saying
//!    how it was built (a changed recipe rebuilds it); the sources and Go's build cache are
//!    removed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::tasks;
use crate::tools::{debian_package, stdout, tools_dir};

/// Debian bookworm's `kubernetes` source package.
pub const KUBERNETES_VERSION: &str = "1.20.2";

/// What `recipe.txt` beside the binary says; another recipe means another build.
const RECIPE: &str = "kubernetes 1.20.2 from Debian's source package, Go 1.19, vendored reflect2 replaced by Debian's 1.0.2\n";

/// Where Debian's reflect2 sources are.
const REFLECT2: &str = "/usr/share/gocode/src/github.com/modern-go/reflect2";

/// The Go toolchain Debian bookworm builds it with.
const GO_PACKAGE: &str = "golang-1.19-go";
const GO_ROOT: &str = "/usr/lib/go-1.19";

/// The Debian packages of the other parts, pinned by the release: etcd 3.4 and kubectl.
pub fn etcd() -> anyhow::Result<PathBuf> {
    debian_package("etcd", "etcd-server")
}

pub fn kubectl() -> anyhow::Result<PathBuf> {
    // The machine may carry another kubectl on PATH; the tests use Debian's, of the API
    // server's generation.
    let debian = PathBuf::from("/usr/bin/kubectl");
    let from_debian = Command::new("dpkg")
        .args(["-S", "/usr/bin/kubectl"])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"kubernetes-client"));
    if !from_debian {
        tasks::run(Command::new("apt-get").arg("update"))?;
        tasks::run(
            Command::new("apt-get")
                .args([
                    "install",
                    "-y",
                    "--no-install-recommends",
                    "-o",
                    "Dpkg::Options::=--force-overwrite",
                    "kubernetes-client",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    let version = stdout(Command::new(&debian).args(["version", "--client", "--short"]))
        .or_else(|_| stdout(Command::new(&debian).args(["version", "--client"])))?;
    if !version.contains(&format!("v{KUBERNETES_VERSION}")) {
        bail!(
            "{} is not Debian's kubectl {KUBERNETES_VERSION}: {}",
            debian.display(),
            version.trim()
        );
    }
    Ok(debian)
}

/// kube-apiserver 1.20.2, built once from Debian's source package into the tools directory.
pub fn kube_apiserver() -> anyhow::Result<PathBuf> {
    let dir = tools_dir().join(format!("kube-apiserver-{KUBERNETES_VERSION}"));
    let bin = dir.join("kube-apiserver");
    let recipe = dir.join("recipe.txt");
    if bin.is_file()
        && check_version(&bin).is_ok()
        && std::fs::read_to_string(&recipe).is_ok_and(|r| r == RECIPE)
    {
        return Ok(bin);
    }
    eprintln!(
        "xtask: building kube-apiserver {KUBERNETES_VERSION} from Debian's source package \
         (once per machine, about 8 minutes on 2 cores) into {}",
        dir.display()
    );
    debian_package(&format!("{GO_ROOT}/bin/go"), GO_PACKAGE)?;
    debian_package("rsync", "rsync")?;
    debian_package("dpkg-source", "dpkg-dev")?;
    debian_package(
        &format!("{REFLECT2}/reflect2.go"),
        "golang-github-modern-go-reflect2-dev",
    )?;
    let work = tools_dir().join(format!("kubernetes-{KUBERNETES_VERSION}-build"));
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("failed to clear {}", work.display()))?;
    }
    std::fs::create_dir_all(work.join("apt/lists/partial"))?;
    let sources = work.join("apt/sources.list");
    std::fs::write(
        &sources,
        format!(
            "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {} bookworm main\n",
            debian_mirror()?
        ),
    )?;
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.arg("-o")
            .arg(format!("Dir::Etc::SourceList={}", sources.display()))
            .args(["-o", "Dir::Etc::SourceParts=/dev/null"])
            .arg("-o")
            .arg(format!(
                "Dir::State::Lists={}",
                work.join("apt/lists").display()
            ))
            .args(args)
            .current_dir(&work);
        c
    };
    tasks::run(&mut apt(&["update"]))?;
    tasks::run(&mut apt(&["source", "--only-source", "kubernetes"]))?;
    // Debian's version is `1.20.5+really1.20.2-…`: the tree is `kubernetes-1.20.5+really1.20.2`.
    let tree = std::fs::read_dir(&work)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("kubernetes-"))
                && p.join("Makefile").is_file()
        })
        .with_context(|| {
            format!(
                "`apt-get source kubernetes` unpacked no kubernetes-*/Makefile in {}",
                work.display()
            )
        })?;
    if !tree.to_string_lossy().ends_with(KUBERNETES_VERSION) {
        bail!(
            "{} is not kubernetes {KUBERNETES_VERSION} (has bookworm's source package changed?)",
            tree.display()
        );
    }
    replace_reflect2(&tree.join("vendor/github.com/modern-go/reflect2"))?;
    let path = format!(
        "{GO_ROOT}/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    tasks::run(
        Command::new("make")
            .args([
                "WHAT=cmd/kube-apiserver",
                &format!("KUBE_GIT_VERSION=v{KUBERNETES_VERSION}"),
                "KUBE_BUILD_PLATFORMS=linux/amd64",
            ])
            .current_dir(&tree)
            .env("PATH", path)
            .env("GOCACHE", work.join("go-cache"))
            .env("GOPATH", work.join("go"))
            .env("GOFLAGS", "-mod=vendor")
            .env("GO111MODULE", "on"),
    )?;
    let built = tree.join("_output/local/bin/linux/amd64/kube-apiserver");
    if !built.is_file() {
        bail!("the build finished but {} is missing", built.display());
    }
    std::fs::create_dir_all(&dir)?;
    let partial = dir.join("kube-apiserver.partial");
    std::fs::copy(&built, &partial)?;
    std::fs::rename(&partial, &bin)?;
    check_version(&bin)?;
    std::fs::write(&recipe, RECIPE)?;
    // Go's module cache is read-only; make it removable before cleaning up.
    let _ = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(&work)
        .status();
    std::fs::remove_dir_all(&work)
        .with_context(|| format!("failed to remove the build tree {}", work.display()))?;
    Ok(bin)
}

/// Put Debian's reflect2 (its `.go` files, not its tests) where the tree vendors 1.0.1.
fn replace_reflect2(vendored: &Path) -> anyhow::Result<()> {
    if !vendored.is_dir() {
        bail!("{} is missing from the source tree", vendored.display());
    }
    std::fs::remove_dir_all(vendored)?;
    std::fs::create_dir_all(vendored)?;
    let mut copied = 0;
    for entry in std::fs::read_dir(REFLECT2)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if path.is_file() && name.ends_with(".go") && !name.ends_with("_test.go") {
            std::fs::copy(&path, vendored.join(&name))?;
            copied += 1;
        }
    }
    if copied == 0 {
        bail!("no .go files in {REFLECT2}");
    }
    Ok(())
}

fn check_version(bin: &Path) -> anyhow::Result<()> {
    let version = stdout(Command::new(bin).arg("--version"))?;
    if !version.contains(&format!("v{KUBERNETES_VERSION}")) {
        bail!("{} is {}", bin.display(), version.trim());
    }
    Ok(())
}

/// The Debian mirror the system's apt uses (its `deb.debian.org` stanza, or the first
/// `URIs:` of `debian.sources`, or the first `deb` line of `sources.list`).
fn debian_mirror() -> anyhow::Result<String> {
    let deb822 =
        std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    let legacy = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    let from_deb822 = deb822
        .lines()
        .filter_map(|l| l.strip_prefix("URIs:"))
        .flat_map(str::split_whitespace)
        .find(|u| !u.contains("security"));
    let from_legacy = legacy
        .lines()
        .filter(|l| l.starts_with("deb "))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("http")))
        .find(|u| !u.contains("security"));
    from_deb822.or(from_legacy).map(str::to_owned).context(
        "no Debian mirror in /etc/apt/sources.list.d/debian.sources nor /etc/apt/sources.list",
    )
}
