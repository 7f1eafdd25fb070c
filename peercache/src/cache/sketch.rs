//! How often keys are asked, approximately: the count-min sketch behind the
//! main cache's admission and the hot cache's.
//!
//! The main cache admits a key leaving its window only if the key was asked
//! more often recently than the entry it would evict (TinyLFU, `mod.rs`);
//! [`crate::HotCachePolicy::Frequent`] does the same for a value fetched
//! from its owner. Counting every key exactly would cost a map entry per
//! key ever asked, scans included; the sketch counts in a table of fixed
//! size instead.
//!
//! Four rows of 4-bit counters, saturating at 15 (enough to tell popular
//! from not: the policies compare counts, and Caffeine caps at 15 too). A
//! key increments one counter per row, picked by double hashing of one
//! 64-bit hash, and its estimate is the smallest of its four counters: never
//! below the truth, above it only when other keys collide in every row.
//! Every ten times as many increments as the sketch is sized for, all
//! counters are halved, so the counts follow what is popular now rather than
//! an hour ago.
//!
//! The sketch grows with the cache: [`Sketch::ensure`] doubles the rows'
//! width while the cache holds more entries than half a row. A key's column
//! in the wider row is its old column or that plus the old width, so both
//! copies of each old counter keep its count and no estimate drops. Four
//! counters per cached entry per row, half a byte each: 8 bytes per entry,
//! as Caffeine spends (two counters per row measured a few tenths of a
//! point worse on the traces of BENCHMARKS.md, where collisions matter).
//!
//! The hash is foldhash seeded randomly per process: keys come from the
//! network, and a client that could predict collisions could inflate the
//! count of its own keys to push popular ones out. Written by hand: it
//! lives inside the group's cache lock and needs no atomics, and the crates
//! that offer one (in moka, or standalone) either bring their own
//! concurrency or are not separable from their cache.

use std::hash::BuildHasher;

/// Rows (independent columns per key).
const ROWS: usize = 4;
/// Counters in one `u64`.
const PER_WORD: usize = 16;
/// The narrowest row: 4,096 counters (8 KiB for the four rows), so that
/// the counts of a small cache's keys almost never collide.
const MIN_WIDTH: usize = 4096;
/// Row width per cached entry.
const WIDTH_PER_ENTRY: usize = 4;
/// Increments between two halvings, per cached entry the sketch is sized
/// for.
const SAMPLE_PER_ENTRY: u64 = 10;
/// The largest count.
pub(crate) const MAX_COUNT: u8 = 15;

/// Approximate per-key counts over a recent window.
pub(crate) struct Sketch {
    /// Row `r`'s counter `c` is nibble `(r * width + c) % 16` of word
    /// `(r * width + c) / 16`.
    words: Vec<u64>,
    width: usize,
    hasher: foldhash::fast::RandomState,
    increments: u64,
}

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sketch")
            .field("width", &self.width)
            .field("increments", &self.increments)
            .finish()
    }
}

impl Sketch {
    pub(crate) fn new() -> Self {
        Sketch {
            words: vec![0; ROWS * MIN_WIDTH / PER_WORD],
            width: MIN_WIDTH,
            hasher: foldhash::fast::RandomState::default(),
            increments: 0,
        }
    }

    /// Widens the rows, keeping every count, until they suit a cache of
    /// `entries` entries.
    pub(crate) fn ensure(&mut self, entries: usize) {
        let wanted = entries.saturating_mul(WIDTH_PER_ENTRY);
        while self.width < wanted && self.width < usize::MAX / (2 * ROWS) {
            let old_row = self.width / PER_WORD;
            let mut words = Vec::with_capacity(2 * self.words.len());
            for row in self.words.chunks(old_row) {
                words.extend_from_slice(row);
                words.extend_from_slice(row);
            }
            self.words = words;
            self.width *= 2;
        }
    }

