//! The error of a setting that cannot be used, shared by every settings
//! type (HTTP options, server limits, health policy), so that a wrong value
//! is refused the same way wherever it was given: naming the setting and
//! saying why, as a type a program can match instead of a string.

use std::fmt;

/// A setting whose value cannot be used: which one, and why.
///
/// ```
/// use peercache::http::HttpOptions;
///
/// let refused = HttpOptions::builder().base_path("groupcache").build().unwrap_err();
/// assert_eq!(refused.setting(), "base_path");
/// assert!(refused.reason().contains("start and end with '/'"));
/// assert_eq!(
///     refused.to_string(),
///     "setting base_path: \"groupcache\" must start and end with '/' and name a directory, such as \"/_groupcache/\""
/// );
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
    /// `max_concurrent_requests`).
    pub fn setting(&self) -> &str {
        &self.setting
    }

    /// Why, and what to give instead.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "setting {}: {}", self.setting, self.reason)
    }
}

impl std::error::Error for InvalidSetting {}
