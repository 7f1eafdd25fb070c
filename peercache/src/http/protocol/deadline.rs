//! The deadline of a set: a `PUT` carries the instant (Unix milliseconds)
//! after which its sender no longer waits for it, and a peercache server
//! does not store a set that arrives later.
//!
//! A set to an owner that does not answer in time is reported as failed,
//! and the owner is kept a hint to drop the key. But the request may still
//! be in the network (queued in a hung process, or in TCP retransmission
//! across a partition) and arrive after the hint, or after newer changes:
//! stored then, it would bring back a value the cluster has moved past,
//! with nothing left to drop it. Removes and purges need no deadline: a
//! late one only drops a copy.
//!
//! Go nodes send no deadline and ignore this one. It assumes the nodes'
//! clocks agree to well within the peer request timeout (as expiry assumes
//! they agree); a receiver whose clock runs ahead by more refuses sets with
//! a message saying so.

use http::{HeaderMap, HeaderValue};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The header.
pub(crate) const DEADLINE_HEADER: &str = "x-peercache-deadline";

fn unix_millis(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// The header's value for a request sent now and waited for `timeout`.
pub(crate) fn deadline_after(timeout: Duration) -> HeaderValue {
    let at = SystemTime::now()
        .checked_add(timeout)
        .unwrap_or(SystemTime::now());
    HeaderValue::from(u64::try_from(unix_millis(at)).unwrap_or(u64::MAX))
}

/// Why a request must not be carried out: it arrived past its deadline.
/// `None` without a deadline (or an unreadable one: ignored, as any
/// header a Go node would not send).
pub(crate) fn past_deadline(headers: &HeaderMap) -> Option<String> {
    let deadline: u128 = headers.get(DEADLINE_HEADER)?.to_str().ok()?.parse().ok()?;
    let now = unix_millis(SystemTime::now());
    (now > deadline).then(|| {
        format!(
            "set arrived {} ms after its sender stopped waiting for it (the {DEADLINE_HEADER} \
             header); not stored (if this happens for every set, this node's clock is ahead)",
            now - deadline
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_refused_only_past_its_deadline() {
        let mut headers = HeaderMap::new();
        assert_eq!(past_deadline(&headers), None, "no deadline: Go");
        headers.insert(DEADLINE_HEADER, deadline_after(Duration::from_secs(5)));
        assert_eq!(past_deadline(&headers), None);
        let past = unix_millis(SystemTime::now()) - 1000;
        headers.insert(DEADLINE_HEADER, HeaderValue::from(past as u64));
        let refused = past_deadline(&headers).unwrap();
        assert!(refused.contains("not stored"), "{refused}");
        headers.insert(DEADLINE_HEADER, HeaderValue::from_static("soon"));
        assert_eq!(past_deadline(&headers), None, "unreadable: ignored");
    }
}
