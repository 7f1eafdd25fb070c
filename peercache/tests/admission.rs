//! Load admission (`GroupBuilder::max_concurrent_loads`): a burst of
//! distinct misses never has more loader calls running than the cap; the
//! rest wait for a place or, past the wait, fail with `Error::Overloaded`;
//! nothing hangs, and merged gets of one key take one place.

use peercache::{batch_loader_fn, loader_fn, Error, Group, LoadError, Node};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// Polls `condition` until it holds, within [`WAIT`].
async fn until(what: &str, condition: impl Fn() -> bool) {
    let waited = tokio::time::timeout(WAIT, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

/// Loader calls running now, the most seen at once, and calls made.
#[derive(Default)]
struct Origin {
    running: AtomicUsize,
    most: AtomicUsize,
    calls: AtomicUsize,
}

impl Origin {
    fn enter(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A group capped at `limit` loads with `wait`, whose loader holds until
/// `gate` gives it a permit.
fn gated(limit: usize, wait: Duration) -> (Group, Arc<Origin>, Arc<Semaphore>) {
    let origin = Arc::new(Origin::default());
    let gate = Arc::new(Semaphore::new(0));
    let (o, g) = (Arc::clone(&origin), Arc::clone(&gate));
    let group = Node::new()
        .group_builder("g")
        .max_concurrent_loads(limit, wait)
        .build(loader_fn(move |key: String| {
            let (origin, gate) = (Arc::clone(&o), Arc::clone(&g));
            async move {
                origin.enter();
                gate.acquire().await.unwrap().forget();
                origin.leave();
                Ok::<_, LoadError>(format!("v:{key}"))
            }
        }))
        .unwrap();
    (group, origin, gate)
}

fn burst(group: &Group, keys: usize) -> tokio::task::JoinSet<Result<peercache::Value, Error>> {
    let mut gets = tokio::task::JoinSet::new();
    for i in 0..keys {
        let group = group.clone();
        gets.spawn(async move { group.get(&format!("key-{i}")).await });
    }
    gets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_100_misses_runs_at_most_8_loads_and_the_rest_wait() {
    let (group, origin, gate) = gated(8, WAIT * 6);
    let mut gets = burst(&group, 100);
    until("8 loads run", || origin.running.load(Ordering::SeqCst) == 8).await;
    // A merged get of a key being loaded takes no place.
    let joined = {
        let group = group.clone();
        tokio::spawn(async move { group.get("key-0").await })
    };
    gate.add_permits(100);
    let mut answered = 0;
    while let Some(get) = tokio::time::timeout(WAIT, gets.join_next()).await.unwrap() {
        assert!(get
            .unwrap()
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("v:key-"));
        answered += 1;
    }
    assert_eq!(answered, 100);
    assert_eq!(
        text(tokio::time::timeout(WAIT, joined).await.unwrap().unwrap()),
        "v:key-0"
    );
    assert_eq!(
        origin.most.load(Ordering::SeqCst),
        8,
        "never more than the cap"
    );
    assert_eq!(origin.calls.load(Ordering::SeqCst), 100);
    assert_eq!(group.stats().loads_refused, 0);
}

fn text(answer: Result<peercache::Value, Error>) -> String {
    answer.unwrap().as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_wait_a_load_is_refused_with_overloaded_and_nothing_hangs() {
    let (group, origin, gate) = gated(8, Duration::ZERO);
    let mut gets = burst(&group, 100);
    let mut refused = Vec::new();
    // Every get over the cap ends at once, refused; the 8 admitted wait
    // for the gate.
    until("92 gets refused", || group.stats().loads_refused == 92).await;
    gate.add_permits(8);
    while let Some(get) = tokio::time::timeout(WAIT, gets.join_next()).await.unwrap() {
        match get.unwrap() {
            Ok(value) => assert!(value.as_str().unwrap().starts_with("v:key-")),
            Err(Error::Overloaded {
                limit, wait, key, ..
            }) => {
                assert_eq!((limit, wait), (8, Duration::ZERO));
                assert!(key.starts_with("key-"));
                refused.push(key);
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(refused.len(), 92);
    assert_eq!(origin.most.load(Ordering::SeqCst), 8);
    assert_eq!(origin.calls.load(Ordering::SeqCst), 8);
    // Not cached: with room again, a refused key loads.
    gate.add_permits(1);
    let again = tokio::time::timeout(WAIT, group.get(&refused[0]))
        .await
        .unwrap();
    assert_eq!(text(again), format!("v:{}", refused[0]));
    assert_eq!(origin.calls.load(Ordering::SeqCst), 9);
    let message = Error::Overloaded {
        group: "g".into(),
        key: "k".into(),
        limit: 8,
        wait: Duration::ZERO,
    }
    .to_string();
    assert!(message.contains("max_concurrent_loads"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_takes_one_place_for_its_one_loader_call() {
    let origin = Arc::new(Origin::default());
    let gate = Arc::new(Semaphore::new(0));
    let (o, g) = (Arc::clone(&origin), Arc::clone(&gate));
    let group = Node::new()
        .group_builder("g")
        .max_concurrent_loads(1, Duration::ZERO)
        .build(batch_loader_fn(move |keys: Vec<String>| {
            let (origin, gate) = (Arc::clone(&o), Arc::clone(&g));
            async move {
                origin.enter();
                gate.acquire().await.unwrap().forget();
                origin.leave();
                Ok::<_, LoadError>(keys.into_iter().map(|k| (k.clone(), k)).collect::<Vec<_>>())
            }
        }))
        .unwrap();
    let batch = {
        let group = group.clone();
        tokio::spawn(async move { group.get_many(&["a", "b", "c"]).await })
    };
    until("the batch's call runs", || {
        origin.running.load(Ordering::SeqCst) == 1
    })
    .await;
    // The one place is taken: a single get and another batch are refused.
    assert!(matches!(
        group.get("d").await,
        Err(Error::Overloaded { .. })
    ));
    let other = group.get_many(&["e", "f"]).await;
    assert!(other
        .iter()
        .all(|a| matches!(a, Err(Error::Overloaded { .. }))));
    assert_eq!(group.stats().loads_refused, 3);
    gate.add_permits(1);
    let batch = tokio::time::timeout(WAIT, batch).await.unwrap().unwrap();
    assert!(batch.iter().all(Result::is_ok));
    assert_eq!(origin.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_cap_of_zero_is_refused_naming_the_setting() {
    let error = Node::new()
        .group_builder("g")
        .max_concurrent_loads(0, Duration::from_secs(1))
        .build(loader_fn(|k: String| async move { Ok(k) }))
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::InvalidSetting {
                setting: "max_concurrent_loads",
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_asking_an_owner_at_its_cap_gets_the_error_and_loads_nothing() {
    use peercache::http::{HttpOptions, HttpPool};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let owner_url = format!("http://{}", listener.local_addr().unwrap());
    let asker_url = "http://127.0.0.1:9"; // never asked: it only fetches
    let urls = [owner_url.as_str(), asker_url];
    let owner_pool = HttpPool::new(&owner_url, HttpOptions::default()).unwrap();
    owner_pool.set_peers(urls).unwrap();
    let owner = Node::with_picker(owner_pool.clone());
    let origin = Arc::new(Origin::default());
    let gate = Arc::new(Semaphore::new(0));
    let (o, g) = (Arc::clone(&origin), Arc::clone(&gate));
    owner
        .group_builder("g")
        .max_concurrent_loads(1, Duration::ZERO)
        .build(loader_fn(move |key: String| {
            let (origin, gate) = (Arc::clone(&o), Arc::clone(&g));
            async move {
                origin.enter();
                gate.acquire().await.unwrap().forget();
                origin.leave();
                Ok::<_, LoadError>(key)
            }
        }))
        .unwrap();
    tokio::spawn(peercache::http::serve(
        listener,
        owner_pool.service(owner.clone()),
    ));
    let asker_pool = HttpPool::new(asker_url, HttpOptions::default()).unwrap();
    asker_pool.set_peers(urls).unwrap();
    let asker_loads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&asker_loads);
    let asker = Node::with_picker(asker_pool.clone())
        .new_group(
            "g",
            1 << 20,
            loader_fn(move |key: String| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, LoadError>(key) }
            }),
        )
        .unwrap();
    let owned: Vec<String> = (0..200)
        .map(|i| format!("k{i}"))
        .filter(|k| asker_pool.owner(k) == owner_url)
        .take(2)
        .collect();
    let first = {
        let asker = asker.clone();
        let key = owned[0].clone();
        tokio::spawn(async move { asker.get(&key).await })
    };
    until("the owner loads the first key", || {
        origin.running.load(Ordering::SeqCst) == 1
    })
    .await;
    let refused = tokio::time::timeout(WAIT, asker.get(&owned[1]))
        .await
        .unwrap();
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("max_concurrent_loads"), "{message}");
    assert_eq!(
        asker_loads.load(Ordering::SeqCst),
        0,
        "the asker loaded nothing itself"
    );
    gate.add_permits(1);
    let first = tokio::time::timeout(WAIT, first).await.unwrap().unwrap();
    assert_eq!(text(first), owned[0]);
    assert_eq!(owner.group("g").unwrap().stats().loads_refused, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_in_process_transport_too_the_asker_loads_nothing() {
    use peercache::in_process::InProcessNetwork;
    use peercache::ring::{HashMode, Ring};
    let network = InProcessNetwork::new();
    // Both rings hold only "b": every key is b's.
    let ring = || Ring::with_peers(HashMode::Golang, 50, ["b"]).unwrap();
    let owner = network.node_with_ring("b", ring());
    let asker = network.node_with_ring("a", ring());
    let origin = Arc::new(Origin::default());
    let gate = Arc::new(Semaphore::new(0));
    let (o, g) = (Arc::clone(&origin), Arc::clone(&gate));
    owner
        .group_builder("g")
        .max_concurrent_loads(1, Duration::ZERO)
        .build(loader_fn(move |key: String| {
            let (origin, gate) = (Arc::clone(&o), Arc::clone(&g));
            async move {
                origin.enter();
                gate.acquire().await.unwrap().forget();
                origin.leave();
                Ok::<_, LoadError>(key)
            }
        }))
        .unwrap();
    let asker_loads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&asker_loads);
    let group = asker
        .new_group(
            "g",
            1 << 20,
            loader_fn(move |key: String| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, LoadError>(key) }
            }),
        )
        .unwrap();
    let first = {
        let group = group.clone();
        tokio::spawn(async move { group.get("k1").await })
    };
    until("the owner loads k1", || {
        origin.running.load(Ordering::SeqCst) == 1
    })
    .await;
    let refused = group.get("k2").await.unwrap_err().to_string();
    assert!(refused.contains("max_concurrent_loads"), "{refused}");
    assert_eq!(asker_loads.load(Ordering::SeqCst), 0);
    gate.add_permits(1);
    let first = tokio::time::timeout(WAIT, first).await.unwrap().unwrap();
    assert_eq!(text(first), "k1");
}
