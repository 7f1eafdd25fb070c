//! A `--config` group's settings for when its origin is slow or down
//! (stale values, cached not-found, the load cap, the origin breaker): the
//! keys, each defaulting to the server flag of the same name, and how they
//! reach the group's builder.

use serde::Deserialize;

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
        let limit = self
            .max_concurrent_loads
            .or(defaults.admission.map(|(limit, _)| limit));
        match (limit, wait) {
            (Some(0), _) => {
                return Err("max_concurrent_loads: must be at least 1 (leave it out for the flag's)".to_owned())
            }
            (Some(limit), wait) => {
                let wait = wait
                    .or(defaults.admission.map(|(_, wait)| wait))
                    .unwrap_or(defaults.waits.0);
                builder = builder.max_concurrent_loads(limit, wait);
            }
            (None, Some(_)) => {
                return Err("load_admission_wait without max_concurrent_loads (here or --max-concurrent-loads): it has no cap to wait for".to_owned())
            }
            (None, None) => {}
        }
        let cool_down = duration("origin_breaker_cool_down", &self.origin_breaker_cool_down)?;
        let failures = self
            .origin_breaker
            .or(defaults.breaker.map(|(failures, _)| failures));
        match (failures, cool_down) {
            (Some(0), _) => {
                return Err("origin_breaker: must be at least 1 (leave it out for the flag's)".to_owned())
            }
            (Some(failures), cool_down) => {
                let cool_down = cool_down
                    .or(defaults.breaker.map(|(_, cool_down)| cool_down))
                    .unwrap_or(defaults.waits.1);
                builder = builder.origin_breaker(failures, cool_down);
            }
            (None, Some(_)) => {
                return Err("origin_breaker_cool_down without origin_breaker (here or --origin-breaker): there is no breaker to cool down".to_owned())
            }
            (None, None) => {}
        }
        Ok(builder)
    }
}
