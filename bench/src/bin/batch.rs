//! `Group::get_many` against single gets, over a real 3-node cluster on
//! loopback.
//!
//! ```text
//! cargo run --release -p peercache-bench --bin batch -- [--rounds 300] [--keys 100] [--value-size 100]
//! ```
//!
//! Two `bench-node` processes (built beside this binary) own the keys;
//! this process is the third node and asks, with its hot cache off, so
//! every key it asks crosses to its owner. The keys are chosen among those
//! the two other nodes own. Warm: every key cached at its owner; each
//! round runs, in a rotating order, one `get_many` of the keys, the same
//! keys as sequential gets, and as concurrent gets (all at once); each
//! reports the median and p99 of the whole operation's latency, and the
//! CPU per key of the two owners (`/proc/<pid>/task/*/schedstat`, in
//! nanoseconds) and of this process. Cold: fresh keys each trial, owners
//! with a 5 ms batch-capable loader (`--load-delay 5ms`, slept once per
//! call); reports the latency and the loader calls per trial for a
//! `get_many` and for concurrent gets.

use clap::Parser;
use peercache::http::{HttpOptions, HttpPool, Server, ServerLimits};
use peercache::ring::{HashMode, Ring};
use peercache::{batch_loader_fn, Group, HotCachePolicy, LoadError, Node};
use peercache_bench::value_for;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "get_many against single gets over a 3-node loopback cluster")]
struct Args {
    /// Rounds of the warm comparison (each runs all three ways once).
    #[arg(long, default_value_t = 300)]
    rounds: usize,
    /// Keys per operation.
    #[arg(long, default_value_t = 100)]
    keys: usize,
    /// Length of every value, in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Trials of the cold comparison.
    #[arg(long, default_value_t = 20)]
    cold_trials: usize,
}

/// A child process killed when dropped.
struct Owner {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
}

/// A plain `GET` over a fresh connection: the body.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}

fn stat(addr: SocketAddr, field: &str) -> u64 {
    let body = http_get(addr, "/stats").expect("the owner's /stats");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON stats");
    json[field].as_u64().unwrap_or(0)
}

