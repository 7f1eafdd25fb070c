//! What the peer request timeout (`HttpOptions::request_timeout`,
//! `--peer-timeout`) costs, over real HTTP on loopback.
//!
//! - A hung owner (a listener that never accepts: a SIGSTOPped process,
//!   whose kernel still completes the handshakes) costs each get of its
//!   keys the whole timeout before the key is loaded here, and only until
//!   `failures_to_down` (3) timeouts take it out of the ring: every get of
//!   its keys that started before then waits the timeout.
//! - A timeout below the owner's load time makes the asking node load the
//!   key too (twice the load on the origin) and takes a healthy, slow owner
//!   out of the ring.
//!
//! The quick tests assert both with short timeouts. The measurement behind
//! BENCHMARKS.md's "Peer timeout" section runs under `--ignored`:
//!
//! ```sh
//! cargo test -p peercache --test peer_timeout -- --ignored --nocapture
//! ```

use peercache::health::PeerState;
use peercache::http::{HttpOptions, HttpPool};
use peercache::ring::{HashMode, Ring, DEFAULT_REPLICAS};
use peercache::{loader_fn, Group, Node};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The options of every node here: the defaults but for the request
/// timeout.
fn options(request_timeout: Duration) -> HttpOptions {
    HttpOptions::builder()
        .request_timeout(request_timeout)
        .build()
        .unwrap()
}

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// A node serving group `g`, whose loader takes `load_time` and records
/// each key it loads.
struct TestNode {
    url: String,
    pool: Arc<HttpPool>,
    group: Group,
    loaded: Arc<Mutex<HashMap<String, u32>>>,
    _node: Node,
    _stop: oneshot::Sender<()>,
}

fn start(listener: TcpListener, url: &str, timeout: Duration, load_time: Duration) -> TestNode {
    let pool = HttpPool::new(url, options(timeout)).unwrap();
    let node = Node::with_picker(pool.clone());
    let loaded = Arc::new(Mutex::new(HashMap::new()));
    let counted = Arc::clone(&loaded);
    let group = node
        .new_group(
            "g",
            64 << 20,
            loader_fn(move |key: String| {
                *counted.lock().unwrap().entry(key.clone()).or_insert(0) += 1;
                async move {
                    tokio::time::sleep(load_time).await;
                    Ok(format!("v:{key}"))
                }
            }),
        )
        .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(peercache::http::serve_with_shutdown(
        listener,
        pool.service(node.clone()),
        async {
            let _ = stopped.await;
        },
    ));
    TestNode {
        url: url.to_owned(),
        pool,
        group,
        loaded,
        _node: node,
        _stop: stop,
    }
}

fn state_of(pool: &HttpPool, peer: &str) -> PeerState {
    pool.peer_status()
        .into_iter()
        .find(|s| s.peer == peer)
        .unwrap()
        .state
}

/// One get of a steady stream: when it started, how long it took, and
/// whether its key belonged to the peer under test on the full ring.
struct Sample {
    started: Duration,
    took: Duration,
    theirs: bool,
}

