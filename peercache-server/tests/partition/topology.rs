//! The test's private network: one namespace per node, each joined by a
//! veth pair to a Linux bridge that lives in a namespace of its own, and
//! the partitions made and healed on it.
//!
//! Nothing is created in the host's namespace (the veth pairs are made in
//! the bridge's namespace, one end then moved to the node's), so the test
//! touches no real interface, and two test processes never meet: names
//! carry the test process's pid. Everything is deleted on `Drop`, also when
//! the test panics; a run killed before its cleanup is swept by the next
//! ([`Tools::sweep_stale`]).
//!
//! Partitions use iproute2 alone (no iptables, nft or tc), and drop packets
//! silently, as a real partition does, except the blackhole route:
//! - a split (two sides): the bridge's VLAN filtering, one VLAN a side
//!   ([`SplitMode::Vlan`]), or, on a kernel built without it (no
//!   `CONFIG_BRIDGE_VLAN_FILTERING`: `ip link set BR type bridge
//!   vlan_filtering 1` answers "Operation not supported"), a second bridge
//!   that one side's ports move to ([`SplitMode::Bridges`]): the same
//!   effect, frames never cross from one side to the other;
//! - one node isolated: its bridge port taken down;
//! - one-sided: a `blackhole` route in one node's namespace only: that node
//!   cannot send to the peer (its connects fail at once, `EINVAL`), while
//!   the peer's packets still arrive and only the answers are lost.

use super::netns::{self, Tools, PREFIX};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// The port every node listens on (each namespace has its own ports).
pub const PORT: u16 = 8080;

/// How a split into two sides is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitMode {
    /// The bridge's VLAN filtering: the second side's ports in VLAN 2.
    Vlan,
    /// A second bridge, which the second side's ports move to.
    Bridges,
}

/// One change to the network that [`Topology::heal`] undoes.
#[derive(Debug)]
enum Fault {
    Side(Vec<usize>),
    PortDown(usize),
    Blackhole { at: usize, to: usize },
}

/// The namespaces, bridge and veth pairs of one test, and the faults in
/// place on them.
pub struct Topology {
    tools: Tools,
    /// The bridge's namespace.
    pub bridge_ns: String,
    /// Each node's namespace.
    pub node_ns: Vec<String>,
    /// Each node's address.
    pub addrs: Vec<SocketAddr>,
    /// Each node's veth end on the bridge.
    ports: Vec<String>,
    /// The main bridge, and the second one of [`SplitMode::Bridges`].
    bridges: [String; 2],
    /// How splits are made here.
    pub split_mode: SplitMode,
    /// Why the VLAN filtering is not used, when it is not.
    pub split_note: String,
    faults: Vec<Fault>,
    /// Every namespace made so far, in order (deleted in reverse).
    made: Vec<String>,
}

impl Topology {
    /// `n` node namespaces on one bridge, the nodes at `10.231.X.1` to
    /// `10.231.X.n` (X from the pid). `want` forces a split mode; `None`
    /// uses VLAN filtering where the kernel has it. An error says why the
    /// network cannot be made (the test then skips, or fails under CI).
    pub fn create(tools: Tools, n: usize, want: Option<SplitMode>) -> Result<Topology, String> {
        let pid = std::process::id();
        let ns = |role: &str| format!("{PREFIX}{pid}-{role}");
        let subnet = (pid % 256) as u8;
        let mut net = Topology {
            tools,
            bridge_ns: ns("br"),
            node_ns: (0..n).map(|i| ns(&format!("n{i}"))).collect(),
            addrs: (0..n)
                .map(|i| {
                    let ip = Ipv4Addr::new(10, 231, subnet, i as u8 + 1);
                    SocketAddr::new(IpAddr::V4(ip), PORT)
                })
                .collect(),
            // Interface names: at most 15 bytes ("pc" + 7-digit pid + 2).
            ports: (0..n).map(|i| format!("pc{pid}p{i}")).collect(),
            bridges: [format!("pc{pid}b0"), format!("pc{pid}b1")],
            split_mode: SplitMode::Bridges,
            split_note: String::new(),
            faults: Vec::new(),
            made: Vec::new(),
        };
        net.tools.sweep_stale();
        // From here on, an error drops `net`, which deletes what was made.
        net.add_netns(net.bridge_ns.clone())?;
        let br = net.bridge_ns.clone();
        let [b0, b1] = net.bridges.clone();
        net.tools
            .ip_in(&br, &["link", "add", &b0, "type", "bridge"])?;
        net.split_mode = match want {
            Some(SplitMode::Bridges) => SplitMode::Bridges,
            Some(SplitMode::Vlan) | None => {
                let filtering = ["link", "set", &b0, "type", "bridge", "vlan_filtering", "1"];
                match (net.tools.ip_in(&br, &filtering), want) {
                    (Ok(_), _) => SplitMode::Vlan,
                    (Err(e), Some(_)) => return Err(e),
                    (Err(e), None) => {
                        let why = e.rsplit(": ").next().unwrap_or_default();
                        net.split_note = format!("the bridge's VLAN filtering: {why}");
                        SplitMode::Bridges
                    }
                }
            }
        };
        if net.split_mode == SplitMode::Bridges {
            net.tools
                .ip_in(&br, &["link", "add", &b1, "type", "bridge"])?;
            net.tools.ip_in(&br, &["link", "set", &b1, "up"])?;
        }
        net.tools.ip_in(&br, &["link", "set", &b0, "up"])?;
        for i in 0..n {
            let (node, port) = (net.node_ns[i].clone(), net.ports[i].clone());
            let inside = format!("pc{pid}e{i}");
            net.add_netns(node.clone())?;
            let veth = [
                "link", "add", &port, "type", "veth", "peer", "name", &inside,
            ];
            net.tools.ip_in(&br, &veth)?;
            net.tools
                .ip_in(&br, &["link", "set", &inside, "netns", &node])?;
            net.tools
                .ip_in(&br, &["link", "set", &port, "master", &b0])?;
            net.tools.ip_in(&br, &["link", "set", &port, "up"])?;
            let cidr = format!("{}/24", net.addrs[i].ip());
            net.tools
                .ip_in(&node, &["addr", "add", &cidr, "dev", &inside])?;
            net.tools.ip_in(&node, &["link", "set", &inside, "up"])?;
        }
        Ok(net)
    }

