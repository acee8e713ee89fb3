//! `sealer`: see the crate documentation of the `sealer` library.

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    sealer::commands::main()
}

/// glibc gives each thread that allocates its own arena (up to 8 per core) and raises its
/// mmap threshold after large buffers are freed, so the segment-sized buffers that the store,
/// the indexer and verification read on blocking threads stay mapped in every arena: the
/// sealer's RSS grew to several times what it uses. Two arenas, and large buffers always
/// mapped on their own (so that freeing one returns it), keep RSS to what is in use.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called first thing, before any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
