//! Test certificates (made with the `openssl` command) and an independent TLS client
//! (Python's `ssl` and `http.client`), for the listeners that serve TLS: Envoy's mTLS
//! listener and the sealer's audit webhook.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Run `program ARGS` in `dir` to success, panicking with its stderr otherwise; its stdout.
pub fn run_in(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} does not run: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn openssl(dir: &Path, args: &[&str]) {
    run_in(dir, "openssl", args);
}

/// A directory of PEM files: `NAME.pem` and `NAME.key` for each CA and certificate made.
pub struct Pki {
    dir: PathBuf,
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        Pki {
            dir: dir.to_owned(),
        }
    }

    /// `NAME` (without extension) as a path: `path("ca.pem")`.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// A self-signed CA `NAME.pem`/`NAME.key`, valid for two days.
    pub fn ca(&self, name: &str, subject: &str) -> &Pki {
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        let mut args = vec!["req", "-x509"];
        args.extend(EC);
        args.extend(["-nodes", "-keyout", &key, "-out", &pem, "-subj", subject]);
        args.extend(["-days", "2"]);
        openssl(&self.dir, &args);
        self
    }

    /// A certificate `NAME.pem`/`NAME.key` for `subject` with the extension line `ext`
    /// (e.g. `subjectAltName=IP:127.0.0.1`), signed by the CA `ca`.
    pub fn issue(&self, ca: &str, name: &str, subject: &str, ext: &str) -> &Pki {
        let (key, csr, ext_file, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
            format!("{name}.pem"),
        );
        let mut args = vec!["req"];
        args.extend(EC);
        args.extend(["-nodes", "-keyout", &key, "-out", &csr, "-subj", subject]);
        openssl(&self.dir, &args);
        std::fs::write(self.dir.join(&ext_file), format!("{ext}\n")).expect("extension file");
        let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &pem,
                "-extfile",
                &ext_file,
                "-days",
                "2",
            ],
        );
        self
    }
}

/// One HTTPS request from an independent client.
pub struct HttpsRequest<'a> {
    pub port: u16,
    pub method: &'a str,
    pub path: &'a str,
    /// CA file the client trusts.
    pub ca: &'a Path,
    /// Client certificate and key, if the client presents one.
    pub client: Option<(&'a Path, &'a Path)>,
    pub headers: Vec<(&'a str, String)>,
    pub body: &'a [u8],
}

/// What came back: the status and body, or the TLS/connection error the client reported.
#[derive(Debug)]
pub enum HttpsOutcome {
    Response {
        status: u16,
        body: String,
        /// Response headers, names in lower case.
        headers: std::collections::BTreeMap<String, String>,
    },
    Refused(String),
}

impl HttpsOutcome {
    /// The status, panicking with the error if there was no response.
    pub fn status(&self) -> u16 {
        match self {
            HttpsOutcome::Response { status, .. } => *status,
            HttpsOutcome::Refused(e) => panic!("no HTTP response: {e}"),
        }
    }

    /// The body as JSON, panicking if there was no response or it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        match self {
            HttpsOutcome::Response { body, .. } => serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("response is not JSON ({e}): {body}")),
            HttpsOutcome::Refused(e) => panic!("no HTTP response: {e}"),
        }
    }
}

const CLIENT: &str = r#"
import http.client, json, os, ssl, sys
ctx = ssl.create_default_context(cafile=os.environ["CA"])
if os.environ.get("CERT"):
    ctx.load_cert_chain(os.environ["CERT"], os.environ["KEY"])
body = sys.stdin.buffer.read()
headers = json.loads(os.environ["HEADERS"])
try:
    c = http.client.HTTPSConnection("127.0.0.1", int(os.environ["PORT"]), context=ctx, timeout=20)
    c.request(os.environ["METHOD"], os.environ["URLPATH"], body=body or None, headers=headers)
    r = c.getresponse()
    print(json.dumps({"status": r.status, "body": r.read().decode("utf-8", "replace"),
                      "headers": {k.lower(): v for k, v in r.getheaders()}}))
except (ssl.SSLError, ConnectionError, OSError) as e:
    print(json.dumps({"refused": f"{type(e).__name__}: {e}"}))
"#;

/// Send `request` with Python's TLS stack.
pub fn https(request: &HttpsRequest) -> HttpsOutcome {
    let headers: serde_json::Map<String, serde_json::Value> = request
        .headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone())))
        .collect();
    let mut cmd = Command::new("python3");
    cmd.args(["-c", CLIENT])
        .env("CA", request.ca)
        .env("PORT", request.port.to_string())
        .env("METHOD", request.method)
        .env("URLPATH", request.path)
        .env("HEADERS", serde_json::Value::Object(headers).to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((cert, key)) = request.client {
        cmd.env("CERT", cert).env("KEY", key);
    }
    let mut child = cmd.spawn().expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.body)
        .expect("request body written");
    let out = child.wait_with_output().expect("python3 finishes");
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "the HTTPS client failed ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    match parsed.get("refused") {
        Some(e) => HttpsOutcome::Refused(e.as_str().unwrap_or_default().to_owned()),
        None => HttpsOutcome::Response {
            status: parsed["status"].as_u64().expect("status") as u16,
            body: parsed["body"].as_str().expect("body").to_owned(),
            headers: parsed["headers"]
                .as_object()
                .expect("headers")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect(),
        },
    }
}
