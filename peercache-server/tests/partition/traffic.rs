//! The clients: one getter per node, in that node's namespace, reading
//! every key from it in turn; one writer per node, in that node's
//! namespace, changing its own keys (so that a key's latest value is
//! well defined) through that node.
//!
//! A write is what an application does when the cluster caches its
//! database: change the truth first (the key's file), then tell the
//! cluster through a node's front API: a `PUT` of the new value, a
//! `DELETE`, or now and then a `_purge` of the whole group.
//!
//! Clients never panic: a failed get is recorded and the test fails on it
//! at the end of the cycle, naming the node and key; so does a write
//! answered with anything but 200 (with or without `peercache-pending`)
//! or 502 (the key's owner not reached, expected during a partition).
//!
//! A get must also never go further back in time than the cluster
//! promises: once a change answered 200, no node serves the value it
//! replaced longer than the hot copies' maximum age after it
//! ([`STALE_BOUND`]). Until then a node may (README "Updating and removing
//! keys"): a node the change is pending at, one that asks such a node for
//! a key it owns, and, while rings disagree, one that refilled its copy
//! from the key's owner on its own ring before the change reached that
//! node.
//!
//! A node SIGSTOPped or killed by the test is marked down first, under
//! its write lock, so no request to it is in flight (each request is
//! bounded by `support::WAIT`, so that wait is too): its getter pauses,
//! and writers homed there go through the next node that is up.

use super::store::{Store, GROUP};
use crate::support::KeepAlive;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// Pause between two gets of one getter.
const GET_PACE: Duration = Duration::from_millis(10);
/// Pause between two writes of one writer.
const WRITE_PACE: Duration = Duration::from_millis(20);
/// How many failures are kept for the messages.
const KEPT: usize = 20;
/// The longest any node may serve a value after a change replaced it: the
/// default `--hot-max-age` (the test leaves it).
const STALE_BOUND: Duration = Duration::from_secs(10);

/// Counters of the clients.
#[derive(Default)]
struct Counts {
    gets: AtomicU64,
    /// The slowest get so far, in microseconds.
    slowest_get_us: AtomicU64,
    writes: AtomicU64,
    /// Changes every node took at once (200, no pending peers).
    writes_done: AtomicU64,
    /// 200 with `peercache-pending`: some peer is to get it later.
    writes_pending: AtomicU64,
    /// 502: some peer was not reached.
    writes_refused: AtomicU64,
}

/// What the clients share with the test.
pub struct Traffic {
    /// Every node's address.
    addrs: Vec<SocketAddr>,
    /// Every key, and the index of the writer that owns it.
    keys: Vec<(String, usize)>,
    /// Whether each node is up (false while stopped or killed); a request
    /// to a node holds its read lock.
    up: Vec<RwLock<bool>>,
    /// Clients end when set.
    stop: AtomicBool,
    /// Writers write only while set.
    writing: AtomicBool,
    /// Writes started and not yet answered.
    writes_in_flight: AtomicUsize,
    counts: Counts,
    /// Failed gets and writes (the first [`KEPT`] of each), cleared by
    /// [`Traffic::take_failures`].
    failures: Mutex<Vec<String>>,
    failed_gets: AtomicU64,
    /// Each key's last change and its answer, for the failure messages.
    last_change: Mutex<HashMap<String, String>>,
    /// For each key, the versions changes answered 200 for, and when.
    changed: Mutex<HashMap<String, Vec<(u64, Instant)>>>,
    /// Gets that returned a version replaced longer than [`STALE_BOUND`]
    /// before they began.
    went_back: AtomicU64,
}

impl Traffic {
    /// Clients of the nodes at `addrs`, writer `w` owning `keys_per_writer`
    /// keys named `w{w}-k{k}`.
    pub fn new(addrs: &[SocketAddr], keys_per_writer: usize) -> Traffic {
        let keys = (0..addrs.len())
            .flat_map(|w| (0..keys_per_writer).map(move |k| (format!("w{w}-k{k}"), w)))
            .collect();
        Traffic {
            addrs: addrs.to_vec(),
            keys,
            up: addrs.iter().map(|_| RwLock::new(true)).collect(),
            stop: AtomicBool::new(false),
            writing: AtomicBool::new(false),
            writes_in_flight: AtomicUsize::new(0),
            counts: Counts::default(),
            failures: Mutex::new(Vec::new()),
            failed_gets: AtomicU64::new(0),
            last_change: Mutex::new(HashMap::new()),
            changed: Mutex::new(HashMap::new()),
            went_back: AtomicU64::new(0),
        }
    }

