//! Metrics through the [`metrics`] facade, with the names of
//! mailgun/groupcache's Prometheus exporter, so existing dashboards keep
//! working. No exporter is forced on users: install any `metrics` recorder
//! (`metrics-exporter-prometheus`, StatsD, ...) and call [`record`] before
//! each scrape, as `peercache-server`'s `GET /metrics` does.
//!
//! The counters are not bumped through the facade on every get: a group
//! already counts in atomics (its [`crate::GroupStats`]), and the hit path
//! must not pay for a registry lookup. [`record`] copies those counts into
//! the recorder (`absolute`), so a scrape sees exact values. Only latencies
//! are recorded as they happen, on paths that are slow anyway:
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `groupcache_gets_total`, `groupcache_hits_total`, `groupcache_loads_total`, `groupcache_loads_deduped_total`, `groupcache_local_loads_total`, `groupcache_local_load_errs_total`, `groupcache_peer_loads_total`, `groupcache_peer_errors_total`, `groupcache_server_requests_total`, `peercache_server_batches_total`, `peercache_loads_refused_total`, `peercache_loads_failed_fast_total`, `peercache_stale_served_total`, `peercache_stale_if_error_total`, `peercache_refreshes_total`, `peercache_negative_hits_total`, `peercache_hints_delivered_total`, `peercache_hints_collapsed_total`, `peercache_peeks_total`, `peercache_peek_hits_total`, `peercache_peek_misses_total`, `peercache_peeks_served_total`, `peercache_handed_over_total`, `peercache_handoff_received_total` | counter | `group` |
//! | `peercache_hints_pending` | gauge | `group` |
//! | `groupcache_cache_bytes`, `groupcache_cache_items` | gauge | `group`, `type` (`main`, `hot`) |
//! | `groupcache_cache_gets_total`, `groupcache_cache_hits_total`, `groupcache_cache_evictions_total`, `peercache_cache_aged_total` | counter | `group`, `type` |
//! | `groupcache_load_duration_seconds` | histogram | `group`, `outcome` (`ok`, `not_found`, `error`) |
//! | `groupcache_peer_fetch_duration_seconds` | histogram | `group`, `outcome` (`ok`, `not_found`, `error`, `unavailable`) |
//! | `groupcache_peer_up` | gauge (1 in the ring, 0 out of it) | `peer` |
//! | `groupcache_peer_failures_total`, `groupcache_peer_times_down_total` | counter | `peer` |
//!
//! The first rows are mailgun's; the histograms and peer health are
//! peercache's own. [`describe`] registers their help texts.
//!
//! # With Prometheus
//!
//! With `metrics-exporter-prometheus`, two settings are yours to make, or the
//! table above is not what a scrape shows:
//!
//! - **Buckets.** The exporter renders a histogram as a Prometheus
//!   *summary* (quantiles computed on this node, no `_bucket` series, which
//!   cannot be added up across nodes) unless buckets are set for it. Set
//!   them for the `_duration_seconds` suffix, e.g. [`DURATION_BUCKETS`] (what
//!   `peercache-server` uses), to get `groupcache_load_duration_seconds_bucket`
//!   and `groupcache_peer_fetch_duration_seconds_bucket`.
//! - **Upkeep.** The recorder keeps every histogram sample until its upkeep
//!   folds them into the buckets. `PrometheusBuilder::install` (with the
//!   exporter's own HTTP listener, its default feature) runs the upkeep
//!   itself; `install_recorder` and `build_recorder`, which you use when your
//!   own route serves `/metrics`, do not: call `PrometheusHandle::run_upkeep`
//!   on a timer (`peercache-server` does every 5 s). A render also runs it,
//!   but a node nobody scrapes would otherwise keep every sample, about 10
//!   bytes for each load and peer fetch, for ever.
//!
//! Then call [`describe`] once and, before each render, [`record`] (and
//! [`record_peers`] with an HTTP pool). `peercache/examples/prometheus.rs`
//! does all of it and prints the text (`cargo run -p peercache --example
//! prometheus`). Without a recorder installed these calls do nothing.
//!
//! ```
//! use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
//! use peercache::http::{HttpOptions, HttpPool};
//! use peercache::{loader_fn, Node};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // At start-up, within the runtime:
//! let prometheus = PrometheusBuilder::new()
//!     .set_buckets_for_metric(
//!         Matcher::Suffix("_duration_seconds".to_owned()),
//!         peercache::metrics::DURATION_BUCKETS,
//!     )?
//!     .install_recorder()?;
//! peercache::metrics::describe();
//! let upkeep = prometheus.clone();
//! tokio::spawn(async move {
//!     let mut every = tokio::time::interval(Duration::from_secs(5));
//!     loop {
//!         every.tick().await;
//!         upkeep.run_upkeep();
//!     }
//! });
//!
//! let pool = HttpPool::new("http://10.0.0.1:8080", HttpOptions::default())?;
//! let node = Node::with_picker(pool.clone());
//! node.new_group("pages", 64 << 20, loader_fn(|k: String| async move { Ok(k) }))?;
//!
//! // In the scrape handler:
//! peercache::metrics::record(&node); // every group's counters and cache gauges
//! peercache::metrics::record_peers(&pool.peer_status()); // groupcache_peer_up, ...
//! let text = prometheus.render(); // the body of GET /metrics
//! assert!(text.contains("groupcache_gets_total{group=\"pages\"} 0"));
//! # Ok(())
//! # }
//! ```

