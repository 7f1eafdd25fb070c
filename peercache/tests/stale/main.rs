//! Origin protection: stale-while-revalidate, stale-if-error and cached
//! not-found answers, with a `ManualClock` (no sleeps) and, for what crosses
//! nodes, in-process clusters.

mod breaker;
mod cluster;
mod support;

use peercache::clock::ManualClock;
use peercache::{loader_fn, Error, LoadError, Node};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

#[tokio::test]
async fn an_origin_that_fails_keeps_expired_keys_served_within_the_window_counted() {
    let origin = Arc::new(Origin::default());
    let clock = ManualClock::starting_now();
    let group = Node::new()
        .group_builder("g")
        .ttl(TTL)
        .stale_if_error(Duration::from_secs(300))
        .clock(clock.clone())
        .build(origin.loader())
        .unwrap();
    for i in 0..10 {
        assert_eq!(
            text(group.get(&format!("k{i}")).await),
            format!("k{i}#{}", i + 1)
        );
    }
    origin.down.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(120)); // expired a minute ago
    for round in 0..3 {
        for i in 0..10 {
            let key = format!("k{i}");
            assert_eq!(
                text(group.get(&key).await),
                format!("{key}#{}", i + 1),
                "round {round}"
            );
        }
    }
    let stats = group.stats();
    assert_eq!(stats.stale_if_error, 30, "every stale serve is counted");
    assert_eq!(origin.calls(), 10 + 30, "each get still tried the origin");
    assert_eq!(
        stats.main_cache.items, 10,
        "expired values kept in the budget"
    );
    // A not-found is the origin's answer, never hidden by a stale value.
    origin.down.store(false, Ordering::SeqCst);
    assert!(group.get("missing").await.unwrap_err().is_not_found());
    // Past the window, the error is the answer and the entries are reclaimed.
    origin.down.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(300));
    assert!(matches!(group.get("k0").await, Err(Error::Load { .. })));
    let stats = group.stats();
    assert_eq!((stats.main_cache.items, stats.main_cache.bytes), (0, 0));
    // When the origin is back, values are fresh again.
    origin.down.store(false, Ordering::SeqCst);
    assert!(text(group.get("k0").await).starts_with("k0#"));
    assert_eq!(group.stats().stale_if_error, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_origin_is_refreshed_once_while_gets_answer_from_the_cache() {
    let origin = Arc::new(Origin::default());
    let clock = ManualClock::starting_now();
    let group = Node::new()
        .group_builder("g")
        .ttl(TTL)
        .stale_while_revalidate(Duration::from_secs(60))
        .clock(clock.clone())
        .build(origin.loader())
        .unwrap();
    assert_eq!(text(group.get("k").await), "k#1");
    // From now on the origin holds every call until let through: a get
    // that waited for it would not end.
    origin.gated.store(true, Ordering::SeqCst);
    clock.advance(TTL + Duration::from_secs(1));
    let mut gets = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let group = group.clone();
        gets.spawn(async move { group.get("k").await });
    }
    let answered = tokio::time::timeout(WAIT, async {
        let mut answers = Vec::new();
        while let Some(answer) = gets.join_next().await {
            answers.push(text(answer.unwrap()));
        }
        answers
    })
    .await
    .expect("stale gets answer without waiting for the origin");
    assert_eq!(answered, vec!["k#1"; 50]);
    assert_eq!(origin.calls(), 2, "one refresh for 50 stale gets");
    let stats = group.stats();
    assert_eq!((stats.stale_served, stats.refreshes), (50, 1));
    // The refresh ends: its value replaces the stale one.
    origin.gate.add_permits(1);
    until("the refreshed value is served", async || {
        group.get("k").await.unwrap().as_str().unwrap() == "k#2"
    })
    .await;
    assert_eq!(origin.calls(), 2);
    // Past the revalidate window a get waits for the load, as without it.
    origin.gated.store(false, Ordering::SeqCst);
    clock.advance(TTL + Duration::from_secs(61));
    let served = group.stats().stale_served;
    assert_eq!(text(group.get("k").await), "k#3");
    assert_eq!(group.stats().stale_served, served);
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_stale_value_and_the_next_get_tries_again() {
    let origin = Arc::new(Origin::default());
    let clock = ManualClock::starting_now();
    let group = Node::new()
        .group_builder("g")
        .ttl(TTL)
        .stale_while_revalidate(Duration::from_secs(60))
        .clock(clock.clone())
        .build(origin.loader())
        .unwrap();
    group.get("k").await.unwrap();
    origin.down.store(true, Ordering::SeqCst);
    clock.advance(TTL);
    assert_eq!(text(group.get("k").await), "k#1");
    until("the failed refresh ended", async || origin.calls() == 2).await;
    tokio::task::yield_now().await;
    assert_eq!(text(group.get("k").await), "k#1");
    until("a second refresh ran", async || origin.calls() == 3).await;
    origin.down.store(false, Ordering::SeqCst);
    until("a refresh succeeded", async || {
        group.get("k").await.unwrap().as_str().unwrap() != "k#1"
    })
    .await;
}

#[tokio::test]
async fn the_load_cap_serves_stale_instead_of_overloaded() {
    let origin = Arc::new(Origin::default());
    let clock = ManualClock::starting_now();
    let group = Node::new()
        .group_builder("g")
        .ttl(TTL)
        .stale_if_error(Duration::from_secs(60))
        .max_concurrent_loads(1, Duration::ZERO)
        .clock(clock.clone())
        .build(origin.loader())
        .unwrap();
    group.get("a").await.unwrap();
    group.get("b").await.unwrap();
    clock.advance(TTL);
    origin.gated.store(true, Ordering::SeqCst);
    // `a`'s load holds the one place; `b`'s is refused, and served stale.
    let holder = tokio::spawn({
        let group = group.clone();
        async move { group.get("a").await }
    });
    until("a's load holds the place", async || origin.calls() == 3).await;
    assert_eq!(text(group.get("b").await), "b#2");
    let stats = group.stats();
    assert_eq!((stats.loads_refused, stats.stale_if_error), (1, 1));
    origin.gate.add_permits(1);
    assert_eq!(text(holder.await.unwrap()), "a#3");
}

#[tokio::test]
async fn a_not_found_is_cached_for_its_ttl_and_cleared_by_set_and_remove() {
    let origin = Arc::new(Origin::default());
    let clock = ManualClock::starting_now();
    let group = Node::new()
        .group_builder("g")
        .cache_not_found(Duration::from_secs(30))
        .clock(clock.clone())
        .build(origin.loader())
        .unwrap();
    for _ in 0..5 {
        assert!(group.get("missing-1").await.unwrap_err().is_not_found());
    }
    assert_eq!(origin.calls(), 1);
    let stats = group.stats();
    assert_eq!(stats.negative_hits, 4);
    assert_eq!(
        (stats.main_cache.items, stats.main_cache.bytes),
        (1, "missing-1".len() as u64 + 128),
        "a cached not-found costs its key and its bookkeeping"
    );
    // Batches read it too.
    let answers = group.get_many(&["missing-1", "k"]).await;
    assert!(answers[0].as_ref().unwrap_err().is_not_found());
    assert_eq!(origin.calls(), 2, "only k was loaded");
    // Its TTL passes: the origin is asked again.
    clock.advance(Duration::from_secs(30));
    assert!(group.get("missing-1").await.unwrap_err().is_not_found());
    assert_eq!(origin.calls(), 3);
    // A set replaces it; a remove clears it.
    group.set("missing-1", "now here", None).await.unwrap();
    assert_eq!(text(group.get("missing-1").await), "now here");
    group.remove("missing-1").await.unwrap();
    assert!(group.get("missing-1").await.unwrap_err().is_not_found());
    assert_eq!(origin.calls(), 4);
    group.remove("missing-1").await.unwrap();
    assert!(group.get("missing-1").await.unwrap_err().is_not_found());
    assert_eq!(origin.calls(), 5);
}

#[tokio::test]
async fn without_the_settings_nothing_stale_or_negative_is_served() {
    let origin = Arc::new(Origin::default());
    let clock = ManualClock::starting_now();
    let group = Node::new()
        .group_builder("g")
        .ttl(TTL)
        .clock(clock.clone())
        .build(origin.loader())
        .unwrap();
    group.get("k").await.unwrap();
    clock.advance(TTL);
    origin.down.store(true, Ordering::SeqCst);
    assert!(matches!(group.get("k").await, Err(Error::Load { .. })));
    origin.down.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        assert!(group.get("missing").await.unwrap_err().is_not_found());
    }
    assert_eq!(origin.calls(), 1 + 1 + 3);
    let stats = group.stats();
    assert_eq!(
        [
            stats.stale_served,
            stats.stale_if_error,
            stats.negative_hits
        ],
        [0; 3]
    );
    assert_eq!(stats.main_cache.items, 0, "the expired entry was dropped");
}

