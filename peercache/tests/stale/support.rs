//! What the origin-protection tests share: a counting, failing, gating
//! origin, bounded polling, and in-process clusters.

use peercache::clock::ManualClock;
use peercache::in_process::InProcessNetwork;
use peercache::ring::{HashMode, Ring, DEFAULT_REPLICAS};
use peercache::{loader_fn, Error, Group, HotCachePolicy, LoadError, Node, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Bound on every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);
pub const TTL: Duration = Duration::from_secs(60);

/// Polls `condition` until it holds, within [`WAIT`].
pub async fn until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
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
pub struct Origin {
    pub calls: AtomicUsize,
    pub down: AtomicBool,
    pub gated: AtomicBool,
    pub gate: Semaphore,
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
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn loader(self: &Arc<Self>) -> impl peercache::Loader {
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

pub fn text(answer: Result<Value, Error>) -> String {
    answer.unwrap().as_str().unwrap().to_owned()
}

/// Three in-process nodes sharing `clock`, each with group "g" over
/// `origin` as `build` makes it; and a key of each owner.
pub fn cluster(
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
pub fn key_of(ring: &Ring, owner: &str, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|key| ring.owner(key) == Some(owner))
        .unwrap()
}
