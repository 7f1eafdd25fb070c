//! An in-process network of nodes: a complete [`PeerPicker`] / [`Peer`]
//! transport without sockets.
//!
//! Every node of an [`InProcessNetwork`] picks owners on its own [`Ring`], and a
//! fetch calls the owner's [`crate::ServedGroup::get`] directly. Peers can be
//! marked down to simulate a failed owner. Use it to test code built on
//! peercache, or to run several nodes in one process; the crate's own tests
//! use it to check the cluster behaviours of groupcache without a network.
//!
//! A get on any node is loaded once, by the key's owner:
//!
//! ```
//! use peercache::in_process::InProcessNetwork;
//! use peercache::{loader_fn, LoadError};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let peers = ["node-a", "node-b", "node-c"];
//! let network = InProcessNetwork::new();
//! let mut nodes = Vec::new();
//! for id in peers {
//!     let node = network.node(id, &peers)?; // every ring holds all three
//!     let loader = loader_fn(move |key: String| async move { Ok::<_, LoadError>(format!("{key} from {id}")) });
//!     node.new_group("colors", 1 << 20, loader)?;
//!     nodes.push(node); // the network holds nodes weakly: keep them
//! }
//!
//! // The ring puts "blue" on node-b, whichever node is asked.
//! for node in &nodes {
//!     let blue = node.group("colors").unwrap().get("blue").await?;
//!     assert_eq!(blue.as_str()?, "blue from node-b");
//! }
//! assert_eq!(network.fetches(), 2); // node-a and node-c asked node-b
//!
//! // An unreachable owner: the asking node loads the key itself.
//! network.set_down("node-a", true);
//! let red = nodes[1].group("colors").unwrap().get("red").await?;
//! assert_eq!(red.as_str()?, "red from node-b");
//! # Ok(())
//! # }
//! ```

use crate::loader::{BoxFuture, LoadError};
use crate::node::{Node, WeakNode};
use crate::peers::{FetchError, Peer, PeerError, PeerPicker};
use crate::ring::{HashMode, Ring, RingError, DEFAULT_REPLICAS};
use crate::{Error, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// A set of in-process nodes that can fetch from one another; see the
/// [module documentation](self) for a cluster.
///
/// The network refers to its nodes weakly: a node dropped (every clone of
/// its [`Node`]) is gone from the network, and fetches from it fail as
/// from an unreachable peer, even while its groups are still held.
#[derive(Default)]
pub struct InProcessNetwork {
    nodes: RwLock<HashMap<String, WeakNode>>,
    down: RwLock<HashSet<String>>,
    fetches: AtomicU64,
}

impl InProcessNetwork {
    /// An empty network.
    pub fn new() -> Arc<Self> {
        Arc::new(InProcessNetwork::default())
    }

    /// Creates the node `id`, whose ring holds `peers` (golang hashing, 50
    /// replicas), and joins it to the network. `id` should be one of `peers`
    /// for the node to own any keys.
    pub fn node(self: &Arc<Self>, id: &str, peers: &[&str]) -> Result<Node, RingError> {
        let ring = Ring::with_peers(HashMode::Golang, DEFAULT_REPLICAS, peers)?;
        Ok(self.node_with_ring(id, ring))
    }

    /// Creates the node `id` with a ring of your making and joins it.
    pub fn node_with_ring(self: &Arc<Self>, id: &str, ring: Ring) -> Node {
        let peers = ring
            .peers()
            .filter(|p| *p != id)
            .map(|p| {
                let peer: Arc<dyn Peer> = Arc::new(InProcessPeer {
                    id: p.to_owned(),
                    network: Arc::clone(self),
                });
                (p.to_owned(), peer)
            })
            .collect();
        let picker = InProcessPicker {
            self_id: id.to_owned(),
            ring,
            peers,
        };
        let node = Node::with_picker(Arc::new(picker));
        self.nodes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), node.downgrade());
        node
    }

    /// Marks a node as unreachable (`true`) or reachable again (`false`):
    /// fetches from an unreachable node fail as a transport error would.
    pub fn set_down(&self, id: &str, down: bool) {
        let mut set = self.down.write().unwrap_or_else(PoisonError::into_inner);
        if down {
            set.insert(id.to_owned());
        } else {
            set.remove(id);
        }
    }

    /// Number of fetches attempted between nodes so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn reach(&self, id: &str) -> Result<Node, FetchError> {
        if self
            .down
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
        {
            return Err(FetchError::Unavailable(format!("peer {id} is marked down")));
        }
        self.nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .and_then(WeakNode::upgrade)
            .ok_or_else(|| FetchError::Unavailable(format!("peer {id} is not on the network")))
    }
}

