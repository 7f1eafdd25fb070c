//! golang/groupcache's classic cluster behaviours, on the in-process
//! transport: owners load, non-owners fetch, a failed owner means a local
//! load, hot-cache policies, and no forwarding loops.

use peercache::in_process::InProcessNetwork;
use peercache::ring::{HashMode, Ring};
use peercache::{Error, Group, HotCachePolicy, LoadError, Loader, Node, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PEERS: [&str; 3] = ["node-a", "node-b", "node-c"];

/// Loader that records which node loaded which key.
#[derive(Clone)]
struct Source {
    node: &'static str,
    calls: Arc<AtomicUsize>,
}

impl Loader for Source {
    async fn load(&self, key: &str) -> Result<Value, LoadError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if key.starts_with("fail") {
            return Err(LoadError::msg(format!("{} cannot load {key}", self.node)));
        }
        Ok(Value::from(format!("{key} by {}", self.node)))
    }
}

struct Cluster {
    network: Arc<InProcessNetwork>,
    _nodes: Vec<Node>,
    groups: HashMap<&'static str, Group>,
    calls: HashMap<&'static str, Arc<AtomicUsize>>,
    ring: Ring,
}

impl Cluster {
    fn new(policy: HotCachePolicy) -> Self {
        let network = InProcessNetwork::new();
        let (mut nodes, mut groups, mut calls) = (Vec::new(), HashMap::new(), HashMap::new());
        for id in PEERS {
            let node = network.node(id, &PEERS).unwrap();
            let source = Source {
                node: id,
                calls: Arc::default(),
            };
            calls.insert(id, source.calls.clone());
            let group = node
                .group_builder("g")
                .hot_cache(policy)
                .build(source)
                .unwrap();
            groups.insert(id, group);
            nodes.push(node);
        }
        let ring = Ring::with_peers(HashMode::Golang, 50, PEERS).unwrap();
        Cluster {
            network,
            _nodes: nodes,
            groups,
            calls,
            ring,
        }
    }

    fn calls(&self, id: &str) -> usize {
        self.calls[id].load(Ordering::SeqCst)
    }

    /// A key owned by `owner`.
    fn key_owned_by(&self, owner: &str, prefix: &str) -> String {
        (0..)
            .map(|i| format!("{prefix}{i}"))
            .find(|k| self.ring.owner(k) == Some(owner))
            .unwrap()
    }
}

#[tokio::test]
async fn keys_are_loaded_by_their_owners_only() {
    let cluster = Cluster::new(HotCachePolicy::Never);
    let a = &cluster.groups["node-a"];
    let mut owned = HashMap::<&str, usize>::new();
    for i in 0..300 {
        let key = format!("key-{i}");
        let owner = cluster.ring.owner(&key).unwrap();
        *owned.entry(owner).or_default() += 1;
        let value = a.get(&key).await.unwrap();
        assert_eq!(value.as_str().unwrap(), format!("{key} by {owner}"));
    }
    for id in PEERS {
        assert_eq!(
            cluster.calls(id),
            owned[id],
            "{id} loaded only its own keys"
        );
    }
    let stats = a.stats();
    assert_eq!(stats.peer_loads as usize, 300 - owned["node-a"]);
    assert_eq!(stats.local_loads as usize, owned["node-a"]);
    assert_eq!(stats.peer_errors, 0);
    let b = cluster.groups["node-b"].stats();
    assert_eq!(b.server_requests as usize, owned["node-b"]);
    // The owners keep what they loaded in their main cache; with the hot
    // cache off, node-a holds only its own keys.
    assert_eq!(b.main_cache.items as usize, owned["node-b"]);
    assert_eq!(stats.main_cache.items as usize, owned["node-a"]);
    assert_eq!(stats.hot_cache.items, 0);
}

#[tokio::test]
async fn when_the_owner_fails_the_key_is_loaded_locally() {
    let cluster = Cluster::new(HotCachePolicy::Never);
    let key = cluster.key_owned_by("node-b", "k");
    cluster.network.set_down("node-b", true);
    let value = cluster.groups["node-a"].get(&key).await.unwrap();
    assert_eq!(value.as_str().unwrap(), format!("{key} by node-a"));
    assert_eq!((cluster.calls("node-a"), cluster.calls("node-b")), (1, 0));
    let stats = cluster.groups["node-a"].stats();
    assert_eq!((stats.peer_errors, stats.local_loads), (1, 1));
    // Loaded locally, the value is kept in node-a's main cache.
    cluster.groups["node-a"].get(&key).await.unwrap();
    assert_eq!(cluster.calls("node-a"), 1);
}

#[tokio::test]
async fn an_owners_loader_error_is_returned_without_a_second_load() {
    let cluster = Cluster::new(HotCachePolicy::Never);
    let key = cluster.key_owned_by("node-c", "fail-");
    let error = cluster.groups["node-a"].get(&key).await.unwrap_err();
    match &error {
        Error::Load { peer, .. } => assert_eq!(peer.as_deref(), Some("node-c")),
        other => panic!("expected a load error from node-c, got {other}"),
    }
    assert!(error.to_string().contains("node-c cannot load"), "{error}");
    assert_eq!((cluster.calls("node-a"), cluster.calls("node-c")), (0, 1));
    assert_eq!(cluster.groups["node-a"].stats().peer_errors, 0);
}

