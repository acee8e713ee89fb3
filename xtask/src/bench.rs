//! `cargo xtask bench`: measure durable ingest and verification throughput.

pub fn run(_args: &[String]) -> anyhow::Result<u8> {
    anyhow::bail!("the benchmark is not written yet")
}
