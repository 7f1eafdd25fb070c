//! Batch gets from one owner: one `POST <group>/_get-many/` per 1,000 keys
//! to a peercache node; concurrent single `GET`s to any other.
//!
//! A golang or mailgun node answers any method and path as a get, so it
//! would take a batch request for a get of the key `_get-many/` and run its
//! loader for it. A batch is therefore only sent to a peer whose answers
//! carry the `x-peercache` header. Every answer teaches the client what the
//! peer is; a peer not yet heard from is first sent the health probe (a
//! `GET` of the bare base path, which loads nothing on any groupcache).
//!
//! How a batch answer is read, key by key:
//!
//! | item | result |
//! | --- | --- |
//! | found | the value, with its expiry |
//! | not found | `FetchError::Load(NotFound)`, no second load |
//! | failed | `FetchError::Load`, with the owner's reason |
//! | skipped (over the owner's body limit) | asked again alone |
//!
//! A whole answer that is not a batch answer (a refused proof, a shedding
//! owner, a timeout) makes every key unavailable, to be loaded here, as
//! for a single get; a 404 or 405 (a node that does not know the request),
//! a 414 (a key over the owner's limit) or a 413 (a body over it) sends
//! the keys again as single gets, so only a key the owner refuses is
//! loaded here.

use super::HttpPeer;
use crate::http::protocol::{clipped, PeerRequest, Reply, MAX_GET_MANY_KEYS, PEERCACHE_HEADER};
use crate::loader::LoadError;
use crate::peers::{FetchError, FETCH_MANY_CONCURRENCY};
use crate::proto::{GetManyResponse, ItemStatus};
use crate::Value;
use futures_util::future::join_all;
use futures_util::stream::{FuturesOrdered, StreamExt};
use http::{HeaderMap, StatusCode};
use std::borrow::Cow;
use std::sync::atomic::Ordering;

/// What a peer is, as its answers tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum PeerKind {
    /// Not heard from yet.
    Unknown = 0,
    /// A peercache node: takes batch gets.
    Peercache = 1,
    /// Any other groupcache (or something else at that address).
    Other = 2,
}

/// Room in a batch answer for one item's framing (tags, lengths, expiry,
/// or an error text of at most 512 bytes).
const ITEM_FRAMING: usize = 600;

/// Results of a whole batch.
type Results = Vec<Result<Value, FetchError>>;

impl HttpPeer {
    /// What the peer is, from what it answered last.
    pub(super) fn kind(&self) -> PeerKind {
        match self.kind.load(Ordering::Relaxed) {
            1 => PeerKind::Peercache,
            2 => PeerKind::Other,
            _ => PeerKind::Unknown,
        }
    }

