//! Property test: the main + hot cache against a plain model of groupcache's
//! policy. After every step the byte count, the contents and order of both
//! lists, the eviction counters and every returned value must match, and the
//! cache must never hold more than its budget.

use peercache::cache::Cache;
use peercache::CacheKind;
use peercache::Value;
use proptest::prelude::*;

/// The obvious implementation: two vectors, newest first, scanned linearly.
#[derive(Default)]
struct Model {
    budget: u64,
    main: Vec<(String, Value)>,
    hot: Vec<(String, Value)>,
    main_evictions: u64,
    hot_evictions: u64,
}

fn cost(entries: &[(String, Value)]) -> u64 {
    entries
        .iter()
        .map(|(k, v)| (k.len() + v.len()) as u64)
        .sum()
}

fn take(list: &mut Vec<(String, Value)>, key: &str) -> Option<Value> {
    let at = list.iter().position(|(k, _)| k == key)?;
    Some(list.remove(at).1)
}

impl Model {
    fn insert(&mut self, kind: CacheKind, key: &str, value: Value) -> bool {
        let (this, other) = match kind {
            CacheKind::Main => (&mut self.main, &mut self.hot),
            CacheKind::Hot => (&mut self.hot, &mut self.main),
        };
        take(other, key);
        take(this, key);
        if (key.len() + value.len()) as u64 > self.budget {
            return false;
        }
        this.insert(0, (key.to_owned(), value));
        while cost(&self.main) + cost(&self.hot) > self.budget {
            if cost(&self.hot) > cost(&self.main) / 8 {
                self.hot.pop();
                self.hot_evictions += 1;
            } else {
                self.main.pop();
                self.main_evictions += 1;
            }
        }
        true
    }

    fn get(&mut self, key: &str) -> Option<Value> {
        for list in [&mut self.main, &mut self.hot] {
            if let Some(value) = take(list, key) {
                list.insert(0, (key.to_owned(), value.clone()));
                return Some(value);
            }
        }
        None
    }

    fn remove(&mut self, key: &str) -> Option<Value> {
        let main = take(&mut self.main, key);
        let hot = take(&mut self.hot, key);
        main.or(hot)
    }
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

fn keys(list: &[(String, Value)]) -> Vec<String> {
    list.iter().map(|(k, _)| k.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn cache_matches_model(budget in 0u64..200, ops in prop::collection::vec(op(), 1..200)) {
        let mut cache = Cache::new(budget);
        let mut model = Model { budget, ..Model::default() };
        for (step, op) in ops.iter().enumerate() {
            match op {
                Op::Insert(kind, k, len) => {
                    let key = key(*k);
                    let value = Value::new(format!("{key}:{len}:{}", "v".repeat(*len)));
                    let stored = cache.insert(*kind, &key, value.clone());
                    prop_assert_eq!(stored, model.insert(*kind, &key, value), "step {}", step);
                }
                Op::Get(k) => {
                    let key = key(*k);
                    prop_assert_eq!(cache.get(&key), model.get(&key), "step {}", step);
                }
                Op::Remove(k) => {
                    let key = key(*k);
                    prop_assert_eq!(cache.remove(&key), model.remove(&key), "step {}", step);
                }
            }
            let (main, hot) = (cache.stats(CacheKind::Main), cache.stats(CacheKind::Hot));
            prop_assert!(cache.bytes() <= budget, "over budget at step {}", step);
            prop_assert_eq!(main.bytes, cost(&model.main), "main bytes at step {}", step);
            prop_assert_eq!(hot.bytes, cost(&model.hot), "hot bytes at step {}", step);
            prop_assert_eq!(main.items, model.main.len() as u64);
            prop_assert_eq!(hot.items, model.hot.len() as u64);
            prop_assert_eq!(cache.keys(CacheKind::Main), keys(&model.main), "main order at step {}", step);
            prop_assert_eq!(cache.keys(CacheKind::Hot), keys(&model.hot), "hot order at step {}", step);
            prop_assert_eq!(main.evictions, model.main_evictions, "main eviction choice at step {}", step);
            prop_assert_eq!(hot.evictions, model.hot_evictions, "hot eviction choice at step {}", step);
        }
    }
}
