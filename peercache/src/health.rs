//! The health of one peer: up, or out of the ring and probed with back-off.
//!
//! golang/groupcache keeps asking a dead peer: every get of one of its keys
//! waits for a refused connection or a timeout before loading locally. Here a
//! transport reports each exchange with a peer ([`PeerHealth::succeeded`],
//! [`PeerHealth::failed`]); after [`HealthPolicy::failures_to_down`] failures
//! in a row the peer is *down*: the transport takes it out of its ring (its
//! keys go to the next peers on the ring, which load them), and probes it in
//! the background, waiting [`HealthPolicy::probe_backoff_min`] and then twice
//! as long after each failed probe, up to [`HealthPolicy::probe_backoff_max`].
//! The first answer (a probe's, or any exchange still in flight) puts it back.
//!
//! What counts as a failure is the transport's call: for HTTP, a refused
//! connection, a timeout, a broken exchange or a 5xx that is not the owner's
//! loader speaking (see [`crate::http`]). An answer that says "no" (404, 400,
//! a loader error) is a success: the peer is alive.
//!
//! This module is pure state: no I/O, no tasks, time passed in by the caller.
//!
//! ```
//! use peercache::health::{HealthPolicy, PeerHealth, PeerState, Transition};
//! use std::time::Duration;
//!
//! let health = PeerHealth::new(HealthPolicy::default()); // down after 3 failures in a row
//! assert_eq!(health.failed("connection refused"), Transition::None);
//! assert_eq!(health.failed("connection refused"), Transition::None);
//! assert_eq!(health.failed("connection refused"), Transition::WentDown); // take it out of the ring
//! assert!(!health.is_up());
//!
//! // Probe after 250 ms, then twice as long each time, up to 2 s.
//! assert_eq!(health.next_probe_delay(), Duration::from_millis(250));
//! assert_eq!(health.next_probe_delay(), Duration::from_millis(500));
//!
//! let status = health.status("http://10.0.0.2:8080");
//! assert_eq!(status.state, PeerState::Down);
//! assert_eq!(status.last_error.as_deref(), Some("connection refused"));
//!
//! assert_eq!(health.succeeded(), Transition::CameBack); // back in the ring
//! assert!(health.is_up());
//! ```

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// When a failing peer is taken out of the ring and how often it is probed.
///
/// The HTTP transport takes it in [`crate::http::HttpOptionsBuilder::health`]:
///
/// ```
/// use peercache::health::HealthPolicy;
/// use peercache::http::HttpOptions;
/// use std::time::Duration;
///
/// # fn main() -> Result<(), peercache::InvalidSetting> {
/// let health = HealthPolicy::builder()
///     .failures_to_down(5)
///     .probe_backoff_max(Duration::from_secs(10))
///     .build()?;
/// let options = HttpOptions::builder().health(health).build()?;
/// assert_eq!(options.health().failures_to_down(), 5);
///
/// let backwards = HealthPolicy::builder().probe_backoff_max(Duration::from_millis(1)).build();
/// assert_eq!(backwards.unwrap_err().setting(), "probe_backoff_max");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    failures_to_down: u32,
    probe_backoff_min: Duration,
    probe_backoff_max: Duration,
    rejoin_delay: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            failures_to_down: 3,
            probe_backoff_min: Duration::from_millis(250),
            probe_backoff_max: Duration::from_secs(2),
            rejoin_delay: Duration::from_secs(2),
        }
    }
}

impl HealthPolicy {
    /// A builder starting from the defaults.
    pub fn builder() -> HealthPolicyBuilder {
        HealthPolicy::default().to_builder()
    }

    /// A builder starting from this policy.
    pub fn to_builder(&self) -> HealthPolicyBuilder {
        HealthPolicyBuilder { policy: *self }
    }

    /// Failures in a row that take a peer out of the ring (0: never).
    pub fn failures_to_down(&self) -> u32 {
        self.failures_to_down
    }

    /// Wait before the first probe of a peer that went down.
    pub fn probe_backoff_min(&self) -> Duration {
        self.probe_backoff_min
    }

    /// Longest wait between probes.
    pub fn probe_backoff_max(&self) -> Duration {
        self.probe_backoff_max
    }

    /// How long a peer that answers again waits before it is back in the
    /// ring.
    pub fn rejoin_delay(&self) -> Duration {
        self.rejoin_delay
    }
}

