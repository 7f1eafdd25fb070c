//! The changes a peer is sent (remove, set, purge), and how their
//! answers are read: carried out, refused (the peer said no: reported, not
//! retried) or unreachable (kept as a hint and sent again).

use super::{is_failure, HttpPeer, REMOVE_KEYS_PER_REQUEST};
use crate::http::protocol::{PeerRequest, Reply, COPIES_ONLY_QUERY};
use crate::peers::PeerError;
use futures_util::future::join_all;
use http::StatusCode;

/// How a change is sent.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct How {
    /// Also to a peer out of the ring (a hint's delivery, which doubles as
    /// a probe).
    pub(super) even_if_down: bool,
    /// A removal of the peer's copies of other nodes' keys only (the
    /// second round of hints), not of what it owns.
    pub(super) copies_only: bool,
}

impl HttpPeer {
    /// Sends a change; `Ok` only for a 200 that is not a get's answer. A
    /// peer out of the ring is not asked, unless `how.even_if_down` or it
    /// is leaving.
    pub(super) async fn change(
        &self,
        request: PeerRequest<'_>,
        how: How,
    ) -> Result<(), ChangeError> {
        // A peer that is leaving is out of the ring but still answers
        // (peers may peek it while it hands its values over): it takes
        // every change until it stops answering.
        if !how.even_if_down && !self.health.is_up() && !self.takes.is_leaving() {
            let status = self.health.status(&self.id);
            return Err(ChangeError::Unreachable(format!(
                "out of the ring after {} failures in a row (last: {}); not sent",
                status.consecutive_failures,
                status.last_error.unwrap_or_default()
            )));
        }
        let mut request = request.encode().map_err(ChangeError::Refused)?;
        if how.copies_only {
            request.path.push('?');
            request.path.push_str(COPIES_ONLY_QUERY);
        }
        let method = request.method.clone();
        let (status, reply) = self
            .exchange(request)
            .await
            .map_err(ChangeError::Unreachable)?;
        match reply {
            Reply::Done => Ok(()),
            Reply::Value(_) => Err(ChangeError::NotUnderstood(format!(
                "answered {method} as a get: it cannot carry out changes (a golang/groupcache node?)"
            ))),
            Reply::NotFound(reason, _) | Reply::NoRoute(reason) | Reply::MethodNotAllowed(reason) => {
                Err(ChangeError::NotUnderstood(format!(
                    "answered {method} with {status}: {reason}"
                )))
            }
            reply => {
                let reason = format!("answered {method} with {status}: {}", reply.reason());
                // A peer that is not working, shedding load, or that timed
                // the request out may take the change later; any other
                // answer is its last word.
                if is_failure(status)
                    || status == StatusCode::SERVICE_UNAVAILABLE
                    || status == StatusCode::REQUEST_TIMEOUT
                    || status == StatusCode::TOO_MANY_REQUESTS
                {
                    Err(ChangeError::Unreachable(reason))
                } else {
                    Err(ChangeError::Refused(reason))
                }
            }
        }
    }

    /// [`crate::Peer::drop_copies`]: a remove marked `?copies-only`, which a
    /// peercache server applies to its hot cache only. Sent only to a peer
    /// whose answers say it takes it: a Go server, or an older peercache
    /// one, would remove the keys altogether, a value just set at its owner
    /// included. Other peers' copies live at most the hot copies' maximum
    /// age.
    pub(super) async fn copies_only(&self, group: &str, keys: &[String]) -> Result<(), PeerError> {
        if !self.drops_copies.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let how = How {
            copies_only: true,
            ..How::default()
        };
        Ok(self.remove_keys(group, keys, how).await?)
    }

    /// Removes `keys` on the peer, at most [`REMOVE_KEYS_PER_REQUEST`] per
    /// request (all requests at once).
    pub(super) async fn remove_keys(
        &self,
        group: &str,
        keys: &[String],
        how: How,
    ) -> Result<(), ChangeError> {
        if keys.len() > REMOVE_KEYS_PER_REQUEST {
            let chunks = keys
                .chunks(REMOVE_KEYS_PER_REQUEST)
                .map(|chunk| self.remove_chunk(group, chunk, how));
            return join_all(chunks).await.into_iter().collect();
        }
        self.remove_chunk(group, keys, how).await
    }

    async fn remove_chunk(
        &self,
        group: &str,
        keys: &[String],
        how: How,
    ) -> Result<(), ChangeError> {
        let remove = |key: &str| {
            let request = PeerRequest::Remove {
                group: group.into(),
                key: key.to_owned().into(),
            };
            self.change(request, how)
        };
        if let [key] = keys {
            return remove(key).await;
        }
        let request = PeerRequest::RemoveKeys {
            group: group.into(),
            keys: keys.into(),
        };
        match self.change(request, how).await {
            // A peer without `_remove-keys` (mailgun v2): one DELETE per key.
            Err(ChangeError::NotUnderstood(_)) => join_all(keys.iter().map(|key| remove(key)))
                .await
                .into_iter()
                .collect(),
            outcome => outcome,
        }
    }
}

/// Why a change was not carried out.
pub(super) enum ChangeError {
    /// The peer answered in a way that says it does not know the request.
    NotUnderstood(String),
    /// The peer answered no.
    Refused(String),
    /// The peer could not be asked, or did not answer.
    Unreachable(String),
}

impl From<ChangeError> for PeerError {
    fn from(error: ChangeError) -> Self {
        match error {
            ChangeError::NotUnderstood(reason) | ChangeError::Refused(reason) => {
                PeerError::refused(reason)
            }
            ChangeError::Unreachable(reason) => PeerError::unreachable(reason),
        }
    }
}
