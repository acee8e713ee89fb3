//! Envoy for the end-to-end tests: the binary that `cargo xtask test` installs, the shipped
//! standalone gateway config with test ports, and a running Envoy that is stopped on drop.
//!
//! - [`envoy_bin`] and [`filter_wasm`] find Envoy 1.40 and the built audit filter, and panic
//!   naming the command that provides them when they are missing: no test skips silently.
//! - [`standalone_config`] is `envoy-config/standalone/envoy.yaml` with test ports, `.wasm` and
//!   plugin configuration, so tests run the file we ship; [`without_audit_filter`] drops the
//!   filter from a config.
//! - [`validate`] runs `envoy --mode validate`; [`Envoy`] runs Envoy until dropped and prints
//!   its log when a test fails.

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::Run;

/// How long Envoy may take to come up (it compiles the filter in V8) or to stop.
const PATIENCE: Duration = Duration::from_secs(30);

/// The shipped config, relative to the workspace root.
pub const STANDALONE_CONFIG: &str = "envoy-config/standalone/envoy.yaml";

/// The `.wasm` path in the shipped config.
const SHIPPED_WASM: &str = "/etc/ingress-audit/filter.wasm";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// Envoy 1.40: `AUDIT_ENVOY_BIN` (set by `cargo xtask test`), else the one `cargo xtask test`
/// installs in `target/tools/envoy-venv`.
pub fn envoy_bin() -> PathBuf {
    let installed = workspace_root().join("target/tools/envoy-venv/bin/envoy");
    let from_env = std::env::var_os("AUDIT_ENVOY_BIN").map(PathBuf::from);
    match from_env.iter().chain([&installed]).find(|p| p.is_file()) {
        Some(bin) => bin.clone(),
        None => panic!(
            "Envoy not found (AUDIT_ENVOY_BIN={from_env:?}, {}): run `cargo xtask test` (it \
             installs Envoy)",
            installed.display()
        ),
    }
}

/// The audit filter built for Envoy.
pub fn filter_wasm() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let wasm = target.join("wasm32-wasip1/wasm-release/filter.wasm");
    if !wasm.is_file() {
        panic!(
            "{} not found: build the audit filter with `cargo build -p filter --target \
             wasm32-wasip1 --profile wasm-release` (cargo xtask test does)",
            wasm.display()
        );
    }
    wasm
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `envoy-config/standalone/envoy.yaml` as shipped.
pub fn shipped_config() -> String {
    let path = workspace_root().join(STANDALONE_CONFIG);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The shipped config with the listeners, the admin interface and the clusters on the given
/// loopback ports, the filter loaded from `wasm_path` and `plugin_json` as its configuration.
pub fn standalone_config(
    gateway_port: u16,
    upstream_port: u16,
    admin_port: u16,
    sealer_port: u16,
    wasm_path: &Path,
    plugin_json: &str,
) -> String {
    let mut config = shipped_config();
    // Through placeholders, so a new port that equals a shipped one is not replaced twice.
    let ports = [
        (8080, gateway_port, 1),
        (8081, upstream_port, 2), // the upstream listener and the `app` cluster
        (9901, admin_port, 1),
        (8787, sealer_port, 1),
    ];
    for (shipped, _, count) in ports {
        let placeholder = format!("port_value: @{shipped}@");
        config = replace_counted(
            &config,
            &format!("port_value: {shipped}"),
            &placeholder,
            count,
        );
    }
    for (shipped, port, _) in ports {
        config = config.replace(
            &format!("port_value: @{shipped}@"),
            &format!("port_value: {port}"),
        );
    }
    with_plugin_config(&with_wasm_path(&config, wasm_path), plugin_json)
}

/// `config` with the audit filter loaded from `wasm_path`.
pub fn with_wasm_path(config: &str, wasm_path: &Path) -> String {
    let path = wasm_path.to_str().expect("UTF-8 path");
    replace_counted(
        config,
        &format!("filename: {SHIPPED_WASM}"),
        &format!("filename: {path}"),
        1,
    )
}

/// `config` with `plugin_json` (one line) as the audit filter's configuration: the
/// `google.protobuf.StringValue` of the shipped config.
pub fn with_plugin_config(config: &str, plugin_json: &str) -> String {
    assert!(
        !plugin_json.contains('\n'),
        "the plugin configuration is one line"
    );
    let mut lines: Vec<String> = config.lines().map(str::to_owned).collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == r#""@type": type.googleapis.com/google.protobuf.StringValue"#)
        .unwrap_or_else(|| shipped_changed("no StringValue plugin configuration"));
    let value = lines.get(at + 1).map(String::as_str).unwrap_or_default();
    if !value.trim_start().starts_with("value: ") {
        shipped_changed("the StringValue is not followed by `value: ...`");
    }
    let indent = &value[..value.len() - value.trim_start().len()];
    // A single-quoted YAML scalar: only `'` needs escaping, as `''`.
    lines[at + 1] = format!("{indent}value: '{}'", plugin_json.replace('\'', "''"));
    lines.join("\n") + "\n"
}

/// `config` without the audit filter (the `envoy.filters.http.wasm` entry of `http_filters`).
pub fn without_audit_filter(config: &str) -> String {
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
        shipped_changed("no `- name: envoy.filters.http.wasm` filter");
    }
    out.join("\n") + "\n"
}

fn replace_counted(text: &str, from: &str, to: &str, count: usize) -> String {
    let found = text.matches(from).count();
    if found != count {
        shipped_changed(&format!("expected {count} × {from:?}, found {found}"));
    }
    text.replace(from, to)
}