/// Builds a [`HealthPolicy`]; [`HealthPolicyBuilder::build`] checks it.
#[derive(Debug, Clone, Copy)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct HealthPolicyBuilder {
    policy: HealthPolicy,
}

impl HealthPolicyBuilder {
    /// Failures in a row that take a peer out of the ring (default 3; 0
    /// never does: the peer stays in the ring whatever happens).
    pub fn failures_to_down(mut self, failures: u32) -> Self {
        self.policy.failures_to_down = failures;
        self
    }

    /// Wait before the first probe of a peer that went down (default
    /// 250 ms).
    pub fn probe_backoff_min(mut self, wait: Duration) -> Self {
        self.policy.probe_backoff_min = wait;
        self
    }

    /// Longest wait between probes (default 2 s): a peer that comes back is
    /// in the ring again at most this long (plus one probe) later.
    pub fn probe_backoff_max(mut self, wait: Duration) -> Self {
        self.policy.probe_backoff_max = wait;
        self
    }

    /// How long a peer that answers again waits before the transport puts
    /// it back in the ring (default 2 s; zero: at once). Meanwhile it is
    /// sent changes but owns no keys: the changes it missed while it was
    /// away (the hints the other nodes kept for it, sent about every
    /// 200 ms, each waited for at most the change timeout, 1 s by default)
    /// land before any node asks it for a key it may hold an old value of.
    /// Keep it above the groups' change timeout.
    pub fn rejoin_delay(mut self, delay: Duration) -> Self {
        self.policy.rejoin_delay = delay;
        self
    }

    /// The policy, once checked; the error names the setting at fault.
    pub fn build(self) -> Result<HealthPolicy, crate::InvalidSetting> {
        let policy = self.policy;
        if policy.probe_backoff_min.is_zero() {
            return Err(crate::InvalidSetting::new(
                "probe_backoff_min",
                "must be more than zero (default 250 ms)",
            ));
        }
        if policy.probe_backoff_max < policy.probe_backoff_min {
            return Err(crate::InvalidSetting::new(
                "probe_backoff_max",
                format!(
                    "{:?} must be at least probe_backoff_min ({:?})",
                    policy.probe_backoff_max, policy.probe_backoff_min
                ),
            ));
        }
        Ok(policy)
    }
}

/// A peer's state, as shown in stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// This node itself.
    #[serde(rename = "self")]
    Myself,
    /// In the ring.
    Up,
    /// Out of the ring, being probed.
    Down,
    /// Answers again, and is back in the ring once the rejoin delay
    /// ([`HealthPolicyBuilder::rejoin_delay`]) has passed.
    Rejoining,
}

/// A snapshot of one peer's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The peer's identity (base URL).
    pub peer: String,
    /// Up, down or this node.
    pub state: PeerState,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Failures ever recorded.
    pub failures: u64,
    /// Times the peer was taken out of the ring.
    pub times_down: u64,
    /// How long the peer has been down, in milliseconds (while down).
    pub down_for_ms: Option<u64>,
    /// The last failure's description.
    pub last_error: Option<String>,
}

/// What a report changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing the ring needs to know.
    None,
    /// The peer just went down: take it out of the ring, start probing.
    WentDown,
    /// The peer just came back: put it in the ring again.
    CameBack,
    /// The peer said it is leaving the cluster ([`PeerHealth::left`]):
    /// take it out of the ring, as a planned change, and probe it.
    Left,
}

/// The health of one peer; shared by the transport's client and its prober.
#[derive(Debug)]
pub struct PeerHealth {
    policy: HealthPolicy,
    /// Mirrors `state.down` so the hot path reads it without the lock.
    down: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    down: Option<Instant>,
    consecutive_failures: u32,
    failures: u64,
    times_down: u64,
    last_error: Option<String>,
    next_backoff: Duration,
}

impl PeerHealth {
    /// A healthy peer under `policy`.
    pub fn new(policy: HealthPolicy) -> Self {
        PeerHealth {
            policy,
            down: AtomicBool::new(false),
            state: Mutex::new(State {
                next_backoff: policy.probe_backoff_min,
                ..State::default()
            }),
        }
    }

    /// Whether the peer is in the ring.
    pub fn is_up(&self) -> bool {
        !self.down.load(Ordering::Acquire)
    }

