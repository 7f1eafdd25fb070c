//! The crate's counters: it reports them through the `metrics` facade
//! only, so a small recorder installed by `main.rs` keeps the ones it emits
//! (names from groupcache 0.3.0's `metrics` module) for `/stats`.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// The counters the crate emits through the `metrics` facade (names from
/// groupcache 0.3.0's `metrics` module), under the `/stats` field names.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) gets: Arc<AtomicU64>,
    pub(crate) server_requests: Arc<AtomicU64>,
    pub(crate) cache_hits: Arc<AtomicU64>,
    pub(crate) local_loads: Arc<AtomicU64>,
    pub(crate) local_load_errs: Arc<AtomicU64>,
    pub(crate) peer_loads: Arc<AtomicU64>,
    pub(crate) peer_errors: Arc<AtomicU64>,
}

impl Counters {
    fn counter(&self, name: &str) -> Option<&Arc<AtomicU64>> {
        Some(match name {
            "groupcache_get_total" => &self.gets,
            "groupcache_get_server_requests_total" => &self.server_requests,
            "groupcache_local_cache_hit_total" => &self.cache_hits,
            "groupcache_local_load_total" => &self.local_loads,
            "groupcache_local_load_errors" => &self.local_load_errs,
            "groupcache_remote_load_total" => &self.peer_loads,
            "groupcache_remote_load_errors" => &self.peer_errors,
            _ => return None,
        })
    }
}

/// A `metrics` recorder that keeps the crate's counters in [`Counters`]
/// and drops everything else.
pub(crate) struct Recorder(pub(crate) Arc<Counters>);

impl metrics::Recorder for Recorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        match self.0.counter(key.name()) {
            Some(counter) => metrics::Counter::from_arc(Arc::clone(counter)),
            None => metrics::Counter::noop(),
        }
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}
