//! A graceful leave ([`Node::leave`]): the other members are told, and
//! this node's most valuable cached values go to their new owners, so that
//! a deploy or a scale-in does not send the keys of the node that leaves
//! back to the origin (README "Deploys and scaling").

use super::Node;
use crate::peers::Peer;
use crate::Value;
use futures_util::FutureExt;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Keys and values, most valuable first.
type Entries = Vec<(String, Value)>;

/// Values sent to one peer in one [`Peer::hand_over`] call (a transport
/// may split it further by bytes).
const HANDOFF_CHUNK: usize = 1000;

/// How much a leaving node hands over ([`Node::leave`]): at most
/// `max_bytes` of keys and values in all, within `max_time`.
///
/// ```
/// use peercache::Handoff;
/// use std::time::Duration;
///
/// let handoff = Handoff { max_time: Duration::from_secs(10), ..Handoff::default() };
/// assert_eq!(handoff.max_bytes, 1 << 30);
/// assert_eq!(Handoff::none().max_bytes, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handoff {
    /// Bytes of keys and values sent, the most valuable first (default
    /// 1 GiB).
    pub max_bytes: u64,
    /// How long the handoff may take; what is not sent by then is not
    /// sent (default 5 s: well within the 30 s an orchestrator such as
    /// Kubernetes gives a process between its SIGTERM and its SIGKILL).
    pub max_time: Duration,
}

impl Default for Handoff {
    fn default() -> Self {
        Handoff {
            max_bytes: 1 << 30,
            max_time: Duration::from_secs(5),
        }
    }
}

impl Handoff {
    /// Hand nothing over: the other members are only told.
    pub fn none() -> Self {
        Handoff {
            max_bytes: 0,
            max_time: Duration::ZERO,
        }
    }
}

/// What [`Node::leave`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaveReport {
    /// Values sent to their new owners, in handoffs they answered (a value
    /// over the transport's body limit is counted but not sent).
    pub sent: u64,
    /// Of those, the values their new owners kept.
    pub kept: u64,
    /// Bytes of keys and values sent.
    pub bytes: u64,
    /// Values not sent: no other node is up to own them.
    pub unowned: u64,
    /// Peers that refused or failed a handoff, with the reason; what was
    /// left for them was not sent.
    pub failed: Vec<(String, String)>,
    /// Whether `max_time` ran out before everything chosen was sent.
    pub timed_out: bool,
    /// How long the leave took.
    pub took: Duration,
}

/// The counts of a handoff in progress, shared by its sends.
#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    kept: AtomicU64,
    bytes: AtomicU64,
    failed: Mutex<Vec<(String, String)>>,
}

