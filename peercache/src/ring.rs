//! The consistent-hash ring that decides which peer owns a key.
//!
//! Each peer puts `replicas × weight` points on a circle; a key belongs to the
//! peer of the first point at or after the key's hash, wrapping around to the
//! first point. Two hash modes reproduce the Go implementations bit for bit,
//! so that a Rust node and Go nodes given the same peer list agree on every
//! owner (and a mixed cluster loads each key once):
//!
//! - [`HashMode::Golang`] (golang/groupcache `consistenthash`): point `i` of
//!   peer `p` is `crc32_ieee(decimal(i) + p)`, a key hashes to
//!   `crc32_ieee(key)`.
//! - [`HashMode::Mailgun`] (mailgun/groupcache v2, groupcache-go v3): point
//!   `i` is `fnv1_64(lowercase_hex(md5(decimal(i) + p)))` compared as a signed
//!   64-bit integer, a key hashes to `fnv1_64(key)`.
//!
//! What Go lacks, and this ring adds:
//!
//! - **Removal.** [`Ring::remove`] gives exactly the ring that never had the
//!   peer, even where points collide: every point is kept (duplicates too),
//!   and a collision is won by the peer added most recently, as in golang
//!   (whose map keeps the last writer). Removing that peer reveals the other.
//! - **Weights.** A peer with weight `w` gets `round(replicas × w)` points;
//!   its first `replicas` points are exactly Go's, so weight 1 is Go's ring.
//!
//! FNV-1 is written here by hand (a multiply and a xor per byte): the `fnv`
//! crate implements only FNV-1a, which places points elsewhere.

use std::fmt;

/// Default number of points per peer, as in Go's `HTTPPool`.
pub const DEFAULT_REPLICAS: usize = 50;

/// Most points one peer may put on the ring; guards against a weight typo
/// (e.g. 1e9) allocating gigabytes.
pub const MAX_POINTS_PER_PEER: usize = 1 << 20;

/// Which Go implementation's hashing to reproduce.
///
/// Pick the one the Go nodes of your cluster use (all nodes must agree);
/// [`crate::http::HttpOptions::mailgun`] selects `Mailgun`.
///
/// ```
/// use peercache::ring::HashMode;
///
/// // golang/groupcache hashes a key with CRC-32 (IEEE).
/// assert_eq!(HashMode::Golang.key_position(b"hello"), 0x3610_a686);
/// assert_eq!(HashMode::Golang.go_hash(0x3610_a686), 907_060_870);
/// assert_eq!(HashMode::default(), HashMode::Golang);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashMode {
    /// golang/groupcache: CRC-32 (IEEE).
    #[default]
    Golang,
    /// mailgun/groupcache v2 and groupcache-go v3: FNV-1 64 over MD5 hex.
    Mailgun,
}

impl HashMode {
    /// Position of replica `i` of `peer`, in ring order (see [`Self::key_position`]).
    pub fn point(self, i: usize, peer: &str) -> u64 {
        let label = format!("{i}{peer}");
        match self {
            HashMode::Golang => u64::from(crc32fast::hash(label.as_bytes())),
            HashMode::Mailgun => {
                use md5::{Digest, Md5};
                let digest = Md5::digest(label.as_bytes());
                let mut hex = [0u8; 32];
                for (pair, byte) in hex.chunks_exact_mut(2).zip(digest.iter()) {
                    const DIGITS: &[u8; 16] = b"0123456789abcdef";
                    pair[0] = DIGITS[usize::from(byte >> 4)];
                    pair[1] = DIGITS[usize::from(byte & 0x0f)];
                }
                signed_order(fnv1_64(&hex))
            }
        }
    }

    /// Position of a key on the ring. Positions are `u64`s ordered the way the
    /// Go implementation orders its hashes: crc32 values as they are, signed
    /// 64-bit FNV values shifted so that unsigned order equals signed order.
    pub fn key_position(self, key: &[u8]) -> u64 {
        match self {
            HashMode::Golang => u64::from(crc32fast::hash(key)),
            HashMode::Mailgun => signed_order(fnv1_64(key)),
        }
    }

