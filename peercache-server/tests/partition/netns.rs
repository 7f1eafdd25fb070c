//! Network namespaces made with iproute2's `ip`, and code run inside one.
//!
//! The partition test's nodes each live in a namespace of their own, so
//! the test process (in the host's namespace) cannot reach them, by design:
//! nothing the test does touches the host's interfaces. A client reaches a
//! node from a thread moved into a namespace with `setns(2)`, which moves
//! only the calling thread: the blocking `std::net` client of `support` then
//! works unchanged from that thread.
//!
//! Every `ip` command here is bounded ([`IP_WAIT`]) and returns its error
//! instead of panicking, so that cleanup in `Drop` never panics.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Bound on one `ip` or `bridge` command (they take milliseconds).
const IP_WAIT: Duration = Duration::from_secs(5);

/// Where `ip netns add` puts a namespace's handle (iproute2's
/// `NETNS_RUN_DIR`).
const NETNS_DIR: &str = "/var/run/netns";

/// The prefix of every namespace this harness makes: then the test
/// process's pid, a dash and the namespace's role (`pcpart1234-br`).
pub const PREFIX: &str = "pcpart";

/// iproute2's `ip` and `bridge`, found on `PATH` or in the sbin
/// directories (often not on a user's `PATH`).
#[derive(Clone, Debug)]
pub struct Tools {
    pub ip: PathBuf,
    pub bridge: PathBuf,
}

impl Tools {
    /// Both binaries, or why they cannot be used.
    pub fn find() -> Result<Tools, String> {
        let find = |name: &str| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
                .map(|dir| dir.join(name))
                .find(|file| file.is_file())
                .ok_or_else(|| {
                    format!("no `{name}` binary (iproute2; apt-get install -y iproute2)")
                })
        };
        Ok(Tools {
            ip: find("ip")?,
            bridge: find("bridge")?,
        })
    }

    /// `ip ARGS...`, bounded: its output, or the command and its error.
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        run(&self.ip, args)
    }

    /// `bridge ARGS...`, bounded.
    pub fn bridge(&self, args: &[&str]) -> Result<String, String> {
        run(&self.bridge, args)
    }

    /// `ip -n NS ARGS...`: an `ip` command inside namespace `ns`.
    pub fn ip_in(&self, ns: &str, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        self.ip(&all)
    }

    /// Creates namespace `name` with its loopback up.
    pub fn add_netns(&self, name: &str) -> Result<(), String> {
        self.ip(&["netns", "add", name])?;
        self.ip_in(name, &["link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Deletes namespace `name` after SIGKILLing every process still in
    /// it (none, normally: the nodes are killed first). Deleting it
    /// deletes its interfaces, and so the veth pairs with an end in it.
    pub fn delete_netns(&self, name: &str) -> Result<(), String> {
        if let Ok(pids) = self.ip(&["netns", "pids", name]) {
            let pids = pids.split_whitespace().filter_map(|p| p.parse().ok());
            for pid in pids.filter_map(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        self.ip(&["netns", "delete", name]).map(drop)
    }

    /// Deletes the namespaces that an earlier run of this harness left
    /// behind when its process was killed before its cleanup ran: those
    /// named with [`PREFIX`] and the pid of a process that is gone (or
    /// this process's pid, reused: it calls this before making any).
    pub fn sweep_stale(&self) {
        let Ok(list) = self.ip(&["netns", "list"]) else {
            return;
        };
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(pid) = name
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == std::process::id() || !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = self.delete_netns(name);
            }
        }
    }
}

/// Runs `program args...` to its end, at most [`IP_WAIT`]: its standard
/// output, or an error naming the command, its status and standard error.
fn run(program: &Path, args: &[&str]) -> Result<String, String> {
    let command = format!("{} {}", program.display(), args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{command}`: {e}"))?;
    let deadline = Instant::now() + IP_WAIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{command}` did not end within {IP_WAIT:?}: {outcome:?}"
                ));
            }
        }
    };
    // The outputs are a few lines: they fit the pipes, so the command
    // never blocked writing them.
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_string(&mut out);
    }
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut err);
    }
    match status.success() {
        true => Ok(out),
        false => Err(format!("`{command}` failed ({status}): {}", err.trim())),
    }
}

/// Moves the calling thread into network namespace `name` (made by `ip
/// netns add`). Only this thread moves: sockets it opens from now on live
/// in that namespace. Call it only on a thread made for the purpose
/// ([`run_in`], [`spawn_in`]), never on a test's own thread.
pub fn enter(name: &str) -> Result<(), String> {
    let path = Path::new(NETNS_DIR).join(name);
    let handle = File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // CLONE_NEWNET moves only this thread's network namespace.
    let network = Some(rustix::thread::LinkNameSpaceType::Network);
    rustix::thread::move_into_link_name_space(handle.as_fd(), network)
        .map_err(|e| format!("setns({}) failed: {e}", path.display()))
}

/// Runs `f` on a new thread inside namespace `ns`, and returns what it
/// returns (a panic in `f` is a panic here).
pub fn run_in<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| match spawn_in(scope, ns, "netns-call", f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Spawns a scoped thread named `what` inside namespace `ns` that runs
/// `f` (for clients that run as long as the test does).
pub fn spawn_in<'scope, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    ns: &str,
    what: &str,
    f: impl FnOnce() -> T + Send + 'scope,
) -> std::thread::ScopedJoinHandle<'scope, T> {
    let ns = ns.to_owned();
    std::thread::Builder::new()
        .name(format!("{what}@{ns}"))
        .spawn_scoped(scope, move || {
            enter(&ns).unwrap_or_else(|e| panic!("{e}"));
            f()
        })
        .expect("cannot spawn a thread")
}
