//! A node: this process's groups and its way to reach peers.
//!
//! golang/groupcache keeps groups and the peer picker in globals. Here a
//! [`Node`] owns them, so one process can run several independent nodes (the
//! tests run whole clusters in one process) and nothing is registered behind
//! the user's back.

use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::group::{Group, HotCachePolicy, Settings};
use crate::loader::Loader;
use crate::peers::PeerPicker;
use crate::stats::GroupStats;
use crate::trace::KeyInTraces;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

/// Default byte budget of a group made with [`Node::group_builder`]: 64 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// This process's member of a cluster: its groups and its peer picker.
/// Cheap to clone: clones are the same node.
///
/// A node made with [`Node::new`] has no peers and loads every key itself;
/// give it a [`PeerPicker`] with [`Node::with_picker`] to join a cluster.
/// Group names are unique per node, and a group is found again by name:
///
/// ```
/// use peercache::{loader_fn, Error, LoadError, Node};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peercache::Error> {
/// let node = Node::new();
/// let loader = loader_fn(|key: String| async move { Ok::<_, LoadError>(key.len().to_string()) });
/// node.new_group("lengths", 1 << 20, loader)?;
///
/// // Elsewhere in the program: look the group up by name.
/// let lengths = node.group("lengths").expect("created above");
/// assert_eq!(lengths.get("hello").await?.as_str().unwrap(), "5");
///
/// // A second group with the same name is refused.
/// let again = node.new_group("lengths", 1 << 20, loader_fn(|_: String| async { Ok("") }));
/// assert!(matches!(again, Err(Error::DuplicateGroup { .. })));
///
/// assert_eq!(node.groups().len(), 1);
/// assert_eq!(node.stats()[0].name, "lengths");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Node {
    inner: Arc<NodeInner>,
}

#[derive(Default)]
struct NodeInner {
    picker: Option<Arc<dyn PeerPicker>>,
    groups: RwLock<HashMap<String, Group>>,
    /// The hot-cache policy of groups that do not set their own.
    hot_cache: Mutex<HotCachePolicy>,
}

/// A non-owning handle on a [`Node`] (used by transports that must not keep
/// the node alive).
#[derive(Clone)]
pub(crate) struct WeakNode(Weak<NodeInner>);

impl WeakNode {
    pub(crate) fn upgrade(&self) -> Option<Node> {
        self.0.upgrade().map(|inner| Node { inner })
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<String> = self.read_groups().keys().cloned().collect();
        names.sort();
        f.debug_struct("Node")
            .field("groups", &names)
            .field("has_peers", &self.inner.picker.is_some())
            .finish()
    }
}

impl Node {
    /// A node without peers: every key is loaded here.
    pub fn new() -> Self {
        Node::default()
    }

