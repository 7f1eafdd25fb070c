//! The origin breaker: loads pause while the origin is unreachable, stale
//! values stand in, one trial decides, and a key's own failures never
//! open it.

use super::support::*;
use peercache::clock::ManualClock;
use peercache::{loader_fn, Error, Group, LoadError, Node};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const COOL_DOWN: Duration = Duration::from_secs(5);

/// How the origin answers.
const UP: u8 = 0;
const UNREACHABLE: u8 = 1;
const BAD_ROW: u8 = 2;
const HANGS: u8 = 3;

struct Db {
    mode: AtomicU8,
    calls: AtomicUsize,
}

fn group(
    clock: &Arc<ManualClock>,
    build: impl FnOnce(peercache::GroupBuilder<'_>) -> peercache::GroupBuilder<'_>,
) -> (Group, Arc<Db>) {
    let db = Arc::new(Db {
        mode: AtomicU8::new(UP),
        calls: AtomicUsize::new(0),
    });
    let origin = Arc::clone(&db);
    let node = Node::new();
    let builder = node
        .group_builder("rows")
        .origin_breaker(3, COOL_DOWN)
        .clock(Arc::clone(clock) as _);
    let group = build(builder)
        .build(loader_fn(move |key: String| {
            let origin = Arc::clone(&origin);
            async move {
                origin.calls.fetch_add(1, Ordering::SeqCst);
                match origin.mode.load(Ordering::SeqCst) {
                    UP if key.starts_with("missing") => Err(LoadError::NotFound),
                    UP => Ok(format!("row {key}")),
                    UNREACHABLE => Err(LoadError::unavailable("connection refused")),
                    BAD_ROW => Err(LoadError::msg("malformed row")),
                    _ => {
                        std::future::pending::<()>().await;
                        unreachable!()
                    }
                }
            }
        }))
        .unwrap();
    (group, db)
}

fn calls(db: &Db) -> usize {
    db.calls.load(Ordering::SeqCst)
}

#[tokio::test]
async fn an_unreachable_origin_is_spared_and_stale_values_stand_in() {
    let clock = ManualClock::starting_now();
    let (rows, db) = group(&clock, |b| {
        b.ttl(TTL).stale_if_error(Duration::from_secs(3600))
    });
    for i in 0..10 {
        rows.get(&format!("k{i}")).await.unwrap();
    }
    db.mode.store(UNREACHABLE, Ordering::SeqCst);
    clock.advance(TTL);
    // Three loads find the origin unreachable; the rest are not tried.
    for round in 0..5 {
        for i in 0..10 {
            let key = format!("k{i}");
            assert_eq!(
                text(rows.get(&key).await),
                format!("row {key}"),
                "round {round}"
            );
        }
    }
    assert_eq!(calls(&db), 10 + 3, "the origin saw 3 attempts, not 50");
    let stats = rows.stats();
    assert_eq!((stats.loads_failed_fast, stats.stale_if_error), (47, 50));
    // A key with no stale value fails fast, naming the breaker.
    let error = rows.get("new").await.unwrap_err();
    assert!(
        matches!(error, Error::OriginDown { failures: 3, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("origin_breaker"), "{error}");
    // After the cool-down, one trial; the origin is back: loads resume.
    db.mode.store(UP, Ordering::SeqCst);
    clock.advance(COOL_DOWN);
    assert_eq!(text(rows.get("new").await), "row new");
    for i in 0..10 {
        rows.get(&format!("k{i}")).await.unwrap();
    }
    assert_eq!(calls(&db), 13 + 1 + 10);
}

#[tokio::test]
async fn a_failed_trial_pauses_loads_again_and_a_hung_one_is_followed_by_another() {
    let clock = ManualClock::starting_now();
    let (rows, db) = group(&clock, |b| b);
    db.mode.store(UNREACHABLE, Ordering::SeqCst);
    for i in 0..3 {
        assert!(matches!(
            rows.get(&format!("a{i}")).await,
            Err(Error::Load { .. })
        ));
    }
    assert!(matches!(rows.get("b").await, Err(Error::OriginDown { .. })));
    clock.advance(COOL_DOWN);
    assert!(
        matches!(rows.get("c").await, Err(Error::Load { .. })),
        "the trial, failed"
    );
    assert!(matches!(rows.get("d").await, Err(Error::OriginDown { .. })));
    assert_eq!(calls(&db), 4);
    // A trial that never ends.
    db.mode.store(HANGS, Ordering::SeqCst);
    clock.advance(COOL_DOWN);
    let hung = tokio::spawn({
        let rows = rows.clone();
        async move { rows.get("e").await }
    });
    until("the trial is at the origin", async || calls(&db) == 5).await;
    assert!(matches!(rows.get("f").await, Err(Error::OriginDown { .. })));
    db.mode.store(UP, Ordering::SeqCst);
    clock.advance(COOL_DOWN);
    assert_eq!(
        text(rows.get("g").await),
        "row g",
        "a new trial, which closes it"
    );
    assert_eq!(text(rows.get("h").await), "row h");
    hung.abort();
}

#[tokio::test]
async fn a_keys_own_failures_and_not_found_never_open_it() {
    let clock = ManualClock::starting_now();
    let (rows, db) = group(&clock, |b| b);
    db.mode.store(BAD_ROW, Ordering::SeqCst);
    for i in 0..10 {
        assert!(matches!(
            rows.get(&format!("bad{i}")).await,
            Err(Error::Load { .. })
        ));
    }
    db.mode.store(UP, Ordering::SeqCst);
    for i in 0..10 {
        assert!(rows
            .get(&format!("missing{i}"))
            .await
            .unwrap_err()
            .is_not_found());
    }
    // Two unreachable, then an answer: the count starts again.
    db.mode.store(UNREACHABLE, Ordering::SeqCst);
    for i in 0..2 {
        rows.get(&format!("u{i}")).await.unwrap_err();
    }
    db.mode.store(BAD_ROW, Ordering::SeqCst);
    rows.get("bad").await.unwrap_err();
    db.mode.store(UNREACHABLE, Ordering::SeqCst);
    for i in 2..4 {
        assert!(matches!(
            rows.get(&format!("u{i}")).await,
            Err(Error::Load { .. })
        ));
    }
    assert_eq!(rows.stats().loads_failed_fast, 0);
    assert_eq!(calls(&db), 10 + 10 + 2 + 1 + 2);
}

#[tokio::test]
async fn the_load_timeout_counts_and_a_batch_is_a_load_per_key_with_a_one_key_trial() {
    let clock = ManualClock::starting_now();
    let (rows, db) = group(&clock, |b| b.load_timeout(Duration::from_millis(5)));
    db.mode.store(HANGS, Ordering::SeqCst);
    for i in 0..3 {
        assert!(matches!(
            rows.get(&format!("t{i}")).await,
            Err(Error::LoadTimeout { .. })
        ));
    }
    let answers = rows.get_many(&["x", "y", "z"]).await;
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Err(Error::OriginDown { .. }))),
        "{answers:?}"
    );
    assert_eq!(rows.stats().loads_failed_fast, 3);
    assert_eq!(calls(&db), 3);
    // The trial of a batch is one key; the others wait for its verdict.
    db.mode.store(UP, Ordering::SeqCst);
    clock.advance(COOL_DOWN);
    let answers = rows.get_many(&["x", "y", "z"]).await;
    assert_eq!(text(answers[0].clone()), "row x");
    assert!(
        answers[1..]
            .iter()
            .all(|a| matches!(a, Err(Error::OriginDown { .. }))),
        "{answers:?}"
    );
    assert_eq!(calls(&db), 4);
    assert!(
        rows.get_many(&["y", "z"]).await.iter().all(Result::is_ok),
        "closed"
    );
    // A batch whose every key finds the origin unreachable counts each.
    db.mode.store(UNREACHABLE, Ordering::SeqCst);
    let answers = rows.get_many(&["u1", "u2", "u3"]).await;
    assert!(
        answers.iter().all(|a| matches!(a, Err(Error::Load { .. }))),
        "{answers:?}"
    );
    assert!(
        matches!(rows.get("u4").await, Err(Error::OriginDown { .. })),
        "open after 3 keys"
    );
}

#[test]
fn a_breaker_of_zero_failures_or_no_cool_down_is_refused() {
    let node = Node::new();
    let loader = || loader_fn(|k: String| async move { Ok(k) });
    for (failures, cool_down) in [(0, COOL_DOWN), (3, Duration::ZERO)] {
        let error = node
            .group_builder("g")
            .origin_breaker(failures, cool_down)
            .build(loader())
            .unwrap_err();
        assert!(error.to_string().contains("origin_breaker"), "{error}");
    }
}
