//! Criterion benchmarks of one peer fetch over loopback HTTP: the client
//! ([`peercache::http::HttpPeer`] through the pooled hyper client) and the
//! server ([`peercache::http::serve`]) in one process, the value cached at
//! the owner, over HTTP/1.1 and over h2c, one at a time and 16 at once.
//!
//! Run: `cargo bench -p peercache --bench peer`. The Go counterpart is
//! `bench/go/src/corebench/peer_test.go`; BENCHMARKS.md has both.

use criterion::{criterion_group, criterion_main, Criterion};
use peercache::http::{HttpOptions, HttpPool};
use peercache::{loader_fn, LoadError, Node, Peer, PeerPicker};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

const CONCURRENCY: u64 = 16;

/// A runtime with an owner serving group `peer`, and the asker's handle on
/// that owner with the key it owns.
fn setup(http2: bool) -> (Runtime, Arc<dyn Peer>, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (peer, key) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let owner_url = format!("http://{}", listener.local_addr().unwrap());
        let owner = Node::new();
        owner
            .new_group(
                "peer",
                64 << 20,
                loader_fn(|_: String| async { Ok::<_, LoadError>(vec![b'v'; 100]) }),
            )
            .unwrap();
        tokio::spawn(peercache::http::serve(
            listener,
            peercache::http::PeerService::without_pool(owner),
        ));
        let me = "http://127.0.0.1:9";
        let options = HttpOptions::builder().http2(http2).build().unwrap();
        let pool = HttpPool::new(me, options).unwrap();
        pool.set_peers([me, owner_url.as_str()]).unwrap();
        let key = (0..)
            .map(|i| format!("some-key-{i}"))
            .find(|k| pool.owner(k) == owner_url)
            .unwrap();
        let peer = pool.pick(&key).unwrap();
        peer.fetch("peer", &key).await.unwrap();
        (peer, key)
    });
    (rt, peer, key)
}

fn peer_fetch(c: &mut Criterion) {
    let mut group = c.benchmark_group("peer_fetch");
    group.measurement_time(Duration::from_secs(3));
    for (name, http2) in [("http1", false), ("h2c", true)] {
        let (rt, peer, key) = setup(http2);
        // One fetch at a time, from a task on the runtime's workers (where a
        // group's fetches run), not from the thread blocked on the runtime.
        group.bench_function(format!("{name}/sequential"), |b| {
            b.iter_custom(|iters| {
                let (peer, key) = (Arc::clone(&peer), key.clone());
                rt.block_on(async move {
                    tokio::spawn(async move {
                        let start = Instant::now();
                        for _ in 0..iters {
                            peer.fetch("peer", &key).await.unwrap();
                        }
                        start.elapsed()
                    })
                    .await
                    .unwrap()
                })
            })
        });
        // Wall time per fetch with 16 in flight: the inverse of throughput.
        group.bench_function(format!("{name}/parallel16"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let per_task = iters.div_ceil(CONCURRENCY);
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..CONCURRENCY)
                        .map(|_| {
                            let (peer, key) = (Arc::clone(&peer), key.clone());
                            tokio::spawn(async move {
                                for _ in 0..per_task {
                                    peer.fetch("peer", &key).await.unwrap();
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                    start.elapsed() * iters as u32 / (per_task * CONCURRENCY) as u32
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, peer_fetch);
criterion_main!(benches);
