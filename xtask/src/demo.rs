//! `cargo xtask demo`: the sealer on realistic sample traffic, watched live, then verified.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use auditlog::timestamp::Timestamp;
use serde_json::{Value, json};

use crate::tasks;

struct Options {
    once: bool,
    store: Option<PathBuf>,
    keys: Option<PathBuf>,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options {
        once: false,
        store: None,
        keys: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--once" => o.once = true,
            "--store" => o.store = Some(it.next().context("--store needs a directory")?.into()),
            "--keys" => o.keys = Some(it.next().context("--keys needs a directory")?.into()),
            other => {
                bail!("unknown demo option {other:?} (expected --once, --store DIR, --keys DIR)")
            }
        }
    }
    Ok(o)
}

/// Stops the sealer with SIGTERM when dropped, so it never outlives the demo.
struct Sealer(Child);

impl Sealer {
    fn terminate(&mut self) -> anyhow::Result<()> {
        if self.0.try_wait()?.is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while self.0.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    self.0.kill()?;
                    bail!("the sealer did not stop within 20 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

pub fn run(args: &[String]) -> anyhow::Result<u8> {
    let opts = parse(args)?;
    let sealer_bin = tasks::build_sealer(false)?;
    let scratch = tasks::scratch_dir("demo")?;
    let keys = opts.keys.clone().unwrap_or_else(|| scratch.join("keys"));
    if !keys.join("signing.key").exists() {
        tasks::run(
            Command::new(&sealer_bin)
                .args([
                    "keygen",
                    "--origin",
                    "demo.ingress-audit.example/gateway",
                    "--out",
                ])
                .arg(&keys),
        )?;
    }
    let store = opts.store.clone().unwrap_or_else(|| scratch.join("store"));
    let port = tasks::free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let log_path = scratch.join("sealer.log");
    let log = std::fs::File::create(&log_path)?;
    let child = Command::new(&sealer_bin)
        .arg("serve")
        .arg("--keys")
        .arg(&keys)
        .arg("--store")
        .arg(&store)
        .arg("--data-dir")
        .arg(scratch.join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--segment-max-age", "1s", "--checkpoint-interval", "5s"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("failed to start the sealer")?;
    let mut sealer = Sealer(child);
    tasks::wait_http_ok(&format!("{base}/healthz"), 100).with_context(|| {
        format!(
            "the sealer did not come up; its log is {}",
            log_path.display()
        )
    })?;

    println!(
        "sealer listening on {base}; store {}; log {}",
        store.display(),
        log_path.display()
    );
    println!(
        "streaming sample gateway traffic{}\n",
        if opts.once {
            ""
        } else {
            " (Ctrl-C to stop and verify)"
        }
    );
    println!(
        "{:>6}  {:<8} {:<7} {:>3}  {:<22} {:<28} who",
        "seq", "kind", "method", "st", "host", "path"
    );

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("failed to install the Ctrl-C handler")?;
    }
    let mut traffic = Traffic::new();
    let mut last_checkpoint = String::new();
    let rounds = if opts.once { 12 } else { u64::MAX };
    let mut round = 0;
    while round < rounds && !stop.load(Ordering::SeqCst) {
        round += 1;
        let batch = traffic.batch(round);
        let body: String = batch.iter().map(|(e, _)| format!("{e}\n")).collect();
        let resp = ureq::post(&format!("{base}/v1/events"))
            .set("Content-Type", "application/x-ndjson")
            .send_string(&body);
        let ack: Value = match resp {
            Ok(r) => serde_json::from_str(&r.into_string()?)?,
            Err(e) => bail!("the sealer refused a batch: {e}"),
        };
        print_sealed(&batch, &ack);
        if let Ok(r) = ureq::get(&format!("{base}/v1/checkpoint")).call() {
            let text = r.into_string()?;
            if text != last_checkpoint {
                let lines: Vec<&str> = text.lines().collect();
                println!(
                    "        ── signed checkpoint: {} entries, root {}…, {}",
                    lines.get(1).unwrap_or(&"?"),
                    lines.get(2).map(|r| &r[..12.min(r.len())]).unwrap_or("?"),
                    lines.get(4).unwrap_or(&"")
                );
                last_checkpoint = text;
            }
        }
        std::thread::sleep(Duration::from_millis(400));
    }

    println!("\nstopping the sealer (it stores its last segment and checkpoint)…");
    sealer.terminate()?;
    let public = keys.join("signing.pub");
    let hmac = keys.join("hmac.key");
    println!(
        "\n$ sealer verify --store {} --public-key {} --hmac-key {}",
        store.display(),
        public.display(),
        hmac.display()
    );
    let status = Command::new(&sealer_bin)
        .arg("verify")
        .arg("--store")
        .arg(&store)
        .arg("--public-key")
        .arg(&public)
        .arg("--hmac-key")
        .arg(&hmac)
        .status()?;
    println!(
        "\nverify it yourself any time:\n  {} verify --store {} --public-key {}",
        sealer_bin.display(),
        store.display(),
        public.display()
    );
    Ok(if status.success() { 0 } else { 1 })
}

/// One sent event and its per-source sequence number.
type Sent = (Value, u64);

fn print_sealed(batch: &[Sent], ack: &Value) {
    let mut seq = ack["first_seq"].as_u64().unwrap_or(0);
    let mut expected = batch.first().map(|(_, s)| *s).unwrap_or(0);
    for (i, (e, source_seq)) in batch.iter().enumerate() {
        if i > 0 && *source_seq != expected {
            println!(
                "{seq:>6}  {:<8} events {}..{} of this gateway never arrived: sealed as a gap",
                "gap",
                expected,
                source_seq - 1
            );
            seq += 1;
        }
        expected = source_seq + 1;
        let ev = &e["event"];
        let who = ev["enduser"]["id"].as_str().map_or("-".to_string(), |id| {
            format!("{id} ({})", ev["enduser"]["source"].as_str().unwrap_or(""))
        });
        println!(
            "{seq:>6}  {:<8} {:<7} {:>3}  {:<22} {:<28} {}",
            "http",
            ev["http"]["request"]["method"].as_str().unwrap_or(""),
            ev["http"]["response"]["status_code"],
            ev["server"]["address"].as_str().unwrap_or(""),
            ev["url"]["path"].as_str().unwrap_or(""),
            who
        );
        seq += 1;
    }
}

/// Plausible ingress traffic: browsers, services over mTLS, API clients with JWTs, scanners.
struct Traffic {
    source: String,
    next_seq: u64,
    rng: u64,
}

impl Traffic {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Traffic {
            source: format!("demo-gateway-7d9f/w0/{nanos:x}"),
            next_seq: 1,
            rng: nanos | 1,
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        // xorshift64: deterministic enough for sample data, no dependency.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        &items[(self.rng % items.len() as u64) as usize]
    }

    fn batch(&mut self, round: u64) -> Vec<Sent> {
        // Once, lose three events between gateway and sealer, to show a gap being sealed.
        if round == 4 {
            self.next_seq += 3;
        }
        let n = *self.pick(&[1usize, 2, 3, 4]);
        (0..n).map(|_| self.event()).collect()
    }

    fn event(&mut self) -> Sent {
        let (host, method, path, status, who): (&str, &str, &str, u16, Option<(&str, &str)>) =
            *self.pick(&[
                ("shop.example.com", "GET", "/", 200, None),
                ("shop.example.com", "GET", "/products/4711", 200, None),
                (
                    "shop.example.com",
                    "POST",
                    "/cart/items",
                    201,
                    Some(("alice@example.com", "jwt")),
                ),
                (
                    "shop.example.com",
                    "POST",
                    "/checkout",
                    200,
                    Some(("alice@example.com", "jwt")),
                ),
                (
                    "api.example.com",
                    "GET",
                    "/v2/orders",
                    200,
                    Some(("spiffe://cluster.local/ns/shop/sa/frontend", "mtls")),
                ),
                (
                    "api.example.com",
                    "DELETE",
                    "/v2/orders/981",
                    204,
                    Some(("bob@example.com", "jwt")),
                ),
                ("api.example.com", "GET", "/v2/orders", 401, None),
                (
                    "admin.example.com",
                    "GET",
                    "/admin/users",
                    403,
                    Some(("mallory@example.com", "jwt")),
                ),
                (
                    "admin.example.com",
                    "PUT",
                    "/admin/config",
                    200,
                    Some(("ops-bot", "header")),
                ),
                ("shop.example.com", "GET", "/.env", 404, None),
                ("api.example.com", "POST", "/v2/login", 429, None),
                (
                    "api.example.com",
                    "GET",
                    "/v2/inventory",
                    503,
                    Some(("spiffe://cluster.local/ns/shop/sa/frontend", "mtls")),
                ),
            ]);
        let client = *self.pick(&["203.0.113.7", "198.51.100.23", "192.0.2.41", "203.0.113.99"]);
        let ua = *self.pick(&[
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
            "curl/8.5.0",
            "okhttp/4.12.0",
            "python-requests/2.32.3",
        ]);
        let mut event = json!({
            "start_time": Timestamp::now().to_string(),
            "duration_ns": 1_000_000 + (self.rng % 40_000_000),
            "request_id": format!("{:032x}", self.rng as u128 * 0x9e37_79b9),
            "client": {"address": client, "port": 40000 + (self.rng % 20000)},
            "http": {
                "request": {"method": method, "body": {"size": if method == "GET" { 0 } else { 312 }}},
                "response": {"status_code": status, "body": {"size": 1800 + (self.rng % 900)}}
            },
            "network": {"protocol": {"version": "2"}},
            "server": {"address": host},
            "url": {"path": path, "scheme": "https"},
            "user_agent": {"original": ua},
            "envoy": {"route": format!("{}-route", host.split('.').next().unwrap_or("default")), "upstream_cluster": format!("outbound|8080||{host}"), "response_flags": "-"}
        });
        if let Some((id, source)) = who {
            event["enduser"] = json!({"id": id, "source": source});
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        (
            json!({"source": {"id": self.source, "seq": seq}, "event": event}),
            seq,
        )
    }
}
