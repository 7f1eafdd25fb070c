//! Changes reach every node, even one that was away: five real
//! `peercache-server` nodes, each in its own network namespace on a
//! private bridge, under a steady stream of gets and changes, through
//! cycles of network partitions (symmetric splits, a node cut off,
//! one-sided blackholes) and process faults (SIGSTOP/SIGCONT, SIGKILL and
//! a restart).
//!
//! Why namespaces: a partition between processes on 127.0.0.1 cannot be
//! made without firewall rules on the host; here each node has its own
//! network stack, the links between them are veth pairs on a bridge the
//! test owns, and a partition is a change of that bridge or of one node's
//! routes, with iproute2 alone. Nothing touches the host's interfaces.
//!
//! The truth is a directory the nodes read through a `files` data source:
//! a writer changes a key's file, then tells the cluster through a node
//! (`PUT`, `DELETE`, now and then a `_purge`). During a partition a get may
//! be slow (the owner unreachable: it waits for `--connect-timeout` or
//! `--peer-timeout`, then loads the key locally) and may serve an old
//! value, but it must answer 200. After each heal, every node must answer
//! every key with its file's content within [`CONVERGE_WITHIN`].
//!
//! Needs root and iproute2 (`ip`, `bridge`): without them the test says why
//! and passes, unless `CI` is set (then it fails; `PEERCACHE_SKIP_NETNS=1`
//! skips it knowingly). `PEERCACHE_PARTITION_ARGS` adds server flags
//! (space-separated) to [`EXTRA_SERVER_ARGS`]; `PEERCACHE_PARTITION_SPLIT`
//! is `vlan` or `bridges`; `PEERCACHE_PARTITION_KEEP_GOING=1` runs every
//! cycle after a failed convergence (purging the group to start the next
//! one clean), prints each cycle, and fails at the end with every failure.
#![cfg(target_os = "linux")]

mod support;

#[path = "partition/mod.rs"]
mod harness;

use harness::converge::converge;
use harness::faults::{check_healed, schedule, Fault};
use harness::netns;
use harness::nodes::Nodes;
use harness::say;
use harness::store::{Store, GROUP};
use harness::topology::Topology;
use harness::traffic::Traffic;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The flags under test: a change waits 1 s at most for a node that does
/// not own its key (then it is pending there, and delivered when the node
/// answers again). The hot copies' maximum age stays at its default (10 s,
/// more than the window): convergence is the hints' doing.
const EXTRA_SERVER_ARGS: &[&str] = &["--change-timeout", "1s"];

/// Every node's flags: short timeouts so that a partition is felt at once
/// (an unreachable owner costs a get at most 300 ms to connect, 1 s in
/// all), front clients beyond loopback (the clients are in the node's
/// namespace, on its address) allowed to change keys, and every value
/// fetched from a peer mirrored (hot copies are what a partition leaves
/// stale).
const SERVER_ARGS: &[&str] = &[
    "--peer-timeout",
    "1s",
    "--connect-timeout",
    "300ms",
    "--front-writes",
    "--front-open",
    "--hot-cache",
    "always",
];

const NODES: usize = 5;
/// Keys each writer owns: one writer per node.
const KEYS_PER_WRITER: usize = 2;
const CYCLES: usize = 24;
/// How long each fault stays in place.
const PARTITION: Duration = Duration::from_millis(700);
/// The window after a heal (and after the last write) in which every node
/// must serve every key's current value.
const CONVERGE_WITHIN: Duration = Duration::from_secs(3);

/// Ends the clients when dropped: at the end, and when the test panics
/// (before `thread::scope` waits for them).
struct StopClients<'a>(&'a Traffic);

impl Drop for StopClients<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// The measured times to converge.
#[derive(Default)]
struct Times {
    worst: Option<(Duration, usize, String)>,
    by_kind: BTreeMap<&'static str, Duration>,
    /// Cycles that did not converge within the window.
    missed: usize,
}

impl Times {
    fn add(&mut self, took: Duration, cycle: usize, fault: &Fault) {
        if self
            .worst
            .as_ref()
            .is_none_or(|(worst, _, _)| took > *worst)
        {
            self.worst = Some((took, cycle, fault.to_string()));
        }
        let kind = self.by_kind.entry(fault.kind()).or_default();
        *kind = (*kind).max(took);
    }

    fn describe(&self) -> String {
        let worst = match &self.worst {
            Some((took, cycle, fault)) => format!("{took:.2?} (cycle {cycle}: {fault})"),
            None => "none".to_owned(),
        };
        let missed = match self.missed {
            0 => String::new(),
            missed => format!(", {missed} cycles did not converge"),
        };
        let by_kind: Vec<String> = (self.by_kind.iter())
            .map(|(kind, took)| format!("{kind} {took:.2?}"))
            .collect();
        format!(
            "worst convergence {worst}{missed}; worst by fault: {}",
            by_kind.join(", ")
        )
    }
}

/// What one cycle works on. The fields drop in order: the nodes are
/// killed before their namespaces are deleted.
struct Cluster<'a> {
    nodes: Nodes,
    net: Topology,
    store: &'a Store,
    traffic: &'a Traffic,
}

