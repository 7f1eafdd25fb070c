//! Criterion benchmarks of the core paths: a cache hit through `Group::get`
//! (and what handing out a value costs by itself),
//! a miss with a trivial loader, ring look-ups, and the floor a hit is
//! compared with (a `Mutex<HashMap<String, Bytes>>` look-up).
//!
//! Run: `cargo bench -p peercache --bench core`. The Go counterparts are in
//! `bench/go/core_test.go`; BENCHMARKS.md has both sets of figures.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use futures_util::FutureExt;
use peercache::ring::{HashMode, Ring};
use peercache::{loader_fn, LoadError, Node, Value};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

fn get_hit(c: &mut Criterion) {
    let node = Node::new();
    let group = node
        .new_group(
            "bench",
            64 << 20,
            loader_fn(|_: String| async { Ok::<_, LoadError>(vec![b'v'; 100]) }),
        )
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(group.get("some-key")).unwrap();
    // A hit completes without awaiting anything, so its future is polled
    // once, in place, as `.await` polls it inside a task: the figure is the
    // hit path itself, not a runtime's overhead.
    c.bench_function("group_get_hit", |b| {
        b.iter(|| poll_in_place(group.get(black_box("some-key"))).unwrap())
    });

    // Two threads hitting the same key at once: wall time per get, as Go's
    // b.RunParallel with -cpu 2 reports it.
    c.bench_function("group_get_hit_2threads", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, || {
                poll_in_place(group.get(black_box("some-key"))).unwrap()
            })
        })
    });

    // The same hit through `now_or_never`, which takes the future and hands
    // back its output by value: two more moves of a few dozen bytes each,
    // which here cost more than the hit itself (BENCHMARKS.md).
    c.bench_function("group_get_hit_now_or_never", |b| {
        b.iter(|| {
            group
                .get(black_box("some-key"))
                .now_or_never()
                .unwrap()
                .unwrap()
        })
    });

    // What handing out a cached value costs by itself, whatever the index:
    // a `Value` (one `Arc`) against a bare `Bytes`, which values were before.
    let value = Value::new(vec![b'v'; 100]);
    let bytes = value.bytes().clone();
    c.bench_function("value_clone_drop", |b| b.iter(|| black_box(&value).clone()));
    c.bench_function("bytes_clone_drop", |b| b.iter(|| black_box(&bytes).clone()));

    let floor: Mutex<HashMap<String, Bytes>> = Mutex::new(HashMap::from([(
        "some-key".to_owned(),
        Bytes::from(vec![b'v'; 100]),
    )]));
    let floor_get = || {
        floor
            .lock()
            .unwrap()
            .get(black_box("some-key"))
            .cloned()
            .unwrap()
    };
    c.bench_function("floor_locked_hashmap_get", |b| b.iter(floor_get));
    c.bench_function("floor_locked_hashmap_get_2threads", |b| {
        b.iter_custom(|iters| on_two_threads(iters, floor_get))
    });
}

/// Polls a future once where it stands (no move of the future or of its
/// output), as a task's `.await` does; panics if it is not ready.
#[inline(always)]
fn poll_in_place<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut std::task::Context::from_waker(
        futures_util::task::noop_waker_ref(),
    )) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => {
            panic!("a hit, or a miss with a loader ready at once, never waits")
        }
    }
}

/// Runs `op` `iters` times split over two threads started together; the
/// wall time they took.
fn on_two_threads<T>(iters: u64, op: impl Fn() -> T + Sync) -> Duration {
    let per_thread = iters.div_ceil(2);
    let start = Barrier::new(3);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                start.wait();
                for _ in 0..per_thread {
                    black_box(op());
                }
            });
        }
        start.wait();
        let began = Instant::now();
        // The scope joins both threads before returning.
        began
    })
    .elapsed()
}

fn get_miss(c: &mut Criterion) {
    let node = Node::new();
    let group = node
        .new_group(
            "bench",
            1 << 20,
            loader_fn(|_: String| async { Ok::<_, LoadError>(Bytes::from_static(b"value")) }),
        )
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let keys: Vec<String> = (0..1_000_000).map(|i| format!("key-{i}")).collect();
    let mut next = 0;
    // Every iteration asks for a key never seen: lookup, merged-load table,
    // spawned load, loader call, insert (and, once the 1 MiB budget is full,
    // an eviction).
    c.bench_function("group_get_miss_trivial_loader", |b| {
        b.iter(|| {
            let key = &keys[next % keys.len()];
            next += 1;
            rt.block_on(group.get(key)).unwrap()
        })
    });

    // The same miss as a task awaits it: inside the runtime, without a
    // `block_on` per get (Go's benchmark calls `Get` directly). A trivial
    // loader is ready at once and runs inside the get, so one poll ends it.
    c.bench_function("group_get_miss_polled", |b| {
        let _inside = rt.enter();
        b.iter(|| {
            let key = &keys[next % keys.len()];
            next += 1;
            poll_in_place(group.get(key)).unwrap()
        })
    });

    // What the first of the two pays and the second does not: entering the
    // runtime to run a future that is ready at once.
    c.bench_function("tokio_block_on_ready", |b| b.iter(|| rt.block_on(async {})));
}

fn ring_owner(c: &mut Criterion) {
    let mut bench = c.benchmark_group("ring_owner");
    let keys: Vec<String> = (0..1024).map(|i| format!("key-{i}")).collect();
    for mode in [HashMode::Golang, HashMode::Mailgun] {
        for peers in [8, 32, 128, 512] {
            let ring = Ring::with_peers(
                mode,
                50,
                (0..peers).map(|i| format!("http://10.0.{}.{}:8080", i / 256, i % 256)),
            )
            .unwrap();
            let mut i = 0;
            bench.bench_with_input(
                BenchmarkId::new(format!("{mode:?}"), peers),
                &ring,
                |b, ring| {
                    b.iter(|| {
                        i = (i + 1) & 1023;
                        ring.owner(black_box(&keys[i])).unwrap().len()
                    })
                },
            );
        }
    }
    bench.finish();
}

criterion_group!(benches, get_hit, get_miss, ring_owner);
criterion_main!(benches);
