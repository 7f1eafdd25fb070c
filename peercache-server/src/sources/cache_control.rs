//! What an HTTP origin's `Cache-Control` header says of a value: how long
//! it is fresh (`max-age`; `no-store` and `no-cache` make it uncacheable)
//! and how long it may be served stale (RFC 5861's
//! `stale-while-revalidate` and `stale-if-error`), for the `http` source.
//! A group's own settings override what the origin says.

use std::time::Duration;

/// The directives of one `Cache-Control` header that the cache honours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `max-age`; `Some(ZERO)` for `no-store`, `no-cache` or `max-age=0`
    /// (served, never cached); `None` when absent.
    pub max_age: Option<Duration>,
    /// `stale-while-revalidate`, zero when absent.
    pub stale_while_revalidate: Duration,
    /// `stale-if-error`, zero when absent.
    pub stale_if_error: Duration,
}

impl CacheControl {
    /// Reads the header from `headers` (directives case-insensitive, in
    /// any order; unknown ones and malformed numbers ignored).
    pub fn of(headers: &http::HeaderMap) -> Self {
        let mut parsed = CacheControl::default();
        let Some(value) = headers
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
        else {
            return parsed;
        };
        let mut uncacheable = false;
        for directive in value.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-store" || lower == "no-cache" {
                uncacheable = true;
                continue;
            }
            let Some((name, seconds)) = lower.split_once('=') else {
                continue;
            };
            let Ok(seconds) = seconds.trim().trim_matches('"').parse::<u64>() else {
                continue;
            };
            let seconds = Duration::from_secs(seconds);
            match name.trim() {
                "max-age" => parsed.max_age = Some(seconds),
                "stale-while-revalidate" => parsed.stale_while_revalidate = seconds,
                "stale-if-error" => parsed.stale_if_error = seconds,
                _ => {}
            }
        }
        if uncacheable {
            parsed.max_age = Some(Duration::ZERO);
        }
        parsed
    }

    /// Whether the value may be kept at all.
    pub fn cacheable(&self) -> bool {
        self.max_age != Some(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn of(header: &str) -> CacheControl {
        let mut headers = http::HeaderMap::new();
        headers.insert("cache-control", header.parse().unwrap());
        CacheControl::of(&headers)
    }

    #[test]
    fn max_age_and_what_makes_a_value_uncacheable() {
        assert_eq!(
            CacheControl::of(&http::HeaderMap::new()),
            CacheControl::default()
        );
        assert_eq!(
            of("public, max-age=30").max_age,
            Some(Duration::from_secs(30))
        );
        for uncacheable in ["no-store", "no-cache", "max-age=0", "max-age=60, No-Store"] {
            let parsed = of(uncacheable);
            assert_eq!(parsed.max_age, Some(Duration::ZERO), "{uncacheable}");
            assert!(!parsed.cacheable(), "{uncacheable}");
        }
        // The largest age an origin can send is read, not an overflow.
        let largest = of("max-age=18446744073709551615").max_age.unwrap();
        assert_eq!(largest, Duration::from_secs(u64::MAX));
        assert_eq!(SystemTime::now().checked_add(largest), None);
    }

    #[test]
    fn stale_directives_are_read_in_any_order_and_case() {
        let parsed = of("max-age=60, Stale-While-Revalidate=30, stale-if-error=\"86400\"");
        assert_eq!(
            parsed,
            CacheControl {
                max_age: Some(Duration::from_secs(60)),
                stale_while_revalidate: Duration::from_secs(30),
                stale_if_error: Duration::from_secs(86400),
            }
        );
        // Malformed numbers and unknown directives are ignored.
        let parsed = of("stale-if-error=soon, immutable, max-age=5, stale-while-revalidate=-1");
        assert_eq!(parsed.max_age, Some(Duration::from_secs(5)));
        assert_eq!(parsed.stale_if_error, Duration::ZERO);
        assert_eq!(parsed.stale_while_revalidate, Duration::ZERO);
    }
}