#[tokio::test]
async fn hot_cache_always_mirrors_and_serves_without_a_fetch() {
    let cluster = Cluster::new(HotCachePolicy::Always);
    let key = cluster.key_owned_by("node-b", "k");
    let a = &cluster.groups["node-a"];
    a.get(&key).await.unwrap();
    assert_eq!(a.stats().hot_cache.items, 1);
    let fetches = cluster.network.fetches();
    a.get(&key).await.unwrap();
    assert_eq!(
        cluster.network.fetches(),
        fetches,
        "second get served from the hot cache"
    );
    assert_eq!(a.stats().hot_cache.hits, 1);
}

#[tokio::test]
async fn hot_cache_never_fetches_every_time() {
    let cluster = Cluster::new(HotCachePolicy::Never);
    let key = cluster.key_owned_by("node-b", "k");
    let a = &cluster.groups["node-a"];
    for _ in 0..5 {
        a.get(&key).await.unwrap();
    }
    assert_eq!(cluster.network.fetches(), 5);
    assert_eq!(a.stats().hot_cache.items, 0);
    assert_eq!(
        cluster.calls("node-b"),
        1,
        "the owner loads once and serves from its cache"
    );
}

#[tokio::test]
async fn one_in_ten_mirrors_about_one_fetch_in_ten_as_golang() {
    let cluster = Cluster::new(HotCachePolicy::OneIn(10));
    let a = &cluster.groups["node-a"];
    let mut fetched = 0;
    for i in 0..2000 {
        let key = format!("key-{i}");
        if cluster.ring.owner(&key) != Some("node-a") {
            a.get(&key).await.unwrap();
            fetched += 1;
        }
    }
    let hot = a.stats().hot_cache.items as f64;
    let expected = fetched as f64 / 10.0;
    // Binomial(n≈1300, 0.1): the bounds are more than 6 standard deviations away.
    assert!(
        (expected * 0.5..expected * 1.5).contains(&hot),
        "{hot} hot items for {fetched} fetches"
    );
}

#[tokio::test]
async fn the_default_mirrors_a_fetched_key_at_once_while_the_budget_has_room() {
    assert_eq!(HotCachePolicy::default(), HotCachePolicy::Frequent);
    let cluster = Cluster::new(HotCachePolicy::default());
    let a = &cluster.groups["node-a"];
    let remote: Vec<String> = (0..200)
        .map(|i| format!("key-{i}"))
        .filter(|k| cluster.ring.owner(k) != Some("node-a"))
        .collect();
    for key in &remote {
        a.get(key).await.unwrap();
        a.get(key).await.unwrap();
    }
    let stats = a.stats();
    // One fetch per key: each second get is a hot hit.
    assert_eq!(stats.peer_loads, remote.len() as u64);
    assert_eq!(stats.hot_cache.items, remote.len() as u64);
    assert_eq!(stats.hot_cache.hits, remote.len() as u64);
}

/// Loader that only returns once both nodes' loaders are running at once.
struct Rendezvous {
    node: &'static str,
    barrier: Arc<tokio::sync::Barrier>,
    calls: Arc<AtomicUsize>,
}

impl Loader for Rendezvous {
    async fn load(&self, key: &str) -> Result<Value, LoadError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.barrier.wait().await;
        Ok(Value::from(format!("{key} by {}", self.node)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_with_disagreeing_rings_do_not_forward_or_deadlock() {
    // node-x believes node-y owns every key, and node-y believes node-x does.
    // Both get "k" at once: each fetches from the other. golang/groupcache
    // forwards the served request back, and the two loads wait on each other
    // for ever. Here a served request is never forwarded: each node loads
    // the key for the other (the barrier proves both loads run at once).
    let network = InProcessNetwork::new();
    let x = network.node("node-x", &["node-y"]).unwrap();
    let y = network.node("node-y", &["node-x"]).unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let (cx, cy) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let loader = |node, calls: &Arc<AtomicUsize>| Rendezvous {
        node,
        barrier: barrier.clone(),
        calls: calls.clone(),
    };
    let gx = x.new_group("g", 1 << 20, loader("node-x", &cx)).unwrap();
    let gy = y.new_group("g", 1 << 20, loader("node-y", &cy)).unwrap();
    let both = async { tokio::join!(gx.get("k"), gy.get("k")) };
    let (vx, vy) = tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("the two nodes deadlocked");
    assert_eq!(vx.unwrap().as_str().unwrap(), "k by node-y");
    assert_eq!(vy.unwrap().as_str().unwrap(), "k by node-x");
    assert_eq!(network.fetches(), 2, "no request was forwarded");
    assert_eq!(
        (cx.load(Ordering::SeqCst), cy.load(Ordering::SeqCst)),
        (1, 1)
    );
    assert_eq!(
        (gx.stats().server_requests, gy.stats().server_requests),
        (1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_on_many_nodes_load_each_key_once_cluster_wide() {
    let cluster = Cluster::new(HotCachePolicy::Never);
    let mut tasks = Vec::new();
    for id in PEERS {
        for _ in 0..10 {
            let group = cluster.groups[id].clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..50 {
                    group.get(&format!("key-{i}")).await.unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total: usize = PEERS.iter().map(|id| cluster.calls(id)).sum();
    assert_eq!(
        total, 50,
        "each key loaded exactly once in the whole cluster"
    );
}
