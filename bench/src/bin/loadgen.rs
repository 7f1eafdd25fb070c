//! The load generator of the side-by-side benchmarks: closed-loop workers,
//! each on one keep-alive HTTP/1.1 connection, asking `GET <path><key>` of
//! one or several targets, with keys drawn uniformly, from a Zipf law, or in
//! sequence. It reports requests per second, latency percentiles and
//! errors (anything but a 200 is an error), as text or JSON.
//!
//! ```text
//! loadgen --target http://127.0.0.1:9001[,http://...] -c 16 --duration 10s --warmup 2s \
//!         --keys 10000 --dist zipf --zipf-s 1.1 [--path /get?key=] [--bearer TOKEN] [--json]
//! loadgen --target ... -c 1000 --requests 1000 --keys 1 --key-prefix storm-   # a burst
//! ```
//!
//! Written here rather than taken from wrk, oha or similar: the harness
//! needs the same client for Go and Rust, Zipf keys, a request budget for
//! bursts, JSON out, and nothing to install. Every connection is opened
//! before the clock starts, so a burst of N requests really is N requests
//! in flight at once. Latencies go to an HDR histogram (hdrhistogram crate).

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use peercache_bench::parse_duration;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
#[command(about = "closed-loop HTTP load generator for the peercache benchmarks")]
struct Args {
    /// Base URLs to ask, comma-separated (workers are spread over them).
    #[arg(long, value_delimiter = ',', required = true)]
    target: Vec<String>,
    /// The path and query before the key.
    #[arg(long, default_value = "/get?key=")]
    path: String,
    /// Concurrent workers (one connection each).
    #[arg(short = 'c', long, default_value_t = 16)]
    concurrency: usize,
    /// How long to measure, after the warm-up (Go syntax: 10s, 500ms).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many measured requests, over all workers.
    #[arg(long)]
    requests: Option<u64>,
    /// Unmeasured requests first, for this long.
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    warmup: Duration,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// How keys are drawn.
    #[arg(long, value_enum, default_value_t = Dist::Uniform)]
    dist: Dist,
    /// The Zipf exponent (with --dist zipf).
    #[arg(long, default_value_t = 1.1)]
    zipf_s: f64,
    /// Keys are this prefix and a number from 0.
    #[arg(long, default_value = "key-")]
    key_prefix: String,
    /// Seed of the key draws (each worker adds its index).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads of the generator's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Send a bearer token with every request (a front token of
    /// peercache-server's --front-token-file).
    #[arg(long, value_name = "TOKEN")]
    bearer: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Dist {
    /// Every key equally likely.
    Uniform,
    /// Zipf(s): key i (from 1) has weight 1/i^s.
    Zipf,
    /// Keys 0, 1, 2, ... over all workers, wrapping at --keys.
    Sequential,
}

/// What all workers share.
struct Shared {
    /// Measuring (false during the warm-up).
    measuring: AtomicBool,
    /// Set when the run is over.
    stop: AtomicBool,
    /// Requests left in the budget (with --requests).
    budget: AtomicI64,
    /// The next key of --dist sequential.
    next_key: AtomicU64,
    /// Requests that were not a 200, or failed, while measuring.
    errors: AtomicU64,
    /// First error text seen, for the report.
    first_error: std::sync::Mutex<Option<String>>,
}

/// One worker's record.
struct Record {
    latencies: Histogram<u64>,
    ok: u64,
    bytes: u64,
}

fn main() {
    let args = Args::parse();
    if let Err(error) = check(&args) {
        eprintln!("loadgen: {error}");
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(args.clone())) {
        Ok(report) => {
            if args.json {
                println!("{report}");
            } else {
                print_text(&report);
            }
        }
        Err(error) => {
            eprintln!("loadgen: {error}");
            std::process::exit(1);
        }
    }
}

fn check(args: &Args) -> Result<(), String> {
    if args.duration.is_none() && args.requests.is_none() {
        return Err("give --duration or --requests".into());
    }
    if args.concurrency == 0 || args.keys == 0 {
        return Err("-c and --keys must be at least 1".into());
    }
    if args.dist == Dist::Zipf && args.zipf_s <= 0.0 {
        return Err("--zipf-s must be greater than 0".into());
    }
    for target in &args.target {
        authority(target)?;
    }
    Ok(())
}

/// `host:port` of an `http://host:port` base URL.
fn authority(target: &str) -> Result<String, String> {
    let rest = target
        .strip_prefix("http://")
        .ok_or_else(|| format!("--target {target:?} must start with http://"))?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err(format!("--target {target:?} must be http://host:port"));
    }
    Ok(authority.to_owned())
}

