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
//! waits anywhere, the key's copies are dropped once more, here and at
//! every peer but its owner (a second round, as a purge has two; the owner
//! is spared, or a value set since would be lost): by then no node holds
//! the old value to refill from. The second round's own misses become
//! hints that start no further round. A purge has no second round (it
//! would empty the owners too, and drop what was set since): a copy
//! refilled while its hints land lives at most the hot copies' maximum age.
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

/// Which round of a change a hint belongs to: the change itself, or the
/// second round after every hint of its keys landed (which starts no
/// further round).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Round {
    First,
    Second,
}

/// What one delivery sends to a peer.
pub(super) struct Delivery {
    pub peer: Arc<dyn Peer>,
    /// A purge (then `keys` is empty: the purge covers them), and whether
    /// it is of the first round.
    pub purge: Option<Round>,
    pub keys: Vec<String>,
    /// The keys of the first round among `keys`.
    first: Vec<String>,
    /// The newest hint it covers.
    pub generation: u64,
}

/// The keys whose copies the second round drops.
pub(super) struct SecondRound {
    pub keys: Vec<String>,
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
    /// Keys whose every first-round hint landed, for the second round.
    second: Vec<String>,
}

struct Pending {
    peer: Arc<dyn Peer>,
    /// Each key with the generation and round of its newest hint.
    keys: HashMap<String, (u64, Round)>,
    bytes: usize,
    /// The generation and round of a pending purge.
    purge: Option<(u64, Round)>,
    since: Instant,
}

impl Pending {
    /// Whether a first-round hint of `key` (or a purge) waits here.
    fn waits_first(&self, key: Option<&str>) -> bool {
        self.purge.is_some_and(|(_, r)| r == Round::First)
            || key.is_some_and(|k| self.keys.get(k).is_some_and(|(_, r)| *r == Round::First))
    }
}

/// The round of a hint that merges two: the first if either is.
fn merged(a: Round, b: Round) -> Round {
    if a == Round::First || b == Round::First {
        Round::First
    } else {
        Round::Second
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

    /// The generation a change starting now is newer than or equal to.
    pub(super) fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Keeps `keys` to drop at `peer`, or a purge when `keys` is `None`,
    /// for `round`. Returns whether the delivery task must be started.
    pub(super) fn keep(&self, peer: &Arc<dyn Peer>, keys: Option<&[String]>, round: Round) -> bool {
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
            });
        let collapse = match keys {
            None => true,
            Some(keys) => {
                for key in keys {
                    match pending.keys.get_mut(key) {
                        Some(hint) => *hint = (generation, merged(hint.1, round)),
                        None => {
                            pending.keys.insert(key.clone(), (generation, round));
                            pending.bytes += key.len();
                        }
                    }
                }
                pending.keys.len() > limits.max_keys || pending.bytes > limits.max_bytes
            }
        };
        let mut collapsed = false;
        if collapse {
            collapsed = keys.is_some();
            let any_first = pending.keys.values().any(|(_, r)| *r == Round::First);
            let mut purge_round = if any_first { Round::First } else { round };
            if let Some((_, r)) = pending.purge {
                purge_round = merged(purge_round, r);
            }
            pending.keys.clear();
            pending.bytes = 0;
            pending.purge = Some((generation, purge_round));
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
        let mut state = self.state();
        let Some(pending) = state.peers.get_mut(peer) else {
            return;
        };
        match keys {
            Some(keys) => {
                for key in keys {
                    if pending.keys.get(key).is_some_and(|&(g, _)| g <= generation) {
                        pending.keys.remove(key);
                        pending.bytes -= key.len();
                    }
                }
            }
            None => {
                pending.keys.retain(|_, (g, _)| *g > generation);
                pending.bytes = pending.keys.keys().map(String::len).sum();
                pending.purge = pending.purge.filter(|&(g, _)| g > generation);
            }
        }
        if pending.keys.is_empty() && pending.purge.is_none() {
            state.peers.remove(peer);
        }
    }

    /// What to send now, one delivery per peer with hints; drops the hints
    /// of peers that left the cluster (`is_member` says). Marks the
    /// delivery task stopped when nothing is left to send, in either round.
    pub(super) fn to_deliver(&self, is_member: impl Fn(&str) -> bool) -> Vec<Delivery> {
        let mut state = self.state();
        state.peers.retain(|id, _| is_member(id));
        let generation = state.generation;
        let deliveries: Vec<Delivery> = state
            .peers
            .values()
            .map(|pending| {
                let keys: Vec<String> = match pending.purge {
                    Some(_) => Vec::new(),
                    None => pending.keys.keys().cloned().collect(),
                };
                let first = keys
                    .iter()
                    .filter(|k| {
                        pending
                            .keys
                            .get(*k)
                            .is_some_and(|(_, r)| *r == Round::First)
                    })
                    .cloned()
                    .collect();
                Delivery {
                    peer: Arc::clone(&pending.peer),
                    purge: pending.purge.map(|(_, r)| r),
                    keys,
                    first,
                    generation,
                }
            })
            .collect();
        if deliveries.is_empty() && state.second.is_empty() {
            state.delivering = false;
        }
        deliveries
    }

    /// No task can deliver (no tokio runtime): the next hint tries again.
    pub(super) fn stopped(&self) {
        self.state().delivering = false;
    }

    /// The outcome of a delivery.
    pub(super) fn delivered(&self, delivery: &Delivery, outcome: &Result<(), PeerError>) {
        let id = delivery.peer.id();
        match outcome {
            Ok(()) => {
                let keys = delivery.purge.is_none().then_some(delivery.keys.as_slice());
                let count = if delivery.purge.is_some() {
                    1
                } else {
                    delivery.keys.len()
                };
                self.superseded(id, keys, delivery.generation);
                let mut state = self.state();
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
                self.superseded(id, None, delivery.generation);
            }
            Err(_) => {}
        }
    }

    /// Queues for the second round the first-round keys of a delivery that
    /// landed, once no first-round hint of them (or purge) waits at any
    /// peer. Past [`HintLimits::max_keys`] keys, the round is skipped.
    fn queue_second_round(&self, state: &mut State, delivery: &Delivery) {
        for key in &delivery.first {
            if !state.peers.values().any(|p| p.waits_first(Some(key))) {
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
        if state.second.is_empty() {
            return None;
        }
        let mut keys = std::mem::take(&mut state.second);
        keys.sort_unstable();
        keys.dedup();
        Some(SecondRound { keys })
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