    /// Every key.
    pub fn keys(&self) -> Vec<String> {
        self.keys.iter().map(|(key, _)| key.clone()).collect()
    }

    /// Marks node `i` down, once no request to it is in flight, or up.
    pub fn set_up(&self, i: usize, up: bool) {
        *self.up[i].write().unwrap() = up;
    }

    /// Ends every client (they notice within one request).
    pub fn stop(&self) {
        self.stop.store(true, SeqCst);
    }

    /// Lets the writers write.
    pub fn start_writes(&self) {
        self.writing.store(true, SeqCst);
    }

    /// Stops the writers, and waits (bounded) until no write is in flight:
    /// from then on every key's file is its latest value.
    pub fn quiesce_writes(&self) {
        self.writing.store(false, SeqCst);
        crate::support::wait_until("writes in flight to end", || {
            self.writes_in_flight.load(SeqCst) == 0
        });
    }

    /// How many gets failed in all.
    pub fn failed_gets(&self) -> u64 {
        self.failed_gets.load(SeqCst)
    }

    /// How many gets returned a version older than a change that had
    /// reached their node before they started.
    pub fn went_back(&self) -> u64 {
        self.went_back.load(SeqCst)
    }

    /// How many writes were made so far.
    pub fn writes(&self) -> u64 {
        self.counts.writes.load(SeqCst)
    }

    /// `key`'s last change and how it was answered (`PUT "KEY v3"
    /// through node 1: 502`).
    pub fn last_change(&self, key: &str) -> String {
        let changes = self.last_change.lock().unwrap();
        changes
            .get(key)
            .cloned()
            .unwrap_or_else(|| "none".to_owned())
    }

    /// The counts, for the summary.
    pub fn describe(&self) -> String {
        let c = &self.counts;
        format!(
            "{} gets ({} failed, {} gone back in time, slowest {:.2?}), {} writes ({} done, {} pending, {} refused)",
            c.gets.load(SeqCst),
            self.failed_gets(),
            self.went_back(),
            Duration::from_micros(c.slowest_get_us.load(SeqCst)),
            c.writes.load(SeqCst),
            c.writes_done.load(SeqCst),
            c.writes_pending.load(SeqCst),
            c.writes_refused.load(SeqCst),
        )
    }

    /// The failures recorded since the last call.
    pub fn take_failures(&self) -> Vec<String> {
        std::mem::take(&mut *self.failures.lock().unwrap())
    }

    /// Records a failed get (also the convergence check's).
    pub fn get_failed(&self, what: String) {
        self.failed_gets.fetch_add(1, SeqCst);
        self.record(what);
    }

    fn record(&self, what: String) {
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < KEPT {
            failures.push(what);
        }
    }

    /// Counts one get that took `took`.
    pub fn count_get(&self, took: Duration) {
        self.counts.gets.fetch_add(1, SeqCst);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.counts.slowest_get_us.fetch_max(us, SeqCst);
    }

    /// Getter of node `i` (run it inside node `i`'s namespace): every key
    /// in turn, until [`Traffic::stop`]. Each get must answer 200 with a
    /// value of that key (any version: during a partition a node may serve
    /// an old one).
    pub fn getter(&self, i: usize) {
        let mut client = KeepAlive::new(self.addrs[i]);
        for (key, _) in self.keys.iter().cycle() {
            if self.stop.load(SeqCst) {
                return;
            }
            {
                let up = self.up[i].read().unwrap();
                if *up {
                    let started = Instant::now();
                    let answer = client.get(&format!("/{GROUP}/{key}"));
                    self.count_get(started.elapsed());
                    match check_value(key, answer) {
                        Err(why) => self.get_failed(format!("get of {key} on node {i}: {why}")),
                        Ok(value) => self.check_age(i, key, &value, started),
                    }
                }
            }
            std::thread::sleep(GET_PACE);
        }
    }

    /// Writer `w` (run it inside node `w`'s namespace): while writes are
    /// on, changes its keys in turn, through node `w`, or the next node
    /// that is up. Values are `KEY vN`, N counting up.
    pub fn writer(&self, w: usize, store: &Store) {
        let mine: Vec<&str> = (self.keys.iter())
            .filter(|(_, owner)| *owner == w)
            .map(|(key, _)| key.as_str())
            .collect();
        let mut version = 0u64;
        let mut draw = fastrand::Rng::with_seed(w as u64);
        while !self.stop.load(SeqCst) {
            // Counted in flight before the check, so that quiesce_writes
            // never misses a write that saw writes on.
            self.writes_in_flight.fetch_add(1, SeqCst);
            if self.writing.load(SeqCst) {
                version += 1;
                let key = mine[version as usize % mine.len()];
                self.write(w, store, key, &format!("{key} v{version}"), &mut draw);
            }
            self.writes_in_flight.fetch_sub(1, SeqCst);
            std::thread::sleep(WRITE_PACE);
        }
    }