fn shipped_changed(what: &str) -> ! {
    panic!("{STANDALONE_CONFIG} changed ({what}): update tests/util/envoy.rs to match")
}

/// [`validate`], which must succeed: exit 0, `configuration '...' OK`, nothing critical.
pub fn expect_valid(config_yaml: &str) {
    let run = validate(config_yaml);
    run.expect_code(0);
    let log = String::from_utf8_lossy(&run.output.stderr).into_owned() + &run.stdout();
    if !log.contains("OK") || log.contains("[critical]") {
        run.fail("expected `configuration '...' OK` and no critical message");
    }
}

/// `envoy --mode validate -c CONFIG`: parses the config, creates its listeners, clusters and
/// filters (the Wasm VM too, which runs the filter's `on_configure`) without serving.
pub fn validate(config_yaml: &str) -> Run {
    let dir = temp_dir();
    let path = dir.path().join("envoy.yaml");
    fs::write(&path, config_yaml).expect("write the Envoy config");
    let mut cmd = Command::new(envoy_bin());
    cmd.args(["--mode", "validate", "--log-level", "info", "-c"])
        .arg(&path)
        .current_dir(dir.path());
    Run::new(&mut cmd, format!("--- config ---\n{config_yaml}"))
}

fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("envoy-e2e-")
        .tempdir()
        .expect("temporary directory")
}

/// A running Envoy, with its config and log in a temporary directory. Dropping it stops Envoy
/// (SIGTERM, then SIGKILL); if the test is failing, its log is printed and the directory kept.
pub struct Envoy {
    /// `None` once kept for inspection after a failure.
    dir: Option<TempDir>,
    root: PathBuf,
    child: Option<Child>,
    admin_port: u16,
    agent: ureq::Agent,
}

impl Envoy {
    /// Start `envoy -c CONFIG --concurrency 1` and wait until its admin interface answers
    /// `/ready` with 200 (LIVE). Hot restart is disabled, so Envoys in parallel tests share no
    /// memory and leave nothing in /dev/shm.
    pub fn start(config_yaml: &str) -> Envoy {
        Envoy::start_with_args(config_yaml, &[])
    }

    /// [`Envoy::start`] with more command-line arguments (e.g. drain settings).
    pub fn start_with_args(config_yaml: &str, args: &[&str]) -> Envoy {
        let dir = temp_dir();
        let root = dir.path().to_owned();
        let config = root.join("envoy.yaml");
        fs::write(&config, config_yaml).expect("write the Envoy config");
        let log = File::create(root.join("envoy.log")).expect("log file");
        let mut cmd = Command::new(envoy_bin());
        cmd.arg("-c")
            .arg(&config)
            .args(["--concurrency", "1", "--log-level", "info"])
            .args(args)
            .arg("--disable-hot-restart")
            .arg("--admin-address-path")
            .arg(root.join("admin-address"))
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {cmd:?}: {e}"));
        let mut envoy = Envoy {
            dir: Some(dir),
            root,
            child: Some(child),
            admin_port: 0,
            agent: ureq::AgentBuilder::new().timeout(PATIENCE).build(),
        };
        envoy.wait_ready();
        envoy
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let child = self.child.as_mut().expect("started");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                self.fail(&format!("Envoy exited at start with {status}"));
            }
            // Re-read each time: the file may be caught half-written.
            let address = fs::read_to_string(self.root.join("admin-address")).unwrap_or_default();
            if let Some(port) = address
                .trim()
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
            {
                self.admin_port = port;
                if let Ok(r) = self.agent.get(&self.admin_url("/ready")).call()
                    && r.status() == 200
                {
                    return;
                }
            }
            if Instant::now() > deadline {
                self.fail(&format!("Envoy was not ready within {PATIENCE:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// The port the listener `name` is bound to, as the admin interface reports it.
    pub fn listener_port(&self, name: &str) -> u16 {
        let (status, body) = self.get_url(&self.admin_url("/listeners?format=json"));
        let listeners: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| self.fail(&format!("/listeners answered {status}: {e}: {body}")));
        listeners["listener_statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["name"] == name)
            .and_then(|l| l["local_address"]["socket_address"]["port_value"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| self.fail(&format!("no listener {name:?} in {body}")))
    }

    /// `http://127.0.0.1:PORT{path}` on the listener `name`.
    pub fn url(&self, listener: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.listener_port(listener))
    }

    /// GET `path` on the listener `name`: `(status, body)`, whatever the status.
    pub fn get(&self, listener: &str, path: &str) -> (u16, String) {
        self.get_url(&self.url(listener, path))
    }

    fn get_url(&self, url: &str) -> (u16, String) {
        let resp = match self.agent.get(url).call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => self.fail(&format!("GET {url} failed: {e}")),
        };
        let status = resp.status();
        let body = resp
            .into_string()
            .unwrap_or_else(|e| self.fail(&format!("GET {url}: reading the body failed: {e}")));
        (status, body)
    }

    pub fn log_path(&self) -> PathBuf {
        self.root.join("envoy.log")
    }

    /// Envoy's log so far (its stdout and stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Panic with `msg`; the log follows, printed on drop.
    pub fn fail(&self, msg: &str) -> ! {
        panic!("{msg} (Envoy's log is printed below)")
    }

    /// SIGTERM, and wait for Envoy to exit (SIGKILL after 30 s). `None` if it was not
    /// running.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child, not
        // yet waited for, so it cannot have been reused.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- Envoy log ({}) ---\n{}",
                self.log_path().display(),
                self.log()
            );
            if let Some(dir) = self.dir.take() {
                eprintln!("test failed: kept {} for inspection", dir.keep().display());
            }
        }
    }
}