struct InProcessPicker {
    self_id: String,
    ring: Ring,
    peers: HashMap<String, Arc<dyn Peer>>,
}

impl PeerPicker for InProcessPicker {
    fn pick(&self, key: &str) -> Option<Arc<dyn Peer>> {
        match self.ring.owner(key) {
            Some(owner) if owner != self.self_id => self.peers.get(owner).cloned(),
            _ => None,
        }
    }

    fn others(&self) -> Vec<Arc<dyn Peer>> {
        self.peers.values().cloned().collect()
    }
}

struct InProcessPeer {
    id: String,
    network: Arc<InProcessNetwork>,
}

impl Peer for InProcessPeer {
    fn id(&self) -> &str {
        &self.id
    }

    fn fetch<'a>(
        &'a self,
        group: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Value, FetchError>> {
        Box::pin(async move {
            self.network.fetches.fetch_add(1, Ordering::Relaxed);
            let node = self.network.reach(&self.id)?;
            let group = node.served_group(group).ok_or_else(|| {
                FetchError::Unavailable(format!("peer {} has no group {group:?}", self.id))
            })?;
            let answer = group.get(key).await;
            // A not-found the owner caches: it says until when, as over HTTP.
            if let (Err(Error::NotFound { .. }), Some(until)) =
                (&answer, group.not_found_until(key))
            {
                return Err(FetchError::not_found_until(until));
            }
            answer.map_err(|error| match error {
                Error::NotFound { .. } => FetchError::Load(LoadError::NotFound),
                Error::Load { source, .. } => FetchError::Load(source),
                Error::Panicked { message, .. } => FetchError::Load(LoadError::msg(message)),
                // The owner's loads are at their cap, or its origin breaker
                // is open: its answer, as over HTTP (the asker must not
                // load the key itself).
                error @ (Error::Overloaded { .. } | Error::OriginDown { .. }) => {
                    FetchError::Load(LoadError::msg(error.to_string()))
                }
                other => FetchError::Unavailable(other.to_string()),
            })
        })
    }

    fn remove<'a>(
        &'a self,
        group: &'a str,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<(), PeerError>> {
        Box::pin(async move {
            self.group_at(group)?.remove(keys);
            Ok(())
        })
    }

    fn set<'a>(
        &'a self,
        group: &'a str,
        key: &'a str,
        value: &'a Value,
    ) -> BoxFuture<'a, Result<(), PeerError>> {
        Box::pin(async move {
            self.group_at(group)?.set(key, value.clone());
            Ok(())
        })
    }

    fn purge<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<(), PeerError>> {
        Box::pin(async move {
            self.group_at(group)?.purge();
            Ok(())
        })
    }

    fn drop_all_copies<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<(), PeerError>> {
        Box::pin(async move {
            self.group_at(group)?.drop_all_copies();
            Ok(())
        })
    }

    fn drop_copies<'a>(
        &'a self,
        group: &'a str,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<(), PeerError>> {
        Box::pin(async move {
            self.group_at(group)?.drop_copies(keys);
            Ok(())
        })
    }
}

impl InProcessPeer {
    fn group_at(&self, group: &str) -> Result<crate::ServedGroup, PeerError> {
        let node = self
            .network
            .reach(&self.id)
            .map_err(|e| PeerError::unreachable(e.to_string()))?;
        node.served_group(group)
            .ok_or_else(|| PeerError::refused(format!("peer {} has no group {group:?}", self.id)))
    }
}