/// Gets of fresh keys (every one a miss) from `asker`, `rate` a second for
/// `length`, each its own task; returns every get's sample and when `peer`
/// left `asker`'s ring (if it did).
async fn steady_gets(
    asker: &TestNode,
    peer: &str,
    rate: u32,
    length: Duration,
) -> (Vec<Sample>, Option<Duration>) {
    let ring = Ring::with_peers(HashMode::Golang, DEFAULT_REPLICAS, [&asker.url, peer]).unwrap();
    let begin = Instant::now();
    let mut every = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut gets = Vec::new();
    let mut down_at = None;
    for i in 0.. {
        every.tick().await;
        let started = begin.elapsed();
        if started >= length {
            break;
        }
        if down_at.is_none() && state_of(&asker.pool, peer) == PeerState::Down {
            down_at = Some(started);
        }
        let key = format!("key-{i}");
        let theirs = ring.owner(&key) == Some(peer);
        let group = asker.group.clone();
        gets.push(tokio::spawn(async move {
            let at = Instant::now();
            let value = group.get(&key).await.unwrap();
            assert_eq!(value.as_str().unwrap(), format!("v:{key}"));
            Sample {
                started,
                took: at.elapsed(),
                theirs,
            }
        }));
    }
    let mut samples = Vec::new();
    for get in gets {
        samples.push(get.await.unwrap());
    }
    (samples, down_at)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The hung-owner run: `asker` and a peer that never accepts; gets at
/// `rate` for `length`. Returns the samples and when the peer left.
async fn hung_owner(
    timeout: Duration,
    rate: u32,
    length: Duration,
) -> (Vec<Sample>, Option<Duration>) {
    let (listener, url) = listen().await;
    let asker = start(listener, &url, timeout, Duration::from_millis(1));
    // Bound, never accepting: the kernel completes each handshake and the
    // request waits in the backlog (128, tokio's, as peercache-server's),
    // as with a SIGSTOPped node. Beyond the backlog, connecting times out
    // (the connect timeout, 2 s).
    let (hung, hung_url) = listen().await;
    asker.pool.set_peers([&url, &hung_url]).unwrap();
    let run = steady_gets(&asker, &hung_url, rate, length).await;
    drop(hung);
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_owner_costs_each_get_the_timeout_until_it_is_out_of_the_ring() {
    let timeout = Duration::from_millis(300);
    let (samples, down_at) = hung_owner(timeout, 100, Duration::from_millis(1200)).await;
    let down_at = down_at.expect("the hung peer never left the ring");
    // Out of the ring once the first three requests timed out.
    assert!(
        down_at >= timeout && down_at < timeout * 2,
        "out of the ring after {down_at:?}"
    );
    for s in &samples {
        if s.theirs && s.started < timeout / 2 {
            // Started while the peer looked fine: the whole timeout, then
            // loaded here.
            assert!(s.took >= timeout, "{:?} at {:?}", s.took, s.started);
            assert!(s.took < timeout * 3, "{:?} at {:?}", s.took, s.started);
        }
        if s.started > down_at {
            // Out of the ring: loaded here at once.
            assert!(s.took < timeout / 2, "{:?} at {:?}", s.took, s.started);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_below_the_owners_load_time_loads_twice_and_takes_the_owner_out() {
    let timeout = Duration::from_millis(100);
    let load_time = Duration::from_millis(250);
    let (a, a_url) = listen().await;
    let (b, b_url) = listen().await;
    let asker = start(a, &a_url, timeout, load_time);
    let owner = start(b, &b_url, timeout, load_time);
    for node in [&asker, &owner] {
        node.pool.set_peers([&a_url, &b_url]).unwrap();
    }
    let keys: Vec<String> = (0..)
        .map(|i| format!("key-{i}"))
        .filter(|k| asker.pool.owner(k) == b_url)
        .take(3)
        .collect();
    for key in &keys {
        let value = asker.group.get(key).await.unwrap();
        assert_eq!(value.as_str().unwrap(), format!("v:{key}"));
    }
    // Each key loaded by its owner (the request went on there) and here.
    for key in &keys {
        assert_eq!(owner.loaded.lock().unwrap().get(key), Some(&1), "{key}");
        assert_eq!(asker.loaded.lock().unwrap().get(key), Some(&1), "{key}");
    }
    // Three timeouts in a row took a healthy owner out of the ring (a probe
    // may have put it back since: it answers at once).
    let status = asker.pool.peer_status();
    let owner_status = status.iter().find(|s| s.peer == b_url).unwrap();
    assert_eq!(owner_status.times_down, 1, "{owner_status:?}");
}

/// The measurement: for each timeout, a hung owner under a steady stream of
/// misses (200 a second, about half of them its keys), and a healthy owner
/// whose loads take 400 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (about 30 s): run with --ignored --nocapture"]
async fn measure_peer_timeouts() {
    println!("hung owner, 200 misses/s of fresh keys, 2-node ring (asker + hung):");
    println!(
        "| timeout | out of the ring after | gets of its keys | of them over 100 ms | of them >= timeout | their p50 | their max | other gets p99 |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for timeout_ms in [5000, 2000, 1000, 250] {
        let timeout = Duration::from_millis(timeout_ms);
        let length = timeout * 2 + Duration::from_secs(1);
        let (samples, down_at) = hung_owner(timeout, 200, length).await;
        let mut theirs: Vec<Duration> = samples
            .iter()
            .filter(|s| s.theirs)
            .map(|s| s.took)
            .collect();
        let mut others: Vec<Duration> = samples
            .iter()
            .filter(|s| !s.theirs)
            .map(|s| s.took)
            .collect();
        theirs.sort();
        others.sort();
        let slow = theirs
            .iter()
            .filter(|t| **t > Duration::from_millis(100))
            .count();
        let waited = theirs.iter().filter(|t| **t >= timeout).count();
        println!(
            "| {timeout:?} | {} | {} | {slow} | {waited} | {:.2?} | {:.2?} | {:.2?} |",
            down_at.map_or("never".to_owned(), |d| format!("{d:.2?}")),
            theirs.len(),
            percentile(&theirs, 0.5),
            theirs.last().copied().unwrap_or_default(),
            percentile(&others, 0.99),
        );
    }

    println!();
    println!("healthy owner whose loads take 400 ms, 20 misses/s of fresh keys for 3 s:");
    println!(
        "| timeout | its keys asked | loaded twice (owner and asker) | owner out of the ring |"
    );
    println!("| ---: | ---: | ---: | --- |");
    let load_time = Duration::from_millis(400);
    for timeout_ms in [5000, 1000, 250] {
        let timeout = Duration::from_millis(timeout_ms);
        let (a, a_url) = listen().await;
        let (b, b_url) = listen().await;
        let asker = start(a, &a_url, timeout, load_time);
        let owner = start(b, &b_url, timeout, load_time);
        for node in [&asker, &owner] {
            node.pool.set_peers([&a_url, &b_url]).unwrap();
        }
        let (samples, down_at) = steady_gets(&asker, &b_url, 20, Duration::from_secs(3)).await;
        let asked = samples.iter().filter(|s| s.theirs).count();
        let twice = {
            let here = asker.loaded.lock().unwrap();
            let there = owner.loaded.lock().unwrap();
            here.keys().filter(|k| there.contains_key(*k)).count()
        };
        println!(
            "| {timeout:?} | {asked} | {twice} | {} |",
            down_at.map_or("no".to_owned(), |d| format!("after {d:.2?}")),
        );
    }
}
