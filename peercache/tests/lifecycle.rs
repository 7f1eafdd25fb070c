//! The life of a key across a cluster: remove, set, purge and expiry, on
//! the in-process transport. Time is a `ManualClock` moved by hand; every
//! wait is bounded and polls a condition instead of sleeping.

use peercache::clock::ManualClock;
use peercache::in_process::InProcessNetwork;
use peercache::ring::{HashMode, Ring};
use peercache::CacheKind::{Hot, Main};
use peercache::{CacheKind, Error, Group, HotCachePolicy, LoadError, Loader, Node, Value};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

const PEERS: [&str; 3] = ["node-a", "node-b", "node-c"];
const SECOND: Duration = Duration::from_secs(1);

/// Awaits `future` for at most ten seconds.
async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Polls `condition`, yielding in between, for at most ten seconds.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    bounded(what, async {
        while !condition() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

fn spawn_get(group: &Group, key: &str) -> JoinHandle<Result<Value, Error>> {
    let (group, key) = (group.clone(), key.to_owned());
    tokio::spawn(async move { group.get(&key).await })
}

async fn text(group: &Group, key: &str) -> String {
    let value = bounded("a get", group.get(key)).await.unwrap();
    value.as_str().unwrap().to_owned()
}

/// Loader whose values name the node and the call (`key@node#call`), so a
/// new load shows; call `n` first waits for a permit of `gates[n - 1]`, if
/// there is one. Keys starting with "short" expire five seconds after load.
#[derive(Clone)]
struct Source {
    node: &'static str,
    calls: Arc<AtomicUsize>,
    clock: Arc<ManualClock>,
    gates: Arc<Vec<Semaphore>>,
}

impl Source {
    fn new(node: &'static str, clock: &Arc<ManualClock>, gates: usize) -> Self {
        Source {
            node,
            calls: Arc::default(),
            clock: Arc::clone(clock),
            gates: Arc::new((0..gates).map(|_| Semaphore::new(0)).collect()),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Loader for Source {
    async fn load(&self, key: &str) -> Result<Value, LoadError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(gate) = self.gates.get(call - 1) {
            gate.acquire().await.expect("gate open").forget();
        }
        let value = Value::from(format!("{key}@{}#{call}", self.node));
        Ok(match key.starts_with("short") {
            true => value.with_expiry(self.clock.now() + 5 * SECOND),
            false => value,
        })
    }
}

/// One node owning every key, on a manual clock, with a ten-second ttl.
fn single(gates: usize) -> (Group, Source, Arc<ManualClock>) {
    let clock = ManualClock::starting_now();
    let source = Source::new("solo", &clock, gates);
    let (node, ttl) = (Node::new(), 10 * SECOND);
    let builder = node.group_builder("g").ttl(ttl).clock(clock.clone());
    (builder.build(source.clone()).unwrap(), source, clock)
}

/// In-process nodes sharing one manual clock, hot cache always on.
struct Cluster {
    network: Arc<InProcessNetwork>,
    nodes: Vec<(&'static str, Node, Group, Source)>,
    clock: Arc<ManualClock>,
    ring: Ring,
}

impl Cluster {
    fn new(peers: &[&'static str]) -> Self {
        let (network, clock) = (InProcessNetwork::new(), ManualClock::starting_now());
        let mut nodes = Vec::new();
        for &id in peers {
            let node = network.node(id, peers).unwrap();
            let source = Source::new(id, &clock, 0);
            let builder = node.group_builder("g").clock(clock.clone());
            let builder = builder.hot_cache(HotCachePolicy::Always);
            let group = builder.build(source.clone()).unwrap();
            nodes.push((id, node, group, source));
        }
        let ring = Ring::with_peers(HashMode::Golang, 50, peers).unwrap();
        Cluster {
            network,
            nodes,
            clock,
            ring,
        }
    }

    fn g(&self, id: &str) -> &Group {
        &self.nodes.iter().find(|n| n.0 == id).unwrap().2
    }

    fn calls(&self, id: &str) -> usize {
        self.nodes.iter().find(|n| n.0 == id).unwrap().3.calls()
    }

    fn key_owned_by(&self, owner: &str, prefix: &str) -> String {
        (0..)
            .map(|i| format!("{prefix}{i}"))
            .find(|k| self.ring.owner(k) == Some(owner))
            .unwrap()
    }

    async fn get(&self, id: &str, key: &str) -> String {
        text(self.g(id), key).await
    }

    /// Reads `key` through every node, so that each holds a copy.
    async fn read_everywhere(&self, key: &str) {
        for (id, ..) in &self.nodes {
            self.get(id, key).await;
        }
    }

    async fn set(&self, id: &str, key: &str, value: &'static str, at: Option<SystemTime>) {
        let set = self.g(id).set(key, value, at);
        bounded("a set", set).await.unwrap();
    }

    /// Asserts that no node caches anything.
    fn assert_empty(&self) {
        for (id, _, group, _) in &self.nodes {
            let (main, hot) = (group.stats().main_cache, group.stats().hot_cache);
            let held = [main.items, main.bytes, hot.items, hot.bytes];
            assert_eq!(held, [0; 4], "{id} holds nothing");
        }
    }

    /// Every (node, cache) holding `key`, in peer order, main before hot.
    fn holders(&self, key: &str) -> Vec<(&'static str, CacheKind)> {
        let mut held = Vec::new();
        for (id, _, group, _) in &self.nodes {
            for kind in [Main, Hot] {
                if group.cached_keys(kind).iter().any(|k| k == key) {
                    held.push((*id, kind));
                }
            }
        }
        held
    }
}

#[tokio::test]
async fn remove_clears_every_copy_and_the_next_get_loads_again() {
    let c = Cluster::new(&PEERS);
    let key = c.key_owned_by("node-a", "k");
    let first = c.get("node-b", &key).await;
    assert_eq!(first, format!("{key}@node-a#1"));
    assert_eq!(c.get("node-c", &key).await, first);
    let everywhere = [("node-a", Main), ("node-b", Hot), ("node-c", Hot)];
    assert_eq!(c.holders(&key), everywhere);

    bounded("remove", c.g("node-c").remove(&key)).await.unwrap();
    assert_eq!(c.holders(&key), [], "no node keeps a copy");

    let second = c.get("node-b", &key).await;
    assert_eq!(second, format!("{key}@node-a#2"), "the owner loaded again");
    for id in PEERS {
        assert_eq!(c.get(id, &key).await, second);
    }
    assert_eq!(PEERS.map(|id| c.calls(id)), [2, 0, 0]);
}

#[tokio::test]
async fn remove_with_a_peer_down_names_it_and_clears_the_others() {
    // node-b is down: first as the key's owner (the remove fails), then
    // holding a hot copy (the remove is pending there); either way it
    // drops its copy once it is back.
    for (owner, b_owns, b_holds) in [("node-b", true, Main), ("node-c", false, Hot)] {
        let c = Cluster::new(&PEERS);
        let key = c.key_owned_by(owner, "k");
        c.read_everywhere(&key).await;
        c.network.set_down("node-b", true);
        let remove = bounded("remove", c.g("node-a").remove(&key)).await;
        if b_owns {
            let error = remove.unwrap_err();
            assert!(matches!(error, Error::PeersFailed { .. }), "{error:?}");
            let failed = error.failed_peers();
            assert_eq!(failed.len(), 1, "{error}");
            assert_eq!((&*failed[0].peer, failed[0].owner), ("node-b", true));
            assert!(failed[0].reason.contains("down"), "{:?}", failed[0]);
            let shown = error.to_string();
            assert!(shown.contains("node-b") && shown.contains(&key), "{shown}");
        } else {
            assert_eq!(remove.unwrap().pending(), [std::sync::Arc::from("node-b")]);
        }
        assert_eq!(c.holders(&key), [("node-b", b_holds)], "others cleared");
        c.network.set_down("node-b", false);
        wait_until("the removal reaches node-b", || c.holders(&key).is_empty()).await;
        assert!(c.g("node-a").pending_hints().is_empty());
    }
}

#[tokio::test]
async fn remove_keys_clears_keys_of_every_owner_everywhere() {
    let c = Cluster::new(&PEERS);
    let keys = PEERS.map(|owner| c.key_owned_by(owner, "many-"));
    for key in &keys {
        c.read_everywhere(key).await;
        assert_eq!(c.holders(key).len(), 3, "{key} cached on every node");
    }

    let remove = c.g("node-b").remove_keys(&keys);
    bounded("remove_keys", remove).await.unwrap();
    c.assert_empty();
    for (owner, key) in PEERS.iter().zip(&keys) {
        assert_eq!(c.get("node-c", key).await, format!("{key}@{owner}#2"));
    }
}

#[tokio::test]
async fn set_replaces_the_value_everywhere_and_drops_hot_copies() {
    let c = Cluster::new(&PEERS);
    let key = c.key_owned_by("node-a", "k");
    c.read_everywhere(&key).await;

    // From a non-owner: stored by the owner, every other copy dropped.
    c.set("node-b", &key, "new", None).await;
    assert_eq!(c.holders(&key), [("node-a", Main)], "no stale hot copy");
    for id in PEERS {
        assert_eq!(c.get(id, &key).await, "new");
    }

    // From the owner itself.
    c.set("node-a", &key, "newer", None).await;
    assert_eq!(c.holders(&key), [("node-a", Main)], "no stale hot copy");
    for id in PEERS {
        assert_eq!(c.get(id, &key).await, "newer");
    }
    assert_eq!(PEERS.map(|id| c.calls(id)), [1, 0, 0], "no loader ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sets_are_not_merged_and_the_cluster_agrees_on_one() {
    let c = Cluster::new(&PEERS);
    let key = c.key_owned_by("node-b", "k");
    c.read_everywhere(&key).await;
    let written: Vec<String> = (0..30).map(|i| format!("value {i}")).collect();
    let sets: Vec<_> = written
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let (group, key, value) = (c.g(PEERS[i % 3]).clone(), key.clone(), value.clone());
            tokio::spawn(async move { group.set(&key, value, None).await })
        })
        .collect();
    // Readers on every node meanwhile, refilling hot copies.
    let readers = PEERS.map(|id| {
        let (group, key) = (c.g(id).clone(), key.clone());
        tokio::spawn(async move {
            for _ in 0..50 {
                group.get(&key).await.unwrap();
            }
        })
    });
    for set in sets {
        bounded("a set", set).await.unwrap().unwrap();
    }
    for reader in readers {
        bounded("a reader", reader).await.unwrap();
    }

    let agreed = c.get("node-b", &key).await;
    assert!(written.contains(&agreed), "{agreed:?} was never written");
    for _ in 0..3 {
        for id in PEERS {
            assert_eq!(c.get(id, &key).await, agreed, "{id} disagrees");
        }
    }
    assert_eq!(c.calls("node-b"), 1, "the owner never loaded over a set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_in_flight_during_remove_is_neither_cached_nor_joined() {
    let (group, source, _clock) = single(2);
    let first = spawn_get(&group, "k");
    wait_until("the first load to block", || source.calls() == 1).await;
    bounded("remove", group.remove("k")).await.unwrap();

    // A get after the removal starts its own load instead of joining.
    let second = spawn_get(&group, "k");
    wait_until("a second, separate load", || source.calls() == 2).await;
    assert!(!first.is_finished(), "the first load is still blocked");

    source.gates[0].add_permits(1);
    let old = bounded("the first get", first).await.unwrap().unwrap();
    assert_eq!(old.as_str().unwrap(), "k@solo#1", "its caller gets it");
    assert!(group.cached_keys(Main).is_empty(), "but it is not cached");

    // The fenced load finishing does not unregister the new one: a third
    // get joins it (on its own it would run ungated and return "#3").
    let third = spawn_get(&group, "k");
    wait_until("the third get to join", || group.stats().loads == 3).await;
    source.gates[1].add_permits(1);
    for get in [second, third] {
        let value = bounded("a later get", get).await.unwrap().unwrap();
        assert_eq!(value.as_str().unwrap(), "k@solo#2");
    }
    assert_eq!(group.cached_keys(Main), ["k"]);
    assert_eq!(text(&group, "k").await, "k@solo#2");
    assert_eq!(source.calls(), 2);
}

#[tokio::test]
async fn ttl_expiry_follows_the_manual_clock() {
    let (group, source, clock) = single(0);
    let value = bounded("get", group.get("k")).await.unwrap();
    assert_eq!(value.expires_at(), Some(clock.now() + 10 * SECOND));
    clock.advance(9 * SECOND);
    assert_eq!(text(&group, "k").await, "k@solo#1", "a hit before expiry");
    assert_eq!(source.calls(), 1);
    clock.advance(2 * SECOND);
    assert_eq!(text(&group, "k").await, "k@solo#2", "loaded again after");
    assert_eq!(source.calls(), 2);
}

#[tokio::test]
async fn a_loader_expiry_overrides_the_ttl() {
    let (group, source, clock) = single(0);
    let value = bounded("get", group.get("short")).await.unwrap();
    assert_eq!(value.expires_at(), Some(clock.now() + 5 * SECOND));
    clock.advance(4 * SECOND);
    assert_eq!(text(&group, "short").await, "short@solo#1");
    clock.advance(2 * SECOND);
    assert_eq!(text(&group, "short").await, "short@solo#2");
    assert_eq!(source.calls(), 2);
}

// current_thread: nothing runs between `advance` and the next call, so the
// background sweeper cannot reclaim the entries first.
#[tokio::test]
async fn expired_entries_give_their_bytes_back_without_being_touched() {
    let (group, source, clock) = single(0);
    for i in 0..5 {
        text(&group, &format!("k{i}")).await;
    }
    let stats = group.stats().main_cache;
    assert_eq!((stats.items, stats.expired), (5, 0));
    assert!(stats.bytes > 0);

    clock.advance(11 * SECOND);
    assert_eq!(group.reclaim_expired(), 5);
    let stats = group.stats().main_cache;
    assert_eq!((stats.bytes, stats.items, stats.expired), (0, 0, 5));
    assert_eq!(group.reclaim_expired(), 0);

    // stats() alone reclaims too.
    for i in 0..3 {
        text(&group, &format!("j{i}")).await;
    }
    assert_eq!(group.stats().main_cache.items, 3);
    clock.advance(11 * SECOND);
    let stats = group.stats().main_cache;
    assert_eq!((stats.bytes, stats.items, stats.expired), (0, 0, 8));
    assert_eq!(source.calls(), 8, "no get touched an expired entry");
}

#[tokio::test]
async fn an_owners_expiry_travels_to_hot_copies() {
    let c = Cluster::new(&PEERS[..2]);
    let key = c.key_owned_by("node-a", "short");
    let hot = bounded("get", c.g("node-b").get(&key)).await.unwrap();
    let owned = bounded("get", c.g("node-a").get(&key)).await.unwrap();
    assert_eq!(hot.expires_at(), Some(c.clock.now() + 5 * SECOND));
    assert_eq!(hot.expires_at(), owned.expires_at());
    assert_eq!(c.holders(&key), [("node-a", Main), ("node-b", Hot)]);

    c.clock.advance(4 * SECOND);
    let fetches = c.network.fetches();
    assert_eq!(c.get("node-b", &key).await, format!("{key}@node-a#1"));
    assert_eq!(c.network.fetches(), fetches, "served from the hot copy");

    c.clock.advance(2 * SECOND);
    assert_eq!(c.get("node-b", &key).await, format!("{key}@node-a#2"));
    assert_eq!(c.network.fetches(), fetches + 1, "the hot copy expired");
    assert_eq!((c.calls("node-a"), c.calls("node-b")), (2, 0));
}

#[tokio::test]
async fn purge_empties_every_node_and_the_next_gets_reload() {
    let c = Cluster::new(&PEERS);
    let keys: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
    let mut before = Vec::new();
    for key in &keys {
        c.read_everywhere(key).await;
        before.push(c.get("node-a", key).await);
    }
    let total = || PEERS.iter().map(|id| c.calls(id)).sum::<usize>();
    assert_eq!(total(), 12);
    for id in PEERS {
        let stats = c.g(id).stats();
        assert_eq!(stats.main_cache.items + stats.hot_cache.items, 12, "{id}");
    }

    bounded("purge", c.g("node-c").purge()).await.unwrap();
    c.assert_empty();
    for (key, before) in keys.iter().zip(before) {
        let after = c.get("node-a", key).await;
        let owner = c.ring.owner(key).unwrap();
        assert!(after.starts_with(&format!("{key}@{owner}#")), "{after}");
        assert_ne!(after, before, "{key} was loaded again");
    }
    assert_eq!(total(), 24);
}

#[tokio::test]
async fn a_set_value_is_not_served_after_its_expiry() {
    let c = Cluster::new(&PEERS);
    let key = c.key_owned_by("node-c", "k");
    c.read_everywhere(&key).await;

    // Already expired: nothing stores it, the old value is gone too.
    let past = c.clock.now() - SECOND;
    c.set("node-a", &key, "stale", Some(past)).await;
    assert_eq!(c.holders(&key), []);
    for id in PEERS {
        assert_eq!(c.get(id, &key).await, format!("{key}@node-c#2"));
    }

    // Expiring later: served everywhere until then, and not after.
    let at = c.clock.now() + 5 * SECOND;
    c.set("node-b", &key, "fresh", Some(at)).await;
    for id in PEERS {
        let value = bounded("get", c.g(id).get(&key)).await.unwrap();
        assert_eq!(value.as_str().unwrap(), "fresh", "{id}");
        assert_eq!(value.expires_at(), Some(at));
    }
    c.clock.advance(6 * SECOND);
    for id in PEERS {
        assert_eq!(c.get(id, &key).await, format!("{key}@node-c#3"), "{id}");
    }
    assert_eq!(c.calls("node-c"), 3);
}
