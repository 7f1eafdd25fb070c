//! The error of a setting that cannot be used, shared by every settings
//! type (HTTP options, server limits, health policy), so that a wrong value
//! is refused the same way wherever it was given: naming the setting and
//! saying why, as a type a program can match instead of a string.

use std::fmt;

/// A setting whose value cannot be used: which one, and why.
///
/// ```
/// use peercache::http::{HttpOptions, HttpPool, PoolError};
///
/// let bad = HttpOptions { base_path: "groupcache".into(), ..HttpOptions::default() };
/// let refused = bad.validate().unwrap_err();
/// assert_eq!(refused.setting(), "base_path");
/// assert!(refused.reason().contains("start and end with '/'"));
/// assert!(matches!(
///     HttpPool::new("http://10.0.0.1:8080", bad),
///     Err(PoolError::Setting(e)) if e.setting() == "base_path"
/// ));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSetting {
    setting: String,
    reason: String,
}

impl InvalidSetting {
    /// `setting` cannot be used, because `reason` (which says what to give
    /// instead).
    pub fn new(setting: &str, reason: impl Into<String>) -> Self {
        InvalidSetting {
            setting: setting.to_owned(),
            reason: reason.into(),
        }
    }

    /// The setting's name, as its field or builder method is spelled (e.g.
    /// `max_concurrent_requests`, `health.probe_backoff_min`).
    pub fn setting(&self) -> &str {
        &self.setting
    }

    /// Why, and what to give instead.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The same error for the setting inside `outer` (`health` +
    /// `probe_backoff_min` is `health.probe_backoff_min`).
    pub(crate) fn within(self, outer: &str) -> Self {
        InvalidSetting {
            setting: format!("{outer}.{}", self.setting),
            ..self
        }
    }
}

impl fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "setting {}: {}", self.setting, self.reason)
    }
}

impl std::error::Error for InvalidSetting {}
