//! Warm handoff when the ring changes (README "Deploys and scaling"): the
//! values of keys that move to another node reach their new owner from the
//! node that held them, not from the origin.
//!
//! - A **peek**: before loading a key here, a node whose ring changed
//!   lately asks the key's owner on an earlier ring
//!   ([`crate::PeerPicker::previous_owner`]) for it, from that node's
//!   main cache only ([`crate::Peer::peek`]). A hit is kept in the main cache
//!   as a load's value would be; a miss or a failure costs one short
//!   request and the load goes on. A node that joins, or comes back from a
//!   restart, warms this way from the nodes that held its keys meanwhile.
//! - A **handoff**: a node that leaves ([`crate::Node::leave`]) sends its
//!   most valuable main entries (the cache policy's own rank) to their
//!   owners on the ring without it; a node keeps those it owns on its own
//!   ring ([`ServedGroup::take_handed_over`]).
//!
//! Only a node that has every change of the key is asked or listened
//! to: never one this node keeps a change of the key for (a hint), and
//! (the pool's rule) only after planned changes of the ring, a start, a
//! join or a leave, not after a failure: a node on the far side of a
//! partition may have missed changes that no node here knows of.
//!
//! A borrowed value is kept marked (`cache/borrowed.rs`): when a change
//! its lender missed lands there, the second round of that change drops
//! it here too, as it drops hot copies.
//!
//! A value on its way may have been replaced meanwhile. A peeked value is
//! kept only if its key did not change here since the load began (the
//! load's fence ticket); a handed-over one only if its key did not change
//! here since its sender said it was leaving (a ticket taken then, per
//! sender). A change that reached this node before those moments, but the
//! sender only after it read the value, is not caught: the window is the
//! gap between a change's arrival at two nodes (README says so).

use super::{Inner, ServedGroup};
use crate::flight::panic_message;
use crate::stats::bump;
use crate::trace::Escaped;
use crate::Value;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, PoisonError};

/// Senders whose leave notice tickets are kept at once; the oldest goes
/// first (its handoff is long over).
const LEAVERS_KEPT: usize = 16;

impl Inner {
    /// A value for `key` from its owner on an earlier ring, if this node's
    /// ring changed lately and that node holds it: kept in the main cache
    /// unless `ticket` was fenced. `None`: load it.
    pub(super) async fn peek_previous(&self, key: &str, ticket: u64) -> Option<Value> {
        let peer = self.picker.as_ref()?.previous_owner(key)?;
        if self.hints.waits_for(peer.id(), key) {
            return None; // it missed a change of the key made here
        }
        bump(&self.counters.peeks);
        let peeked = AssertUnwindSafe(peer.peek(&self.name, key))
            .catch_unwind()
            .await
            .unwrap_or_else(|payload| {
                Err(crate::FetchError::Unavailable(format!(
                    "the transport {}",
                    panic_message(payload.as_ref())
                )))
            });
        match peeked {
            Ok(Some(value)) if !self.is_expired(&value) => {
                bump(&self.counters.peek_hits);
                self.store_borrowed(key, &value, ticket);
                Some(value)
            }
            Ok(_) => {
                bump(&self.counters.peek_misses);
                None
            }
            Err(error) => {
                bump(&self.counters.peek_misses);
                tracing::debug!(
                    group = %self.name,
                    key = %self.key_in_traces.show(key),
                    peer = %Escaped(peer.id()),
                    error = %Escaped(&error),
                    "peek failed; loading"
                );
                None
            }
        }
    }

    /// Notes that `peer` said it leaves: the values it hands over are kept
    /// only for keys that did not change here since.
    pub(super) fn leaving(&self, peer: &str) {
        let ticket = self.lock_cache().fences.ticket();
        let mut leavers = self.leavers.lock().unwrap_or_else(PoisonError::into_inner);
        leavers.retain(|(id, _)| **id != *peer);
        if leavers.len() >= LEAVERS_KEPT {
            leavers.remove(0);
        }
        leavers.push((Arc::from(peer), ticket));
    }
}

impl ServedGroup {
    /// Serves a peer's peek ([`crate::Peer::peek`]): `key`'s value if this
    /// node's main cache holds it unexpired, else `None` (a hot copy is not
    /// lent: at the asker it would outlive its maximum age); never loads,
    /// never forwards, and counts no get and no hit.
    pub fn peek(&self, key: &str) -> Option<Value> {
        let inner = &self.inner;
        let now = inner.clock.now_unix_nanos();
        let value = inner.cache.read().cache.peek_main(key, now)?;
        bump(&inner.counters.peeks_served);
        Some(value)
    }

    /// Takes values a leaving node `from` hands over
    /// ([`crate::Peer::hand_over`]): each is kept in the main cache if this
    /// node owns its key on its own ring, its main cache does not hold it
    /// already (a hot copy is replaced), it has
    /// not expired, and the key did not change here since `from` said it
    /// was leaving (or, without that notice, since now), and no change of
    /// it made here waits for `from` (a hint: `from` missed it). Returns
    /// how many were kept.
    pub fn take_handed_over(&self, from: &str, entries: &[(String, Value)]) -> u64 {
        let inner = &self.inner;
        let ticket = {
            let leavers = inner.leavers.lock().unwrap_or_else(PoisonError::into_inner);
            leavers
                .iter()
                .find(|(id, _)| **id == *from)
                .map(|&(_, t)| t)
        };
        let ticket = ticket.unwrap_or_else(|| inner.lock_cache().fences.ticket());
        let mut kept = 0;
        for (key, value) in entries {
            let owned = inner.picker.as_ref().is_none_or(|p| p.pick(key).is_none());
            let stale = inner.hints.waits_for(from, key);
            if !owned || stale || inner.is_expired(value) || value.is_negative() {
                continue;
            }
            // A hot copy of it is replaced: the key is this node's now.
            if inner.lock_cache().cache.contains_main(key) {
                continue;
            }
            kept += u64::from(inner.store_borrowed(key, value, ticket));
        }
        inner
            .counters
            .handoff_received
            .fetch_add(kept, std::sync::atomic::Ordering::Relaxed);
        kept
    }
}

impl super::Group {
    /// The main cache's unexpired values, most valuable first by the
    /// cache policy's own rank, as many as fit in `max_bytes` (keys and
    /// values): what [`crate::Node::leave`] hands over.
    pub fn most_valuable(&self, max_bytes: u64) -> Vec<(String, Value)> {
        let now = self.inner.clock.now_unix_nanos();
        self.inner.lock_cache().cache.most_valuable(max_bytes, now)
    }

    /// Counts `kept` values this group handed over and their owners kept.
    pub(crate) fn count_handed_over(&self, kept: u64) {
        self.inner
            .counters
            .handed_over
            .fetch_add(kept, std::sync::atomic::Ordering::Relaxed);
    }

    /// Notes that `peer` said it leaves (`ServedGroup::take_handed_over`).
    pub(crate) fn peer_leaving(&self, peer: &str) {
        self.inner.leaving(peer);
    }
}
