//! Hinted handoff: the changes a peer could not be reached for, kept for
//! it and delivered when it answers again.
//!
//! A remove, set or purge that does not reach a peer (refused connection,
//! timeout, a peer out of the ring: [`PeerError::unreachable`]) would leave
//! that peer serving its old copy once it is back, for as long as the copy
//! lives. So the change is kept here, per peer, as the keys to drop (a set
//! drops the other copies, so a set's hint is a remove too) or a purge of
//! the group, and a background task sends it again every
//! [`RETRY_INTERVAL`] (plus the time a round takes: a peer that does not
//! answer holds it for the change timeout) through
//! [`crate::Peer::deliver_hints`], until the peer takes it. The HTTP
//! transport sends a delivery even to a peer out of its ring: one request
//! at a time per peer and group (a refused connection costs nothing), and
//! the first answer also puts the peer back in the ring, so the hint lands
//! within about one interval of the peer's return.
//!
//! Only drops are kept, never values: dropping a copy is always safe (the
//! next get asks the owner or the loader again), while storing an old
//! value after a newer one would not be. A hint is *superseded* by any later
//! change of the same key that reaches the peer, and a purge supersedes
//! every hint before it: each hint carries the generation it was made in,
//! and a delivery or a later change clears only the hints no newer than
//! itself.
//!
//! Hints to several peers land in any order, so a peer that got its hint
//! may fetch the key again, before another's lands, from a peer that still
//! holds the old value (a key's owner, or the node that owned it on one
//! side of a partition), and keep that copy. So once no hint of a key
//! waits anywhere, the hot copies of the key are dropped once more, here
//! and at every peer ([`crate::Peer::drop_copies`]; a second round, as a
//! purge has two): by then no node holds the old value to refill from.
//! Only copies: a value a node owns, set since, stays. After a purge
//! landed everywhere, every copy of the group goes. The second round is
//! best effort (a peer it misses keeps no hint: its copy lives at most the
//! hot copies' maximum age).
//!
//! Bounded per peer ([`HintLimits`]): past the bound, the peer's hints
//! collapse into one purge of its copies of the group. Hints live in this
//! node's memory: they survive the peer's restart (a restarted peer is
//! empty, so the delivery is harmless) but not this node's.

use crate::peers::{Peer, PeerError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often the pending hints are sent again.
pub(super) const RETRY_INTERVAL: Duration = Duration::from_millis(200);

/// How many changes may wait for one peer before they collapse into one
/// purge of the group on that peer ([`crate::GroupBuilder::hint_limits`]);
/// `max_keys: 0` makes every missed change a purge there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HintLimits {
    /// Keys kept for one peer (default 10,000).
    pub max_keys: usize,
    /// Bytes of those keys (default 1 MiB).
    pub max_bytes: usize,
}

impl Default for HintLimits {
    fn default() -> Self {
        HintLimits {
            max_keys: 10_000,
            max_bytes: 1 << 20,
        }
    }
}

/// The changes waiting for one peer, as [`crate::Group::pending_hints`]
/// shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingHints {
    /// The peer (for HTTP, its base URL).
    pub peer: String,
    /// Keys to drop there.
    pub keys: u64,
    /// Whether a purge of the group waits too (a purge the peer missed, or
    /// its hints past [`HintLimits`]).
    pub purge: bool,
    /// How long the oldest of them has waited, in milliseconds.
    pub waiting_ms: u64,
}

/// What one delivery sends to a peer.
pub(super) struct Delivery {
    pub peer: Arc<dyn Peer>,
    /// A purge (then `keys` is empty: the purge covers them).
    pub purge: bool,
    pub keys: Vec<String>,
    /// The newest hint it covers.
    pub generation: u64,
}

/// The copies the second round drops: of `keys`, or all of them.
pub(super) struct SecondRound {
    pub keys: Vec<String>,
    /// Every copy of the group (a purge landed everywhere).
    pub all: bool,
}

/// The hints of one group, for every peer.
pub(super) struct Hints {
    limits: HintLimits,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    peers: HashMap<Arc<str>, Pending>,
    generation: u64,
    /// Whether the delivery task runs.
    delivering: bool,
    delivered: u64,
    collapsed: u64,
    /// Keys whose every hint landed, for the second round.
    second: Vec<String>,
    /// A purge landed everywhere: the second round drops every copy.
    second_all: bool,
}