    /// Notes what an answer says the peer is. Refusals that may come from
    /// in front of the peer endpoint (a shedding listener, a proxy's 502)
    /// say nothing either way.
    /// Returns whether this answer came from a peercache endpoint.
    pub(super) fn learn_kind(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        let features = headers
            .get(PEERCACHE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let has = |feature: &str| features.split(',').any(|f| f.trim() == feature);
        let marked = has("get-many");
        if marked {
            self.drops_copies
                .store(has("copies-only"), Ordering::Relaxed);
            self.takes.peek.store(has("peek"), Ordering::Relaxed);
            self.takes
                .hand_over
                .store(has("hand-over"), Ordering::Relaxed);
            self.takes.leaving.store(has("leaving"), Ordering::Relaxed);
        }
        let kind = if marked {
            PeerKind::Peercache
        } else if status.is_success()
            || [
                StatusCode::BAD_REQUEST,
                StatusCode::NOT_FOUND,
                StatusCode::METHOD_NOT_ALLOWED,
            ]
            .contains(&status)
        {
            // Not (or no longer: a node replaced at its address) a
            // peercache node: nothing beyond Go's requests is sent.
            self.drops_copies.store(false, Ordering::Relaxed);
            self.takes.forget();
            PeerKind::Other
        } else {
            return marked;
        };
        self.kind.store(kind as u8, Ordering::Relaxed);
        marked
    }

    /// The values of `keys` (distinct) from this peer, in their order.
    pub(super) async fn get_many(&self, group: &str, keys: &[&str]) -> Results {
        if let [key] = keys {
            return vec![self.get(group, key).await];
        }
        if self.kind() == PeerKind::Unknown {
            self.probe().await;
        }
        if self.kind() != PeerKind::Peercache {
            return self.singles(group, keys).await;
        }
        // Keys over the endpoint's key limit go alone (and are refused
        // alone); the others in batches of at most MAX_GET_MANY_KEYS.
        let (long, short): (Vec<usize>, Vec<usize>) =
            (0..keys.len()).partition(|&i| keys[i].len() > self.max_key_bytes);
        if long.is_empty() {
            let chunks = keys
                .chunks(MAX_GET_MANY_KEYS)
                .map(|chunk| self.batch(group, chunk));
            return join_all(chunks).await.into_iter().flatten().collect();
        }
        let pick = |at: &[usize]| -> Vec<&str> { at.iter().map(|&i| keys[i]).collect() };
        let (long_keys, short_keys) = (pick(&long), pick(&short));
        let batches = short_keys
            .chunks(MAX_GET_MANY_KEYS)
            .map(|chunk| self.batch(group, chunk));
        let (batched, alone) =
            futures_util::future::join(join_all(batches), self.singles(group, &long_keys)).await;
        let mut results: Vec<Option<Result<Value, FetchError>>> = vec![None; keys.len()];
        for (i, result) in short.into_iter().zip(batched.into_iter().flatten()) {
            results[i] = Some(result);
        }
        for (i, result) in long.into_iter().zip(alone) {
            results[i] = Some(result);
        }
        results
            .into_iter()
            .map(|result| result.expect("every key answered"))
            .collect()
    }

    /// Each key by a single get, a few at a time.
    async fn singles(&self, group: &str, keys: &[&str]) -> Results {
        // A loop rather than `buffered` over a closure: the closure's
        // lifetimes defeat the `Send` proof of the boxed future.
        let mut waiting = keys.iter();
        let mut running = FuturesOrdered::new();
        for key in waiting.by_ref().take(FETCH_MANY_CONCURRENCY) {
            running.push_back(self.get(group, key));
        }
        let mut results = Vec::with_capacity(keys.len());
        while let Some(result) = running.next().await {
            results.push(result);
            if let Some(key) = waiting.next() {
                running.push_back(self.get(group, key));
            }
        }
        results
    }

    /// One batch request for at most [`MAX_GET_MANY_KEYS`] keys.
    async fn batch(&self, group: &str, keys: &[&str]) -> Results {
        let unavailable = |reason: String| -> Results {
            let error = self.unavailable(reason);
            vec![Err(error); keys.len()]
        };
        let request = PeerRequest::GetMany {
            group: group.into(),
            keys: Cow::Owned(keys.iter().map(|key| (*key).to_owned()).collect()),
        };
        let request = match request.encode() {
            Ok(request) => request,
            Err(reason) => return unavailable(reason),
        };
        let limit = self
            .max_answer_bytes
            .saturating_add(keys.len().saturating_mul(ITEM_FRAMING));
        let ((status, reply), marked) = match self.exchange_within(request, limit, false).await {
            Ok(answer) => answer,
            Err(reason) => return unavailable(reason),
        };
        match reply {
            // This answer's own mark, not the peer's last one: only a
            // peercache endpoint's answer is read as a batch answer.
            Reply::Value(body) if marked => {
                match GetManyResponse::decode_bounded(body, keys.len()) {
                    Ok(answer) if answer.items.len() == keys.len() => {
                        self.read_items(group, keys, answer).await
                    }
                    Ok(answer) => unavailable(format!(
                        "answered {} items for {} keys",
                        answer.items.len(),
                        keys.len()
                    )),
                    Err(error) => {
                        unavailable(format!("answered a malformed GetManyResponse: {error}"))
                    }
                }
            }
            // Not a peercache node (any more): it took the request for a
            // get, or does not know it. Ask again, one key at a time.
            Reply::Value(_) | Reply::NoRoute(_) | Reply::MethodNotAllowed(_) => {
                self.kind.store(PeerKind::Other as u8, Ordering::Relaxed);
                self.singles(group, keys).await
            }
            // A key over the owner's key limit, or a body over its body
            // limit, refuses the whole batch: asked alone, only the
            // offending key is refused.
            Reply::TooLong(_) | Reply::TooLarge(_) => self.singles(group, keys).await,
            reply => unavailable(format!(
                "answered the batch with {status}: {}",
                reply.reason()
            )),
        }
    }

    /// Each key's result from its item; skipped keys are asked alone.
    async fn read_items(&self, group: &str, keys: &[&str], answer: GetManyResponse) -> Results {
        let mut skipped = Vec::new();
        let mut results: Results = Vec::with_capacity(keys.len());
        for (i, (key, item)) in keys.iter().zip(answer.items).enumerate() {
            results.push(match ItemStatus::try_from(item.status) {
                Ok(ItemStatus::Found) => {
                    // One copy, out of hyper's read buffer (see `get`).
                    let value = item.value.unwrap_or_default();
                    Ok(Value::copied_keyed(
                        key.as_bytes(),
                        &value,
                        item.expire.unwrap_or(0),
                    ))
                }
                // The owner caches its not-found until `expire`.
                Ok(ItemStatus::NotFound) => match item.expire {
                    Some(until) if until > 1 => Err(FetchError::not_found_until(until)),
                    _ => Err(FetchError::Load(LoadError::NotFound)),
                },
                Ok(ItemStatus::Failed) => Err(FetchError::Load(LoadError::msg(clipped(
                    item.error.unwrap_or_default(),
                )))),
                Ok(ItemStatus::Skipped) => {
                    skipped.push(i);
                    Err(self.unavailable("skipped".to_owned()))
                }
                Err(_) => Err(self.unavailable(format!(
                    "answered an item with an unknown status {}",
                    item.status
                ))),
            });
        }
        if !skipped.is_empty() {
            let alone: Vec<&str> = skipped.iter().map(|&i| keys[i]).collect();
            for (i, result) in skipped.into_iter().zip(self.singles(group, &alone).await) {
                results[i] = result;
            }
        }
        results
    }
}
