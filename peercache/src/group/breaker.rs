//! The origin breaker ([`crate::GroupBuilder::origin_breaker`]): after a
//! number of loads in a row that found the origin unreachable, loads fail
//! fast ([`Error::OriginDown`]) for a cool-down instead of calling it; then
//! one trial load decides whether loads resume.
//!
//! Under an outage, every get of a missing or expired key would otherwise
//! try the origin (merged per key, but a few thousand keys make a few
//! thousand attempts a second), which keeps a struggling origin down and
//! makes every caller wait for its failure. With `stale_if_error`, the
//! callers get the stale values at cache speed instead.
//!
//! Only failures that say the origin is unreachable count: a loader's
//! [`crate::LoadError::unavailable`] and the group's load timeout. A key
//! that fails on its own (a malformed row, a file over a limit, a
//! not-found) is the origin answering, and resets the count: a client
//! asking for such keys cannot open the breaker. A trial that never ends
//! does not keep it shut: after another cool-down, the next load is a new
//! trial. Time is the group's clock, so tests move a `ManualClock`.

use super::Inner;
use crate::error::Error;
use crate::loader::LoadError;
use crate::stats::bump;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The breaker's settings, as given to the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BreakerSettings {
    /// Unreachable-origin failures in a row that open it.
    pub failures: u32,
    /// How long it stays open before a trial.
    pub cool_down: Duration,
}

/// The breaker at work.
pub(super) struct Breaker {
    settings: BreakerSettings,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Unreachable-origin failures in a row.
    failures: u32,
    /// Open until then (Unix nanoseconds of the group's clock).
    open_until: Option<i64>,
    /// When the trial in flight started, if one is.
    trial: Option<i64>,
}

/// What a load learned of the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The origin answered (a value, a not-found, or one key's failure).
    Answered,
    /// The origin could not be reached.
    Unreachable,
}

impl Verdict {
    /// What a loader's answer says of the origin.
    pub(super) fn of(loaded: &Result<crate::Value, LoadError>) -> Self {
        match loaded {
            Err(error) if error.is_unavailable() => Verdict::Unreachable,
            _ => Verdict::Answered,
        }
    }
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

    /// Whether a load may call the origin at `now`: always while closed;
    /// while open, only as the one trial after the cool-down (or after a
    /// trial that has not ended within a cool-down).
    fn admits(&self, now: i64) -> bool {
        let mut state = self.lock();
        let Some(until) = state.open_until else {
            return true;
        };
        let cool_down = nanos(self.settings.cool_down);
        let trial_due = match state.trial {
            None => now >= until,
            Some(started) => now >= started.saturating_add(cool_down),
        };
        if trial_due {
            state.trial = Some(now);
        }
        trial_due
    }

    /// Records what a load that was let through learned.
    fn record(&self, verdict: Verdict, now: i64) {
        let mut state = self.lock();
        match verdict {
            Verdict::Answered => *state = State::default(),
            Verdict::Unreachable => {
                state.failures = state.failures.saturating_add(1);
                state.trial = None;
                if state.failures >= self.settings.failures {
                    state.open_until = Some(now.saturating_add(nanos(self.settings.cool_down)));
                }
            }
        }
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl Inner {
    /// Whether the loader may be called for `keys` now; else each key's
    /// [`Error::OriginDown`] (counted in `loads_failed_fast`). Always
    /// without a breaker.
    pub(super) fn origin_admits(&self, keys: &[&str]) -> Result<(), Vec<Error>> {
        let Some(breaker) = &self.breaker else {
            return Ok(());
        };
        if breaker.admits(self.clock.now_unix_nanos()) {
            return Ok(());
        }
        let BreakerSettings {
            failures,
            cool_down,
        } = breaker.settings;
        Err(keys
            .iter()
            .map(|key| {
                bump(&self.counters.loads_failed_fast);
                Error::OriginDown {
                    group: self.name.clone(),
                    key: Arc::from(*key),
                    failures,
                    cool_down,
                }
            })
            .collect())
    }

    /// Records what a loader call learned of the origin.
    pub(super) fn origin_answered(&self, verdict: Verdict) {
        if let Some(breaker) = &self.breaker {
            if verdict == Verdict::Unreachable {
                tracing::debug!(group = %self.name, "the origin is unreachable");
            }
            breaker.record(verdict, self.clock.now_unix_nanos());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn breaker() -> Breaker {
        Breaker::new(BreakerSettings {
            failures: 3,
            cool_down: Duration::from_secs(5),
        })
    }

    #[test]
    fn it_opens_after_failures_in_a_row_and_one_trial_decides() {
        let b = breaker();
        for now in 0..2 {
            assert!(b.admits(now));
            b.record(Verdict::Unreachable, now);
        }
        assert!(b.admits(2));
        b.record(Verdict::Answered, 2); // the count starts again
        for now in 3..6 {
            assert!(b.admits(now));
            b.record(Verdict::Unreachable, now);
        }
        assert!(!b.admits(6), "open");
        assert!(!b.admits(5 + 5 * S - 1), "open for the cool-down");
        assert!(b.admits(5 + 5 * S), "the trial");
        assert!(!b.admits(5 + 5 * S + 1), "one trial at a time");
        b.record(Verdict::Unreachable, 6 * S);
        assert!(!b.admits(6 * S + 1), "a failed trial opens it again");
        assert!(b.admits(11 * S));
        b.record(Verdict::Answered, 11 * S);
        assert!(b.admits(11 * S + 1) && b.admits(11 * S + 2), "closed");
    }

    #[test]
    fn a_trial_that_never_ends_is_followed_by_another() {
        let b = breaker();
        for now in 0..3 {
            b.record(Verdict::Unreachable, now);
        }
        assert!(b.admits(5 * S), "a trial, which hangs");
        assert!(!b.admits(9 * S));
        assert!(b.admits(10 * S), "a new trial a cool-down later");
    }
}
