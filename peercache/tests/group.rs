//! Groups, loaders and merged loads on a single node (no peers).

use peercache::{loader_fn, CacheKind, Error, Group, LoadError, Loader, Node, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Polls `condition` every millisecond for at most five seconds.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Spawns `n` gets of `key` and waits until all of them have joined one
/// load (each has counted a load and none can have finished: the loader is
/// gated).
async fn spawn_joined_gets(
    group: &Group,
    key: &str,
    n: u64,
) -> Vec<tokio::task::JoinHandle<Result<Value, Error>>> {
    let waiters = (0..n)
        .map(|_| {
            let (group, key) = (group.clone(), key.to_owned());
            tokio::spawn(async move { group.get(&key).await })
        })
        .collect();
    wait_until("every get joined the load", || group.stats().loads == n).await;
    waiters
}

/// A loader that counts its calls and, when gated, waits for a permit.
#[derive(Clone, Default)]
struct Source {
    calls: Arc<AtomicUsize>,
    gate: Option<Arc<Semaphore>>,
}

impl Source {
    fn gated() -> (Self, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        let source = Source {
            calls: Arc::default(),
            gate: Some(gate.clone()),
        };
        (source, gate)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Loader for Source {
    async fn load(&self, key: &str) -> Result<Value, LoadError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate open").forget();
        }
        match key {
            k if k.starts_with("missing") => Err(LoadError::NotFound),
            k if k.starts_with("fail") => Err(LoadError::msg(format!("source down (call {call})"))),
            k if k.starts_with("panic") && call == 1 => panic!("loader bug on {k}"),
            k => Ok(Value::from(format!("value of {k}"))),
        }
    }
}

#[tokio::test]
async fn ten_gets_of_one_key_load_once() {
    let node = Node::new();
    let source = Source::default();
    let group = node.new_group("g", 1 << 20, source.clone()).unwrap();
    for _ in 0..10 {
        assert_eq!(
            group.get("k").await.unwrap().as_str().unwrap(),
            "value of k"
        );
    }
    assert_eq!(source.calls(), 1);
    let stats = group.stats();
    assert_eq!(
        (stats.gets, stats.cache_hits, stats.loads, stats.local_loads),
        (10, 9, 1, 1)
    );
    assert_eq!(stats.main_cache.items, 1);
    assert_eq!(
        stats.main_cache.bytes,
        ("k".len() + "value of k".len()) as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_share_one_load() {
    let node = Node::new();
    let (source, gate) = Source::gated();
    let group = node.new_group("g", 1 << 20, source.clone()).unwrap();
    let waiters = spawn_joined_gets(&group, "k", 50).await;
    gate.add_permits(1);
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap().unwrap(), Value::from("value of k"));
    }
    assert_eq!(source.calls(), 1);
    let stats = group.stats();
    assert_eq!(
        (stats.loads, stats.loads_deduped, stats.local_loads),
        (50, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_waiter_gets_the_same_error_and_errors_are_not_cached() {
    let node = Node::new();
    let (source, gate) = Source::gated();
    let group = node.new_group("g", 1 << 20, source.clone()).unwrap();
    let waiters = spawn_joined_gets(&group, "fail-1", 10).await;
    gate.add_permits(1);
    for waiter in waiters {
        let error = waiter.await.unwrap().unwrap_err();
        assert!(
            matches!(error, Error::Load { ref key, peer: None, .. } if &**key == "fail-1"),
            "{error}"
        );
        assert!(
            error.to_string().contains("source down (call 1)"),
            "{error}"
        );
    }
    assert_eq!(source.calls(), 1);
    // Not cached: the next get calls the loader again.
    gate.add_permits(1);
    let error = group.get("fail-1").await.unwrap_err();
    assert!(error.to_string().contains("call 2"), "{error}");
    assert_eq!(group.stats().local_load_errs, 2);
    assert_eq!(group.stats().main_cache.items, 0);
    // Not found is its own, typed error, also not cached.
    gate.add_permits(2);
    assert!(group.get("missing").await.unwrap_err().is_not_found());
    assert!(group.get("missing").await.unwrap_err().is_not_found());
    assert_eq!(source.calls(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_completes_when_the_caller_that_started_it_is_cancelled() {
    let node = Node::new();
    let (source, gate) = Source::gated();
    let group = node.new_group("g", 1 << 20, source.clone()).unwrap();
    let starter = {
        let group = group.clone();
        tokio::spawn(async move { group.get("k").await })
    };
    wait_until("the loader started", || source.calls() == 1).await;
    let follower = {
        let group = group.clone();
        tokio::spawn(async move { group.get("k").await })
    };
    wait_until("the follower joined", || group.stats().loads == 2).await;
    starter.abort();
    assert!(starter.await.unwrap_err().is_cancelled());
    gate.add_permits(1);
    assert_eq!(follower.await.unwrap().unwrap(), Value::from("value of k"));
    // The value was cached by the load the cancelled caller started.
    assert_eq!(group.get("k").await.unwrap(), Value::from("value of k"));
    assert_eq!(source.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_completes_even_if_every_caller_is_cancelled() {
    let node = Node::new();
    let (source, gate) = Source::gated();
    let group = node.new_group("g", 1 << 20, source.clone()).unwrap();
    // Poll the get once, so that the load starts, then drop it.
    assert!(futures_util::FutureExt::now_or_never(group.get("k")).is_none());
    wait_until("the loader started", || source.calls() == 1).await;
    gate.add_permits(1);
    wait_until("the value is cached", || {
        group.stats().main_cache.items == 1
    })
    .await;
    assert_eq!(group.get("k").await.unwrap(), Value::from("value of k"));
    assert_eq!(source.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_loader_fails_every_waiter_and_the_key_loads_again() {
    let node = Node::new();
    let (source, gate) = Source::gated();
    let group = node.new_group("g", 1 << 20, source.clone()).unwrap();
    let waiters = spawn_joined_gets(&group, "panic-key", 5).await;
    gate.add_permits(1);
    for waiter in waiters {
        let error = waiter.await.unwrap().unwrap_err();
        assert!(matches!(error, Error::Panicked { .. }), "{error}");
        assert!(
            error.to_string().contains("loader bug on panic-key"),
            "{error}"
        );
    }
    // The loader panics only on its first call: the next get succeeds.
    gate.add_permits(1);
    assert_eq!(
        group.get("panic-key").await.unwrap(),
        Value::from("value of panic-key")
    );
    assert_eq!(source.calls(), 2);
    // Other keys were never affected.
    gate.add_permits(1);
    assert!(group.get("other").await.is_ok());
}

#[tokio::test]
async fn a_flood_of_keys_asked_once_does_not_push_out_the_cached_ones() {
    let node = Node::new();
    let source = Source::default();
    // Each entry costs len("key-NNN") + len("value of key-NNN") = 7 + 16 = 23.
    let group = node.new_group("g", 23 * 10, source.clone()).unwrap();
    for i in 0..100 {
        group.get(&format!("key-{i:03}")).await.unwrap();
    }
    let stats = group.stats();
    assert_eq!(stats.main_cache.items, 10);
    assert_eq!(stats.main_cache.bytes, 230);
    // The 90 keys past the budget were asked once, as often as the cached
    // ones: each was turned away, and counts as an eviction.
    assert_eq!(stats.main_cache.evictions, 90);
    assert_eq!(source.calls(), 100);
    group.get("key-000").await.unwrap();
    assert_eq!(source.calls(), 100, "the first keys are still cached");
    // Asked a second time, a key out-counts the least recent cached one.
    group.get("key-099").await.unwrap();
    assert_eq!(source.calls(), 101);
    group.get("key-099").await.unwrap();
    assert_eq!(source.calls(), 101, "a key asked twice is cached");
    assert_eq!(group.stats().main_cache.items, 10);
}

#[tokio::test]
async fn a_get_does_nothing_until_polled() {
    let group = Node::new()
        .new_group(
            "lazy",
            1 << 20,
            loader_fn(|key: String| async move { Ok::<_, LoadError>(key) }),
        )
        .unwrap();
    let pending = group.get("k");
    let shown = format!("{pending:?}");
    assert!(
        shown.contains("lazy") && shown.contains("loading: false"),
        "{shown}"
    );
    drop(pending);
    assert_eq!(group.stats().gets, 0, "an unpolled get must not count");
    assert_eq!(group.get("k").await.unwrap().as_str().unwrap(), "k");
    assert_eq!(group.get("k").await.unwrap().as_str().unwrap(), "k");
    let stats = group.stats();
    assert_eq!((stats.gets, stats.cache_hits, stats.loads), (2, 1, 1));
}

#[tokio::test]
async fn hits_under_the_read_lock_count_for_the_policy_and_none_is_lost() {
    let node = Node::new();
    let source = Source::default();
    // 23 bytes per entry (see above): room for 3.
    let group = node.new_group("g", 23 * 3, source.clone()).unwrap();
    for key in ["key-000", "key-001", "key-002"] {
        group.get(key).await.unwrap();
    }
    // Hits are served under the read lock and applied later, in order;
    // more of them than the log holds (256) between two changes take the
    // write lock, and none is lost.
    for round in 0..300 {
        group.get(["key-000", "key-001"][round % 2]).await.unwrap();
    }
    let stats = group.stats();
    assert_eq!((stats.gets, stats.cache_hits), (303, 300));
    // Main is also asked once more by each of the 3 loads (their re-check).
    assert_eq!((stats.main_cache.gets, stats.main_cache.hits), (306, 300));
    // A newcomer asked once does not displace key-002 (asked once too);
    // asked twice, it does; the two keys hit 150 times each stay.
    group.get("key-003").await.unwrap();
    assert!(!group
        .cached_keys(CacheKind::Main)
        .contains(&"key-003".to_owned()));
    group.get("key-003").await.unwrap();
    let mut cached = group.cached_keys(CacheKind::Main);
    cached.sort();
    assert_eq!(cached, ["key-000", "key-001", "key-003"]);
    assert_eq!(source.calls(), 5);
}

#[test]
fn hits_on_many_threads_are_all_counted() {
    let node = Node::new();
    let source = Source::default();
    let group = node.new_group("g", 1 << 20, source.clone()).unwrap();
    let keys: Vec<String> = (0..20).map(|i| format!("key-{i:03}")).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for key in &keys {
        runtime.block_on(group.get(key)).unwrap();
    }
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (group, keys) = (&group, &keys);
            scope.spawn(move || {
                for i in 0..5_000 {
                    let key = &keys[(i * 7 + t) % keys.len()];
                    let value = futures_util::FutureExt::now_or_never(group.get(key))
                        .expect("a hit never waits")
                        .unwrap();
                    assert_eq!(value.as_str().unwrap(), format!("value of {key}"));
                }
            });
        }
    });
    let stats = group.stats();
    assert_eq!(stats.gets, 20 + 4 * 5_000);
    assert_eq!(stats.cache_hits, 4 * 5_000);
    assert_eq!(stats.main_cache.hits, 4 * 5_000);
    assert_eq!(source.calls(), 20);
    assert_eq!(group.cached_keys(CacheKind::Main).len(), 20);
}

#[tokio::test]
async fn zero_budget_disables_caching() {
    let node = Node::new();
    let source = Source::default();
    let group = node.new_group("g", 0, source.clone()).unwrap();
    group.get("k").await.unwrap();
    group.get("k").await.unwrap();
    assert_eq!(source.calls(), 2);
    assert_eq!(group.stats().main_cache.bytes, 0);
}

#[tokio::test]
async fn a_value_larger_than_the_budget_is_returned_but_not_cached() {
    let node = Node::new();
    let group = node
        .new_group(
            "g",
            100,
            loader_fn(|key: String| async move {
                Ok(if key == "huge" {
                    vec![0u8; 1000]
                } else {
                    vec![1u8; 10]
                })
            }),
        )
        .unwrap();
    group.get("a").await.unwrap();
    assert_eq!(group.get("huge").await.unwrap().len(), 1000);
    assert_eq!(
        group.cached_keys(CacheKind::Main),
        ["a"],
        "nothing already cached is lost"
    );
}

#[test]
fn group_names_are_checked() {
    let node = Node::new();
    let loader = || loader_fn(|_: String| async { Ok("") });
    node.new_group("colors", 1, loader()).unwrap();
    let duplicate = node.new_group("colors", 1, loader()).unwrap_err();
    assert!(matches!(duplicate, Error::DuplicateGroup { .. }));
    assert!(duplicate.to_string().contains("\"colors\""), "{duplicate}");
    for bad in ["", "a/b", "tab\there", &"x".repeat(300)] {
        let error = node.new_group(bad, 1, loader()).unwrap_err();
        assert!(
            matches!(error, Error::InvalidGroupName { .. }),
            "{bad:?}: {error}"
        );
    }
    assert_eq!(node.group("colors").unwrap().name(), "colors");
    assert!(node.group("nope").is_none());
    assert_eq!(node.groups().len(), 1);
}

#[test]
fn a_miss_outside_a_runtime_is_an_error_not_a_panic() {
    use futures_util::FutureExt;
    let node = Node::new();
    let group = node.new_group("g", 1 << 20, Source::default()).unwrap();
    let result = group.get("k").now_or_never().expect("completes at once");
    assert!(matches!(result, Err(Error::NoRuntime { .. })), "{result:?}");
}

#[tokio::test]
async fn nodes_are_independent() {
    let (a, b) = (Node::new(), Node::new());
    let (sa, sb) = (Source::default(), Source::default());
    let ga = a.new_group("g", 1 << 20, sa.clone()).unwrap();
    b.new_group("g", 1 << 20, sb.clone()).unwrap();
    ga.get("k").await.unwrap();
    assert_eq!((sa.calls(), sb.calls()), (1, 0));
    assert_eq!(b.stats()[0].gets, 0);
}

#[tokio::test]
async fn stats_serialise_with_gos_names() {
    let node = Node::new();
    let group = node.new_group("g", 1 << 20, Source::default()).unwrap();
    group.get("k").await.unwrap();
    let json = serde_json::to_value(group.stats()).unwrap();
    for field in [
        "gets",
        "cache_hits",
        "peer_loads",
        "peer_errors",
        "loads",
        "loads_deduped",
        "local_loads",
        "local_load_errs",
        "server_requests",
    ] {
        assert!(json.get(field).is_some(), "missing {field}");
    }
    assert_eq!(json["main_cache"]["items"], 1);
    assert_eq!(json["hot_cache"]["evictions"], 0);
}