/// CPU time of every thread of `pid` so far, in nanoseconds.
fn cpu_ns(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// One way of reading the keys, and what it cost.
#[derive(Default)]
struct Tally {
    micros: Vec<f64>,
    owner_ns: u64,
    own_ns: u64,
    keys: u64,
}

impl Tally {
    fn quantile(&mut self, q: f64) -> f64 {
        self.micros.sort_by(f64::total_cmp);
        let at = ((self.micros.len() as f64 - 1.0) * q).round() as usize;
        self.micros[at]
    }
}

#[derive(Clone, Copy, Debug)]
enum Way {
    GetMany,
    Sequential,
    Concurrent,
}

async fn read(group: &Group, keys: &[String], way: Way) {
    let ok = match way {
        Way::GetMany => group.get_many(keys).await.iter().all(Result::is_ok),
        Way::Sequential => {
            let mut ok = true;
            for key in keys {
                ok &= group.get(key).await.is_ok();
            }
            ok
        }
        Way::Concurrent => futures_join(group, keys).await,
    };
    assert!(ok, "{way:?}: a key failed");
}

async fn futures_join(group: &Group, keys: &[String]) -> bool {
    let mut tasks = tokio::task::JoinSet::new();
    for key in keys {
        let (group, key) = (group.clone(), key.clone());
        tasks.spawn(async move { group.get(&key).await.is_ok() });
    }
    let mut ok = true;
    while let Some(done) = tasks.join_next().await {
        ok &= done.unwrap_or(false);
    }
    ok
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let node_bin = std::env::current_exe()?.with_file_name("bench-node");
    let addrs = [free_addr(), free_addr(), free_addr()];
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    let peers = urls.join(",");
    let mut owners = Vec::new();
    for (addr, url) in addrs.iter().zip(&urls).skip(1) {
        let child = Command::new(&node_bin)
            .args([
                "--self",
                url,
                "--peers",
                &peers,
                "--listen",
                &addr.to_string(),
            ])
            .args([
                "--value-size",
                &args.value_size.to_string(),
                "--load-delay",
                "5ms",
            ])
            .args(["--cache-bytes", &(256u64 << 20).to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "starting {}: {e} (build it: cargo build --release -p peercache-bench)",
                    node_bin.display()
                )
            })?;
        owners.push(Owner { child, addr: *addr });
    }
    for owner in &owners {
        let started = Instant::now();
        while http_get(owner.addr, "/stats").is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "bench-node did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let pool = HttpPool::new(&urls[0], HttpOptions::default())?;
    pool.set_peers(&urls)?;
    let node = Node::with_picker(pool.clone());
    let size = args.value_size;
    let group = node
        .group_builder("bench")
        .cache_bytes(64 << 20)
        .hot_cache(HotCachePolicy::Never)
        .build(batch_loader_fn(move |keys: Vec<String>| async move {
            Ok::<_, LoadError>(
                keys.into_iter()
                    .map(|k| {
                        let v = value_for(&k, size);
                        (k, v)
                    })
                    .collect::<Vec<_>>(),
            )
        }))?;
    let listener = tokio::net::TcpListener::bind(addrs[0]).await?;
    tokio::spawn(Server::new(ServerLimits::default()).serve(
        listener,
        pool.service(node.clone()),
        std::future::pending(),
    ));

    let ring = Ring::with_peers(HashMode::Golang, 50, &urls)?;
    let remote = |prefix: &str, n: usize| -> Vec<String> {
        (0..)
            .map(|i| format!("{prefix}-{i}"))
            .filter(|k| ring.owner(k) != Some(&urls[0]))
            .take(n)
            .collect()
    };
    let pids: Vec<String> = owners.iter().map(|o| o.child.id().to_string()).collect();
    let owners_cpu = || pids.iter().map(|p| cpu_ns(p)).sum::<u64>();
    let me = std::process::id().to_string();

    // Warm.
    let keys = remote("warm", args.keys);
    read(&group, &keys, Way::GetMany).await;
    let ways = [Way::GetMany, Way::Sequential, Way::Concurrent];
    let mut tallies: Vec<Tally> = ways.iter().map(|_| Tally::default()).collect();
    for round in 0..args.rounds {
        for turn in 0..ways.len() {
            let at = (round + turn) % ways.len();
            let (owner0, own0) = (owners_cpu(), cpu_ns(&me));
            let started = Instant::now();
            read(&group, &keys, ways[at]).await;
            let micros = started.elapsed().as_secs_f64() * 1e6;
            let tally = &mut tallies[at];
            tally.micros.push(micros);
            tally.owner_ns += owners_cpu() - owner0;
            tally.own_ns += cpu_ns(&me).saturating_sub(own0);
            tally.keys += keys.len() as u64;
        }
    }
    println!(
        "warm: {} keys of {} B per operation, {} rounds, 2 owner processes + this node (hot cache off)",
        args.keys, args.value_size, args.rounds
    );
    println!("| way | median µs | p99 µs | owners' CPU µs/key | asking node's CPU µs/key |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let mut medians = Vec::new();
    let mut cpu = Vec::new();
    for (way, tally) in ways.iter().zip(&mut tallies) {
        let (median, p99) = (tally.quantile(0.5), tally.quantile(0.99));
        let owner = tally.owner_ns as f64 / tally.keys as f64 / 1e3;
        let own = tally.own_ns as f64 / tally.keys as f64 / 1e3;
        println!("| {way:?} | {median:.0} | {p99:.0} | {owner:.2} | {own:.2} |");
        medians.push(median);
        cpu.push(owner);
    }
    println!(
        "get_many / concurrent gets: median {:.3}x, owners' CPU per key {:.3}x",
        medians[0] / medians[2],
        cpu[0] / cpu[2]
    );

    // Cold.
    let calls = || {
        owners
            .iter()
            .map(|o| stat(o.addr, "loader_calls"))
            .sum::<u64>()
    };
    let mut cold: Vec<(Way, Vec<f64>, Vec<u64>)> = [Way::GetMany, Way::Concurrent]
        .into_iter()
        .map(|w| (w, Vec::new(), Vec::new()))
        .collect();
    for trial in 0..args.cold_trials {
        for (way, micros, loader_calls) in &mut cold {
            let keys = remote(&format!("cold-{way:?}-{trial}"), args.keys);
            let before = calls();
            let started = Instant::now();
            read(&group, &keys, *way).await;
            micros.push(started.elapsed().as_secs_f64() * 1e6);
            loader_calls.push(calls() - before);
        }
    }
    println!(
        "cold: {} fresh keys per trial, owners' loader sleeps 5 ms per call, {} trials",
        args.keys, args.cold_trials
    );
    println!("| way | median µs | loader calls per trial (2 owners) |");
    println!("| --- | ---: | --- |");
    for (way, micros, loader_calls) in &mut cold {
        micros.sort_by(f64::total_cmp);
        let (least, most) = (
            loader_calls.iter().min().copied().unwrap_or(0),
            loader_calls.iter().max().copied().unwrap_or(0),
        );
        println!(
            "| {way:?} | {:.0} | {least}..{most} |",
            micros[micros.len() / 2]
        );
    }
    Ok(())
}
