//! Envoy 1.40: configurations from the shipped files ([`config`]), `envoy --mode validate`,
//! and a running Envoy ([`Envoy`]) that is stopped on drop.

pub mod config;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use tempfile::TempDir;

use crate::locate::envoy_bin;
use crate::process::{Process, Run, launch_in_temp_dir};

/// How long Envoy may take to come up (it compiles the filter in V8) or to stop.
const PATIENCE: Duration = Duration::from_secs(30);

/// [`validate`], which must succeed: exit 0, `configuration '...' OK`, nothing critical.
pub fn expect_valid(config_yaml: &str) {
    let run = validate(config_yaml);
    run.expect_code(0);
    let log = run.stderr() + &run.stdout();
    if !log.contains("OK") || log.contains("[critical]") {
        run.fail("expected `configuration '...' OK` and no critical message");
    }
}

/// `envoy --mode validate -c CONFIG`: parses the config, creates its listeners, clusters and
/// filters (the Wasm VM too, which runs the filter's `on_configure`) without serving.
pub fn validate(config_yaml: &str) -> Run {
    let dir = temp_dir();
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, config_yaml).expect("write the Envoy config");
    let bin = envoy_bin().unwrap_or_else(|e| panic!("{e:#}"));
    let mut cmd = Command::new(bin);
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

/// A running Envoy, its config and log in a directory. Dropping it stops Envoy (SIGTERM,
/// then SIGKILL); when a test is failing, its log is printed and a temporary directory kept.
pub struct Envoy {
    process: Process,
    /// A temporary directory owned by this Envoy (tests); `None` when the caller's.
    temp: Option<TempDir>,
    admin_port: u16,
    agent: ureq::Agent,
}

impl Envoy {
    /// Start `bin -c DIR/NAME.yaml` with its log in `DIR/NAME.log` and wait until the admin
    /// interface answers `/ready` with 200 (LIVE). Defaults, unless `args` say otherwise: one
    /// worker thread and `--log-level info`. Hot restart is disabled, so Envoys running side
    /// by side share no memory and leave nothing in /dev/shm.
    pub fn launch(
        bin: &Path,
        dir: &Path,
        name: &str,
        config_yaml: &str,
        args: &[&str],
    ) -> anyhow::Result<Envoy> {
        let config = dir.join(format!("{name}.yaml"));
        std::fs::write(&config, config_yaml)
            .with_context(|| format!("failed to write {}", config.display()))?;
        let admin_address = dir.join(format!("{name}.admin-address"));
        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(&config);
        if !args.contains(&"--concurrency") {
            cmd.args(["--concurrency", "1"]);
        }
        if !args.contains(&"--log-level") {
            cmd.args(["--log-level", "info"]);
        }
        cmd.args(args)
            .arg("--disable-hot-restart")
            .arg("--admin-address-path")
            .arg(&admin_address)
            .current_dir(dir);
        let log = dir.join(format!("{name}.log"));
        let mut process = Process::spawn("Envoy", cmd, &log)?;
        let agent = ureq::AgentBuilder::new().timeout(PATIENCE).build();
        let admin_port =
            process.wait_for("Envoy's admin interface to be ready", PATIENCE, || {
                // Re-read each time: the file may be caught half-written.
                let address = std::fs::read_to_string(&admin_address).ok()?;
                let port: u16 = address.trim().rsplit(':').next()?.parse().ok()?;
                let ready = agent.get(&format!("http://127.0.0.1:{port}/ready")).call();
                ready.ok().filter(|r| r.status() == 200).map(|_| port)
            })?;
        Ok(Envoy {
            process,
            temp: None,
            admin_port,
            agent,
        })
    }

    /// For tests: start Envoy 1.40 with `config_yaml` in a temporary directory; panics with
    /// the log if it does not come up.
    pub fn start(config_yaml: &str) -> Envoy {
        Envoy::start_with_args(config_yaml, &[])
    }

    /// [`Envoy::start`] with more command-line arguments (e.g. drain settings).
    pub fn start_with_args(config_yaml: &str, args: &[&str]) -> Envoy {
        let bin = envoy_bin().unwrap_or_else(|e| panic!("{e:#}"));
        let (mut envoy, dir) = launch_in_temp_dir("envoy-e2e-", |dir| {
            Envoy::launch(&bin, dir, "envoy", config_yaml, args)
        });
        envoy.temp = Some(dir);
        envoy
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Fail, with the end of the log, if Envoy has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.process.ensure_running()
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

    /// One counter or gauge from the admin interface's `/stats` (`None` if absent).
    pub fn stat(&self, name: &str) -> Option<u64> {
        let (_, body) = self.get_url(&self.admin_url(&format!("/stats?filter=^{name}$")));
        body.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(": ")?
                .trim()
                .parse()
                .ok()
        })
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
        self.process.log().to_owned()
    }

    /// Envoy's log so far (its stdout and stderr).
    pub fn log(&self) -> String {
        self.process.log_text()
    }

    /// Panic with `msg`; the log follows, printed on drop.
    pub fn fail(&self, msg: &str) -> ! {
        panic!("{msg} (Envoy's log is printed below)")
    }

    /// SIGTERM, and wait for Envoy to exit (SIGKILL after 30 s). `None` if it was not
    /// running.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        match self.process.stop() {
            Ok(status) => status,
            Err(e) => self.fail(&format!("{e:#}")),
        }
    }

    /// [`Envoy::stop`] for the tasks: an error instead of a panic.
    pub fn try_stop(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.process.stop()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.process.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- Envoy log ({}) ---\n{}",
                self.log_path().display(),
                self.log()
            );
            if let Some(dir) = self.temp.take() {
                eprintln!("test failed: kept {} for inspection", dir.keep().display());
            }
        }
    }
}
