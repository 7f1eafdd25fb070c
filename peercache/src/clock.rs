//! The wall clock that decides when values expire.
//!
//! Expiry is wall-clock time (the wire's `expire` is Unix nanoseconds, so
//! that a hot copy on another node expires when the owner's copy does), and a
//! group reads it through a [`Clock`] so that tests can move time by hand
//! ([`ManualClock`]) instead of sleeping. Production code uses
//! [`SystemClock`], the default.
//!
//! Nodes are assumed to keep their clocks in sync (NTP): a node whose clock
//! is ahead drops values early, one that is behind serves them for as long
//! as it is behind.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, in Unix nanoseconds.
///
/// Give one to a group with [`crate::GroupBuilder::clock`]. Besides
/// [`SystemClock`] and [`ManualClock`], any type can be a clock:
///
/// ```
/// use peercache::clock::{Clock, SystemClock};
/// use peercache::{loader_fn, Node};
/// use std::sync::Arc;
///
/// /// The system clock, one second ahead (values expire a second early).
/// struct Early;
///
/// impl Clock for Early {
///     fn now_unix_nanos(&self) -> i64 {
///         SystemClock.now_unix_nanos() + 1_000_000_000
///     }
/// }
///
/// # fn main() -> Result<(), peercache::Error> {
/// let node = Node::new();
/// node.group_builder("g")
///     .clock(Arc::new(Early))
///     .build(loader_fn(|k: String| async move { Ok(k) }))?;
/// # Ok(())
/// # }
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Now, as nanoseconds since the Unix epoch.
    fn now_unix_nanos(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_nanos(&self) -> i64 {
        unix_nanos(SystemTime::now())
    }
}

/// A clock that moves only when told to: for tests of expiry.
///
/// ```
/// use peercache::clock::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::starting_now();
/// let before = clock.now_unix_nanos();
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now_unix_nanos() - before, 60_000_000_000);
/// ```
///
/// Its constructors return an `Arc`, ready for
/// [`crate::GroupBuilder::clock`]; keep a clone to move time (see
/// [`crate::GroupBuilder::ttl`] for a whole test):
///
/// ```
/// use peercache::clock::ManualClock;
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let clock = ManualClock::at(start);
/// clock.advance(Duration::from_millis(1500));
/// assert_eq!(clock.now(), start + Duration::from_millis(1500));
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicI64,
}

impl ManualClock {
    /// A clock stopped at the current system time.
    pub fn starting_now() -> Arc<Self> {
        Arc::new(ManualClock {
            nanos: AtomicI64::new(unix_nanos(SystemTime::now())),
        })
    }

    /// A clock stopped at `at`.
    pub fn at(at: SystemTime) -> Arc<Self> {
        Arc::new(ManualClock {
            nanos: AtomicI64::new(unix_nanos(at)),
        })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        self.nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(by))
            })
            .ok();
    }

    /// The clock's time as a [`SystemTime`].
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.now_unix_nanos().max(0).unsigned_abs())
    }
}

impl Clock for ManualClock {
    fn now_unix_nanos(&self) -> i64 {
        self.nanos.load(Ordering::SeqCst)
    }
}

/// `at` as Unix nanoseconds, saturating; 0 for instants before 1970.
pub(crate) fn unix_nanos(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
