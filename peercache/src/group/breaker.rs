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
    /// The origin could not be reached, by this many keys' loads.
    Unreachable(u32),
    /// Nothing learned (the loader panicked): a trial's place is freed.
    Nothing,
}

/// Whether loads may call the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Closed: every load.
    Open,
    /// The one trial: a single key.
    Trial,
    /// Open: none.
    Shut,
}

impl Verdict {
    /// What a loader's answer says of the origin.
    pub(super) fn of(loaded: &Result<crate::Value, LoadError>) -> Self {
        match loaded {
            Err(error) if error.is_unavailable() => Verdict::Unreachable(1),
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

    /// Whether loads may call the origin at `now`: all while closed; while
    /// open, only one key's, as the trial after the cool-down (or after a
    /// trial that has not ended within a cool-down). A wall clock stepped
    /// back (`until` or the trial's start more than a cool-down ahead of
    /// `now`) makes a trial due, or the breaker could stay shut that long.
    fn gate(&self, now: i64) -> Gate {
        let mut state = self.lock();
        let Some(until) = state.open_until else {
            return Gate::Open;
        };
        let cool_down = nanos(self.settings.cool_down);
        let passed = |since: i64| now >= since || since.saturating_sub(now) > cool_down;
        let trial_due = match state.trial {
            None => passed(until),
            Some(started) => passed(started.saturating_add(cool_down)),
        };
        if trial_due {
            state.trial = Some(now);
            Gate::Trial
        } else {
            Gate::Shut
        }
    }

    /// Records what a load that was let through learned.
    fn record(&self, verdict: Verdict, now: i64) {
        let mut state = self.lock();
        match verdict {
            Verdict::Answered => *state = State::default(),
            Verdict::Nothing => state.trial = None,
            Verdict::Unreachable(keys) => {
                state.failures = state.failures.saturating_add(keys);
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
    /// How many of `keys`, from the first, the loader may be called for
    /// now (all of them without a breaker; one as a trial), and the
    /// [`Error::OriginDown`] of each of the others (counted in
    /// `loads_failed_fast`).
    pub(super) fn origin_admits(&self, keys: &[&str]) -> (usize, Vec<Error>) {
        let Some(breaker) = &self.breaker else {
            return (keys.len(), Vec::new());
        };
        let admitted = match breaker.gate(self.clock.now_unix_nanos()) {
            Gate::Open => return (keys.len(), Vec::new()),
            Gate::Trial => 1.min(keys.len()),
            Gate::Shut => 0,
        };
        let BreakerSettings {
            failures,
            cool_down,
        } = breaker.settings;
        let refused = keys[admitted..]
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
            .collect();
        (admitted, refused)
    }

    /// Records what a loader call learned of the origin.
    pub(super) fn origin_answered(&self, verdict: Verdict) {
        if let Some(breaker) = &self.breaker {
            if let Verdict::Unreachable(keys) = verdict {
                tracing::debug!(group = %self.name, keys, "the origin is unreachable");
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
            assert_eq!(b.gate(now), Gate::Open);
            b.record(Verdict::Unreachable(1), now);
        }
        assert_eq!(b.gate(2), Gate::Open);
        b.record(Verdict::Answered, 2); // the count starts again
        for now in 3..6 {
            assert_eq!(b.gate(now), Gate::Open);
            b.record(Verdict::Unreachable(1), now);
        }
        assert_eq!(b.gate(6), Gate::Shut, "open");
        assert_eq!(b.gate(5 + 5 * S - 1), Gate::Shut, "open for the cool-down");
        assert_eq!(b.gate(5 + 5 * S), Gate::Trial);
        assert_eq!(b.gate(5 + 5 * S + 1), Gate::Shut, "one trial at a time");
        b.record(Verdict::Unreachable(1), 6 * S);
        assert_eq!(
            b.gate(6 * S + 1),
            Gate::Shut,
            "a failed trial opens it again"
        );
        assert_eq!(b.gate(11 * S), Gate::Trial);
        b.record(Verdict::Answered, 11 * S);
        assert_eq!(b.gate(11 * S + 1), Gate::Open, "closed");
    }

    #[test]
    fn a_batch_counts_each_key_and_a_panicked_trial_frees_its_place() {
        let b = breaker();
        b.record(Verdict::Unreachable(3), 0);
        assert_eq!(b.gate(1), Gate::Shut, "three keys unreachable: open");
        assert_eq!(b.gate(5 * S), Gate::Trial);
        b.record(Verdict::Nothing, 5 * S);
        assert_eq!(b.gate(5 * S + 1), Gate::Trial, "a new trial at once");
    }

    #[test]
    fn a_wall_clock_stepped_back_does_not_keep_it_shut() {
        let b = breaker();
        b.record(Verdict::Unreachable(3), 100 * S);
        assert_eq!(b.gate(100 * S + 1), Gate::Shut);
        // The clock steps back an hour: a trial is due at once.
        assert_eq!(b.gate(100 * S - 3600 * S), Gate::Trial);
    }

    #[test]
    fn a_trial_that_never_ends_is_followed_by_another() {
        let b = breaker();
        for now in 0..3 {
            b.record(Verdict::Unreachable(1), now);
        }
        assert_eq!(b.gate(5 * S + 2), Gate::Trial, "a trial, which hangs");
        assert_eq!(b.gate(9 * S), Gate::Shut);
        assert_eq!(
            b.gate(10 * S + 2),
            Gate::Trial,
            "a new trial a cool-down later"
        );
    }
}
