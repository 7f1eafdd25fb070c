//! Who may call which front route, and how often: the layer in front of the
//! client routes (never the peer endpoint, which has its own secret).
//!
//! Each request needs a scope by its method and path ([`need`]): `read`
//! for gets and `_get-many`, `write` for `PUT` and `DELETE`, `admin` for
//! `_purge`, `metrics` for `/stats` and `/metrics`; the status page's
//! HTML (`/status`) and `/openapi.json` need nothing (they hold no data;
//! `/`, which lists the peers and groups, needs `read`).
//!
//! - With `--front-token-file`, every request that needs a scope carries
//!   `Authorization: Bearer TOKEN` of a client with that scope: 401 with
//!   `WWW-Authenticate` without one or with an unknown one, 403 naming the
//!   scope when the client lacks it.
//! - Without it, reads are served to clients on loopback, and to every
//!   client with `--front-open`; changes are refused unless
//!   `--front-writes`. A refusal is a 403 naming the flag.
//! - With `--front-rate-limit`, each client (token name, else address) is
//!   held to the rate ([`super::rate`]): 429 with `Retry-After`.
//!
//! Every refusal is counted ([`AccessStats`], in `/stats` and as
//! `peercache_front_refused_total{reason}` in `/metrics`).

use super::rate::{ClientKey, RateLimit};
use super::tokens::{Need, Tokens};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use peercache::http::ClientAddr;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// The front API's access rules, shared by its handlers.
#[derive(Debug)]
pub struct Access {
    /// `--front-token-file` and its clients.
    tokens: Option<TokenFile>,
    writes: bool,
    open: bool,
    rate: Option<RateLimit>,
    counters: Counters,
}

/// A token file and the clients it listed when last read.
#[derive(Debug)]
struct TokenFile {
    path: PathBuf,
    /// Swapped whole on SIGHUP.
    current: RwLock<Arc<Tokens>>,
}

impl TokenFile {
    fn current(&self) -> Arc<Tokens> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }
}

#[derive(Debug, Default)]
struct Counters {
    unauthorized: AtomicU64,
    forbidden: AtomicU64,
    rate_limited: AtomicU64,
}

/// Front requests refused since the node started, by reason (in
/// `/stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessStats {
    /// 401: no token, or an unknown one.
    pub unauthorized: u64,
    /// 403: a token without the scope, a change with writes off, or a
    /// client beyond loopback without `--front-open`.
    pub forbidden: u64,
    /// 429: over `--front-rate-limit`.
    pub rate_limited: u64,
}

/// What the front flags ask for.
#[derive(Debug, Clone, Default)]
pub struct AccessSettings {
    /// `--front-token-file`.
    pub token_file: Option<PathBuf>,
    /// `--front-writes`.
    pub writes: bool,
    /// `--front-open`.
    pub open: bool,
    /// `--front-rate-limit` and `--front-rate-burst`.
    pub rate: Option<(f64, usize)>,
}

impl Access {
    /// The rules of `settings`, reading the token file (an error names it
    /// and the line).
    pub fn new(settings: &AccessSettings) -> Result<Access, super::tokens::TokenFileError> {
        let tokens = match &settings.token_file {
            Some(path) => Some(TokenFile {
                current: RwLock::new(Arc::new(Tokens::load(path)?)),
                path: path.clone(),
            }),
            None => None,
        };
        Ok(Access {
            tokens,
            writes: settings.writes,
            open: settings.open,
            rate: settings
                .rate
                .map(|(per_second, burst)| RateLimit::new(per_second, burst)),
            counters: Counters::default(),
        })
    }

    /// Reads the token file again (SIGHUP): on success its clients replace
    /// the old ones at once; on failure the old ones stay, and the error
    /// says why. Returns how many clients it lists.
    pub fn reload(&self) -> Result<Option<usize>, super::tokens::TokenFileError> {
        let Some(file) = &self.tokens else {
            return Ok(None);
        };
        let fresh = Tokens::load(&file.path)?;
        let count = fresh.len();
        *file.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(Some(count))
    }

    /// The refusals so far.
    pub fn stats(&self) -> AccessStats {
        AccessStats {
            unauthorized: self.counters.unauthorized.load(Ordering::Relaxed),
            forbidden: self.counters.forbidden.load(Ordering::Relaxed),
            rate_limited: self.counters.rate_limited.load(Ordering::Relaxed),
        }
    }

    /// Who sends `headers` from `client`, allowed `need`; or the refusal.
    /// Either way, the client to hold to the rate limit.
    fn admit(
        &self,
        need: Need,
        headers: &HeaderMap,
        client: Option<IpAddr>,
    ) -> (ClientKey, Result<(), Refused>) {
        let by_addr = ClientKey::addr(client.unwrap_or(IpAddr::from([0, 0, 0, 0])));
        match self.check(need, headers, client) {
            Ok(Some(name)) => (ClientKey::Token(name), Ok(())),
            Ok(None) => (by_addr, Ok(())),
            Err((Some(name), refused)) => (ClientKey::Token(name), Err(refused)),
            Err((None, refused)) => (by_addr, Err(refused)),
        }
    }

