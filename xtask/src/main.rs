//! Project automation, run as `cargo xtask <task>`.
//!
//! - `demo [--once] [--store DIR] [--keys DIR]`: start a sealer and Envoy with the audit
//!   filter, send sample traffic through the gateway, print each entry as it is sealed, then
//!   verify the store.
//! - `test`: install what the tests need, then run every gate and every test; `tools`: only
//!   install them.
//! - `images`: build the sealer and filter container images offline.
//! - `bench`: measure ingest and verification throughput (see docs/benchmarks.md); `bench
//!   proxy`, `bench s3`, `bench query` (the read side at 10 million entries).

mod bench;
mod demo;
mod fuzz;
mod images;
mod k8s_bench;
mod kubernetes;
mod log_bench;
mod null_sink;
mod process;
mod proxy_bench;
mod query_bench;
mod s3_bench;
mod tasks;
mod test;
mod tools;
mod torture;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, r)) => (t.as_str(), r),
        None => ("help", &[][..]),
    };
    let result = match task {
        "demo" => demo::run(rest),
        "test" => test::run(rest),
        "bench" => bench::run(rest),
        "torture" => torture::run(rest),
        "fuzz" => fuzz::run(rest),
        "tools" => test::install(rest).map(|_| 0),
        "images" => images::run(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 demo [--once] [--store DIR] [--keys DIR]   sample traffic through Envoy and the sealer, verified\n  \
                 test                                       install test tools, run every gate and test\n  \
                 tools                                      only install what the tests need (kube-apiserver is built once)\n  \
                 images [--tag-prefix P] [--version V]      build the sealer and filter images offline (FROM scratch)\n  \
                 bench [--seconds N] [--keep] [--baseline SEALER] [--rounds N]  measure ingest and verification throughput\n  \
                 bench proxy [--seconds N] [--rounds N] [--scenario direct|ingress]  the audit filter in Envoy against no filter, Envoy's own access log, a no-op filter and its host calls alone\n  \
                 bench hostcalls [--seconds N] [--rounds N] what one proxy-wasm host call costs Envoy\n  \
                 bench query [--entries N] [--queries N]    query latency, index build rate, time to appear\n  \
                 bench log [--entries N] [--baseline SEALER] restart, full and incremental verification, store overhead as the log grows\n  \
                 bench s3 [--seconds N] [--rounds N]        ingest with the S3 store (SeaweedFS) against the local store\n  \
                 bench k8s [--backoff D] [--also-backoff D] the API server's writes with the sealer up, down, hung, slow, per webhook mode\n  \
                 torture [--rounds N]                       SIGKILL the sealer N times under load (local and S3), check every event\n  \
                 fuzz [--seconds N] [--target NAME]         fuzz every parser of untrusted input (default 300 s each)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("xtask {task}: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
