//! What hits served under a shared lock must tell the policy, replayed in
//! order under the exclusive one.
//!
//! A group serves main-cache hits under the read side of its lock, so that
//! hits on several threads do not queue behind one another. But a hit must
//! also count its key in the frequency sketch and move its entry (to the
//! front of its list, or from probation to protected), which needs
//! exclusive access. So the hit only *records* its entry's slot here (one
//! atomic increment and one store), and the cache replays the records,
//! oldest first, at the start of every method that takes `&mut self`,
//! before it changes anything:
//!
//! - every change to the cache happens through `&mut`, which replays first,
//!   so a recorded slot still holds the entry that was hit when it is
//!   replayed (no slot is freed or reused in between);
//! - records are replayed in the order their readers claimed their places,
//!   which is an order the hits could have happened in;
//! - when the log is full, [`RecencyLog::record`] says so and the hit is
//!   served under the exclusive lock instead, where it replays the log and
//!   applies its own hit. No hit's move is ever dropped.
//!
//! One case is cheaper: a hit on the newest entry of the window or of
//! protected, while nothing is waiting to be replayed, moves nothing. It
//! only counts a *repeat* of that entry, with a plain load and store (no
//! read-modify-write; racing readers may lose an increment, which only
//! makes a count approximate), and stops counting at the sketch's largest
//! count, so repeated hits on one key write no shared memory at all. (The
//! window's climber so sees at most 15 such hits between two changes: a
//! key hit over and over is a hit at any share, so what it teaches the
//! climber is little.)
//!
//! This is the read buffer of Caffeine (Java) and moka, made lossless; it
//! is a few lines, so it is written here rather than taken from a crate.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Places in the log: 1 KiB per cache. A writer empties it, so it only fills
/// when 256 hits on entries other than the newest come between two writes.
const CAPACITY: usize = 256;

/// The most repeats counted between two replays.
const MAX_REPEATS: u32 = super::sketch::MAX_COUNT as u32;

/// Slots hit since the last replay, in the order they were hit.
pub(crate) struct RecencyLog {
    /// The next free place; may run past the end while the log is full.
    next: AtomicUsize,
    places: Box<[AtomicU32]>,
    /// Hits on the newest entry of the window (0) and of protected (1)
    /// while the log was empty.
    repeats: [AtomicU32; 2],
}

impl RecencyLog {
    pub(crate) fn new() -> Self {
        RecencyLog {
            next: AtomicUsize::new(0),
            places: (0..CAPACITY).map(|_| AtomicU32::new(0)).collect(),
            repeats: [AtomicU32::new(0), AtomicU32::new(0)],
        }
    }

    /// Records a hit of `slot`; `false` when the log is full, in which case
    /// the caller must serve the hit with exclusive access instead.
    ///
    /// Relaxed ordering is enough: the replay happens under the exclusive
    /// side of the lock the recording reader held, whose release and acquire
    /// make these stores visible.
    #[inline]
    pub(crate) fn record(&self, slot: u32) -> bool {
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

    /// Counts a hit on the newest entry of the window (`which` 0) or of
    /// protected (1), found while [`RecencyLog::is_idle`].
    #[inline]
    pub(crate) fn repeat(&self, which: usize) {
        let count = &self.repeats[which & 1];
        let seen = count.load(Ordering::Relaxed);
        if seen < MAX_REPEATS {
            count.store(seen + 1, Ordering::Relaxed);
        }
    }

    /// True when nothing is waiting to be replayed.
    pub(crate) fn is_empty(&mut self) -> bool {
        *self.next.get_mut() == 0 && self.repeats.iter_mut().all(|r| *r.get_mut() == 0)
    }

    /// Takes the repeats of the window's and protected's newest entries:
    /// they came before every record, so apply them before
    /// [`RecencyLog::replay`].
    pub(crate) fn take_repeats(&mut self) -> [u32; 2] {
        self.repeats.each_mut().map(|r| std::mem::take(r.get_mut()))
    }

    /// Empties the log, calling `hit` on each recorded slot, oldest first.
    pub(crate) fn replay(&mut self, mut hit: impl FnMut(u32)) {
        let recorded = (*self.next.get_mut()).min(CAPACITY);
        for place in &mut self.places[..recorded] {
            hit(*place.get_mut());
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
        for slot in 0..CAPACITY as u32 {
            assert!(log.record(slot));
        }
        assert!(!log.record(CAPACITY as u32), "a full log must refuse");
        assert!(!log.is_idle());
        assert!(!log.is_empty());
        let mut seen = Vec::new();
        assert_eq!(log.take_repeats(), [0, 0]);
        log.replay(|slot| seen.push(slot));
        assert_eq!(seen, (0..CAPACITY as u32).collect::<Vec<_>>());
        assert!(log.is_empty());
        assert!(log.record(7), "a replayed log takes records again");
        let mut seen = Vec::new();
        log.replay(|slot| seen.push(slot));
        assert_eq!(seen, [7]);
    }

    #[test]
    fn repeats_are_counted_up_to_the_largest_count() {
        let mut log = RecencyLog::new();
        for _ in 0..3 {
            log.repeat(0);
        }
        for _ in 0..100 {
            log.repeat(1);
        }
        assert!(!log.is_empty() && log.is_idle());
        assert_eq!(log.take_repeats(), [3, MAX_REPEATS]);
        log.replay(|_| unreachable!("nothing was recorded"));
        assert!(log.is_empty());
    }
}
