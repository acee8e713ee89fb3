//! Test harness for the end-to-end tests: runs the real `sealer` binary.
//!
//! In the style of ripgrep's `tests/util.rs`: small helpers that do one thing and, when they
//! fail, panic with everything needed to understand why (the command, its working directory,
//! exit status, stdout and stderr, the sealer's log and a listing of the store).
//!
//! - [`sealer_bin`] finds the binary next to the test executable (build it first).
//! - [`Sealer`] owns a temporary directory with keys, a store and a data directory, and runs
//!   `sealer serve` on a free loopback port.
//! - [`Run`] is a finished command with its output, and assertions on it.
//! - [`envoy`] runs Envoy 1.40 with the shipped gateway config.
//! - [`seaweedfs`] runs a real S3 server with Object Lock.
//! - [`browser`] drives headless Chromium over the DevTools protocol.
//! - [`pki`] makes test certificates and sends HTTPS requests from an independent client.

pub mod browser;
pub mod envoy;
pub mod pki;
pub mod seaweedfs;

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// How long the sealer may take to come up or to stop (debug build, busy machine).
const PATIENCE: Duration = Duration::from_secs(30);

/// The `sealer` binary of the profile the tests were built with.
pub fn sealer_bin() -> PathBuf {
    // target/<profile>/deps/<test>-<hash> → target/<profile>/sealer
    let exe = std::env::current_exe().expect("the test executable has a path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable is in target/<profile>/deps")
        .join(format!("sealer{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        panic!(
            "{} not found: run `cargo build -p sealer-sidecar` first (cargo xtask test does)",
            bin.display()
        );
    }
    bin
}

/// A `sealer` command with a clean environment (no `SEALER_*` variable leaks in from the
/// caller's) and uncoloured logs.
pub fn sealer_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(sealer_bin());
    cmd.args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SEALER_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// A command that has run to completion.
pub struct Run {
    pub output: Output,
    /// The command, its directory, status and output, plus whatever context the caller
    /// attached (the sealer's log, the store's listing): printed when an assertion fails.
    pub context: String,
}

impl Run {
    /// Run `cmd` to completion. `context` is printed with the output if an assertion fails.
    pub fn new(cmd: &mut Command, context: String) -> Run {
        let output = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("failed to run {}: {e}\n{context}", show_cmd(cmd)));
        let mut text = show_cmd(cmd);
        let _ = write!(
            text,
            "\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n{context}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        Run {
            output,
            context: text,
        }
    }

    /// The exit code (panics if the process was killed by a signal).
    pub fn code(&self) -> i32 {
        match self.output.status.code() {
            Some(c) => c,
            None => self.fail("process ended without an exit code"),
        }
    }

    /// Panic unless the exit code is `expected`.
    pub fn expect_code(&self, expected: i32) -> &Run {
        if self.code() != expected {
            self.fail(&format!("expected exit code {expected}"));
        }
        self
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// stdout parsed as JSON (for `--json`).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|e| self.fail(&format!("stdout is not JSON: {e}")))
    }

    /// The problems of a `--json` report as `(class, location)` pairs.
    pub fn problems(&self) -> Vec<(String, String)> {
        let report = self.json();
        let Some(list) = report["problems"].as_array() else {
            self.fail("the report has no problems array")
        };
        list.iter()
            .map(|p| match (p["class"].as_str(), p["location"].as_str()) {
                (Some(c), Some(l)) => (c.to_owned(), l.to_owned()),
                _ => self.fail(&format!("a problem without class or location: {p}")),
            })
            .collect()
    }

    /// Panic unless the `--json` report lists a problem of `class` at `location`.
    pub fn expect_problem(&self, class: &str, location: &str) -> &Run {
        let problems = self.problems();
        if !problems.iter().any(|(c, l)| c == class && l == location) {
            self.fail(&format!(
                "expected a problem {class} at {location}; found {problems:#?}"
            ));
        }
        self
    }

    /// Panic unless the `--json` report lists a problem of `class` (anywhere).
    pub fn expect_class(&self, class: &str) -> &Run {
        let problems = self.problems();
        if !problems.iter().any(|(c, _)| c == class) {
            self.fail(&format!(
                "expected a problem of class {class}; found {problems:#?}"
            ));
        }
        self
    }

    /// Panic unless no problem of `class` is listed.
    pub fn expect_no_class(&self, class: &str) -> &Run {
        let problems = self.problems();
        if problems.iter().any(|(c, _)| c == class) {
            self.fail(&format!("expected no problem of class {class}"));
        }
        self
    }

    /// Panic with `msg` and everything known about the run.
    pub fn fail(&self, msg: &str) -> ! {
        panic!("{msg}\n\n{}", self.context)
    }
}