impl Cluster<'_> {
    /// One cycle: writes on, the fault in place for [`PARTITION`], healed,
    /// writes stopped, then the convergence check. The time from the heal
    /// to convergence, or what went wrong (failed gets and writes, wrong
    /// answers).
    fn cycle(&mut self, cycle: usize, fault: &Fault, keep_going: bool) -> Result<Duration, String> {
        let writes_before = self.traffic.writes();
        self.traffic.start_writes();
        let cut = Instant::now();
        fault.apply(&mut self.net, &mut self.nodes, self.traffic);
        fault.check_in_effect(&self.net);
        std::thread::sleep(PARTITION.saturating_sub(cut.elapsed()));
        fault.heal(&mut self.net, &mut self.nodes, self.traffic);
        let healed = Instant::now();
        check_healed(&self.net, fault);
        self.traffic.quiesce_writes();
        let deadline = Instant::now() + CONVERGE_WITHIN;
        let outcome = converge(&self.nodes, self.store, self.traffic, healed, deadline);
        if keep_going {
            let outcome = match &outcome {
                Ok(took) => format!("converged in {took:.2?}"),
                Err(_) => "did not converge".to_owned(),
            };
            let writes = self.traffic.writes() - writes_before;
            say(&format!(
                "cycle {cycle}, {fault}: {writes} writes, {outcome}"
            ));
        }
        let mut problems = self.traffic.take_failures();
        if let Err(wrong) = &outcome {
            problems.push(format!(
                "not every node serves the files' values within {CONVERGE_WITHIN:?}: {wrong}"
            ));
        }
        match problems.is_empty() {
            true => outcome,
            false => Err(format!("cycle {cycle} ({fault}):\n{}", problems.join("\n"))),
        }
    }

    /// Purges the group through node 0 and checks that every node then
    /// serves the files' values (after a failed convergence, with
    /// `PEERCACHE_PARTITION_KEEP_GOING`: the next cycle starts clean).
    fn start_clean(&self) {
        let addr = self.nodes.addrs[0];
        let purged = netns::run_in(self.nodes.ns(0), || {
            support::request(addr, "POST", &format!("/{GROUP}/_purge"), b"")
        });
        assert!(matches!(purged, Ok((200, _))), "purge: {purged:?}");
        let now = Instant::now();
        let converged = converge(
            &self.nodes,
            self.store,
            self.traffic,
            now,
            now + CONVERGE_WITHIN,
        );
        if let Err(wrong) = converged {
            panic!("the nodes disagree even after a purge: {wrong}");
        }
    }
}

#[test]
fn changes_reach_every_node_even_one_that_was_away() {
    let Some(net) = harness::network(NODES) else {
        return;
    };
    let begun = Instant::now();
    let keep_going = support::env_set("PEERCACHE_PARTITION_KEEP_GOING");
    let traffic = Traffic::new(&net.addrs, KEYS_PER_WRITER);
    let store = Store::new(&traffic.keys(), |key| format!("{key} v0"));
    let from_env = std::env::var("PEERCACHE_PARTITION_ARGS").unwrap_or_default();
    let mut flags: Vec<String> = (SERVER_ARGS.iter().chain(EXTRA_SERVER_ARGS))
        .map(|s| s.to_string())
        .chain(from_env.split_whitespace().map(str::to_owned))
        .collect();
    flags.extend(["--config".to_owned(), store.config().display().to_string()]);
    let nodes =
        Nodes::start(&net, &flags).unwrap_or_else(|e| panic!("the nodes did not start: {e}"));
    let mut cluster = Cluster {
        nodes,
        net,
        store: &store,
        traffic: &traffic,
    };

    let mut times = Times::default();
    let mut failures: Vec<String> = Vec::new();
    std::thread::scope(|scope| {
        let _stop = StopClients(&traffic);
        for i in 0..NODES {
            let (traffic, store) = (&traffic, &store);
            let ns = cluster.nodes.ns(i);
            netns::spawn_in(scope, ns, "getter", move || traffic.getter(i));
            netns::spawn_in(scope, ns, "writer", move || traffic.writer(i, store));
        }
        let now = Instant::now();
        if let Err(wrong) = converge(&cluster.nodes, &store, &traffic, now, now + CONVERGE_WITHIN) {
            panic!("the nodes disagree before any fault: {wrong}");
        }
        for (cycle, fault) in schedule(CYCLES, NODES).iter().enumerate() {
            match cluster.cycle(cycle, fault, keep_going) {
                Ok(took) => times.add(took, cycle, fault),
                Err(failure) => {
                    assert!(keep_going, "{failure}");
                    failures.push(failure);
                    times.missed += 1;
                    cluster.start_clean();
                }
            }
        }
    });

    say(&format!(
        "partition test: {CYCLES} cycles of {PARTITION:?} (splits: {:?}{}), {}, {}; {:.1?} in all",
        cluster.net.split_mode,
        match cluster.net.split_note.is_empty() {
            true => String::new(),
            false => format!(", {}", cluster.net.split_note),
        },
        traffic.describe(),
        times.describe(),
        begun.elapsed(),
    ));
    assert!(
        failures.is_empty(),
        "{} of {CYCLES} cycles failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(traffic.failed_gets(), 0, "failed gets");
    assert_eq!(
        traffic.went_back(),
        0,
        "gets older than a change that had reached their node"
    );
}
