//! Test support: real node processes on 127.0.0.1 ephemeral ports, a small
//! blocking HTTP client, and bounded polling.
//!
//! Every process started here is killed and reaped when its [`Proc`] is
//! dropped, which also happens when a test fails (panics unwind through the
//! owner).

#![allow(dead_code)] // each test file uses a different part

mod keepalive;
mod tools;
#[allow(unused_imports)] // each test file uses a different part
pub use keepalive::KeepAlive;
#[allow(unused_imports)]
pub use tools::*;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Bound on every wait.
pub const WAIT: Duration = Duration::from_secs(15);

/// A running node process.
pub struct Proc {
    pub name: String,
    pub addr: SocketAddr,
    pub url: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.as_ref().expect("already stopped").id();
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.exited() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} ignored SIGTERM for {WAIT:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (`"STOP"`, `"CONT"`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("not running").id();
        let sent = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} {pid} failed");
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident memory of the process (`VmRSS` of `/proc/PID/status`), in
    /// bytes; `None` once it stopped or where there is no `/proc`.
    pub fn rss_bytes(&self) -> Option<u64> {
        status_bytes(self.pid()?, "VmRSS")
    }

    /// The anonymous part of the resident memory (`RssAnon`: heap and
    /// stacks, not the mapped binary), in bytes.
    pub fn rss_anon_bytes(&self) -> Option<u64> {
        status_bytes(self.pid()?, "RssAnon")
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` addresses on 127.0.0.1 that were free a moment ago (the kernel picked
/// them). Another process may take one before the node binds it: callers
/// retry with fresh ports when a node cannot start.
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners.iter().map(|l| l.local_addr().unwrap()).collect()
}

/// Starts `program args...` as node `name` listening on `addr`, with its
/// output in a log file, and waits until `GET /stats` answers.
pub fn start(
    name: &str,
    program: &Path,
    args: &[String],
    addr: SocketAddr,
) -> Result<Proc, String> {
    start_until(
        name,
        program,
        args,
        addr,
        format!("http://{addr}"),
        |addr| matches!(get(addr, "/stats"), Ok((200, _))),
    )
}

/// Starts `peercache-server args...` as node `name` listening on `addr`,
/// like [`start`], but ready when `GET /status` answers (it needs no
/// token, where `/stats` may).
pub fn start_tokened(name: &str, args: &[String], addr: SocketAddr) -> Result<Proc, String> {
    start_until(
        name,
        &server_binary(),
        args,
        addr,
        format!("http://{addr}"),
        |addr| matches!(get(addr, "/status"), Ok((200, _))),
    )
}

/// Starts `program args...` as node `name` listening on `addr` with base
/// URL `url`, like [`start`], and waits until `ready(addr)` holds (for a
/// node that does not answer cleartext HTTP, e.g. HTTPS).
pub fn start_until(
    name: &str,
    program: &Path,
    args: &[String],
    addr: SocketAddr,
    url: String,
    mut ready: impl FnMut(SocketAddr) -> bool,
) -> Result<Proc, String> {
    let log =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}.log", addr.port()));
    let file = File::create(&log).unwrap();
    let child = Command::new(program)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let mut proc = Proc {
        name: name.to_owned(),
        addr,
        url,
        child: Some(child),
        log,
    };
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = proc.exited() {
            return Err(format!("{name} exited with {status}: {}", proc.log()));
        }
        if ready(addr) {
            return Ok(proc);
        }
        if Instant::now() > deadline {
            return Err(format!("{name} not ready within {WAIT:?}: {}", proc.log()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a cluster with `starter(index, addrs)` for each node, retrying
/// with fresh ports (up to 5 times) if a node cannot start.
pub fn start_cluster(
    n: usize,
    mut starter: impl FnMut(usize, &[SocketAddr]) -> Result<Proc, String>,
) -> Vec<Proc> {
    let mut last = String::new();
    for _ in 0..5 {
        let addrs = free_addrs(n);
        let started: Result<Vec<Proc>, String> = (0..n).map(|i| starter(i, &addrs)).collect();
        match started {
            Ok(procs) => return procs,
            Err(error) => last = error,
        }
    }
    panic!("cluster did not start in 5 tries: {last}");
}

/// A cluster of `n` `peercache-server` nodes listing each other, with
/// `extra` flags.
pub fn start_servers(n: usize, extra: &[&str]) -> Vec<Proc> {
    start_cluster(n, |i, addrs| {
        start(
            &format!("node{i}"),
            &server_binary(),
            &server_args(addrs[i], addrs, extra),
            addrs[i],
        )
    })
}

/// The `peercache-server` binary built for these tests.
pub fn server_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_peercache-server"))
}

/// Arguments of a `peercache-server` node at `addr` in a cluster of
/// `pool`, with `--front-writes` unless `extra` gives a token file.
pub fn server_args(addr: SocketAddr, pool: &[SocketAddr], extra: &[&str]) -> Vec<String> {
    let pool: Vec<String> = pool.iter().map(|a| format!("http://{a}")).collect();
    let mut args = vec![
        "--addr".to_owned(),
        addr.to_string(),
        "--pool".to_owned(),
        pool.join(","),
    ];
    if !extra.contains(&"--peer-timeout") {
        args.extend(["--peer-timeout".to_owned(), "3s".to_owned()]);
    }
    // The tests change the cache through the front API (off by default);
    // `front.rs` tests the default and the tokens.
    if !extra.contains(&"--front-token-file") && !extra.contains(&"--front-writes") {
        args.push("--front-writes".to_owned());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// `GET target` on a fresh connection: status and body.
pub fn get(addr: SocketAddr, target: &str) -> std::io::Result<(u16, String)> {
    request(addr, "GET", target, b"")
}

/// `method target` with `body` on a fresh connection: status and body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    parse_answer(&exchange(addr, method, target, body)?)
}

/// `method target` with `body` on a fresh connection: the whole answer,
/// head and body, as it came.
pub fn exchange(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: &[u8],
) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT)?;
    stream.set_read_timeout(Some(WAIT))?;
    stream.set_write_timeout(Some(WAIT))?;
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(answer)
}

/// Status and body of a whole HTTP/1.1 answer read to the end of its
/// connection.
pub fn parse_answer(answer: &[u8]) -> std::io::Result<(u16, String)> {
    let answer = String::from_utf8_lossy(answer);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP head in {answer:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    Ok((status, body.to_owned()))
}

/// `GET target`, which must answer 200: the body.
pub fn get_ok(addr: SocketAddr, target: &str) -> String {
    match get(addr, target) {
        Ok((200, body)) => body,
        other => panic!("GET {target} on {addr}: {other:?}"),
    }
}

/// Polls `condition` every 20 ms until it holds; panics after `WAIT`.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {WAIT:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `/stats` JSON of a node.
pub fn stats(addr: SocketAddr) -> serde_json::Value {
    serde_json::from_str(&get_ok(addr, "/stats")).unwrap()
}

/// Group `group`'s entry in a `/stats` JSON.
pub fn group_in(stats: &serde_json::Value, group: &str) -> serde_json::Value {
    stats["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == group)
        .cloned()
        .unwrap_or_else(|| panic!("no group {group} in /stats"))
}

/// Group `group`'s entry in a node's `/stats`.
pub fn group_stats(addr: SocketAddr, group: &str) -> serde_json::Value {
    group_in(&stats(addr), group)
}

/// One counter of group `group` in a node's `/stats`.
pub fn counter(addr: SocketAddr, group: &str, name: &str) -> u64 {
    group_stats(addr, group)[name].as_u64().unwrap()
}

/// Percent-escapes every byte outside `A-Za-z0-9-._~`.
pub fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The colour table shipped with the server.
pub fn colors() -> Vec<(String, String)> {
    let table =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/colors.txt"))
            .unwrap();
    table
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("//"))
        .map(|l| {
            let (name, hex) = l.trim().split_once(' ').unwrap();
            (name.to_owned(), hex.to_owned())
        })
        .collect()
}

/// Runs `program args...` to its end (bounded): exit code and output.
pub fn run_to_exit(program: &Path, args: &[&str]) -> (Option<i32>, String) {
    // Named by a counter, not the arguments: paths in them can make a
    // name longer than the file system allows.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("run-{}-{run}.log", std::process::id()));
    let file = File::create(&log).unwrap();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {args:?} still running after {WAIT:?}",
                program.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), std::fs::read_to_string(&log).unwrap())
}

/// Resident memory of process `pid` (`VmRSS`), in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmRSS")
}

/// A memory figure of process `pid` from `/proc/PID/status` (`VmRSS`,
/// `RssAnon`, ...: given in kB there), in bytes.
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| {
        l.strip_prefix(field)
            .is_some_and(|rest| rest.starts_with(':'))
    })?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Arguments of the Go node of `interop/go` at `addrs[i]` in a cluster of
/// `addrs`, serving the server's colour table, with `extra` flags.
pub fn go_node_args(addrs: &[SocketAddr], i: usize, extra: &[&str]) -> Vec<String> {
    let pool: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    let colors = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/colors.txt");
    let mut args = vec![
        "-addr".to_owned(),
        addrs[i].to_string(),
        "-pool".to_owned(),
        pool.join(","),
        "-colors".to_owned(),
        colors.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Serves `app` on a free 127.0.0.1 port, on a thread of its own, for the
/// rest of the test process (an origin for the `http` source): its address.
pub fn spawn_origin(app: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

/// A fresh scratch directory for one test, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// An empty directory named after `name` in the tests' scratch space.
    pub fn new(name: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The index of the node that owns `key` on the full ring.
pub fn owner_index(nodes: &[Proc], key: &str) -> usize {
    let urls: Vec<&str> = nodes.iter().map(|n| n.url.as_str()).collect();
    let ring =
        peercache::ring::Ring::with_peers(peercache::ring::HashMode::Golang, 50, &urls).unwrap();
    let owner = ring.owner(key).unwrap();
    urls.iter().position(|u| *u == owner).unwrap()
}
