//! A reader-writer lock whose read side costs one fenced store: the lock
//! around a group's cache.
//!
//! A cache hit, the common case, only reads the cache, and it is short
//! (tens of nanoseconds). Any `RwLock` makes it pay two atomic
//! read-modify-writes (count in, count out); on the hit benchmark those,
//! with the atomic that counted the hit, were the largest part of the hit
//! (`perf annotate` of `group_get_hit`, BENCHMARKS.md). Here every thread
//! has a reader slot of its own in every lock, on a cache line of its own,
//! that only it writes:
//!
//! - a read **enters** with one sequentially consistent store to its slot
//!   and a load of the `writing` flag, and **leaves** with a plain release
//!   store; the hit it serves is **counted** in the same slot by a plain
//!   store. Threads reading at once write no common cache line (the
//!   `writing` flag, which they all load, is on a line of its own and
//!   changes only when a writer comes).
//! - a **write** takes a mutex (writers queue there), sets `writing`, and
//!   waits until every slot in use reads zero. Readers that find `writing`
//!   set step back out of their slot and wait on the writers' mutex.
//!
//! Why it excludes (the store-load pairing of Dekker's algorithm): a reader
//! stores its slot, then loads `writing`; a writer stores `writing`, then
//! loads the slots. All four are `SeqCst`, so in their single total order
//! either the reader's store comes before the writer's load of that slot
//! (the writer sees the reader and waits for it to leave) or the writer's
//! store comes before the reader's load (the reader sees the writer and
//! steps out). A thread that takes a new slot after the writer read how
//! many slots are in use (`CLAIMED`) stored that count after the writer's
//! load, so after the writer's `writing` store: it sees the writer too. A
//! thread that takes a slot given back by an ended thread takes it below
//! `CLAIMED` as the writer read it (the registry's mutex orders the first
//! owner's `CLAIMED` store before the new owner's reads), so the writer
//! scans it.
//!
//! The first [`OWN_SLOTS`] threads that read any such lock get a slot
//! index for life (given back when the thread ends, for the next thread);
//! threads beyond them share one more slot, counted with read-modify-writes,
//! which is still correct and only slower. Writers scan only the slots ever
//! handed out, so a write costs a mutex and one pass over a handful of
//! slots in a process with a handful of threads (at most `OWN_SLOTS + 1`),
//! plus the wait for readers still inside.
//!
//! Written here because no crate has this shape: crossbeam's
//! `ShardedLock`, used before, still costs two read-modify-writes per read
//! plus one to count the hit elsewhere; node-replication's lock wants
//! caller-chosen thread ids and spins. The proof above is the module's whole
//! `unsafe` argument; the test at the bottom stresses it.
//!
//! A thread on the shared slot (beyond the first [`OWN_SLOTS`], or while its
//! thread-locals are being torn down) must not take the read side again
//! while it holds it, and no thread may take the write side while it holds
//! either (std's `RwLock` has the same rules). The cache's code does
//! neither itself; what user code runs under the lock (a
//! [`crate::clock::Clock`], a tracing subscriber, the drop of a value's
//! bytes) must not call back into the same group.

use crossbeam_utils::CachePadded;
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering::*;
use std::sync::PoisonError;
use sync::{AtomicBool, AtomicU64, AtomicUsize, Mutex, MutexGuard};

/// The synchronisation the lock is built from: std's, or under
/// `--cfg peercache_loom` loom's, so that the model (`mod model` below)
/// explores every interleaving of its atomics and mutexes (the data itself
/// stays in a std `UnsafeCell`; the model checks what readers see through
/// atomics in it). Not `--cfg loom`: tokio, which the crate depends on,
/// compiles its networking out under that flag.
mod sync {
    #[cfg(peercache_loom)]
    pub(super) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
    #[cfg(peercache_loom)]
    pub(super) use loom::sync::{Mutex, MutexGuard};
    #[cfg(not(peercache_loom))]
    pub(super) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
    #[cfg(not(peercache_loom))]
    pub(super) use std::sync::{Mutex, MutexGuard};

    /// Nothing in a normal build, where each store-load pair of the
    /// exclusion argument is two `SeqCst` accesses. Loom models `SeqCst`
    /// accesses as acquire-release only (loom's README, issue #180), which
    /// would let the model reorder those stores and loads; it models a
    /// `SeqCst` fence exactly. So under loom a fence sits between each such
    /// store and the load after it: the fenced form of the same exclusion
    /// (C11 forbids the store-buffering outcome either way), and everything
    /// else the model explores is the code as it runs.
    #[inline(always)]
    pub(super) fn store_load_fence() {
        #[cfg(peercache_loom)]
        loom::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }

