//! Child processes: a running one with its output in a log file ([`Process`]), and a finished
//! one with assertions on its output ([`Run`]).

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::wait;

/// How long a process may take to stop after SIGTERM before it is killed.
pub const STOP_PATIENCE: Duration = Duration::from_secs(30);

/// A child process (the sealer, Envoy, SeaweedFS) with its stdout and stderr appended to a
/// log file. It runs in its own process group, so a terminal's Ctrl-C reaches only the task,
/// which stops its children in order. Dropping it stops it: SIGTERM, then SIGKILL after
/// [`STOP_PATIENCE`].
pub struct Process {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    stop_patience: Duration,
}

impl Process {
    /// Spawn `cmd` with its output appended to `log` (created if needed). `name` is how
    /// errors call it ("the sealer").
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Process> {
        let file = append(log)?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("failed to start {name}: {}", show_cmd(&cmd)))?;
        Ok(Process {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
            stop_patience: STOP_PATIENCE,
        })
    }

    /// Stop with SIGKILL when SIGTERM has not worked after `patience` (default
    /// [`STOP_PATIENCE`]).
    pub fn with_stop_patience(mut self, patience: Duration) -> Process {
        self.stop_patience = patience;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// `Some(status)` once the process has exited (it is then no longer running).
    pub fn try_exit(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let status = child.try_wait()?;
        if status.is_some() {
            self.child = None;
        }
        Ok(status)
    }

    /// Fail, with the end of the log, if the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.try_exit()? {
            bail!(
                "{} exited with {status}; the end of its log ({}):\n{}",
                self.name,
                self.log.display(),
                self.log_tail(40)
            );
        }
        Ok(())
    }

    /// Wait until `probe` answers `Some`, failing at once if the process exits and, after
    /// `patience`, with the end of the log.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        patience: Duration,
        mut probe: impl FnMut() -> Option<T>,
    ) -> anyhow::Result<T> {
        let mut exited = None;
        let result = wait::until(what, patience, || {
            if let Ok(Some(status)) = self.try_exit() {
                exited = Some(status);
                return Some(None);
            }
            probe().map(Some)
        });
        match result {
            Ok(Some(value)) => Ok(value),
            Ok(None) => bail!(
                "{} exited with {} while waiting for {what}; the end of its log ({}):\n{}",
                self.name,
                exited.map_or_else(|| "an unknown status".to_owned(), |s| s.to_string()),
                self.log.display(),
                self.log_tail(40)
            ),
            Err(timeout) => bail!(
                "{timeout}; the end of {}'s log ({}):\n{}",
                self.name,
                self.log.display(),
                self.log_tail(40)
            ),
        }
    }

    /// Wait until `GET url` answers 200 (see [`Process::wait_for`]).
    pub fn wait_http_ok(&mut self, url: &str, patience: Duration) -> anyhow::Result<()> {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(5))
            .build();
        self.wait_for(&format!("{url} to answer 200"), patience, || {
            agent
                .get(url)
                .call()
                .ok()
                .filter(|r| r.status() == 200)
                .map(drop)
        })
    }

    /// Send `signal` (a `libc::SIG*`), if the process runs.
    pub fn signal(&self, signal: libc::c_int) -> anyhow::Result<()> {
        let Some(child) = self.child.as_ref() else {
            return Ok(());
        };
        let pid = libc::pid_t::try_from(child.id()).context("pid fits pid_t")?;
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child, not
        // yet waited for, so it cannot have been reused.
        if unsafe { libc::kill(pid, signal) } != 0 {
            bail!("kill -{signal} {pid}: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// SIGTERM, and wait for the process to exit; SIGKILL after the stop patience, which is an
    /// error. `None` if it was stopped before.
    pub fn stop(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if let Some(status) = self.try_exit()? {
            return Ok(Some(status));
        }
        if self.child.is_none() {
            return Ok(None);
        }
        self.signal(libc::SIGTERM)?;
        let patience = self.stop_patience;
        let exited = wait::until("exit", patience, || self.try_exit().ok().flatten());
        match exited {
            Ok(status) => Ok(Some(status)),
            Err(_) => {
                self.kill();
                bail!(
                    "{} did not stop within {patience:?} of SIGTERM (killed); its log is {}",
                    self.name,
                    self.log.display()
                )
            }
        }
    }

    /// SIGKILL and wait: a crash. `None` if it was not running.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.stop().is_err() {
            self.kill();
        }
    }
}

/// For tests: `launch` a component in a new temporary directory named `prefix…`, returning it
/// with the directory that the caller then owns; if it does not come up, panic with the
/// error and keep the directory for inspection.
pub fn launch_in_temp_dir<T>(
    prefix: &str,
    launch: impl FnOnce(&Path) -> anyhow::Result<T>,
) -> (T, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temporary directory");
    match launch(dir.path()) {
        Ok(launched) => (launched, dir),
        Err(e) => {
            eprintln!("test failed: kept {} for inspection", dir.keep().display());
            panic!("{e:#}")
        }
    }
}

/// `path` opened for appending, created if needed.
pub fn append(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("failed to open {} for appending", path.display()))
}

/// The command line and working directory of `cmd`, for messages.
pub fn show_cmd(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    if let Some(dir) = cmd.get_current_dir() {
        let _ = write!(s, " (in {})", dir.display());
    }
    s
}

/// A command that has run to completion, with assertions that panic with the command, its
/// status, stdout and stderr, and whatever context the caller attached.
pub struct Run {
    pub output: Output,
    /// The command, its directory, status and output, plus the caller's context (the
    /// sealer's log, the store's listing): printed when an assertion fails.
    pub context: String,
}

impl Run {
    /// Run `cmd` to completion. `context` is printed with the output if an assertion fails.
    pub fn new(cmd: &mut Command, context: String) -> Run {
        let output = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("failed to run {}: {e}\n{context}", show_cmd(cmd)));
        let mut text = format!("command: {}", show_cmd(cmd));
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

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// stdout parsed as JSON (for `--json`).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|e| self.fail(&format!("stdout is not JSON: {e}")))
    }

    /// The problems of a `sealer verify --json` report as `(class, location)` pairs.
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

    /// Panic unless the report lists a problem of `class` at `location`.
    pub fn expect_problem(&self, class: &str, location: &str) -> &Run {
        let problems = self.problems();
        if !problems.iter().any(|(c, l)| c == class && l == location) {
            self.fail(&format!(
                "expected a problem {class} at {location}; found {problems:#?}"
            ));
        }
        self
    }

    /// Panic unless the report lists a problem of `class` (anywhere).
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