    /// A node whose groups find the owner of a key with `picker`.
    ///
    /// The picker is a transport: an [`crate::http::HttpPool`] for an HTTP
    /// cluster, or an [`crate::in_process::InProcessNetwork`] node (which
    /// calls this for you).
    ///
    /// ```
    /// use peercache::http::{HttpOptions, HttpPool};
    /// use peercache::Node;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let me = "http://10.0.0.1:8080";
    /// let pool = HttpPool::new(me, HttpOptions::default())?;
    /// pool.set_peers([me, "http://10.0.0.2:8080"])?;
    /// let node = Node::with_picker(pool.clone()); // Arc<HttpPool> coerces to Arc<dyn PeerPicker>
    /// # let _ = node;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_picker(picker: Arc<dyn PeerPicker>) -> Self {
        Node {
            inner: Arc::new(NodeInner {
                picker: Some(picker),
                ..NodeInner::default()
            }),
        }
    }

    /// Creates a group with a byte budget (0 disables caching) and the
    /// default options. Fails if the name is taken or invalid.
    ///
    /// Use [`Node::group_builder`] for the other options (time-to-live,
    /// hot cache, load timeout, ...).
    ///
    /// ```
    /// use peercache::{loader_fn, Error, Node};
    ///
    /// let node = Node::new();
    /// let pages = node.new_group("pages", 64 << 20, loader_fn(|key: String| async move {
    ///     Ok(format!("<h1>{key}</h1>"))
    /// }));
    /// assert!(pages.is_ok());
    ///
    /// // Names travel in peer request paths: no '/', not empty.
    /// let bad = node.new_group("a/b", 1 << 20, loader_fn(|_: String| async { Ok("") }));
    /// assert!(matches!(bad, Err(Error::InvalidGroupName { .. })));
    /// ```
    pub fn new_group(
        &self,
        name: &str,
        cache_bytes: u64,
        loader: impl Loader,
    ) -> Result<Group, Error> {
        self.group_builder(name)
            .cache_bytes(cache_bytes)
            .build(loader)
    }

    /// Starts building a group with options; see [`GroupBuilder`].
    ///
    /// ```
    /// use peercache::{loader_fn, Node};
    /// use std::time::Duration;
    ///
    /// # fn main() -> Result<(), peercache::Error> {
    /// let node = Node::new();
    /// let sessions = node
    ///     .group_builder("sessions")
    ///     .cache_bytes(16 << 20)
    ///     .ttl(Duration::from_secs(300))
    ///     .build(loader_fn(|key: String| async move { Ok(format!("session {key}")) }))?;
    /// assert_eq!(sessions.ttl(), Some(Duration::from_secs(300)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn group_builder(&self, name: &str) -> GroupBuilder<'_> {
        GroupBuilder {
            node: self,
            name: name.to_owned(),
            cache_bytes: DEFAULT_CACHE_BYTES,
            hot_cache: None,
            ttl: None,
            load_timeout: None,
            key_in_traces: KeyInTraces::default(),
            clock: None,
        }
    }

    /// The group with this name, if it exists.
    pub fn group(&self, name: &str) -> Option<Group> {
        self.read_groups().get(name).cloned()
    }

    /// The peer-facing side of the group `name`, for a transport answering
    /// other peers' requests ([`crate::ServedGroup`]); applications use
    /// [`Node::group`].
    pub fn served_group(&self, name: &str) -> Option<crate::ServedGroup> {
        self.read_groups().get(name).map(crate::ServedGroup::of)
    }

    /// The hot-cache policy of this node's groups that do not set their own
    /// ([`crate::GroupBuilder::hot_cache`]), for groups built from now on;
    /// [`HotCachePolicy::Frequent`] unless changed. mailgun/groupcache
    /// mirrors every fetch (`Always`), golang/groupcache one in ten
    /// (`OneIn(10)`).
    ///
    /// ```
    /// use peercache::{loader_fn, HotCachePolicy, Node};
    ///
    /// let node = Node::new();
    /// node.set_hot_cache_default(HotCachePolicy::Always);
    /// let group = node.new_group("g", 1 << 20, loader_fn(|k: String| async move { Ok(k) })).unwrap();
    /// assert_eq!(group.hot_cache_policy(), HotCachePolicy::Always);
    /// ```
    pub fn set_hot_cache_default(&self, policy: HotCachePolicy) {
        *self
            .inner
            .hot_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = policy;
    }

    /// The hot-cache policy groups built now take unless they set their own.
    pub fn hot_cache_default(&self) -> HotCachePolicy {
        *self
            .inner
            .hot_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every group, sorted by name.
    pub fn groups(&self) -> Vec<Group> {
        let mut groups: Vec<Group> = self.read_groups().values().cloned().collect();
        groups.sort_by(|a, b| a.name().cmp(b.name()));
        groups
    }

    /// Stats of every group, sorted by name.
    pub fn stats(&self) -> Vec<GroupStats> {
        self.groups().iter().map(Group::stats).collect()
    }

    pub(crate) fn downgrade(&self) -> WeakNode {
        WeakNode(Arc::downgrade(&self.inner))
    }

    fn read_groups(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Group>> {
        // Nothing panics while the map is locked; a poisoned lock would still
        // guard a consistent map.
        self.inner
            .groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Options of a new group; made by [`Node::group_builder`].
///
/// Every option has a default, so set only what you need, then call
/// [`GroupBuilder::build`] with the loader:
///
/// ```
/// use peercache::clock::ManualClock;
/// use peercache::{loader_fn, HotCachePolicy, KeyInTraces, Node};
/// use std::time::Duration;
///
/// # fn main() -> Result<(), peercache::Error> {
/// let node = Node::new();
/// let users = node
///     .group_builder("users")
///     .cache_bytes(32 << 20)                   // default 64 MiB, shared by main and hot caches
///     .hot_cache(HotCachePolicy::Always)       // default: the node's (Frequent)
///     .ttl(Duration::from_secs(60))            // default: values never expire
///     .load_timeout(Duration::from_secs(2))    // default: no limit
///     .key_in_traces(KeyInTraces::Hashed)      // default: keys as they are
///     .clock(ManualClock::starting_now())      // default: the system clock
///     .build(loader_fn(|id: String| async move { Ok(format!("user {id}")) }))?;
///
/// assert_eq!(users.name(), "users");
/// assert_eq!(users.cache_bytes(), 32 << 20);
/// assert_eq!(users.hot_cache_policy(), HotCachePolicy::Always);
/// # Ok(())
/// # }
/// ```
#[must_use = "a GroupBuilder does nothing until build() is called"]
pub struct GroupBuilder<'n> {
    node: &'n Node,
    name: String,
    cache_bytes: u64,
    hot_cache: Option<HotCachePolicy>,
    ttl: Option<Duration>,
    load_timeout: Option<Duration>,
    key_in_traces: KeyInTraces,
    clock: Option<Arc<dyn Clock>>,
}

impl fmt::Debug for GroupBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupBuilder")
            .field("name", &self.name)
            .field("cache_bytes", &self.cache_bytes)
            .field("hot_cache", &self.hot_cache)
            .field("ttl", &self.ttl)
            .field("load_timeout", &self.load_timeout)
            .field("key_in_traces", &self.key_in_traces)
            .field("custom_clock", &self.clock.is_some())
            .finish()
    }
}

