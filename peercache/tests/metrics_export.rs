//! The metrics module's docs, followed with `metrics-exporter-prometheus`:
//! with buckets set for `_duration_seconds` (and the upkeep run), the load
//! latency renders as a Prometheus histogram (`_bucket` lines, one per bound
//! and `+Inf`), and the counters copied by `record` match the group's stats.
//! Without the buckets the exporter renders a summary and this test fails.
//!
//! The recorder is process-global: this file holds one test.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use peercache::{loader_fn, LoadError, Node};
use std::time::Duration;

/// The value of the one line of `text` that starts with `series` and a space.
fn value_of(text: &str, series: &str) -> f64 {
    let values: Vec<f64> = text
        .lines()
        .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
        .collect();
    assert_eq!(values.len(), 1, "{series} in:\n{text}");
    values[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_latency_renders_as_a_histogram_with_buckets() {
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_duration_seconds".to_owned()),
            peercache::metrics::DURATION_BUCKETS,
        )
        .unwrap()
        .install_recorder()
        .unwrap();
    peercache::metrics::describe();

    let node = Node::new();
    let colors = node
        .new_group(
            "colors",
            1 << 20,
            loader_fn(|name: String| async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                match name.as_str() {
                    "red" | "green" => Ok(name),
                    _ => Err(LoadError::NotFound),
                }
            }),
        )
        .unwrap();
    for name in ["red", "green", "red", "mauve", "red"] {
        let _ = colors.get(name).await;
    }
    // What the upkeep timer does: fold the samples into the buckets.
    prometheus.run_upkeep();
    peercache::metrics::record(&node);
    let text = prometheus.render();

    assert!(
        text.contains("# TYPE groupcache_load_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        !text.contains("groupcache_load_duration_seconds{"),
        "a summary's quantile lines:\n{text}"
    );
    let ok = r#"groupcache_load_duration_seconds_bucket{group="colors",outcome="ok",le="#;
    let buckets: Vec<&str> = text.lines().filter(|l| l.starts_with(ok)).collect();
    assert_eq!(
        buckets.len(),
        peercache::metrics::DURATION_BUCKETS.len() + 1,
        "one _bucket line per bound and +Inf:\n{text}"
    );
    // Two loads took at least 2 ms: none under 1 ms, both under +Inf.
    let ok = r#"groupcache_load_duration_seconds_bucket{group="colors",outcome="ok""#;
    assert_eq!(value_of(&text, &format!(r#"{ok},le="0.001"}}"#)), 0.0);
    assert_eq!(value_of(&text, &format!(r#"{ok},le="+Inf"}}"#)), 2.0);
    let count = r#"groupcache_load_duration_seconds_count{group="colors",outcome="ok"}"#;
    assert_eq!(value_of(&text, count), 2.0);
    let not_found = r#"groupcache_load_duration_seconds_count{group="colors",outcome="not_found"}"#;
    assert_eq!(value_of(&text, not_found), 1.0);

    // The counters are the group's stats.
    let stats = colors.stats();
    for (series, expected) in [
        ("groupcache_gets_total", stats.gets),
        ("groupcache_hits_total", stats.cache_hits),
        ("groupcache_loads_total", stats.loads),
        ("groupcache_loads_deduped_total", stats.loads_deduped),
        ("groupcache_local_loads_total", stats.local_loads),
    ] {
        let series = format!(r#"{series}{{group="colors"}}"#);
        assert_eq!(value_of(&text, &series), expected as f64, "{series}");
    }
    assert_eq!((stats.gets, stats.cache_hits, stats.loads), (5, 2, 3));
}
