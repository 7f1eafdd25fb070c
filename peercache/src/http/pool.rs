//! The HTTP peer pool: who owns a key, and the client that reaches them.
//!
//! [`HttpPool`] is the [`PeerPicker`] of an HTTP cluster (Go's `HTTPPool`).
//! Its peer list can be replaced at any time with [`HttpPool::set_peers`]:
//! the new ring is built aside and swapped in atomically (`arc-swap`), so a
//! `pick` never blocks and always sees one whole ring, old or new.
//!
//! The ring holds the *live* members: a peer that fails
//! [`crate::health::HealthPolicy::failures_to_down`] times in a row is taken
//! out (its keys go to the next peers on the ring, so gets stop waiting on
//! it), probed in the background with back-off, and put back
//! [`crate::health::HealthPolicyBuilder::rejoin_delay`] (2 s) after it
//! first answers again: time for the changes it missed to reach it first. Because a ring is rebuilt from the member list in its order, the
//! ring without a peer is exactly the ring every node builds from the list
//! without it: removing a peer whose points collided with another's leaves
//! the other's points in place, and only the removed peer's keys move.
//! [`HttpPool::peer_status`] shows each peer's state.
//!
//! A node recognises itself by string equality of its base URL with a
//! peer's, as Go does: `http://127.0.0.1:8080` and `http://localhost:8080`
//! are different peers to every node, so spell each URL the same everywhere.

pub use error::PoolError;
use error::{check_url, scheme_is};

use super::client::{build_client, PeerClient};
use super::client::{HealthReport, HttpPeer};
use super::options::HttpOptions;
use super::server::PeerService;
use crate::health::{PeerHealth, PeerState, PeerStatus};
use crate::peers::{Peer, PeerPicker};
use crate::ring::{Ring, RingError};
use crate::Node;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// The peers of an HTTP cluster and the ring over them.
///
/// Each node makes one with its own base URL, gives it the list of every
/// node ([`HttpPool::set_peers`]), uses it as its node's picker and serves
/// its [`PeerService`]. A two-node cluster on ephemeral ports of this
/// machine, where each key is loaded by its owner whichever node is asked:
///
/// ```
/// use peercache::http::{serve_with_shutdown, HttpOptions, HttpPool};
/// use peercache::{loader_fn, LoadError, Node};
/// use tokio::net::TcpListener;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listeners = [TcpListener::bind("127.0.0.1:0").await?, TcpListener::bind("127.0.0.1:0").await?];
/// let mut urls = Vec::new();
/// for listener in &listeners {
///     urls.push(format!("http://{}", listener.local_addr()?));
/// }
///
/// let mut nodes = Vec::new();
/// for (listener, url) in listeners.into_iter().zip(&urls) {
///     let pool = HttpPool::new(url, HttpOptions::default())?;
///     pool.set_peers(&urls)?; // every node, this one included
///     let node = Node::with_picker(pool.clone());
///     let me = url.clone();
///     node.new_group("colors", 1 << 20, loader_fn(move |key: String| {
///         let me = me.clone();
///         async move { Ok::<_, LoadError>(format!("{key} loaded by {me}")) }
///     }))?;
///     let service = pool.service(node.clone());
///     tokio::spawn(serve_with_shutdown(listener, service, std::future::pending()));
///     nodes.push((pool, node));
/// }
///
/// let (pool, node) = &nodes[0];
/// let colors = node.group("colors").unwrap();
/// for key in ["red", "green", "blue", "cyan"] {
///     let value = colors.get(key).await?;
///     assert_eq!(value.as_str()?, format!("{key} loaded by {}", pool.owner(key)));
/// }
/// # Ok(())
/// # }
/// ```
pub struct HttpPool {
    self_url: Arc<str>,
    options: HttpOptions,
    client: PeerClient,
    /// What each peer calls when it goes down or comes back: this pool's
    /// `peer_changed`, through a weak reference.
    report: HealthReport,
    /// This pool, for the probers.
    me: Weak<HttpPool>,
    state: ArcSwap<PoolState>,
    /// Serialises writers of `state`; readers never take it. It holds the
    /// peers that answer again but wait out the rejoin delay, each with
    /// the number of its return (a peer that goes down and comes back
    /// meanwhile starts a new wait).
    writer: Mutex<HashMap<Arc<str>, (u64, std::time::Instant)>>,
    /// Numbers the returns of peers.
    returns: std::sync::atomic::AtomicU64,
    /// When this node's view of the cluster last changed.
    changed_at: Mutex<std::time::Instant>,
    /// Whether this node left the cluster (`PeerPicker::leave`): its own
    /// ring no longer holds it.
    left: std::sync::atomic::AtomicBool,
    /// When the pool was made.
    born: std::time::Instant,
}

