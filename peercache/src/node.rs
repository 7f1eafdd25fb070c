//! A node: this process's groups and its way to reach peers.
//!
//! golang/groupcache keeps groups and the peer picker in globals. Here a
//! [`Node`] owns them, so one process can run several independent nodes (the
//! tests run whole clusters in one process) and nothing is registered behind
//! the user's back.

use crate::error::Error;
use crate::group::{Group, HotCachePolicy};
use crate::loader::Loader;
use crate::peers::PeerPicker;
use crate::stats::GroupStats;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};

mod builder;
mod leave;

pub use builder::{GroupBuilder, DEFAULT_CHANGE_TIMEOUT, DEFAULT_HOT_MAX_AGE};
pub use leave::{Handoff, LeaveReport};

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
    /// Whether [`Node::leave`] was called.
    leaving: std::sync::atomic::AtomicBool,
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
        GroupBuilder::new(self, name)
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
