//! The cluster secret and the proof on every peer request ([`PeerAuth`],
//! documented there).

use crate::clock::{Clock, SystemClock};
use hmac::{Hmac, Mac};
use http::HeaderValue;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The `Authorization` scheme of peer proofs.
pub(crate) const SCHEME: &str = "PeerCache-HMAC-SHA256";
/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;
/// Default of [`PeerAuth::window`].
pub const DEFAULT_AUTH_WINDOW: Duration = Duration::from_secs(30);
/// Change nonces remembered at most; past this (over 4,000 changes a second
/// for a 30 s window) changes are refused with 503 until old ones expire.
pub(crate) const MAX_REMEMBERED_NONCES: usize = 1 << 18;

/// Why a secret could not be used or a request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The secret file could not be read.
    #[error("cannot read the peer secret file {path}: {source}")]
    ReadSecret {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The secret is too short to resist guessing.
    #[error("the peer secret{} is {len} bytes: use at least {MIN_SECRET_BYTES} random bytes (e.g. `head -c 32 /dev/urandom | base64 > secret`)", in_file(.path))]
    SecretTooShort {
        /// The file it came from, if any.
        path: Option<String>,
        /// Its length.
        len: usize,
    },
    /// The request carries no proof.
    #[error("no {SCHEME} proof in the Authorization header: this peer endpoint requires the cluster secret")]
    Missing,
    /// The proof header cannot be read.
    #[error("malformed {SCHEME} proof: {0}")]
    Malformed(&'static str),
    /// The proof's timestamp is outside the window.
    #[error("proof timestamp is {skew_ms} ms away from this node's clock, outside the {window:?} window: a replay, or clocks out of sync (run NTP)")]
    Expired {
        /// Signed distance from this node's clock, in milliseconds.
        skew_ms: i64,
        /// The window.
        window: Duration,
    },
    /// The signature does not match.
    #[error("proof signature does not match: the nodes do not share the same secret")]
    BadSignature,
    /// A change's nonce was already used.
    #[error("proof already used: a change request cannot be replayed")]
    Replayed,
    /// The proof was made for another node.
    #[error("proof is for {to:?}, but this node is {me:?}: a request cannot be replayed to another node (or the nodes spell this node's URL differently)")]
    WrongRecipient {
        /// The node the proof names.
        to: String,
        /// This node's URL.
        me: String,
    },
    /// A change stamped before this node started.
    #[error("the change was signed before this node started: a change cannot be replayed to a restarted node")]
    BeforeStart,
    /// The body does not hash to the signed digest.
    #[error("the request body does not match the signed digest")]
    BodyMismatch,
    /// Too many change nonces to remember; retry shortly.
    #[error("too many change requests in the replay window; retry shortly")]
    Busy,
}

fn in_file(path: &Option<String>) -> String {
    path.as_ref()
        .map(|p| format!(" in {p}"))
        .unwrap_or_default()
}

/// A cluster secret: signs this node's peer requests and checks others'.
/// Share one (in an `Arc`) between client and server.
///
/// Go groupcache trusts whoever can reach its port: anyone on the network can
/// read every key, and (mailgun) overwrite or remove them. With a
/// [`PeerAuth`] in [`super::HttpOptionsBuilder::auth`], a peercache node signs each
/// peer request and its peer endpoint refuses, with 401, any request
/// without a valid proof.
///
/// The proof is an HMAC-SHA256, keyed with the cluster secret, of
///
/// ```text
/// PeerCache-HMAC-SHA256 \n METHOD \n TO \n PATH?QUERY \n TIMESTAMP_MS \n NONCE \n SHA256(BODY)
/// ```
///
/// where `TO` is the base URL of the node the request is for, sent as
/// `Authorization: PeerCache-HMAC-SHA256 to=..,ts=..,nonce=..,body=..,sig=..`.
/// The secret itself never travels. The server checks, in this order and
/// before reading a body:
///
/// 1. the timestamp is within [`PeerAuth::window`] (default 30 s) of its own
///    clock, either way: an old proof cannot be replayed later;
/// 2. the signature, compared in constant time (`hmac`'s `verify_slice`),
///    and that the proof is for this node (a request for one node cannot be
///    replayed to another);
/// 3. for changes (`PUT`, `DELETE`, `POST`), that they were signed after
///    this node started (its nonce table starts empty) and that the nonce
///    was not seen in the window: a change cannot be replayed even within
///    it. Gets are not tracked, as tracking every get would cost memory at
///    full load: a get replayed within 30 s reads the key again, showing its
///    current value to someone who could capture the request, so could
///    read answers on the wire anyway (with TLS, they can capture neither);
///
/// and, once the body is read, that it hashes to the signed digest.
///
/// The HMAC is written with RustCrypto's `hmac` and `sha2`; only the header
/// format, the nonce table and the hex are here. Nodes need clocks within the
/// window of each other (NTP). Authentication is peercache-only: Go nodes
/// neither sign nor check, so a cluster with Go nodes runs without it.
///
/// Put it in [`super::HttpOptionsBuilder::auth`] of every node: the pool signs each
/// request, the peer endpoint checks it. What happens underneath:
///
/// ```
/// use peercache::http::{HttpOptions, PeerAuth};
/// use std::sync::Arc;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = Arc::new(PeerAuth::new(b"a 32-byte random cluster secret!")?); // or PeerAuth::from_file
/// let options = HttpOptions::builder().auth(Arc::clone(&auth)).build()?;
/// # let _ = options;
///
/// let to = "http://10.0.0.2:8080";
/// let proof = auth.sign("GET", to, "/_groupcache/colors/red", b"");
/// auth.verify("GET", to, "/_groupcache/colors/red", Some(&proof))?
///     .check_body(b"")?;
///
/// // A proof is good for its own request to its own node only.
/// assert!(auth.verify("GET", to, "/_groupcache/colors/blue", Some(&proof)).is_err());
/// assert!(auth.verify("GET", "http://10.0.0.3:8080", "/_groupcache/colors/red", Some(&proof)).is_err());
/// assert!(PeerAuth::new(b"too short").is_err());
/// # Ok(())
/// # }
/// ```
pub struct PeerAuth {
    key: Hmac<Sha256>,
    window: Duration,
    clock: Arc<dyn Clock>,
    /// When this secret was loaded (milliseconds): changes stamped earlier
    /// are refused, as the nonce table of a previous run is gone.
    started_ms: i64,
    nonces: Mutex<Nonces>,
}

impl std::fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("PeerAuth")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// A proof whose head checked out; its body is checked once read.
#[derive(Debug)]
#[must_use = "check the body with Verified::check_body"]
pub struct Verified {
    body_digest: [u8; 32],
}

impl Verified {
    /// Whether `body` is the body that was signed.
    pub fn check_body(&self, body: &[u8]) -> Result<(), AuthError> {
        if Sha256::digest(body).as_slice() == self.body_digest {
            Ok(())
        } else {
            Err(AuthError::BodyMismatch)
        }
    }
}

impl PeerAuth {
    /// A secret of at least [`MIN_SECRET_BYTES`] bytes.
    pub fn new(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthError::SecretTooShort {
                path: None,
                len: secret.len(),
            });
        }
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Ok(PeerAuth {
            key: Hmac::new_from_slice(secret).expect("HMAC takes keys of any length"),
            window: DEFAULT_AUTH_WINDOW,
            started_ms: clock.now_unix_nanos() / 1_000_000,
            clock,
            nonces: Mutex::new(Nonces::default()),
        })
    }

    /// The secret in the file at `path`, without trailing whitespace (the
    /// newline an editor adds).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, AuthError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let mut secret = std::fs::read(path).map_err(|source| AuthError::ReadSecret {
            path: shown.clone(),
            source,
        })?;
        while secret.last().is_some_and(u8::is_ascii_whitespace) {
            secret.pop();
        }
        PeerAuth::new(&secret).map_err(|error| match error {
            AuthError::SecretTooShort { len, .. } => AuthError::SecretTooShort {
                path: Some(shown),
                len,
            },
            other => other,
        })
    }

    /// How far a proof's timestamp may be from this node's clock (default
    /// 30 s).
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The clock proofs are stamped and checked with (default: the system
    /// clock); tests pass a [`crate::clock::ManualClock`].
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.started_ms = clock.now_unix_nanos() / 1_000_000;
        self.clock = clock;
        self
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The `Authorization` value proving this node sent `method` to
    /// `path_and_query` with `body`, for the node at base URL `to` (as the
    /// member list spells it).
    pub fn sign(&self, method: &str, to: &str, path_and_query: &str, body: &[u8]) -> HeaderValue {
        let ts = self.clock.now_unix_nanos() / 1_000_000;
        let nonce = fastrand::u128(..);
        let digest: [u8; 32] = Sha256::digest(body).into();
        let signed = Signed {
            method,
            to,
            path: path_and_query,
            ts,
            nonce,
            body: &digest,
        };
        let mut mac = self.key.clone();
        signed.feed(&mut mac);
        let sig: [u8; 32] = mac.finalize().into_bytes().into();
        let mut value = format!("{SCHEME} to={to},ts={ts},nonce={nonce:032x},body=");
        push_hex(&mut value, &digest);
        value.push_str(",sig=");
        push_hex(&mut value, &sig);
        HeaderValue::try_from(value).expect("the proof is ASCII")
    }

    /// Checks the proof of a request before its body is read; the returned
    /// [`Verified`] then checks the body. `me` is this node's base URL: a
    /// proof made for another node is refused.
    ///
    /// The signature is checked before the timestamp, so a request without
    /// the secret learns nothing but "bad signature" (not this node's clock).
    pub fn verify(
        &self,
        method: &str,
        me: &str,
        path_and_query: &str,
        authorization: Option<&HeaderValue>,
    ) -> Result<Verified, AuthError> {
        let proof = Proof::parse(authorization.ok_or(AuthError::Missing)?)?;
        let mut mac = self.key.clone();
        Signed {
            method,
            to: &proof.to,
            path: path_and_query,
            ts: proof.ts,
            nonce: proof.nonce,
            body: &proof.body,
        }
        .feed(&mut mac);
        mac.verify_slice(&proof.sig)
            .map_err(|_| AuthError::BadSignature)?;
        let now_ms = self.clock.now_unix_nanos() / 1_000_000;
        let skew_ms = proof.ts.saturating_sub(now_ms);
        let window_ms = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        if skew_ms.unsigned_abs() > window_ms.unsigned_abs() {
            return Err(AuthError::Expired {
                skew_ms,
                window: self.window,
            });
        }
        if me != proof.to {
            return Err(AuthError::WrongRecipient {
                to: proof.to,
                me: me.to_owned(),
            });
        }
        if !matches!(method, "GET" | "HEAD") {
            if proof.ts < self.started_ms {
                return Err(AuthError::BeforeStart);
            }
            self.nonces
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .admit(proof.nonce, proof.ts, now_ms - window_ms)?;
        }
        Ok(Verified {
            body_digest: proof.body,
        })
    }
}

