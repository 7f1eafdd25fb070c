//! An origin outage, side by side: a warm 3-node cluster in front of an
//! HTTP origin that stops answering for a while, under a steady load.
//!
//! ```text
//! cargo build --release -p peercache-server -p peercache-bench
//! (cd bench/go && GO111MODULE=off GOPROXY=off GOPATH="$PWD:/usr/share/gocode" \
//!     go build -o ../../target/bench-go/benchnode benchnode)
//! target/release/outage [--phase 10s] [--keys 1000] [--clients 16] [--ttl 2s]
//! ```
//!
//! The origin is served by this process on loopback (`GET /v/<key>`
//! answers a 100-byte value). Each contestant gets a fresh origin and a
//! fresh cluster, whose every key is read once through each node (warm);
//! then `--clients` connections, spread over the three nodes, ask uniformly
//! drawn keys for three phases of `--phase` each: the origin up, the
//! origin down (a new connection is closed as soon as it is accepted, and
//! a request on a connection kept from before gets 503), the origin up
//! again. Per phase: requests,
//! the share answered 200, the median and p99 latency, and the origin's
//! requests. Contestants, one after the other:
//!
//! - peercache-server with `--ttl`, `--stale-if-error 1h` and
//!   `--origin-breaker 5` (5 s cool-down): after 5 failed loads in a row a
//!   node stops asking the origin, one trial every 5 s;
//! - peercache-server with `--ttl` and `--stale-if-error 1h`;
//! - peercache-server with `--ttl` alone (expired keys fail while the
//!   origin is down);
//! - peercache-server without `--ttl` (values never expire, as Go's);
//! - golang/groupcache (`benchnode --origin`): values never expire, so it
//!   keeps serving whatever it holds, for ever, however old; it has no way
//!   to bound that age, nor to pick up a change at the origin.
//!
//! A contestant whose binary is missing is skipped with a line saying so.

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1 as client;
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use peercache_bench::{parse_duration, value_for};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    about = "an origin outage under load: peercache with and without stale-if-error, and golang/groupcache"
)]
struct Args {
    /// Length of each phase (origin up, down, up again).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    phase: Duration,
    /// Distinct keys.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Concurrent client connections, spread over the nodes.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// The peercache contestants' --ttl.
    #[arg(long, default_value = "2s")]
    ttl: String,
    /// The peercache-server binary.
    #[arg(long, default_value = "target/release/peercache-server")]
    server: PathBuf,
    /// The golang/groupcache benchmark node.
    #[arg(long, default_value = "target/bench-go/benchnode")]
    go_node: PathBuf,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// The origin: whether it answers, and the requests it received.
#[derive(Default)]
struct Origin {
    down: AtomicBool,
    requests: AtomicU64,
}

/// Serves the origin on a free loopback port until the process ends.
async fn start_origin() -> std::io::Result<(SocketAddr, Arc<Origin>)> {
    let origin = Arc::new(Origin::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shared = Arc::clone(&origin);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            if shared.down.load(Ordering::SeqCst) {
                // As a stopped server: nothing answers (counted as asked).
                shared.requests.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
            let origin = Arc::clone(&shared);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let origin = Arc::clone(&origin);
                    async move {
                        origin.requests.fetch_add(1, Ordering::Relaxed);
                        let key = request.uri().path().trim_start_matches("/v/").to_owned();
                        // A connection made before the outage gets 503.
                        let response = if origin.down.load(Ordering::SeqCst) {
                            let mut r = Response::new(Full::new(Bytes::from_static(b"down")));
                            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                            r
                        } else {
                            Response::new(Full::new(Bytes::from(value_for(&key, 100))))
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = server::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, origin))
}

/// A node process, killed when dropped.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts node `i` of a cluster at these addresses.
type Starter = Box<dyn Fn(&[SocketAddr], usize) -> std::io::Result<Child>>;

/// One contestant: its name and how its three nodes start.
struct Contestant {
    name: &'static str,
    /// The path before the key at the node's front.
    path: &'static str,
    start: Starter,
}

fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners.iter().map(|l| l.local_addr().unwrap()).collect()
}

fn contestants(args: &Args, origin: SocketAddr, config: PathBuf) -> Vec<Contestant> {
    let mut all = Vec::new();
    let server = args.server.clone();
    let peercache = |name, flags: Vec<String>| {
        let server = server.clone();
        let config = config.clone();
        Contestant {
            name,
            path: "/v/",
            start: Box::new(move |addrs, i| {
                let pool: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
                Command::new(&server)
                    .args(["--addr", &addrs[i].to_string(), "--pool", &pool.join(",")])
                    .arg("--config")
                    .arg(&config)
                    .args(&flags)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
            }),
        }
    };
    if args.server.exists() {
        let ttl = args.ttl.clone();
        all.push(peercache(
            "peercache, --stale-if-error 1h --origin-breaker 5",
            vec![
                "--ttl".into(),
                ttl.clone(),
                "--stale-if-error".into(),
                "1h".into(),
                "--origin-breaker".into(),
                "5".into(),
            ],
        ));
        all.push(peercache(
            "peercache, --stale-if-error 1h",
            vec![
                "--ttl".into(),
                ttl.clone(),
                "--stale-if-error".into(),
                "1h".into(),
            ],
        ));
        all.push(peercache(
            "peercache, --ttl only",
            vec!["--ttl".into(), ttl],
        ));
        all.push(peercache("peercache, no --ttl", vec![]));
    } else {
        eprintln!(
            "skipping peercache: no {} (cargo build --release -p peercache-server)",
            args.server.display()
        );
    }
    if args.go_node.exists() {
        let go = args.go_node.clone();
        all.push(Contestant {
            name: "golang/groupcache",
            path: "/get?key=",
            start: Box::new(move |addrs, i| {
                let peers: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
                Command::new(&go)
                    .arg(format!("--self=http://{}", addrs[i]))
                    .arg(format!("--peers={}", peers.join(",")))
                    .arg(format!("--listen={}", addrs[i]))
                    .arg("--group=v")
                    .arg(format!("--origin=http://{origin}/v/"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
            }),
        });
    } else {
        eprintln!(
            "skipping golang/groupcache: no {} (see this file's doc)",
            args.go_node.display()
        );
    }
    all
}

/// One phase's figures.
#[derive(Debug, Clone)]
struct Phase {
    requests: u64,
    ok: u64,
    latencies: Histogram<u64>,
    origin_requests: u64,
}

impl Phase {
    fn new() -> Self {
        Phase {
            requests: 0,
            ok: 0,
            latencies: Histogram::new(3).expect("a histogram"),
            origin_requests: 0,
        }
    }
}

async fn connect(addr: SocketAddr) -> std::io::Result<client::SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = client::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One `GET`: whether it answered 200.
async fn get(sender: &mut client::SendRequest<Empty<Bytes>>, addr: SocketAddr, path: &str) -> bool {
    let request = Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Empty::new())
        .expect("a request");
    match sender.send_request(request).await {
        Ok(response) => {
            let ok = response.status() == StatusCode::OK;
            ok & response.into_body().collect().await.is_ok()
        }
        Err(_) => false,
    }
}

/// Runs one contestant: a fresh cluster over `origin`, warmed, then the
/// three phases under load.
async fn run(args: &Args, contestant: &Contestant, origin: &Origin) -> Result<Vec<Phase>, String> {
    let mut nodes = Vec::new();
    for _ in 0..5 {
        let addrs = free_addrs(3);
        let started: std::io::Result<Vec<Node>> = (0..3)
            .map(|i| {
                Ok(Node {
                    child: (contestant.start)(&addrs, i)?,
                    addr: addrs[i],
                })
            })
            .collect();
        let started = started.map_err(|e| format!("{}: cannot start: {e}", contestant.name))?;
        if ready(&started).await {
            nodes = started;
            break;
        }
    }
    if nodes.is_empty() {
        return Err(format!("{}: the cluster did not start", contestant.name));
    }
    let paths: Arc<Vec<String>> = Arc::new(
        (0..args.keys)
            .map(|i| format!("{}key-{i}", contestant.path))
            .collect(),
    );
    // Warm: every key through every node.
    for node in &nodes {
        let mut sender = connect(node.addr).await.map_err(|e| e.to_string())?;
        for path in paths.iter() {
            if !get(&mut sender, node.addr, path).await {
                sender = connect(node.addr).await.map_err(|e| e.to_string())?;
            }
        }
    }
    let phase = Arc::new(AtomicUsize::new(0));
    let records: Arc<Mutex<Vec<Phase>>> = Arc::new(Mutex::new(vec![Phase::new(); 3]));
    let mut workers = Vec::new();
    for c in 0..args.clients {
        let addr = nodes[c % nodes.len()].addr;
        let (phase, records, paths) =
            (Arc::clone(&phase), Arc::clone(&records), Arc::clone(&paths));
        workers.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(c as u64 + 1);
            let mut mine = vec![Phase::new(); 3];
            let mut sender = connect(addr).await.ok();
            loop {
                let at = phase.load(Ordering::SeqCst);
                if at >= 3 {
                    break;
                }
                let path = &paths[rng.random_range(0..paths.len())];
                let started = Instant::now();
                let ok = match &mut sender {
                    Some(s) => get(s, addr, path).await,
                    None => false,
                };
                let took = started.elapsed();
                // A connection that broke is made again (a refused one after
                // a pause); a 503 keeps it.
                if sender.as_ref().is_none_or(|s| s.is_closed()) {
                    sender = connect(addr).await.ok();
                    if sender.is_none() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                let record = &mut mine[at];
                record.requests += 1;
                record.ok += u64::from(ok);
                let _ = record.latencies.record(took.as_micros() as u64);
            }
            let mut all = records.lock().unwrap();
            for (total, mine) in all.iter_mut().zip(mine) {
                total.requests += mine.requests;
                total.ok += mine.ok;
                let _ = total.latencies.add(&mine.latencies);
            }
        }));
    }
    for (i, down) in [false, true, false].into_iter().enumerate() {
        origin.down.store(down, Ordering::SeqCst);
        let before = origin.requests.load(Ordering::Relaxed);
        tokio::time::sleep(args.phase).await;
        records.lock().unwrap()[i].origin_requests =
            origin.requests.load(Ordering::Relaxed) - before;
        phase.store(i + 1, Ordering::SeqCst);
    }
    for worker in workers {
        let _ = worker.await;
    }
    let phases = records.lock().unwrap().clone();
    drop(nodes);
    Ok(phases)
}

/// Polls the nodes until each answers its front (any status), within 10 s.
async fn ready(nodes: &[Node]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    for node in nodes {
        loop {
            if tokio::net::TcpStream::connect(node.addr).await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    true
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let mut results = Vec::new();
    let config = std::env::temp_dir().join(format!("outage-{}.toml", std::process::id()));
    for index in 0.. {
        // A fresh origin per contestant (its counters and its state).
        let (addr, origin) = start_origin().await.map_err(|e| e.to_string())?;
        std::fs::write(
            &config,
            format!(
                "[[group]]\nname = \"v\"\nsource = \"http\"\nurl = \"http://{addr}/v/{{key}}\"\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let all = contestants(&args, addr, config.clone());
        let Some(contestant) = all.get(index) else {
            break;
        };
        eprintln!("== {}", contestant.name);
        let phases = run(&args, contestant, &origin).await?;
        results.push((contestant.name, phases));
    }
    let _ = std::fs::remove_file(&config);
    report(&args, &results);
    Ok(())
}

fn report(args: &Args, results: &[(&str, Vec<Phase>)]) {
    let names = ["origin up", "origin down", "origin up again"];
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|(name, phases)| {
                let phases: Vec<_> = phases
                    .iter()
                    .zip(names)
                    .map(|(p, phase)| {
                        serde_json::json!({
                            "phase": phase,
                            "requests": p.requests,
                            "ok": p.ok,
                            "p50_us": p.latencies.value_at_quantile(0.5),
                            "p99_us": p.latencies.value_at_quantile(0.99),
                            "origin_requests": p.origin_requests,
                        })
                    })
                    .collect();
                serde_json::json!({ "contestant": name, "phases": phases })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return;
    }
    println!(
        "\n{} keys, {} clients over 3 nodes, phases of {:?}, peercache --ttl {}\n",
        args.keys, args.clients, args.phase, args.ttl
    );
    println!("| contestant | phase | requests | answered 200 | p50 | p99 | origin requests |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, phases) in results {
        for (p, phase) in phases.iter().zip(names) {
            let ok = if p.requests == 0 {
                0.0
            } else {
                100.0 * p.ok as f64 / p.requests as f64
            };
            println!(
                "| {name} | {phase} | {} | {ok:.2} % | {:.2} ms | {:.2} ms | {} |",
                p.requests,
                p.latencies.value_at_quantile(0.5) as f64 / 1000.0,
                p.latencies.value_at_quantile(0.99) as f64 / 1000.0,
                p.origin_requests
            );
        }
    }
}