    /// A writer waiting for a reader to leave: a spin hint, then a yield
    /// (under loom, a yield each time, which is what lets it schedule the
    /// reader).
    #[inline]
    pub(super) fn wait_a_little(spins: &mut u32) {
        #[cfg(peercache_loom)]
        {
            let _ = spins;
            loom::thread::yield_now();
        }
        #[cfg(not(peercache_loom))]
        if *spins < 64 {
            *spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// Threads that get a reader slot of their own in every lock; the rest
/// share slot number `OWN_SLOTS`. Each slot is a 128-byte line, so a lock
/// takes about 4 KiB.
#[cfg(not(peercache_loom))]
pub(crate) const OWN_SLOTS: usize = 32;
/// Under loom, one: the model's second reader thread takes the shared slot.
#[cfg(peercache_loom)]
pub(crate) const OWN_SLOTS: usize = 1;

/// The slot the threads beyond the first [`OWN_SLOTS`] share.
const SHARED: usize = OWN_SLOTS;

/// How many own slots were ever handed out: writers scan these and the
/// shared one.
#[cfg(not(peercache_loom))]
static CLAIMED: AtomicUsize = AtomicUsize::new(0);

/// Slot indices given back by threads that ended, and the next never used.
#[cfg(not(peercache_loom))]
static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    free: Vec::new(),
    next: 0,
});

// Under loom, statics made anew for each execution of the model.
#[cfg(peercache_loom)]
loom::lazy_static! {
    static ref CLAIMED: AtomicUsize = AtomicUsize::new(0);
    static ref REGISTRY: Mutex<Registry> = Mutex::new(Registry {
        free: Vec::new(),
        next: 0,
    });
}

struct Registry {
    free: Vec<usize>,
    next: usize,
}

/// This thread's slot index, given back when the thread ends.
struct ThreadSlot(usize);

impl ThreadSlot {
    fn claim() -> Self {
        let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(index) = registry.free.pop() {
            return ThreadSlot(index);
        }
        if registry.next == OWN_SLOTS {
            return ThreadSlot(SHARED);
        }
        let index = registry.next;
        registry.next += 1;
        // SeqCst, before this thread first enters any lock: see the module
        // docs for why a writer that missed this count still excludes us.
        CLAIMED.store(registry.next, SeqCst);
        sync::store_load_fence();
        ThreadSlot(index)
    }
}

impl ThreadSlot {
    /// Gives slot `index` back for the next thread to claim.
    fn give_back(index: usize) {
        if index != SHARED {
            // The slot is empty here (no guard outlives its thread's stack);
            // the registry's mutex hands its counts over to the next owner.
            let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
            registry.free.push(index);
        }
    }
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        // Under loom the model gives slots back itself, at the end of each
        // thread (`model::end_of_thread`): loom runs thread-local
        // destructors after the execution's statics are gone.
        #[cfg(not(peercache_loom))]
        ThreadSlot::give_back(self.0);
    }
}

#[cfg(not(peercache_loom))]
thread_local! {
    static THREAD_SLOT: ThreadSlot = ThreadSlot::claim();
}
#[cfg(peercache_loom)]
loom::thread_local! {
    static THREAD_SLOT: ThreadSlot = ThreadSlot::claim();
}

/// This thread's slot index; the shared slot while the thread is being torn
/// down.
fn this_threads_slot() -> usize {
    THREAD_SLOT.try_with(|slot| slot.0).unwrap_or(SHARED)
}

/// One thread's (or, for the shared slot, several threads') side of a lock.
struct Slot {
    /// Reads in progress through this slot (nested reads of one thread add up).
    readers: AtomicUsize,
    /// What the reads through this slot counted ([`ReadGuard::count`]).
    counted: AtomicU64,
}

