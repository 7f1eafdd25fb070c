//! The faults a cycle puts in place and heals: partitions of the network
//! (symmetric splits, a node cut off, one-sided blackholes) and of the
//! processes (SIGSTOP then SIGCONT, SIGKILL then a restart), and the
//! schedule that rotates them over the nodes.
//!
//! Each network fault is checked to be in effect (a TCP connection across
//! it does not open) and each heal to have restored every path, so that
//! a harness that silently failed to partition cannot pass for a cluster
//! that converged.

use super::nodes::Nodes;
use super::topology::Topology;
use super::traffic::Traffic;
use std::fmt;
use std::time::Duration;

/// Time in which a connection across the bridge opens when nothing is in
/// the way (it takes well under a millisecond).
const OPENS_WITHIN: Duration = Duration::from_millis(150);

/// Pairs of nodes (from, to).
type Pairs = Vec<(usize, usize)>;

/// One fault, by node index.
#[derive(Clone, Debug)]
pub enum Fault {
    /// These nodes on one side, every other on the other.
    Split(Vec<usize>),
    /// The node's bridge port down.
    CutOff(usize),
    /// Node `at` cannot send to `to` (blackhole routes in `at`'s namespace).
    Blackhole { at: usize, to: Vec<usize> },
    /// The node SIGSTOPped, then SIGCONTed.
    Stop(usize),
    /// The node SIGKILLed, then restarted (empty) on the same address.
    Kill(usize),
}

impl Fault {
    /// The kind, for the summary's worst time by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Split(_) => "split",
            Fault::CutOff(_) => "cut off",
            Fault::Blackhole { .. } => "blackhole",
            Fault::Stop(_) => "SIGSTOP",
            Fault::Kill(_) => "SIGKILL",
        }
    }

    /// Puts the fault in place. A node stopped or killed is marked down
    /// for the clients first.
    pub fn apply(&self, net: &mut Topology, nodes: &mut Nodes, traffic: &Traffic) {
        let done = match self {
            Fault::Split(side) => net.split(side),
            Fault::CutOff(i) => net.isolate(*i),
            Fault::Blackhole { at, to } => to.iter().try_for_each(|&j| net.blackhole(*at, j)),
            Fault::Stop(i) => {
                traffic.set_up(*i, false);
                nodes.signal(*i, "STOP");
                Ok(())
            }
            Fault::Kill(i) => {
                traffic.set_up(*i, false);
                nodes.kill(*i);
                Ok(())
            }
        };
        done.unwrap_or_else(|e| panic!("cannot put {self} in place: {e}"));
    }

    /// Panics unless the fault cuts what it should, and leaves open what
    /// it should (network faults; a stopped or killed process needs no
    /// check).
    pub fn check_in_effect(&self, net: &Topology) {
        let n = net.addrs.len();
        let others = |of: &[usize]| (0..n).filter(|j| !of.contains(j)).collect::<Vec<_>>();
        // Pairs (from, to) that must not connect, then pairs that must.
        let (cut, open): (Pairs, Pairs) = match self {
            Fault::Split(side) => {
                let rest = others(side);
                let mut open = vec![(rest[0], rest[1])];
                if side.len() > 1 {
                    open.push((side[0], side[1]));
                }
                (vec![(side[0], rest[0]), (rest[0], side[0])], open)
            }
            Fault::CutOff(i) => {
                let rest = others(&[*i]);
                (vec![(*i, rest[0]), (rest[0], *i)], vec![(rest[0], rest[1])])
            }
            Fault::Blackhole { at, to } => {
                let open = others(to).into_iter().find(|j| j != at);
                (
                    vec![(*at, to[0])],
                    open.map(|j| (*at, j)).into_iter().collect(),
                )
            }
            Fault::Stop(_) | Fault::Kill(_) => (vec![], vec![]),
        };
        for (from, to) in cut {
            assert!(
                !net.connects(from, to, OPENS_WITHIN),
                "{self}: node {from} still connects to node {to}: the partition is not in place"
            );
        }
        for (from, to) in open {
            assert!(
                net.connects(from, to, Duration::from_secs(2)),
                "{self}: node {from} cannot connect to node {to}, which this fault leaves open"
            );
        }
    }

    /// Undoes the fault: the network healed, or the node resumed or
    /// restarted (and waited for) and marked up.
    pub fn heal(&self, net: &mut Topology, nodes: &mut Nodes, traffic: &Traffic) {
        match self {
            Fault::Stop(i) => {
                nodes.signal(*i, "CONT");
                traffic.set_up(*i, true);
            }
            Fault::Kill(i) => {
                nodes.restart(*i);
                traffic.set_up(*i, true);
            }
            _ => net
                .heal()
                .unwrap_or_else(|e| panic!("cannot heal {self}: {e}")),
        }
    }
}

/// Panics unless every node connects to every other (after a heal).
pub fn check_healed(net: &Topology, after: &Fault) {
    let n = net.addrs.len();
    for from in 0..n {
        for to in (0..n).filter(|&to| to != from) {
            assert!(
                net.connects(from, to, Duration::from_secs(2)),
                "after healing {after}: node {from} cannot connect to node {to}"
            );
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Split(side) => write!(f, "split {side:?} | the rest"),
            Fault::CutOff(i) => write!(f, "node {i} cut off (bridge port down)"),
            Fault::Blackhole { at, to } => {
                write!(f, "node {at} cannot send to {to:?} (blackhole routes)")
            }
            Fault::Stop(i) => write!(f, "node {i} SIGSTOPped"),
            Fault::Kill(i) => write!(f, "node {i} SIGKILLed and restarted"),
        }
    }
}

/// `cycles` faults over `n` nodes (n ≥ 5): eight patterns in turn, the
/// nodes they name shifted by two each round, so that every node is on
/// every end of them.
pub fn schedule(cycles: usize, n: usize) -> Vec<Fault> {
    assert!(n >= 5, "the schedule names five nodes");
    (0..cycles)
        .map(|c| {
            let s = c / 8 * 2;
            let at = |i: usize| (i + s) % n;
            match c % 8 {
                0 => Fault::Split(vec![at(0), at(1)]),
                1 => Fault::CutOff(at(2)),
                2 => Fault::Blackhole {
                    at: at(0),
                    to: vec![at(3)],
                },
                3 => Fault::Split(vec![at(1), at(3)]),
                4 => Fault::Stop(at(3)),
                5 => Fault::Blackhole {
                    at: at(4),
                    to: (0..n).filter(|&j| j != at(4)).collect(),
                },
                6 => Fault::Kill(at(1)),
                _ => Fault::Split(vec![at(4)]),
            }
        })
        .collect()
}
