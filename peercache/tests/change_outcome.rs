//! `Error::reached_owner` and `Applied::pending`: a set or remove that did
//! not reach every peer says whether its key's owner applied it (when it
//! did, only non-owners were missed: the change is `Ok`, pending at them),
//! checked against what the owner then serves, in an in-process cluster of
//! three nodes where peers are marked down.

use peercache::in_process::InProcessNetwork;
use peercache::ring::{HashMode, Ring, DEFAULT_REPLICAS};
use peercache::{loader_fn, CacheKind, Error, Group, Node};
use std::sync::Arc;

const PEERS: [&str; 3] = ["a", "b", "c"];

struct Cluster {
    network: Arc<InProcessNetwork>,
    _nodes: Vec<Node>,
    groups: Vec<Group>,
    ring: Ring,
}

/// Three nodes whose group `g` loads `loaded:KEY`.
fn cluster() -> Cluster {
    let network = InProcessNetwork::new();
    let mut nodes = Vec::new();
    let mut groups = Vec::new();
    for id in PEERS {
        let node = network.node(id, &PEERS).unwrap();
        let group = node
            .new_group(
                "g",
                1 << 20,
                loader_fn(|key: String| async move { Ok(format!("loaded:{key}")) }),
            )
            .unwrap();
        nodes.push(node);
        groups.push(group);
    }
    let ring = Ring::with_peers(HashMode::Golang, DEFAULT_REPLICAS, PEERS).unwrap();
    Cluster {
        network,
        _nodes: nodes,
        groups,
        ring,
    }
}

impl Cluster {
    fn group(&self, id: &str) -> &Group {
        &self.groups[PEERS.iter().position(|p| *p == id).unwrap()]
    }

    /// The `n`th key (from 0) whose owner is `owner`.
    fn key_of(&self, owner: &str, n: usize) -> String {
        (0..)
            .map(|i| format!("key-{i}"))
            .filter(|k| self.ring.owner(k) == Some(owner))
            .nth(n)
            .unwrap()
    }

    /// What `id` holds for `key` in its main cache (as the owner), read
    /// with a get only when it is there (a hit).
    async fn owned_value(&self, id: &str, key: &str) -> Option<String> {
        let group = self.group(id);
        if !group.cached_keys(CacheKind::Main).contains(&key.to_owned()) {
            return None;
        }
        let value = group.get(key).await.unwrap();
        Some(value.as_str().unwrap().to_owned())
    }
}

fn failed(error: &Error) -> Vec<(String, bool)> {
    error
        .failed_peers()
        .iter()
        .map(|f| (f.peer.to_string(), f.owner))
        .collect()
}

#[tokio::test]
async fn a_set_with_a_non_owner_down_reached_the_owner_and_is_pending_there() {
    let c = cluster();
    let key = c.key_of("b", 0);
    c.network.set_down("c", true);

    let applied = c.group("a").set(&key, "new", None).await.unwrap();
    assert_eq!(applied.pending(), [Arc::from("c")]);
    assert_eq!(c.group("a").pending_hints()[0].peer, "c");
    // The owner stored it, and a node asking the owner gets it.
    assert_eq!(c.owned_value("b", &key).await.as_deref(), Some("new"));
    assert_eq!(
        c.group("a").get(&key).await.unwrap().as_str().unwrap(),
        "new"
    );
}

#[tokio::test]
async fn a_set_with_the_owner_down_did_not_reach_it() {
    let c = cluster();
    let key = c.key_of("b", 0);
    c.network.set_down("b", true);
    c.network.set_down("c", true);

    let error = c.group("a").set(&key, "new", None).await.unwrap_err();
    let mut failures = failed(&error);
    failures.sort();
    assert_eq!(failures, [("b".to_owned(), true), ("c".to_owned(), false)]);
    assert_eq!(error.reached_owner(), Some(false));
    assert_eq!(c.owned_value("b", &key).await, None);
    c.network.set_down("b", false);
    assert_eq!(
        c.group("a").get(&key).await.unwrap().as_str().unwrap(),
        format!("loaded:{key}"),
        "the owner never stored the value"
    );
}

#[tokio::test]
async fn a_set_whose_owner_is_this_node_always_reaches_it() {
    let c = cluster();
    let key = c.key_of("a", 0);
    c.network.set_down("b", true);

    let applied = c.group("a").set(&key, "new", None).await.unwrap();
    assert_eq!(applied.pending(), [Arc::from("b")]);
    assert_eq!(c.owned_value("a", &key).await.as_deref(), Some("new"));
}

#[tokio::test]
async fn removes_say_whether_every_owner_was_reached() {
    let c = cluster();
    let (of_b, of_c) = (c.key_of("b", 0), c.key_of("c", 0));
    for key in [&of_b, &of_c] {
        c.group("a").get(key).await.unwrap();
    }
    assert!(c.owned_value("b", &of_b).await.is_some());

    // c is down; the key is b's: b dropped it.
    c.network.set_down("c", true);
    let applied = c.group("a").remove(&of_b).await.unwrap();
    assert_eq!(applied.pending(), [Arc::from("c")]);
    assert_eq!(c.owned_value("b", &of_b).await, None);

    // One key of b's and one of c's: c owns one of them and did not drop it.
    c.group("a").get(&of_b).await.unwrap();
    let error = c.group("a").remove_keys([&of_b, &of_c]).await.unwrap_err();
    assert_eq!(failed(&error), [("c".to_owned(), true)]);
    assert_eq!(error.reached_owner(), Some(false));
    assert_eq!(c.owned_value("b", &of_b).await, None);
    assert!(c.owned_value("c", &of_c).await.is_some());
}

#[tokio::test]
async fn other_outcomes_have_no_answer_or_need_none() {
    let c = cluster();
    // A purge has no owner: a peer down is pending.
    c.network.set_down("c", true);
    let applied = c.group("a").purge().await.unwrap();
    assert_eq!(applied.pending(), [Arc::from("c")]);
    // Not a change.
    let error = Error::NotFound {
        group: "g".into(),
        key: "k".into(),
        peer: None,
    };
    assert_eq!(error.reached_owner(), None);
    // A change that reached every peer is Ok: nothing to ask.
    c.network.set_down("c", false);
    c.group("a")
        .set(&c.key_of("b", 0), "v", None)
        .await
        .unwrap();
}
