use super::*;
use loom::sync::Arc;
use loom::thread;

type Pair = (AtomicU64, AtomicU64);

fn lock() -> Arc<ReadMostlyLock<Pair>> {
    Arc::new(ReadMostlyLock::new((AtomicU64::new(0), AtomicU64::new(0))))
}

/// A read that checks the pair and counts a hit.
fn read(lock: &ReadMostlyLock<Pair>) {
    let guard = lock.read();
    let (a, b) = (guard.0.load(Relaxed), guard.1.load(Relaxed));
    assert_eq!(a, b, "a reader saw a write half done");
    guard.count();
}

/// A write of the pair in two steps.
fn write(lock: &ReadMostlyLock<Pair>) {
    let guard = lock.write();
    let a = guard.0.load(Relaxed);
    guard.0.store(a + 1, Relaxed);
    guard.1.store(a + 1, Relaxed);
}

/// What the thread-local's destructor does when a thread ends: give
/// its slot back (the last thing a model thread does).
fn end_of_thread() {
    ThreadSlot::give_back(this_threads_slot());
}

/// Every interleaving (about 80 s for the three models in release);
/// `LOOM_MAX_PREEMPTIONS=3` bounds them for a quick run.
fn explore(model: impl Fn() + Sync + Send + 'static) {
    loom::model::Builder::new().check(model);
}

#[test]
fn a_reader_on_its_own_slot_and_a_writer_exclude() {
    explore(|| {
        let lock = lock();
        let reader = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || {
                read(&lock);
                end_of_thread();
            })
        };
        write(&lock);
        reader.join().unwrap();
        assert_eq!(lock.write().counted(), 1);
    });
}

#[test]
fn readers_on_own_and_shared_slots_and_a_writer_exclude() {
    explore(|| {
        let lock = lock();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let lock = Arc::clone(&lock);
                thread::spawn(move || {
                    read(&lock);
                    end_of_thread();
                })
            })
            .collect();
        write(&lock);
        for reader in readers {
            reader.join().unwrap();
        }
        assert_eq!(lock.write().counted(), 2);
    });
}

#[test]
fn a_slot_given_back_and_taken_again_is_still_scanned() {
    explore(|| {
        let lock = lock();
        // The first thread claims the one own slot and gives it back
        // when it ends; the second takes it again, racing a writer.
        let first = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || {
                read(&lock);
                end_of_thread();
            })
        };
        first.join().unwrap();
        let second = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || {
                read(&lock);
                read(&lock);
                end_of_thread();
            })
        };
        write(&lock);
        second.join().unwrap();
        assert_eq!(lock.write().counted(), 3);
    });
}
