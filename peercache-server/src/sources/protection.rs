//! A `--config` group's settings for when its origin is slow or down
//! (stale values, cached not-found, the load cap, the origin breaker): the
//! keys, each defaulting to the server flag of the same name, and how they
//! reach the group's builder.

use serde::Deserialize;
use std::time::Duration;

/// A group's settings for when its origin is slow or down, each
/// defaulting to the flag of the same name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protection {
    /// `--stale-while-revalidate`, e.g. `30s`.
    pub stale_while_revalidate: Option<String>,
    /// `--stale-if-error`, e.g. `1h`.
    pub stale_if_error: Option<String>,
    /// `--cache-not-found`, e.g. `10s`.
    pub cache_not_found: Option<String>,
    /// `--max-concurrent-loads`.
    pub max_concurrent_loads: Option<usize>,
    /// `--load-admission-wait`, e.g. `500ms` or `0`.
    pub load_admission_wait: Option<String>,
    /// `--origin-breaker`.
    pub origin_breaker: Option<u32>,
    /// `--origin-breaker-cool-down`, e.g. `5s`.
    pub origin_breaker_cool_down: Option<String>,
}

/// The keys of [`Protection`], taken out of a group's table before its
/// source reads the rest.
pub(super) const PROTECTION_KEYS: [&str; 7] = [
    "stale_while_revalidate",
    "stale_if_error",
    "cache_not_found",
    "max_concurrent_loads",
    "load_admission_wait",
    "origin_breaker",
    "origin_breaker_cool_down",
];

impl Protection {
    /// `builder` with the settings given here (the flags' are already in
    /// it); a wrong value's error names its key.
    pub(super) fn apply<'n>(
        &self,
        mut builder: peercache::GroupBuilder<'n>,
        defaults: &crate::plan::GroupDefaults,
    ) -> Result<peercache::GroupBuilder<'n>, String> {
        use crate::args::{parse_duration, parse_wait};
        let duration = |key: &str, text: &Option<String>| {
            text.as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|e| format!("{key}: {e}"))
        };
        if let Some(window) = duration("stale_while_revalidate", &self.stale_while_revalidate)? {
            builder = builder.stale_while_revalidate(window);
        }
        if let Some(window) = duration("stale_if_error", &self.stale_if_error)? {
            builder = builder.stale_if_error(window);
        }
        if let Some(ttl) = duration("cache_not_found", &self.cache_not_found)? {
            builder = builder.cache_not_found(ttl);
        }
        let wait = self
            .load_admission_wait
            .as_deref()
            .map(parse_wait)
            .transpose()
            .map_err(|e| format!("load_admission_wait: {e}"))?;
        let cap = Paired {
            count: ("max_concurrent_loads", "--max-concurrent-loads"),
            time: "load_admission_wait",
            why_not_alone: "it has no cap to wait for",
        };
        let flag_limit = defaults.admission.map(|(limit, _)| limit);
        if let Some((limit, wait)) = cap.resolve(
            self.max_concurrent_loads,
            flag_limit,
            wait,
            defaults.waits.0,
        )? {
            builder = builder.max_concurrent_loads(limit, wait);
        }
        let cool_down = duration("origin_breaker_cool_down", &self.origin_breaker_cool_down)?;
        let breaker = Paired {
            count: ("origin_breaker", "--origin-breaker"),
            time: "origin_breaker_cool_down",
            why_not_alone: "there is no breaker to cool down",
        };
        let flag_failures = defaults.breaker.map(|(failures, _)| failures);
        if let Some((failures, cool_down)) = breaker.resolve(
            self.origin_breaker,
            flag_failures,
            cool_down,
            defaults.waits.1,
        )? {
            builder = builder.origin_breaker(failures, cool_down);
        }
        Ok(builder)
    }
}

/// A count and the duration that goes with it (the cap and its wait, the
/// breaker and its cool-down): each from the group, else the flag's; the
/// duration alone is an error, a count of 0 too.
struct Paired {
    /// The count's key and flag.
    count: (&'static str, &'static str),
    /// The duration's key.
    time: &'static str,
    /// Why the duration means nothing without the count.
    why_not_alone: &'static str,
}

impl Paired {
    fn resolve<N: Copy + PartialEq + From<u8>>(
        &self,
        count: Option<N>,
        flag_count: Option<N>,
        time: Option<Duration>,
        flag_time: Duration,
    ) -> Result<Option<(N, Duration)>, String> {
        let (key, flag) = self.count;
        match (count.or(flag_count), time) {
            (Some(n), _) if n == N::from(0) => Err(format!(
                "{key}: must be at least 1 (leave it out for the flag's)"
            )),
            (Some(n), time) => Ok(Some((n, time.unwrap_or(flag_time)))),
            (None, Some(_)) => Err(format!(
                "{} without {key} (here or {flag}): {}",
                self.time, self.why_not_alone
            )),
            (None, None) => Ok(None),
        }
    }
}
