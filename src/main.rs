//! The `passwordsafe-operator` binary: everything lives in the library crate.

/// jemalloc rather than glibc's malloc: the operator keeps a small record per resource for as long as it runs,
/// and allocates and frees on every tokio worker; glibc gives each thread its own arena and holds on to the
/// holes between long-lived records, jemalloc (one arena here) packs them by size class and returns freed
/// pages to the system.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read once at start-up (`_RJEM_MALLOC_CONF` in the environment overrides them): one arena
/// (a controller's work is not allocation-bound, and every arena keeps its own partly used pages), freed pages
/// returned to the system at once, with no "muzzy" (lazily freed) stage. With a 1 s delay instead, the pages of
/// each change-detection poll's listings piled up: 8 MiB more at the peak with 10 000 resources.
#[cfg(not(target_env = "msvc"))]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &[u8] = b"narenas:1,dirty_decay_ms:0,muzzy_decay_ms:0\0";

fn main() -> anyhow::Result<()> {
    passwordsafe_operator::cli::main()
}
