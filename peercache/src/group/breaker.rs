//! The breaker ([`crate::GroupBuilder::breaker`]): after a number of loader
//! failures in a row, a group stops calling its loader for a cool-down, so
//! an origin that is down is not sent every miss while it tries to come
//! back (and callers get an answer at once instead of waiting for each
//! failure).
//!
//! Closed, every load calls the loader; a failure (an error other than
//! not-found, a timeout, a panic) counts, a success or a not-found resets
//! the count. At the threshold the breaker opens: loads fail at once with
//! [`Error::BreakerOpen`] until the cool-down ends. Then one load is let
//! through as a trial (the others still fail at once): its success closes
//! the breaker, its failure opens it for another cool-down. Time is read
//! from the group's clock, so tests move it without sleeping.

use super::Inner;
use crate::error::Error;
use crate::stats::bump;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The breaker's settings, as given to the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BreakerSettings {
    /// Failures in a row that open it.
    pub failures: u32,
    /// How long it stays open.
    pub cool_down: Duration,
}

/// The breaker at work.
pub(super) struct Breaker {
    settings: BreakerSettings,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Failures in a row.
    failures: u32,
    /// Open until this time (Unix nanoseconds); 0 when closed.
    open_until: i64,
    /// A trial load is running (the cool-down is over).
    trying: bool,
}

/// A load let through the breaker; tell it how the loader did with
/// [`Pass::done`]. Dropped without that (the load was refused a place, or
/// cancelled), it counts for nothing and frees the trial.
pub(super) struct Pass<'a> {
    inner: &'a Inner,
    trial: bool,
    done: bool,
}

impl Breaker {
    pub(super) fn new(settings: BreakerSettings) -> Self {
        Breaker {
            settings,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// Lets a loader call of `keys` through, or refuses each key at once
    /// while the breaker is open (or a trial is running).
    pub(super) fn pass_breaker(&self, keys: &[&str]) -> Result<Option<Pass<'_>>, Vec<Error>> {
        let Some(breaker) = &self.breaker else {
            return Ok(None);
        };
        let mut state = breaker.lock();
        if state.open_until == 0 {
            return Ok(Some(Pass {
                inner: self,
                trial: false,
                done: false,
            }));
        }
        let now = self.clock.now_unix_nanos();
        if now >= state.open_until && !state.trying {
            state.trying = true;
            return Ok(Some(Pass {
                inner: self,
                trial: true,
                done: false,
            }));
        }
        let retry_in = Duration::from_nanos(u64::try_from(state.open_until - now).unwrap_or(0));
        let failures = state.failures;
        drop(state);
        Err(keys
            .iter()
            .map(|key| {
                bump(&self.counters.loads_refused);
                Error::BreakerOpen {
                    group: self.name.clone(),
                    key: Arc::from(*key),
                    failures,
                    retry_in,
                }
            })
            .collect())
    }
}

impl Pass<'_> {
    /// Records how the loader call went: `failed` for an error other than
    /// not-found (a timeout, a panic).
    pub(super) fn done(mut self, failed: bool) {
        self.done = true;
        let inner = self.inner;
        let Some(breaker) = &inner.breaker else {
            return;
        };
        let mut state = breaker.lock();
        if self.trial {
            state.trying = false;
        }
        if !failed {
            if state.open_until != 0 {
                tracing::info!(group = %inner.name, "breaker closed: the loader answered again");
            }
            *state = State::default();
            return;
        }
        state.failures = state.failures.saturating_add(1);
        if self.trial || state.failures >= breaker.settings.failures {
            let cool_down = breaker.settings.cool_down;
            let nanos = i64::try_from(cool_down.as_nanos()).unwrap_or(i64::MAX);
            state.open_until = inner.clock.now_unix_nanos().saturating_add(nanos).max(1);
            tracing::warn!(
                group = %inner.name,
                failures = state.failures,
                ?cool_down,
                "breaker open: the loader failed too often in a row; not calling it during the cool-down"
            );
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if self.trial && !self.done {
            if let Some(breaker) = &self.inner.breaker {
                breaker.lock().trying = false;
            }
        }
    }
}
