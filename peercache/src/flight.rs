//! Merging concurrent loads of one key (Go's `singleflight`).
//!
//! [`Flight::run`] starts the work for a key unless the same key is already
//! in flight, in which case the caller waits for the running work and gets a
//! clone of its result. It differs from Go's `singleflight` on purpose:
//!
//! - **The work survives its first caller.** The first caller's [`Call`]
//!   runs the work when it is polled, in its own task: no task to spawn and
//!   schedule for the common miss with one caller (40 % off the miss
//!   benchmark; BENCHMARKS.md). If that caller is cancelled (its future
//!   dropped) before the work ends, the work is handed to a task on the
//!   runtime given to [`Flight::run`] and still completes,
//!   and every other waiter gets the result; the key leaves the in-flight
//!   table when the work ends, not when its first caller goes away. If the
//!   runtime shuts down before the work ends, the waiters get [`Panicked`]
//!   ("ended without a result"), never a hang. As with any future, a first
//!   caller that holds its call without polling it holds up the others.
//! - **A panic is an answer, not a hang.** The work runs under
//!   `catch_unwind`; a panic becomes [`Panicked`] for every waiter, and the
//!   key is free to run again at once. (golang/groupcache wedges the key.)
//!
//! The table is a `std::sync::Mutex<HashMap>`: it is held only to look up,
//! insert or remove an entry, never across an `.await`, so a blocking mutex
//! is both correct and cheaper than tokio's. Each run's result is handed to
//! the other waiters through a small slot of its own (a mutex, the wakers,
//! then the result), written by hand because `futures`' `Shared` needs the
//! work to be its own future, polled by whichever waiter comes, where here
//! the first caller drives it and the others only wait.
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

use futures_util::FutureExt;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// The work for a key panicked (or it ended without a result: its task was
/// torn down with the runtime).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Panicked {
    /// The panic message, when it was a string; otherwise a description.
    pub message: String,
}

/// The work of one run, its panics caught.
type Work<T> = Pin<Box<dyn Future<Output = Result<T, Panicked>> + Send>>;

/// A table of in-flight work, one entry per key.
pub struct Flight<T> {
    calls: Arc<Mutex<Table<T>>>,
}

/// The in-flight runs by key, each with the serial number of its run, so a
/// finished run removes its own entry and never a newer run's.
struct Table<T> {
    /// Keyed with foldhash, seeded per process (keys come from the
    /// network; SipHash cost a miss about 20 ns more).
    calls: HashMap<Arc<str>, (u64, Arc<Slot<T>>), foldhash::fast::RandomState>,
    next_serial: u64,
}

