//! A real Kubernetes control plane on loopback: etcd 3.4 (Debian `etcd-server`) and
//! kube-apiserver 1.20.2 (built from Debian's source package by `cargo xtask test`), with
//! kubectl (Debian `kubernetes-client`) for the tests to act as users.
//!
//! The API server runs with token authentication (an `admin` in `system:masters` and a
//! `developer` with no rights), RBAC, and the audit flags the test gives it: the shipped
//! audit policy and webhook kubeconfig, with only addresses and file paths substituted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::locate::{free_port, tools_dir};
use crate::pki::Pki;
use crate::process::{Process, Run, show_cmd};

/// How long etcd and the API server may take to be ready.
const START_PATIENCE: Duration = Duration::from_secs(90);

/// kube-apiserver: `AUDIT_KUBE_APISERVER_BIN`, else the one `cargo xtask test` built.
pub fn kube_apiserver_bin() -> anyhow::Result<PathBuf> {
    installed(
        "AUDIT_KUBE_APISERVER_BIN",
        &tools_dir().join("kube-apiserver-1.20.2/kube-apiserver"),
        "kube-apiserver 1.20.2",
    )
}

/// etcd: `AUDIT_ETCD_BIN`, else Debian's `/usr/bin/etcd`.
pub fn etcd_bin() -> anyhow::Result<PathBuf> {
    installed("AUDIT_ETCD_BIN", Path::new("/usr/bin/etcd"), "etcd")
}

/// kubectl: `AUDIT_KUBECTL_BIN`, else Debian's `/usr/bin/kubectl`.
pub fn kubectl_bin() -> anyhow::Result<PathBuf> {
    installed(
        "AUDIT_KUBECTL_BIN",
        Path::new("/usr/bin/kubectl"),
        "kubectl",
    )
}

fn installed(env_var: &str, default: &Path, what: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os(env_var).map_or_else(|| default.to_owned(), PathBuf::from);
    if !path.is_file() {
        bail!(
            "{what} not found at {} ({env_var}): run `cargo xtask test` (or `cargo xtask \
             tools`), which installs it",
            path.display()
        );
    }
    Ok(path)
}

/// Who kubectl acts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    /// `admin`, in `system:masters`: may do anything, impersonation included.
    Admin,
    /// `developer`: authenticated, with no RBAC rights.
    Developer,
}

impl User {
    fn name(self) -> &'static str {
        match self {
            User::Admin => "admin",
            User::Developer => "developer",
        }
    }
}

/// The API server's audit configuration.
pub struct Audit {
    /// `--audit-policy-file`.
    pub policy: PathBuf,
    /// `--audit-webhook-config-file`.
    pub webhook_kubeconfig: PathBuf,
    /// Further `--audit-webhook-*` flags (`--audit-webhook-mode=blocking`, …).
    pub flags: Vec<String>,
}

/// etcd and kube-apiserver, stopped when dropped (the API server first).
pub struct ControlPlane {
    dir: PathBuf,
    port: u16,
    apiserver: Process,
    etcd: Process,
}

