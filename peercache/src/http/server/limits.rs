//! The server's limits ([`ServerLimits`], documented there with their
//! answers) and the counts of their refusals.

use crate::InvalidSetting;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Default for [`ServerLimits::max_concurrent_requests`].
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 4096;
/// Default for [`ServerLimits::max_concurrent_streams`].
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 256;
/// Default for [`ServerLimits::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`ServerLimits::body_read_timeout`].
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`ServerLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 8192;
/// Default for [`ServerLimits::write_timeout`].
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`ServerLimits::max_body_bytes_in_flight`].
pub const DEFAULT_MAX_BODY_BYTES_IN_FLIGHT: u64 = 128 << 20;
/// Default for [`ServerLimits::max_uri_bytes`]: room for a 16 KiB key
/// escaped three bytes per byte, and a group name.
pub const DEFAULT_MAX_URI_BYTES: usize = 64 << 10;

/// How much a server takes from its clients before it refuses.
///
/// A cache tier sits in front of every request of a service, so a client
/// that sends too much, too slowly or too often must get a clear refusal
/// while everyone else is still served. [`ServerLimits`] says how much is too
/// much; the guard (`guard.rs`) wraps any service (the peer endpoint, an
/// axum router) and answers, before the service sees the request:
///
/// | limit | answer |
/// | --- | --- |
/// | requests in flight on the whole server ([`ServerLimits::max_concurrent_requests`]) | 503, `Retry-After` |
/// | request target (path and query) longer than [`ServerLimits::max_uri_bytes`] | 414 |
/// | a `Content-Length` over what is left of [`ServerLimits::max_body_bytes_in_flight`] | 503, `Retry-After` |
///
/// and, while the service runs, fails a request body that is still arriving
/// after [`ServerLimits::body_read_timeout`] (the peer endpoint answers 408),
/// or a body whose bytes would take the server past
/// [`ServerLimits::max_body_bytes_in_flight`] (503). Body bytes count
/// against that budget as they arrive, and until the request is answered
/// (not only while they arrive: a value read whole is still held while it
/// is handled), so slow, stalled or large uploads from many clients cannot
/// hold more than it. A `Content-Length` is only compared with what is
/// left, to refuse at once a body that cannot fit now; announcing a length
/// holds nothing.
/// Every refusal is a short `text/plain` body naming the limit.
///
/// Two more limits are the connection's, set on hyper by
/// [`Server`](crate::http::Server): [`ServerLimits::header_read_timeout`] closes a
/// connection whose request head has not arrived in time (a slowloris
/// client, or an idle keep-alive connection), and
/// [`ServerLimits::max_concurrent_streams`] is the HTTP/2 stream limit
/// advertised to each client (an HTTP/1.1 connection carries one request at
/// a time by its nature).
///
/// Shedding takes no lock: one atomic semaphore permit per request.
/// [`LimitCounters`] counts each refusal, and the body bytes held now.
///
/// Give it to [`Server::new`](crate::http::Server::new); change limits with
/// [`ServerLimits::builder`], which checks them and names the one at fault:
///
/// ```
/// use peercache::http::{Server, ServerLimits};
/// use std::time::Duration;
///
/// # fn main() -> Result<(), peercache::InvalidSetting> {
/// let limits = ServerLimits::builder()
///     .max_connections(1000) // below `ulimit -n`
///     .body_read_timeout(Duration::from_secs(5))
///     .build()?;
/// let server = Server::new(limits);
/// # let _ = server;
///
/// let unusable = ServerLimits::builder().max_concurrent_requests(0).build();
/// assert_eq!(unusable.unwrap_err().setting(), "max_concurrent_requests");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    pub(super) max_concurrent_requests: usize,
    pub(super) max_concurrent_streams: u32,
    pub(super) header_read_timeout: Duration,
    pub(super) body_read_timeout: Duration,
    pub(super) max_uri_bytes: usize,
    pub(super) retry_after: Duration,
    pub(super) max_connections: usize,
    pub(super) write_timeout: Duration,
    pub(super) max_body_bytes_in_flight: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            retry_after: Duration::from_secs(1),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_body_bytes_in_flight: DEFAULT_MAX_BODY_BYTES_IN_FLIGHT,
        }
    }
}