struct PoolState {
    /// The ring over the members that are up.
    ring: Arc<Ring>,
    /// Rings this one replaced within the peek window, newest first, each
    /// with when it was replaced (`handoff.rs`).
    earlier: Vec<(Arc<Ring>, std::time::Instant)>,
    /// Every member but this node, by base URL.
    peers: HashMap<Arc<str>, Arc<HttpPeer>>,
    /// The members, this node included, in the order given.
    list: Vec<String>,
}

impl std::fmt::Debug for HttpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPool")
            .field("self_url", &self.self_url)
            .field("peers", &self.state.load().list)
            .finish()
    }
}

impl HttpPool {
    /// A pool for the node reached at `self_url` (e.g.
    /// `http://10.0.0.1:8080`), with only itself as a peer until
    /// [`HttpPool::set_peers`] is called.
    pub fn new(self_url: &str, options: HttpOptions) -> Result<Arc<Self>, PoolError> {
        check_url(self_url, options.speaks_https())?;
        let client = build_client(&options);
        let mut ring = Ring::new(options.hash_mode, options.replicas);
        ring.add(self_url)?;
        let state = PoolState {
            ring: Arc::new(ring),
            earlier: Vec::new(),
            peers: HashMap::new(),
            list: vec![self_url.to_owned()],
        };
        Ok(Arc::new_cyclic(|me: &Weak<HttpPool>| HttpPool {
            self_url: Arc::from(self_url),
            options,
            client,
            report: {
                let pool = me.clone();
                Arc::new(move |id: &str, transition| {
                    if let Some(pool) = pool.upgrade() {
                        pool.peer_changed(id, transition);
                    }
                })
            },
            me: me.clone(),
            state: ArcSwap::from_pointee(state),
            writer: Mutex::new(HashMap::new()),
            returns: std::sync::atomic::AtomicU64::new(0),
            changed_at: Mutex::new(std::time::Instant::now()),
            left: std::sync::atomic::AtomicBool::new(false),
            born: std::time::Instant::now(),
        }))
    }