struct Pending {
    peer: Arc<dyn Peer>,
    /// Each key with the generation of its newest hint.
    keys: HashMap<String, u64>,
    bytes: usize,
    /// The generation of a pending purge.
    purge: Option<u64>,
    since: Instant,
    /// Whether a delivery to the peer is on its way: one at a time per
    /// peer, each peer on its own (a peer that does not answer holds only
    /// its own delivery up).
    in_flight: bool,
}

impl Pending {
    /// Whether a hint of `key` (or a purge) waits here.
    fn waits(&self, key: &str) -> bool {
        self.purge.is_some() || self.keys.contains_key(key)
    }
}

impl Hints {
    pub(super) fn new(limits: HintLimits) -> Self {
        Hints {
            limits,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a change of `key` (or a purge) waits for `peer`: then its
    /// value of `key` may be stale, and is neither peeked nor taken from
    /// it (`handoff.rs`).
    pub(super) fn waits_for(&self, peer: &str, key: &str) -> bool {
        self.state().peers.get(peer).is_some_and(|p| p.waits(key))
    }

    /// The generation a change starting now is newer than or equal to.
    pub(super) fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Keeps `keys` to drop at `peer`, or a purge when `keys` is `None`.
    /// Returns whether the delivery task must be started.
    pub(super) fn keep(&self, peer: &Arc<dyn Peer>, keys: Option<&[String]>) -> bool {
        let limits = self.limits;
        let mut state = self.state();
        state.generation += 1;
        let generation = state.generation;
        let pending = state
            .peers
            .entry(Arc::from(peer.id()))
            .or_insert_with(|| Pending {
                peer: Arc::clone(peer),
                keys: HashMap::new(),
                bytes: 0,
                purge: None,
                since: Instant::now(),
                in_flight: false,
            });
        let collapse = match keys {
            None => true,
            Some(keys) => {
                for key in keys {
                    if pending.keys.insert(key.clone(), generation).is_none() {
                        pending.bytes += key.len();
                    }
                }
                pending.keys.len() > limits.max_keys || pending.bytes > limits.max_bytes
            }
        };
        let mut collapsed = false;
        if collapse {
            collapsed = keys.is_some();
            pending.keys.clear();
            pending.bytes = 0;
            pending.purge = Some(generation);
        }
        state.collapsed += u64::from(collapsed);
        if collapsed {
            tracing::warn!(
                peer = %crate::trace::Escaped(peer.id()),
                max_keys = limits.max_keys,
                max_bytes = limits.max_bytes,
                "too many changes wait for a peer: they collapse into a purge of the group there"
            );
        }
        !std::mem::replace(&mut state.delivering, true)
    }

    /// A change of `keys` (a purge when `None`) that started at
    /// `generation` reached `peer`: it supersedes the hints no newer.
    pub(super) fn superseded(&self, peer: &str, keys: Option<&[String]>, generation: u64) {
        superseded_in(&mut self.state(), peer, keys, generation);
    }

    /// What to send now: one delivery per peer with hints and none on its
    /// way; drops the hints of peers that left the cluster (`is_member`
    /// says). `None` when nothing is left to send, in either round: then
    /// the delivery task is marked stopped.
    pub(super) fn to_deliver(&self, is_member: impl Fn(&str) -> bool) -> Option<Vec<Delivery>> {
        let mut state = self.state();
        // A peer that left the member list is sent nothing more; the
        // copies others may have taken from it meanwhile go in a second
        // round, as if its hints had landed.
        let gone: Vec<Arc<str>> = (state.peers.keys())
            .filter(|id| !is_member(id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(pending) = state.peers.remove(&id) {
                match pending.purge {
                    Some(_) => state.second_all = true,
                    None => state.second.extend(pending.keys.into_keys()),
                }
            }
        }
        if state.peers.is_empty() && state.second.is_empty() && !state.second_all {
            state.delivering = false;
            return None;
        }
        let generation = state.generation;
        let deliveries = state
            .peers
            .values_mut()
            .filter(|pending| !pending.in_flight)
            .map(|pending| {
                pending.in_flight = true;
                Delivery {
                    peer: Arc::clone(&pending.peer),
                    purge: pending.purge.is_some(),
                    keys: match pending.purge {
                        Some(_) => Vec::new(),
                        None => pending.keys.keys().cloned().collect(),
                    },
                    generation,
                }
            })
            .collect();
        Some(deliveries)
    }

    /// A delivery to `peer` ended without an outcome (its task was
    /// dropped): the next round sends it again.
    pub(super) fn abandoned(&self, peer: &str) {
        if let Some(pending) = self.state().peers.get_mut(peer) {
            pending.in_flight = false;
        }
    }

    /// No task can deliver (no tokio runtime): the next hint tries again.
    pub(super) fn stopped(&self) {
        self.state().delivering = false;
    }

    /// The outcome of a delivery.
    pub(super) fn delivered(&self, delivery: &Delivery, outcome: &Result<(), PeerError>) {
        let id = delivery.peer.id();
        // One taking of the lock: no other delivery to the peer can start
        // between freeing its place and clearing what this one carried.
        let mut state = self.state();
        if let Some(pending) = state.peers.get_mut(id) {
            pending.in_flight = false;
        }
        match outcome {
            Ok(()) => {
                let keys = (!delivery.purge).then_some(delivery.keys.as_slice());
                let count = if delivery.purge {
                    1
                } else {
                    delivery.keys.len()
                };
                superseded_in(&mut state, id, keys, delivery.generation);
                state.delivered += count as u64;
                self.queue_second_round(&mut state, delivery);
            }
            Err(error) if !error.is_unreachable() => {
                // The peer answers but refuses: it would refuse forever.
                tracing::warn!(
                    peer = %crate::trace::Escaped(id),
                    reason = %crate::trace::Escaped(error.reason()),
                    "a peer refused the changes kept for it; dropping them"
                );
                superseded_in(&mut state, id, None, delivery.generation);
            }
            Err(_) => {}
        }
    }

    /// Queues for the second round the keys of a delivery that landed,
    /// once no hint of them (or purge) waits at any peer. Past
    /// [`HintLimits::max_keys`] keys, the round is skipped.
    fn queue_second_round(&self, state: &mut State, delivery: &Delivery) {
        if delivery.purge && !state.peers.values().any(|p| p.purge.is_some()) {
            state.second_all = true;
        }
        for key in &delivery.keys {
            if !state.peers.values().any(|p| p.waits(key)) {
                state.second.push(key.clone());
            }
        }
        if state.second.len() > self.limits.max_keys {
            state.second.clear();
        }
    }

    /// The keys the second round drops now, if any.
    pub(super) fn take_second_round(&self) -> Option<SecondRound> {
        let mut state = self.state();
        let all = std::mem::take(&mut state.second_all);
        if state.second.is_empty() && !all {
            return None;
        }
        let mut keys = std::mem::take(&mut state.second);
        keys.sort_unstable();
        keys.dedup();
        Some(SecondRound { keys, all })
    }

    /// The hints waiting, per peer, and the counts of hints delivered and
    /// of collapses into a purge.
    pub(super) fn status(&self) -> (Vec<PendingHints>, u64, u64) {
        let state = self.state();
        let mut pending: Vec<PendingHints> = state
            .peers
            .iter()
            .map(|(id, p)| PendingHints {
                peer: id.to_string(),
                keys: p.keys.len() as u64,
                purge: p.purge.is_some(),
                waiting_ms: u64::try_from(p.since.elapsed().as_millis()).unwrap_or(u64::MAX),
            })
            .collect();
        pending.sort_by(|a, b| a.peer.cmp(&b.peer));
        (pending, state.delivered, state.collapsed)
    }
}

/// [`Hints::superseded`], under the lock already taken.
fn superseded_in(state: &mut State, peer: &str, keys: Option<&[String]>, generation: u64) {
    let Some(pending) = state.peers.get_mut(peer) else {
        return;
    };
    match keys {
        Some(keys) => {
            for key in keys {
                if pending.keys.get(key).is_some_and(|&g| g <= generation) {
                    pending.keys.remove(key);
                    pending.bytes -= key.len();
                }
            }
        }
        None => {
            pending.keys.retain(|_, g| *g > generation);
            pending.bytes = pending.keys.keys().map(String::len).sum();
            pending.purge = pending.purge.filter(|&g| g > generation);
        }
    }
    if pending.keys.is_empty() && pending.purge.is_none() {
        state.peers.remove(peer);
    }
}
