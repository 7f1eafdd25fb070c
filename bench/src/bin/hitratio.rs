//! Hit ratios on real traces: replays each trace of `../shared/traces` (the
//! format of its README: gzip text, `KEY` or `KEY SIZE` per line) through
//! peercache's `Group::get` on one node with a counting loader, through
//! `quick_cache` and `moka` at the same capacity, through a plain LRU,
//! through Bélády's optimum and through simulations of two other policies
//! (S3-FIFO, W-TinyLFU with a fixed window), and prints one Markdown table.
//!
//! peercache and moka are run `--runs` times (5) and their median is
//! printed, peercache's range beside it: both decide by hashes seeded
//! randomly per process (peercache's frequency sketch, moka's), so their
//! ratios move from run to run.
//!
//! ```text
//! cargo run --release -p peercache-bench --bin hitratio -- --traces ../shared/traces
//! ```
//!
//! Capacity is in entries for the traces without sizes: every entry is then
//! made the same size (key and value together `ENTRY_BYTES`), so a byte
//! budget of `capacity * ENTRY_BYTES` holds `capacity` entries in every
//! cache. For `adapt-size`, whose lines carry sizes, capacity is a byte
//! budget and each value is the line's size.
//!
//! The optimum (OPT) evicts the entry whose next use is farthest away, and
//! does not admit a key whose next use is farther than every cached one's:
//! exact for equal sizes. With sizes it is the same rule applied until the
//! new entry fits, a heuristic (the sized optimum is NP-hard), marked `~`.
//! The traces are never committed; no test needs them.

use clap::Parser;
use peercache::{loader_fn, Node};
use peercache_bench::hitratio::{opt, s3fifo, wtinylfu, Lru, Trace};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Key plus value of every entry, for the traces without sizes.
const ENTRY_BYTES: usize = 64;

#[derive(Parser)]
#[command(about = "Hit ratios of peercache, quick_cache, moka, LRU and OPT on real traces")]
struct Args {
    /// The directory holding the traces (`glimpse.trace.gz`, ...).
    #[arg(long, default_value = "../shared/traces")]
    traces: PathBuf,
    /// Only the cases whose trace name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Runs of peercache and of moka per case (their median is shown).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
}

/// A trace at one capacity.
struct Case {
    trace: &'static str,
    capacity: Capacity,
}

#[derive(Clone, Copy)]
enum Capacity {
    Entries(usize),
    Bytes(u64),
}

impl std::fmt::Display for Capacity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Capacity::Entries(n) => write!(f, "{n}"),
            Capacity::Bytes(b) => write!(f, "{} MiB", b >> 20),
        }
    }
}