    /// The token client's name (`None`: no token needed), or the refusal
    /// with the client's name if its token was known.
    fn check(
        &self,
        need: Need,
        headers: &HeaderMap,
        client: Option<IpAddr>,
    ) -> Result<Option<TokenName>, (Option<TokenName>, Refused)> {
        if let Some(file) = &self.tokens {
            if need == Need::Public {
                return Ok(None);
            }
            let tokens = file.current();
            let Some(presented) = bearer(headers) else {
                let reason = format!(
                    "this node requires a token with the {} scope: send `Authorization: Bearer TOKEN` (--front-token-file)",
                    need.scope()
                );
                return Err((
                    None,
                    Refused::Unauthorized {
                        invalid: false,
                        reason,
                    },
                ));
            };
            let Some(found) = tokens.find(presented) else {
                let reason = "unknown token: not in this node's --front-token-file (rotated out?)"
                    .to_owned();
                return Err((
                    None,
                    Refused::Unauthorized {
                        invalid: true,
                        reason,
                    },
                ));
            };
            let name = Arc::clone(&found.name);
            if !found.scopes.allow(need) {
                let refused = Refused::Forbidden(format!(
                    "client {name:?} lacks the {} scope this request needs (--front-token-file)",
                    need.scope()
                ));
                return Err((Some(name), refused));
            }
            return Ok(Some(name));
        }
        let loopback = client.is_some_and(|ip| ip.to_canonical().is_loopback());
        if need != Need::Public && !self.open && !loopback {
            return Err((None, Refused::Forbidden(BEYOND_LOOPBACK.to_owned())));
        }
        if matches!(need, Need::Write | Need::Admin) && !self.writes {
            return Err((None, Refused::Forbidden(WRITES_OFF.to_owned())));
        }
        Ok(None)
    }

    /// How many clients the token file lists, if there is one.
    pub fn token_count(&self) -> Option<usize> {
        Some(self.tokens.as_ref()?.current().len())
    }

    fn refuse(&self, refused: Refused) -> Response {
        let (counter, reason) = match &refused {
            Refused::Unauthorized { .. } => (&self.counters.unauthorized, "unauthorized"),
            Refused::Forbidden(_) => (&self.counters.forbidden, "forbidden"),
            Refused::RateLimited(_) => (&self.counters.rate_limited, "rate_limited"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("peercache_front_refused_total", "reason" => reason).increment(1);
        refused.into_response()
    }
}

/// A token client's name.
type TokenName = Arc<str>;

const BEYOND_LOOPBACK: &str = "this node serves clients beyond loopback only with a token: start it with --front-token-file (or --front-open to serve every client that can reach it without one)";
const WRITES_OFF: &str = "changes are off on this node's front API: start it with --front-writes (any client that may read may then change the cache), or with --front-token-file and a write or admin token";

/// Why a request was refused.
#[derive(Debug)]
enum Refused {
    Unauthorized { invalid: bool, reason: String },
    Forbidden(String),
    RateLimited(std::time::Duration),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (status, body, extra) = match self {
            Refused::Unauthorized { invalid, reason } => {
                let challenge = if invalid {
                    "Bearer realm=\"peercache\", error=\"invalid_token\""
                } else {
                    "Bearer realm=\"peercache\""
                };
                (
                    StatusCode::UNAUTHORIZED,
                    reason,
                    Some((header::WWW_AUTHENTICATE, challenge.to_owned())),
                )
            }
            Refused::Forbidden(reason) => (StatusCode::FORBIDDEN, reason, None),
            Refused::RateLimited(wait) => {
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "over this client's rate (--front-rate-limit): retry after {seconds} s"
                    ),
                    Some((header::RETRY_AFTER, seconds.max(1).to_string())),
                )
            }
        };
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{body}\n"),
        )
            .into_response();
        if let Some((name, value)) = extra {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// The token of `Authorization: Bearer TOKEN` (the scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at(value.iter().position(|b| *b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| token.trim_ascii())
        .filter(|token| !token.is_empty())
}

/// The scope a front request needs, by its method and path. Any `POST`
/// but one whose path ends in `/_get-many` (as sent, not decoded) counts
/// as a purge: an escaped `_purge` cannot pass as a read.
pub fn need(method: &Method, path: &str) -> Need {
    match path {
        "/status" | "/openapi.json" => return Need::Public,
        "/stats" | "/metrics" => return Need::Metrics,
        _ => {}
    }
    match *method {
        Method::GET | Method::HEAD => Need::Read,
        Method::POST if path.ends_with("/_get-many") => Need::Read,
        Method::POST => Need::Admin,
        Method::PUT | Method::DELETE => Need::Write,
        _ => Need::Read,
    }
}

/// What the front API's one layer checks: the names it answers to
/// ([`crate::origin`]), then [`Access`].
#[derive(Debug, Clone)]
pub struct Gate {
    /// The `Host` and `Origin` checks.
    pub hosts: crate::origin::AllowedHosts,
    /// Who may call which route.
    pub access: Arc<Access>,
}

/// The layer: admits a front request or answers its refusal, after the
/// `Host` and `Origin` checks (one layer for both: each `from_fn` layer
/// costs a boxed future per request). A refused request counts against the
/// rate too (by its token's client if the token was known, else by
/// address): guessing tokens is no faster than asking.
pub async fn guard(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let mut response = match gate.refusal(&request) {
        Some(refused) => refused,
        None => next.run(request).await,
    };
    crate::origin::nosniff(&mut response);
    response
}

impl Gate {
    /// The answer refusing `request`, if it is refused.
    fn refusal(&self, request: &Request) -> Option<Response> {
        if let Some(refused) = crate::origin::refusal(&self.hosts, request) {
            return Some(refused);
        }
        let access = &self.access;
        let need = need(request.method(), request.uri().path());
        let client = request.extensions().get::<ClientAddr>().map(|c| c.0.ip());
        let (key, admitted) = access.admit(need, request.headers(), client);
        if let Some(rate) = &access.rate {
            if let Err(wait) = rate.check(key, Instant::now()) {
                return Some(access.refuse(Refused::RateLimited(wait)));
            }
        }
        admitted.err().map(|refused| access.refuse(refused))
    }
}

#[cfg(test)]
mod tests;
