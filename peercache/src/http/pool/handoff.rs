//! The pool's side of warm handoff (`crate::group` has the why): the rings
//! a peek looks back on, the peer it asks, and leaving the cluster.
//!
//! Each planned ring change (a new member list, a member's leave notice,
//! this node's own leave) keeps the ring it replaced for the peek window,
//! up to [`EARLIER_RINGS`] of them, newest first. A change a failure made
//! (a peer down, or back) is not kept: after a partition, a node on either
//! side may hold values changed on the other, with the changes on their
//! way (hints) from nodes this one may not hear from. A key's peek goes to its owner
//! on the newest of them where that owner is neither this node nor the
//! key's owner now, and is in the ring now (up, and not waiting out its
//! rejoin delay, so that a node that may have missed changes is never
//! asked), or is leaving and still answers (it said so, and hands its
//! values over meanwhile: a key asked before its value arrives is peeked
//! there; the first request it does not answer ends that). Looking back past one ring matters in a rolling restart: a
//! restarted node's keys were held by others while it was away, and the
//! next node's restart changes its ring again before every key was asked.
//!
//! A node that starts (its first peer list) takes the ring of the list
//! without itself as the earlier ring: the ring the others used while it
//! was away, or before it joined.

use super::{HttpPool, PoolState};
use crate::http::client::HttpPeer;
use crate::peers::Peer;
use crate::ring::{Ring, RingError};
use crate::trace::Escaped;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

/// Most earlier rings kept.
const EARLIER_RINGS: usize = 8;

/// Longest wait for a peer to take a leave notice: a peer that does not
/// answer by then learns it when this node stops answering.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(1);

impl HttpPool {
    /// The earlier rings of the state that replaces `old` with `ring` over
    /// `list`; `planned`: the change is a leave or a new member list, and
    /// the ring it replaces is kept.
    pub(super) fn earlier_rings(
        &self,
        old: &PoolState,
        ring: &Ring,
        list: &[String],
        planned: bool,
    ) -> Result<Vec<(Arc<Ring>, Instant)>, RingError> {
        let window = self.options.peek_window;
        if window.is_zero() {
            return Ok(Vec::new());
        }
        let now = Instant::now();
        let mut earlier: Vec<(Arc<Ring>, Instant)> = old
            .earlier
            .iter()
            .filter(|(_, replaced)| now.duration_since(*replaced) < window)
            .cloned()
            .collect();
        // A node's first peers, within the window of its start: the ring
        // without it is the one the others used while it was away.
        let first_peers = old.list.len() == 1 && list.len() > 1 && self.born.elapsed() < window;
        if first_peers {
            let mut without_me = Ring::new(self.options.hash_mode, self.options.replicas);
            for url in list.iter().filter(|url| **url != *self.self_url) {
                without_me.add(url)?;
            }
            earlier.insert(0, (Arc::new(without_me), now));
        } else if planned && !old.ring.peers().eq(ring.peers()) {
            earlier.insert(0, (Arc::clone(&old.ring), now));
        }
        earlier.truncate(EARLIER_RINGS);
        Ok(earlier)
    }

    /// The peer to peek for `key` (`PeerPicker::previous_owner`).
    pub(super) fn peek_target(&self, key: &str) -> Option<Arc<dyn Peer>> {
        let state = self.state.load();
        if state.earlier.is_empty() || self.left.load(Ordering::Relaxed) {
            return None;
        }
        let window = self.options.peek_window;
        let current = state.ring.owner(key);
        for (ring, replaced) in &state.earlier {
            if replaced.elapsed() >= window {
                break;
            }
            let Some(owner) = ring.owner(key) else {
                continue;
            };
            if *owner == *self.self_url || Some(owner) == current {
                continue;
            }
            match state.peers.get(owner) {
                Some(peer)
                    if (state.ring.contains(owner) || peer.is_leaving()) && peer.may_peek() =>
                {
                    return Some(Arc::clone(peer) as Arc<dyn Peer>)
                }
                _ => continue,
            }
        }
        None
    }

    /// Leaves the cluster (`PeerPicker::leave`): out of this node's own
    /// ring, and every peer that is up told, each within
    /// [`NOTICE_TIMEOUT`].
    pub(super) async fn leave_cluster(&self) {
        self.left.store(true, Ordering::Relaxed);
        {
            let rejoining = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            self.rebuild(&rejoining, true);
        }
        let peers: Vec<Arc<HttpPeer>> = self.state.load().peers.values().cloned().collect();
        let notices = peers
            .iter()
            .filter(|p| p.health().is_up())
            .map(|peer| async move {
                match tokio::time::timeout(NOTICE_TIMEOUT, peer.say_leaving()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(reason)) => tracing::warn!(
                        peer = %Escaped(peer.id()),
                        reason = %Escaped(&reason),
                        "leave notice not taken"
                    ),
                    Err(_) => tracing::warn!(
                        peer = %Escaped(peer.id()),
                        "leave notice not answered in time"
                    ),
                }
            });
        futures_util::future::join_all(notices).await;
        tracing::info!(self_url = %self.self_url, "left the cluster; peers told");
    }

    /// A member said it leaves (`PeerPicker::peer_left`): down at once,
    /// out of the ring, probed until it answers as one that stays.
    pub(super) fn member_left(&self, id: &str) -> bool {
        let Some(peer) = self.state.load().peers.get(id).cloned() else {
            return false;
        };
        peer.mark_leaving();
        let transition = peer.health().left("said it is leaving the cluster");
        self.peer_changed(id, transition);
        true
    }
}
