//! `cargo xtask bench k8s`: what the API server's audit webhook does to writes when the
//! sealer is up, down, hung or slow, in each webhook mode; measured with a real
//! kube-apiserver (1.20.2) and the real sealer.
//!
//! For each mode (`blocking`, `batch`, `blocking-strict`) and each state of one sealer:
//! - **up**: three Ingress creations; the median time of `kubectl create`.
//! - **down**: the sealer killed (SIGKILL) before the write and restarted 5 s after it ends.
//! - **hung**: the sealer stopped (SIGSTOP) before the write and continued (SIGCONT) after.
//! - **slow**: the sealer stopped for 3 s from the start of the write, then continued.
//!
//! For each: how long `kubectl create` took, whether it succeeded, and whether the event was
//! sealed in the end (lost or not). The table goes into docs/kubernetes.md. The webhook's
//! initial backoff is `--backoff` (default the shipped 200ms); `--also-backoff 5s` adds
//! `blocking` with another one, for comparison.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use harness::kube::{Audit, ControlPlane, User};
use harness::pki::Pki;
use harness::process::Process;
use harness::sealer::Serve;

use crate::tasks;

const MODES: [&str; 3] = ["blocking", "batch", "blocking-strict"];
const STATES: [&str; 4] = ["up", "down", "hung", "slow"];

pub fn run(args: &[String]) -> anyhow::Result<u8> {
    let mut backoff = "200ms".to_owned();
    let mut also: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--backoff" => backoff = it.next().context("--backoff needs a duration")?.clone(),
            "--also-backoff" => {
                also = Some(
                    it.next()
                        .context("--also-backoff needs a duration")?
                        .clone(),
                )
            }
            other => bail!(
                "unknown option {other:?}; usage: cargo xtask bench k8s [--backoff D] [--also-backoff D]"
            ),
        }
    }
    let sealer = tasks::build_sealer(false)?;
    let root = tempfile::Builder::new().prefix("k8s-bench-").tempdir()?;
    let mut rows = Vec::new();
    let mut runs: Vec<(&str, String)> = MODES.iter().map(|m| (*m, backoff.clone())).collect();
    if let Some(b) = also {
        runs.push(("blocking", b));
    }
    for (i, (mode, backoff)) in runs.iter().enumerate() {
        for state in STATES {
            let dir = root.path().join(format!("{i}-{mode}-{state}"));
            let row = scenario(&sealer, &dir, mode, backoff, state)
                .with_context(|| format!("{mode} / {state}"))?;
            eprintln!("{row}");
            rows.push(row);
        }
    }
    println!("| mode | initial backoff | sealer | write took | write | event |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    Ok(0)
}

/// One sealer with the webhook, its certificates and token in `dir`.
struct WebhookSealer {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
    webhook: u16,
    process: Option<Process>,
}

impl WebhookSealer {
    fn start(bin: &Path, dir: &Path) -> anyhow::Result<WebhookSealer> {
        std::fs::create_dir_all(dir)?;
        Pki::new(dir).ca("ca", "/CN=bench CA").issue(
            "ca",
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1",
        );
        let token = dir.join("webhook.token");
        std::fs::write(&token, "bench-webhook-token-0123456789abcdef0123456789\n")?;
        std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        tasks::run(
            Command::new(bin)
                .args(["keygen", "--origin", "bench.example/control-plane", "--out"])
                .arg(dir.join("keys")),
        )?;
        let mut s = WebhookSealer {
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            port: harness::free_port(),
            webhook: harness::free_port(),
            process: None,
        };
        s.spawn()?;
        Ok(s)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let d = |f: &str| self.dir.join(f).display().to_string();
        let process = Serve::new(&self.bin, self.port)
            .args([
                format!("--keys={}", d("keys")),
                format!("--store={}", d("store")),
                format!("--data-dir={}", d("data")),
                format!("--webhook-listen=127.0.0.1:{}", self.webhook),
                format!("--tls-cert={}", d("server.pem")),
                format!("--tls-key={}", d("server.key")),
                format!("--webhook-token-file={}", d("webhook.token")),
                "--segment-max-age=100ms".into(),
            ])
            .start(&self.dir.join("sealer.log"))?;
        self.process = Some(process);
        Ok(())
    }

