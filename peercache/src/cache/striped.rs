//! A counter that threads bump without sharing a cache line.
//!
//! The main-cache hits served under the read lock are counted by every
//! thread that hits, at the same time. One `AtomicU64` would bounce its
//! cache line between the cores on every hit (measured on the 2-core
//! machine of BENCHMARKS.md: a contended line per hit roughly doubled the
//! two-thread hit); here each thread adds to one of eight cells on cache
//! lines of their own (`crossbeam_utils::CachePadded`), picked once per
//! thread, and a read sums the cells. The sum is exact whenever the adding
//! threads have handed over through a lock or a join, as the cache's readers
//! do through the group's lock before its stats are read.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Cells per counter: threads beyond eight share cells, which stays correct
/// (the adds are atomic) and only brings some contention back.
const CELLS: usize = 8;

/// A sum of relaxed per-thread cells.
pub(crate) struct StripedCounter {
    cells: Box<[CachePadded<AtomicU64>; CELLS]>,
}

impl StripedCounter {
    pub(crate) fn new() -> Self {
        StripedCounter {
            cells: Box::new(std::array::from_fn(|_| CachePadded::new(AtomicU64::new(0)))),
        }
    }

    /// Adds one in this thread's cell.
    pub(crate) fn bump(&self) {
        self.cells[this_threads_cell()].fetch_add(1, Ordering::Relaxed);
    }

    /// The sum of the cells.
    pub(crate) fn sum(&self) -> u64 {
        self.cells
            .iter()
            .map(|cell| cell.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// This thread's cell: threads take cells in turn as they first count.
fn this_threads_cell() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static CELL: usize = NEXT.fetch_add(1, Ordering::Relaxed) % CELLS;
    }
    CELL.with(|cell| *cell)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_bump_from_many_threads() {
        let counter = StripedCounter::new();
        std::thread::scope(|scope| {
            for _ in 0..12 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        counter.bump();
                    }
                });
            }
        });
        assert_eq!(counter.sum(), 12_000);
    }
}