    /// The counter positions of `key`, one per row.
    #[inline]
    fn positions(&self, key: &(impl AsRef<[u8]> + ?Sized)) -> [usize; ROWS] {
        let hash = self.hasher.hash_one(key.as_ref());
        let (first, step) = (hash as usize, ((hash >> 32) as usize) | 1);
        let mask = self.width - 1;
        std::array::from_fn(|row| {
            row * self.width + (first.wrapping_add(row.wrapping_mul(step)) & mask)
        })
    }

    fn counter(&self, at: usize) -> u8 {
        ((self.words[at / PER_WORD] >> (4 * (at % PER_WORD))) & 0xf) as u8
    }

    /// Counts one request for `key`.
    pub(crate) fn record(&mut self, key: &(impl AsRef<[u8]> + ?Sized)) {
        for at in self.positions(key) {
            if self.counter(at) < MAX_COUNT {
                self.words[at / PER_WORD] += 1 << (4 * (at % PER_WORD));
            }
        }
        self.increments += 1;
        if self.increments >= SAMPLE_PER_ENTRY * (self.width / WIDTH_PER_ENTRY) as u64 {
            self.halve();
        }
    }

    /// How often `key` was asked recently, at most [`MAX_COUNT`].
    pub(crate) fn estimate(&self, key: &(impl AsRef<[u8]> + ?Sized)) -> u8 {
        self.positions(key)
            .into_iter()
            .map(|at| self.counter(at))
            .min()
            .unwrap_or(0)
    }

    fn halve(&mut self) {
        for word in &mut self.words {
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
        self.increments = 0;
    }

    /// Bytes of counters (for the memory figures in the module docs).
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.words.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_never_underestimated() {
        let mut sketch = Sketch::new();
        sketch.ensure(2000);
        for i in 0..2000u32 {
            for _ in 0..(i % 7) {
                sketch.record(&format!("key-{i}"));
            }
        }
        for i in 0..2000u32 {
            assert!(u32::from(sketch.estimate(&format!("key-{i}"))) >= i % 7);
        }
        assert!(sketch.estimate("never-asked-0") <= 1);
    }

    #[test]
    fn popular_keys_stand_out_and_old_counts_fade() {
        let mut sketch = Sketch::new();
        sketch.ensure(1000);
        for _ in 0..12 {
            sketch.record("hot");
        }
        for i in 0..1000 {
            sketch.record(&format!("cold-{i}"));
        }
        assert!(sketch.estimate("hot") >= 12);
        assert!(sketch.estimate("cold-7") < 3);
        // A sample of other traffic halves what "hot" had.
        for i in 0..SAMPLE_PER_ENTRY * 1024 {
            sketch.record(&format!("other-{}", i % 5000));
        }
        assert!(sketch.estimate("hot") <= 7, "{}", sketch.estimate("hot"));
    }

    #[test]
    fn counters_saturate_instead_of_wrapping() {
        let mut sketch = Sketch::new();
        for _ in 0..100 {
            sketch.record("k");
        }
        assert_eq!(sketch.estimate("k"), MAX_COUNT);
    }

    #[test]
    fn widening_keeps_every_count() {
        let mut sketch = Sketch::new();
        sketch.ensure(100); // a sample of 1,000 increments: no halving here
        let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
        for (i, key) in keys.iter().enumerate() {
            for _ in 0..i % 5 {
                sketch.record(key);
            }
        }
        let before: Vec<u8> = keys.iter().map(|k| sketch.estimate(k)).collect();
        sketch.ensure(10_000);
        assert_eq!(sketch.width, 65_536);
        assert_eq!(sketch.bytes(), ROWS * 65_536 / 2);
        let after: Vec<u8> = keys.iter().map(|k| sketch.estimate(k)).collect();
        assert_eq!(before, after);
        for (i, count) in after.iter().enumerate() {
            assert!(usize::from(*count) >= i % 5);
        }
    }
}
