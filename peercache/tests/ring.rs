//! The ring against Go's golden vectors (tests/data, copied from a real
//! golang/groupcache build and a validated mailgun implementation), removal
//! equal to never-added (collisions included), and key movement.

use peercache::ring::{HashMode, Ring};
use proptest::prelude::*;
use std::collections::HashMap;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// Decodes a Go `%q` string literal into bytes.
fn go_unquote(quoted: &str) -> Vec<u8> {
    let inner = quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not a Go quoted string: {quoted}"));
    let mut out = Vec::new();
    let mut chars = inner.chars();
    let hex = |chars: &mut std::str::Chars, n: usize| -> u32 {
        let digits: String = chars.take(n).collect();
        u32::from_str_radix(&digits, 16).unwrap_or_else(|_| panic!("bad escape in {quoted}"))
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next().expect("dangling backslash") {
            'a' => out.push(7),
            'b' => out.push(8),
            'f' => out.push(12),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(11),
            '\\' => out.push(b'\\'),
            '"' => out.push(b'"'),
            '\'' => out.push(b'\''),
            'x' => out.push(hex(&mut chars, 2) as u8),
            'u' | 'U' => {
                let n = if inner.contains("\\u") { 4 } else { 8 };
                let c = char::from_u32(hex(&mut chars, n)).expect("bad code point");
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            d @ '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&format!("{d}{rest}"), 8).expect("bad octal"));
            }
            other => panic!("unknown escape \\{other} in {quoted}"),
        }
    }
    out
}

fn peer_lists() -> HashMap<&'static str, Vec<String>> {
    let a: Vec<String> = (9101..=9103)
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let mut b = a.clone();
    b.push("http://127.0.0.1:9104".into());
    let c = (1..=5).map(|i| format!("http://10.0.0.{i}:8080")).collect();
    HashMap::from([("a", a), ("b", b), ("c", c)])
}

fn read_rows(file: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(format!("{DATA}/{file}")).expect("vector file");
    text.lines()
        .skip(1)
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect()
}

