//! Helpers shared by the tasks: running commands, locating the workspace and binaries.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The cargo that runs us.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Run a command, echoing it, and fail if it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("failed to start {}", show(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", show(cmd));
    }
    Ok(())
}

pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// The target directory cargo builds into.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Build the sealer, with the S3 store (debug profile, shared with the tests; or release),
/// and return its path.
pub fn build_sealer(release: bool) -> anyhow::Result<PathBuf> {
    build_sealer_with(release, true)
}

/// [`build_sealer`], with or without the S3 store (the cargo feature `s3`): without, the
/// sealer and its dependencies build in about half the time.
pub fn build_sealer_with(release: bool, s3: bool) -> anyhow::Result<PathBuf> {
    let mut c = cargo();
    c.args([
        "build",
        "--quiet",
        "-p",
        "sealer-sidecar",
        "--bin",
        "sealer",
    ]);
    if release {
        c.arg("--release");
    }
    if !s3 {
        c.arg("--no-default-features");
    }
    run(&mut c)?;
    let bin = target_dir()
        .join(if release { "release" } else { "debug" })
        .join("sealer");
    if !bin.exists() {
        bail!("built the sealer but {} does not exist", bin.display());
    }
    Ok(bin)
}

/// Build the audit filter for Envoy (`wasm32-wasip1`, profile `wasm-release`) and return the
/// path of its `.wasm`. Needs [`crate::tools::wasm_target`].
pub fn build_filter() -> anyhow::Result<PathBuf> {
    run(cargo().args([
        "build",
        "-p",
        "filter",
        "--target",
        crate::tools::WASM_TARGET,
        "--profile",
        "wasm-release",
    ]))?;
    let wasm = target_dir()
        .join(crate::tools::WASM_TARGET)
        .join("wasm-release")
        .join("filter.wasm");
    if !wasm.exists() {
        bail!("built the filter but {} does not exist", wasm.display());
    }
    Ok(wasm)
}

