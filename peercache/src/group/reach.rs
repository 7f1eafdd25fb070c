//! How a change reaches the peers: the order (owner, this node, the
//! others), how long it waits for each, the hints kept for the peers it
//! did not reach (`hints.rs`), and the report.
//!
//! A change waits for the key's owner as long as the transport's own
//! request timeout: a change that did not reach the owner did not happen
//! where the cluster reads the key, and fails. It waits for the other
//! peers, which only drop copies, at most the group's change timeout
//! ([`crate::GroupBuilder::change_timeout`]): a hung non-owner must not
//! hold every write of the cluster for the full request timeout. A peer it
//! did not reach is *pending*: the change is kept for it and delivered
//! when it answers again.

use super::hints::{Delivery, SecondRound, RETRY_INTERVAL};
use super::Inner;
use crate::error::{Applied, Error, PeerFailure};
use crate::flight::panic_message;
use crate::peers::{Peer, PeerError};
use crate::trace::Escaped;
use crate::Value;
use futures_util::future::join_all;
use futures_util::FutureExt;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// One peer's part of a change.
#[derive(Clone, Copy)]
enum Change<'a> {
    Remove(&'a [String]),
    Set(&'a str, &'a Value),
    Purge,
}

impl Change<'_> {
    /// The keys it drops at the peer, `None` for all of them.
    fn drops(&self) -> Option<Vec<String>> {
        match *self {
            Change::Remove(keys) => Some(keys.to_vec()),
            Change::Set(key, _) => Some(vec![key.to_owned()]),
            Change::Purge => None,
        }
    }
}

/// A peer call whose panic becomes an error.
async fn guard<F>(call: F) -> Result<(), PeerError>
where
    F: Future<Output = Result<(), PeerError>>,
{
    AssertUnwindSafe(call)
        .catch_unwind()
        .await
        .unwrap_or_else(|payload| {
            Err(PeerError::refused(format!(
                "the transport {}",
                panic_message(payload.as_ref())
            )))
        })
}

/// `call`, given up after `limit` (when a tokio runtime runs: the timer
/// needs one) as an unreachable peer.
async fn within<F>(limit: Option<Duration>, call: F) -> Result<(), PeerError>
where
    F: Future<Output = Result<(), PeerError>>,
{
    match limit {
        Some(limit) if tokio::runtime::Handle::try_current().is_ok() => {
            tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                Err(PeerError::unreachable(format!(
                    "no answer within the change timeout ({limit:?})"
                )))
            })
        }
        _ => call.await,
    }
}

impl Inner {
    pub(super) fn others(&self) -> Vec<Arc<dyn Peer>> {
        self.picker.as_ref().map_or_else(Vec::new, |p| p.others())
    }

    /// Sends `change` to `peer`, waiting at most `limit` (`None`: the
    /// transport's timeout). A change that reached the peer supersedes its
    /// older hints; one that did not becomes a hint. `owner`: whether the
    /// peer owns the keys, for the report.
    async fn send(
        self: &Arc<Self>,
        peer: &Arc<dyn Peer>,
        change: Change<'_>,
        limit: Option<Duration>,
        owner: bool,
    ) -> Option<PeerFailure> {
        let generation = self.hints.generation();
        let name = &*self.name;
        let call = guard(match change {
            Change::Remove(keys) => peer.remove(name, keys),
            Change::Set(key, value) => peer.set(name, key, value),
            Change::Purge => peer.purge(name),
        });
        let drops = change.drops();
        match within(limit, call).await {
            Ok(()) => {
                self.hints
                    .superseded(peer.id(), drops.as_deref(), generation);
                None
            }
            Err(error) => {
                let pending = error.is_unreachable();
                if pending && self.hints.keep(peer, drops.as_deref()) {
                    self.start_delivery();
                }
                Some(PeerFailure {
                    peer: Arc::from(peer.id()),
                    owner,
                    pending,
                    reason: error.reason().to_owned(),
                })
            }
        }
    }

