//! `sealer`: see the crate documentation of the `sealer` library.

fn main() -> std::process::ExitCode {
    sealer::commands::main(map_large_buffers_on_their_own)
}

/// glibc raises its mmap threshold each time a large mapped buffer is freed, so after a while
/// the segment-sized buffers that the store, the indexer and verification read on blocking
/// threads come from the threads' heap arenas, which keep them after they are freed: the
/// sealer's RSS grew to several times what it uses (232 MiB under `cargo xtask bench` with the
/// index on). A fixed threshold keeps every buffer of 1 MiB or more mapped on its own, so
/// freeing it returns it. (Limiting the arenas as well saved a little more memory but cost
/// ingest throughput, the threads then contending for two arenas.)
///
/// Only the long-running commands (`serve`, `witness`, `monitor`) set it. A one-shot
/// `sealer verify` is faster without: it would map, fault in and unmap every buffer of a
/// megabyte or more again, where the default threshold lets it reuse them.
fn map_large_buffers_on_their_own() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