/// The number that follows the option `flag` in `args`.
pub fn number_after<'a>(
    flag: &str,
    args: &mut impl Iterator<Item = &'a String>,
) -> anyhow::Result<u64> {
    args.next()
        .with_context(|| format!("{flag} needs a number"))?
        .parse()
        .with_context(|| format!("{flag} needs a number"))
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One unlabelled metric from the sealer at `base` (`http://127.0.0.1:PORT`), from its
/// Prometheus `/metrics`; `None` if the sealer does not answer (5 s timeout) or lacks it.
pub fn sealer_metric(base: &str, name: &str) -> Option<u64> {
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(5))
        .build();
    let text = agent
        .get(&format!("{base}/metrics"))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Wait until `GET url` answers 200, or fail after `tries` × 100 ms.
pub fn wait_http_ok(url: &str, tries: u32) -> anyhow::Result<()> {
    for _ in 0..tries {
        if let Ok(r) = ureq::get(url).call()
            && r.status() == 200
        {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!("{url} did not answer 200 in time")
}

/// A fresh directory under the target directory, removed by nobody: demo and bench output
/// stays inspectable.
pub fn scratch_dir(name: &str) -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let dir = target_dir().join("xtask").join(format!("{name}-{nanos}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    Ok(dir)
}

/// The shipped standalone gateway config, relative to the workspace root.
pub const STANDALONE_ENVOY_CONFIG: &str = "envoy-config/standalone/envoy.yaml";

/// The `.wasm` path in the shipped config.
const SHIPPED_WASM: &str = "/etc/ingress-audit/filter.wasm";

/// The loopback ports of a gateway derived from the shipped config.
#[derive(Debug, Clone, Copy)]
pub struct EnvoyPorts {
    /// The `gateway` listener (8080 in the shipped file).
    pub gateway: u16,
    /// The stand-in `upstream` listener and the `app` cluster (8081).
    pub upstream: u16,
    /// Envoy's admin interface (9901).
    pub admin: u16,
    /// The sealer, cluster `audit_sealer` (8787).
    pub sealer: u16,
}

impl EnvoyPorts {
    /// Free ports for the gateway, the upstream and the admin interface, beside a sealer.
    pub fn free(sealer: u16) -> anyhow::Result<EnvoyPorts> {
        Ok(EnvoyPorts {
            gateway: free_port()?,
            upstream: free_port()?,
            admin: free_port()?,
            sealer,
        })
    }
}

/// `envoy-config/standalone/envoy.yaml` with the given ports, the audit filter loaded from
/// `wasm` and `plugin_json` (one line) as its configuration: the same substitutions as the
/// end-to-end tests (`tests/util/envoy.rs`), so the demo runs the file we ship.
pub fn standalone_envoy_config(
    ports: EnvoyPorts,
    wasm: &Path,
    plugin_json: &str,
) -> anyhow::Result<String> {
    let path = root().join(STANDALONE_ENVOY_CONFIG);
    let mut config = std::fs::read_to_string(&path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    // Through placeholders, so a new port that equals a shipped one is not replaced twice.
    let substitutions = [
        (8080, ports.gateway, 1),
        (8081, ports.upstream, 2), // the upstream listener and the `app` cluster
        (9901, ports.admin, 1),
        (8787, ports.sealer, 1),
    ];
    for (shipped, _, count) in substitutions {
        config = replace_counted(
            &config,
            &format!("port_value: {shipped}"),
            &format!("port_value: @{shipped}@"),
            count,
        )?;
    }
    for (shipped, port, _) in substitutions {
        config = config.replace(
            &format!("port_value: @{shipped}@"),
            &format!("port_value: {port}"),
        );
    }
    let wasm = wasm
        .to_str()
        .with_context(|| format!("{} is not UTF-8", wasm.display()))?;
    config = replace_counted(
        &config,
        &format!("filename: {SHIPPED_WASM}"),
        &format!("filename: {wasm}"),
        1,
    )?;
    with_plugin_config(&config, plugin_json)
}

/// `config` with `plugin_json` as the audit filter's configuration: the value of the
/// `google.protobuf.StringValue` in the shipped config.
fn with_plugin_config(config: &str, plugin_json: &str) -> anyhow::Result<String> {
    if plugin_json.contains('\n') {
        bail!("the plugin configuration must be one line");
    }
    let mut lines: Vec<String> = config.lines().map(str::to_owned).collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == r#""@type": type.googleapis.com/google.protobuf.StringValue"#)
        .with_context(|| shipped_changed("no StringValue plugin configuration"))?;
    let value = lines.get(at + 1).map(String::as_str).unwrap_or_default();
    if !value.trim_start().starts_with("value: ") {
        bail!(shipped_changed(
            "the StringValue is not followed by `value: ...`"
        ));
    }
    let indent = &value[..value.len() - value.trim_start().len()];
    // A single-quoted YAML scalar: only `'` needs escaping, as `''`.
    lines[at + 1] = format!("{indent}value: '{}'", plugin_json.replace('\'', "''"));
    Ok(lines.join("\n") + "\n")
}

fn replace_counted(text: &str, from: &str, to: &str, count: usize) -> anyhow::Result<String> {
    let found = text.matches(from).count();
    if found != count {
        bail!(shipped_changed(&format!(
            "expected {count} × {from:?}, found {found}"
        )));
    }
    Ok(text.replace(from, to))
}

fn shipped_changed(what: &str) -> String {
    format!("{STANDALONE_ENVOY_CONFIG} changed ({what}): update xtask/src/tasks.rs to match")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_config_gets_every_port_the_filter_and_its_configuration() {
        let ports = EnvoyPorts {
            gateway: 8787, // a shipped port, to show ports are not replaced twice
            upstream: 10001,
            admin: 10002,
            sealer: 10003,
        };
        let config =
            standalone_envoy_config(ports, Path::new("/tmp/f.wasm"), r#"{"gateway":"it's"}"#)
                .unwrap();
        for (port, count) in [(8787, 1), (10001, 2), (10002, 1), (10003, 1)] {
            assert_eq!(
                config.matches(&format!("port_value: {port}\n")).count()
                    + config.matches(&format!("port_value: {port} ")).count(),
                count,
                "port {port}"
            );
        }
        for shipped in [8080, 8081, 9901] {
            assert!(!config.contains(&format!("port_value: {shipped}")));
        }
        assert!(config.contains("filename: /tmp/f.wasm\n"));
        assert!(config.contains(r#"value: '{"gateway":"it''s"}'"#));
    }
}