#[tokio::test]
async fn a_value_the_origin_says_is_gone_is_not_served_stale_again() {
    let origin = Arc::new(Origin::default());
    let clock = ManualClock::starting_now();
    let group = Node::new()
        .group_builder("g")
        .ttl(TTL)
        .stale_while_revalidate(Duration::from_secs(60))
        .stale_if_error(Duration::from_secs(600))
        .clock(clock.clone())
        .build(loader_fn({
            let origin = Arc::clone(&origin);
            let gone = AtomicBool::new(false);
            move |key: String| {
                let n = origin.calls.fetch_add(1, Ordering::SeqCst) + 1;
                // The first load finds the key; every later one, not.
                let gone = gone.swap(true, Ordering::SeqCst);
                let down = origin.down.load(Ordering::SeqCst);
                async move {
                    match (down, gone) {
                        (true, _) => Err(LoadError::msg("origin down")),
                        (false, true) => Err(LoadError::NotFound),
                        (false, false) => Ok(format!("{key}#{n}")),
                    }
                }
            }
        }))
        .unwrap();
    assert_eq!(text(group.get("k").await), "k#1");
    clock.advance(TTL);
    // Served stale while the refresh runs; the refresh says not found.
    assert_eq!(text(group.get("k").await), "k#1");
    until("the refresh ended", async || origin.calls() == 2).await;
    until("the gone value is no longer served", async || {
        group.get("k").await.is_err_and(|e| e.is_not_found())
    })
    .await;
    // Nor is it served on the next error: there is nothing left to serve.
    origin.down.store(true, Ordering::SeqCst);
    assert!(matches!(group.get("k").await, Err(Error::Load { .. })));
    assert_eq!(group.stats().main_cache.items, 0);
}

