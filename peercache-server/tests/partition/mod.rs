//! The network-partition harness of `tests/partition.rs`: real nodes in
//! network namespaces on a private bridge, partitions made with iproute2,
//! clients inside the namespaces, and the convergence check.
//!
//! One concept a file:
//! - [`netns`]: `ip` commands, and running code inside a namespace;
//! - [`topology`]: the namespaces, bridge and veth pairs, and the
//!   partitions made and healed on them;
//! - [`nodes`]: the `peercache-server` processes in the namespaces;
//! - [`store`]: the shared directory that is the truth;
//! - [`traffic`]: the getters and writers;
//! - [`faults`]: the faults of a cycle, and their schedule;
//! - [`converge`]: the check that every node serves the truth after a heal.

pub mod converge;
pub mod faults;
pub mod netns;
pub mod nodes;
pub mod store;
pub mod topology;
pub mod traffic;

use crate::support::{decide, env_set, Decision};
use std::io::Write;
use topology::{SplitMode, Topology};

/// Set (not empty): skip the test knowingly, even under CI.
pub const SKIP_VAR: &str = "PEERCACHE_SKIP_NETNS";
/// `vlan` or `bridges`: how splits are made (default: VLAN filtering where
/// the kernel has it, else two bridges).
pub const SPLIT_VAR: &str = "PEERCACHE_PARTITION_SPLIT";

/// The network of `n` nodes, or `None` when the test is skipped, after one
/// line saying why: the test runs as root with iproute2 and network
/// namespaces, skips without them, and fails without them when `CI` is
/// set (unless [`SKIP_VAR`] is).
pub fn network(n: usize) -> Option<Topology> {
    let skip = env_set(SKIP_VAR);
    let made = match skip {
        true => Err(format!("{SKIP_VAR} is set")),
        false => make(n),
    };
    match decide(made.is_ok(), env_set("CI"), false, skip) {
        Decision::Run => made.ok(),
        Decision::Skip => {
            say(&format!(
                "skipped the partition test: {}",
                made.err().unwrap_or_default()
            ));
            None
        }
        Decision::Fail => panic!(
            "the partition test cannot run: {}; CI is set, so this fails \
             ({SKIP_VAR}=1 skips it knowingly)",
            made.err().unwrap_or_default()
        ),
    }
}

fn make(n: usize) -> Result<Topology, String> {
    if !rustix::process::geteuid().is_root() {
        return Err("not root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)".into());
    }
    let want = match std::env::var(SPLIT_VAR).as_deref() {
        Ok("vlan") => Some(SplitMode::Vlan),
        Ok("bridges") => Some(SplitMode::Bridges),
        Ok(other) if !other.is_empty() => panic!("{SPLIT_VAR}={other:?}: expected vlan or bridges"),
        _ => None,
    };
    let tools = netns::Tools::find()?;
    Topology::create(tools, n, want).map_err(|e| format!("cannot make the network: {e}"))
}

/// Writes `line` straight to the terminal (libtest captures `println!`
/// and `eprintln!` of passing tests).
pub fn say(line: &str) {
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("{line}\n").as_bytes());
}