    /// Turns a position back into the hash value Go prints (`int` for both
    /// modes): the crc32 value, or the signed FNV value.
    pub fn go_hash(self, position: u64) -> i64 {
        match self {
            HashMode::Golang => position as i64,
            HashMode::Mailgun => (position ^ (1 << 63)) as i64,
        }
    }
}

/// Maps an `i64` bit pattern to a `u64` with the same order.
fn signed_order(hash: u64) -> u64 {
    hash ^ (1 << 63)
}

/// 64-bit FNV-1 (not FNV-1a): multiply by the prime, then xor the byte.
pub fn fnv1_64(data: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    data.iter()
        .fold(OFFSET, |h, &b| h.wrapping_mul(PRIME) ^ u64::from(b))
}

/// A peer's weight was not usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RingError {
    /// Weight not finite, not positive, or giving too many points.
    #[error("peer {peer:?}: weight {weight} is not usable; give a finite weight > 0 that yields at most {max} points (replicas × weight)", max = MAX_POINTS_PER_PEER)]
    BadWeight {
        /// The peer whose weight was rejected.
        peer: String,
        /// The weight given.
        weight: f64,
    },
    /// An empty string cannot identify a peer.
    #[error("a peer identity must not be empty")]
    EmptyPeer,
}

#[derive(Clone)]
struct Member {
    id: String,
    weight: f64,
    /// Order of addition; a collision is won by the highest.
    seq: u64,
}

#[derive(Clone, Copy)]
struct Point {
    position: u64,
    /// Index into `Ring::members`.
    member: u32,
}

/// A consistent-hash ring of peer identities (e.g. base URLs).
///
/// Transports build one for you ([`crate::http::HttpPool`],
/// [`crate::in_process`]); build your own to see where keys go, or to
/// write a transport. Given the same peers, in the same order, with the same
/// mode and replicas, a Go node picks the same owners (these are from
/// golang/groupcache and mailgun/groupcache runs, `tests/data`):
///
/// ```
/// use peercache::ring::{HashMode, Ring, DEFAULT_REPLICAS};
///
/// # fn main() -> Result<(), peercache::ring::RingError> {
/// let peers = ["http://127.0.0.1:9101", "http://127.0.0.1:9102", "http://127.0.0.1:9103"];
///
/// let golang = Ring::with_peers(HashMode::Golang, DEFAULT_REPLICAS, peers)?;
/// assert_eq!(golang.owner("k3"), Some("http://127.0.0.1:9102"));
///
/// let mailgun = Ring::with_peers(HashMode::Mailgun, DEFAULT_REPLICAS, peers)?;
/// assert_eq!(mailgun.owner("k0"), Some("http://127.0.0.1:9102"));
/// # Ok(())
/// # }
/// ```
///
/// Removing a peer moves only its keys, and gives exactly the ring built
/// without it; a weight gives a peer proportionally more of the key space:
///
/// ```
/// use peercache::ring::{HashMode, Ring};
///
/// # fn main() -> Result<(), peercache::ring::RingError> {
/// let mut ring = Ring::new(HashMode::Golang, 50);
/// ring.add("a")?;
/// ring.add("b")?;
/// ring.add_weighted("c", 2.0)?; // 100 points instead of 50
///
/// let keys: Vec<String> = (0..1000).map(|i| format!("key-{i}")).collect();
/// let before: Vec<String> = keys.iter().map(|k| ring.owner(k).unwrap().to_owned()).collect();
/// assert!(ring.remove("b"));
/// for (key, owner) in keys.iter().zip(&before) {
///     if owner != "b" {
///         assert_eq!(ring.owner(key), Some(owner.as_str())); // did not move
///     }
/// }
/// let shares = ring.shares(); // [("a", ..), ("c", ..)], summing to 1
/// assert!(shares[1].1 > shares[0].1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Ring {
    mode: HashMode,
    replicas: usize,
    members: Vec<Member>,
    next_seq: u64,
    /// Sorted by position; among equal positions, the most recently added
    /// peer first (it is the one a look-up must find).
    points: Vec<Point>,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("mode", &self.mode)
            .field("replicas", &self.replicas)
            .field("peers", &self.peers().collect::<Vec<_>>())
            .field("points", &self.points.len())
            .finish()
    }
}

