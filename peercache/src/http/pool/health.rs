//! How the peers' health changes the ring: a peer that went down is taken
//! out and probed until it answers; one that answers again is put back
//! after the rejoin delay; and the instant this node's view last changed,
//! for `PeerPicker::settling`.

use super::{HttpPool, PoolState};
use crate::health::Transition;
use crate::http::client::HttpPeer;
use crate::peers::Peer;
use crate::trace::Escaped;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, Weak};
use std::time::Instant;

impl HttpPool {
    /// Rebuilds the ring from the current members (under the writer lock);
    /// `planned`: for a leave, so that peeks look back on the ring it
    /// replaces (`handoff.rs`).
    pub(super) fn rebuild(&self, rejoining: &HashMap<Arc<str>, (u64, Instant)>, planned: bool) {
        self.mark_changed();
        let old = self.state.load();
        match self.live_ring(&old.list, &old.peers, rejoining) {
            Ok(ring) => match self.earlier_rings(&old, &ring, &old.list, planned) {
                Ok(earlier) => self.state.store(Arc::new(PoolState {
                    ring: Arc::new(ring),
                    earlier,
                    peers: old.peers.clone(),
                    list: old.list.clone(),
                })),
                Err(error) => {
                    tracing::error!(error = %Escaped(&error), "rebuilding the ring failed; keeping the old one")
                }
            },
            Err(error) => {
                tracing::error!(error = %Escaped(&error), "rebuilding the ring failed; keeping the old one")
            }
        }
    }

    /// A peer went down or came back: rebuild the ring, start probing a
    /// peer that went down, and put one that came back in the ring after
    /// the rejoin delay.
    /// A peer that said it leaves ([`Transition::Left`]) is a planned
    /// change: peeks look back on the ring it leaves (`handoff.rs`).
    pub(crate) fn peer_changed(&self, id: &str, transition: Transition) {
        let planned = transition == Transition::Left;
        let transition = match transition {
            Transition::Left => Transition::WentDown,
            other => other,
        };
        let mut rejoining = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.state.load();
        let Some((id, peer)) = old
            .peers
            .get_key_value(id)
            .map(|(id, peer)| (Arc::clone(id), Arc::clone(peer)))
        else {
            return;
        };
        let delay = self.options.health.rejoin_delay();
        let runtime = tokio::runtime::Handle::try_current();
        // Reports may be handled out of order (each is sent after the
        // health lock is released): act on the peer's state now.
        let up = peer.health().is_up();
        match transition {
            Transition::WentDown if !up => {
                rejoining.remove(&id);
            }
            Transition::CameBack if up && !delay.is_zero() && runtime.is_ok() => {
                let turn = self
                    .returns
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                rejoining.insert(Arc::clone(&id), (turn, Instant::now() + delay));
                if let Ok(runtime) = &runtime {
                    runtime.spawn(rejoin_after(self.me.clone(), Arc::clone(&id), turn, delay));
                }
            }
            _ => {}
        }
        self.rebuild(&rejoining, planned);
        let id = &*id;
        match transition {
            Transition::WentDown if !up => {
                let status = peer.health().status(id);
                tracing::warn!(
                    peer = %Escaped(id),
                    failures = status.consecutive_failures,
                    last_error = %Escaped(status.last_error.as_deref().unwrap_or("")),
                    "peer taken out of the ring; probing it until it answers"
                );
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(probe_until_back(self.me.clone(), peer));
                }
            }
            Transition::CameBack if up && rejoining.contains_key(id) => tracing::info!(
                peer = %Escaped(id),
                delay_ms = delay.as_millis() as u64,
                "peer answers again; back in the ring after the rejoin delay"
            ),
            Transition::CameBack if up => {
                tracing::info!(peer = %Escaped(id), "peer answers again; back in the ring")
            }
            // A report overtaken by a newer one: nothing to say.
            Transition::WentDown | Transition::CameBack | Transition::Left | Transition::None => {}
        }
    }

    pub(super) fn mark_changed(&self) {
        *self
            .changed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = std::time::Instant::now();
    }
}

/// Puts a peer back in the ring `delay` after its return number `turn`,
/// unless it went down (or returned again) meanwhile.
async fn rejoin_after(pool: Weak<HttpPool>, id: Arc<str>, turn: u64, delay: std::time::Duration) {
    tokio::time::sleep(delay).await;
    let Some(pool) = pool.upgrade() else {
        return;
    };
    let mut rejoining = pool.writer.lock().unwrap_or_else(PoisonError::into_inner);
    if rejoining.get(&id).is_some_and(|&(t, _)| t == turn) {
        rejoining.remove(&id);
        pool.rebuild(&rejoining, false);
        tracing::info!(peer = %Escaped(&id), "peer back in the ring");
    }
}

/// Probes a peer that went down until it answers (which puts it back in the
/// ring), it leaves the member list, or the pool is dropped.
async fn probe_until_back(pool: Weak<HttpPool>, peer: Arc<HttpPeer>) {
    loop {
        tokio::time::sleep(peer.health().next_probe_delay()).await;
        match pool.upgrade() {
            Some(pool) if pool.is_member(peer.id()) => {}
            _ => return,
        }
        if peer.health().is_up() || peer.probe().await {
            return;
        }
    }
}