impl Node {
    /// Leaves the cluster gracefully: tells the other members, so they
    /// take this node out of their rings at once
    /// ([`crate::PeerPicker::leave`]), then sends the most valuable values
    /// of every group's main cache (the cache policy's own rank) to their
    /// owners on the ring without this node, within `handoff`. A node that
    /// receives them keeps those it owns on its own ring.
    ///
    /// The node goes on answering requests (its gets now go to the other
    /// nodes): stop its servers after this returns, to let requests in
    /// flight finish. A node without peers has nothing to do.
    ///
    /// ```
    /// use peercache::{loader_fn, Handoff, Node};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peercache::Error> {
    /// let node = Node::new();
    /// node.new_group("g", 1 << 20, loader_fn(|k: String| async move { Ok(k) }))?;
    /// let report = node.leave(Handoff::default()).await;
    /// assert_eq!(report.sent, 0); // no peers: nobody to hand over to
    /// # Ok(())
    /// # }
    /// ```
    pub async fn leave(&self, handoff: Handoff) -> crate::LeaveReport {
        let started = Instant::now();
        self.inner.leaving.store(true, Ordering::Relaxed);
        let mut report = LeaveReport::default();
        let Some(picker) = self.inner.picker.clone() else {
            report.took = started.elapsed();
            return report;
        };
        // A transport that panics leaves the handoff undone, not the node.
        let told = AssertUnwindSafe(picker.leave()).catch_unwind().await;
        if told.is_err() {
            tracing::error!("the transport panicked telling the peers this node leaves");
        }
        let progress = Progress::default();
        let mut room = handoff.max_bytes;
        let mut unowned = 0;
        let work = async {
            for group in self.groups() {
                if room == 0 {
                    break;
                }
                let entries = group.most_valuable(room);
                let mut by_peer: Vec<(Arc<dyn Peer>, Entries)> = Vec::new();
                let mut index: HashMap<String, usize> = HashMap::new();
                for (key, value) in entries {
                    room = room.saturating_sub((key.len() + value.len()) as u64);
                    let Some(peer) = picker.pick(&key) else {
                        unowned += 1;
                        continue;
                    };
                    let at = *index.entry(peer.id().to_owned()).or_insert_with(|| {
                        by_peer.push((Arc::clone(&peer), Vec::new()));
                        by_peer.len() - 1
                    });
                    by_peer[at].1.push((key, value));
                }
                let sends = by_peer
                    .iter()
                    .map(|(peer, entries)| send(&group, peer.as_ref(), entries, &progress));
                futures_util::future::join_all(sends).await;
            }
        };
        if !handoff.max_time.is_zero() {
            report.timed_out = tokio::time::timeout(handoff.max_time, work).await.is_err();
        } else {
            drop(work);
        }
        report.sent = progress.sent.load(Ordering::Relaxed);
        report.kept = progress.kept.load(Ordering::Relaxed);
        report.bytes = progress.bytes.load(Ordering::Relaxed);
        report.failed = progress
            .failed
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        report.unowned = unowned;
        report.took = started.elapsed();
        tracing::info!(
            sent = report.sent,
            kept = report.kept,
            bytes = report.bytes,
            failed = report.failed.len(),
            timed_out = report.timed_out,
            took_ms = report.took.as_millis() as u64,
            "left the cluster; values handed over"
        );
        report
    }

    /// Whether [`Node::leave`] was called: the node is leaving the
    /// cluster (its peer endpoint says so in its answers, so that other
    /// nodes do not put it back in their rings). An application may also
    /// fail its readiness check with it.
    pub fn is_leaving(&self) -> bool {
        self.inner.leaving.load(Ordering::Relaxed)
    }

    /// The member `peer` said it is leaving: the groups keep only the
    /// values it hands over whose keys did not change since, and the
    /// picker takes it out of the ring ([`crate::PeerPicker::peer_left`]).
    /// Says whether `peer` is a member. Transports call it when told.
    pub fn peer_leaving(&self, peer: &str) -> bool {
        let member = (self.inner.picker.as_ref()).is_some_and(|picker| picker.peer_left(peer));
        if member {
            for group in self.groups() {
                group.peer_leaving(peer);
            }
        }
        member
    }
}

/// Hands `entries` of `group` to `peer` in chunks, most valuable first,
/// until one fails.
async fn send(
    group: &crate::Group,
    peer: &dyn Peer,
    entries: &[(String, Value)],
    progress: &Progress,
) {
    for chunk in entries.chunks(HANDOFF_CHUNK) {
        let handed = AssertUnwindSafe(peer.hand_over(group.name(), chunk))
            .catch_unwind()
            .await
            .unwrap_or_else(|payload| {
                let panicked = crate::flight::panic_message(payload.as_ref());
                Err(crate::PeerError::refused(format!(
                    "the transport {panicked}"
                )))
            });
        match handed {
            Ok(kept) => {
                let bytes: usize = chunk.iter().map(|(k, v)| k.len() + v.len()).sum();
                progress
                    .sent
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                progress.kept.fetch_add(kept, Ordering::Relaxed);
                progress.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                group.count_handed_over(kept);
            }
            Err(error) => {
                tracing::warn!(peer = %peer.id(), group = %group.name(), %error, "handoff refused or failed");
                let mut failed = progress
                    .failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                failed.push((peer.id().to_owned(), error.reason().to_owned()));
                return;
            }
        }
    }
}