fn show_cmd(cmd: &Command) -> String {
    let mut s = format!("command: {}", cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        let _ = write!(s, " {}", a.to_string_lossy());
    }
    let cwd = match cmd.get_current_dir() {
        Some(d) => d.to_path_buf(),
        None => std::env::current_dir().unwrap_or_default(),
    };
    let _ = write!(s, "\ncwd: {}", cwd.display());
    s
}

/// Every file under `dir` with its size, one per line (hidden names included).
pub fn listing(dir: &Path) -> String {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                let rel = path.strip_prefix(root).unwrap_or(&path);
                out.push(format!("  {} ({size} bytes)", rel.display()));
            }
        }
    }
    let mut lines = Vec::new();
    walk(dir, dir, &mut lines);
    lines.sort();
    format!(
        "--- listing of {} ---\n{}\n",
        dir.display(),
        lines.join("\n")
    )
}

/// `n` valid NDJSON events of `source` with sequence numbers `first..first+n`.
pub fn events(source: &str, first: u64, n: u64) -> String {
    (first..first + n)
        .map(|seq| event(source, seq, 200) + "\n")
        .collect()
}

/// One valid event line (without newline).
pub fn event(source: &str, seq: u64, status: u16) -> String {
    serde_json::json!({
        "source": {"id": source, "seq": seq},
        "event": {
            "start_time": "2026-11-28T07:00:00Z",
            "http": {"request": {"method": "GET"}, "response": {"status_code": status}},
            "url": {"path": format!("/items/{seq}")},
        },
    })
    .to_string()
}

/// A running (or stopped) `sealer serve` with its own keys, store and data directory.
pub struct Sealer {
    /// `None` once kept for inspection after a failure.
    dir: Option<TempDir>,
    root: PathBuf,
    pub origin: String,
    serve_args: Vec<String>,
    /// `--store` when not the local `store/` directory (an `s3://` location).
    store_location: Option<String>,
    /// `--data-dir` when not the local `data/` directory.
    data_location: Option<PathBuf>,
    /// Environment of every `sealer` command (AWS settings for an S3 store).
    env: Vec<(String, String)>,
    /// Bearer tokens this harness sends, when the sealer was started with token files
    /// ([`Sealer::start_with_tokens`]): ingest for POSTs, read for GETs.
    pub tokens: Option<(String, String)>,
    /// Where the token files are, for as long as the sealer lives.
    token_dir: Option<TempDir>,
    child: Option<Child>,
    port: u16,
    agent: ureq::Agent,
}

impl Sealer {
    /// Create keys for `origin` and start a sealer. `extra` is appended to
    /// `sealer serve --keys .. --store .. --data-dir .. --listen ..`.
    pub fn start(origin: &str, extra: &[&str]) -> Sealer {
        Sealer::start_with(origin, None, Vec::new(), extra)
    }

    /// Like [`Sealer::start`] with `--store STORE` (e.g. `s3://bucket/prefix`) and `env` for
    /// every `sealer` command this harness runs.
    pub fn start_with(
        origin: &str,
        store: Option<&str>,
        env: Vec<(String, String)>,
        extra: &[&str],
    ) -> Sealer {
        Sealer::start_in(origin, store, None, env, extra)
    }

