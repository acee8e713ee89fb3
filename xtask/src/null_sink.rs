//! A stand-in for the sealer that only counts: it answers every `POST` with 200 and counts
//! the NDJSON lines it was sent. `cargo xtask bench proxy` points the audit filter at it to
//! separate what the filter costs Envoy from what the sealer's work costs the machine (on
//! 2 cores, the sealer competes with Envoy and wrk for CPU). Nothing is sealed: the real
//! sealer's variant is the one that proves events are kept.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct NullSink {
    pub port: u16,
    lines: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl NullSink {
    pub fn start() -> anyhow::Result<NullSink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let lines = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopping) = (lines.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(conn) = conn {
                    let count = count.clone();
                    std::thread::spawn(move || serve(conn, &count));
                }
            }
        });
        Ok(NullSink { port, lines, stop })
    }

    /// NDJSON lines received so far.
    pub fn lines(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }
}

impl Drop for NullSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// HTTP/1.1 keep-alive: read each request's head and `content-length` body, answer 200.
fn serve(conn: TcpStream, lines: &AtomicU64) {
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let mut body = Vec::new();
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        body.resize(length, 0);
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        // memchr is built optimized (xtask itself is not): the sink must stay cheap.
        let n = memchr::memchr_iter(b'\n', &body).count();
        lines.fetch_add(n as u64, Ordering::Relaxed);
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
