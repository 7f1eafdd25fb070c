//! `rsgcnode`: one node of a cluster built on the crates.io crate
//! [`groupcache`] 0.3.0 (Petroniuss's gRPC-based Rust port of
//! golang/groupcache), the third contestant of the side-by-side benchmarks
//! (`bench/run`, `bench/harness.py`) next to golang/groupcache and peercache.
//!
//! It takes the command line of `bench-node` and the Go `benchnode`, so the
//! harness starts all three the same way:
//!
//! ```text
//! rsgcnode --self URL --peers URL,URL,... --listen ADDR --group NAME
//!          --cache-bytes N --value-size N --load-delay DURATION [--hot-cache BOOL]
//! ```
//!
//! and serves, on the one `--listen` port, `GET /get?key=K` (the raw value),
//! `GET /stats` (JSON with the other nodes' field names, `null` where the
//! crate cannot tell) and the crate's gRPC service for its peers (HTTP/2
//! without TLS, next to HTTP/1.1 on the same port).
//!
//! How the crate's model is mapped onto the harness's:
//!
//! * Peers are socket addresses, not URLs: `http://127.0.0.1:9001` becomes
//!   `127.0.0.1:9001`. The crate only routes to peers it has connected to,
//!   and nodes start one after another, so a background task keeps
//!   connecting until every peer is in; `/stats` reports `peers_ready`, which
//!   the harness waits for before measuring.
//! * The crate has one loader per instance, no named groups: `--group` is only
//!   echoed in `/stats`.
//! * The main cache is a moka cache weighing key + value bytes, bounded by
//!   `--cache-bytes`; the hot cache is one bounded by an eighth of that, with
//!   no time to live (the benchmark's values never change), and with
//!   `--hot-cache=false` a zero-capacity moka cache, which moka turns into a
//!   disabled map: every get of a key owned elsewhere then crosses to its
//!   owner.
//! * The crate reports its counters through the `metrics` facade only; a
//!   small recorder installed here turns the ones it emits into the `/stats`
//!   fields. Loads are counted in the loader.
//!
//! It is a separate crate with its own workspace (and lock file) because the
//! crate's dependency tree (tonic 0.14, axum 0.8, ...) needs a newer rustc
//! than peercache's minimum and the peercache build must not pay for it.

mod counters;

use async_trait::async_trait;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use bytes::Bytes;
use clap::Parser;
use counters::{Counters, Recorder};
use groupcache::moka::future::Cache;
use groupcache::{Groupcache, GroupcachePeer, ValueLoader};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "rsgcnode",
    about = "Benchmark node for the crates.io groupcache crate (same flags as bench-node)"
)]
struct Args {
    /// This node's base URL, e.g. http://127.0.0.1:9001 (its host:port is
    /// the node's address on the crate's hash ring).
    #[arg(long = "self")]
    self_url: String,
    /// Every node's base URL, this one's included, comma-separated.
    #[arg(long)]
    peers: String,
    /// Address to listen on (HTTP/1.1 for /get and /stats, h2c for peers).
    #[arg(long)]
    listen: SocketAddr,
    /// Accepted for parity and echoed in /stats: the crate has no groups.
    #[arg(long, default_value = "bench")]
    group: String,
    /// Byte budget of the main cache (key + value bytes); the hot cache
    /// gets an eighth of it on top.
    #[arg(long, default_value_t = 64 << 20)]
    cache_bytes: u64,
    /// Length of every value, in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// How long the loader sleeps before answering (Go syntax: 300ms, 0).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    load_delay: Duration,
    /// Mirror values fetched from their owners (`false`: a disabled hot
    /// cache, every get of a key owned elsewhere crosses to its owner).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    hot_cache: bool,
}

/// The validated command line.
struct Config {
    args: Args,
    me: SocketAddr,
    others: Vec<SocketAddr>,
}

fn main() {
    let args = Args::parse();
    let config = match validate(args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("rsgcnode: {message}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rsgcnode: tokio runtime: {error}");
            std::process::exit(1);
        }
    };
    if let Err(error) = runtime.block_on(run(config)) {
        eprintln!("rsgcnode: {error}");
        std::process::exit(1);
    }
}

/// Checks the flags clap cannot check alone; errors name the flag.
fn validate(args: Args) -> Result<Config, String> {
    if args.value_size == 0 {
        return Err("--value-size: must be at least 1".into());
    }
    let me = peer_addr(&args.self_url).map_err(|e| format!("--self: {e}"))?;
    if args.peers.trim().is_empty() {
        return Err("--peers: must list at least one base URL (including --self)".into());
    }
    let mut all = Vec::new();
    for url in args.peers.split(',') {
        let addr = peer_addr(url.trim()).map_err(|e| format!("--peers: {e}"))?;
        if all.contains(&addr) {
            return Err(format!("--peers: {url:?} is listed twice"));
        }
        all.push(addr);
    }
    if !all.contains(&me) {
        return Err(format!("--peers: must include --self {:?}", args.self_url));
    }
    let others = all.into_iter().filter(|addr| *addr != me).collect();
    Ok(Config { args, me, others })
}

