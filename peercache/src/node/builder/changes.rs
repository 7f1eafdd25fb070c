//! The settings of changes that miss a peer: how long a change waits for a
//! peer that does not own its keys, how many changes are kept for a peer
//! that did not answer, and how long a hot copy may be served without
//! asking its owner again. Apart from `builder.rs` for the room their
//! examples take.

use super::GroupBuilder;
use crate::group::HintLimits;
#[cfg(doc)]
use crate::{Applied, Group};
use std::time::Duration;

/// The default of [`GroupBuilder::change_timeout`].
pub const DEFAULT_CHANGE_TIMEOUT: Duration = Duration::from_secs(1);

/// The default of [`GroupBuilder::hot_max_age`]. A copy of a popular key is
/// fetched again at most once per this and node (a few requests a second
/// for a thousand hot keys), and a node that missed a change and its hint
/// serves the old value no longer than this (BENCHMARKS.md "Hot copies'
/// maximum age").
pub const DEFAULT_HOT_MAX_AGE: Duration = Duration::from_secs(10);

impl GroupBuilder<'_> {
    /// How long a change ([`Group::set`], [`Group::remove`],
    /// [`Group::purge`]) waits for a peer that does not own its keys
    /// (default [`DEFAULT_CHANGE_TIMEOUT`], 1 s; it must be greater than
    /// zero). Past it the peer is *pending* ([`Applied::pending`]): the
    /// change is kept for it and delivered when it answers again, so a
    /// hung node does not hold every write of the cluster for the full
    /// peer request timeout. The key's owner is waited for as long as the
    /// transport's request timeout: a change it did not take fails.
    ///
    /// ```
    /// use peercache::{loader_fn, Node};
    /// use std::time::Duration;
    ///
    /// # fn main() -> Result<(), peercache::Error> {
    /// let node = Node::new();
    /// node.group_builder("flags")
    ///     .change_timeout(Duration::from_millis(300))
    ///     .build(loader_fn(|k: String| async move { Ok(k) }))?;
    /// let zero = node.group_builder("bad").change_timeout(Duration::ZERO);
    /// assert!(zero.build(loader_fn(|k: String| async move { Ok(k) })).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn change_timeout(mut self, timeout: Duration) -> Self {
        self.change_timeout = timeout;
        self
    }

    /// How many changes are kept for one peer that did not answer them
    /// (default [`HintLimits::default`]: 10,000 keys, 1 MiB of keys). Past
    /// either bound the peer's changes collapse into one purge of the
    /// group on that peer, delivered the same way: it then loads or
    /// fetches everything again, but serves nothing old.
    pub fn hint_limits(mut self, limits: HintLimits) -> Self {
        self.hint_limits = limits;
        self
    }

    /// How long a hot copy (a value of a key another node owns, mirrored
    /// here) is served before the next get asks the owner again (default
    /// [`DEFAULT_HOT_MAX_AGE`], 10 s; `Duration::ZERO` for no limit, as in
    /// groupcache). It bounds how long this node can serve a value after a
    /// change it missed, even when the change kept for it was lost (the
    /// node that kept it died). The value's own expiry still applies.
    ///
    /// ```
    /// use peercache::clock::ManualClock;
    /// use peercache::in_process::InProcessNetwork;
    /// use peercache::{loader_fn, CacheKind, HotCachePolicy};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let network = InProcessNetwork::new();
    /// let (a, b) = (network.node("a", &["a", "b"])?, network.node("b", &["a", "b"])?);
    /// let clock = ManualClock::starting_now();
    /// for node in [&a, &b] {
    ///     node.group_builder("g")
    ///         .hot_cache(HotCachePolicy::Always)
    ///         .hot_max_age(Duration::from_secs(5))
    ///         .clock(clock.clone())
    ///         .build(loader_fn(|k: String| async move { Ok(k) }))?;
    /// }
    /// let on_a = a.group("g").unwrap();
    /// // The first key b owns: fetched from b, copied here.
    /// let mut remote = String::new();
    /// for i in 0.. {
    ///     remote = format!("k{i}");
    ///     on_a.get(&remote).await?;
    ///     if on_a.stats().peer_loads == 1 {
    ///         break;
    ///     }
    /// }
    /// assert_eq!(on_a.cached_keys(CacheKind::Hot), [remote.clone()]);
    /// clock.advance(Duration::from_secs(4));
    /// on_a.get(&remote).await?; // the copy is served
    /// clock.advance(Duration::from_secs(1));
    /// on_a.get(&remote).await?; // 5 s old: asked of b again
    /// assert_eq!(on_a.stats().peer_loads, 2);
    /// assert_eq!(on_a.stats().hot_cache.aged, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn hot_max_age(mut self, max_age: Duration) -> Self {
        self.hot_max_age = max_age;
        self
    }
}
