//! The peercache benchmark node: the same command line and behaviour as the
//! Go benchmark node (`bench/go/src/benchnode`), so that `bench/run` drives
//! both sides the same way.
//!
//! ```text
//! bench-node --self URL --peers URL,URL,... --listen ADDR --group NAME
//!            --cache-bytes N --value-size N --load-delay DURATION [--hot-cache BOOL]
//!            [--http2]
//! ```
//!
//! Serves `GET /get?key=K` (the raw value), `GET /stats` (JSON, the Go node's
//! field names) and the groupcache peer endpoint under `/_groupcache/`. The
//! loader is deterministic ([`peercache_bench::value_for`]) after sleeping
//! `--load-delay`, once per call: it is a batch loader, so a batch of keys
//! (`Group::get_many`, a peer's `_get-many`) sleeps once, as one query
//! would take one round trip (`loads` counts keys, `loader_calls` calls). The routing is a small hand-written service rather than a
//! router: three fixed paths do not need one, and the harness measures the
//! cache, not a router.

use clap::Parser;
use http::{header, Request, Response, StatusCode};
use peercache::http::PeerBody;
use peercache::http::{HttpOptions, HttpPool, PeerService, Server, ServerLimits};
use peercache::{batch_loader_fn, CacheStats, Group, HotCachePolicy, Node};
use peercache_bench::{parse_duration, value_for};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "peercache benchmark node (same flags as the Go benchmark node)")]
struct Args {
    /// This node's base URL, e.g. http://127.0.0.1:9001.
    #[arg(long = "self")]
    self_url: String,
    /// Every node's base URL, this one's included, comma-separated.
    #[arg(long)]
    peers: String,
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// The group's name.
    #[arg(long, default_value = "bench")]
    group: String,
    /// The group's byte budget (main + hot cache).
    #[arg(long, default_value_t = 64 << 20)]
    cache_bytes: u64,
    /// Length of every value, in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// How long the loader sleeps before answering (Go syntax: 300ms, 0).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    load_delay: Duration,
    /// Mirror popular keys owned elsewhere (`false`: every get of a key
    /// owned elsewhere crosses to its owner).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    hot_cache: bool,
    /// Ask peers over HTTP/2 without TLS (h2c) instead of HTTP/1.1 (the
    /// node answers both either way). Not in the Go node.
    #[arg(long)]
    http2: bool,
    /// Serve a hot copy at most this long before asking its owner again
    /// (Go syntax; 0: no limit) [default: the library's, 10s]. Not in the
    /// Go node, whose hot copies have no age.
    #[arg(long, value_parser = parse_duration)]
    hot_max_age: Option<Duration>,
}

fn main() {
    let args = Args::parse();
    if args.value_size == 0 {
        eprintln!("bench-node: --value-size must be at least 1");
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    if let Err(error) = runtime.block_on(run(args)) {
        eprintln!("bench-node: {error}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let options = HttpOptions::builder().http2(args.http2).build()?;
    let pool = HttpPool::new(&args.self_url, options)?;
    pool.set_peers(args.peers.split(','))?;
    let node = Node::with_picker(pool.clone());
    let loads = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let (size, delay) = (args.value_size, args.load_delay);
    let (counted, called) = (Arc::clone(&loads), Arc::clone(&calls));
    let hot = if args.hot_cache {
        HotCachePolicy::default()
    } else {
        HotCachePolicy::Never
    };
    let group = node
        .group_builder(&args.group)
        .cache_bytes(args.cache_bytes)
        .hot_cache(hot)
        .hot_max_age(args.hot_max_age.unwrap_or(peercache::DEFAULT_HOT_MAX_AGE))
        .build(batch_loader_fn(move |keys: Vec<String>| {
            let (counted, called) = (Arc::clone(&counted), Arc::clone(&called));
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                called.fetch_add(1, Ordering::Relaxed);
                counted.fetch_add(keys.len() as u64, Ordering::Relaxed);
                Ok::<_, peercache::LoadError>(
                    keys.into_iter()
                        .map(|key| {
                            let value = value_for(&key, size);
                            (key, value)
                        })
                        .collect::<Vec<_>>(),
                )
            }
        }))?;
    let app = App(Arc::new(AppInner {
        peer: pool.service(node),
        group,
        loads,
        calls,
        self_url: args.self_url.clone(),
    }));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("bench-node listening on {}", args.listen);
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    Server::new(ServerLimits::default())
        .serve(listener, app, shutdown)
        .await?;
    Ok(())
}

struct AppInner {
    peer: PeerService,
    group: Group,
    loads: Arc<AtomicU64>,
    calls: Arc<AtomicU64>,
    self_url: String,
}

/// The node's HTTP service: the peer endpoint, `/get` and `/stats`.
#[derive(Clone)]
struct App(Arc<AppInner>);

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<PeerBody>, Infallible>> + Send>>;

impl<B> tower_service::Service<Request<B>> for App
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<PeerBody>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> BoxFuture {
        let app = Arc::clone(&self.0);
        match request.uri().path() {
            "/get" => {
                let key = request.uri().query().and_then(key_param);
                Box::pin(async move { Ok(get(&app, key).await) })
            }
            "/stats" => Box::pin(async move { Ok(stats(&app)) }),
            path if path.starts_with(app.peer.base_path()) => app.peer.answer(request),
            _ => Box::pin(async { Ok(text(StatusCode::NOT_FOUND, "not found")) }),
        }
    }
}

/// The `key` parameter of a query string, form-decoded.
fn key_param(query: &str) -> Option<String> {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("key="))?;
    let spaced = raw.replace('+', " ");
    Some(
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

async fn get(app: &AppInner, key: Option<String>) -> Response<PeerBody> {
    let Some(key) = key else {
        return text(StatusCode::BAD_REQUEST, "missing key parameter");
    };
    match app.group.get(&key).await {
        Ok(value) => Response::builder()
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(PeerBody::from(value.into_bytes()))
            .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response")),
        Err(error) if error.is_not_found() => text(StatusCode::NOT_FOUND, &error.to_string()),
        Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

fn cache_json(c: &CacheStats) -> serde_json::Value {
    serde_json::json!({
        "bytes": c.bytes, "items": c.items, "gets": c.gets, "hits": c.hits,
        "evictions": c.evictions,
    })
}

fn stats(app: &AppInner) -> Response<PeerBody> {
    let s = app.group.stats();
    let body = serde_json::json!({
        "self": app.self_url,
        "group": s.name,
        "loads": app.loads.load(Ordering::Relaxed),
        "loader_calls": app.calls.load(Ordering::Relaxed),
        "gets": s.gets,
        "cache_hits": s.cache_hits,
        "peer_loads": s.peer_loads,
        "peer_errors": s.peer_errors,
        "loads_deduped": s.loads_deduped,
        "local_loads": s.local_loads,
        "local_load_errs": s.local_load_errs,
        "server_requests": s.server_requests,
        "server_batches": s.server_batches,
        "main_cache": cache_json(&s.main_cache),
        "hot_cache": cache_json(&s.hot_cache),
        "hot_aged": s.hot_cache.aged,
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(PeerBody::from(body.to_string()))
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response"))
}

fn text(status: StatusCode, message: &str) -> Response<PeerBody> {
    let mut response = Response::new(PeerBody::from(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}