    /// Removes `keys` at their owners, here, then at every other peer.
    pub(super) async fn remove_everywhere(self: &Arc<Self>, keys: Vec<String>) -> Vec<PeerFailure> {
        // Step 1: each remote owner, with the keys it owns.
        let mut by_owner: HashMap<String, (Arc<dyn Peer>, Vec<String>)> = HashMap::new();
        for key in &keys {
            if let Some(owner) = self.picker.as_ref().and_then(|p| p.pick(key)) {
                by_owner
                    .entry(owner.id().to_owned())
                    .or_insert_with(|| (owner, Vec::new()))
                    .1
                    .push(key.clone());
            }
        }
        let sent = by_owner
            .values()
            .map(|(peer, owned)| self.send(peer, Change::Remove(owned), None, true));
        let mut failures: Vec<PeerFailure> = join_all(sent).await.into_iter().flatten().collect();
        // An owner not reached may also hold copies of the other keys: its
        // hint covers them too (it is not asked again in step 3).
        for failure in failures.iter().filter(|f| f.pending) {
            if let Some((peer, owned)) = by_owner.get(&*failure.peer) {
                let rest: Vec<String> = keys
                    .iter()
                    .filter(|k| !owned.contains(k))
                    .cloned()
                    .collect();
                if !rest.is_empty() && self.hints.keep(peer, Some(&rest)) {
                    self.start_delivery();
                }
            }
        }
        // Step 2: this node (the owner of the other keys).
        self.remove_here(&keys);
        // Step 3: every other peer, with the keys it was not sent as owner
        // (an owner that failed in step 1 is not asked again: it has a hint
        // or refused).
        let rest: Vec<(Arc<dyn Peer>, Vec<String>)> = self
            .others()
            .into_iter()
            .filter(|peer| !failures.iter().any(|f| *f.peer == *peer.id()))
            .filter_map(|peer| {
                let owned = by_owner.get(peer.id()).map(|(_, owned)| owned);
                let keys: Vec<String> = match owned {
                    Some(owned) => keys
                        .iter()
                        .filter(|k| !owned.contains(k))
                        .cloned()
                        .collect(),
                    None => keys.clone(),
                };
                (!keys.is_empty()).then_some((peer, keys))
            })
            .collect();
        let limit = Some(self.change_timeout);
        let sent = rest
            .iter()
            .map(|(peer, keys)| self.send(peer, Change::Remove(keys), limit, false));
        failures.extend(join_all(sent).await.into_iter().flatten());
        self.settle(&keys, &failures).await;
        failures
    }

    /// Stores `value` at the owner, then drops every other copy.
    pub(super) async fn set_everywhere(
        self: &Arc<Self>,
        key: String,
        value: Value,
    ) -> Vec<PeerFailure> {
        let owner = self.picker.as_ref().and_then(|p| p.pick(&key));
        let mut failures = Vec::new();
        match &owner {
            Some(peer) => {
                // An owner not reached gets a hint to drop its old value.
                failures.extend(self.send(peer, Change::Set(&key, &value), None, true).await);
                self.remove_here(&[key.as_str()]);
            }
            None => self.set_here(&key, value),
        }
        let owner_id = owner.as_ref().map(|p| p.id().to_owned());
        let keys = [key];
        let rest: Vec<Arc<dyn Peer>> = self
            .others()
            .into_iter()
            .filter(|peer| Some(peer.id()) != owner_id.as_deref())
            .collect();
        let limit = Some(self.change_timeout);
        let sent = rest
            .iter()
            .map(|peer| self.send(peer, Change::Remove(&keys), limit, false));
        failures.extend(join_all(sent).await.into_iter().flatten());
        self.settle(&keys, &failures).await;
        failures
    }

