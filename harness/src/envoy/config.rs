//! Envoy configurations from the files we ship: `envoy-config/standalone/envoy.yaml` with our
//! loopback ports, the audit filter's `.wasm` and its plugin configuration, so that tests,
//! the demo and the benchmarks all run the file a user runs.
//!
//! Every substitution checks how often its text occurs in the shipped file, so a change to
//! the file fails here, by name, instead of producing a config that quietly differs.

use std::path::Path;

use anyhow::{Context, bail};

use crate::locate::{free_port, workspace_root};

/// The shipped config, relative to the workspace root.
pub const STANDALONE_CONFIG: &str = "envoy-config/standalone/envoy.yaml";

/// The `.wasm` path in the shipped config.
const SHIPPED_WASM: &str = "/etc/ingress-audit/filter.wasm";

/// The loopback ports of a gateway made from the shipped config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// The `gateway` listener (8080 in the shipped file).
    pub gateway: u16,
    /// The stand-in `upstream` listener and the `app` cluster (8081).
    pub upstream: u16,
    /// Envoy's admin interface (9901).
    pub admin: u16,
    /// The sealer, cluster `audit_sealer` (8787).
    pub sealer: u16,
}

impl Ports {
    /// Free ports for the gateway, the upstream and the admin interface, beside a sealer.
    pub fn free(sealer: u16) -> Ports {
        Ports {
            gateway: free_port(),
            upstream: free_port(),
            admin: free_port(),
            sealer,
        }
    }
}

/// `envoy-config/standalone/envoy.yaml` as shipped.
pub fn shipped() -> anyhow::Result<String> {
    let path = workspace_root().join(STANDALONE_CONFIG);
    std::fs::read_to_string(&path).with_context(|| format!("failed to read {}", path.display()))
}

/// The shipped config with the given ports, the filter loaded from `wasm` and `plugin_json`
/// (one line) as its configuration.
pub fn standalone(ports: Ports, wasm: &Path, plugin_json: &str) -> anyhow::Result<String> {
    let mut config = shipped()?;
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
    with_plugin_config(&with_wasm_path(&config, wasm)?, plugin_json)
}

/// `config` with the audit filter loaded from `wasm`.
pub fn with_wasm_path(config: &str, wasm: &Path) -> anyhow::Result<String> {
    let path = wasm
        .to_str()
        .with_context(|| format!("{} is not UTF-8", wasm.display()))?;
    replace_counted(
        config,
        &format!("filename: {SHIPPED_WASM}"),
        &format!("filename: {path}"),
        1,
    )
}

/// `config` with `plugin_json` (one line) as the audit filter's configuration: the value of
/// the `google.protobuf.StringValue` in the shipped config.
pub fn with_plugin_config(config: &str, plugin_json: &str) -> anyhow::Result<String> {
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

/// `config` without the audit filter (the `envoy.filters.http.wasm` entry of `http_filters`).
pub fn without_audit_filter(config: &str) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let mut removing_below: Option<usize> = None;
    let mut removed = false;
    for line in config.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(depth) = removing_below {
            if line.trim().is_empty() || indent > depth {
                continue;
            }
            removing_below = None;
        }
        if line.trim() == "- name: envoy.filters.http.wasm" {
            removing_below = Some(indent);
            removed = true;
            continue;
        }
        out.push(line);
    }
    if !removed {
        bail!(shipped_changed(
            "no `- name: envoy.filters.http.wasm` filter"
        ));
    }
    Ok(out.join("\n") + "\n")
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
    format!("{STANDALONE_CONFIG} changed ({what}): update harness/src/envoy/config.rs to match")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_gets_every_port_the_filter_and_its_configuration() {
        let ports = Ports {
            gateway: 8787, // a shipped port, to show ports are not replaced twice
            upstream: 10001,
            admin: 10002,
            sealer: 10003,
        };
        let config = standalone(ports, Path::new("/tmp/f.wasm"), r#"{"gateway":"it's"}"#).unwrap();
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

    #[test]
    fn without_audit_filter_removes_the_wasm_filter_and_nothing_else() {
        let shipped = shipped().unwrap();
        let bare = without_audit_filter(&shipped).unwrap();
        assert!(!bare.contains("envoy.filters.http.wasm"));
        assert!(bare.contains("envoy.filters.http.router"));
        assert!(
            without_audit_filter(&bare).is_err(),
            "a second removal finds nothing"
        );
    }

    #[test]
    fn a_multi_line_plugin_configuration_is_refused() {
        let shipped = shipped().unwrap();
        assert!(with_plugin_config(&shipped, "{\n}").is_err());
    }
}