    /// One write: the file, then the change through the first node up
    /// from `home`.
    fn write(&self, home: usize, store: &Store, key: &str, value: &str, draw: &mut fastrand::Rng) {
        let n = self.addrs.len();
        let Some((via, _up)) = (0..n)
            .map(|d| (home + d) % n)
            .map(|i| (i, self.up[i].read().unwrap()))
            .find(|(_, up)| **up)
        else {
            return self.record(format!("write of {key}: no node up"));
        };
        store.write(key, value);
        let (method, target, body) = match draw.u32(0..40) {
            0 => ("POST", format!("/{GROUP}/_purge"), ""),
            1..=10 => ("DELETE", format!("/{GROUP}/{key}"), ""),
            _ => ("PUT", format!("/{GROUP}/{key}"), value),
        };
        self.counts.writes.fetch_add(1, SeqCst);
        let answer = change(self.addrs[via], method, &target, body.as_bytes());
        let how = match &answer {
            Ok((status, None, _)) => status.to_string(),
            Ok((status, Some(pending), _)) => format!("{status}, pending {pending}"),
            Err(e) => e.to_string(),
        };
        let what = match method {
            "PUT" => format!("PUT {value:?} through node {via}: {how}"),
            _ => format!("{method} {target} through node {via} (file {value:?}): {how}"),
        };
        (self.last_change.lock().unwrap()).insert(key.to_owned(), what);
        if let Ok((200, _, _)) = &answer {
            let version = version_of(value);
            let mut changed = self.changed.lock().unwrap();
            changed
                .entry(key.to_owned())
                .or_default()
                .push((version, Instant::now()));
        }
        match answer {
            Ok((200, None, _)) => self.counts.writes_done.fetch_add(1, SeqCst),
            Ok((200, Some(_), _)) => self.counts.writes_pending.fetch_add(1, SeqCst),
            Ok((502, _, _)) => self.counts.writes_refused.fetch_add(1, SeqCst),
            other => {
                self.record(format!("{method} {target} on node {via}: {other:?}"));
                0
            }
        };
    }
}

impl Traffic {
    /// Records a get of node `i` that began at `started` and returned
    /// `value`: replaced by a change more than [`STALE_BOUND`] before, it
    /// went back in time.
    fn check_age(&self, i: usize, key: &str, value: &str, started: Instant) {
        let version = version_of(value);
        let replaced = {
            let changed = self.changed.lock().unwrap();
            (changed.get(key).into_iter().flatten())
                .filter(|(v, at)| *v > version && *at <= started)
                .map(|(_, at)| *at)
                .min()
        };
        let why = match replaced {
            Some(at) if started - at > STALE_BOUND => {
                format!("replaced {:.1?} before the get began", started - at)
            }
            _ => return,
        };
        self.went_back.fetch_add(1, SeqCst);
        self.record(format!(
            "get of {key} on node {i} returned {value:?}, {why} (last change: {})",
            self.last_change(key)
        ));
    }
}

/// N of a value `KEY vN` (0 if it has none).
fn version_of(value: &str) -> u64 {
    value
        .rsplit_once(" v")
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A get's answer must be 200 with a value of `key` (`KEY vN`).
pub fn check_value(key: &str, answer: std::io::Result<(u16, Vec<u8>)>) -> Result<String, String> {
    match answer {
        Ok((200, body)) => {
            let body = String::from_utf8_lossy(&body).into_owned();
            match body.starts_with(&format!("{key} v")) {
                true => Ok(body),
                false => Err(format!("200 with {body:?}, not a value of {key}")),
            }
        }
        Ok((status, body)) => Err(format!("{status} {}", String::from_utf8_lossy(&body))),
        Err(e) => Err(format!("no answer: {e}")),
    }
}

/// `method target` with `body` on a fresh connection: the status, the
/// `peercache-pending` header if any, and the body.
fn change(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: &[u8],
) -> std::io::Result<(u16, Option<String>, String)> {
    let answer = crate::support::exchange(addr, method, target, body)?;
    let pending = String::from_utf8_lossy(&answer)
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("peercache-pending"))
        .map(|(_, value)| value.trim().to_owned());
    let (status, body) = crate::support::parse_answer(&answer)?;
    Ok((status, pending, body))
}
