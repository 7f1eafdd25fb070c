//! Origin protection: stale-while-revalidate, stale-if-error and cached
//! not-found answers, with a `ManualClock` (no sleeps) and, for what crosses
//! nodes, in-process clusters.

use peercache::clock::ManualClock;
use peercache::in_process::InProcessNetwork;
use peercache::ring::{HashMode, Ring, DEFAULT_REPLICAS};
use peercache::{loader_fn, Error, Group, HotCachePolicy, LoadError, Node, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(10);
const TTL: Duration = Duration::from_secs(60);

/// Polls `condition` until it holds, within [`WAIT`].
async fn until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let waited = tokio::time::timeout(WAIT, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

/// An origin that counts its calls, answers `<key>#<call>`, fails while
/// `down`, says not-found for keys starting with `missing`, and holds each
/// call until `gate` lets it through when `gated`.
struct Origin {
    calls: AtomicUsize,
    down: AtomicBool,
    gated: AtomicBool,
    gate: Semaphore,
}

impl Default for Origin {
    fn default() -> Self {
        Origin {
            calls: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            gated: AtomicBool::new(false),
            gate: Semaphore::new(0),
        }
    }
}

impl Origin {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn loader(self: &Arc<Self>) -> impl peercache::Loader {
        let origin = Arc::clone(self);
        loader_fn(move |key: String| {
            let origin = Arc::clone(&origin);
            async move {
                let n = origin.calls.fetch_add(1, Ordering::SeqCst) + 1;
                if origin.gated.load(Ordering::SeqCst) {
                    origin.gate.acquire().await.unwrap().forget();
                }
                if origin.down.load(Ordering::SeqCst) {
                    return Err(LoadError::msg("origin down"));
                }
                if key.starts_with("missing") {
                    return Err(LoadError::NotFound);
                }
                Ok(Value::from(format!("{key}#{n}")))
            }
        })
    }
}

fn text(answer: Result<Value, Error>) -> String {
    answer.unwrap().as_str().unwrap().to_owned()
}

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

/// Three in-process nodes sharing `clock`, each with group "g" over
/// `origin` as `build` makes it; and a key of each owner.
fn cluster(
    clock: &Arc<ManualClock>,
    origin: &Arc<Origin>,
    build: impl Fn(peercache::GroupBuilder<'_>) -> peercache::GroupBuilder<'_>,
) -> (Vec<Group>, Vec<Node>, Ring) {
    let network = InProcessNetwork::new();
    let ids = ["a", "b", "c"];
    let ring = Ring::with_peers(HashMode::Golang, DEFAULT_REPLICAS, ids).unwrap();
    let mut groups = Vec::new();
    let mut nodes = Vec::new();
    for id in ids {
        let node = network.node(id, &ids).unwrap();
        let builder = node
            .group_builder("g")
            .hot_cache(HotCachePolicy::Always)
            .clock(Arc::clone(clock) as _);
        groups.push(build(builder).build(origin.loader()).unwrap());
        nodes.push(node);
    }
    (groups, nodes, ring)
}

/// A key starting with `prefix` that `owner` owns on `ring`.
fn key_of(ring: &Ring, owner: &str, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|key| ring.owner(key) == Some(owner))
        .unwrap()
}

#[tokio::test]
async fn a_not_found_is_asked_of_the_origin_once_per_window_cluster_wide() {
    let origin = Arc::new(Origin::default());
    let clock = ManualClock::starting_now();
    let (groups, _nodes, ring) = cluster(&clock, &origin, |b| {
        b.cache_not_found(Duration::from_secs(30))
    });
    let key = key_of(&ring, "a", "missing");
    for _ in 0..5 {
        for group in &groups {
            assert!(group.get(&key).await.unwrap_err().is_not_found());
        }
        let answers = groups[2].get_many(&[key.as_str()]).await;
        assert!(answers[0].as_ref().unwrap_err().is_not_found());
    }
    assert_eq!(
        origin.calls(),
        1,
        "one origin call in the window, cluster-wide"
    );
    // The askers cached the owner's answer (one fetch each), until its expiry.
    for group in &groups[1..] {
        let stats = group.stats();
        assert!(stats.negative_hits >= 4, "{stats:?}");
        assert_eq!(stats.hot_cache.items, 1);
    }
    clock.advance(Duration::from_secs(30));
    for group in &groups {
        assert!(group.get(&key).await.unwrap_err().is_not_found());
    }
    assert_eq!(origin.calls(), 2, "asked again once the window passed");
}

#[tokio::test]
async fn a_hot_copy_past_expiry_is_served_while_the_owner_is_asked_in_the_background() {
    let origin = Arc::new(Origin::default());
    let clock = ManualClock::starting_now();
    let (groups, _nodes, ring) = cluster(&clock, &origin, |b| {
        b.ttl(TTL).stale_while_revalidate(Duration::from_secs(60))
    });
    let key = key_of(&ring, "b", "k");
    assert_eq!(text(groups[0].get(&key).await), format!("{key}#1"));
    assert_eq!(groups[0].stats().hot_cache.items, 1);
    clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(
        text(groups[0].get(&key).await),
        format!("{key}#1"),
        "the stale hot copy"
    );
    assert_eq!(groups[0].stats().stale_served, 1);
    until("the hot copy is refreshed from the owner", async || {
        groups[0].get(&key).await.unwrap().as_str().unwrap() == format!("{key}#2")
    })
    .await;
    assert_eq!(origin.calls(), 2, "the owner refreshed once");
    assert_eq!(groups[1].stats().refreshes, 1);
}

#[tokio::test]
async fn the_owner_serves_its_stale_value_to_a_peer_when_the_origin_fails() {
    let origin = Arc::new(Origin::default());
    let clock = ManualClock::starting_now();
    let (groups, _nodes, ring) = cluster(&clock, &origin, |b| {
        b.ttl(TTL).stale_if_error(Duration::from_secs(600))
    });
    let key = key_of(&ring, "c", "k");
    assert_eq!(text(groups[2].get(&key).await), format!("{key}#1"));
    origin.down.store(true, Ordering::SeqCst);
    clock.advance(TTL * 2);
    // `a` holds no copy: the owner answers with its stale value.
    let stale = groups[0].get(&key).await.unwrap();
    assert_eq!(stale.as_str().unwrap(), format!("{key}#1"));
    assert!(
        stale.expires_at().is_some(),
        "its expiry is kept, in the past"
    );
    assert_eq!(groups[2].stats().stale_if_error, 1);
    assert_eq!(
        groups[0].stats().hot_cache.items,
        0,
        "an expired value is not copied"
    );
    let answers = groups[1].get_many(&[key.as_str()]).await;
    assert_eq!(
        text(answers.into_iter().next().unwrap()),
        format!("{key}#1")
    );
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
async fn an_asker_keeps_the_owners_not_found_at_most_its_own_ttl_and_only_if_it_caches_them() {
    let origin = Arc::new(Origin::default());
    let clock = ManualClock::starting_now();
    let network = InProcessNetwork::new();
    let ids = ["a", "b"];
    let ring = Ring::with_peers(HashMode::Golang, DEFAULT_REPLICAS, ids).unwrap();
    // The owner `a` caches not-found for an hour; `b`, for 10 s.
    let mut groups = Vec::new();
    let mut nodes = Vec::new();
    for (id, ttl) in [("a", 3600), ("b", 10)] {
        let node = network.node(id, &ids).unwrap();
        groups.push(
            node.group_builder("g")
                .cache_not_found(Duration::from_secs(ttl))
                .clock(Arc::clone(&clock) as _)
                .build(origin.loader())
                .unwrap(),
        );
        nodes.push(node);
    }
    let key = key_of(&ring, "a", "missing");
    assert!(groups[1].get(&key).await.unwrap_err().is_not_found());
    assert!(groups[1].get(&key).await.unwrap_err().is_not_found());
    assert_eq!(groups[0].stats().server_requests, 1, "b kept the answer");
    clock.advance(Duration::from_secs(10));
    assert!(groups[1].get(&key).await.unwrap_err().is_not_found());
    assert_eq!(
        groups[0].stats().server_requests,
        2,
        "b kept it 10 s, its own TTL"
    );
    assert_eq!(origin.calls(), 1, "the owner still holds its not-found");
    // A node that does not cache not-found asks every time.
    let plain = network.node("c", &ids).unwrap();
    let plain = plain
        .group_builder("g")
        .clock(Arc::clone(&clock) as _)
        .build(origin.loader())
        .unwrap();
    for _ in 0..3 {
        assert!(plain.get(&key).await.unwrap_err().is_not_found());
    }
    assert_eq!(groups[0].stats().server_requests, 5);
    assert_eq!(plain.stats().hot_cache.items, 0);
}
