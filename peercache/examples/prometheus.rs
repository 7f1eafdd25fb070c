//! Prometheus metrics for a node, with `metrics-exporter-prometheus`: the
//! recorder installed with buckets for the `_duration_seconds` histograms
//! (without them the exporter renders summaries, with no `_bucket` lines)
//! and an upkeep timer (without it, histogram samples pile up on a node
//! nobody scrapes), a few gets, then the text a `GET /metrics` would serve.
//!
//! Run it with `cargo run -p peercache --example prometheus`. It serves
//! nothing and exits; in a service, `scrape` is the body of the `/metrics`
//! route (see the `axum` example for a node inside an axum service).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use peercache::{loader_fn, LoadError, Node};
use std::time::Duration;

/// How often the recorder folds histogram samples into its buckets.
const UPKEEP: Duration = Duration::from_secs(5);

/// Installs the recorder once, at start-up, from within the runtime.
fn install_metrics() -> Result<PrometheusHandle, Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new()
        // Histograms, not summaries: buckets for every `_duration_seconds`
        // metric (0.5 ms to 10 s).
        .set_buckets_for_metric(
            Matcher::Suffix("_duration_seconds".to_owned()),
            peercache::metrics::DURATION_BUCKETS,
        )?
        .install_recorder()?;
    peercache::metrics::describe();

    // `install_recorder` leaves the upkeep to us (`install`, with the
    // exporter's own HTTP listener, runs it itself). A render runs it too,
    // but a node nobody scrapes would keep every sample.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// What the `/metrics` route does: copy the groups' counters into the
/// recorder, then render. (A node with an `HttpPool` also calls
/// `peercache::metrics::record_peers(&pool.peer_status())`.)
fn scrape(node: &Node, metrics: &PrometheusHandle) -> String {
    peercache::metrics::record(node);
    metrics.render()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let metrics = install_metrics()?;

    let node = Node::new();
    let colors = node.new_group(
        "colors",
        64 << 20,
        loader_fn(|name: String| async move {
            tokio::time::sleep(Duration::from_millis(3)).await; // the "database"
            match name.as_str() {
                "red" => Ok("#FF0000"),
                "green" => Ok("#00FF00"),
                _ => Err(LoadError::NotFound),
            }
        }),
    )?;
    for name in ["red", "green", "red", "mauve", "red"] {
        let _ = colors.get(name).await;
    }

    let text = scrape(&node, &metrics);
    print!("{text}");

    let buckets = text
        .lines()
        .filter(|line| line.starts_with("groupcache_load_duration_seconds_bucket{"))
        .count();
    if buckets == 0 {
        return Err("no groupcache_load_duration_seconds_bucket lines: are buckets set?".into());
    }
    eprintln!("\n{buckets} groupcache_load_duration_seconds_bucket lines");
    Ok(())
}
