//! The pieces of the hit-ratio harness (`src/bin/hitratio.rs`) that are
//! worth a test: reading a trace, a byte-weighted LRU, and Bélády's optimum.
//! Written here rather than taken from a crate: each is a few dozen lines,
//! and the harness must know exactly what its baselines do.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// A trace: its requests as dense key ids, and each key's size (0 when the
/// trace gives none; a key's first size when it gives several).
#[derive(Debug, Default)]
pub struct Trace {
    /// Key ids, in request order.
    pub requests: Vec<u32>,
    /// The key of each id, as the trace spells it.
    pub keys: Vec<String>,
    /// The size of each id's value, in bytes.
    pub sizes: Vec<u64>,
}

impl Trace {
    /// Reads a gzip trace: one request per line, `KEY` or `KEY SIZE`.
    pub fn read(path: &Path) -> std::io::Result<Trace> {
        let file = std::fs::File::open(path)?;
        Trace::parse(BufReader::new(flate2::read::GzDecoder::new(file)))
    }

    /// Reads a trace's text: one request per line, `KEY` or `KEY SIZE`.
    pub fn parse(text: impl BufRead) -> std::io::Result<Trace> {
        let mut trace = Trace::default();
        let mut ids: HashMap<String, u32> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line?;
            let mut fields = line.split_ascii_whitespace();
            let Some(key) = fields.next() else { continue };
            let size = match fields.next() {
                None => 0,
                Some(size) => size.parse().map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("line {}: size {size:?}: {e}", n + 1),
                    )
                })?,
            };
            let id = match ids.get(key) {
                Some(id) => *id,
                None => {
                    let id = u32::try_from(trace.keys.len()).map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "over 2^32 keys")
                    })?;
                    ids.insert(key.to_owned(), id);
                    trace.keys.push(key.to_owned());
                    trace.sizes.push(size);
                    id
                }
            };
            trace.requests.push(id);
        }
        Ok(trace)
    }

    /// The mean of `size` over the distinct keys.
    pub fn mean_size(&self, size: &impl Fn(u32) -> u64) -> u64 {
        let keys = self.keys.len() as u64;
        if keys == 0 {
            return 0;
        }
        (0..keys as u32).map(size).sum::<u64>() / keys
    }
}

/// A least-recently-used cache of key ids within a byte budget: what
/// golang/groupcache does.
#[derive(Debug)]
pub struct Lru {
    budget: u64,
    used: u64,
    tick: u64,
    entries: HashMap<u32, (u64, u64)>,
    order: BTreeMap<u64, u32>,
}