    /// Replaces the peer list: the base URLs of every node in the cluster,
    /// this one included. On error the previous list stays in force.
    ///
    /// Call it again whenever membership changes (or let
    /// [`super::discovery`] do it); URLs must be spelled the same on every
    /// node, without a trailing slash.
    ///
    /// ```
    /// use peercache::http::{HttpOptions, HttpPool, PoolError};
    ///
    /// # fn main() -> Result<(), PoolError> {
    /// let me = "http://10.0.0.1:8080";
    /// let pool = HttpPool::new(me, HttpOptions::default())?;
    /// pool.set_peers([me, "http://10.0.0.2:8080", "http://10.0.0.3:8080"])?;
    /// assert_eq!(pool.peers().len(), 3);
    /// assert!(pool.owner("some key").starts_with("http://10.0.0."));
    ///
    /// // This node must be in the list; the old list stays on error.
    /// let missing = pool.set_peers(["http://10.0.0.2:8080"]);
    /// assert!(matches!(missing, Err(PoolError::SelfMissing { .. })));
    /// assert_eq!(pool.peers().len(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_peers<I, S>(&self, peers: I) -> Result<(), PoolError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let list: Vec<String> = peers.into_iter().map(|p| p.as_ref().to_owned()).collect();
        let https = self.options.speaks_https();
        list.iter().try_for_each(|url| check_url(url, https))?;
        if scheme_is(&self.self_url, "https") {
            if let Some(url) = list.iter().find(|url| scheme_is(url, "http")) {
                return Err(PoolError::Cleartext {
                    url: url.clone(),
                    self_url: self.self_url.to_string(),
                });
            }
        }
        if !list.iter().any(|p| **p == *self.self_url) {
            return Err(PoolError::SelfMissing {
                self_url: self.self_url.to_string(),
                peers: list,
            });
        }
        let rejoining = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.state.load();
        let mut seen = std::collections::HashSet::with_capacity(list.len());
        let mut peers = HashMap::with_capacity(list.len());
        for url in &list {
            if !seen.insert(url.as_str()) {
                return Err(PoolError::Duplicate { url: url.clone() });
            }
            if **url == *self.self_url {
                continue;
            }
            let peer = match old.peers.get_key_value(url.as_str()) {
                Some((id, peer)) => (Arc::clone(id), Arc::clone(peer)),
                None => {
                    let peer = Arc::new(HttpPeer::new(
                        url,
                        &self.self_url,
                        &self.options,
                        self.client.clone(),
                        Arc::new(PeerHealth::new(self.options.health)),
                        Arc::clone(&self.report),
                    ));
                    (Arc::from(url.as_str()), peer)
                }
            };
            peers.insert(peer.0, peer.1);
        }
        let ring = self.live_ring(&list, &peers, &rejoining)?;
        let down: Vec<&str> = peers
            .iter()
            .filter(|(_, p)| !p.health().is_up())
            .map(|(id, _)| &**id)
            .collect();
        if old.list != list {
            self.mark_changed();
        }
        tracing::info!(self_url = %self.self_url, peers = ?list, ?down, "peer list set");
        let earlier = self.earlier_rings(&old, &ring, &list, old.list != list)?;
        self.state.store(Arc::new(PoolState {
            ring: Arc::new(ring),
            earlier,
            peers,
            list,
        }));
        Ok(())
    }

    /// The ring over the members that are up and not waiting to rejoin,
    /// in list order.
    fn live_ring(
        &self,
        list: &[String],
        peers: &HashMap<Arc<str>, Arc<HttpPeer>>,
        rejoining: &HashMap<Arc<str>, (u64, std::time::Instant)>,
    ) -> Result<Ring, RingError> {
        let mut ring = Ring::new(self.options.hash_mode, self.options.replicas);
        for url in list {
            // A rejoin whose timer was lost (its runtime shut down) ends at
            // its deadline all the same.
            let waiting = rejoining
                .get(url.as_str())
                .is_some_and(|&(_, until)| until > std::time::Instant::now());
            let live = match peers.get(url.as_str()) {
                Some(peer) => peer.health().is_up() && !waiting,
                None => !self.left.load(std::sync::atomic::Ordering::Relaxed),
            };
            if live {
                ring.add(url)?;
            }
        }
        Ok(ring)
    }

    /// Each member's state, in list order: this node, then up, down or
    /// rejoining peers.
    ///
    /// ```
    /// use peercache::health::PeerState;
    /// use peercache::http::{HttpOptions, HttpPool};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let me = "http://10.0.0.1:8080";
    /// let pool = HttpPool::new(me, HttpOptions::default())?;
    /// pool.set_peers([me, "http://10.0.0.2:8080"])?;
    /// let states: Vec<PeerState> = pool.peer_status().iter().map(|s| s.state).collect();
    /// assert_eq!(states, [PeerState::Myself, PeerState::Up]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn peer_status(&self) -> Vec<PeerStatus> {
        let rejoining: Vec<Arc<str>> = {
            let rejoining = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            rejoining.keys().cloned().collect()
        };
        let state = self.state.load();
        state
            .list
            .iter()
            .map(|url| match state.peers.get(url.as_str()) {
                Some(peer) => {
                    let mut status = peer.health().status(url);
                    if status.state == PeerState::Up && rejoining.iter().any(|r| **r == **url) {
                        status.state = PeerState::Rejoining;
                    }
                    status
                }
                None => PeerStatus {
                    peer: url.clone(),
                    state: PeerState::Myself,
                    consecutive_failures: 0,
                    failures: 0,
                    times_down: 0,
                    down_for_ms: None,
                    last_error: None,
                },
            })
            .collect()
    }

    fn is_member(&self, id: &str) -> bool {
        self.state.load().peers.contains_key(id)
    }

    /// The current peer list, this node included.
    pub fn peers(&self) -> Vec<String> {
        self.state.load().list.clone()
    }

    /// This node's base URL.
    pub fn self_url(&self) -> &str {
        &self.self_url
    }

    /// The base URL of the peer that owns `key` (possibly this node).
    pub fn owner(&self, key: &str) -> String {
        let state = self.state.load();
        state.ring.owner(key).unwrap_or(&self.self_url).to_owned()
    }

    /// Each peer's share of the key space, from the current ring.
    pub fn shares(&self) -> Vec<(String, f64)> {
        let state = self.state.load();
        let mut shares: Vec<(String, f64)> = state
            .ring
            .shares()
            .into_iter()
            .map(|(peer, share)| (peer.to_owned(), share))
            .collect();
        shares.sort_by(|a, b| a.0.cmp(&b.0));
        shares
    }

    /// The pool's options.
    pub fn options(&self) -> &HttpOptions {
        &self.options
    }

    /// The peer endpoint of `node`, with every setting of this pool (base
    /// path, `+` reading, limits, cluster secret, this node's URL): mount it
    /// at [`HttpPool::route_path`], where the other nodes will ask.
    pub fn service(&self, node: Node) -> PeerService {
        PeerService::for_node_at(node, &self.options, &self.self_url)
    }

    /// The route to mount [`HttpPool::service`] at in axum
    /// (`<base path>{*rest}`, `/_groupcache/{*rest}` by default), so the
    /// mount follows the pool's base path:
    ///
    /// ```
    /// use peercache::http::{HttpOptions, HttpPool};
    /// use peercache::Node;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = HttpPool::new("http://10.0.0.1:8080", HttpOptions::default())?;
    /// let node = Node::with_picker(pool.clone());
    /// let app: axum::Router = axum::Router::new()
    ///     .route("/healthz", axum::routing::get(|| async { "ok" }))
    ///     .route_service(&pool.route_path(), pool.service(node));
    /// assert_eq!(pool.route_path(), "/_groupcache/{*rest}");
    /// # let _ = app;
    /// # Ok(())
    /// # }
    /// ```
    pub fn route_path(&self) -> String {
        format!("{}{{*rest}}", self.options.base_path)
    }
}

