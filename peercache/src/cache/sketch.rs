//! How often keys are asked, approximately: a count-min sketch for the hot
//! cache's admission ([`crate::HotCachePolicy::Frequent`]).
//!
//! golang/groupcache mirrors a key fetched from its owner with probability
//! 1/10, whatever its popularity: a key asked a thousand times a second
//! crosses the network about ten times before it sticks, and a key asked
//! once has the same chance as a hot one to push a hot entry out. The
//! TinyLFU idea fixes both: count how often each key is asked (in a sketch of
//! fixed size, not per key), admit a fetched key at once while the budget
//! has room, and under pressure only when it is asked more often than the
//! hot entry it would evict.
//!
//! Four rows of 8-bit counters, saturating at 255; a key increments one
//! counter per row (picked by four slices of one 64-bit hash) and its
//! estimate is the smallest of the four. Every `10 × width` increments all
//! counters are halved, so the sketch follows what is popular now rather
//! than what was popular an hour ago. Written by hand: it lives inside the
//! group's cache lock and needs no atomics, and the crates that offer one
//! (in moka, or standalone) either bring their own concurrency or are not
//! separable from their cache.

use std::hash::BuildHasher;

/// Counters per row.
const WIDTH: usize = 4096;
/// Rows (independent hashes).
const ROWS: usize = 4;
/// Increments between two halvings.
const SAMPLE: u32 = 10 * WIDTH as u32;

/// Approximate per-key counts over a recent window.
pub(crate) struct Sketch {
    counters: Box<[[u8; WIDTH]; ROWS]>,
    hasher: foldhash::fast::FixedState,
    increments: u32,
}

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sketch")
            .field("increments", &self.increments)
            .finish()
    }
}

impl Sketch {
    pub(crate) fn new() -> Self {
        Sketch {
            counters: Box::new([[0; WIDTH]; ROWS]),
            hasher: foldhash::fast::FixedState::with_seed(0x9e37_79b9_7f4a_7c15),
            increments: 0,
        }
    }

    fn slots(&self, key: &str) -> [usize; ROWS] {
        let hash = self.hasher.hash_one(key);
        // Four 16-bit slices of one hash, each reduced to a column.
        std::array::from_fn(|row| ((hash >> (16 * row)) as usize) & (WIDTH - 1))
    }

    /// Counts one request for `key`.
    pub(crate) fn record(&mut self, key: &str) {
        let slots = self.slots(key);
        for (row, &slot) in slots.iter().enumerate() {
            let counter = &mut self.counters[row][slot];
            *counter = counter.saturating_add(1);
        }
        self.increments += 1;
        if self.increments >= SAMPLE {
            self.halve();
        }
    }

    /// How often `key` was asked recently (never below the truth, above it
    /// only when keys collide in every row).
    pub(crate) fn estimate(&self, key: &str) -> u8 {
        let slots = self.slots(key);
        slots
            .iter()
            .enumerate()
            .map(|(row, &slot)| self.counters[row][slot])
            .min()
            .unwrap_or(0)
    }

    fn halve(&mut self) {
        for row in self.counters.iter_mut() {
            for counter in row.iter_mut() {
                *counter /= 2;
            }
        }
        self.increments = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_never_underestimated() {
        let mut sketch = Sketch::new();
        for i in 0..2000u32 {
            for _ in 0..(i % 7) {
                sketch.record(&format!("key-{i}"));
            }
        }
        for i in 0..2000u32 {
            assert!(u32::from(sketch.estimate(&format!("key-{i}"))) >= i % 7);
        }
        assert_eq!(sketch.estimate("never-asked-0"), 0);
    }

    #[test]
    fn popular_keys_stand_out_and_old_counts_fade() {
        let mut sketch = Sketch::new();
        for _ in 0..50 {
            sketch.record("hot");
        }
        for i in 0..1000 {
            sketch.record(&format!("cold-{i}"));
        }
        assert!(sketch.estimate("hot") >= 50);
        assert!(sketch.estimate("cold-7") < 5);
        // A window of other traffic halves what "hot" had.
        for i in 0..SAMPLE {
            sketch.record(&format!("other-{}", i % 5000));
        }
        assert!(sketch.estimate("hot") <= 30, "{}", sketch.estimate("hot"));
    }

    #[test]
    fn counters_saturate_instead_of_wrapping() {
        let mut sketch = Sketch::new();
        for _ in 0..1000 {
            sketch.record("k");
        }
        assert_eq!(sketch.estimate("k"), 255);
    }
}