impl ServerLimits {
    /// A builder starting from the defaults.
    pub fn builder() -> ServerLimitsBuilder {
        ServerLimits::default().to_builder()
    }

    /// A builder starting from these limits.
    pub fn to_builder(&self) -> ServerLimitsBuilder {
        ServerLimitsBuilder {
            limits: self.clone(),
        }
    }

    /// Requests handled at once by the whole server.
    pub fn max_concurrent_requests(&self) -> usize {
        self.max_concurrent_requests
    }

    /// HTTP/2 streams one connection may have open at once.
    pub fn max_concurrent_streams(&self) -> u32 {
        self.max_concurrent_streams
    }

    /// Time for a request head to arrive.
    pub fn header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }

    /// Time for a whole request body to arrive.
    pub fn body_read_timeout(&self) -> Duration {
        self.body_read_timeout
    }

    /// Longest request target, path and query, in bytes.
    pub fn max_uri_bytes(&self) -> usize {
        self.max_uri_bytes
    }

    /// The `Retry-After` sent with a 503 when shedding.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// Connections open at once.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Time a write to a client may stall.
    pub fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    /// Bytes of request bodies held at once by the whole server.
    pub fn max_body_bytes_in_flight(&self) -> u64 {
        self.max_body_bytes_in_flight
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        let at_least_one = |setting: &str| InvalidSetting::new(setting, "must be at least 1");
        if self.max_concurrent_requests == 0 {
            return Err(at_least_one("max_concurrent_requests"));
        }
        if self.max_concurrent_streams == 0 {
            return Err(at_least_one("max_concurrent_streams"));
        }
        if self.max_connections == 0 {
            return Err(at_least_one("max_connections"));
        }
        if self.max_body_bytes_in_flight == 0 {
            return Err(at_least_one("max_body_bytes_in_flight"));
        }
        if self.max_concurrent_requests > Semaphore::MAX_PERMITS {
            return Err(InvalidSetting::new(
                "max_concurrent_requests",
                format!("must be at most {}", Semaphore::MAX_PERMITS),
            ));
        }
        if self.max_connections > Semaphore::MAX_PERMITS {
            return Err(InvalidSetting::new(
                "max_connections",
                format!("must be at most {}", Semaphore::MAX_PERMITS),
            ));
        }
        for (setting, timeout) in [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("write_timeout", self.write_timeout),
        ] {
            if timeout.is_zero() {
                return Err(InvalidSetting::new(setting, "must be greater than zero"));
            }
        }
        if self.max_uri_bytes < 256 {
            return Err(InvalidSetting::new(
                "max_uri_bytes",
                format!(
                    "{} is too small: a peer request needs the base path, a group and a key (at least 256)",
                    self.max_uri_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// Builds [`ServerLimits`]; [`ServerLimitsBuilder::build`] checks them.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ServerLimitsBuilder {
    limits: ServerLimits,
}

impl ServerLimitsBuilder {
    /// Requests handled at once by the whole server (default 4096). One
    /// more is answered at once with 503 and `Retry-After`, without touching
    /// the cache: shedding load early keeps the requests already admitted
    /// fast.
    pub fn max_concurrent_requests(mut self, requests: usize) -> Self {
        self.limits.max_concurrent_requests = requests;
        self
    }

    /// HTTP/2 streams one connection may have open at once (default 256),
    /// advertised in the connection's settings; a client that opens more has
    /// them refused (`REFUSED_STREAM`, safe to retry).
    pub fn max_concurrent_streams(mut self, streams: u32) -> Self {
        self.limits.max_concurrent_streams = streams;
        self
    }

    /// Time for a request head (request line and headers) to arrive (default
    /// 10 s), counted from when the connection is ready for it: a client that
    /// trickles its headers, or leaves a keep-alive connection idle that
    /// long, is disconnected.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.limits.header_read_timeout = timeout;
        self
    }

    /// Time for a whole request body to arrive (default 30 s).
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.limits.body_read_timeout = timeout;
        self
    }

    /// Longest request target, path and query, in bytes (default 64 KiB, at
    /// least 256); longer gets 414. (Beyond about 400 KiB hyper refuses the
    /// request head itself, with an empty body.)
    pub fn max_uri_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_uri_bytes = bytes;
        self
    }

    /// The `Retry-After` sent with a 503 when shedding (default 1 s).
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.limits.retry_after = wait;
        self
    }

    /// Connections open at once (default 8192). At the cap the server stops
    /// accepting until one closes; new clients wait in the kernel's backlog.
    /// Keep it below the process's file-descriptor limit (`ulimit -n`).
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.limits.max_connections = connections;
        self
    }

    /// Time a write to a client may stall (default 30 s): a client that
    /// stops reading its answers is disconnected, freeing the answer's
    /// memory and its request slot.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.limits.write_timeout = timeout;
        self
    }

    /// Bytes of request bodies held at once by the whole server (default
    /// 128 MiB): a request whose `Content-Length` does not fit in what is
    /// left is answered 503 with `Retry-After` before its body is read, and
    /// a body without a length fails (503) at the frame that would pass
    /// the budget.
    pub fn max_body_bytes_in_flight(mut self, bytes: u64) -> Self {
        self.limits.max_body_bytes_in_flight = bytes;
        self
    }

    /// The limits, once every one is checked; the error names the limit at
    /// fault and says why.
    pub fn build(self) -> Result<ServerLimits, InvalidSetting> {
        self.limits.validate()?;
        Ok(self.limits)
    }
}

