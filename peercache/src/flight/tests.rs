use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::oneshot;

#[tokio::test]
async fn concurrent_runs_share_one_call() {
    let flight = Flight::<u32>::new();
    let rt = tokio::runtime::Handle::current();
    let calls = Arc::new(AtomicUsize::new(0));
    let (release, gate) = oneshot::channel::<()>();
    let c = calls.clone();
    let (role, first) = flight.run(&rt, "k", move || async move {
        c.fetch_add(1, Ordering::SeqCst);
        gate.await.unwrap();
        7
    });
    assert_eq!(role, Role::Leader);
    let mut followers = Vec::new();
    for _ in 0..9 {
        let (role, f) = flight.run(&rt, "k", || async { unreachable!() });
        assert_eq!(role, Role::Follower);
        followers.push(f);
    }
    release.send(()).unwrap();
    assert_eq!(first.await, Ok(7));
    for f in followers {
        assert_eq!(f.await, Ok(7));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(flight.in_flight(), 0);
}

#[tokio::test]
async fn panic_reaches_every_waiter_and_frees_the_key() {
    let flight = Flight::<u32>::new();
    let rt = tokio::runtime::Handle::current();
    let (release, gate) = oneshot::channel::<()>();
    let (_, a) = flight.run(&rt, "k", move || async move {
        gate.await.unwrap();
        panic!("boom");
    });
    let (_, b) = flight.run(&rt, "k", || async { 0 });
    release.send(()).unwrap();
    let expected = Err(Panicked {
        message: "panicked: boom".into(),
    });
    assert_eq!(a.await, expected);
    assert_eq!(b.await, expected);
    let (role, c) = flight.run(&rt, "k", || async { 3 });
    assert_eq!(role, Role::Leader);
    assert_eq!(c.await, Ok(3));
}

#[tokio::test]
async fn a_forgotten_run_finishes_without_removing_its_successor() {
    let flight = Flight::<u32>::new();
    let rt = tokio::runtime::Handle::current();
    let (release_old, old_gate) = oneshot::channel::<()>();
    let (_, old) = flight.run(&rt, "k", move || async move {
        old_gate.await.unwrap();
        1
    });
    flight.forget("k");
    let (release_new, new_gate) = oneshot::channel::<()>();
    let (role, new) = flight.run(&rt, "k", move || async move {
        new_gate.await.unwrap();
        2
    });
    assert_eq!(role, Role::Leader, "a forgotten run must not be joined");
    release_old.send(()).unwrap();
    assert_eq!(old.await, Ok(1));
    // The old run ended; the new one is still in flight and joinable.
    let (role, joined) = flight.run(&rt, "k", || async { unreachable!() });
    assert_eq!(role, Role::Follower);
    release_new.send(()).unwrap();
    assert_eq!(new.await, Ok(2));
    assert_eq!(joined.await, Ok(2));
    assert_eq!(flight.in_flight(), 0);
}

#[tokio::test]
async fn the_first_caller_runs_the_work_in_place() {
    let flight = Flight::<u32>::new();
    let rt = tokio::runtime::Handle::current();
    let (role, call) = flight.run(&rt, "k", || async { 5 });
    assert_eq!(role, Role::Leader);
    // Ready on the first poll: no task was spawned and waited for.
    assert_eq!(call.now_or_never(), Some(Ok(5)));
    assert_eq!(flight.in_flight(), 0);
}

#[tokio::test]
async fn a_dropped_first_caller_hands_the_work_on() {
    let flight = Flight::<u32>::new();
    let rt = tokio::runtime::Handle::current();
    let calls = Arc::new(AtomicUsize::new(0));
    let (release, gate) = oneshot::channel::<()>();
    let c = calls.clone();
    let (_, mut first) = flight.run(&rt, "k", move || async move {
        c.fetch_add(1, Ordering::SeqCst);
        gate.await.unwrap();
        9
    });
    // The leader starts the work, then goes away mid-way.
    assert!((&mut first).now_or_never().is_none());
    let (role, second) = flight.run(&rt, "k", || async { unreachable!() });
    assert_eq!(role, Role::Follower);
    drop(first);
    release.send(()).unwrap();
    assert_eq!(second.await, Ok(9));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the work ran once");
    assert_eq!(flight.in_flight(), 0);
}

#[test]
fn waiters_get_an_error_not_a_hang_when_the_runtime_goes_away() {
    let flight = Flight::<u32>::new();
    let gone = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (_, first) = flight.run(gone.handle(), "k", std::future::pending::<u32>);
    let (_, second) = flight.run(gone.handle(), "k", || async { unreachable!() });
    // Handed to a task of `gone`, which never runs it, then shut down.
    drop(first);
    drop(gone);
    let waiter = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let result = waiter.block_on(second);
    assert!(
        matches!(&result, Err(p) if p.message.contains("ended without a result")),
        "{result:?}"
    );
    assert_eq!(flight.in_flight(), 0);
}

#[tokio::test]
async fn a_closure_that_panics_leaves_the_key_free() {
    let flight = Flight::<u32>::new();
    let rt = tokio::runtime::Handle::current();
    let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let _ = flight.run(&rt, "k", || -> std::future::Ready<u32> {
            panic!("bad key")
        });
    }));
    assert!(panicked.is_err());
    assert_eq!(flight.in_flight(), 0);
    let (role, call) = flight.run(&rt, "k", || async { 4 });
    assert_eq!(
        role,
        Role::Leader,
        "the key must not be held by the failed run"
    );
    assert_eq!(call.await, Ok(4));
}

#[tokio::test]
async fn waiters_that_go_away_take_their_wakers_back() {
    let flight = Flight::<u32>::new();
    let rt = tokio::runtime::Handle::current();
    let (_, mut leader) = flight.run(&rt, "k", std::future::pending::<u32>);
    assert!((&mut leader).now_or_never().is_none());
    let waiting = || {
        let table = flight.lock();
        let (_, slot) = &table.calls["k"];
        let count = match &*slot.lock() {
            SlotState::Waiting(wakers) => wakers.len(),
            SlotState::Done(_) => unreachable!("the work never ends"),
        };
        count
    };
    // A hundred gets that time out, each in a task of its own.
    for _ in 0..100 {
        let (_, follower) = flight.run(&rt, "k", || async { unreachable!() });
        let task = tokio::spawn(follower);
        tokio::task::yield_now().await;
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
    }
    assert_eq!(waiting(), 0, "abandoned waiters' wakers piled up");
    // One still waiting, polled twice by the same task: one waker.
    let (_, mut follower) = flight.run(&rt, "k", || async { unreachable!() });
    assert!((&mut follower).now_or_never().is_none());
    assert!((&mut follower).now_or_never().is_none());
    assert_eq!(waiting(), 1);
    drop(follower);
    assert_eq!(waiting(), 0);
}