    /// Drops `key` at every peer (this node, its owner, stored it): the
    /// second half of a set whose writer does not do it
    /// ([`crate::ServedGroup::set_and_drop_copies`]).
    pub(super) async fn drop_copies_elsewhere(self: &Arc<Self>, key: String) {
        let keys = [key];
        let limit = Some(self.change_timeout);
        let peers = self.others();
        let sent = peers
            .iter()
            .map(|peer| self.send(peer, Change::Remove(&keys), limit, false));
        let failures: Vec<PeerFailure> = join_all(sent).await.into_iter().flatten().collect();
        self.settle(&keys, &failures).await;
        if !failures.is_empty() {
            let action = format!(
                "drop of the copies of key {:?} set by a writer that does not drop them",
                keys[0]
            );
            let _ = self.outcome(action, failures);
        }
    }

    /// Empties the group here and at every peer, twice over (a hot copy
    /// refilled from a peer not purged yet is purged by the second round);
    /// a peer not reached in the first round is not asked again.
    pub(super) async fn purge_everywhere(self: &Arc<Self>) -> Vec<PeerFailure> {
        let limit = Some(self.change_timeout);
        let mut failures: Vec<PeerFailure> = Vec::new();
        for _round in 0..2 {
            self.purge_here();
            let peers: Vec<Arc<dyn Peer>> = self
                .others()
                .into_iter()
                .filter(|peer| !failures.iter().any(|f| *f.peer == *peer.id()))
                .collect();
            let sent = peers
                .iter()
                .map(|peer| self.send(peer, Change::Purge, limit, false));
            failures.extend(join_all(sent).await.into_iter().flatten());
        }
        failures
    }

    /// The result of a change: applied (with the peers it waits for), or
    /// the error naming every peer it did not reach.
    pub(super) fn outcome(
        &self,
        action: String,
        failures: Vec<PeerFailure>,
    ) -> Result<Applied, Error> {
        if failures.iter().all(|f| f.pending && !f.owner) {
            if !failures.is_empty() {
                let peers: Vec<&str> = failures.iter().map(|f| &*f.peer).collect();
                tracing::info!(group = %self.name, pending = %Escaped(peers.join(",")), "change kept for peers not reached; delivered when they answer");
            }
            return Ok(Applied {
                pending: failures.into_iter().map(|f| f.peer).collect(),
            });
        }
        let error = Error::PeersFailed {
            group: self.name.clone(),
            action,
            failures,
        };
        // The error names the key; the event names only the peers (the
        // change's span shows the key as `key_in_traces` says).
        let peers: Vec<String> = error
            .failed_peers()
            .iter()
            .map(|f| format!("{} ({})", f.peer, f.reason))
            .collect();
        tracing::warn!(group = %self.name, failed = %Escaped(peers.join("; ")), "change not applied everywhere");
        Err(error)
    }

    /// The second round of hints (`hints.rs`): drops the hot copies of the
    /// keys once more, here and at every peer.
    async fn second_round(self: &Arc<Self>, second: SecondRound) {
        tracing::debug!(
            group = %self.name,
            keys = second.keys.len(),
            all = second.all,
            "every hint of these keys landed: dropping their copies once more"
        );
        if second.all {
            self.drop_copies_everywhere(None, &[]).await;
        }
        if !second.keys.is_empty() {
            self.drop_copies_everywhere(Some(&second.keys), &[]).await;
        }
    }

    /// After a change reached every node it could: while this node's view
    /// of the cluster is settling (`PeerPicker::settling`), others may see
    /// another owner for a key and have refilled their copy from it before
    /// it took the change, so the copies are dropped once more.
    async fn settle(self: &Arc<Self>, keys: &[String], failures: &[PeerFailure]) {
        if self.picker.as_ref().is_some_and(|p| p.settling()) {
            self.drop_copies_everywhere(Some(keys), failures).await;
        }
    }