async fn run(args: Args) -> Result<serde_json::Value, String> {
    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(args.warmup.is_zero()),
        stop: AtomicBool::new(false),
        budget: AtomicI64::new(args.requests.map_or(i64::MAX, |n| n as i64)),
        next_key: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: std::sync::Mutex::new(None),
    });
    let paths: Arc<Vec<String>> = Arc::new(
        (0..args.keys)
            .map(|i| format!("{}{}{i}", args.path, args.key_prefix))
            .collect(),
    );
    // Every connection is open before any request is sent.
    let mut senders = Vec::with_capacity(args.concurrency);
    for i in 0..args.concurrency {
        let target = authority(&args.target[i % args.target.len()])?;
        let sender = connect(&target)
            .await
            .map_err(|e| format!("cannot connect to {target}: {e}"))?;
        senders.push((target, sender));
    }
    let start = Arc::new(tokio::sync::Barrier::new(args.concurrency + 1));
    let mut workers = Vec::with_capacity(args.concurrency);
    for (i, (target, sender)) in senders.into_iter().enumerate() {
        let worker = Worker {
            authorization: args
                .bearer
                .as_ref()
                .map(|token| http::HeaderValue::from_str(&format!("Bearer {token}")))
                .transpose()
                .map_err(|e| format!("--bearer: {e}"))?,
            target,
            sender,
            paths: Arc::clone(&paths),
            shared: Arc::clone(&shared),
            dist: args.dist,
            zipf: Zipf::new(args.keys as f64, args.zipf_s.max(f64::MIN_POSITIVE))
                .map_err(|e| format!("--zipf-s: {e}"))?,
            rng: SmallRng::seed_from_u64(args.seed.wrapping_add(i as u64)),
        };
        let start = Arc::clone(&start);
        workers.push(tokio::spawn(async move {
            start.wait().await;
            worker.run().await
        }));
    }
    start.wait().await;
    if !args.warmup.is_zero() {
        tokio::time::sleep(args.warmup).await;
        shared.measuring.store(true, Ordering::Relaxed);
    }
    let began = Instant::now();
    if let Some(duration) = args.duration {
        // With a budget too, whichever ends first.
        let budget_done = async {
            while shared.budget.load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = budget_done => {}
        }
        shared.stop.store(true, Ordering::Relaxed);
    }
    let mut latencies =
        Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3).map_err(|e| e.to_string())?;
    let (mut ok, mut bytes) = (0u64, 0u64);
    for worker in workers {
        let record = worker.await.map_err(|e| format!("a worker failed: {e}"))?;
        latencies
            .add(&record.latencies)
            .map_err(|e| e.to_string())?;
        ok += record.ok;
        bytes += record.bytes;
    }
    let seconds = began.elapsed().as_secs_f64();
    let errors = shared.errors.load(Ordering::Relaxed);
    let requests = ok + errors;
    let us = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
    Ok(serde_json::json!({
        "targets": args.target,
        "concurrency": args.concurrency,
        "keys": args.keys,
        "dist": format!("{:?}", args.dist).to_lowercase(),
        "zipf_s": args.zipf_s,
        "requests": requests,
        "ok": ok,
        "errors": errors,
        "first_error": shared.first_error.lock().map(|e| e.clone()).unwrap_or(None),
        "seconds": seconds,
        "rps": requests as f64 / seconds,
        "bytes": bytes,
        "p50_us": us(0.50),
        "p90_us": us(0.90),
        "p99_us": us(0.99),
        "p999_us": us(0.999),
        "max_us": latencies.max() as f64 / 1000.0,
        "mean_us": latencies.mean() / 1000.0,
    }))
}

