//! The check after each heal: every node answers every key with its file's
//! current content, within a bounded window.
//!
//! Each pass asks every node for every key (one thread per node, inside
//! its namespace, the nodes in parallel). The cluster has converged when
//! one pass finds every answer right and the next pass confirms it (a
//! node flipping back to an old value, from a hot copy refilled late, is
//! then caught too). Any answer other than 200 is also a failed get.

use super::netns;
use super::nodes::Nodes;
use super::store::{Store, GROUP};
use super::traffic::{check_value, Traffic};
use crate::support::get;
use std::time::{Duration, Instant};

/// A pass's wrong answers: node, key, what it served, what the file holds.
type Wrong = Vec<(usize, String, String, String)>;

/// Polls until two passes in a row find every answer right, or
/// `deadline`: the time from `healed` to the end of the first right pass,
/// or a message naming each wrong answer of the last pass.
pub fn converge(
    nodes: &Nodes,
    store: &Store,
    traffic: &Traffic,
    healed: Instant,
    deadline: Instant,
) -> Result<Duration, String> {
    let keys = traffic.keys();
    let mut right_since = None;
    loop {
        let wrong = pass(nodes, store, traffic, &keys);
        match (wrong.is_empty(), right_since) {
            (true, Some(took)) => return Ok(took),
            (true, None) => right_since = Some(healed.elapsed()),
            (false, _) => right_since = None,
        }
        if right_since.is_none() && Instant::now() > deadline {
            let lines: Vec<String> = wrong
                .iter()
                .map(|(node, key, seen, file)| {
                    format!(
                        "node {node} ({}) key {key}: served {seen:?}, the file holds {file:?} \
                         (last change: {})",
                        nodes.url(*node),
                        traffic.last_change(key)
                    )
                })
                .collect();
            return Err(format!(
                "{} wrong answers {:.2?} after the heal:\n  {}",
                wrong.len(),
                healed.elapsed(),
                lines.join("\n  ")
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One pass over every node and key: the wrong answers.
fn pass(nodes: &Nodes, store: &Store, traffic: &Traffic, keys: &[String]) -> Wrong {
    let expected: Vec<String> = keys.iter().map(|key| store.read(key)).collect();
    std::thread::scope(|scope| {
        let passes: Vec<_> = (0..nodes.len())
            .map(|i| {
                let expected = &expected;
                netns::spawn_in(scope, nodes.ns(i), "converge", move || {
                    let mut wrong = Wrong::new();
                    for (key, file) in keys.iter().zip(expected) {
                        let started = Instant::now();
                        let answer = get(nodes.addrs[i], &format!("/{GROUP}/{key}"))
                            .map(|(status, body)| (status, body.into_bytes()));
                        traffic.count_get(started.elapsed());
                        let seen = match check_value(key, answer) {
                            Ok(value) => value,
                            Err(why) => {
                                traffic.get_failed(format!("get of {key} on node {i}: {why}"));
                                format!("(failed: {why})")
                            }
                        };
                        if &seen != file {
                            wrong.push((i, key.clone(), seen, file.clone()));
                        }
                    }
                    wrong
                })
            })
            .collect();
        passes
            .into_iter()
            .flat_map(|pass| pass.join().expect("a convergence pass panicked"))
            .collect()
    })
}