impl<T> Default for Flight<T> {
    fn default() -> Self {
        Flight {
            calls: Arc::new(Mutex::new(Table {
                calls: HashMap::default(),
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

/// Where the other waiters of a run find its result.
struct Slot<T> {
    state: Mutex<SlotState<T>>,
}

enum SlotState<T> {
    Waiting(Vec<Waker>),
    Done(Result<T, Panicked>),
}

impl<T: Clone> Slot<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores the result and wakes every waiter.
    fn publish(&self, result: Result<T, Panicked>) {
        let waiting = std::mem::replace(&mut *self.lock(), SlotState::Done(result));
        if let SlotState::Waiting(wakers) = waiting {
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    /// The result if there is one, else leaves the waiter's waker (in
    /// place of the one it left before, `left`).
    fn poll(&self, cx: &mut Context<'_>, left: &mut Option<Waker>) -> Poll<Result<T, Panicked>> {
        match &mut *self.lock() {
            SlotState::Done(result) => Poll::Ready(result.clone()),
            SlotState::Waiting(wakers) => {
                let waker = cx.waker();
                if !left.as_ref().is_some_and(|l| l.will_wake(waker)) {
                    if let Some(old) = left.take() {
                        wakers.retain(|w| !w.will_wake(&old));
                    }
                    wakers.push(waker.clone());
                    *left = Some(waker.clone());
                }
                Poll::Pending
            }
        }
    }

    /// Takes back a waiter's waker when it goes away before the result, so
    /// abandoned waits do not pile up behind a long load.
    fn leave(&self, left: &Waker) {
        if let SlotState::Waiting(wakers) = &mut *self.lock() {
            if let Some(at) = wakers.iter().position(|w| w.will_wake(left)) {
                wakers.swap_remove(at);
            }
        }
    }
}

/// What a run must do when its work ends: leave the table, then hand the
/// result to the other waiters. Dropped before that (its task torn down
/// with the runtime), it hands them [`Panicked`] instead.
struct Finish<T: Clone> {
    slot: Arc<Slot<T>>,
    table: Arc<Mutex<Table<T>>>,
    key: Arc<str>,
    serial: u64,
    done: bool,
}

impl<T: Clone> Finish<T> {
    /// Ends the run: out of the table, then `result()` published to the
    /// callers that joined it. With none (the common case of a key asked
    /// once), nothing is published and `result` is not called: a follower
    /// can only take the slot from the table, under its lock, so once the
    /// entry is gone and no one else holds the slot, no one ever will.
    fn complete(&mut self, result: impl FnOnce() -> Result<T, Panicked>) {
        // Leave the table before the result is handed out, so a caller that
        // arrives after this point starts afresh (and, in a group, finds the
        // value in the cache that the work just filled). Only this run's own
        // entry: after a `forget`, a newer run may own it.
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table
            .calls
            .get(&self.key)
            .is_some_and(|(serial, _)| *serial == self.serial)
        {
            table.calls.remove(&self.key);
        }
        drop(table);
        self.done = true;
        if Arc::strong_count(&self.slot) > 1 {
            self.slot.publish(result());
        }
    }
}

impl<T: Clone> Drop for Finish<T> {
    fn drop(&mut self) {
        if !self.done {
            self.complete(|| {
                Err(Panicked {
                    message: "the load ended without a result (its task was dropped: the \
                              runtime shut down)"
                        .to_owned(),
                })
            });
        }
    }
}

/// A run the first caller drives.
struct Lead<T: Clone> {
    work: Work<T>,
    finish: Finish<T>,
    runtime: tokio::runtime::Handle,
}

/// A waiter's handle on a run: a future of its result. The first caller's
/// call runs the work when polled (see the module docs); the others wait
/// for its result.
#[must_use = "a call does nothing unless awaited; the first caller's runs the work"]
pub struct Call<T: Clone + Send + 'static> {
    state: CallState<T>,
}

enum CallState<T: Clone> {
    Leading(Lead<T>),
    /// The run's slot, and the waker this call left there, if any.
    Following(Arc<Slot<T>>, Option<Waker>),
    Ended,
}

impl<T: Clone + Send + 'static> Future for Call<T> {
    type Output = Result<T, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // `Call` holds no self-references (the work is boxed), so it is
        // `Unpin` and its state can be taken by value.
        match &mut self.state {
            CallState::Leading(lead) => {
                let result = std::task::ready!(lead.work.as_mut().poll(cx));
                // Out of the call first: whatever happens next (a panicking
                // clone or waker), the finished work is never handed on and
                // polled again, and `Finish` still publishes once.
                if let CallState::Leading(mut lead) =
                    std::mem::replace(&mut self.state, CallState::Ended)
                {
                    lead.finish.complete(|| result.clone());
                }
                Poll::Ready(result)
            }
            CallState::Following(slot, left) => {
                let result = std::task::ready!(slot.poll(cx, left));
                self.state = CallState::Ended;
                Poll::Ready(result)
            }
            CallState::Ended => panic!("a flight::Call polled after it returned its result"),
        }
    }
}

impl<T: Clone + Send + 'static> Drop for Call<T> {
    fn drop(&mut self) {
        if let CallState::Following(slot, Some(left)) = &self.state {
            slot.leave(left);
        }
        if let CallState::Leading(lead) = std::mem::replace(&mut self.state, CallState::Ended) {
            // The first caller went away before the work ended: the work
            // goes on in a task of its own, for the other waiters and the
            // cache. (If the runtime is shutting down, the task is dropped
            // and `Finish` hands the waiters `Panicked`.)
            let Lead {
                work,
                mut finish,
                runtime,
            } = lead;
            drop(runtime.spawn(async move {
                let result = work.await;
                finish.complete(|| result);
            }));
        }
    }
}

impl<T: Clone + Send + 'static> std::fmt::Debug for Call<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let role = match self.state {
            CallState::Leading(_) => "leading",
            CallState::Following(..) => "following",
            CallState::Ended => "ended",
        };
        f.debug_struct("Call").field("state", &role).finish()
    }
}

impl<T: Clone + Send + 'static> Flight<T> {
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

    /// Runs `work()` for `key`, or joins the run already in flight for it;
    /// the returned call is a future of its result. `work` is called only
    /// when this call leads; the work then runs as the call is polled, and
    /// in a task on `runtime` if the call is dropped before the work ends.
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
        self.run_keyed(runtime, key, |_| work())
    }

    /// [`Flight::run`], handing `work` the key as the table keeps it (a
    /// shared copy), so that work which needs the key owned does not copy
    /// it again.
    pub fn run_keyed<F, Fut>(
        &self,
        runtime: &tokio::runtime::Handle,
        key: &str,
        work: F,
    ) -> (Role, Call<T>)
    where
        F: FnOnce(&Arc<str>) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let mut table = self.lock();
        if let Some((_, slot)) = table.calls.get(key) {
            let state = CallState::Following(Arc::clone(slot), None);
            return (Role::Follower, Call { state });
        }
        // One copy of the key, shared by the table, the work and the run's
        // `Finish`.
        let key: Arc<str> = Arc::from(key);
        // `work()` before the entry goes in: if the closure itself panics,
        // the key stays free (the table's lock tolerates the poison).
        let work = AssertUnwindSafe(work(&key)).catch_unwind().map(|caught| {
            caught.map_err(|payload| Panicked {
                message: panic_message(payload.as_ref()),
            })
        });
        let serial = table.next_serial;
        table.next_serial += 1;
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState::Waiting(Vec::new())),
        });
        table
            .calls
            .insert(Arc::clone(&key), (serial, Arc::clone(&slot)));
        drop(table);
        let lead = Lead {
            work: Box::pin(work),
            finish: Finish {
                slot,
                table: Arc::clone(&self.calls),
                key,
                serial,
                done: false,
            },
            runtime: runtime.clone(),
        };
        let state = CallState::Leading(lead);
        (Role::Leader, Call { state })
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
mod tests;
