//! The breaker (`GroupBuilder::breaker`), on a manual clock: after the
//! loader fails a number of times in a row, loads fail at once for the
//! cool-down without calling it; then one trial load decides whether it
//! closes or opens again. Not-found answers are not failures.

use peercache::clock::ManualClock;
use peercache::{batch_loader_fn, loader_fn, Error, Group, LoadError, Node};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const COOL_DOWN: Duration = Duration::from_secs(10);

/// A group whose loader fails while `down` is set, and answers not-found
/// for keys starting with `missing`; its calls are counted.
fn group(clock: &Arc<ManualClock>) -> (Group, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let down = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let (d, c) = (Arc::clone(&down), Arc::clone(&calls));
    let group = Node::new()
        .group_builder("g")
        .clock(clock.clone())
        .breaker(3, COOL_DOWN)
        .build(loader_fn(move |key: String| {
            c.fetch_add(1, Ordering::SeqCst);
            let down = d.load(Ordering::SeqCst);
            async move {
                if key.starts_with("missing") {
                    Err(LoadError::NotFound)
                } else if down {
                    Err(LoadError::msg("connection refused"))
                } else {
                    Ok(format!("v:{key}"))
                }
            }
        }))
        .unwrap();
    (group, down, calls)
}

fn open(answer: Result<peercache::Value, Error>) -> Duration {
    match answer {
        Err(Error::BreakerOpen {
            failures, retry_in, ..
        }) => {
            assert!(failures >= 3, "{failures}");
            retry_in
        }
        other => panic!("expected BreakerOpen, got {other:?}"),
    }
}

#[tokio::test]
async fn failures_in_a_row_open_it_a_trial_closes_it() {
    let clock = ManualClock::starting_now();
    let (group, down, calls) = group(&clock);
    for i in 0..3 {
        assert!(matches!(
            group.get(&format!("k{i}")).await,
            Err(Error::Load { .. })
        ));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Open: refused at once, the loader not called.
    assert_eq!(open(group.get("k3").await), COOL_DOWN);
    clock.advance(Duration::from_secs(4));
    assert_eq!(open(group.get("k4").await), Duration::from_secs(6));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(group.stats().loads_refused, 2);
    let message = group.get("k5").await.unwrap_err().to_string();
    assert!(message.contains("failed 3 times in a row"), "{message}");
    // The cool-down ends: one trial, which fails: open again.
    clock.advance(Duration::from_secs(6));
    assert!(matches!(group.get("k6").await, Err(Error::Load { .. })));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(open(group.get("k7").await), COOL_DOWN);
    // The origin is back; after the cool-down the trial closes it.
    down.store(false, Ordering::SeqCst);
    clock.advance(COOL_DOWN);
    assert_eq!(group.get("k8").await.unwrap().as_str().unwrap(), "v:k8");
    assert_eq!(group.get("k9").await.unwrap().as_str().unwrap(), "v:k9");
    assert_eq!(calls.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn not_found_is_not_a_failure_and_a_success_resets_the_count() {
    let clock = ManualClock::starting_now();
    let (group, down, calls) = group(&clock);
    for i in 0..10 {
        assert!(group
            .get(&format!("missing-{i}"))
            .await
            .unwrap_err()
            .is_not_found());
    }
    for i in 0..2 {
        assert!(group.get(&format!("a{i}")).await.is_err());
    }
    down.store(false, Ordering::SeqCst);
    group.get("ok").await.unwrap();
    down.store(true, Ordering::SeqCst);
    for i in 0..2 {
        assert!(matches!(
            group.get(&format!("b{i}")).await,
            Err(Error::Load { .. })
        ));
    }
    // Two, one success, two: never three in a row.
    assert_eq!(calls.load(Ordering::SeqCst), 15);
    assert_eq!(group.stats().loads_refused, 0);
}

#[tokio::test]
async fn a_batch_call_counts_once() {
    let clock = ManualClock::starting_now();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let group = Node::new()
        .group_builder("g")
        .clock(clock.clone())
        .breaker(2, COOL_DOWN)
        .build(batch_loader_fn(move |_keys: Vec<String>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Err::<Vec<(String, String)>, _>(LoadError::msg("down")) }
        }))
        .unwrap();
    let first = group.get_many(&["a", "b", "c"]).await;
    assert!(first.iter().all(|a| matches!(a, Err(Error::Load { .. }))));
    let second = group.get_many(&["d", "e"]).await;
    assert!(second.iter().all(|a| matches!(a, Err(Error::Load { .. }))));
    let third = group.get_many(&["f", "g"]).await;
    assert!(third
        .iter()
        .all(|a| matches!(a, Err(Error::BreakerOpen { .. }))));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(group.stats().loads_refused, 2);
}

#[test]
fn a_breaker_without_failures_or_cool_down_is_refused() {
    for (failures, cool_down) in [(0, COOL_DOWN), (3, Duration::ZERO)] {
        let error = Node::new()
            .group_builder("g")
            .breaker(failures, cool_down)
            .build(loader_fn(|k: String| async move { Ok(k) }))
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::InvalidSetting {
                    setting: "breaker",
                    ..
                }
            ),
            "{error}"
        );
    }
}
