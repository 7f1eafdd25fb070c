use super::*;

fn v(n: usize) -> Value {
    Value::new(vec![b'v'; n])
}

#[test]
fn hot_admission_by_counts_spares_popular_entries_under_pressure() {
    let mut cache = Cache::new(1000);
    // Without counting, everything is admitted.
    assert!(cache.admits_hot("x", 10_000));
    cache.count_requests();
    // 791 bytes in main; room left: admitted whatever its count.
    cache.insert(CacheKind::Main, "m", v(790));
    assert!(cache.admits_hot("small", 100));
    cache.insert(CacheKind::Hot, "h1", v(98)); // 100 bytes: hot > main/8
    for _ in 0..5 {
        assert!(cache.get("h1").is_some()); // counted: not in main
    }
    assert!(cache.get("new").is_none());
    // Over budget and hot past main/8: "new" (asked once) would evict
    // "h1" (asked five times): refused.
    assert!(!cache.admits_hot("new", 200));
    for _ in 0..6 {
        assert!(cache.get("new").is_none());
    }
    assert!(cache.admits_hot("new", 200));
    // Main hits are not counted.
    for _ in 0..50 {
        assert!(cache.get("m").is_some());
    }
    let sketch = cache.sketch.as_ref().unwrap();
    assert_eq!(sketch.estimate("m"), 0);
}

#[test]
fn hot_is_evicted_while_over_an_eighth_of_main() {
    // budget 100: main holds 80 (8 keys of 10), hot gets 3 keys of 10.
    let mut cache = Cache::new(100);
    for i in 0..8 {
        assert!(cache.insert(CacheKind::Main, &format!("m{i}"), v(8)));
    }
    for i in 0..3 {
        cache.insert(CacheKind::Hot, &format!("h{i}"), v(8));
    }
    // 110 > 100 after h2: hot (30) > main/8 (10) -> oldest hot (h0) goes.
    assert_eq!(cache.keys(CacheKind::Hot), ["h2", "h1"]);
    assert_eq!(cache.keys(CacheKind::Main).len(), 8);
    assert_eq!(cache.stats(CacheKind::Hot).evictions, 1);
    assert_eq!(cache.bytes(), 100);
}

#[test]
fn main_is_evicted_when_hot_is_small() {
    let mut cache = Cache::new(30);
    cache.insert(CacheKind::Main, "a", v(9));
    cache.insert(CacheKind::Main, "b", v(9));
    cache.insert(CacheKind::Main, "c", v(9));
    assert!(cache.get("a").is_some()); // a becomes most recent
    cache.insert(CacheKind::Main, "d", v(9));
    assert_eq!(cache.keys(CacheKind::Main), ["d", "a", "c"]);
    assert_eq!(cache.stats(CacheKind::Main).evictions, 1);
}

#[test]
fn zero_budget_stores_nothing_but_counts_gets() {
    let mut cache = Cache::new(0);
    assert!(!cache.insert(CacheKind::Main, "k", v(1)));
    assert_eq!(cache.get("k"), None);
    assert_eq!(cache.stats(CacheKind::Main).gets, 1);
    assert_eq!(cache.stats(CacheKind::Hot).gets, 1);
    assert_eq!(cache.bytes(), 0);
}

#[test]
fn oversized_entry_is_refused_and_keeps_the_rest() {
    let mut cache = Cache::new(10);
    cache.insert(CacheKind::Main, "a", v(3));
    cache.insert(CacheKind::Main, "big", v(3));
    assert!(!cache.insert(CacheKind::Main, "big", v(20)));
    assert_eq!(cache.keys(CacheKind::Main), ["a"]);
    assert_eq!(cache.bytes(), 4);
}

#[test]
fn a_key_lives_in_one_cache_only() {
    let mut cache = Cache::new(100);
    cache.insert(CacheKind::Hot, "k", v(5));
    cache.insert(CacheKind::Main, "k", v(6));
    assert!(cache.keys(CacheKind::Hot).is_empty());
    assert_eq!(cache.bytes(), 7);
    assert_eq!(cache.remove("k"), Some(v(6)));
    assert_eq!(cache.bytes(), 0);
}

#[test]
fn expired_entries_give_their_bytes_back() {
    let mut cache = Cache::new(100);
    cache.insert(CacheKind::Main, "a", v(9).with_expiry_unix_nanos(10));
    cache.insert(CacheKind::Hot, "b", v(9).with_expiry_unix_nanos(20));
    cache.insert(CacheKind::Main, "c", v(9));
    // Replacing a value moves its index entry: the old expiry is gone.
    cache.insert(CacheKind::Main, "a", v(9).with_expiry_unix_nanos(30));
    assert_eq!(cache.next_expiry(), Some(20));
    assert_eq!(cache.remove_expired(19), 0);
    assert_eq!(cache.remove_expired(20), 1);
    assert_eq!(cache.keys(CacheKind::Hot), Vec::<String>::new());
    assert_eq!(cache.bytes(), 20);
    assert_eq!(cache.remove_expired(i64::MAX), 1);
    assert_eq!(cache.keys(CacheKind::Main), ["c"]);
    assert_eq!(cache.bytes(), 10);
    assert_eq!(cache.next_expiry(), None);
    assert_eq!(cache.stats(CacheKind::Main).expired, 1);
    assert_eq!(cache.stats(CacheKind::Hot).expired, 1);
}

#[test]
fn an_expired_entry_found_by_a_get_is_dropped_not_a_hit() {
    let mut cache = Cache::new(100);
    cache.insert(CacheKind::Hot, "k", v(5).with_expiry_unix_nanos(10));
    assert_eq!(
        cache.get_unexpired("k", &|| 9),
        Some(v(5).with_expiry_unix_nanos(10))
    );
    assert_eq!(cache.get_unexpired("k", &|| 10), None);
    let hot = cache.stats(CacheKind::Hot);
    assert_eq!((hot.hits, hot.expired, hot.items, hot.bytes), (1, 1, 0, 0));
    assert_eq!(cache.next_expiry(), None);
}