/// A reader-writer lock with per-thread reader slots (see the module docs).
pub(crate) struct ReadMostlyLock<T> {
    /// Set by a writer from before it waits for the readers until it is
    /// done. Every read loads it, so it has a cache line of its own: the
    /// mutex and the data next to it change on every write.
    writing: CachePadded<AtomicBool>,
    /// Held by the writer; readers that meet a writer wait here.
    writers: Mutex<()>,
    /// `OWN_SLOTS` own slots, then the shared one.
    slots: Box<[CachePadded<Slot>]>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&T` to several threads at once only through
// read guards, and `&mut T` to one thread only through a write guard while
// no read guard exists (module docs); that is `RwLock<T>`'s contract, which
// is `Sync` when `T: Send + Sync`. `Send` follows from `UnsafeCell<T>: Send`.
unsafe impl<T: Send + Sync> Sync for ReadMostlyLock<T> {}

impl<T> ReadMostlyLock<T> {
    pub(crate) fn new(data: T) -> Self {
        ReadMostlyLock {
            writing: CachePadded::new(AtomicBool::new(false)),
            writers: Mutex::new(()),
            slots: (0..=OWN_SLOTS)
                .map(|_| {
                    CachePadded::new(Slot {
                        readers: AtomicUsize::new(0),
                        counted: AtomicU64::new(0),
                    })
                })
                .collect(),
            data: UnsafeCell::new(data),
        }
    }

    /// Shared access; waits while a writer holds or waits for the lock.
    #[inline]
    pub(crate) fn read(&self) -> ReadGuard<'_, T> {
        let index = this_threads_slot();
        let slot = &self.slots[index];
        if index == SHARED {
            loop {
                slot.readers.fetch_add(1, SeqCst);
                sync::store_load_fence();
                if !self.writing.load(SeqCst) {
                    break;
                }
                slot.readers.fetch_sub(1, Release);
                self.wait_for_writer();
            }
        } else {
            // Only this thread stores to its slot, so load-then-store counts
            // exactly; no read-modify-write is needed.
            let inside = slot.readers.load(Relaxed);
            loop {
                slot.readers.store(inside + 1, SeqCst);
                sync::store_load_fence();
                // Already inside: a writer is waiting for this thread's
                // outer read to leave, so it cannot be writing.
                if inside > 0 || !self.writing.load(SeqCst) {
                    break;
                }
                slot.readers.store(inside, Release);
                self.wait_for_writer();
            }
        }
        ReadGuard {
            lock: self,
            slot,
            shared: index == SHARED,
            _this_thread: PhantomData,
        }
    }

    /// Exclusive access: waits for the writer before it, then for every
    /// reader inside to leave; readers arriving meanwhile wait.
    pub(crate) fn write(&self) -> WriteGuard<'_, T> {
        let held = self.writers.lock().unwrap_or_else(PoisonError::into_inner);
        self.writing.store(true, SeqCst);
        sync::store_load_fence();
        let claimed = CLAIMED.load(SeqCst);
        for slot in self.slots[..claimed].iter().chain(&self.slots[SHARED..]) {
            let mut spins = 0u32;
            while slot.readers.load(SeqCst) != 0 {
                // Reads are a few dozen nanoseconds and never block: spin a
                // little, then let the reader's thread run.
                sync::wait_a_little(&mut spins);
            }
        }
        WriteGuard {
            lock: self,
            _held: held,
        }
    }

    fn wait_for_writer(&self) {
        drop(self.writers.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// Shared access to a [`ReadMostlyLock`]'s data.
pub(crate) struct ReadGuard<'a, T> {
    lock: &'a ReadMostlyLock<T>,
    slot: &'a Slot,
    shared: bool,
    /// Neither `Send` nor `Sync`: an own slot is written with plain stores,
    /// so only its thread may touch it.
    _this_thread: PhantomData<*const ()>,
}

impl<T> ReadGuard<'_, T> {
    /// Adds one to the lock's read-side count ([`WriteGuard::counted`]).
    #[inline]
    pub(crate) fn count(&self) {
        if self.shared {
            self.slot.counted.fetch_add(1, Relaxed);
        } else {
            let counted = self.slot.counted.load(Relaxed);
            self.slot.counted.store(counted.wrapping_add(1), Relaxed);
        }
    }
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard is counted in its slot, so no write guard exists
        // until it is dropped (module docs); other read guards only read.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Release: the writer that next sees this slot empty also sees every
        // read and count made under this guard.
        if self.shared {
            self.slot.readers.fetch_sub(1, Release);
        } else {
            let inside = self.slot.readers.load(Relaxed);
            self.slot.readers.store(inside - 1, Release);
        }
    }
}

/// Exclusive access to a [`ReadMostlyLock`]'s data.
pub(crate) struct WriteGuard<'a, T> {
    lock: &'a ReadMostlyLock<T>,
    _held: MutexGuard<'a, ()>,
}

impl<T> WriteGuard<'_, T> {
    /// The sum of every [`ReadGuard::count`] so far: exact, since no read is
    /// in progress and every finished one handed its counts over on leaving.
    pub(crate) fn counted(&self) -> u64 {
        self.lock
            .slots
            .iter()
            .map(|slot| slot.counted.load(Acquire))
            .fold(0, u64::wrapping_add)
    }
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: this guard holds the writers' mutex and saw every slot
        // empty after setting `writing`, so no other guard exists.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        // SeqCst (a release): a reader that sees `writing` clear also sees
        // this writer's changes. The mutex is released after, as a field.
        self.lock.writing.store(false, SeqCst);
    }
}

#[cfg(all(test, not(peercache_loom)))]
mod tests;

/// The lock under loom, which runs each model in every interleaving of its
/// atomics and mutexes:
/// `RUSTFLAGS="--cfg peercache_loom" cargo test -p peercache --lib --release
/// read_mostly::model`
/// (`.ci/run` does). Readers check, through a pair a writer changes in two
/// steps, that they never see a write half done; the hits they count must
/// all be in the total. Under loom a thread gets [`OWN_SLOTS`] = 1 own
/// slot, so the second reader thread reads through the shared slot. Each
/// of these models fails when the lock loses a piece of its exclusion (the
/// readers' check of `writing`, the writer's scan of the shared slot, or of
/// the slots counted in `CLAIMED`), as tried by hand.
#[cfg(all(test, peercache_loom))]
mod model;