impl PeerPicker for HttpPool {
    fn pick(&self, key: &str) -> Option<Arc<dyn Peer>> {
        let state = self.state.load();
        let owner = state.ring.owner(key)?;
        let peer = state.peers.get(owner)?;
        Some(Arc::clone(peer) as Arc<dyn Peer>)
    }

    fn others(&self) -> Vec<Arc<dyn Peer>> {
        let state = self.state.load();
        state
            .list
            .iter()
            .filter_map(|url| state.peers.get(url.as_str()))
            .map(|peer| Arc::clone(peer) as Arc<dyn Peer>)
            .collect()
    }

    fn previous_owner(&self, key: &str) -> Option<Arc<dyn Peer>> {
        self.peek_target(key)
    }

    fn leave(&self) -> crate::BoxFuture<'_, ()> {
        Box::pin(self.leave_cluster())
    }

    fn peer_left(&self, id: &str) -> bool {
        self.member_left(id)
    }

    /// Within twice the time other nodes may take to see the same change
    /// (their slowest probe plus the rejoin delay) of the last change of
    /// this node's ring or member list. (A peer down for long is no reason:
    /// every node has long seen it so.)
    fn settling(&self) -> bool {
        let health = self.options.health;
        let window = 2 * (health.probe_backoff_max() + health.rejoin_delay());
        let changed_at = *self
            .changed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        changed_at.elapsed() < window
    }
}

mod error;
mod handoff;
mod health;

#[cfg(test)]
mod tests;