/// The socket address of a base URL such as `http://127.0.0.1:9001`: the
/// crate names peers by socket address and connects over plain HTTP/2.
fn peer_addr(url: &str) -> Result<SocketAddr, String> {
    if url.is_empty() {
        return Err("a base URL is required, e.g. http://127.0.0.1:9001".into());
    }
    let rest = match url.strip_prefix("http://") {
        Some(rest) => rest,
        None if url.starts_with("https://") => {
            return Err(format!("{url:?}: https is not supported by this node"));
        }
        None => return Err(format!("{url:?}: must start with http://")),
    };
    let host_port = rest.strip_suffix('/').unwrap_or(rest);
    if host_port.is_empty() || host_port.contains(['/', '?', '#', '@']) {
        return Err(format!("{url:?}: must be a base URL like http://host:port"));
    }
    if let Ok(addr) = host_port.parse() {
        return Ok(addr);
    }
    host_port
        .to_socket_addrs()
        .map_err(|e| format!("{url:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url:?}: the host resolves to no address"))
}

/// Parses a duration as Go's `time.ParseDuration` spells the common ones:
/// a number with `ns`, `us`, `µs`, `ms`, `s`, `m` or `h`, or a bare `0`
/// (the same rules as `peercache_bench::parse_duration`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration {text:?} needs a unit: ns, us, ms, s, m or h"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("duration {text:?} does not start with a number"))?;
    let seconds = match unit {
        "ns" => number / 1e9,
        "us" | "µs" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => {
            return Err(format!(
                "duration {text:?}: unknown unit {unit:?} (ns, us, ms, s, m, h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("duration {text:?}: {e}"))
}

/// The value of `key`: `"v:" + key` repeated and cut to `size` bytes, as
/// the Go and peercache benchmark nodes compute it.
fn value_for(key: &str, size: usize) -> Bytes {
    let unit = format!("v:{key}");
    unit.bytes().cycle().take(size).collect::<Vec<u8>>().into()
}

/// The deterministic, counted loader.
struct Loader {
    size: usize,
    delay: Duration,
    loads: Arc<AtomicU64>,
}

#[async_trait]
impl ValueLoader for Loader {
    type Value = Bytes;

    async fn load(
        &self,
        key: &str,
    ) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync + 'static>> {
        // Counted before the delay, as the Go node does, so that a load in
        // progress is already visible.
        self.loads.fetch_add(1, Ordering::Relaxed);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        Ok(value_for(key, self.size))
    }
}

/// A moka cache bounded by `budget` bytes of keys and values.
fn byte_cache(budget: u64) -> Cache<String, Bytes> {
    Cache::builder()
        .max_capacity(budget)
        .weigher(|key: &String, value: &Bytes| {
            u32::try_from(key.len() + value.len()).unwrap_or(u32::MAX)
        })
        .build()
}

/// What the HTTP handlers share: the crate's instance, handles on its two
/// caches (moka caches are shared handles) and the counters.
struct AppState {
    cache: Groupcache<Bytes>,
    main_cache: Cache<String, Bytes>,
    hot_cache: Cache<String, Bytes>,
    hot_cache_enabled: bool,
    counters: Arc<Counters>,
    loads: Arc<AtomicU64>,
    self_url: String,
    group: String,
    peers_expected: usize,
    peers_connected: Arc<AtomicUsize>,
    peers_ready: Arc<AtomicBool>,
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let Config { args, me, others } = config;
    let counters = Arc::new(Counters::default());
    metrics::set_global_recorder(Recorder(Arc::clone(&counters)))
        .map_err(|e| format!("installing the metrics recorder: {e}"))?;

    let loads = Arc::new(AtomicU64::new(0));
    let loader = Loader {
        size: args.value_size,
        delay: args.load_delay,
        loads: Arc::clone(&loads),
    };
    let main_cache = byte_cache(args.cache_bytes);
    let hot_cache = if args.hot_cache {
        byte_cache(args.cache_bytes / 8)
    } else {
        // moka disables the map of a zero-capacity cache: nothing is kept.
        Cache::builder().max_capacity(0).build()
    };
    let cache = Groupcache::builder(GroupcachePeer::from_socket(me), loader)
        .main_cache(main_cache.clone())
        .hot_cache(hot_cache.clone())
        .grpc_endpoint_builder(|endpoint| {
            endpoint
                .timeout(Duration::from_secs(10))
                .connect_timeout(Duration::from_secs(2))
        })
        .build();

    let state = Arc::new(AppState {
        cache: cache.clone(),
        main_cache,
        hot_cache,
        hot_cache_enabled: args.hot_cache,
        counters,
        loads,
        self_url: args.self_url.clone(),
        group: args.group.clone(),
        peers_expected: others.len(),
        peers_connected: Arc::new(AtomicUsize::new(0)),
        peers_ready: Arc::new(AtomicBool::new(others.is_empty())),
    });
    tokio::spawn(connect_peers(
        cache.clone(),
        others,
        Arc::clone(&state.peers_connected),
        Arc::clone(&state.peers_ready),
    ));

    let grpc = tonic::service::Routes::new(cache.grpc_service()).into_axum_router();
    let app = Router::new()
        .route("/get", get(handle_get))
        .route("/stats", get(handle_stats))
        .with_state(state)
        .merge(grpc)
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") });

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", args.listen))?
        .tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
    eprintln!("rsgcnode listening on {} (ring address {me})", args.listen);

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        served = axum::serve(listener, app) => served?,
        _ = term.recv() => eprintln!("rsgcnode: SIGTERM, exiting"),
        _ = tokio::signal::ctrl_c() => eprintln!("rsgcnode: interrupted, exiting"),
    }
    Ok(())
}

/// Connects to every other node, retrying those not up yet (nodes start one
/// after another and the crate routes only to peers it is connected to).
async fn connect_peers(
    cache: Groupcache<Bytes>,
    mut pending: Vec<SocketAddr>,
    connected: Arc<AtomicUsize>,
    ready: Arc<AtomicBool>,
) {
    let mut attempt: u64 = 0;
    while !pending.is_empty() {
        let mut failed = Vec::new();
        for addr in pending {
            match cache.add_peer(GroupcachePeer::from_socket(addr)).await {
                Ok(()) => {
                    connected.fetch_add(1, Ordering::Relaxed);
                    eprintln!("rsgcnode: connected to peer {addr}");
                }
                Err(error) => {
                    // About once every 10 s per peer still missing.
                    if attempt.is_multiple_of(500) {
                        eprintln!("rsgcnode: peer {addr} not reachable yet ({error}); retrying");
                    }
                    failed.push(addr);
                }
            }
        }
        pending = failed;
        if !pending.is_empty() {
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    ready.store(true, Ordering::Release);
    eprintln!("rsgcnode: all peers connected");
}

#[derive(serde::Deserialize)]
struct KeyParam {
    key: String,
}

async fn handle_get(State(state): State<Arc<AppState>>, Query(param): Query<KeyParam>) -> Response {
    if param.key.is_empty() {
        return (StatusCode::BAD_REQUEST, "missing key parameter\n").into_response();
    }
    match state.cache.get(&param.key).await {
        Ok(value) => ([(header::CONTENT_TYPE, "application/octet-stream")], value).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response(),
    }
}

/// What moka can tell about a cache: size and count, not gets, hits or
/// evictions (`null`); a disabled cache has had no hits.
async fn cache_json(cache: &Cache<String, Bytes>, enabled: bool) -> serde_json::Value {
    cache.run_pending_tasks().await;
    serde_json::json!({
        "bytes": cache.weighted_size(),
        "items": cache.entry_count(),
        "gets": null,
        "hits": if enabled { serde_json::Value::Null } else { 0.into() },
        "evictions": null,
    })
}

async fn handle_stats(State(state): State<Arc<AppState>>) -> Response {
    let c = &state.counters;
    let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let body = serde_json::json!({
        "self": state.self_url,
        "group": state.group,
        "implementation": "groupcache 0.3.0 (crates.io)",
        "loads": read(&state.loads),
        "gets": read(&c.gets),
        "cache_hits": read(&c.cache_hits),
        "peer_loads": read(&c.peer_loads),
        "peer_errors": read(&c.peer_errors),
        "loads_deduped": null,
        "local_loads": read(&c.local_loads),
        "local_load_errs": read(&c.local_load_errs),
        "server_requests": read(&c.server_requests),
        "main_cache": cache_json(&state.main_cache, true).await,
        "hot_cache": cache_json(&state.hot_cache, state.hot_cache_enabled).await,
        "peers_expected": state.peers_expected,
        "peers_connected": state.peers_connected.load(Ordering::Relaxed),
        "peers_ready": state.peers_ready.load(Ordering::Acquire),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_repeat_the_key_and_are_cut_to_size() {
        assert_eq!(&value_for("ab", 10)[..], b"v:abv:abv:");
        assert_eq!(&value_for("key-1", 3)[..], b"v:k");
    }

    #[test]
    fn durations_read_like_go() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn base_urls_become_socket_addresses() {
        let addr: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        assert_eq!(peer_addr("http://127.0.0.1:9001"), Ok(addr));
        assert_eq!(peer_addr("http://127.0.0.1:9001/"), Ok(addr));
        assert!(peer_addr("127.0.0.1:9001").is_err());
        assert!(peer_addr("https://127.0.0.1:9001").is_err());
        assert!(peer_addr("http://127.0.0.1:9001/path").is_err());
        assert!(peer_addr("").is_err());
    }
}