impl Lru {
    /// An empty cache of `budget` bytes.
    pub fn new(budget: u64) -> Self {
        Lru {
            budget,
            used: 0,
            tick: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// A request for `key` of `size` bytes: whether it hit. A miss is
    /// cached, evicting the least recently used, unless it is larger than
    /// the whole budget.
    pub fn access(&mut self, key: u32, size: u64) -> bool {
        self.tick += 1;
        if let Some((tick, _)) = self.entries.get_mut(&key) {
            self.order.remove(tick);
            *tick = self.tick;
            self.order.insert(self.tick, key);
            return true;
        }
        if size > self.budget {
            return false;
        }
        while self.used + size > self.budget {
            let (_, oldest) = self.order.pop_first().expect("used > 0 means an entry");
            let (_, freed) = self
                .entries
                .remove(&oldest)
                .expect("in order means in entries");
            self.used -= freed;
        }
        self.entries.insert(key, (self.tick, size));
        self.order.insert(self.tick, key);
        self.used += size;
        false
    }
}

/// Hits of Bélády's rule on `requests` within `budget`: evict the entry
/// used again farthest in the future, and do not admit a key used again
/// later than every entry it would displace. Optimal when every size is
/// the same; with sizes, a heuristic.
pub fn opt(requests: &[u32], budget: u64, size: impl Fn(u32) -> u64) -> usize {
    const NEVER: usize = usize::MAX;
    let mut next = vec![NEVER; requests.len()];
    let mut seen: HashMap<u32, usize> = HashMap::new();
    for (i, key) in requests.iter().enumerate().rev() {
        if let Some(later) = seen.insert(*key, i) {
            next[i] = later;
        }
    }
    // key -> its next use; the heap holds (next use, key), stale entries
    // skipped when they surface.
    let mut cached: HashMap<u32, usize> = HashMap::new();
    let mut heap: BinaryHeap<(usize, u32)> = BinaryHeap::new();
    let mut used = 0;
    let mut hits = 0;
    for (i, &key) in requests.iter().enumerate() {
        if let Some(next_use) = cached.get_mut(&key) {
            hits += 1;
            *next_use = next[i];
            heap.push((next[i], key));
            continue;
        }
        let bytes = size(key);
        if bytes > budget || next[i] == NEVER {
            continue;
        }
        while used + bytes > budget {
            let (farthest, victim) = *heap.peek().expect("used > 0 means an entry");
            if cached.get(&victim) != Some(&farthest) {
                heap.pop();
                continue;
            }
            if farthest <= next[i] {
                break;
            }
            heap.pop();
            cached.remove(&victim);
            used -= size(victim);
        }
        if used + bytes <= budget {
            cached.insert(key, next[i]);
            heap.push((next[i], key));
            used += bytes;
        }
    }
    hits
}

/// Hits of S3-FIFO (Yang et al., SOSP 2023) within `budget`, byte-weighted:
/// a small FIFO of `small` of the budget takes new keys; one read again
/// while there moves to the main FIFO when it leaves, others leave a ghost
/// (key only); a miss on a ghost goes straight to main; main gives each
/// entry read since it was last passed over one more round (a 2-bit
/// count). A candidate for the main cache, simulated here to be measured.
pub fn s3fifo(requests: &[u32], budget: u64, small: f64, size: impl Fn(u32) -> u64) -> usize {
    use std::collections::{HashSet, VecDeque};
    #[derive(Clone, Copy, PartialEq)]
    enum Queue {
        Small,
        Main,
    }
    let small_budget = ((budget as f64) * small) as u64;
    let mut entries: HashMap<u32, (Queue, u8)> = HashMap::new();
    let (mut small_q, mut main_q) = (VecDeque::new(), VecDeque::new());
    let (mut small_used, mut main_used) = (0u64, 0u64);
    let mut ghosts: VecDeque<u32> = VecDeque::new();
    let mut ghost_set: HashSet<u32> = HashSet::new();
    let mut hits = 0;
    for &key in requests {
        if let Some((_, freq)) = entries.get_mut(&key) {
            *freq = (*freq + 1).min(3);
            hits += 1;
            continue;
        }
        let bytes = size(key);
        if bytes > budget {
            continue;
        }
        // Make room: from small while it holds its share, else from main.
        while small_used + main_used + bytes > budget {
            if small_used > small_budget || main_q.is_empty() {
                let Some(victim) = small_q.pop_front() else {
                    break;
                };
                let (_, freq) = entries[&victim];
                small_used -= size(victim);
                if freq > 0 {
                    entries.insert(victim, (Queue::Main, 0));
                    main_q.push_back(victim);
                    main_used += size(victim);
                } else {
                    entries.remove(&victim);
                    if ghost_set.insert(victim) {
                        ghosts.push_back(victim);
                    }
                    // As many ghosts as the cache holds entries.
                    while ghosts.len() > entries.len().max(1) {
                        if let Some(old) = ghosts.pop_front() {
                            ghost_set.remove(&old);
                        }
                    }
                }
            } else {
                let victim = main_q.pop_front().expect("not empty");
                let entry = entries.get_mut(&victim).expect("queued means cached");
                if entry.1 > 0 {
                    entry.1 -= 1;
                    main_q.push_back(victim);
                } else {
                    entries.remove(&victim);
                    main_used -= size(victim);
                }
            }
        }
        if ghost_set.remove(&key) {
            entries.insert(key, (Queue::Main, 0));
            main_q.push_back(key);
            main_used += bytes;
        } else {
            entries.insert(key, (Queue::Small, 0));
            small_q.push_back(key);
            small_used += bytes;
        }
    }
    debug_assert!(entries
        .values()
        .all(|(q, _)| *q == Queue::Small || *q == Queue::Main));
    hits
}

/// Keys in recency order with their sizes: a segment of a simulated cache.
#[derive(Debug, Default)]
struct Segment {
    used: u64,
    order: BTreeMap<u64, u32>,
    ticks: HashMap<u32, (u64, u64)>,
}

impl Segment {
    fn push(&mut self, key: u32, size: u64, tick: u64) {
        self.order.insert(tick, key);
        self.ticks.insert(key, (tick, size));
        self.used += size;
    }

    fn remove(&mut self, key: u32) -> Option<u64> {
        let (tick, size) = self.ticks.remove(&key)?;
        self.order.remove(&tick);
        self.used -= size;
        Some(size)
    }

    fn oldest(&self) -> Option<u32> {
        self.order.first_key_value().map(|(_, key)| *key)
    }
}

/// Hits of W-TinyLFU (Einziger, Friedman, Manes, 2017) within `budget`,
/// byte-weighted: new keys enter an LRU window of `window` of the budget;
/// one leaving it enters the main SLRU (a probation fifth, a protected
/// rest) only if it was seen more often than the probation entry it would
/// evict. Frequencies are exact counts, capped at 15 and halved every ten
/// times as many requests as the cache holds entries (what a count-min
/// sketch with aging approximates). The fixed-window policy as published,
/// beside peercache's climbing one.
pub fn wtinylfu(requests: &[u32], budget: u64, window: f64, size: impl Fn(u32) -> u64) -> usize {
    let window_budget = ((budget as f64) * window).max(1.0) as u64;
    let protected_budget = (budget - window_budget.min(budget)) * 4 / 5;
    let (mut win, mut probation, mut protected) =
        (Segment::default(), Segment::default(), Segment::default());
    let mut freq: HashMap<u32, u8> = HashMap::new();
    let (mut seen, mut tick, mut hits) = (0u64, 0u64, 0usize);
    for &key in requests {
        tick += 1;
        let count = freq.entry(key).or_insert(0);
        *count = (*count + 1).min(15);
        seen += 1;
        let entries = (win.ticks.len() + probation.ticks.len() + protected.ticks.len()).max(1);
        if seen >= 10 * entries as u64 {
            seen = 0;
            freq.retain(|_, c| {
                *c /= 2;
                *c > 0
            });
        }
        let hits_before = hits;
        let bytes = size(key);
        if let Some(size) = win.remove(key) {
            win.push(key, size, tick);
            hits += 1;
            continue;
        }
        if let Some(size) = protected.remove(key) {
            protected.push(key, size, tick);
            hits += 1;
            continue;
        }
        if let Some(size) = probation.remove(key) {
            protected.push(key, size, tick);
            while protected.used > protected_budget {
                let demoted = protected.oldest().expect("over budget means an entry");
                let size = protected.remove(demoted).expect("oldest is there");
                tick += 1;
                probation.push(demoted, size, tick);
            }
            hits += 1;
            continue;
        }
        debug_assert_eq!(hits, hits_before);
        if bytes > budget {
            continue;
        }
        win.push(key, bytes, tick);
        // Candidates leave the window oldest first; each enters main if
        // main has room or it beats main's victims.
        while win.used > window_budget {
            let candidate = win.oldest().expect("over budget means an entry");
            let size = win.remove(candidate).expect("oldest is there");
            let score = |k: u32| freq.get(&k).copied().unwrap_or(0);
            let mut admitted = true;
            while win.used + probation.used + protected.used + size > budget {
                let victim = probation.oldest().or_else(|| protected.oldest());
                let Some(victim) = victim else { break };
                if score(candidate) <= score(victim) {
                    admitted = false;
                    break;
                }
                probation
                    .remove(victim)
                    .or_else(|| protected.remove(victim));
            }
            if admitted && win.used + probation.used + protected.used + size <= budget {
                tick += 1;
                probation.push(candidate, size, tick);
            }
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_and_sizes() {
        let trace = Trace::parse("a\nb 10\na 99\n\nc\n".as_bytes()).unwrap();
        assert_eq!(trace.requests, [0, 1, 0, 2]);
        assert_eq!(trace.keys, ["a", "b", "c"]);
        assert_eq!(trace.sizes, [0, 10, 0]);
        assert!(Trace::parse("a x\n".as_bytes()).is_err());
    }

    #[test]
    fn lru_evicts_the_least_recent_by_bytes() {
        let mut lru = Lru::new(3);
        assert!(!lru.access(1, 1));
        assert!(!lru.access(2, 1));
        assert!(!lru.access(3, 1));
        assert!(lru.access(1, 1)); // 2 is now the oldest
        assert!(!lru.access(4, 2)); // evicts 2 and 3
        assert!(lru.access(1, 1));
        assert!(!lru.access(2, 1));
        assert!(!lru.access(5, 4)); // larger than the budget: not cached
        assert!(!lru.access(5, 4));
    }

    #[test]
    fn s3fifo_and_wtinylfu_resist_a_scan() {
        // A hot set of 4 keys read between the keys of a long scan: LRU of
        // 8 loses the hot set to the scan, S3-FIFO keeps it in main.
        let mut requests = Vec::new();
        for i in 0..2000u32 {
            requests.push(i % 4);
            requests.push(1000 + i);
        }
        let mut lru = Lru::new(5);
        let lru_hits = requests.iter().filter(|&&k| lru.access(k, 1)).count();
        let s3 = s3fifo(&requests, 5, 0.1, |_| 1);
        assert!(s3 > lru_hits + 1500, "S3-FIFO {s3}, LRU {lru_hits}");
        assert!(s3 <= opt(&requests, 5, |_| 1));
        let tiny = wtinylfu(&requests, 5, 0.2, |_| 1);
        assert!(tiny > lru_hits + 1500, "W-TinyLFU {tiny}, LRU {lru_hits}");
        assert!(tiny <= opt(&requests, 5, |_| 1));
    }

    #[test]
    fn opt_keeps_what_is_used_soonest() {
        // A loop of 3 keys through a cache of 2: LRU never hits; OPT keeps
        // two of them and never admits the third (9 hits each).
        let requests: Vec<u32> = (0..30).map(|i| i % 3).collect();
        let mut lru = Lru::new(2);
        assert_eq!(requests.iter().filter(|&&k| lru.access(k, 1)).count(), 0);
        assert_eq!(opt(&requests, 2, |_| 1), 18);
        // Never below LRU, never above the requests that repeat a key.
        let mixed: Vec<u32> = (0..500u32)
            .map(|i| (i * 7919) % 37 % (1 + i % 11))
            .collect();
        let mut lru = Lru::new(5);
        let lru_hits = mixed.iter().filter(|&&k| lru.access(k, 1)).count();
        let best = opt(&mixed, 5, |_| 1);
        let distinct = mixed.iter().collect::<std::collections::HashSet<_>>().len();
        assert!(lru_hits <= best && best <= mixed.len() - distinct);
    }
}
