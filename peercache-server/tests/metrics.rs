//! `GET /metrics` of a live three-node cluster, read with a Prometheus
//! text-format parser: mailgun/groupcache's metric names and labels, values
//! equal to `/stats`, load and peer-fetch histograms, and peer health.

mod support;

use prometheus_parse::{Sample, Scrape, Value};
use std::net::SocketAddr;
use support::*;

/// The counters of mailgun's exporter and the `/stats` field each mirrors.
const GROUP_COUNTERS: [(&str, &str); 9] = [
    ("groupcache_gets_total", "gets"),
    ("groupcache_hits_total", "cache_hits"),
    ("groupcache_loads_total", "loads"),
    ("groupcache_loads_deduped_total", "loads_deduped"),
    ("groupcache_local_loads_total", "local_loads"),
    ("groupcache_local_load_errs_total", "local_load_errs"),
    ("groupcache_peer_loads_total", "peer_loads"),
    ("groupcache_peer_errors_total", "peer_errors"),
    ("groupcache_server_requests_total", "server_requests"),
];

/// Per-cache metrics and their `/stats` fields.
const CACHE_METRICS: [(&str, &str); 5] = [
    ("groupcache_cache_bytes", "bytes"),
    ("groupcache_cache_items", "items"),
    ("groupcache_cache_gets_total", "gets"),
    ("groupcache_cache_hits_total", "hits"),
    ("groupcache_cache_evictions_total", "evictions"),
];

fn scrape(addr: SocketAddr) -> Vec<Sample> {
    let (status, body) = get(addr, "/metrics").unwrap();
    assert_eq!(status, 200, "{body}");
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    Scrape::parse(lines).expect("valid Prometheus text").samples
}

/// The samples of `metric` with these labels.
fn matching<'a>(samples: &'a [Sample], metric: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

/// The one sample of `metric` with these labels.
fn find<'a>(samples: &'a [Sample], metric: &str, labels: &[(&str, &str)]) -> &'a Sample {
    let found = matching(samples, metric, labels);
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:?}");
    found[0]
}

/// The value of the one sample of `metric` with these labels, or 0 when
/// there is none: a histogram appears at its first observation, and with 15
/// keys on a ring of ephemeral ports a node may own none of them.
fn count_or_zero(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found = matching(samples, metric, labels);
    assert!(found.len() <= 1, "{metric} {labels:?}: {found:?}");
    found.first().map_or(0.0, |sample| number(sample))
}

fn number(sample: &Sample) -> f64 {
    match sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{}: not a number: {other:?}", sample.metric),
    }
}

#[test]
fn metrics_use_mailgun_names_and_agree_with_stats() {
    let nodes = start_servers(3, &[]);
    let colors = colors();
    for node in &nodes {
        for (name, _) in colors.iter().take(15) {
            get_ok(node.addr, &format!("/color?name={}", escape(name)));
        }
    }
    let (status, _) = get(nodes[0].addr, "/color?name=no-such-colour").unwrap();
    assert_eq!(status, 404);

    let mut histograms_checked = 0;
    for node in &nodes {
        // /stats first: the counters only grow, and nothing else asks now.
        let stats = stats(node.addr);
        let samples = scrape(node.addr);
        let group = &group_in(&stats, "colors");
        for (metric, field) in GROUP_COUNTERS {
            let sample = find(&samples, metric, &[("group", "colors")]);
            assert!(
                matches!(sample.value, Value::Counter(_)),
                "{metric}: {sample:?}"
            );
            assert_eq!(
                number(sample),
                group[field].as_u64().unwrap() as f64,
                "{metric} on {}",
                node.addr
            );
        }
        for kind in ["main", "hot"] {
            for (metric, field) in CACHE_METRICS {
                let sample = find(&samples, metric, &[("group", "colors"), ("type", kind)]);
                let cache = &group[format!("{kind}_cache")];
                assert_eq!(
                    number(sample),
                    cache[field].as_u64().unwrap() as f64,
                    "{metric} {kind}"
                );
            }
        }
        // One load-latency observation per local load, by outcome.
        let ok = [("group", "colors"), ("outcome", "ok")];
        let ok_loads = count_or_zero(&samples, "groupcache_load_duration_seconds_count", &ok);
        assert_eq!(ok_loads, group["local_loads"].as_u64().unwrap() as f64);
        if ok_loads > 0.0 {
            let buckets = find(&samples, "groupcache_load_duration_seconds", &ok);
            let Value::Histogram(buckets) = &buckets.value else {
                panic!("not a histogram: {buckets:?}");
            };
            assert!(buckets.len() > 5 && buckets.last().unwrap().less_than.is_infinite());
            assert_eq!(buckets.last().unwrap().count, ok_loads);
            histograms_checked += 1;
        }
        // Peer fetches, one per peer load, and both peers up.
        assert_eq!(
            count_or_zero(
                &samples,
                "groupcache_peer_fetch_duration_seconds_count",
                &ok
            ),
            group["peer_loads"].as_u64().unwrap() as f64
        );
        for other in nodes.iter().filter(|n| n.addr != node.addr) {
            let up = find(&samples, "groupcache_peer_up", &[("peer", &other.url)]);
            assert_eq!(number(up), 1.0);
            let failures = find(
                &samples,
                "groupcache_peer_failures_total",
                &[("peer", &other.url)],
            );
            assert_eq!(number(failures), 0.0);
        }
    }
    // 15 colours were loaded, so some node's histogram was read.
    assert!(histograms_checked > 0);
    // The not-found colour was loaded by its owner: one `not_found` load.
    let not_found: f64 = nodes
        .iter()
        .map(|n| scrape(n.addr))
        .map(|samples| {
            samples
                .iter()
                .filter(|s| {
                    s.metric == "groupcache_load_duration_seconds_count"
                        && s.labels.get("outcome") == Some("not_found")
                })
                .map(number)
                .sum::<f64>()
        })
        .sum();
    assert_eq!(not_found, 1.0);
}
