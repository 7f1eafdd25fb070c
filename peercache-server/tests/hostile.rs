//! More than 10,000 malformed or hostile requests against a live
//! `peercache-server` process: invalid escapes, NUL bytes, over-long keys and
//! targets, truncated and garbage protobuf and JSON bodies, wrong methods,
//! bodies over the limit, header floods, bytes that are not HTTP at all,
//! remove-keys lists over the cap, cross-site `Origin`s and rebound `Host`
//! names, `ttl`s past the clock's range, and clients that trickle their
//! headers. Every answer must be the refusal its
//! kind calls for (never a 5xx, never a dropped connection where an answer is
//! due); afterwards the node still serves every value it had cached, from
//! its cache, and its resident memory grew by less than its cache budget
//! plus a small constant.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::{counter, escape, get_ok, rss_bytes, start_servers, stats, Proc};

/// Hostile requests sent (more than the 10,000 the issue asks for).
const HOSTILE: usize = 10_400;
/// Threads sending them.
const SENDERS: usize = 8;
/// The node's cache budget, which legitimately odd keys may fill.
const CACHE_BYTES: u64 = 8 << 20;
/// Memory growth allowed beyond the cache budget: allocator arenas and
/// buffers of a few thousand connections handled at once.
const SLACK_BYTES: u64 = 24 << 20;

/// One kind of hostile request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    BadEscapePeer,
    BadEscapeFront,
    NulBytes,
    RawNulInRequestLine,
    LongKeyPeer,
    LongKeyFront,
    LongTarget,
    GarbageSetRequest,
    TruncatedSetRequest,
    GarbageRemoveKeysJson,
    WrongMethodPeer,
    WrongMethodFront,
    BodyOverLimitPeer,
    BodyOverLimitFront,
    HeaderFlood,
    NotHttp,
    TooManyRemoveKeys,
    ForeignOrigin,
    RebindHost,
    HugeTtl,
}

const KINDS: [Kind; 20] = [
    Kind::BadEscapePeer,
    Kind::BadEscapeFront,
    Kind::NulBytes,
    Kind::RawNulInRequestLine,
    Kind::LongKeyPeer,
    Kind::LongKeyFront,
    Kind::LongTarget,
    Kind::GarbageSetRequest,
    Kind::TruncatedSetRequest,
    Kind::GarbageRemoveKeysJson,
    Kind::WrongMethodPeer,
    Kind::WrongMethodFront,
    Kind::BodyOverLimitPeer,
    Kind::BodyOverLimitFront,
    Kind::HeaderFlood,
    Kind::NotHttp,
    Kind::TooManyRemoveKeys,
    Kind::ForeignOrigin,
    Kind::RebindHost,
    Kind::HugeTtl,
];

/// What a request may be answered with. `None` stands for "the connection
/// was closed without an answer", allowed only where the bytes sent are not
/// a request at all.
struct Expect {
    statuses: &'static [u16],
    may_close: bool,
    /// Whether a refusal must carry a reason (hyper's own 400 and 431 for
    /// unparsable heads have empty bodies).
    reason_required: bool,
}