/// How often each limit refused a request, since the server started.
#[derive(Debug, Default)]
pub struct LimitCounters {
    pub(super) shed: AtomicU64,
    pub(super) uri_too_long: AtomicU64,
    pub(super) body_timeouts: AtomicU64,
    connection_waits: AtomicU64,
    body_budget: AtomicU64,
    /// Request body bytes held now, against the server's budget.
    body_bytes_in_flight: AtomicU64,
}

/// A copy of [`LimitCounters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LimitStats {
    /// Requests answered 503 because too many were in flight.
    pub shed: u64,
    /// Requests answered 414 because their target was too long.
    pub uri_too_long: u64,
    /// Request bodies that did not arrive within the body read timeout.
    pub body_timeouts: u64,
    /// Times the server stopped accepting because it had its maximum of
    /// connections open.
    pub connection_waits: u64,
    /// Requests refused (503) because request bodies held the whole
    /// [`ServerLimits::max_body_bytes_in_flight`].
    #[serde(default)]
    pub body_budget: u64,
    /// Request body bytes held now (a gauge, not a count of refusals).
    #[serde(default)]
    pub body_bytes_in_flight: u64,
}

impl LimitCounters {
    /// The counts now.
    pub fn snapshot(&self) -> LimitStats {
        LimitStats {
            shed: self.shed.load(Ordering::Relaxed),
            uri_too_long: self.uri_too_long.load(Ordering::Relaxed),
            body_timeouts: self.body_timeouts.load(Ordering::Relaxed),
            connection_waits: self.connection_waits.load(Ordering::Relaxed),
            body_budget: self.body_budget.load(Ordering::Relaxed),
            body_bytes_in_flight: self.body_bytes_in_flight.load(Ordering::Relaxed),
        }
    }

    /// Whether `bytes` more would fit in the body budget `limit` now (a
    /// refusal is counted when not).
    pub(super) fn body_bytes_fit(&self, bytes: u64, limit: u64) -> bool {
        let fit = self
            .body_bytes_in_flight
            .load(Ordering::Acquire)
            .checked_add(bytes)
            .is_some_and(|after| after <= limit);
        if !fit {
            self.body_budget.fetch_add(1, Ordering::Relaxed);
        }
        fit
    }

    /// Takes `bytes` of the body budget `limit`, or nothing (and counts a
    /// refusal) if they do not fit.
    pub(super) fn take_body_bytes(&self, bytes: u64, limit: u64) -> bool {
        let taken = self
            .body_bytes_in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|after| *after <= limit)
            })
            .is_ok();
        if !taken {
            self.body_budget.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    pub(super) fn give_back_body_bytes(&self, bytes: u64) {
        self.body_bytes_in_flight.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Counts one wait for a connection slot.
    pub(crate) fn note_connection_cap(&self) {
        self.connection_waits.fetch_add(1, Ordering::Relaxed);
    }
}
