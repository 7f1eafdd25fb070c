//! Memory per cache entry as the operating system sees it: fills one
//! group's main cache with N entries of known key and value sizes through
//! `Group::get` (a loader that makes each value) and prints the growth of
//! the process's resident memory beyond the `len(key) + len(value)` bytes
//! the budget counts, per entry. `bench/go/src/entrymem` does the same
//! with golang/groupcache, for a comparison in the same session.
//!
//! ```text
//! entrymem [--entries 1000000] [--key-bytes 20] [--value-bytes 12]
//! ```
//!
//! `peercache/tests/overhead.rs` measures the same with a counting
//! allocator (what was asked of malloc); this adds what malloc and the
//! kernel really hold: chunk headers, rounding, fragmentation.

use clap::Parser;
use peercache::{loader_fn, LoadError, Node, Value};

#[derive(Parser, Debug)]
#[command(about = "resident memory per cache entry, beyond its accounted bytes")]
struct Args {
    /// Entries to fill.
    #[arg(long, default_value_t = 1_000_000)]
    entries: usize,
    /// Length of each key (at least 8).
    #[arg(long, default_value_t = 20)]
    key_bytes: usize,
    /// Length of each value.
    #[arg(long, default_value_t = 12)]
    value_bytes: usize,
}

/// The process's resident set, in bytes (`VmRSS` of `/proc/self/status`).
fn rss() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status (Linux only): {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| "no VmRSS line in /proc/self/status".to_owned())
}

/// A key of exactly `len` bytes, distinct for each `i`.
fn key(i: usize, len: usize) -> String {
    let mut key = format!("{i:08}");
    while key.len() < len {
        key.push('k');
    }
    key
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    if args.key_bytes < 8 {
        return Err(format!(
            "--key-bytes {} is too short: keys need at least 8 bytes",
            args.key_bytes
        ));
    }
    let node = Node::new();
    let value_bytes = args.value_bytes;
    let group = node
        .group_builder("entrymem")
        .cache_bytes(u64::MAX / 2)
        .build(loader_fn(move |_key: String| async move {
            Ok::<_, LoadError>(Value::new(vec![b'v'; value_bytes]))
        }))
        .map_err(|e| e.to_string())?;
    group.get("warm-up").await.map_err(|e| e.to_string())?;
    let before = rss()?;
    for i in 0..args.entries {
        group
            .get(&key(i, args.key_bytes))
            .await
            .map_err(|e| e.to_string())?;
    }
    let after = rss()?;
    let items = group.stats().main_cache.items;
    if items != args.entries as u64 + 1 {
        return Err(format!(
            "the cache holds {items} entries, not {}",
            args.entries + 1
        ));
    }
    let accounted = (args.entries * (args.key_bytes + args.value_bytes)) as f64;
    let growth = after.saturating_sub(before) as f64;
    println!(
        "peercache: {} entries of {}+{} bytes: RSS grew {:.1} MiB, {:.1} bytes per entry beyond the accounted {}",
        args.entries,
        args.key_bytes,
        args.value_bytes,
        growth / (1024.0 * 1024.0),
        (growth - accounted) / args.entries as f64,
        args.key_bytes + args.value_bytes,
    );
    Ok(())
}
