//! Property test: the main + hot cache against a model of what it may hold.
//!
//! The main cache's policy decides by approximate request counts (a sketch
//! seeded randomly per process) and a window that climbs, so which entry it
//! evicts is not something a plain model can predict; `cache/tests.rs`
//! checks those decisions from inside. What any sequence of inserts, gets
//! and removes must keep, checked here after every step:
//!
//! - a get returns the value last inserted for the key, or nothing; never a
//!   removed, replaced or oversized one;
//! - a key is in one cache at most, the one it was last inserted into;
//! - bytes and item counts are exact (`len(key) + len(value)` of what the
//!   cache lists) and never over the budget;
//! - `insert` says truthfully whether the value is held, refuses an entry
//!   larger than the budget, and counts an eviction for every entry that
//!   went without being removed (the new one, if the policy turned it away).

use peercache::cache::Cache;
use peercache::CacheKind;
use peercache::Value;
use proptest::prelude::*;
use std::collections::HashMap;

fn cost(key: &str, value: &Value) -> u64 {
    (key.len() + value.len()) as u64
}

#[derive(Debug, Clone)]
enum Op {
    Insert(CacheKind, u8, usize),
    Get(u8),
    Remove(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![Just(CacheKind::Main), Just(CacheKind::Hot)];
    prop_oneof![
        4 => (kind, 0u8..24, 0usize..40).prop_map(|(k, key, len)| Op::Insert(k, key, len)),
        3 => (0u8..24).prop_map(Op::Get),
        1 => (0u8..24).prop_map(Op::Remove),
    ]
}

/// Keys of varied length, so that costs differ (including the empty key).
fn key(i: u8) -> String {
    "k".repeat(usize::from(i % 5)) + &i.to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn cache_keeps_its_rules(budget in 0u64..200, ops in prop::collection::vec(op(), 1..300)) {
        let mut cache = Cache::new(budget);
        // What each key may hold: the cache and value of its last insert.
        let mut latest: HashMap<String, (CacheKind, Value)> = HashMap::new();
        for (step, op) in ops.iter().enumerate() {
            let held_before = held(&cache);
            let evictions_before = evictions(&cache);
            let mut gone_by_request = None;
            let mut turned_away = 0;
            match op {
                Op::Insert(kind, k, len) => {
                    let key = key(*k);
                    let value = Value::new(format!("{key}:{len}:{}", "v".repeat(*len)));
                    let stored = cache.insert(*kind, &key, value.clone());
                    prop_assert_eq!(stored, cache.contains(&key), "step {}", step);
                    if cost(&key, &value) > budget {
                        prop_assert!(!stored, "an entry over the budget was stored");
                        latest.remove(&key);
                    } else {
                        turned_away = u64::from(!stored);
                        latest.insert(key.clone(), (*kind, value));
                    }
                    gone_by_request = Some(key);
                }
                Op::Get(k) => {
                    let key = key(*k);
                    let got = cache.get(&key);
                    prop_assert_eq!(got.is_some(), held_before.contains_key(&key), "step {}", step);
                    if let Some(got) = got {
                        prop_assert_eq!(Some(&got), latest.get(&key).map(|(_, v)| v), "stale at step {}", step);
                        prop_assert!(cache.contains(&key), "a hit dropped its entry");
                    }
                }
                Op::Remove(k) => {
                    let key = key(*k);
                    let removed = cache.remove(&key);
                    let expected = held_before.get(&key).map(|_| latest[&key].1.clone());
                    prop_assert_eq!(removed, expected, "step {}", step);
                    prop_assert!(!cache.contains(&key));
                    latest.remove(&key);
                    gone_by_request = Some(key);
                }
            }
            let held_after = held(&cache);
            let mut bytes = [0u64; 2];
            let mut items = [0u64; 2];
            for (key, kind) in &held_after {
                let (last_kind, value) = &latest[key];
                prop_assert_eq!(kind, last_kind, "{} in the wrong cache at step {}", key, step);
                let at = usize::from(*kind == CacheKind::Hot);
                bytes[at] += cost(key, value);
                items[at] += 1;
            }
            let (main, hot) = (cache.stats(CacheKind::Main), cache.stats(CacheKind::Hot));
            prop_assert!(cache.bytes() <= budget, "over budget at step {}", step);
            prop_assert_eq!([main.bytes, hot.bytes], bytes, "bytes at step {}", step);
            prop_assert_eq!([main.items, hot.items], items, "items at step {}", step);
            prop_assert_eq!(cache.bytes(), bytes[0] + bytes[1]);
            let gone = held_before
                .keys()
                .filter(|k| !held_after.contains_key(*k) && gone_by_request.as_ref() != Some(*k))
                .count() as u64;
            prop_assert_eq!(evictions(&cache) - evictions_before, gone + turned_away, "evictions at step {}", step);
        }
    }
}

/// Every key held, with its cache; each key in one cache only.
fn held(cache: &Cache) -> HashMap<String, CacheKind> {
    let mut held = HashMap::new();
    for kind in [CacheKind::Main, CacheKind::Hot] {
        for key in cache.keys(kind) {
            assert!(held.insert(key, kind).is_none(), "a key in two caches");
        }
    }
    held
}

fn evictions(cache: &Cache) -> u64 {
    cache.stats(CacheKind::Main).evictions + cache.stats(CacheKind::Hot).evictions
}