    fn add_netns(&mut self, name: String) -> Result<(), String> {
        self.tools.add_netns(&name)?;
        self.made.push(name);
        Ok(())
    }

    /// The `ip` binary (nodes start under `ip netns exec`).
    pub fn ip_binary(&self) -> &std::path::Path {
        &self.tools.ip
    }

    /// Splits the network in two: `side` on one side, every other node on
    /// the other.
    pub fn split(&mut self, side: &[usize]) -> Result<(), String> {
        self.faults.push(Fault::Side(side.to_vec()));
        side.iter().try_for_each(|&i| self.move_port(i, true))
    }

    /// Cuts node `i` off by taking its bridge port down.
    pub fn isolate(&mut self, i: usize) -> Result<(), String> {
        self.faults.push(Fault::PortDown(i));
        self.port_state(i, "down")
    }

    /// Makes node `at` unable to send to node `to` (a blackhole route in
    /// `at`'s namespace only).
    pub fn blackhole(&mut self, at: usize, to: usize) -> Result<(), String> {
        self.faults.push(Fault::Blackhole { at, to });
        self.route(at, to, "add")
    }

    /// Undoes every fault in place, the latest first.
    pub fn heal(&mut self) -> Result<(), String> {
        while let Some(fault) = self.faults.pop() {
            match fault {
                Fault::Side(side) => side.iter().try_for_each(|&i| self.move_port(i, false))?,
                Fault::PortDown(i) => self.port_state(i, "up")?,
                Fault::Blackhole { at, to } => self.route(at, to, "del")?,
            }
        }
        Ok(())
    }

    /// Moves node `i`'s port to the second side (`away`) or back.
    fn move_port(&self, i: usize, away: bool) -> Result<(), String> {
        let (br, port) = (&self.bridge_ns, &self.ports[i]);
        match self.split_mode {
            SplitMode::Bridges => {
                let bridge = &self.bridges[usize::from(away)];
                self.tools
                    .ip_in(br, &["link", "set", port, "master", bridge])
                    .map(drop)
            }
            SplitMode::Vlan => {
                // The port's untagged VLAN (pvid) first, then leave the old
                // one: a port still in VLAN 1 would receive its floods.
                let (join, leave) = if away { ("2", "1") } else { ("1", "2") };
                let vlan = |verb: &str, vid: &str, flags: &[&str]| {
                    let mut args = vec!["-n", br, "vlan", verb, "dev", port, "vid", vid];
                    args.extend_from_slice(flags);
                    self.tools.bridge(&args).map(drop)
                };
                vlan("add", join, &["pvid", "untagged"])?;
                vlan("del", leave, &[])
            }
        }
    }

    fn port_state(&self, i: usize, state: &str) -> Result<(), String> {
        let args = ["link", "set", &self.ports[i], state];
        self.tools.ip_in(&self.bridge_ns, &args).map(drop)
    }

    fn route(&self, at: usize, to: usize, verb: &str) -> Result<(), String> {
        let target = format!("{}/32", self.addrs[to].ip());
        let args = ["route", verb, "blackhole", &target];
        self.tools.ip_in(&self.node_ns[at], &args).map(drop)
    }

    /// Whether a TCP connection from node `from`'s namespace to node `to`
    /// opens within `within` (a node that is up always accepts: the kernel
    /// answers for it, even while it is stopped).
    pub fn connects(&self, from: usize, to: usize, within: Duration) -> bool {
        let addr = self.addrs[to];
        netns::run_in(&self.node_ns[from], || {
            TcpStream::connect_timeout(&addr, within).is_ok()
        })
    }
}

impl Drop for Topology {
    /// Deletes every namespace made, the nodes' first (which deletes the
    /// veth pairs), then the bridge's. Errors are printed, not raised: this
    /// also runs while a failed test unwinds.
    fn drop(&mut self) {
        for name in self.made.iter().rev() {
            if let Err(e) = self.tools.delete_netns(name) {
                eprintln!("partition test cleanup: {e}");
            }
        }
    }
}
