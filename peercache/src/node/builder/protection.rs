//! The settings that protect a group's origin: the load cap, the origin
//! breaker, stale values and cached not-found answers. Apart from
//! `builder.rs` because each comes with its worked example, and together
//! they are most of the builder.

use super::GroupBuilder;
use crate::group::{Admission, BreakerSettings};
#[cfg(doc)]
use crate::{Error, Group};
use std::time::Duration;

impl GroupBuilder<'_> {
    /// Caps the loader calls of this group running at once on this node at
    /// `limit` (a batch's one call counts once), protecting the origin from
    /// a burst of distinct misses. A load over the cap waits for a free
    /// place at most `wait` (`Duration::ZERO`: not at all), then fails
    /// with [`Error::Overloaded`] (not cached; counted in
    /// `GroupStats::loads_refused`). Default: no cap.
    ///
    /// Merged loads still count once: gets of a key being loaded join its
    /// load and take no place. A peercache node asking this node (the
    /// owner) for a key over the cap gets the error too, and does not load
    /// the key itself, so the cap holds for the cluster's loads of the keys
    /// this node owns, as long as the wait and the load fit in the peers'
    /// request timeout (past it, the asker loads the key itself, as for any
    /// owner that does not answer). A golang/groupcache node loads the key
    /// itself on any error of its owner.
    ///
    /// ```
    /// use peercache::{loader_fn, Node};
    /// use std::time::Duration;
    ///
    /// # fn main() -> Result<(), peercache::Error> {
    /// let node = Node::new();
    /// let pages = node
    ///     .group_builder("pages")
    ///     .max_concurrent_loads(8, Duration::from_millis(500)) // 8 queries at once, wait ≤ 0.5 s
    ///     .build(loader_fn(|id: String| async move { Ok(format!("page {id}")) }))?;
    /// # let _ = pages;
    /// assert!(node.group_builder("bad").max_concurrent_loads(0, Duration::ZERO)
    ///     .build(loader_fn(|id: String| async move { Ok(id) })).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_concurrent_loads(mut self, limit: usize, wait: Duration) -> Self {
        self.admission = Some(Admission { limit, wait });
        self
    }

    /// Pauses loads while the origin is unreachable: after `failures` loads
    /// in a row that found it so (a loader's [`crate::LoadError::unavailable`],
    /// or the [`load_timeout`](GroupBuilder::load_timeout)), loads fail at
    /// once with [`Error::OriginDown`] for `cool_down` instead of calling
    /// it (counted in `GroupStats::loads_failed_fast`; with
    /// [`stale_if_error`](GroupBuilder::stale_if_error) the callers get the
    /// stale values); then one trial load decides whether loads resume (a
    /// trial that has not ended after another `cool_down` is followed by
    /// another). Failures of one key (a malformed row, a not-found) are the
    /// origin answering and reset the count, so a client asking for such
    /// keys cannot open it. Default: none.
    ///
    /// ```
    /// use peercache::clock::ManualClock;
    /// use peercache::{loader_fn, Error, LoadError, Node};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peercache::Error> {
    /// let clock = ManualClock::starting_now();
    /// let rows = Node::new()
    ///     .group_builder("rows")
    ///     .origin_breaker(3, Duration::from_secs(5))
    ///     .clock(clock.clone())
    ///     .build(loader_fn(|_id: String| async {
    ///         Err::<String, _>(LoadError::unavailable("connection refused by db:5432"))
    ///     }))?;
    ///
    /// for id in ["1", "2", "3"] {
    ///     assert!(matches!(rows.get(id).await, Err(Error::Load { .. }))); // tried
    /// }
    /// assert!(matches!(rows.get("4").await, Err(Error::OriginDown { .. }))); // not tried
    /// clock.advance(Duration::from_secs(5));
    /// assert!(matches!(rows.get("4").await, Err(Error::Load { .. }))); // the trial
    /// assert_eq!(rows.stats().loads_failed_fast, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn origin_breaker(mut self, failures: u32, cool_down: Duration) -> Self {
        self.breaker = Some(BreakerSettings {
            failures,
            cool_down,
        });
        self
    }

    /// Serves a value up to `window` past its expiry at once, while one
    /// refresh runs in the background (RFC 5861's `stale-while-revalidate`,
    /// Varnish's grace): the caller never waits for the origin on a key it
    /// asked recently enough. The refresh is a load like any other (merged
    /// with other loads of the key, under the load cap); its value replaces
    /// the stale one. At the owner it runs the loader; a hot copy asks the
    /// owner. Counted in `GroupStats::stale_served` and `refreshes`.
    /// Default: none (an expired value is loaded again before it is served).
    ///
    /// Expired values are kept in the budget, evicted by the policy like
    /// any other, until this window and [`GroupBuilder::stale_if_error`]'s
    /// have passed.
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
    ///     .stale_while_revalidate(Duration::from_secs(30))
    ///     .clock(clock.clone())
    ///     .build(loader_fn(move |_key: String| {
    ///         let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
    ///         async move { Ok::<_, LoadError>(format!("quote #{n}")) }
    ///     }))?;
    ///
    /// assert_eq!(quotes.get("ACME").await?.as_str().unwrap(), "quote #1");
    /// clock.advance(Duration::from_secs(70)); // expired 10 s ago
    /// assert_eq!(quotes.get("ACME").await?.as_str().unwrap(), "quote #1"); // stale, at once
    /// tokio::task::yield_now().await; // the refresh runs in the background
    /// assert_eq!(quotes.get("ACME").await?.as_str().unwrap(), "quote #2");
    /// assert_eq!(quotes.stats().stale_served, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale.while_revalidate = Some(window).filter(|w| !w.is_zero());
        self
    }

    /// Serves a value up to `window` past its expiry when loading it again
    /// fails (RFC 5861's `stale-if-error`): a loader error, a load timeout,
    /// the load cap's [`Error::Overloaded`], the breaker's
    /// [`Error::OriginDown`], a panic, or the owner's failure
    /// seen from a peer, but never a not-found (the origin's answer). The
    /// caller gets the expired value, its expiry unchanged, instead of the
    /// error; counted in `GroupStats::stale_if_error`. Default: none.
    ///
    /// ```
    /// use peercache::clock::ManualClock;
    /// use peercache::{loader_fn, LoadError, Node};
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peercache::Error> {
    /// let down = Arc::new(AtomicBool::new(false));
    /// let origin = Arc::clone(&down);
    /// let clock = ManualClock::starting_now();
    /// let prices = Node::new()
    ///     .group_builder("prices")
    ///     .ttl(Duration::from_secs(60))
    ///     .stale_if_error(Duration::from_secs(3600))
    ///     .clock(clock.clone())
    ///     .build(loader_fn(move |_key: String| {
    ///         let down = origin.load(Ordering::SeqCst);
    ///         async move { if down { Err(LoadError::msg("database down")) } else { Ok("1.20") } }
    ///     }))?;
    ///
    /// prices.get("apple").await?;
    /// down.store(true, Ordering::SeqCst);
    /// clock.advance(Duration::from_secs(600)); // expired, and the database is down
    /// assert_eq!(prices.get("apple").await?.as_str().unwrap(), "1.20");
    /// assert_eq!(prices.stats().stale_if_error, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale.if_error = Some(window).filter(|w| !w.is_zero());
        self
    }

    /// Caches a not-found answer for `ttl` (negative caching): a key the
    /// origin does not have is asked of it once per `ttl`, not on every
    /// get. A cached not-found costs its key's bytes and 128 bytes of
    /// bookkeeping in the budget (any client can ask for keys that do not
    /// exist: the budget bounds their memory), is evicted like any entry,
    /// and is cleared by [`Group::set`] and [`Group::remove`]. A peercache
    /// node that asks this node (the owner) for the key keeps the not-found
    /// in its hot cache until the owner's expires, if it caches not-found
    /// too, and at most for its own `ttl`. Counted in
    /// `GroupStats::negative_hits`. Default: not-found is never cached.
    ///
    /// ```
    /// use peercache::{loader_fn, LoadError, Node};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peercache::Error> {
    /// let asked = Arc::new(AtomicU32::new(0));
    /// let counted = Arc::clone(&asked);
    /// let users = Node::new()
    ///     .group_builder("users")
    ///     .cache_not_found(Duration::from_secs(30))
    ///     .build(loader_fn(move |_id: String| {
    ///         counted.fetch_add(1, Ordering::SeqCst);
    ///         async { Err::<String, _>(LoadError::NotFound) }
    ///     }))?;
    ///
    /// for _ in 0..3 {
    ///     assert!(users.get("no-such-user").await.unwrap_err().is_not_found());
    /// }
    /// assert_eq!(asked.load(Ordering::SeqCst), 1);
    /// assert_eq!(users.stats().negative_hits, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn cache_not_found(mut self, ttl: Duration) -> Self {
        self.stale.not_found_ttl = Some(ttl).filter(|t| !t.is_zero());
        self
    }
}