#[tokio::test]
async fn a_batch_refreshes_its_stale_keys_in_one_loader_call() {
    let calls = Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
    let clock = ManualClock::starting_now();
    let recorded = Arc::clone(&calls);
    let group = Node::new()
        .group_builder("g")
        .ttl(TTL)
        .stale_while_revalidate(Duration::from_secs(60))
        .clock(clock.clone())
        .build(peercache::batch_loader_fn(move |keys: Vec<String>| {
            recorded.lock().unwrap().push(keys.len());
            async move { Ok(keys.into_iter().map(|k| (k.clone(), k)).collect::<Vec<_>>()) }
        }))
        .unwrap();
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    assert!(group.get_many(&keys).await.iter().all(Result::is_ok));
    clock.advance(TTL);
    let answers = group.get_many(&keys).await;
    assert!(answers.iter().all(Result::is_ok), "all answered stale");
    let stats = group.stats();
    assert_eq!((stats.stale_served, stats.refreshes), (50, 50));
    until("the refresh ran", async || calls.lock().unwrap().len() == 2).await;
    assert_eq!(
        *calls.lock().unwrap(),
        [50, 50],
        "one loader call for the 50 refreshes"
    );
}

#[tokio::test]
async fn a_values_own_windows_apply_when_the_group_sets_none_and_the_groups_override_them() {
    let clock = ManualClock::starting_now();
    let down = Arc::new(AtomicBool::new(false));
    let node = Node::new();
    let build = |name: &str, group_window: Option<Duration>| {
        let down = Arc::clone(&down);
        let clock = clock.clone();
        let builder = node.group_builder(name).clock(clock.clone());
        let builder = match group_window {
            Some(window) => builder.stale_if_error(window),
            None => builder,
        };
        builder
            .build(loader_fn(move |key: String| {
                let failing = down.load(Ordering::SeqCst);
                let expires = clock.now() + TTL;
                async move {
                    if failing {
                        return Err(LoadError::msg("origin down"));
                    }
                    // As an HTTP origin's `max-age=60, stale-if-error=600`.
                    Ok(peercache::Value::from(key)
                        .with_expiry(expires)
                        .with_stale_windows(Duration::ZERO, Duration::from_secs(600)))
                }
            }))
            .unwrap()
    };
    let own = build("own", None);
    let overridden = build("overridden", Some(Duration::from_secs(100)));
    own.get("k").await.unwrap();
    overridden.get("k").await.unwrap();
    down.store(true, Ordering::SeqCst);
    clock.advance(TTL + Duration::from_secs(300));
    assert_eq!(text(own.get("k").await), "k", "the value's 600 s window");
    assert!(
        matches!(overridden.get("k").await, Err(Error::Load { .. })),
        "the group's 100 s window wins"
    );
    clock.advance(Duration::from_secs(300));
    assert!(
        matches!(own.get("k").await, Err(Error::Load { .. })),
        "past it"
    );
    assert_eq!(
        own.stats().main_cache.items,
        0,
        "reclaimed after its own window"
    );
}
