use super::*;
use std::sync::Barrier;

/// A pair the writers keep equal, in atomics so that a broken lock
/// shows as a failed assertion rather than as undefined behaviour.
type Pair = (AtomicU64, AtomicU64);

fn pair_of(pair: &Pair) -> (u64, u64) {
    (pair.0.load(Relaxed), pair.1.load(Relaxed))
}

/// Writers make the pair unequal for a while inside every write while
/// readers check it: a reader seeing it unequal, a lost write or a lost
/// count fails the test. The two races run one after the other: at
/// once, they would share the slots and the 2 cores, and each would
/// catch less.
#[test]
fn readers_never_see_a_write_in_progress_and_counts_are_exact() {
    race_on_own_and_shared_slots();
    race_on_the_shared_slot();
}

/// Readers on more threads than there are own slots, so the shared
/// slot is used too.
fn race_on_own_and_shared_slots() {
    race(OWN_SLOTS + 6, 20_000, 2, 5_000);
}

/// The same race on the shared slot: threads that hold every own slot
/// free at the time wait while two readers, left with the shared slot,
/// race a writer. (Should another test's threads end meanwhile, a
/// racer may get an own slot instead; the test stays valid, only less
/// pointed.)
fn race_on_the_shared_slot() {
    let holding = Barrier::new(OWN_SLOTS + 1);
    let done = Barrier::new(OWN_SLOTS + 1);
    std::thread::scope(|scope| {
        for _ in 0..OWN_SLOTS {
            scope.spawn(|| {
                this_threads_slot(); // claims a slot for this thread's life
                holding.wait();
                done.wait();
            });
        }
        holding.wait();
        // The holders must be let go even if the race fails.
        let raced = std::panic::catch_unwind(|| race(2, 50_000, 1, 5_000));
        done.wait();
        if let Err(failure) = raced {
            std::panic::resume_unwind(failure);
        }
    });
}

/// `readers` threads of `reads` checked and counted reads against
/// `writers` threads of `writes` writes, all started together; then no
/// write and no count may be missing.
fn race(readers: usize, reads: u64, writers: usize, writes: u64) {
    let lock = ReadMostlyLock::new((AtomicU64::new(0), AtomicU64::new(0)));
    let start = Barrier::new(readers + writers);
    std::thread::scope(|scope| {
        for _ in 0..readers {
            scope.spawn(|| {
                start.wait();
                for _ in 0..reads {
                    let guard = lock.read();
                    let (a, b) = pair_of(&guard);
                    assert_eq!(a, b, "a reader saw a write half done");
                    guard.count();
                }
            });
        }
        for _ in 0..writers {
            scope.spawn(|| {
                start.wait();
                for _ in 0..writes {
                    let guard = lock.write();
                    let (a, b) = pair_of(&guard);
                    guard.0.store(a + 1, Relaxed);
                    for _ in 0..50 {
                        std::hint::spin_loop();
                    }
                    guard.1.store(b + 1, Relaxed);
                }
            });
        }
    });
    let guard = lock.write();
    let total = writers as u64 * writes;
    assert_eq!(pair_of(&guard), (total, total), "a write was lost");
    assert_eq!(guard.counted(), readers as u64 * reads);
}

#[test]
fn a_thread_may_nest_reads_in_its_own_slot() {
    let lock = ReadMostlyLock::new(7);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let outer = lock.read();
            let inner = lock.read();
            assert_eq!((*outer, *inner), (7, 7));
            drop(inner);
            drop(outer);
            *lock.write() += 1;
        });
    });
    assert_eq!(*lock.read(), 8);
}
