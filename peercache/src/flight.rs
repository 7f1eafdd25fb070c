//! Merging concurrent loads of one key (Go's `singleflight`).
//!
//! [`Flight::run`] starts the work for a key unless the same key is already
//! in flight, in which case the caller waits for the running work and gets a
//! clone of its result. It differs from Go's `singleflight` on purpose:
//!
//! - **The work is spawned** on the tokio runtime. If the caller that started
//!   it is cancelled (its future dropped), the work still completes and every
//!   other waiter gets the result; the key leaves the in-flight table when the
//!   work ends, not when its first caller goes away.
//! - **A panic is an answer, not a hang.** The work runs under
//!   `catch_unwind`; a panic becomes [`Panicked`] for every waiter, and the
//!   key is free to run again at once. (golang/groupcache wedges the key.)
//!
//! The table is a `std::sync::Mutex<HashMap>`: it is held only to look up,
//! insert or remove an entry, never across an `.await`, so a blocking mutex
//! is both correct and cheaper than tokio's.
//!
//! This module depends on nothing else in the crate and can be used alone.
//!
//! ```
//! use peercache::flight::{Flight, Role};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let flight = Flight::<String>::new();
//! let runtime = tokio::runtime::Handle::current();
//!
//! // Two callers ask for one key before the work has run: one run, shared.
//! let (role_1, first) = flight.run(&runtime, "user:7", || async { "ada".to_owned() });
//! let (role_2, second) = flight.run(&runtime, "user:7", || async { unreachable!("joined") });
//! assert_eq!((role_1, role_2), (Role::Leader, Role::Follower));
//! assert_eq!(flight.in_flight(), 1);
//!
//! assert_eq!(first.await, Ok("ada".to_owned()));
//! assert_eq!(second.await, Ok("ada".to_owned()));
//! assert_eq!(flight.in_flight(), 0); // the next run of the key starts afresh
//! # }
//! ```
//!
//! A panic reaches every waiter as [`Panicked`] instead of hanging them:
//!
//! ```
//! use peercache::flight::Flight;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let flight = Flight::<u32>::new();
//! let runtime = tokio::runtime::Handle::current();
//! let (_, call) = flight.run(&runtime, "k", || async { panic!("the source broke") });
//! let error = call.await.unwrap_err();
//! assert_eq!(error.message, "panicked: the source broke");
//! # }
//! ```

use futures_util::future::{BoxFuture, FutureExt, Shared};
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

/// The work for a key panicked (or its task was torn down with the runtime).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Panicked {
    /// The panic message, when it was a string; otherwise a description.
    pub message: String,
}

/// A handle on a run in flight: a future of its result, clonable so that
/// every waiter gets the same result.
pub type Call<T> = Shared<BoxFuture<'static, Result<T, Panicked>>>;

/// A table of in-flight work, one entry per key.
pub struct Flight<T> {
    calls: Arc<Mutex<Table<T>>>,
}

/// The in-flight calls by key, each with the serial number of its run, so a
/// finished run removes its own entry and never a newer run's.
struct Table<T> {
    calls: HashMap<String, (u64, Call<T>)>,
    next_serial: u64,
}

impl<T> Default for Flight<T> {
    fn default() -> Self {
        Flight {
            calls: Arc::new(Mutex::new(Table {
                calls: HashMap::new(),
                next_serial: 0,
            })),
        }
    }
}

/// How a [`Flight::run`] call was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This call started the work.
    Leader,
    /// This call joined work already in flight.
    Follower,
}

impl<T: Clone + Send + Sync + 'static> Flight<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys in flight right now.
    pub fn in_flight(&self) -> usize {
        self.lock().calls.len()
    }

    /// Detaches the run in flight for `key`, if any: it completes and its
    /// waiters get its result, but the next [`Flight::run`] of the key starts
    /// a new run instead of joining it. A group calls this when the key is
    /// removed or set, so no get that starts afterwards is handed a value
    /// loaded before.
    pub fn forget(&self, key: &str) {
        self.lock().calls.remove(key);
    }

    /// Detaches every run in flight (see [`Flight::forget`]).
    pub fn forget_all(&self) {
        self.lock().calls.clear();
    }

    /// Runs `work()` for `key`, or joins the run already in flight for it, and
    /// returns its result. `work` is called only when this call leads, and is
    /// spawned with `runtime` so it completes even if every caller goes away.
    pub fn run<F, Fut>(
        &self,
        runtime: &tokio::runtime::Handle,
        key: &str,
        work: F,
    ) -> (Role, Call<T>)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let mut table_guard = self.lock();
        if let Some((_, call)) = table_guard.calls.get(key) {
            return (Role::Follower, call.clone());
        }
        let serial = table_guard.next_serial;
        table_guard.next_serial += 1;
        let table = Arc::clone(&self.calls);
        let owned_key = key.to_owned();
        let work = AssertUnwindSafe(work()).catch_unwind();
        let task = runtime.spawn(async move {
            let result = work.await.map_err(|payload| Panicked {
                message: panic_message(payload.as_ref()),
            });
            // Leave the table before the result is handed out, so a caller
            // that arrives after this point starts afresh (and, in a group,
            // finds the value in the cache that the work just filled). Only
            // this run's own entry: after a `forget`, a newer run may own it.
            let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
            if table
                .calls
                .get(&owned_key)
                .is_some_and(|(s, _)| *s == serial)
            {
                table.calls.remove(&owned_key);
            }
            drop(table);
            result
        });
        let call: Call<T> = async move {
            task.await.unwrap_or_else(|join_error| {
                Err(Panicked {
                    message: format!("load task ended without a result: {join_error}"),
                })
            })
        }
        .boxed()
        .shared();
        table_guard
            .calls
            .insert(key.to_owned(), (serial, call.clone()));
        (Role::Leader, call)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table<T>> {
        // Nothing panics while the table is locked, but if a poisoned lock
        // ever appears the table itself is still consistent: keep going.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Best-effort text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        format!("panicked: {text}")
    } else if let Some(text) = payload.downcast_ref::<String>() {
        format!("panicked: {text}")
    } else {
        "panicked with a non-text payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
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
}
