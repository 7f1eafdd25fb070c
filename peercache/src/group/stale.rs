//! Serving what the cache still holds when the origin is slow or down:
//! stale-while-revalidate, stale-if-error, and cached not-found answers.
//!
//! A cache in front of a database is judged on its worst day. Without these,
//! an expired key waits for the origin (the caller pays its latency), a
//! failing origin turns every expired key into an error, and a key that
//! does not exist is asked of the origin on every get. The answers are
//! HTTP caching's (RFC 5861, Varnish grace):
//!
//! - the cache keeps expired entries for the longer of the two windows
//!   (`Cache::keep_expired_for`: in the budget, evicted like any entry,
//!   never returned by a look-up);
//! - a miss whose key has an expired value within the revalidate window is
//!   answered with it at once, and one refresh of the key starts in the
//!   background through the flight tables, so it merges with every other
//!   load of the key and takes a place under the load cap like any load;
//! - a load that fails (not a not-found: that is the origin's answer) is
//!   answered with an expired value within the if-error window;
//! - a value may carry windows of its own (an HTTP origin's
//!   `Cache-Control: stale-while-revalidate`, `stale-if-error`), used when
//!   the group sets none;
//! - a not-found is kept as a [`Value::negative`] entry until its expiry; a
//!   get that finds it answers not-found without a load. An owner tells the
//!   asking peer when its not-found expires (HTTP: a header; batches: the
//!   item's expiry), and a peercache asker keeps it in its hot cache until
//!   then, so a missing key is asked of the origin once per window, cluster
//!   wide.
//!
//! In the cache a not-found is a negative value; [`Inner::answer`] turns it
//! into [`Error::NotFound`] before anything leaves the group. Between
//! nodes it is [`crate::FetchError::NotFoundCached`], with its expiry.

use super::load::Route;
use super::{Inner, Outcome};
use crate::clock::unix_nanos;
use crate::error::Error;
use crate::flight::Role;
use crate::stats::bump;
use crate::trace::Escaped;
use crate::Value;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A group's stale and not-found settings (each `None`: off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stale {
    /// How long past its expiry a value is served while it is refreshed.
    pub while_revalidate: Option<Duration>,
    /// How long past its expiry a value is served when its load fails.
    pub if_error: Option<Duration>,
    /// How long a not-found is cached.
    pub not_found_ttl: Option<Duration>,
}

impl Stale {
    /// How long the cache keeps expired entries: the longer window.
    pub(crate) fn grace(&self) -> Duration {
        let [a, b] = [self.while_revalidate, self.if_error].map(Option::unwrap_or_default);
        a.max(b)
    }
}

/// Which stale window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    /// Served while refreshing.
    Revalidate,
    /// Served when the load fails.
    IfError,
}

impl Inner {
    /// Notes that `value`, about to be cached, carries stale windows of
    /// its own: from then on misses and failures look for stale values
    /// even if the group sets no window.
    pub(super) fn note_windows(&self, value: &Value) {
        if value.has_stale_windows() && !self.values_have_windows.load(Ordering::Relaxed) {
            self.values_have_windows.store(true, Ordering::Relaxed);
        }
    }
}

