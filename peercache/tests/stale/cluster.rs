//! Origin protection across in-process nodes: cached not-found answers
//! shared with askers, hot copies refreshed from the owner, and the owner's
//! stale values served to peers.

use super::support::*;
use peercache::clock::ManualClock;
use peercache::in_process::InProcessNetwork;
use peercache::ring::{HashMode, Ring, DEFAULT_REPLICAS};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn a_not_found_is_asked_of_the_origin_once_per_window_cluster_wide() {
    let origin = Arc::new(Origin::default());
    let clock = ManualClock::starting_now();
    let (groups, _nodes, ring) = cluster(&clock, &origin, |b| {
        b.cache_not_found(Duration::from_secs(30))
    });
    let key = key_of(&ring, "a", "missing");
    for _ in 0..5 {
        for group in &groups {
            assert!(group.get(&key).await.unwrap_err().is_not_found());
        }
        let answers = groups[2].get_many(&[key.as_str()]).await;
        assert!(answers[0].as_ref().unwrap_err().is_not_found());
    }
    assert_eq!(
        origin.calls(),
        1,
        "one origin call in the window, cluster-wide"
    );
    // The askers cached the owner's answer (one fetch each), until its expiry.
    for group in &groups[1..] {
        let stats = group.stats();
        assert!(stats.negative_hits >= 4, "{stats:?}");
        assert_eq!(stats.hot_cache.items, 1);
    }
    clock.advance(Duration::from_secs(30));
    for group in &groups {
        assert!(group.get(&key).await.unwrap_err().is_not_found());
    }
    assert_eq!(origin.calls(), 2, "asked again once the window passed");
}

#[tokio::test]
async fn a_hot_copy_past_expiry_is_served_while_the_owner_is_asked_in_the_background() {
    let origin = Arc::new(Origin::default());
    let clock = ManualClock::starting_now();
    // No maximum age for hot copies: past it, a copy is dropped and asked
    // of the owner at once, stale window or not.
    let (groups, _nodes, ring) = cluster(&clock, &origin, |b| {
        b.ttl(TTL)
            .stale_while_revalidate(Duration::from_secs(60))
            .hot_max_age(Duration::ZERO)
    });
    let key = key_of(&ring, "b", "k");
    assert_eq!(text(groups[0].get(&key).await), format!("{key}#1"));
    assert_eq!(groups[0].stats().hot_cache.items, 1);
    clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(
        text(groups[0].get(&key).await),
        format!("{key}#1"),
        "the stale hot copy"
    );
    assert_eq!(groups[0].stats().stale_served, 1);
    until("the hot copy is refreshed from the owner", async || {
        groups[0].get(&key).await.unwrap().as_str().unwrap() == format!("{key}#2")
    })
    .await;
    assert_eq!(origin.calls(), 2, "the owner refreshed once");
    assert_eq!(groups[1].stats().refreshes, 1);
}

#[tokio::test]
async fn the_owner_serves_its_stale_value_to_a_peer_when_the_origin_fails() {
    let origin = Arc::new(Origin::default());
    let clock = ManualClock::starting_now();
    let (groups, _nodes, ring) = cluster(&clock, &origin, |b| {
        b.ttl(TTL).stale_if_error(Duration::from_secs(600))
    });
    let key = key_of(&ring, "c", "k");
    assert_eq!(text(groups[2].get(&key).await), format!("{key}#1"));
    origin.down.store(true, Ordering::SeqCst);
    clock.advance(TTL * 2);
    // `a` holds no copy: the owner answers with its stale value.
    let stale = groups[0].get(&key).await.unwrap();
    assert_eq!(stale.as_str().unwrap(), format!("{key}#1"));
    assert!(
        stale.expires_at().is_some(),
        "its expiry is kept, in the past"
    );
    assert_eq!(groups[2].stats().stale_if_error, 1);
    assert_eq!(
        groups[0].stats().hot_cache.items,
        0,
        "an expired value is not copied"
    );
    let answers = groups[1].get_many(&[key.as_str()]).await;
    assert_eq!(
        text(answers.into_iter().next().unwrap()),
        format!("{key}#1")
    );
}

#[tokio::test]
async fn an_asker_keeps_the_owners_not_found_at_most_its_own_ttl_and_only_if_it_caches_them() {
    let origin = Arc::new(Origin::default());
    let clock = ManualClock::starting_now();
    let network = InProcessNetwork::new();
    let ids = ["a", "b"];
    let ring = Ring::with_peers(HashMode::Golang, DEFAULT_REPLICAS, ids).unwrap();
    // The owner `a` caches not-found for an hour; `b`, for 10 s.
    let mut groups = Vec::new();
    let mut nodes = Vec::new();
    for (id, ttl) in [("a", 3600), ("b", 10)] {
        let node = network.node(id, &ids).unwrap();
        groups.push(
            node.group_builder("g")
                .cache_not_found(Duration::from_secs(ttl))
                .clock(Arc::clone(&clock) as _)
                .build(origin.loader())
                .unwrap(),
        );
        nodes.push(node);
    }
    let key = key_of(&ring, "a", "missing");
    assert!(groups[1].get(&key).await.unwrap_err().is_not_found());
    assert!(groups[1].get(&key).await.unwrap_err().is_not_found());
    assert_eq!(groups[0].stats().server_requests, 1, "b kept the answer");
    clock.advance(Duration::from_secs(10));
    assert!(groups[1].get(&key).await.unwrap_err().is_not_found());
    assert_eq!(
        groups[0].stats().server_requests,
        2,
        "b kept it 10 s, its own TTL"
    );
    assert_eq!(origin.calls(), 1, "the owner still holds its not-found");
    // A node that does not cache not-found asks every time.
    let plain = network.node("c", &ids).unwrap();
    let plain = plain
        .group_builder("g")
        .clock(Arc::clone(&clock) as _)
        .build(origin.loader())
        .unwrap();
    for _ in 0..3 {
        assert!(plain.get(&key).await.unwrap_err().is_not_found());
    }
    assert_eq!(groups[0].stats().server_requests, 5);
    assert_eq!(plain.stats().hot_cache.items, 0);
}
