//! Loader isolation: a loader that hangs, panics, fails or returns garbage
//! for one key harms only that key. Other keys keep loading, cached values
//! stay cached, and the bad key is loadable again once its loader behaves.

use peercache::{CacheKind, Error, LoadError, Loader, Node, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A loader whose behaviour is chosen by the key's prefix. `hang` hangs on
/// its first call for a key only, `panic` panics on its first call only.
#[derive(Clone, Default)]
struct Misbehaving {
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<HashSet<String>>>,
}

impl Loader for Misbehaving {
    async fn load(&self, key: &str) -> Result<Value, LoadError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let first = self.seen.lock().unwrap().insert(key.to_owned());
        match key {
            k if k.starts_with("hang-forever") => std::future::pending().await,
            k if k.starts_with("hang") && first => std::future::pending().await,
            k if k.starts_with("panic") && first => panic!("loader bug on {k}"),
            k if k.starts_with("fail") => Err(LoadError::msg("source down")),
            // 2 MiB: more than the whole budget of the groups below.
            k if k.starts_with("huge") => Ok(Value::new(vec![b'x'; 2 << 20])),
            k if k.starts_with("stale") => Ok(Value::from("already expired")
                .with_expiry(SystemTime::now() - Duration::from_secs(60))),
            k => Ok(Value::from(format!("value of {k}"))),
        }
    }
}

const BUDGET: u64 = 1 << 20;

/// A group with `warm` already cached, and the loader's call counter.
async fn group_with_warm_key(
    timeout: Option<Duration>,
) -> (Node, peercache::Group, Arc<AtomicUsize>) {
    let node = Node::new();
    let loader = Misbehaving::default();
    let calls = loader.calls.clone();
    let builder = node.group_builder("g").cache_bytes(BUDGET);
    let builder = match timeout {
        Some(timeout) => builder.load_timeout(timeout),
        None => builder,
    };
    let group = builder.build(loader).unwrap();
    assert_eq!(
        group.get("warm").await.unwrap(),
        Value::from("value of warm")
    );
    (node, group, calls)
}

/// The cached `warm` entry is still there and other keys still load.
async fn assert_others_flow(group: &peercache::Group) {
    let hits = group.stats().cache_hits;
    assert_eq!(
        group.get("warm").await.unwrap(),
        Value::from("value of warm")
    );
    assert_eq!(
        group.stats().cache_hits,
        hits + 1,
        "warm was not a cache hit"
    );
    for i in 0..20 {
        let key = format!("other-{i}");
        let value = group.get(&key).await.unwrap();
        assert_eq!(value, Value::from(format!("value of {key}")));
    }
}

#[tokio::test(start_paused = true)]
async fn a_load_over_the_timeout_fails_every_waiter_and_loads_again() {
    let (_node, group, calls) = group_with_warm_key(Some(Duration::from_millis(200))).await;
    // Five gets share the hanging load; with the clock paused, tokio
    // advances time to the timeout as soon as every task is idle.
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let group = group.clone();
            tokio::spawn(async move { group.get("hang-once").await })
        })
        .collect();
    for waiter in waiters {
        // Bounded: without the load timeout this fails after 10 s of
        // (paused, so instant) time instead of hanging.
        let error = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the load timeout did not fire")
            .unwrap()
            .unwrap_err();
        assert!(matches!(error, Error::LoadTimeout { .. }), "{error}");
        let text = error.to_string();
        assert!(
            text.contains("\"hang-once\"") && text.contains("200ms"),
            "{text}"
        );
    }
    let stats = group.stats();
    assert_eq!((stats.local_loads, stats.local_load_errs), (1, 1));
    // The timed-out load was cancelled, not cached: the next get loads again.
    assert_eq!(
        group.get("hang-once").await.unwrap(),
        Value::from("value of hang-once")
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "warm, the hung load, the retry"
    );
    assert_others_flow(&group).await;
}

#[tokio::test]
async fn without_a_timeout_a_hung_load_stalls_only_its_own_key() {
    let (_node, group, _) = group_with_warm_key(None).await;
    let hung = {
        let group = group.clone();
        tokio::spawn(async move { group.get("hang-forever").await })
    };
    // Wait (polling, bounded) until the hung load has started.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while group.stats().loads < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the load never started"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_others_flow(&group).await;
    assert!(!hung.is_finished(), "the hung get should still be waiting");
    hung.abort();
}

#[tokio::test]
async fn a_panicking_loader_harms_only_its_key() {
    let (_node, group, _) = group_with_warm_key(None).await;
    let error = group.get("panic-key").await.unwrap_err();
    assert!(matches!(error, Error::Panicked { .. }), "{error}");
    assert!(
        error.to_string().contains("loader bug on panic-key"),
        "{error}"
    );
    assert_others_flow(&group).await;
    // The panic is not cached: the loader behaves on its next call.
    assert_eq!(
        group.get("panic-key").await.unwrap(),
        Value::from("value of panic-key")
    );
}

#[tokio::test]
async fn a_failing_loader_harms_only_its_key() {
    let (_node, group, _) = group_with_warm_key(None).await;
    for _ in 0..3 {
        let error = group.get("fail-key").await.unwrap_err();
        assert!(matches!(error, Error::Load { .. }), "{error}");
    }
    assert_eq!(group.stats().local_load_errs, 3, "errors are never cached");
    assert_others_flow(&group).await;
}

#[tokio::test]
async fn an_oversized_value_is_returned_but_evicts_nothing() {
    let (_node, group, calls) = group_with_warm_key(None).await;
    let value = group.get("huge-key").await.unwrap();
    assert_eq!(value.len(), 2 << 20);
    let stats = group.stats();
    assert_eq!(
        stats.main_cache.evictions, 0,
        "the oversized value evicted others"
    );
    assert!(stats.main_cache.bytes <= BUDGET);
    assert!(
        !group
            .cached_keys(CacheKind::Main)
            .contains(&"huge-key".to_owned()),
        "a value bigger than the budget was cached"
    );
    let before = calls.load(Ordering::SeqCst);
    group.get("huge-key").await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before + 1,
        "not cached, so loaded again"
    );
    assert_others_flow(&group).await;
}

#[tokio::test]
async fn an_already_expired_value_is_returned_once_and_not_cached() {
    let (_node, group, _) = group_with_warm_key(None).await;
    let value = group.get("stale-key").await.unwrap();
    assert_eq!(value.as_str().unwrap(), "already expired");
    assert!(!group
        .cached_keys(CacheKind::Main)
        .contains(&"stale-key".to_owned()));
    assert_others_flow(&group).await;
}

#[test]
fn a_zero_load_timeout_is_refused_with_a_clear_error() {
    let node = Node::new();
    let error = node
        .group_builder("g")
        .load_timeout(Duration::ZERO)
        .build(Misbehaving::default())
        .unwrap_err();
    assert!(matches!(error, Error::InvalidSetting { .. }), "{error}");
    assert!(error.to_string().contains("load_timeout"), "{error}");
}