impl Default for Ring {
    fn default() -> Self {
        Ring::new(HashMode::Golang, DEFAULT_REPLICAS)
    }
}

impl Ring {
    /// An empty ring; `replicas` is the number of points of a weight-1 peer
    /// (0 is taken as 1).
    pub fn new(mode: HashMode, replicas: usize) -> Self {
        Ring {
            mode,
            replicas: replicas.max(1),
            members: Vec::new(),
            next_seq: 0,
            points: Vec::new(),
        }
    }

    /// A ring of these peers, added in order with weight 1 (what Go's
    /// `HTTPPool.Set` builds).
    pub fn with_peers<I, S>(mode: HashMode, replicas: usize, peers: I) -> Result<Self, RingError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut ring = Ring::new(mode, replicas);
        for peer in peers {
            ring.add(peer.as_ref())?;
        }
        Ok(ring)
    }

    /// The hash mode.
    pub fn mode(&self) -> HashMode {
        self.mode
    }

    /// Points per weight-1 peer.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when the ring has no peers (every look-up answers `None`).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Peer identities in the order they were added.
    pub fn peers(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| m.id.as_str())
    }

    /// True if the peer is on the ring.
    pub fn contains(&self, peer: &str) -> bool {
        self.members.iter().any(|m| m.id == peer)
    }

    /// Adds a peer with weight 1. Adding a peer that is already there
    /// re-adds it as the most recent (it then wins its collisions).
    pub fn add(&mut self, peer: &str) -> Result<(), RingError> {
        self.add_weighted(peer, 1.0)
    }

    /// Adds a peer with `round(replicas × weight)` points (at least 1).
    pub fn add_weighted(&mut self, peer: &str, weight: f64) -> Result<(), RingError> {
        if peer.is_empty() {
            return Err(RingError::EmptyPeer);
        }
        let count = self
            .point_count(weight)
            .ok_or_else(|| RingError::BadWeight {
                peer: peer.to_owned(),
                weight,
            })?;
        self.remove(peer);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.members.push(Member {
            id: peer.to_owned(),
            weight,
            seq,
        });
        let member = (self.members.len() - 1) as u32;
        self.points.extend((0..count).map(|i| Point {
            position: self.mode.point(i, peer),
            member,
        }));
        self.sort_points();
        Ok(())
    }

    /// Removes a peer; returns whether it was there. The result is the ring
    /// that would have been built without it.
    pub fn remove(&mut self, peer: &str) -> bool {
        let Some(gone) = self.members.iter().position(|m| m.id == peer) else {
            return false;
        };
        self.members.remove(gone);
        let gone = gone as u32;
        self.points.retain(|p| p.member != gone);
        for point in &mut self.points {
            if point.member > gone {
                point.member -= 1;
            }
        }
        true
    }

    /// The weight a peer was added with.
    pub fn weight(&self, peer: &str) -> Option<f64> {
        self.members.iter().find(|m| m.id == peer).map(|m| m.weight)
    }

    /// The peer that owns `key`, or `None` if the ring is empty.
    pub fn owner(&self, key: impl AsRef<[u8]>) -> Option<&str> {
        self.owner_at(self.mode.key_position(key.as_ref()))
    }

    /// The peer owning position `position` (see [`HashMode::key_position`]).
    pub fn owner_at(&self, position: u64) -> Option<&str> {
        if self.points.is_empty() {
            return None;
        }
        let i = self.points.partition_point(|p| p.position < position);
        let point = self.points.get(i).unwrap_or(&self.points[0]);
        Some(&self.members[point.member as usize].id)
    }

    /// The ring's points in order, as (Go hash value, peer) pairs; equal
    /// positions list the winning peer first.
    pub fn points(&self) -> impl Iterator<Item = (i64, &str)> {
        self.points.iter().map(|p| {
            (
                self.mode.go_hash(p.position),
                self.members[p.member as usize].id.as_str(),
            )
        })
    }

    /// Fraction of the hash space each peer owns, in the order peers were
    /// added (useful to check weights and balance).
    pub fn shares(&self) -> Vec<(&str, f64)> {
        let mut owned = vec![0u128; self.members.len()];
        let space: u128 = match self.mode {
            HashMode::Golang => 1 << 32,
            HashMode::Mailgun => 1 << 64,
        };
        // Walk each arc (previous point, this point]; the first arc wraps.
        let mut previous = self.points.last().map(|p| p.position);
        let mut last_position = None;
        for point in &self.points {
            if last_position == Some(point.position) {
                continue; // a collision: the first entry already took the arc
            }
            last_position = Some(point.position);
            let start = previous.unwrap_or(0);
            let arc = if point.position > start {
                u128::from(point.position - start)
            } else {
                space - u128::from(start) + u128::from(point.position)
            };
            owned[point.member as usize] += arc;
            previous = Some(point.position);
        }
        self.members
            .iter()
            .zip(owned)
            .map(|(m, arc)| (m.id.as_str(), arc as f64 / space as f64))
            .collect()
    }

    fn point_count(&self, weight: f64) -> Option<usize> {
        if !weight.is_finite() || weight <= 0.0 {
            return None;
        }
        let count = (self.replicas as f64 * weight).round().max(1.0);
        (count <= MAX_POINTS_PER_PEER as f64).then_some(count as usize)
    }

    fn sort_points(&mut self) {
        let members = &self.members;
        self.points.sort_unstable_by(|a, b| {
            a.position.cmp(&b.position).then_with(|| {
                let seq = |p: &Point| members[p.member as usize].seq;
                seq(b).cmp(&seq(a))
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1_known_values() {
        assert_eq!(fnv1_64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1_64(b"a"), 0xaf63bd4c8601b7be);
        assert_eq!(fnv1_64(b"foobar"), 0x340d8765a4dda9c2);
    }

    #[test]
    fn empty_ring_has_no_owner() {
        assert_eq!(Ring::default().owner("k"), None);
    }

    #[test]
    fn bad_weights_are_errors_naming_the_peer() {
        let mut ring = Ring::default();
        for w in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
            let err = ring.add_weighted("http://a", w).unwrap_err();
            assert!(err.to_string().contains("http://a"), "{err}");
        }
        assert_eq!(ring.add(""), Err(RingError::EmptyPeer));
        assert!(ring.is_empty());
    }

    /// Two peer names whose replica-0 golang points collide (found once by
    /// a search; tests/ring.rs holds more).
    fn colliding_pair() -> (String, String) {
        let pair = (
            "http://peer-8930995".to_owned(),
            "http://peer-14000400".to_owned(),
        );
        assert_eq!(
            HashMode::Golang.point(0, &pair.0),
            HashMode::Golang.point(0, &pair.1)
        );
        pair
    }

    #[test]
    fn collision_goes_to_latest_and_removal_reveals_the_other() {
        let (x, y) = colliding_pair();
        let pos = HashMode::Golang.point(0, &x);
        let mut ring = Ring::with_peers(HashMode::Golang, 1, [&x, &y]).unwrap();
        assert_eq!(ring.owner_at(pos), Some(y.as_str()));
        assert!(ring.remove(&y));
        assert_eq!(ring.owner_at(pos), Some(x.as_str()));
        let mut other_order = Ring::with_peers(HashMode::Golang, 1, [&y, &x]).unwrap();
        assert_eq!(other_order.owner_at(pos), Some(x.as_str()));
        other_order.remove(&x);
        assert_eq!(other_order.owner_at(pos), Some(y.as_str()));
    }

    #[test]
    fn weights_scale_points_and_shares() {
        let mut ring = Ring::new(HashMode::Golang, 100);
        ring.add("http://a").unwrap();
        ring.add_weighted("http://b", 3.0).unwrap();
        assert_eq!(ring.points().count(), 400);
        let shares = ring.shares();
        let total: f64 = shares.iter().map(|s| s.1).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert!(shares[1].1 > 0.6, "{shares:?}");
    }
}
