//! [`GroupBuilder`]: a new group's settings, each with its default, checked
//! when the group is built. Apart from `node.rs` because it is most of a
//! node's surface (every setting, with its example), where `Node` itself
//! is a registry.

use super::{check_group_name, Node, DEFAULT_CACHE_BYTES};
use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::group::{Admission, BreakerSettings, Group, HotCachePolicy, Settings, Stale};

mod changes;
mod protection;
use crate::group::HintLimits;
use crate::loader::Loader;
use crate::trace::KeyInTraces;
pub use changes::{DEFAULT_CHANGE_TIMEOUT, DEFAULT_HOT_MAX_AGE};
use std::fmt;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

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
///     .max_concurrent_loads(16, Duration::from_secs(1)) // default: no cap
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
    admission: Option<Admission>,
    breaker: Option<BreakerSettings>,
    stale: Stale,
    key_in_traces: KeyInTraces,
    clock: Option<Arc<dyn Clock>>,
    change_timeout: Duration,
    hint_limits: HintLimits,
    hot_max_age: Duration,
}

impl<'n> GroupBuilder<'n> {
    /// Every setting at its default.
    pub(super) fn new(node: &'n Node, name: &str) -> Self {
        GroupBuilder {
            node,
            name: name.to_owned(),
            cache_bytes: DEFAULT_CACHE_BYTES,
            hot_cache: None,
            ttl: None,
            load_timeout: None,
            admission: None,
            breaker: None,
            stale: Stale::default(),
            key_in_traces: KeyInTraces::default(),
            clock: None,
            change_timeout: DEFAULT_CHANGE_TIMEOUT,
            hint_limits: HintLimits::default(),
            hot_max_age: DEFAULT_HOT_MAX_AGE,
        }
    }
}

impl fmt::Debug for GroupBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupBuilder")
            .field("name", &self.name)
            .field("cache_bytes", &self.cache_bytes)
            .field("hot_cache", &self.hot_cache)
            .field("ttl", &self.ttl)
            .field("load_timeout", &self.load_timeout)
            .field("admission", &self.admission)
            .field("breaker", &self.breaker)
            .field("stale", &self.stale)
            .field("key_in_traces", &self.key_in_traces)
            .field("custom_clock", &self.clock.is_some())
            .field("change_timeout", &self.change_timeout)
            .field("hint_limits", &self.hint_limits)
            .field("hot_max_age", &self.hot_max_age)
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
        if self.change_timeout.is_zero() {
            return Err(Error::InvalidSetting {
                group: self.name,
                setting: "change_timeout",
                reason: "it must be greater than zero",
            });
        }
        if self
            .admission
            .is_some_and(|a| a.limit == 0 || a.limit > tokio::sync::Semaphore::MAX_PERMITS)
        {
            return Err(Error::InvalidSetting {
                group: self.name,
                setting: "max_concurrent_loads",
                reason:
                    "the limit must be at least 1 and at most 2^61 - 1 (leave it unset for no cap)",
            });
        }
        if self
            .breaker
            .is_some_and(|b| b.failures == 0 || b.cool_down.is_zero())
        {
            return Err(Error::InvalidSetting {
                group: self.name,
                setting: "origin_breaker",
                reason: "failures and cool_down must be at least 1 and greater than zero (leave it unset for no breaker)",
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
            admission: self.admission,
            breaker: self.breaker,
            stale: self.stale,
            key_in_traces: self.key_in_traces,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            change_timeout: self.change_timeout,
            hint_limits: self.hint_limits,
            hot_max_age: self.hot_max_age,
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