type Sender = http1::SendRequest<Empty<Bytes>>;

async fn connect(authority: &str) -> std::io::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    Ok(sender)
}

struct Worker {
    authorization: Option<http::HeaderValue>,
    target: String,
    sender: Sender,
    paths: Arc<Vec<String>>,
    shared: Arc<Shared>,
    dist: Dist,
    zipf: Zipf<f64>,
    rng: SmallRng,
}

impl Worker {
    fn next_key(&mut self) -> usize {
        let n = self.paths.len();
        match self.dist {
            Dist::Uniform => self.rng.random_range(0..n),
            Dist::Zipf => (self.zipf.sample(&mut self.rng) as usize).clamp(1, n) - 1,
            Dist::Sequential => {
                (self.shared.next_key.fetch_add(1, Ordering::Relaxed) % n as u64) as usize
            }
        }
    }

    async fn run(mut self) -> Record {
        let mut record = Record {
            latencies: Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("bounds"),
            ok: 0,
            bytes: 0,
        };
        while !self.shared.stop.load(Ordering::Relaxed) {
            let measuring = self.shared.measuring.load(Ordering::Relaxed);
            if measuring && self.shared.budget.fetch_sub(1, Ordering::Relaxed) <= 0 {
                break;
            }
            let key = self.next_key();
            let mut request = Request::get(self.paths[key].as_str())
                .header(http::header::HOST, self.target.as_str())
                .body(Empty::new())
                .expect("a valid request");
            if let Some(authorization) = &self.authorization {
                request
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, authorization.clone());
            }
            let began = Instant::now();
            let outcome = self.exchange(request).await;
            let took = began.elapsed();
            if !measuring {
                continue;
            }
            match outcome {
                Ok(len) => {
                    record.ok += 1;
                    record.bytes += len;
                    let _ = record.latencies.record((took.as_nanos() as u64).max(1));
                }
                Err(error) => {
                    self.shared.errors.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut first) = self.shared.first_error.lock() {
                        first.get_or_insert(error);
                    }
                }
            }
        }
        record
    }

    /// One request; the body length on a 200. A broken connection is
    /// replaced before the next request.
    async fn exchange(&mut self, request: Request<Empty<Bytes>>) -> Result<u64, String> {
        if self.sender.ready().await.is_err() {
            self.sender = connect(&self.target)
                .await
                .map_err(|e| format!("reconnecting to {}: {e}", self.target))?;
        }
        let response = match self.sender.send_request(request).await {
            Ok(response) => response,
            Err(error) => {
                if let Ok(sender) = connect(&self.target).await {
                    self.sender = sender;
                }
                return Err(format!("{}: {error}", self.target));
            }
        };
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{}: reading the body: {e}", self.target))?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(format!(
                "{} answered {status}: {}",
                self.target,
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
        }
        Ok(body.len() as u64)
    }
}

fn print_text(report: &serde_json::Value) {
    println!(
        "{} requests in {:.2} s: {:.0} req/s, {} errors{}",
        report["requests"],
        report["seconds"].as_f64().unwrap_or(0.0),
        report["rps"].as_f64().unwrap_or(0.0),
        report["errors"],
        match report["first_error"].as_str() {
            Some(e) => format!(" (first: {e})"),
            None => String::new(),
        }
    );
    println!(
        "latency µs: p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}",
        report["p50_us"].as_f64().unwrap_or(0.0),
        report["p90_us"].as_f64().unwrap_or(0.0),
        report["p99_us"].as_f64().unwrap_or(0.0),
        report["p999_us"].as_f64().unwrap_or(0.0),
        report["max_us"].as_f64().unwrap_or(0.0),
    );
}
