//! `--front-rate-limit`: a request rate per front client, with a burst.
//!
//! Each client (a token's name, or an address: IPv4 whole, IPv6 by its
//! /64, which one host usually holds whole) has a GCRA cell, the
//! "theoretical arrival time" of its next request: a request at `now` is
//! allowed when that time is at most `burst - 1` intervals ahead of `now`,
//! and moves it one interval on. It is the token bucket in one number.
//!
//! The table is bounded: past [`MAX_CLIENTS`] entries, those whose cell is
//! in the past (a client with its whole burst back, the same as a new
//! one) are dropped; if every entry is still in debt, new addresses share
//! [`OVERFLOW_CELLS`] cells (by a keyed hash of the address) until the next
//! sweep, so clients spread over many addresses cannot grow memory. Token
//! clients never overflow: their names are bounded by the token file, so
//! anonymous traffic cannot push them into a shared cell.
//!
//! Written here because the crates that do it (governor) keep their keyed
//! state unbounded unless swept by the caller; this is forty lines.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most address clients the table holds.
pub const MAX_CLIENTS: usize = 65_536;

/// The cells new addresses share while the table is full of clients in
/// debt.
pub const OVERFLOW_CELLS: u64 = 64;

/// Who a limit applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// A token's client, by name.
    Token(Arc<str>),
    /// A client without a token, by address (IPv6 by /64).
    Addr(IpAddr),
    /// New addresses while the table is full of clients in debt, by a
    /// keyed hash of the address.
    Overflow(u64),
}

impl ClientKey {
    /// The key of an address: IPv4 (and IPv4-mapped IPv6) whole, IPv6 by
    /// its /64.
    pub fn addr(ip: IpAddr) -> ClientKey {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                ClientKey::Addr(IpAddr::V6(bits.into()))
            }
            v4 => ClientKey::Addr(v4),
        }
    }
}

/// Requests per second per client, with a burst.
#[derive(Debug)]
pub struct RateLimit {
    interval: Duration,
    tolerance: Duration,
    cells: Mutex<Cells>,
    /// Spreads overflowing addresses over the shared cells (seeded per
    /// process: a client cannot choose its cell).
    spread: std::collections::hash_map::RandomState,
}

#[derive(Debug)]
struct Cells {
    next: HashMap<ClientKey, Instant>,
    /// No sweep before this (a full table of clients in debt is not swept
    /// on every new client).
    next_sweep: Instant,
}

impl RateLimit {
    /// `per_second` requests a second, `burst` at once (at least 1).
    pub fn new(per_second: f64, burst: usize) -> RateLimit {
        let interval = Duration::from_secs_f64(1.0 / per_second);
        let extra = u32::try_from(burst.max(1) - 1).unwrap_or(u32::MAX);
        RateLimit {
            interval,
            tolerance: interval.saturating_mul(extra),
            cells: Mutex::new(Cells {
                next: HashMap::new(),
                next_sweep: Instant::now(),
            }),
            spread: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Admits a request of `key` at `now`, or says how long until it would
    /// be.
    pub fn check(&self, key: ClientKey, now: Instant) -> Result<(), Duration> {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let full = cells.next.len() >= MAX_CLIENTS
            && matches!(key, ClientKey::Addr(_))
            && !cells.next.contains_key(&key);
        let key = if full {
            if now >= cells.next_sweep {
                cells.next.retain(|_, next| *next > now);
                cells.next_sweep = now + Duration::from_secs(1);
            }
            if cells.next.len() >= MAX_CLIENTS {
                ClientKey::Overflow(self.spread.hash_one(&key) % OVERFLOW_CELLS)
            } else {
                key
            }
        } else {
            key
        };
        let cell = cells.next.entry(key).or_insert(now);
        let at = (*cell).max(now);
        let ahead = at - now;
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        *cell = at + self.interval;
        Ok(())
    }

    /// How many clients the table holds.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.cells.lock().unwrap().next.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn key(n: u32) -> ClientKey {
        ClientKey::addr(IpAddr::from(n.to_be_bytes()))
    }

    #[test]
    fn allows_the_burst_then_the_rate() {
        let limit = RateLimit::new(10.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limit.check(key(1), start).is_ok());
        }
        let wait = limit.check(key(1), start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // Another client has its own burst.
        assert!(limit.check(key(2), start).is_ok());
        // One interval later, one more request.
        let later = start + Duration::from_millis(100);
        assert!(limit.check(key(1), later).is_ok());
        assert!(limit.check(key(1), later).is_err());
        // After a second the whole burst is back.
        let much_later = start + Duration::from_secs(2);
        for _ in 0..3 {
            assert!(limit.check(key(1), much_later).is_ok());
        }
        assert!(limit.check(key(1), much_later).is_err());
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::addr(a.into()), ClientKey::addr(b.into()));
        assert_ne!(ClientKey::addr(a.into()), ClientKey::addr(c.into()));
        let mapped: Ipv6Addr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            ClientKey::addr(mapped.into()),
            ClientKey::addr("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn the_table_stays_bounded_and_overflow_is_limited_too() {
        let limit = RateLimit::new(1.0, 1);
        let now = Instant::now();
        for n in 0..MAX_CLIENTS as u32 {
            assert!(limit.check(key(n), now).is_ok());
        }
        // Every client is in debt: new addresses share the overflow cells.
        let mut refused = 0;
        for n in 0..1000 {
            refused += usize::from(limit.check(key(u32::MAX - n), now).is_err());
        }
        assert!(refused >= 1000 - OVERFLOW_CELLS as usize, "{refused}");
        assert!(limit.clients() <= MAX_CLIENTS + OVERFLOW_CELLS as usize);
        // A token client still has its own cell.
        let token = ClientKey::Token("billing".into());
        assert!(limit.check(token.clone(), now).is_ok());
        assert!(limit.check(token, now).is_err());
        // Once their cells are past, a sweep makes room.
        let later = now + Duration::from_secs(5);
        assert!(limit.check(key(u32::MAX - 1), later).is_ok());
        assert!(limit.clients() <= 2);
    }
}