fn cases() -> Vec<Case> {
    let entries = |trace, n: &[usize]| {
        n.iter()
            .map(move |&n| Case {
                trace,
                capacity: Capacity::Entries(n),
            })
            .collect::<Vec<_>>()
    };
    let mut cases = Vec::new();
    cases.extend(entries("glimpse", &[500, 1000, 2000]));
    cases.extend(entries("oltp", &[250, 500, 1000, 2000]));
    cases.extend(entries("scarab-recs", &[10_000, 50_000, 100_000]));
    cases.extend(entries("cache2k-orm-busy", &[2_500, 10_000]));
    for mib in [8u64, 32, 128] {
        cases.push(Case {
            trace: "adapt-size",
            capacity: Capacity::Bytes(mib << 20),
        });
    }
    cases
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut loaded: Option<(&str, Trace)> = None;
    println!("| trace @ capacity | requests | LRU | OPT | S3-FIFO (sim) | W-TinyLFU 1% (sim) | quick_cache | moka | peercache | peercache's range | peercache − best of quick_cache, moka | peercache − LRU |");
    println!(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for case in cases() {
        if args
            .only
            .as_deref()
            .is_some_and(|only| !case.trace.contains(only))
        {
            continue;
        }
        if loaded.as_ref().is_none_or(|(name, _)| *name != case.trace) {
            let path = args.traces.join(format!("{}.trace.gz", case.trace));
            let started = Instant::now();
            let trace = Trace::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!(
                "read {} ({} requests, {} keys) in {:.1?}",
                path.display(),
                trace.requests.len(),
                trace.keys.len(),
                started.elapsed()
            );
            loaded = Some((case.trace, trace));
        }
        let (_, trace) = loaded.as_ref().expect("read above");
        let started = Instant::now();
        // The weight of each key, owned so that moka's weigher can keep it.
        let sized = Arc::new(trace.sizes.clone());
        let sizes = move |key: u32| -> u64 {
            match case.capacity {
                Capacity::Entries(_) => ENTRY_BYTES as u64,
                Capacity::Bytes(_) => sized[key as usize].max(1),
            }
        };
        let budget = match case.capacity {
            Capacity::Entries(n) => (n * ENTRY_BYTES) as u64,
            Capacity::Bytes(b) => b,
        };
        let lru = {
            let mut lru = Lru::new(budget);
            trace
                .requests
                .iter()
                .filter(|&&k| lru.access(k, sizes(k)))
                .count()
        };
        let best = opt(&trace.requests, budget, &sizes);
        let s3 = s3fifo(&trace.requests, budget, 0.1, &sizes);
        let tiny = wtinylfu(&trace.requests, budget, 0.01, &sizes);
        let quick = quick_cache_hits(trace, budget, sizes.clone());
        let mut mokas = Vec::new();
        let mut ours = Vec::new();
        for _ in 0..args.runs {
            mokas.push(moka_hits(trace, budget, sizes.clone()));
            ours.push(peercache_hits(trace, &case, budget)?);
        }
        mokas.sort_unstable();
        ours.sort_unstable();
        let moka = mokas[mokas.len() / 2];
        let (low, median, high) = (ours[0], ours[ours.len() / 2], ours[ours.len() - 1]);
        let n = trace.requests.len() as f64;
        let pct = |hits: usize| 100.0 * hits as f64 / n;
        let sized = matches!(case.capacity, Capacity::Bytes(_));
        println!(
            "| {} @{} | {} | {:.2} | {}{:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2}–{:.2} | {:+.2} | {:+.2} |",
            case.trace,
            case.capacity,
            trace.requests.len(),
            pct(lru),
            if sized { "~" } else { "" },
            pct(best),
            pct(s3),
            pct(tiny),
            pct(quick),
            pct(moka),
            pct(median),
            pct(low),
            pct(high),
            pct(median) - pct(quick).max(pct(moka)),
            pct(median) - pct(lru),
        );
        eprintln!(
            "{} @{} in {:.1?}",
            case.trace,
            case.capacity,
            started.elapsed()
        );
    }
    Ok(())
}

/// Requests that hit in a `quick_cache` of `budget` weighed by `size`.
fn quick_cache_hits(trace: &Trace, budget: u64, size: impl Fn(u32) -> u64 + Clone) -> usize {
    #[derive(Clone)]
    struct Weigh<F>(F);
    impl<F: Fn(u32) -> u64 + Clone> quick_cache::Weighter<u32, ()> for Weigh<F> {
        fn weight(&self, key: &u32, _: &()) -> u64 {
            (self.0)(*key)
        }
    }
    let estimated = (budget / (trace.mean_size(&size).max(1))).max(16) as usize;
    let mut cache = quick_cache::unsync::Cache::with_weighter(estimated, budget, Weigh(size));
    let mut hits = 0;
    for &key in &trace.requests {
        if cache.get(&key).is_some() {
            hits += 1;
        } else {
            cache.insert(key, ());
        }
    }
    hits
}

/// Requests that hit in a `moka` cache of `budget` weighed by `size`.
fn moka_hits(
    trace: &Trace,
    budget: u64,
    size: impl Fn(u32) -> u64 + Send + Sync + 'static,
) -> usize {
    let cache: moka::sync::Cache<u32, ()> = moka::sync::Cache::builder()
        .max_capacity(budget)
        .weigher(move |key: &u32, _: &()| u32::try_from(size(*key)).unwrap_or(u32::MAX))
        .build();
    let mut hits = 0;
    for (i, &key) in trace.requests.iter().enumerate() {
        if cache.get(&key).is_some() {
            hits += 1;
        } else {
            cache.insert(key, ());
        }
        // moka applies its policy in batches; keep it close to the replay.
        if i % 64 == 63 {
            cache.run_pending_tasks();
        }
    }
    hits
}

/// Requests served without a load by a peercache group of `budget` bytes
/// on one node.
fn peercache_hits(
    trace: &Trace,
    case: &Case,
    budget: u64,
) -> Result<usize, Box<dyn std::error::Error>> {
    let loads = Arc::new(AtomicU64::new(0));
    let node = Node::new();
    let sizes = Arc::new(trace.sizes.clone());
    let sized = matches!(case.capacity, Capacity::Bytes(_));
    let counted = Arc::clone(&loads);
    let group = node.new_group(
        "trace",
        budget,
        loader_fn(move |key: String| {
            counted.fetch_add(1, Ordering::Relaxed);
            // Key plus value: ENTRY_BYTES, or the trace's size.
            let id: usize = key[1..].parse().expect("a key of this harness");
            let len = if sized {
                (sizes[id] as usize).saturating_sub(key.len())
            } else {
                ENTRY_BYTES.saturating_sub(key.len())
            };
            async move { Ok(vec![b'v'; len]) }
        }),
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut key = String::new();
        for &id in &trace.requests {
            use std::fmt::Write;
            key.clear();
            write!(key, "k{id}").expect("to a String");
            group.get(&key).await.map(drop)?;
        }
        Ok::<_, peercache::Error>(())
    })?;
    let loads = loads.load(Ordering::Relaxed) as usize;
    Ok(trace.requests.len() - loads)
}