/// A SetRequest (group `echo`, a key under `hostile-`, a value), encoded by
/// hand: field 1 group, 2 key, 4 value, length-delimited.
fn set_request(key: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (field, bytes) in [(1u8, b"echo".as_slice()), (2, key.as_bytes()), (4, value)] {
        out.push(field << 3 | 2);
        let mut len = bytes.len();
        while len >= 0x80 {
            out.push((len as u8) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(bytes);
    }
    out
}

fn http(method: &str, target: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn random_bytes(rng: &mut fastrand::Rng, max: usize) -> Vec<u8> {
    let len = rng.usize(0..=max);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// The bytes of hostile request `i` of `kind`, and what may answer it.
fn hostile(kind: Kind, i: usize, rng: &mut fastrand::Rng) -> (Vec<u8>, Expect) {
    let refusal = |statuses: &'static [u16]| Expect {
        statuses,
        may_close: false,
        reason_required: true,
    };
    match kind {
        Kind::BadEscapePeer => {
            let target = match i % 4 {
                0 => format!("/_groupcache/echo/%zz{i}"),
                1 => format!("/_groupcache/echo/k{i}%"),
                2 => format!("/_groupcache/%G1/k{i}"),
                _ => format!("/_groupcache/echo/%ff%fe{i}"),
            };
            (http("GET", &target, "", b""), refusal(&[400]))
        }
        Kind::BadEscapeFront => {
            // axum reads `%zz` literally (a key "%zz") but refuses bytes that
            // are not UTF-8 once decoded.
            let target = match i % 2 {
                0 => format!("/echo/%ff%fe{i}"),
                _ => format!("/echo/hostile-%zz{i}"),
            };
            (http("GET", &target, "", b""), refusal(&[200, 400]))
        }
        Kind::NulBytes => {
            let target = format!("/_groupcache/echo/hostile-%00{i}%00");
            (http("GET", &target, "", b""), refusal(&[200]))
        }
        Kind::RawNulInRequestLine => {
            let mut bytes = format!("GET /echo/a{i}").into_bytes();
            bytes.push(0);
            bytes.extend_from_slice(b"b HTTP/1.1\r\nHost: localhost\r\n\r\n");
            let expect = Expect {
                statuses: &[400],
                may_close: true,
                reason_required: false,
            };
            (bytes, expect)
        }
        Kind::LongKeyPeer => {
            let target = format!("/_groupcache/echo/{}", "k".repeat(1025 + i % 3000));
            (http("GET", &target, "", b""), refusal(&[414]))
        }
        Kind::LongKeyFront => {
            let target = format!("/echo/{}", "k".repeat(1025 + i % 3000));
            (http("GET", &target, "", b""), refusal(&[414]))
        }
        Kind::LongTarget => {
            let target = format!("/echo/{}", "t".repeat(9000 + i % 20_000));
            (http("GET", &target, "", b""), refusal(&[414]))
        }
        Kind::GarbageSetRequest => {
            let body = random_bytes(rng, 300);
            let target = format!("/_groupcache/echo/hostile-{i}");
            // Random bytes are almost never a SetRequest with a key; if they
            // happen to be one, storing it is the right answer.
            (http("PUT", &target, "", &body), refusal(&[200, 400, 414]))
        }
        Kind::TruncatedSetRequest => {
            let key = format!("hostile-{i}");
            let mut body = set_request(&key, &[7u8; 64]);
            body.truncate(rng.usize(1..body.len()));
            let target = format!("/_groupcache/echo/{key}");
            (http("PUT", &target, "", &body), refusal(&[200, 400]))
        }
        Kind::GarbageRemoveKeysJson => {
            let body: Vec<u8> = match i % 3 {
                0 => random_bytes(rng, 200),
                1 => br#"{"group":"echo","keys":[1,2,3]}"#.to_vec(),
                _ => format!(r#"{{"group":"echo","keys":["hostile-{i}""#).into_bytes(),
            };
            let target = "/_groupcache/echo/_remove-keys/";
            (http("POST", target, "", &body), refusal(&[400]))
        }
        Kind::WrongMethodPeer => {
            let method = ["PATCH", "OPTIONS", "TRACE", "FOO"][i % 4];
            let target = format!("/_groupcache/echo/k{i}");
            (http(method, &target, "", b""), refusal(&[405]))
        }
        Kind::WrongMethodFront => {
            let method = ["PATCH", "OPTIONS", "TRACE", "FOO"][i % 4];
            let target = ["/color?name=red", "/stats", "/echo/k"][i % 3];
            (http(method, target, "", b""), refusal(&[405]))
        }
        Kind::BodyOverLimitPeer => {
            let body = set_request(&format!("hostile-{i}"), &vec![b'x'; 65 << 10]);
            let target = format!("/_groupcache/echo/hostile-{i}");
            (http("PUT", &target, "", &body), refusal(&[413]))
        }
        Kind::BodyOverLimitFront => {
            let body = vec![b'x'; (65 << 10) + i % 1000];
            let target = format!("/echo/hostile-{i}");
            (http("PUT", &target, "", &body), refusal(&[413]))
        }
        Kind::HeaderFlood => {
            let headers: String = if i % 2 == 0 {
                (0..200).map(|h| format!("X-Flood-{h}: {i}\r\n")).collect()
            } else {
                format!("X-Big: {}\r\n", "h".repeat(500 << 10))
            };
            let expect = Expect {
                statuses: &[431, 400],
                may_close: true,
                reason_required: false,
            };
            (http("GET", "/echo/k", &headers, b""), expect)
        }
        Kind::TooManyRemoveKeys => {
            // Over the node's --max-remove-keys 1000; empty keys cost nothing
            // to send.
            let keys = vec!["\"\""; 1001 + i % 5000].join(",");
            let body = format!(r#"{{"group":"echo","keys":[{keys}]}}"#);
            let target = "/_groupcache/echo/_remove-keys/";
            (http("POST", target, "", body.as_bytes()), refusal(&[413]))
        }
        Kind::ForeignOrigin => {
            let (method, target) = [
                ("POST", "/echo/_purge"),
                ("PUT", "/echo/warm%20key%2F1"),
                ("DELETE", "/color?name=red"),
                ("GET", "/stats"),
            ][i % 4];
            let origin = ["https://evil.example", "null", "http://localhost:1"][i % 3];
            let headers = format!("Origin: {origin}\r\n");
            (http(method, target, &headers, b"evil"), refusal(&[403]))
        }
        Kind::RebindHost => {
            let bytes = format!(
                "DELETE /echo/warm%20key%2F{} HTTP/1.1\r\nHost: rebind{i}.evil.example\r\nConnection: close\r\n\r\n",
                i % 100
            )
            .into_bytes();
            (bytes, refusal(&[421]))
        }
        Kind::HugeTtl => {
            let ttl = ["18000000000000000000s", "1e30m", "99999999999999999999ms"][i % 3];
            let target = format!("/echo/hostile-ttl-{i}?ttl={ttl}");
            (http("PUT", &target, "", b"v"), refusal(&[400]))
        }
        Kind::NotHttp => {
            let expect = Expect {
                statuses: &[400],
                may_close: true,
                reason_required: false,
            };
            let mut bytes = random_bytes(rng, 200);
            bytes.extend_from_slice(b"\r\n\r\n");
            (bytes, expect)
        }
    }
}

/// An answer: status and body, or `None` when the connection closed first.
fn send(addr: SocketAddr, bytes: &[u8]) -> std::io::Result<Option<(u16, String)>> {
    let mut stream = TcpStream::connect_timeout(&addr, support::WAIT)?;
    stream.set_read_timeout(Some(support::WAIT))?;
    stream.set_write_timeout(Some(support::WAIT))?;
    // The server may refuse and close before reading everything (a body
    // over the limit): a failed write is not the test's concern, the
    // answer is.
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        // A reset after the answer arrived (unread request bytes).
        Err(_) if !answer.is_empty() => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
        Err(error) => return Err(error),
    }
    if answer.is_empty() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    Ok(Some((status, body.to_owned())))
}

/// Clients that send half a request head, a byte at a time, and never
/// finish: the node must hang up on each within its header-read timeout.
fn slow_clients(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let handles: Vec<_> = (0..n)
        .map(|i| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut stream = TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                let head = format!("GET /echo/slow-{i} HTTP/1.1\r\nHost: localhost\r\nX-Slow: ");
                let mut buf = [0u8; 512];
                for byte in head.bytes().chain(std::iter::repeat(b'z')) {
                    if stream.write_all(&[byte]).is_err() {
                        return started.elapsed();
                    }
                    // Waiting 50 ms for an answer paces the trickle.
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) if started.elapsed() > support::WAIT => {
                            panic!("slow client {i} still connected after {:?}", support::WAIT)
                        }
                        Ok(0) => return started.elapsed(),
                        Ok(_) => return started.elapsed(),
                        Err(error)
                            if matches!(
                                error.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => return started.elapsed(),
                    }
                }
                unreachable!("the trickle is endless")
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// `loads` of the group `name` in the node's `/stats`.
fn loads(addr: SocketAddr, name: &str) -> u64 {
    counter(addr, name, "loads")
}

fn rss(node: &Proc) -> u64 {
    rss_bytes(node.pid().expect("node running")).expect("VmRSS readable")
}

#[test]
fn ten_thousand_hostile_requests_change_nothing_that_was_cached() {
    let cache = CACHE_BYTES.to_string();
    let nodes = start_servers(
        1,
        &[
            "--echo-group",
            "--cache-bytes",
            &cache,
            "--max-key-bytes",
            "1KiB",
            "--max-uri-bytes",
            "8KiB",
            "--max-body-bytes",
            "64KiB",
            "--max-front-body-bytes",
            "32KiB",
            "--max-remove-keys",
            "1000",
            "--header-read-timeout",
            "500ms",
            "--body-read-timeout",
            "500ms",
        ],
    );
    let node = &nodes[0];
    let addr = node.addr;

    // Warm: colours and echo keys, cached.
    let colors: Vec<(String, String)> = support::colors().into_iter().take(20).collect();
    let warm_keys: Vec<String> = (0..100).map(|i| format!("warm key/{i}")).collect();
    let read_warm = || {
        for (name, hex) in &colors {
            let target = format!("/color?name={}", escape(name));
            assert_eq!(get_ok(addr, &target), format!("{hex}\n"));
        }
        for key in &warm_keys {
            assert_eq!(get_ok(addr, &format!("/echo/{}", escape(key))), *key);
        }
    };
    read_warm();

    // One round of every kind first, so memory is measured after the
    // allocator and hyper have seen each shape once.
    let mut rng = fastrand::Rng::with_seed(5);
    for kind in KINDS {
        let (bytes, _) = hostile(kind, 0, &mut rng);
        send(addr, &bytes).unwrap();
    }
    let rss_before = rss(node);

    let started = Instant::now();
    let slow = std::thread::spawn(move || slow_clients(addr, 24));
    let tally: Mutex<BTreeMap<(Kind, Option<u16>), usize>> = Mutex::default();
    let wrong: Mutex<Vec<String>> = Mutex::default();
    std::thread::scope(|scope| {
        for sender in 0..SENDERS {
            let (tally, wrong) = (&tally, &wrong);
            scope.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(sender as u64);
                for i in (sender..HOSTILE).step_by(SENDERS) {
                    let kind = KINDS[i % KINDS.len()];
                    let (bytes, expect) = hostile(kind, i, &mut rng);
                    let answer =
                        send(addr, &bytes).unwrap_or_else(|error| panic!("{kind:?} #{i}: {error}"));
                    let ok = match &answer {
                        None => expect.may_close,
                        Some((status, body)) => {
                            expect.statuses.contains(status)
                                && (*status < 400
                                    || !expect.reason_required
                                    || !body.trim().is_empty())
                        }
                    };
                    if !ok {
                        let shown: Option<(u16, String)> = answer
                            .clone()
                            .map(|(s, b)| (s, b.chars().take(200).collect()));
                        wrong
                            .lock()
                            .unwrap()
                            .push(format!("{kind:?} #{i}: {shown:?}"));
                    }
                    *tally
                        .lock()
                        .unwrap()
                        .entry((kind, answer.map(|(s, _)| s)))
                        .or_default() += 1;
                }
            });
        }
    });
    let hostile_time = started.elapsed();
    let slow = slow.join().unwrap();
    let rss_after = rss(node);

    let tally = tally.into_inner().unwrap();
    println!("{HOSTILE} hostile requests in {hostile_time:?}; answers by kind and status:");
    for ((kind, status), n) in &tally {
        println!("  {kind:?} {status:?}: {n}");
    }
    let slowest = slow.iter().max().unwrap();
    println!("24 slow clients disconnected after at most {slowest:?}");
    println!(
        "RSS before {:.1} MiB, after {:.1} MiB",
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0
    );

    let wrong = wrong.into_inner().unwrap();
    assert!(
        wrong.is_empty(),
        "{} wrong answers, such as: {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    assert_eq!(tally.values().sum::<usize>(), HOSTILE);
    assert!(
        *slowest < Duration::from_secs(5),
        "a slow client stayed connected {slowest:?} (header read timeout 500 ms)"
    );
    // Still serving the same values, from its cache: no warm key was
    // dropped, so reading them all again loads nothing. (Hostile requests
    // with odd but valid keys did load those keys.)
    let loads_before = (loads(addr, "colors"), loads(addr, "echo"));
    read_warm();
    assert_eq!((loads(addr, "colors"), loads(addr, "echo")), loads_before);
    assert!(
        rss_after <= rss_before + CACHE_BYTES + SLACK_BYTES,
        "memory grew from {rss_before} to {rss_after} bytes"
    );
    let limits = &stats(addr)["limits"];
    assert!(limits["uri_too_long"].as_u64().unwrap() > 0, "{limits}");
}
