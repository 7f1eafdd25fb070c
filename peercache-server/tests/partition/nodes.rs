//! The `peercache-server` nodes, one per namespace, started with `ip netns
//! exec NS peercache-server ...` (which execs the server: the child's pid
//! is the server's, so `support::Proc` kills and signals it directly), and
//! SIGSTOPped, SIGCONTed, SIGKILLed and restarted by the test.
//!
//! Each node's readiness is polled from a thread inside its namespace,
//! since the test's own thread cannot reach it.

use super::netns;
use super::topology::Topology;
use crate::support::{self, get, server_binary, Proc};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The running nodes of a [`Topology`].
pub struct Nodes {
    ip: PathBuf,
    ns: Vec<String>,
    /// Each node's address.
    pub addrs: Vec<SocketAddr>,
    args: Vec<Vec<String>>,
    procs: Vec<Option<Proc>>,
    /// How many times each node was started (names its log).
    starts: Vec<usize>,
}

impl Nodes {
    /// Starts a node in each of `net`'s namespaces, listing all of them in
    /// `--pool`, with `flags` after `--addr` and `--pool`; waits (bounded)
    /// until each answers `GET /stats`.
    pub fn start(net: &Topology, flags: &[String]) -> Result<Nodes, String> {
        let pool: Vec<String> = net.addrs.iter().map(|a| format!("http://{a}")).collect();
        let args = net
            .addrs
            .iter()
            .map(|addr| {
                let mut args = vec![
                    "--addr".to_owned(),
                    addr.to_string(),
                    "--pool".to_owned(),
                    pool.join(","),
                ];
                args.extend(flags.iter().cloned());
                args
            })
            .collect();
        let n = net.addrs.len();
        let mut nodes = Nodes {
            ip: net.ip_binary().to_owned(),
            ns: net.node_ns.clone(),
            addrs: net.addrs.clone(),
            args,
            procs: (0..n).map(|_| None).collect(),
            starts: vec![0; n],
        };
        for i in 0..n {
            nodes.launch(i)?;
        }
        Ok(nodes)
    }

    /// Starts node `i` (again), and waits until it answers.
    fn launch(&mut self, i: usize) -> Result<(), String> {
        self.starts[i] += 1;
        let name = format!(
            "partition-{}-node{i}-{}",
            std::process::id(),
            self.starts[i]
        );
        let mut args = vec![
            "netns".to_owned(),
            "exec".to_owned(),
            self.ns[i].clone(),
            server_binary().display().to_string(),
        ];
        args.extend(self.args[i].iter().cloned());
        let (addr, ns) = (self.addrs[i], self.ns[i].clone());
        let proc = support::start_until(&name, &self.ip, &args, addr, url(addr), |addr| {
            netns::run_in(&ns, || matches!(get(addr, "/stats"), Ok((200, _))))
        })?;
        self.procs[i] = Some(proc);
        Ok(())
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Node `i`'s namespace.
    pub fn ns(&self, i: usize) -> &str {
        &self.ns[i]
    }

    /// Node `i`'s base URL, as in every node's `--pool`.
    pub fn url(&self, i: usize) -> String {
        url(self.addrs[i])
    }

    fn proc(&self, i: usize) -> &Proc {
        self.procs[i].as_ref().expect("node not running")
    }

    /// Sends node `i` SIGSTOP (`"STOP"`) or SIGCONT (`"CONT"`).
    pub fn signal(&self, i: usize, signal: &str) {
        self.proc(i).signal(signal);
    }

    /// SIGKILLs node `i` (and reaps it).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut proc) = self.procs[i].take() {
            proc.kill();
        }
    }

    /// Starts node `i` again, on the same address in the same namespace,
    /// with the same flags (with an empty cache, as any restarted node).
    pub fn restart(&mut self, i: usize) {
        self.launch(i)
            .unwrap_or_else(|e| panic!("node {i} did not restart: {e}"));
    }
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}
