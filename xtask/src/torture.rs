//! `cargo xtask torture [--rounds N]`: the crash test of `tests/crash.rs`, long. Under load
//! from three producers the real sealer is SIGKILLed at random moments N times (default 200)
//! on the local store and N/2 times on S3 with Object Lock (SeaweedFS), and after all that
//! every acknowledged event must be in the log exactly once and verification must pass. The
//! test prints its seed, kills, and the number of acknowledged events it checked.

use crate::tasks::{self, cargo};
use crate::tools;

pub fn run(args: &[String]) -> anyhow::Result<u8> {
    let mut rounds = 200;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => rounds = tasks::number_after(a, &mut it)?.max(1),
            other => anyhow::bail!("unknown torture option {other:?} (expected --rounds N)"),
        }
    }
    let weed = tools::seaweedfs()?;
    tasks::run(cargo().args(["build", "-p", "sealer-sidecar", "--bin", "sealer"]))?;
    tasks::run(
        cargo()
            .args([
                "test",
                "-p",
                "e2e",
                "--test",
                "e2e",
                "--",
                "crash::",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("CRASH_ROUNDS", rounds.to_string())
            .env("AUDIT_WEED_BIN", &weed),
    )?;
    Ok(0)
}
