//! The sealer: `sealer serve` started on a loopback port and waited for ([`Serve`]), and the
//! end-to-end tests' driver around it ([`Sealer`]): its own keys, store and data directory,
//! HTTP calls, the offline commands, restarts and crashes, and failure messages that carry
//! the sealer's log and a listing of its directory.

use std::ffi::OsStr;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::files::{copy_dir, listing};
use crate::process::{Process, Run, append, show_cmd};
use crate::wait;

/// How long the sealer may take to come up or to stop (debug build, busy machine).
const PATIENCE: Duration = Duration::from_secs(30);

/// The `sealer` binary of the profile the running tests or task were built with.
pub fn sealer_bin() -> PathBuf {
    crate::locate::workspace_bin("sealer").unwrap_or_else(|e| panic!("{e:#}"))
}

/// `bin ARGS` with a clean environment (no `SEALER_*` variable leaks in from the caller's)
/// and uncoloured logs.
pub fn command(bin: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SEALER_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// A `sealer` command of the tests' build, with a clean environment.
pub fn sealer_cmd(args: &[&str]) -> Command {
    command(&sealer_bin(), args)
}

/// `sealer serve --listen 127.0.0.1:PORT ...`, started and waited for until it answers
/// `/healthz`.
pub struct Serve {
    cmd: Command,
    port: u16,
    patience: Duration,
}

impl Serve {
    pub fn new(bin: &Path, port: u16) -> Serve {
        let listen = format!("127.0.0.1:{port}");
        Serve {
            cmd: command(bin, &["serve", "--listen", &listen]),
            port,
            patience: PATIENCE,
        }
    }

    /// `sealer witness --listen 127.0.0.1:PORT ...` instead, waited for the same way.
    pub fn witness(bin: &Path, port: u16) -> Serve {
        let listen = format!("127.0.0.1:{port}");
        Serve {
            cmd: command(bin, &["witness", "--listen", &listen]),
            port,
            patience: PATIENCE,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Serve {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Serve {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Serve {
        self.cmd.env(key, value);
        self
    }

    pub fn envs<I, K, V>(mut self, vars: I) -> Serve
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.cmd.envs(vars);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Serve {
        self.cmd.current_dir(dir);
        self
    }

    /// How long it may take to answer `/healthz` (default 30 s): a sealer that starts on a
    /// large store verifies it first.
    pub fn patience(mut self, patience: Duration) -> Serve {
        self.patience = patience;
        self
    }

    /// The command line, for messages.
    pub fn show(&self) -> String {
        show_cmd(&self.cmd)
    }

    /// Start it with its output appended to `log`, and wait until `/healthz` answers 200.
    pub fn start(self, log: &Path) -> anyhow::Result<Process> {
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        let mut process = Process::spawn("the sealer", self.cmd, log)?;
        process.wait_http_ok(&url, self.patience)?;
        Ok(process)
    }
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
    process: Option<Process>,
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
            process: None,
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
        self.wait_until("every sealed entry to be stored", || {
            self.get_json("/readyz")["upload_lag_entries"] == 0
        });
    }

    /// Wait until `condition` holds, or fail with the sealer's diagnostics after 30 s.
    pub fn wait_until(&self, what: &str, condition: impl FnMut() -> bool) {
        self.wait_until_within(what, PATIENCE, condition);
    }

    /// [`Sealer::wait_until`] with another patience.
    pub fn wait_until_within(
        &self,
        what: &str,
        patience: Duration,
        condition: impl FnMut() -> bool,
    ) {
        if let Err(timeout) = wait::until_true(what, patience, condition) {
            self.fail(&timeout.to_string());
        }
    }

    /// Wait until `probe` answers, and return its answer; fail with the sealer's diagnostics
    /// after 30 s.
    pub fn wait_for<T>(&self, what: &str, probe: impl FnMut() -> Option<T>) -> T {
        wait::until(what, PATIENCE, probe).unwrap_or_else(|timeout| self.fail(&timeout.to_string()))
    }

    /// Wait until the metric `name` is at least `value`; its value.
    pub fn wait_metric(&self, name: &str, value: u64) -> u64 {
        let found = wait::until(&format!("{name} >= {value}"), PATIENCE, || {
            Some(self.metric(name)).filter(|&v| v >= value)
        });
        found.unwrap_or_else(|timeout| {
            let now = self.metric(name);
            self.fail(&format!("{timeout} (it is {now})"))
        })
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
            let log_start = fs::metadata(self.log_path()).map_or(0, |m| m.len() as usize);
            let (keys, store, data) = (self.keys_dir(), self.store(), self.data_dir());
            let store = self.store_location.as_deref().unwrap_or(s(&store));
            let serve = Serve::new(&sealer_bin(), self.port)
                .args(["--keys", s(&keys), "--store", store, "--data-dir", s(&data)])
                .args(&self.serve_args)
                .current_dir(self.root())
                .envs(self.env.iter().cloned());
            let header = format!("=== test harness: {}\n", serve.show());
            let log = append(&self.log_path()).unwrap_or_else(|e| self.fail(&format!("{e:#}")));
            let _ = std::io::Write::write_all(&mut &log, header.as_bytes());
            match serve.start(&self.log_path()) {
                Ok(process) => {
                    self.process = Some(process);
                    return;
                }
                Err(e) => {
                    let log = fs::read(self.log_path()).unwrap_or_default();
                    let this_run = String::from_utf8_lossy(log.get(log_start..).unwrap_or(&[]));
                    if !this_run.contains("failed to listen") {
                        self.fail(&format!("the sealer did not start: {e:#}"));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        self.fail("could not start the sealer on a free port in 5 attempts");
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
        let Some(mut process) = self.process.take() else {
            return;
        };
        match process.stop() {
            Ok(Some(status)) if status.success() => {}
            Ok(status) => self.fail(&format!("after SIGTERM the sealer exited with {status:?}")),
            Err(e) => self.fail(&format!("{e:#}")),
        }
    }

    /// SIGKILL, then wait: a crash.
    pub fn kill9(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// The sealer's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Process::pid)
    }

    /// Start again with the same keys, store, data directory and options (on a new port).
    pub fn restart(&mut self) {
        if self.process.is_some() {
            self.fail("restart() of a sealer that is still running");
        }
        self.spawn();
    }

    /// Start again as [`Sealer::restart`] does, but on the same port: a gateway's cluster
    /// points at a fixed address.
    pub fn restart_on_same_port(&mut self) {
        if self.process.is_some() {
            self.fail("restart_on_same_port() of a sealer that is still running");
        }
        self.spawn_on(Some(self.port));
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
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