impl ControlPlane {
    /// Start etcd and the API server in `dir` (certificates, tokens, data, logs) with
    /// `audit`, and wait until the API server is ready and has created its default
    /// namespace and RBAC roles.
    pub fn start(dir: &Path, audit: &Audit) -> anyhow::Result<ControlPlane> {
        std::fs::create_dir_all(dir)?;
        let etcd = start_etcd(dir)?;
        let (mut etcd, etcd_url) = etcd;
        let pki = Pki::new(dir);
        pki.ca("kube-ca", "/CN=test kube CA").issue(
            "kube-ca",
            "apiserver",
            "/CN=kube-apiserver",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        );
        // The service-account token signer (1.20 requires the three flags).
        openssl(dir, &["genrsa", "-out", "sa.key", "2048"])?;
        openssl(dir, &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"])?;
        std::fs::write(
            dir.join("tokens.csv"),
            "admin-token,admin,1,\"system:masters\"\ndeveloper-token,developer,2,\"developers\"\n",
        )?;
        let port = free_port();
        let p = |name: &str| dir.join(name).display().to_string();
        let mut cmd = Command::new(kube_apiserver_bin()?);
        cmd.arg(format!("--etcd-servers={etcd_url}"))
            .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
            .arg(format!("--secure-port={port}"))
            .arg("--insecure-port=0")
            .arg(format!("--tls-cert-file={}", p("apiserver.pem")))
            .arg(format!("--tls-private-key-file={}", p("apiserver.key")))
            .arg(format!("--cert-dir={}", p("certs")))
            .arg(format!("--token-auth-file={}", p("tokens.csv")))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg(format!("--service-account-key-file={}", p("sa.pub")))
            .arg(format!(
                "--service-account-signing-key-file={}",
                p("sa.key")
            ))
            .arg("--service-cluster-ip-range=10.96.0.0/16")
            .arg("--profiling=false")
            .arg(format!("--audit-policy-file={}", audit.policy.display()))
            .arg(format!(
                "--audit-webhook-config-file={}",
                audit.webhook_kubeconfig.display()
            ))
            .args(&audit.flags);
        let mut apiserver = Process::spawn("kube-apiserver", cmd, &dir.join("kube-apiserver.log"))?
            .with_stop_patience(Duration::from_secs(20));
        for user in [User::Admin, User::Developer] {
            std::fs::write(
                dir.join(format!("{}.kubeconfig", user.name())),
                kubeconfig(port, &p("kube-ca.pem"), user),
            )?;
        }
        let plane_dir = dir.to_owned();
        let ready = apiserver.wait_for("kube-apiserver to be ready", START_PATIENCE, || {
            let out = kubectl_command(&plane_dir, User::Admin, &["get", "--raw", "/readyz"])
                .ok()?
                .output()
                .ok()?;
            (out.status.success() && out.stdout.starts_with(b"ok")).then_some(())
        });
        if let Err(e) = ready {
            etcd.stop().ok();
            return Err(e);
        }
        // The bootstrap controllers create `default` and the RBAC roles right after.
        apiserver.wait_for("the default namespace", START_PATIENCE, || {
            let out = kubectl_command(&plane_dir, User::Admin, &["get", "namespace", "default"])
                .ok()?
                .output()
                .ok()?;
            out.status.success().then_some(())
        })?;
        Ok(ControlPlane {
            dir: dir.to_owned(),
            port,
            apiserver,
            etcd,
        })
    }

    /// The API server's HTTPS port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The API server's log so far.
    pub fn apiserver_log(&self) -> String {
        self.apiserver.log_text()
    }

    /// `kubectl ARGS` as `user`, run to completion.
    pub fn kubectl(&self, user: User, args: &[&str]) -> Run {
        let mut cmd = kubectl_command(&self.dir, user, args)
            .unwrap_or_else(|e| panic!("kubectl cannot run: {e:#}"));
        Run::new(
            &mut cmd,
            format!(
                "the end of kube-apiserver's log:\n{}",
                self.apiserver.log_tail(30)
            ),
        )
    }

    /// `kubectl -n NAMESPACE create ingress NAME --class=istio --rule=…` as admin: one
    /// audited write.
    pub fn create_ingress(&self, namespace: &str, name: &str) -> Run {
        self.kubectl(
            User::Admin,
            &[
                "-n",
                namespace,
                "create",
                "ingress",
                name,
                "--class=istio",
                "--rule=shop.example.com/=web:80",
            ],
        )
    }

    /// `kubectl VERB -f FILE` as `user`, FILE holding `manifest`.
    pub fn kubectl_manifest(&self, user: User, verb: &str, manifest: &str) -> Run {
        let file = self.dir.join("manifest.yaml");
        std::fs::write(&file, manifest).expect("write the manifest");
        self.kubectl(user, &[verb, "-f", &file.display().to_string()])
    }

    /// The API server's metrics (`GET /metrics` as admin).
    pub fn metrics(&self) -> String {
        self.kubectl(User::Admin, &["get", "--raw", "/metrics"])
            .expect_code(0)
            .stdout()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.apiserver.stop().ok();
        self.etcd.stop().ok();
    }
}

fn kubectl_command(dir: &Path, user: User, args: &[&str]) -> anyhow::Result<Command> {
    let mut cmd = Command::new(kubectl_bin()?);
    cmd.arg(format!(
        "--kubeconfig={}",
        dir.join(format!("{}.kubeconfig", user.name())).display()
    ))
    .args(args)
    .current_dir(dir);
    Ok(cmd)
}

fn kubeconfig(port: u16, ca: &str, user: User) -> String {
    let (name, token) = (user.name(), format!("{}-token", user.name()));
    format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: test\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {ca}\n\
         users:\n- name: {name}\n  user:\n    token: {token}\n\
         contexts:\n- name: {name}\n  context:\n    cluster: test\n    user: {name}\n\
         current-context: {name}\n"
    )
}

/// etcd on free loopback ports, ready; its client URL.
fn start_etcd(dir: &Path) -> anyhow::Result<(Process, String)> {
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut cmd = Command::new(etcd_bin()?);
    cmd.args(["--name", "test"])
        .arg(format!("--data-dir={}", dir.join("etcd").display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=test={peer_url}"))
        .env("ETCD_UNSUPPORTED_ARCH", "");
    let mut etcd = Process::spawn("etcd", cmd, &dir.join("etcd.log"))?;
    etcd.wait_http_ok(&format!("{client_url}/health"), START_PATIENCE)?;
    Ok((etcd, client_url))
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let mut cmd = Command::new("openssl");
    cmd.args(args).current_dir(dir);
    let out = cmd
        .output()
        .with_context(|| format!("failed to run {}", show_cmd(&cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            show_cmd(&cmd),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
