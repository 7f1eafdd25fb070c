//! The tracing spans of a group: a miss, a load, a fetch from the owner and
//! the changes each leave one span with group, key (as `KeyInTraces` says),
//! outcome and duration; a hit leaves none.

use peercache::in_process::InProcessNetwork;
use peercache::ring::{HashMode, Ring, DEFAULT_REPLICAS};
use peercache::{loader_fn, KeyInTraces, LoadError, Node, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// A closed span: its name and fields.
#[derive(Debug, Clone)]
struct Closed {
    name: String,
    fields: BTreeMap<String, String>,
}

impl Closed {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// Records every span's fields, and the span when it closes.
#[derive(Clone, Default)]
struct Capture {
    open: Arc<Mutex<BTreeMap<u64, Closed>>>,
    closed: Arc<Mutex<Vec<Closed>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut closed = Closed {
            name: attrs.metadata().name().to_owned(),
            fields: BTreeMap::new(),
        };
        attrs.record(&mut Fields(&mut closed.fields));
        self.open.lock().unwrap().insert(id.into_u64(), closed);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(span) = self.open.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }
    fn on_close(&self, id: Id, _: Context<'_, S>) {
        if let Some(span) = self.open.lock().unwrap().remove(&id.into_u64()) {
            self.closed.lock().unwrap().push(span);
        }
    }
}

impl Capture {
    fn take(&self) -> Vec<Closed> {
        std::mem::take(&mut *self.closed.lock().unwrap())
    }
}

fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let guard = tracing::subscriber::set_default(subscriber);
    (capture, guard)
}

fn source() -> impl peercache::Loader {
    loader_fn(|key: String| async move {
        if key.starts_with("missing") {
            Err(LoadError::NotFound)
        } else {
            Ok(Value::from(format!("value of {key}")))
        }
    })
}

fn named<'a>(spans: &'a [Closed], name: &str) -> Vec<&'a Closed> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[tokio::test]
async fn a_miss_and_its_load_are_traced_and_a_hit_is_not() {
    let (capture, _guard) = capture();
    let node = Node::new();
    let group = node.new_group("g", 1 << 20, source()).unwrap();
    group.get("user:42").await.unwrap();
    let spans = capture.take();
    for name in ["peercache.get", "peercache.load"] {
        let found = named(&spans, name);
        assert_eq!(found.len(), 1, "{name}: {spans:?}");
        let span = found[0];
        assert_eq!(span.field("group"), Some("g"));
        assert_eq!(span.field("key"), Some("user:42"));
        assert_eq!(span.field("outcome"), Some("ok"));
        assert!(span.field("duration_us").is_some(), "{span:?}");
    }
    group.get("user:42").await.unwrap();
    assert!(capture.take().is_empty(), "a hit left a span");
    let _ = group.get("missing-1").await;
    let spans = capture.take();
    assert_eq!(
        named(&spans, "peercache.get")[0].field("outcome"),
        Some("not_found")
    );
}

#[tokio::test]
async fn hashed_and_hidden_keys_never_show_the_key() {
    let (capture, _guard) = capture();
    let node = Node::new();
    let hashed = node
        .group_builder("hashed")
        .key_in_traces(KeyInTraces::Hashed)
        .build(source())
        .unwrap();
    let hidden = node
        .group_builder("hidden")
        .key_in_traces(KeyInTraces::Hidden)
        .build(source())
        .unwrap();
    hashed.get("user:42").await.unwrap();
    hidden.get("user:42").await.unwrap();
    hashed.set("user:7", "x", None).await.unwrap();
    let spans = capture.take();
    assert!(spans.len() >= 5, "{spans:?}");
    for span in &spans {
        let key = span.field("key").unwrap_or_default();
        assert!(!key.contains("user"), "{span:?}");
        match span.field("group") {
            Some("hashed") => assert!(key.starts_with("sha256:"), "{span:?}"),
            Some("hidden") => assert_eq!(key, "-"),
            other => panic!("unexpected group {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_fetch_from_the_owner_and_a_change_name_the_peer() {
    let (capture, _guard) = capture();
    let network = InProcessNetwork::new();
    let a = network.node("a", &["a", "b"]).unwrap();
    let b = network.node("b", &["a", "b"]).unwrap();
    let ga = a.new_group("g", 1 << 20, source()).unwrap();
    b.new_group("g", 1 << 20, source()).unwrap();
    let ring = Ring::with_peers(HashMode::Golang, DEFAULT_REPLICAS, ["a", "b"]).unwrap();
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| ring.owner(k) == Some("b"))
        .unwrap();
    ga.get(&key).await.unwrap();
    let spans = capture.take();
    let fetch = named(&spans, "peercache.peer_fetch");
    assert_eq!(fetch.len(), 1, "{spans:?}");
    assert_eq!(fetch[0].field("peer"), Some("b"));
    assert_eq!(fetch[0].field("outcome"), Some("ok"));
    // The owner's load, answering the fetch, is traced on its side.
    assert_eq!(named(&spans, "peercache.serve_peer").len(), 1, "{spans:?}");

    network.set_down("b", true);
    let error = ga.remove(&key).await.unwrap_err();
    assert!(matches!(error, peercache::Error::PeersFailed { .. }));
    let spans = capture.take();
    let remove = named(&spans, "peercache.remove");
    assert_eq!(remove.len(), 1, "{spans:?}");
    assert_eq!(remove[0].field("outcome"), Some("partial"));
    assert_eq!(remove[0].field("failed_peers"), Some("b"));
}
