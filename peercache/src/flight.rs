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
    calls: Arc<Mutex<HashMap<String, Call<T>>>>,
}

impl<T> Default for Flight<T> {
    fn default() -> Self {
        Flight {
            calls: Arc::new(Mutex::new(HashMap::new())),
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
        self.lock().len()
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
        let mut calls = self.lock();
        if let Some(call) = calls.get(key) {
            return (Role::Follower, call.clone());
        }
        let table = Arc::clone(&self.calls);
        let owned_key = key.to_owned();
        let work = AssertUnwindSafe(work()).catch_unwind();
        let task = runtime.spawn(async move {
            let result = work.await.map_err(|payload| Panicked {
                message: panic_message(payload.as_ref()),
            });
            // Leave the table before the result is handed out, so a caller
            // that arrives after this point starts afresh (and, in a group,
            // finds the value in the cache that the work just filled).
            table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&owned_key);
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
        calls.insert(key.to_owned(), call.clone());
        (Role::Leader, call)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Call<T>>> {
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
}