    fn signal(&self, signal: libc::c_int) -> anyhow::Result<()> {
        self.process.as_ref().context("not running")?.signal(signal)
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// Ingress creations sealed so far (from the sealer's own read API).
    fn sealed(&self) -> anyhow::Result<u64> {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        let text = ureq::get(&url).call()?.into_string()?;
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix("sealer_k8s_audit_events_received_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0))
    }
}

fn scenario(
    bin: &Path,
    dir: &Path,
    mode: &str,
    backoff: &str,
    state: &str,
) -> anyhow::Result<String> {
    let mut sealer = WebhookSealer::start(bin, &dir.join("sealer"))?;
    let kubeconfig = dir.join("webhook.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: s\n  cluster:\n    server: https://127.0.0.1:{}/v1/k8s/audit\n    certificate-authority: {}\nusers:\n- name: a\n  user:\n    tokenFile: {}\ncontexts:\n- name: c\n  context: {{cluster: s, user: a}}\ncurrent-context: c\n",
            sealer.webhook,
            dir.join("sealer/ca.pem").display(),
            dir.join("sealer/webhook.token").display()
        ),
    )?;
    let mut flags = vec![
        format!("--audit-webhook-mode={mode}"),
        format!("--audit-webhook-initial-backoff={backoff}"),
    ];
    if mode == "batch" {
        flags.push("--audit-webhook-batch-max-wait=100ms".into());
    }
    let plane = ControlPlane::start(
        &dir.join("control-plane"),
        &Audit {
            policy: harness::workspace_root().join("envoy-config/kubernetes/audit-policy.yaml"),
            webhook_kubeconfig: kubeconfig,
            flags,
        },
    )?;
    let ok = plane.kubectl(User::Admin, &["create", "namespace", "shop"]);
    if ok.code() != 0 {
        bail!("kubectl create namespace failed: {}", ok.stderr());
    }
    let create = |name: &str| -> (Duration, bool) {
        let started = Instant::now();
        let run = plane.create_ingress("shop", name);
        (started.elapsed(), run.code() == 0)
    };
    let baseline = sealer.sealed()?;
    let (took, succeeded) = match state {
        "up" => {
            let mut times: Vec<Duration> = (0..3).map(|i| create(&format!("up-{i}")).0).collect();
            times.sort();
            (times[1], true)
        }
        "down" => {
            sealer.kill();
            let r = create("down");
            std::thread::sleep(Duration::from_secs(5));
            sealer.spawn()?;
            r
        }
        "hung" => {
            sealer.signal(libc::SIGSTOP)?;
            let r = create("hung");
            sealer.signal(libc::SIGCONT)?;
            r
        }
        "slow" => {
            sealer.signal(libc::SIGSTOP)?;
            let resume = std::thread::spawn({
                let pid = sealer.process.as_ref().and_then(Process::pid);
                move || {
                    std::thread::sleep(Duration::from_secs(3));
                    if let Some(pid) = pid {
                        // SAFETY: kill(2) on our child's pid.
                        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
                    }
                }
            });
            let r = create("slow");
            resume.join().ok();
            r
        }
        _ => unreachable!(),
    };
    // Batch mode and retries may deliver later: give them time.
    std::thread::sleep(Duration::from_secs(if mode == "batch" { 20 } else { 5 }));
    let expected = if state == "up" { 3 } else { 1 };
    let received = sealer.sealed()?.saturating_sub(baseline);
    let event = if state == "down" {
        // The restarted sealer's counter starts at 0: count what it received.
        if sealer.sealed()? >= expected {
            "sealed"
        } else {
            "**lost**"
        }
    } else if received >= expected {
        "sealed"
    } else {
        "**lost**"
    };
    drop(plane);
    sealer.kill();
    Ok(format!(
        "| {mode} | {backoff} | {state} | {:.2} s | {} | {event} |",
        took.as_secs_f64(),
        if succeeded {
            "succeeded"
        } else {
            "**refused**"
        }
    ))
}