/// What a proof signs.
struct Signed<'a> {
    method: &'a str,
    to: &'a str,
    path: &'a str,
    ts: i64,
    nonce: u128,
    body: &'a [u8; 32],
}

impl Signed<'_> {
    /// Feeds the signed string to `mac`, line by line.
    fn feed(&self, mac: &mut Hmac<Sha256>) {
        let (ts, nonce) = (self.ts.to_string(), format!("{:032x}", self.nonce));
        for part in [SCHEME, self.method, self.to, self.path, &ts, &nonce] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac.update(self.body);
    }
}

/// The fields of an `Authorization` proof.
struct Proof {
    to: String,
    ts: i64,
    nonce: u128,
    body: [u8; 32],
    sig: [u8; 32],
}

impl Proof {
    fn parse(header: &HeaderValue) -> Result<Proof, AuthError> {
        let text = header
            .to_str()
            .map_err(|_| AuthError::Malformed("not ASCII"))?;
        let fields = text
            .strip_prefix(SCHEME)
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or(AuthError::Malformed("wrong scheme"))?;
        let (mut to, mut ts, mut nonce, mut body, mut sig) = (None, None, None, None, None);
        for field in fields.split(',') {
            let (name, value) = field
                .trim()
                .split_once('=')
                .ok_or(AuthError::Malformed("a field without '='"))?;
            match name {
                "to" => to = Some(value.to_owned()),
                "ts" => ts = value.parse::<i64>().ok(),
                "nonce" if value.len() == 32 => nonce = u128::from_str_radix(value, 16).ok(),
                "body" => body = parse_hex32(value),
                "sig" => sig = parse_hex32(value),
                _ => return Err(AuthError::Malformed("an unknown field")),
            }
        }
        Ok(Proof {
            to: to.ok_or(AuthError::Malformed("no recipient (to)"))?,
            ts: ts.ok_or(AuthError::Malformed("no valid ts"))?,
            nonce: nonce.ok_or(AuthError::Malformed("no valid nonce"))?,
            body: body.ok_or(AuthError::Malformed("no valid body digest"))?,
            sig: sig.ok_or(AuthError::Malformed("no valid sig"))?,
        })
    }
}

/// Change nonces seen within the window, with their timestamps.
#[derive(Default)]
struct Nonces {
    seen: HashMap<u128, i64>,
    /// Size after the last pruning: prune again when it has doubled, so
    /// pruning costs O(1) per change on average.
    pruned_at: usize,
}

impl Nonces {
    fn admit(&mut self, nonce: u128, ts: i64, oldest_valid: i64) -> Result<(), AuthError> {
        if self.seen.len() >= (2 * self.pruned_at).max(1024)
            || self.seen.len() >= MAX_REMEMBERED_NONCES
        {
            // A proof stamped before the window is refused by its timestamp
            // alone: its nonce need not be kept.
            self.seen.retain(|_, stamped| *stamped >= oldest_valid);
            self.pruned_at = self.seen.len();
        }
        if self.seen.contains_key(&nonce) {
            return Err(AuthError::Replayed);
        }
        if self.seen.len() >= MAX_REMEMBERED_NONCES {
            return Err(AuthError::Busy);
        }
        self.seen.insert(nonce, ts);
        Ok(())
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