    /// Drops the hot copies of `keys` (every hot copy for `None`) here and
    /// at every peer but the ones in `skip` (best effort: a peer not
    /// reached keeps no hint, its copies live at most the hot copies'
    /// maximum age).
    async fn drop_copies_everywhere(
        self: &Arc<Self>,
        keys: Option<&[String]>,
        skip: &[PeerFailure],
    ) {
        match keys {
            Some(keys) => self.drop_copies_here(keys),
            None => self.drop_all_copies_here(),
        }
        let (name, limit) = (&*self.name, Some(self.change_timeout));
        let peers: Vec<Arc<dyn Peer>> = self
            .others()
            .into_iter()
            .filter(|peer| !skip.iter().any(|f| *f.peer == *peer.id()))
            .collect();
        let sent = peers.iter().map(|peer| async move {
            let call = match keys {
                Some(keys) => peer.drop_copies(name, keys),
                None => peer.drop_all_copies(name),
            };
            let dropped = within(limit, guard(call)).await;
            if let Err(error) = dropped {
                tracing::debug!(
                    peer = %Escaped(peer.id()),
                    reason = %Escaped(error.reason()),
                    "copies not dropped a second time"
                );
            }
        });
        join_all(sent).await;
    }

    /// Starts the task delivering the hints (when a tokio runtime runs).
    fn start_delivery(self: &Arc<Self>) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(deliver(Arc::downgrade(self)))),
            Err(_) => self.hints.stopped(),
        }
    }
}

/// Marks the delivery task stopped if it ends other than by finding
/// nothing left (a panic, or its runtime shut down), so that the next hint
/// starts another.
struct Delivering {
    group: Weak<Inner>,
    /// Set when the task ends by finding nothing left (`to_deliver` then
    /// marked it stopped).
    done: bool,
}

impl Drop for Delivering {
    fn drop(&mut self) {
        if let (false, Some(inner)) = (self.done, self.group.upgrade()) {
            inner.hints.stopped();
        }
    }
}

/// Sends the hints every [`RETRY_INTERVAL`], each peer's on its own task,
/// until none is left or the group is gone.
async fn deliver(group: Weak<Inner>) {
    let mut delivering = Delivering {
        group: group.clone(),
        done: false,
    };
    loop {
        tokio::time::sleep(RETRY_INTERVAL).await;
        let Some(inner) = group.upgrade() else {
            return;
        };
        // The members, once a round (not once per peer with hints).
        let members = inner.others();
        let is_member = |id: &str| members.iter().any(|peer| peer.id() == id);
        let Some(deliveries) = inner.hints.to_deliver(is_member) else {
            // `to_deliver` marked the task stopped.
            delivering.done = true;
            return;
        };
        for delivery in deliveries {
            let in_flight = InFlight {
                inner: Arc::clone(&inner),
                peer: Arc::from(delivery.peer.id()),
                done: false,
            };
            tokio::spawn(deliver_one(in_flight, delivery));
        }
        if let Some(second) = inner.hints.take_second_round() {
            inner.second_round(second).await;
        }
    }
}

/// Clears a delivery's place if its task is dropped before its outcome
/// (also before it first ran: made before the task is spawned).
struct InFlight {
    inner: Arc<Inner>,
    peer: Arc<str>,
    done: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            self.inner.hints.abandoned(&self.peer);
        }
    }
}

/// One peer's delivery, then at once the second round it may complete (a
/// node refilled from a peer whose hint landed last must not keep that
/// copy longer than it takes).
async fn deliver_one(mut in_flight: InFlight, delivery: Delivery) {
    let inner = Arc::clone(&in_flight.inner);
    let keys = (!delivery.purge).then_some(delivery.keys.as_slice());
    let call = guard(delivery.peer.deliver_hints(&inner.name, keys));
    let outcome = within(Some(inner.change_timeout), call).await;
    inner.hints.delivered(&delivery, &outcome);
    in_flight.done = true;
    if let Some(second) = inner.hints.take_second_round() {
        inner.second_round(second).await;
    }
}