    /// Like [`Sealer::start_with`], with the data directory (the WAL) at `data` instead of
    /// inside the sealer's directory: a small filesystem, for disk-fault tests.
    pub fn start_in(
        origin: &str,
        store: Option<&str>,
        data: Option<&Path>,
        env: Vec<(String, String)>,
        extra: &[&str],
    ) -> Sealer {
        let dir = tempfile::Builder::new()
            .prefix("sealer-e2e-")
            .tempdir()
            .expect("temporary directory");
        let mut s = Sealer {
            root: dir.path().to_owned(),
            dir: Some(dir),
            origin: origin.to_owned(),
            serve_args: extra.iter().map(|a| a.to_string()).collect(),
            store_location: store.map(str::to_owned),
            data_location: data.map(Path::to_owned),
            env,
            tokens: None,
            token_dir: None,
            child: None,
            port: 0,
            agent: ureq::AgentBuilder::new().timeout(PATIENCE).build(),
        };
        let keys = s.keys_dir();
        let keys = keys.to_str().expect("UTF-8 path");
        s.run(&["keygen", "--out", keys, "--origin", origin])
            .expect_code(0);
        s.spawn();
        s
    }

    /// Like [`Sealer::start`], with an ingest and a read token (files of mode 0600 in the
    /// sealer's directory) that the API then requires; the harness sends them.
    pub fn start_with_tokens(origin: &str, extra: &[&str]) -> Sealer {
        let dir = tempfile::Builder::new()
            .prefix("sealer-tokens-")
            .tempdir()
            .expect("temporary directory");
        let ingest = format!("ingest-{}", "i".repeat(40));
        let read = format!("read-{}", "r".repeat(40));
        let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        for (flag, name, token) in [
            ("--ingest-token-file", "ingest.token", &ingest),
            ("--read-token-file", "read.token", &read),
        ] {
            let path = dir.path().join(name);
            fs::write(&path, format!("{token}\n")).expect("token file");
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod 600");
            args.extend([flag.to_owned(), path.to_str().expect("UTF-8").to_owned()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut sealer = Sealer::start_with(origin, None, Vec::new(), &args);
        sealer.tokens = Some((ingest, read));
        sealer.token_dir = Some(dir);
        sealer
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn keys_dir(&self) -> PathBuf {
        self.root().join("keys")
    }
    /// `--store` as given to `sealer serve`: a directory or an `s3://` location.
    pub fn store_arg(&self) -> String {
        match &self.store_location {
            Some(location) => location.clone(),
            None => self.store().to_str().expect("UTF-8 path").to_owned(),
        }
    }

    /// The local store: `store/` in the sealer's directory, or the directory given.
    pub fn store(&self) -> PathBuf {
        match &self.store_location {
            Some(dir) if !dir.contains("://") => PathBuf::from(dir),
            _ => self.root().join("store"),
        }
    }
    pub fn data_dir(&self) -> PathBuf {
        self.data_location
            .clone()
            .unwrap_or_else(|| self.root().join("data"))
    }
    pub fn public_key(&self) -> PathBuf {
        self.keys_dir().join("signing.pub")
    }
    pub fn hmac_key(&self) -> PathBuf {
        self.keys_dir().join("hmac.key")
    }
    pub fn signing_key(&self) -> PathBuf {
        self.keys_dir().join("signing.key")
    }
    pub fn log_path(&self) -> PathBuf {
        self.root().join("sealer.log")
    }
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The sealer's log and a listing of its directory, for failure messages.
    pub fn diagnostics(&self) -> String {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        format!(
            "--- sealer log ({}) ---\n{log}\n{}",
            self.log_path().display(),
            listing(self.root())
        )
    }

    /// Panic with `msg` and the diagnostics.
    pub fn fail(&self, msg: &str) -> ! {
        panic!("{msg}\n\n{}", self.diagnostics())
    }

    /// Run `sealer ARGS` to completion in the sealer's directory.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut cmd = sealer_cmd(args);
        cmd.current_dir(self.root()).envs(self.env.iter().cloned());
        Run::new(&mut cmd, self.diagnostics())
    }

    /// `sealer verify --store STORE --public-key .. --hmac-key .. EXTRA`, where STORE is this
    /// sealer's store.
    pub fn verify(&self, extra: &[&str]) -> Run {
        if self
            .store_location
            .as_deref()
            .is_some_and(|l| l.contains("://"))
        {
            let (store, pk, hk) = (self.store_arg(), self.public_key(), self.hmac_key());
            let mut args = vec!["verify", "--store", &store];
            args.extend(["--public-key", s(&pk), "--hmac-key", s(&hk)]);
            args.extend(extra);
            return self.run(&args);
        }
        self.verify_store(&self.store(), extra)
    }

    /// Like [`Sealer::verify`] for another store directory (e.g. a tampered copy).
    pub fn verify_store(&self, store: &Path, extra: &[&str]) -> Run {
        let (store, pk, hk) = (store.to_owned(), self.public_key(), self.hmac_key());
        let mut args = vec!["verify", "--store", s(&store)];
        args.extend(["--public-key", s(&pk), "--hmac-key", s(&hk)]);
        args.extend(extra);
        let mut cmd = sealer_cmd(&args);
        cmd.current_dir(self.root());
        let mut context = self.diagnostics();
        if !store.starts_with(self.root()) {
            context += &listing(&store);
        }
        Run::new(&mut cmd, context)
    }

    /// `sealer export` of this sealer's store (which verifies it first): every entry, parsed.
    pub fn export_entries(&self) -> Vec<Value> {
        let (store, pk) = (self.store_arg(), self.public_key());
        let run = self.run(&["export", "--store", &store, "--public-key", s(&pk)]);
        run.expect_code(0);
        run.stdout()
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| run.fail(&format!("an exported entry is not JSON: {e}")))
            })
            .collect()
    }