fn check_owner_vectors(mode: HashMode, file: &str) {
    let lists = peer_lists();
    let rings: HashMap<&str, Ring> = lists
        .iter()
        .map(|(id, peers)| (*id, Ring::with_peers(mode, 50, peers).unwrap()))
        .collect();
    let rows = read_rows(file);
    assert_eq!(rows.len(), 3 * 2056, "{file}: row count");
    let mut wrong = Vec::new();
    for row in &rows {
        let [list, quoted, owner] = row.as_slice() else {
            panic!("{file}: bad row {row:?}")
        };
        let key = go_unquote(quoted);
        let got = rings[list.as_str()].owner(&key);
        if got != Some(owner.as_str()) {
            wrong.push(format!(
                "list {list} key {quoted}: want {owner}, got {got:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{file}: {} owners differ, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

#[test]
fn golang_owners_match_go() {
    check_owner_vectors(HashMode::Golang, "golang-crc32.tsv");
}

#[test]
fn mailgun_owners_match_go() {
    check_owner_vectors(HashMode::Mailgun, "mailgun-fnv1md5.tsv");
}

fn check_points(mode: HashMode, file: &str) {
    let ring = Ring::with_peers(mode, 50, &peer_lists()["a"]).unwrap();
    let want: Vec<(i64, String)> = read_rows(file)
        .into_iter()
        .map(|row| (row[0].parse().expect("hash"), row[1].clone()))
        .collect();
    let got: Vec<(i64, String)> = ring.points().map(|(h, p)| (h, p.to_owned())).collect();
    assert_eq!(got, want, "{file}");
}

#[test]
fn golang_points_match_go() {
    check_points(HashMode::Golang, "golang-crc32-points-a.tsv");
}

#[test]
fn mailgun_points_match_go() {
    check_points(HashMode::Mailgun, "mailgun-fnv1md5-points-a.tsv");
}

#[test]
fn go_unquote_handles_the_escapes_in_the_vectors() {
    assert_eq!(go_unquote(r#""a\tb\n\x00\xff\"\\""#), b"a\tb\n\x00\xff\"\\");
    assert_eq!(go_unquote(r#""ключ""#), "ключ".as_bytes());
}

/// Pairs of peer names whose replica-0 golang points collide: crc32 of
/// "0" + name is equal within each pair (found once by a search over
/// `http://peer-N`; the test below checks they still collide).
const COLLIDING: [(&str, &str); 3] = [
    ("http://peer-8930995", "http://peer-14000400"),
    ("http://peer-8930994", "http://peer-14000401"),
    ("http://peer-8930997", "http://peer-14000402"),
];

#[test]
fn colliding_pairs_collide() {
    for (a, b) in COLLIDING {
        assert_eq!(
            HashMode::Golang.point(0, a),
            HashMode::Golang.point(0, b),
            "{a} {b}"
        );
    }
}

fn snapshot(ring: &Ring) -> Vec<(i64, String)> {
    ring.points().map(|(h, p)| (h, p.to_owned())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Removing a peer gives exactly the ring built without it, in both
    /// modes, with weights, and when peers' points collide.
    #[test]
    fn removal_equals_never_added(
        plain in prop::collection::vec(0u32..40, 0..8),
        pairs in prop::collection::vec(0usize..3, 0..3),
        weights in prop::collection::vec(1u32..4, 12),
        remove_at in any::<prop::sample::Index>(),
        mailgun in any::<bool>(),
    ) {
        let mode = if mailgun { HashMode::Mailgun } else { HashMode::Golang };
        let mut peers: Vec<String> = Vec::new();
        for p in plain.iter().map(|n| format!("http://node-{n}")).chain(
            pairs.iter().flat_map(|&i| [COLLIDING[i].0.to_owned(), COLLIDING[i].1.to_owned()]),
        ) {
            if !peers.contains(&p) {
                peers.push(p);
            }
        }
        prop_assume!(!peers.is_empty());
        // Replicas 1 keeps the colliding pairs' only points on the ring.
        let weight_of = |p: &String| {
            let i = peers.iter().position(|q| q == p).unwrap();
            f64::from(weights[i % weights.len()])
        };
        let gone = peers[remove_at.index(peers.len())].clone();
        let mut ring = Ring::new(mode, 1);
        for p in &peers {
            ring.add_weighted(p, weight_of(p)).unwrap();
        }
        prop_assert!(ring.remove(&gone));
        let rest: Vec<String> = peers.iter().filter(|p| **p != gone).cloned().collect();
        let mut never = Ring::new(mode, 1);
        for p in &rest {
            never.add_weighted(p, weight_of(p)).unwrap();
        }
        prop_assert_eq!(snapshot(&ring), snapshot(&never));
        for k in 0..200 {
            let key = format!("key-{k}");
            prop_assert_eq!(ring.owner(&key), never.owner(&key));
        }
    }
}

/// Fraction of `keys` whose owner differs between two rings, and whether
/// every moved key moved to (or from) `peer`.
fn movement(before: &Ring, after: &Ring, keys: &[String], peer: &str) -> (f64, bool) {
    let mut moved = 0;
    let mut only_peer = true;
    for key in keys {
        let (a, b) = (before.owner(key), after.owner(key));
        if a != b {
            moved += 1;
            only_peer &= a == Some(peer) || b == Some(peer);
        }
    }
    (moved as f64 / keys.len() as f64, only_peer)
}

#[test]
fn adding_or_removing_one_peer_moves_about_one_nth_of_keys() {
    // Random keys: mailgun's FNV-1 puts keys that differ only in their last
    // characters next to each other on the ring (see tests/data/RING-VECTORS.md),
    // so sequential names would measure that skew, not the ring.
    let mut rng = fastrand::Rng::with_seed(7);
    let keys: Vec<String> = (0..10_000)
        .map(|_| (0..16).map(|_| rng.alphanumeric()).collect())
        .collect();
    for mode in [HashMode::Golang, HashMode::Mailgun] {
        for n in [3usize, 5, 10] {
            let peers: Vec<String> = (0..n).map(|i| format!("http://10.1.0.{i}:8080")).collect();
            let ring = Ring::with_peers(mode, 50, &peers).unwrap();
            let mut grown = ring.clone();
            grown.add("http://10.1.0.200:8080").unwrap();
            let (added, only_new) = movement(&ring, &grown, &keys, "http://10.1.0.200:8080");
            let mut shrunk = ring.clone();
            shrunk.remove(&peers[0]);
            let (removed, only_gone) = movement(&ring, &shrunk, &keys, &peers[0]);
            println!(
                "{mode:?} n={n}: add one moves {:.1}% (ideal {:.1}%), remove one moves {:.1}% (ideal {:.1}%)",
                added * 100.0,
                100.0 / (n + 1) as f64,
                removed * 100.0,
                100.0 / n as f64
            );
            assert!(
                only_new,
                "{mode:?} n={n}: a key moved between old peers on add"
            );
            assert!(
                only_gone,
                "{mode:?} n={n}: a key moved between remaining peers on remove"
            );
            // Tolerant bounds: 50 points per peer spread load within a factor
            // of about two of the ideal share.
            let ideal_add = 1.0 / (n + 1) as f64;
            assert!(
                added > ideal_add * 0.4 && added < ideal_add * 2.0,
                "{mode:?} n={n}: add moved {added}"
            );
            let ideal_remove = 1.0 / n as f64;
            assert!(
                removed > ideal_remove * 0.4 && removed < ideal_remove * 2.0,
                "{mode:?} n={n}: remove moved {removed}"
            );
        }
    }
}

#[test]
fn weight_scales_a_peers_share() {
    let mut ring = Ring::new(HashMode::Golang, 50);
    for i in 0..4 {
        ring.add(&format!("http://10.2.0.{i}:8080")).unwrap();
    }
    ring.add_weighted("http://10.2.0.9:8080", 4.0).unwrap();
    let keys: Vec<String> = (0..10_000).map(|i| format!("k{i}")).collect();
    let heavy = keys
        .iter()
        .filter(|k| ring.owner(k) == Some("http://10.2.0.9:8080"))
        .count();
    // Ideal: 4 of 8 weight units = 50% of keys.
    println!(
        "weight 4 among four weight-1 peers owns {:.1}% of keys",
        heavy as f64 / 100.0
    );
    assert!(
        (3000..7000).contains(&heavy),
        "heavy peer owns {heavy} of 10000"
    );
    let share = ring.shares()[4].1;
    assert!((0.3..0.7).contains(&share), "share {share}");
}