use crate::health::{PeerState, PeerStatus};
use crate::{GroupStats, Node};
use std::sync::Arc;
use std::time::Duration;

/// Bucket bounds, in seconds, for the `_duration_seconds` histograms: 0.5 ms
/// to 10 s, what `peercache-server` sets. A loader that takes milliseconds
/// falls in the first buckets; a peer fetch that hits the request timeout
/// (5 s by default) in the last ones.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Registers the help text of every metric with the installed recorder.
/// Call once, after installing it.
pub fn describe() {
    for (name, help) in GROUP_COUNTERS {
        metrics::describe_counter!(*name, *help);
    }
    metrics::describe_gauge!(
        "groupcache_cache_bytes",
        "Bytes held by the cache (key + value)."
    );
    metrics::describe_gauge!("groupcache_cache_items", "Entries held by the cache.");
    metrics::describe_counter!("groupcache_cache_gets_total", "Lookups in the cache.");
    metrics::describe_counter!("groupcache_cache_hits_total", "Lookups that found the key.");
    metrics::describe_counter!(
        "groupcache_cache_evictions_total",
        "Entries evicted to stay within the byte budget."
    );
    metrics::describe_counter!(
        "peercache_cache_aged_total",
        "Hot copies dropped for being older than the hot copies' maximum age."
    );
    metrics::describe_gauge!(
        "peercache_hints_pending",
        "Changes waiting for peers that did not answer them (keys, and purges)."
    );
    metrics::describe_histogram!(
        "groupcache_load_duration_seconds",
        metrics::Unit::Seconds,
        "Time of this node's loader for one key."
    );
    metrics::describe_histogram!(
        "groupcache_peer_fetch_duration_seconds",
        metrics::Unit::Seconds,
        "Time to fetch one key from its owner."
    );
    metrics::describe_gauge!(
        "groupcache_peer_up",
        "1 while the peer is in the ring, 0 while it is out and probed."
    );
    metrics::describe_counter!(
        "groupcache_peer_failures_total",
        "Failed exchanges with the peer."
    );
    metrics::describe_counter!(
        "groupcache_peer_times_down_total",
        "Times the peer was taken out of the ring."
    );
}

/// mailgun's per-group counters, with their help texts.
const GROUP_COUNTERS: &[(&str, &str)] = &[
    (
        "groupcache_gets_total",
        "Gets of the group, from any source.",
    ),
    (
        "groupcache_hits_total",
        "Gets answered from this node's caches.",
    ),
    (
        "groupcache_loads_total",
        "Gets that missed both caches (a load or a peer fetch).",
    ),
    (
        "groupcache_loads_deduped_total",
        "Loads started (here or from the owner): concurrent gets of a key share one.",
    ),
    (
        "groupcache_local_loads_total",
        "Values loaded by this node's loader.",
    ),
    (
        "groupcache_local_load_errs_total",
        "Failed loads by this node's loader.",
    ),
    (
        "groupcache_peer_loads_total",
        "Values fetched from their owner.",
    ),
    (
        "groupcache_peer_errors_total",
        "Failed fetches from an owner.",
    ),
    (
        "groupcache_server_requests_total",
        "Keys asked by peers and served by this node.",
    ),
    (
        "peercache_server_batches_total",
        "Batch requests from peers served by this node.",
    ),
    (
        "peercache_loads_refused_total",
        "Keys not loaded: the group's loads were at their cap for the whole wait.",
    ),
    (
        "peercache_loads_failed_fast_total",
        "Keys not loaded: the group's origin breaker was open.",
    ),
    (
        "peercache_stale_served_total",
        "Expired values served at once while a refresh ran (stale-while-revalidate).",
    ),
    (
        "peercache_stale_if_error_total",
        "Expired values served because their load failed (stale-if-error).",
    ),
    (
        "peercache_refreshes_total",
        "Background refreshes started for values served stale.",
    ),
    (
        "peercache_negative_hits_total",
        "Gets answered not-found from a cached not-found.",
    ),
    (
        "peercache_hints_delivered_total",
        "Changes delivered to a peer after it missed them (keys, and purges).",
    ),
    (
        "peercache_hints_collapsed_total",
        "Times the changes kept for a peer went past their bound and became a purge.",
    ),
    (
        "peercache_peeks_total",
        "Peeks sent: a key's previous owner asked for its cached value before a load.",
    ),
    (
        "peercache_peek_hits_total",
        "Peeks answered with a value: origin loads saved.",
    ),
    (
        "peercache_peek_misses_total",
        "Peeks that brought no value (not held there, or the peer failed).",
    ),
    (
        "peercache_peeks_served_total",
        "Peers' peeks this node answered with a value.",
    ),
    (
        "peercache_handed_over_total",
        "Values this node handed to their new owners as it left, and they kept.",
    ),
    (
        "peercache_handoff_received_total",
        "Values a leaving peer handed over that this node kept.",
    ),
];