    /// Records an answer from the peer.
    pub fn succeeded(&self) -> Transition {
        let mut state = self.lock();
        state.consecutive_failures = 0;
        state.next_backoff = self.policy.probe_backoff_min;
        if state.down.take().is_some() {
            self.down.store(false, Ordering::Release);
            Transition::CameBack
        } else {
            Transition::None
        }
    }

    /// Records a failed exchange with the peer.
    pub fn failed(&self, reason: &str) -> Transition {
        let mut state = self.lock();
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        state.failures += 1;
        state.last_error = Some(reason.to_owned());
        let threshold = self.policy.failures_to_down;
        if state.down.is_none() && threshold > 0 && state.consecutive_failures >= threshold {
            state.down = Some(Instant::now());
            state.times_down += 1;
            state.next_backoff = self.policy.probe_backoff_min;
            self.down.store(true, Ordering::Release);
            Transition::WentDown
        } else {
            Transition::None
        }
    }

    /// Records that the peer said it is leaving the cluster: down at once,
    /// whatever the threshold, and probed until it answers as a member
    /// that stays.
    pub fn left(&self, reason: &str) -> Transition {
        let mut state = self.lock();
        // Each answer that says so counts as a failure to serve as a member.
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        state.failures += 1;
        state.last_error = Some(reason.to_owned());
        if state.down.is_some() {
            return Transition::None;
        }
        state.down = Some(Instant::now());
        state.times_down += 1;
        state.next_backoff = self.policy.probe_backoff_min;
        self.down.store(true, Ordering::Release);
        Transition::Left
    }

    /// How long to wait before the next probe; each call doubles the next
    /// wait, up to the policy's maximum.
    pub fn next_probe_delay(&self) -> Duration {
        let mut state = self.lock();
        let delay = state.next_backoff;
        state.next_backoff = (delay * 2).min(self.policy.probe_backoff_max);
        delay
    }

    /// A snapshot for stats.
    pub fn status(&self, peer: &str) -> PeerStatus {
        let state = self.lock();
        PeerStatus {
            peer: peer.to_owned(),
            state: if state.down.is_some() {
                PeerState::Down
            } else {
                PeerState::Up
            },
            consecutive_failures: state.consecutive_failures,
            failures: state.failures,
            times_down: state.times_down,
            down_for_ms: state
                .down
                .map(|since| u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)),
            last_error: state.last_error.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // No code panics while holding it; the state stays consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goes_down_after_the_threshold_and_comes_back_on_an_answer() {
        let health = PeerHealth::new(HealthPolicy::default());
        assert_eq!(health.failed("refused"), Transition::None);
        assert_eq!(health.failed("refused"), Transition::None);
        // A success in between resets the count.
        assert_eq!(health.succeeded(), Transition::None);
        assert_eq!(health.failed("refused"), Transition::None);
        assert_eq!(health.failed("refused"), Transition::None);
        assert!(health.is_up());
        assert_eq!(health.failed("refused"), Transition::WentDown);
        assert!(!health.is_up());
        assert_eq!(health.failed("refused"), Transition::None);
        let status = health.status("p");
        assert_eq!(status.state, PeerState::Down);
        assert_eq!(status.times_down, 1);
        assert_eq!(status.last_error.as_deref(), Some("refused"));
        assert_eq!(health.succeeded(), Transition::CameBack);
        assert!(health.is_up());
        assert_eq!(health.status("p").consecutive_failures, 0);
    }

    #[test]
    fn probe_back_off_doubles_up_to_the_maximum() {
        let policy = HealthPolicy {
            failures_to_down: 1,
            probe_backoff_min: Duration::from_millis(100),
            probe_backoff_max: Duration::from_millis(350),
            ..HealthPolicy::default()
        };
        let health = PeerHealth::new(policy);
        health.failed("timeout");
        let delays: Vec<u128> = (0..4)
            .map(|_| health.next_probe_delay().as_millis())
            .collect();
        assert_eq!(delays, [100, 200, 350, 350]);
        health.succeeded();
        assert_eq!(health.next_probe_delay().as_millis(), 100);
    }

    #[test]
    fn a_zero_threshold_never_takes_a_peer_down() {
        let health = PeerHealth::new(HealthPolicy {
            failures_to_down: 0,
            ..HealthPolicy::default()
        });
        for _ in 0..100 {
            assert_eq!(health.failed("x"), Transition::None);
        }
        assert!(health.is_up());
    }
}