    /// Wait until every entry sealed so far is in the store under a checkpoint
    /// (`/readyz` reports no upload lag). Start the sealer with a short `--segment-max-age`.
    pub fn wait_stored(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let ready = self.get_json("/readyz");
            if ready["upload_lag_entries"] == 0 {
                return;
            }
            if Instant::now() > deadline {
                self.fail(&format!("entries not stored within {PATIENCE:?}: {ready}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Copy the store to a new directory next to it (made writable), for tampering.
    pub fn copy_store(&self, name: &str) -> PathBuf {
        let to = self.root().join(name);
        copy_dir(&self.store(), &to);
        to
    }

    /// Start `sealer serve` on a free port and wait until it answers `/healthz`. Retries with
    /// another port if the one picked was taken in the meantime.
    fn spawn(&mut self) {
        self.spawn_on(None)
    }

    /// As [`Sealer::spawn`], on `port` if given (retrying while it is still being released).
    fn spawn_on(&mut self, port: Option<u16>) {
        for _attempt in 0..5 {
            self.port = match port {
                Some(p) => p,
                None => TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("a free port")
                    .port(),
            };
            let log = append(&self.log_path());
            let log_start = log.metadata().map_or(0, |m| m.len() as usize);
            let listen = format!("127.0.0.1:{}", self.port);
            let (keys, store, data) = (self.keys_dir(), self.store(), self.data_dir());
            let store = self.store_location.as_deref().unwrap_or(s(&store));
            let mut args = vec!["serve", "--keys", s(&keys), "--store", store];
            args.extend(["--data-dir", s(&data), "--listen", &listen]);
            args.extend(self.serve_args.iter().map(String::as_str));
            let mut cmd = sealer_cmd(&args);
            cmd.current_dir(self.root())
                .envs(self.env.iter().cloned())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log);
            let header = format!("=== test harness: {}\n", show_cmd(&cmd));
            let _ = std::io::Write::write_all(&mut append(&self.log_path()), header.as_bytes());
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| self.fail(&format!("failed to start the sealer: {e}")));
            self.child = Some(child);
            match self.wait_healthy() {
                Ok(()) => return,
                Err(status) => {
                    let log = fs::read(self.log_path()).unwrap_or_default();
                    let this_run = String::from_utf8_lossy(log.get(log_start..).unwrap_or(&[]));
                    if !this_run.contains("failed to listen") {
                        self.fail(&format!("the sealer exited at start with {status}"));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        self.fail("could not start the sealer on a free port in 5 attempts");
    }

    /// Wait for `/healthz`; `Err` with the exit status if the process ended first.
    fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + PATIENCE;
        let url = self.url("/healthz");
        loop {
            let child = self.child.as_mut().expect("started");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Err(status.to_string());
            }
            if self.agent.get(&url).call().is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.fail(&format!("the sealer did not answer {url} in {PATIENCE:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// POST `body` with `content_type` to `/v1/events`: `(status, JSON body)`. A body that is
    /// not JSON comes back as a JSON string.
    pub fn post(&self, content_type: &str, body: &str) -> (u16, Value) {
        let mut request = self
            .agent
            .post(&self.url("/v1/events"))
            .set("Content-Type", content_type);
        if let Some((ingest, _)) = &self.tokens {
            request = request.set("Authorization", &format!("Bearer {ingest}"));
        }
        let result = request.send_string(body);
        let (status, text) = self.response(result, "POST /v1/events");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// POST an NDJSON body to `/v1/events`.
    pub fn post_ndjson(&self, body: &str) -> (u16, Value) {
        self.post("application/x-ndjson", body)
    }

    /// POST an NDJSON body and panic unless it is acknowledged; returns the ack.
    pub fn seal(&self, body: &str) -> Value {
        let (status, ack) = self.post_ndjson(body);
        if status != 200 {
            self.fail(&format!("POST /v1/events answered {status}: {ack}"));
        }
        ack
    }

    /// GET `path`: `(status, body)`.
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut request = self.agent.get(&self.url(path));
        if let Some((_, read)) = &self.tokens {
            request = request.set("Authorization", &format!("Bearer {read}"));
        }
        let result = request.call();
        self.response(result, &format!("GET {path}"))
    }

    /// GET `path`, panic unless 200, parse the body as JSON.
    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        if status != 200 {
            self.fail(&format!("GET {path} answered {status}: {body}"));
        }
        serde_json::from_str(&body)
            .unwrap_or_else(|e| self.fail(&format!("GET {path}: not JSON ({e}): {body}")))
    }

    /// The value of an unlabelled metric from `/metrics`.
    pub fn metric(&self, name: &str) -> u64 {
        let (status, text) = self.get("/metrics");
        if status != 200 {
            self.fail(&format!("GET /metrics answered {status}"));
        }
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| self.fail(&format!("no metric {name} in:\n{text}")))
    }

    fn response(&self, result: Result<ureq::Response, ureq::Error>, what: &str) -> (u16, String) {
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => self.fail(&format!("{what} on port {} failed: {e}", self.port)),
        };
        let status = resp.status();
        match resp.into_string() {
            Ok(body) => (status, body),
            Err(e) => self.fail(&format!(
                "{what}: reading the {status} response failed: {e}"
            )),
        }
    }

    /// SIGTERM, then wait: the sealer stores its last segment and exits 0.
    pub fn stop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child,
        // not yet waited for, so it cannot have been reused.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            self.fail(&format!(
                "kill -TERM {pid}: {}",
                std::io::Error::last_os_error()
            ));
        }
        let status = self.wait_exit();
        if !status.success() {
            self.fail(&format!("after SIGTERM the sealer exited with {status}"));
        }
    }

    /// SIGKILL, then wait: a crash.
    pub fn kill9(&mut self) {
        if let Some(child) = self.child.as_mut() {
            child.kill().expect("SIGKILL the sealer");
            self.wait_exit();
        }
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                self.fail(&format!("the sealer did not exit within {PATIENCE:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start again with the same keys, store, data directory and options (on a new port).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.fail("restart() of a sealer that is still running");
        }
        self.spawn();
    }

    /// Start again as [`Sealer::restart`] does, but on the same port: a gateway's cluster
    /// points at a fixed address.
    pub fn restart_on_same_port(&mut self) {
        if self.child.is_some() {
            self.fail("restart_on_same_port() of a sealer that is still running");
        }
        self.spawn_on(Some(self.port));
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if (std::thread::panicking() || std::env::var_os("E2E_KEEP").is_some())
            && let Some(dir) = self.dir.take()
        {
            eprintln!("test failed: kept {} for inspection", dir.keep().display());
        }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log file")
}

/// Copy a directory tree; the copies are writable (the store's objects are 0444).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for e in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let e = e.expect("directory entry");
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).expect("copy file");
            make_writable(&target);
        }
    }
}

/// chmod u+w, so a test can edit a stored (0444) object.
pub fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path).expect("metadata").permissions().mode();
    fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o200)).expect("chmod u+w");
}