/// Copies the counters of every group of `node` into the installed
/// recorder. Call before each scrape.
pub fn record(node: &Node) {
    for stats in node.stats() {
        record_group(&stats);
    }
}

/// Copies one group's counters into the installed recorder.
pub fn record_group(stats: &GroupStats) {
    let group = stats.name.clone();
    let counts = [
        stats.gets,
        stats.cache_hits,
        stats.loads,
        stats.loads_deduped,
        stats.local_loads,
        stats.local_load_errs,
        stats.peer_loads,
        stats.peer_errors,
        stats.server_requests,
        stats.server_batches,
        stats.loads_refused,
        stats.loads_failed_fast,
        stats.stale_served,
        stats.stale_if_error,
        stats.refreshes,
        stats.negative_hits,
        stats.hints_delivered,
        stats.hints_collapsed,
        stats.peeks,
        stats.peek_hits,
        stats.peek_misses,
        stats.peeks_served,
        stats.handed_over,
        stats.handoff_received,
    ];
    for ((name, _), count) in GROUP_COUNTERS.iter().zip(counts) {
        metrics::counter!(*name, "group" => group.clone()).absolute(count);
    }
    for (kind, cache) in [("main", &stats.main_cache), ("hot", &stats.hot_cache)] {
        let labels = [("group", group.clone()), ("type", kind.to_owned())];
        metrics::gauge!("groupcache_cache_bytes", &labels).set(cache.bytes as f64);
        metrics::gauge!("groupcache_cache_items", &labels).set(cache.items as f64);
        metrics::counter!("groupcache_cache_gets_total", &labels).absolute(cache.gets);
        metrics::counter!("groupcache_cache_hits_total", &labels).absolute(cache.hits);
        metrics::counter!("groupcache_cache_evictions_total", &labels).absolute(cache.evictions);
        metrics::counter!("peercache_cache_aged_total", &labels).absolute(cache.aged);
    }
    metrics::gauge!("peercache_hints_pending", "group" => group).set(stats.hints_pending as f64);
}

/// Copies the peers' health (as [`crate::http::HttpPool::peer_status`]
/// reports it) into the installed recorder. This node itself is skipped.
pub fn record_peers(peers: &[PeerStatus]) {
    for peer in peers.iter().filter(|p| p.state != PeerState::Myself) {
        let label = [("peer", peer.peer.clone())];
        let up = if peer.state == PeerState::Up {
            1.0
        } else {
            0.0
        };
        metrics::gauge!("groupcache_peer_up", &label).set(up);
        metrics::counter!("groupcache_peer_failures_total", &label).absolute(peer.failures);
        metrics::counter!("groupcache_peer_times_down_total", &label).absolute(peer.times_down);
    }
}

/// The keys of one group's histograms of load (or fetch) durations, one
/// per outcome (`ok`, `not_found`, `error`), made once with the group.
/// Recording then builds no key (a `Vec` of labels and a count on the
/// group's name each time, with `histogram!`), yet still asks the recorder
/// in place at that moment, so one installed later, or a thread's local
/// one, gets the samples.
pub(crate) struct Durations {
    keys: [metrics::Key; 3],
}

/// What `histogram!` gives its metrics from this module.
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl Durations {
    /// Load durations of this node's loader for `group`
    /// (`groupcache_load_duration_seconds`).
    pub(crate) fn of_loads(group: &Arc<str>) -> Self {
        Self::new("groupcache_load_duration_seconds", group)
    }

    /// Durations of fetches from owners for `group`
    /// (`groupcache_peer_fetch_duration_seconds`).
    pub(crate) fn of_fetches(group: &Arc<str>) -> Self {
        Self::new("groupcache_peer_fetch_duration_seconds", group)
    }

    fn new(name: &'static str, group: &Arc<str>) -> Self {
        let key = |outcome: &'static str| {
            let labels = vec![
                metrics::Label::new("group", Arc::clone(group)),
                metrics::Label::new("outcome", outcome),
            ];
            metrics::Key::from_parts(name, labels)
        };
        Durations {
            keys: [key("ok"), key("not_found"), key("error")],
        }
    }

    /// Records one duration with its outcome: `ok`, `not_found`, or any
    /// other (counted as `error`).
    pub(crate) fn record(&self, outcome: &'static str, took: Duration) {
        let key = match outcome {
            "ok" => &self.keys[0],
            "not_found" => &self.keys[1],
            _ => &self.keys[2],
        };
        metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA))
            .record(took.as_secs_f64());
    }
}
