//! The recency of hits served under a shared lock, replayed in order under
//! the exclusive one.
//!
//! A group serves main-cache hits under the read side of a `RwLock`, so that
//! hits on several threads do not queue behind one another. But a hit must
//! also mark its entry most recently used, which relinks the LRU list and
//! needs exclusive access. So the hit only *records* its entry's slot here
//! (one atomic increment and one store), and the cache replays the records,
//! oldest first, at the start of every method that takes `&mut self`,
//! before it changes anything.
//!
//! That keeps the LRU order exact, not approximate:
//!
//! - every change to the cache happens through `&mut`, which replays first,
//!   so a recorded slot still holds the entry that was hit when it is
//!   replayed (no slot is freed or reused in between);
//! - records are replayed in the order their readers claimed their places,
//!   which is an order the hits could have happened in;
//! - when the log is full, [`RecencyLog::record`] says so and the hit is
//!   served under the exclusive lock instead, where it replays the log and
//!   touches its entry itself. No hit's recency is ever dropped.
//!
//! This is the read buffer of Caffeine (Java) and moka, made lossless for
//! the exact-LRU policy groupcache specifies; it is a few lines, so it is
//! written here rather than taken from a crate.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Places in the log: 2 KiB per cache. A writer empties it, so it only fills
/// when 256 hits on entries other than the newest come between two writes.
const CAPACITY: usize = 256;

/// Slots hit since the last replay, in the order they were hit.
pub(crate) struct RecencyLog {
    /// The next free place; may run past the end while the log is full.
    next: AtomicUsize,
    places: Box<[AtomicUsize]>,
}

impl RecencyLog {
    pub(crate) fn new() -> Self {
        RecencyLog {
            next: AtomicUsize::new(0),
            places: (0..CAPACITY).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Records a hit of `slot`; `false` when the log is full, in which case
    /// the caller must serve the hit with exclusive access instead.
    ///
    /// Relaxed ordering is enough: the replay happens under the exclusive
    /// side of the lock the recording reader held, whose release and acquire
    /// make these stores visible.
    #[inline]
    pub(crate) fn record(&self, slot: usize) -> bool {
        let at = self.next.fetch_add(1, Ordering::Relaxed);
        match self.places.get(at) {
            Some(place) => {
                place.store(slot, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// True when no hit is waiting to be replayed, seen from a reader: then
    /// the list's order is the true one, and a hit on its newest entry needs
    /// no record. (A record racing with this check is of a concurrent hit,
    /// which may as well have come second.)
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        self.next.load(Ordering::Relaxed) == 0
    }

    /// True when nothing is waiting to be replayed.
    pub(crate) fn is_empty(&mut self) -> bool {
        *self.next.get_mut() == 0
    }

    /// Empties the log, calling `touch` on each recorded slot, oldest first.
    pub(crate) fn replay(&mut self, mut touch: impl FnMut(usize)) {
        let recorded = (*self.next.get_mut()).min(CAPACITY);
        for place in &mut self.places[..recorded] {
            touch(*place.get_mut());
        }
        *self.next.get_mut() = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_in_order_and_refuses_when_full() {
        let mut log = RecencyLog::new();
        assert!(log.is_empty() && log.is_idle());
        for slot in 0..CAPACITY {
            assert!(log.record(slot));
        }
        assert!(!log.record(CAPACITY), "a full log must refuse");
        assert!(!log.is_idle());
        assert!(!log.is_empty());
        let mut seen = Vec::new();
        log.replay(|slot| seen.push(slot));
        assert_eq!(seen, (0..CAPACITY).collect::<Vec<_>>());
        assert!(log.is_empty());
        assert!(log.record(7), "a replayed log takes records again");
        let mut seen = Vec::new();
        log.replay(|slot| seen.push(slot));
        assert_eq!(seen, [7]);
    }
}