impl GroupBuilder<'_> {
    /// The byte budget shared by the main and hot caches (default 64 MiB).
    /// An entry costs `len(key) + len(value)`; 0 disables caching; a value
    /// that alone costs more than the budget is returned but not cached.
    pub fn cache_bytes(mut self, cache_bytes: u64) -> Self {
        self.cache_bytes = cache_bytes;
        self
    }

    /// When values fetched from peers are mirrored in the hot cache
    /// ([`HotCachePolicy`]). Default: the node's
    /// ([`Node::set_hot_cache_default`]).
    pub fn hot_cache(mut self, policy: HotCachePolicy) -> Self {
        self.hot_cache = Some(policy);
        self
    }

    /// A default time-to-live: a value loaded here (or set from here)
    /// without an expiry of its own expires this long after it was loaded.
    /// Values with their own expiry ([`crate::Value::with_expiry`]) keep it.
    /// Default: none, values live until evicted or removed.
    ///
    /// Expiry is read from the group's [`clock`](GroupBuilder::clock), so a
    /// test moves a [`crate::clock::ManualClock`] instead of sleeping:
    ///
    /// ```
    /// use peercache::clock::ManualClock;
    /// use peercache::{loader_fn, LoadError, Node};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peercache::Error> {
    /// let loads = Arc::new(AtomicU32::new(0));
    /// let counted = Arc::clone(&loads);
    /// let clock = ManualClock::starting_now();
    /// let quotes = Node::new()
    ///     .group_builder("quotes")
    ///     .ttl(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build(loader_fn(move |_key: String| {
    ///         let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
    ///         async move { Ok::<_, LoadError>(format!("quote #{n}")) }
    ///     }))?;
    ///
    /// assert_eq!(quotes.get("ACME").await?.as_str().unwrap(), "quote #1");
    /// clock.advance(Duration::from_secs(59));
    /// assert_eq!(quotes.get("ACME").await?.as_str().unwrap(), "quote #1"); // cached
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(quotes.get("ACME").await?.as_str().unwrap(), "quote #2"); // expired: loaded again
    /// assert_eq!(loads.load(Ordering::SeqCst), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The longest a load by this node's loader may take (default: no
    /// limit). A load still running after `timeout` is cancelled (the loader's
    /// future is dropped) and every waiter gets [`Error::LoadTimeout`]; the
    /// key is loadable again at once and other keys are not affected.
    ///
    /// Without a timeout a hung loader stalls only the gets of its own key.
    /// Keep it below the peers' request timeout
    /// ([`crate::http::HttpOptions::request_timeout`], 5 s by default), so an
    /// asking peer gets this node's error rather than giving up and loading
    /// the key itself. A zero timeout is rejected by [`GroupBuilder::build`].
    /// The timeout needs tokio's time driver (`#[tokio::main]` and
    /// `Runtime::new` enable it; a hand-built runtime needs `enable_time`):
    /// without it every load of the group fails with [`Error::Panicked`].
    ///
    /// ```
    /// use peercache::{loader_fn, Error, LoadError, Node};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peercache::Error> {
    /// let slow = Node::new()
    ///     .group_builder("slow")
    ///     .load_timeout(Duration::from_millis(20))
    ///     .build(loader_fn(|_key: String| async {
    ///         std::future::pending::<()>().await; // a source that never answers
    ///         Ok::<_, LoadError>("unreachable")
    ///     }))?;
    ///
    /// match slow.get("k").await {
    ///     Err(Error::LoadTimeout { timeout, .. }) => assert_eq!(timeout, Duration::from_millis(20)),
    ///     other => panic!("expected a timeout, got {other:?}"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn load_timeout(mut self, timeout: Duration) -> Self {
        self.load_timeout = Some(timeout);
        self
    }

    /// How keys appear in this group's tracing spans ([`crate::trace`]):
    /// as they are (the default), hashed, or not at all.
    ///
    /// ```
    /// use peercache::{loader_fn, KeyInTraces, Node};
    ///
    /// # fn main() -> Result<(), peercache::Error> {
    /// // Keys are e-mail addresses: keep them out of the traces.
    /// let node = Node::new();
    /// let accounts = node
    ///     .group_builder("accounts")
    ///     .key_in_traces(KeyInTraces::Hidden)
    ///     .build(loader_fn(|email: String| async move { Ok(format!("account of {email}")) }))?;
    /// # let _ = accounts;
    /// # Ok(())
    /// # }
    /// ```
    pub fn key_in_traces(mut self, how: KeyInTraces) -> Self {
        self.key_in_traces = how;
        self
    }

    /// The clock that decides expiry (default: the system clock). Tests pass
    /// a [`crate::clock::ManualClock`] to move time without sleeping.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Creates the group with this loader and registers it on the node.
    /// Inside a tokio runtime this also starts the group's expiry sweeper.
    pub fn build(self, loader: impl Loader) -> Result<Group, Error> {
        check_group_name(&self.name)?;
        if self.load_timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::InvalidSetting {
                group: self.name,
                setting: "load_timeout",
                reason: "it must be greater than zero (leave it unset for no limit)",
            });
        }
        let mut groups = self
            .node
            .inner
            .groups
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if groups.contains_key(&self.name) {
            return Err(Error::DuplicateGroup { name: self.name });
        }
        let hot_cache = self
            .hot_cache
            .unwrap_or_else(|| self.node.hot_cache_default());
        let settings = Settings {
            cache_bytes: self.cache_bytes,
            hot_cache,
            ttl: self.ttl,
            load_timeout: self.load_timeout,
            key_in_traces: self.key_in_traces,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
        };
        let group = Group::new(
            &self.name,
            settings,
            Box::new(loader),
            self.node.inner.picker.clone(),
        );
        groups.insert(self.name, group.clone());
        Ok(group)
    }
}

/// Longest group name accepted; it travels in every peer request's path.
pub const MAX_GROUP_NAME_LEN: usize = 256;

fn check_group_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "a group name must not be empty"
    } else if name.contains('/') {
        "a group name must not contain '/': peers split the request path at the first '/' after the group"
    } else if name.len() > MAX_GROUP_NAME_LEN {
        "a group name must be at most 256 bytes"
    } else if name.chars().any(char::is_control) {
        "a group name must not contain control characters"
    } else {
        return Ok(());
    };
    Err(Error::InvalidGroupName {
        name: name.to_owned(),
        reason,
    })
}