/// Nanoseconds of `d`, saturated.
fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Whether `error` says the origin (or the owner's) failed, so that a stale
/// value may stand in: not a not-found, which is the origin's answer, nor a
/// misuse such as a get outside a runtime.
fn origin_failed(error: &Error) -> bool {
    matches!(
        error,
        Error::Load { .. }
            | Error::LoadTimeout { .. }
            | Error::Overloaded { .. }
            | Error::OriginDown { .. }
            | Error::Panicked { .. }
    )
}

impl Inner {
    /// A cached entry as a get answers it: a cached not-found is
    /// [`Error::NotFound`] (counted in `negative_hits`).
    #[inline(always)]
    pub(super) fn answer(&self, key: &str, value: Value) -> Outcome {
        if value.is_negative() {
            return Err(self.negative_hit(key));
        }
        Ok(value)
    }

    #[cold]
    #[inline(never)]
    fn negative_hit(&self, key: &str) -> Error {
        bump(&self.counters.negative_hits);
        Error::NotFound {
            group: self.name.clone(),
            key: Arc::from(key),
            peer: None,
        }
    }

    /// The not-found this node's loader answered for `key`, kept as a
    /// negative entry for the group's not-found TTL (unless `ticket` was
    /// fenced).
    pub(super) fn cache_not_found(&self, key: &str, ticket: u64) {
        if let Some(ttl) = self.stale.not_found_ttl {
            let until = self.clock.now_unix_nanos().saturating_add(nanos(ttl));
            let negative = Value::negative(key.as_bytes(), until);
            self.store(crate::CacheKind::Main, key, &negative, ticket);
        }
    }

    /// The owner's not-found for `key`, which it caches until `until`: kept
    /// in the hot cache as long, but at most this group's own not-found TTL
    /// (a peer's word does not pin an entry for longer), and only if this
    /// group caches not-found.
    pub(super) fn cache_owners_not_found(&self, key: &str, ticket: u64, until: SystemTime) {
        if let Some(ttl) = self.stale.not_found_ttl {
            let now = self.clock.now_unix_nanos();
            let until = unix_nanos(until).min(now.saturating_add(nanos(ttl)));
            if until > now && self.hot_cache.admits() {
                let negative = Value::negative(key.as_bytes(), until);
                self.store(crate::CacheKind::Hot, key, &negative, ticket);
            }
        }
        self.drop_expired(key, ticket);
    }

    /// Drops the expired value of `key`, if one is kept: its origin said it
    /// is gone, so it must not be served stale again. Not if the key
    /// changed since `ticket` (what is there now is newer).
    pub(super) fn drop_expired(&self, key: &str, ticket: u64) {
        if self.stale.grace().is_zero() && !self.values_have_windows.load(Ordering::Relaxed) {
            return;
        }
        let now = self.clock.now_unix_nanos();
        let mut guarded = self.lock_cache();
        if guarded.fences.admits(key, ticket) && guarded.cache.peek_expired(key, now).is_some() {
            guarded.cache.remove(key);
        }
    }

    /// When the not-found cached for `key` expires (Unix nanoseconds), if
    /// one is cached and live: what an owner tells the peer that asked.
    pub(super) fn not_found_until(&self, key: &str) -> Option<i64> {
        let now = self.clock.now_unix_nanos();
        let guarded = self.cache.read();
        let expiry = guarded.cache.peek_negative(key)?;
        (now < expiry).then_some(expiry)
    }

    /// The expired value of `key` if it is within its `which` window past
    /// its expiry: the group's, or, when the group sets none, the value's
    /// own ([`Value::with_stale_windows`]). Never a not-found.
    fn stale_within(&self, key: &str, which: Window) -> Option<Value> {
        let group = match which {
            Window::Revalidate => self.stale.while_revalidate,
            Window::IfError => self.stale.if_error,
        };
        if group.is_none() && !self.values_have_windows.load(Ordering::Relaxed) {
            return None;
        }
        let now = self.clock.now_unix_nanos();
        let value = self.cache.read().cache.peek_expired(key, now)?;
        if value.is_negative() {
            return None;
        }
        let window = group.unwrap_or_else(|| {
            let (revalidate, if_error) = value.stale_windows();
            match which {
                Window::Revalidate => revalidate,
                Window::IfError => if_error,
            }
        });
        let until = value.expiry_unix_nanos().saturating_add(nanos(window));
        (!window.is_zero() && now < until).then_some(value)
    }

    /// A miss's stale answer within the revalidate window, with a refresh
    /// of the key started (or joined) in the background; `None` when there
    /// is none to give (or no runtime to refresh on: the load then fails as
    /// any load outside a runtime does).
    pub(super) fn revalidating(self: &Arc<Self>, key: &str, route: Route) -> Option<Value> {
        let (stale, runtime) = self.stale_to_revalidate(key)?;
        bump(&self.counters.loads);
        let (role, call) = self.start(&runtime, key, route);
        if role == Role::Leader {
            bump(&self.counters.loads_deduped);
            bump(&self.counters.refreshes);
        }
        // A leading call dropped before its end moves to a task of its own
        // and completes, filling the cache; a following one leaves.
        drop(call);
        Some(stale)
    }

    /// The expired value of `key` within the revalidate window, counted as
    /// served, and the runtime its refresh will run on; the caller starts
    /// the refresh.
    pub(super) fn stale_to_revalidate(&self, key: &str) -> Option<(Value, tokio::runtime::Handle)> {
        let stale = self.stale_within(key, Window::Revalidate)?;
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        bump(&self.counters.stale_served);
        Some((stale, runtime))
    }

    /// `outcome`, or the expired value of `key` within the if-error window
    /// when the load failed.
    pub(super) fn or_stale(&self, key: &str, outcome: Outcome) -> Outcome {
        match &outcome {
            Err(error) if origin_failed(error) => {}
            _ => return outcome,
        }
        match self.stale_within(key, Window::IfError) {
            Some(stale) => {
                bump(&self.counters.stale_if_error);
                if let Err(error) = &outcome {
                    tracing::debug!(
                        group = %self.name,
                        key = %self.key_in_traces.show(key),
                        error = %Escaped(error),
                        "load failed; serving the expired value (stale_if_error)"
                    );
                }
                Ok(stale)
            }
            None => outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_is_the_longer_window() {
        let s = |r: Option<u64>, e: Option<u64>| Stale {
            while_revalidate: r.map(Duration::from_secs),
            if_error: e.map(Duration::from_secs),
            not_found_ttl: Some(Duration::from_secs(99)),
        };
        assert_eq!(s(None, None).grace(), Duration::ZERO);
        assert_eq!(s(Some(5), None).grace(), Duration::from_secs(5));
        assert_eq!(s(Some(5), Some(60)).grace(), Duration::from_secs(60));
        assert_eq!(s(None, Some(7)).grace(), Duration::from_secs(7));
    }
}
