//! The values of the flags: sizes, durations, counts and hot-cache
//! policies, read as an operator writes them, with errors that say what
//! to write instead.

use peercache::HotCachePolicy;
use std::time::Duration;

/// A flag value without the spaces around it (`--pool 'a, b'`).
pub(super) fn trimmed(text: &str) -> Result<String, String> {
    Ok(text.trim().to_owned())
}

/// `1048576`, `64MiB`, `512KiB`, `2GiB` (binary units; `K`, `M`, `G` and the
/// `KB`-style spellings mean the same).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size: write bytes, or e.g. 64MiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("unknown size unit {unit:?}: use KiB, MiB or GiB")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// `300ms`, `2s`, `1m`, `1.5s`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: write e.g. 300ms, 2s, 1m or 1h"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("{text:?} needs a unit: ms, s, m or h")),
    };
    let duration = Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} must be a positive duration"))?;
    if duration > MAX_DURATION {
        return Err(format!(
            "{text:?} is too long: durations are at most {}s (100 years)",
            MAX_DURATION.as_secs()
        ));
    }
    Ok(duration)
}

/// The longest duration taken from outside (flags, `--config`, a `ttl`
/// parameter): far enough to mean "forever", near enough that adding it to
/// any clock reading cannot overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `frequent`, `never`, `always`, `one-in-N`.
pub fn parse_hot_cache(text: &str) -> Result<HotCachePolicy, String> {
    match text {
        "frequent" => Ok(HotCachePolicy::Frequent),
        "never" => Ok(HotCachePolicy::Never),
        "always" => Ok(HotCachePolicy::Always),
        _ => text
            .strip_prefix("one-in-")
            .and_then(|n| n.parse().ok())
            .filter(|n| *n > 0)
            .map(HotCachePolicy::OneIn)
            .ok_or_else(|| {
                format!("{text:?} is not a policy: use frequent, never, always or one-in-N")
            }),
    }
}

/// A duration as [`parse_duration`] reads it, or `0` for none.
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    match text.trim() {
        "0" => Ok(Duration::ZERO),
        text => parse_duration(text),
    }
}

/// A number of failures in a row, at least 1.
pub fn parse_failures(text: &str) -> Result<u32, String> {
    text.trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a number of failures of at least 1"))
}

/// A count of at least 1.
pub(super) fn parse_count(text: &str) -> Result<usize, String> {
    text.trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a count of at least 1"))
}

/// A rate in requests per second: `100`, `0.5` (one every two seconds).
pub(super) fn parse_rate(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|rate| rate.is_finite() && *rate >= 0.001 && *rate <= 1e9)
        .ok_or_else(|| {
            format!("{text:?} is not a rate: write requests per second, from 0.001 to 1e9, e.g. 100 or 0.5")
        })
}
