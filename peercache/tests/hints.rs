//! Changes that miss a peer: the change timeout (a hung non-owner does not
//! hold a write), the pending report, the hints kept for the peer and
//! delivered when it answers, their supersession, their bound (collapse
//! into a purge), and peers that refuse. Peers here are scripted: each can
//! be up, down (unreachable at once), hung (never answers) or refusing,
//! and records what it was sent. Time is tokio's paused clock: timeouts
//! pass without waiting.

use peercache::{loader_fn, BoxFuture, FetchError, Group, HintLimits, Node, Peer, PeerError};
use peercache::{PeerPicker, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Up,
    Down,
    Hung,
    Refusing,
}

/// What a scripted peer was sent and carried out.
#[derive(Default, Debug)]
struct Seen {
    removed: Vec<String>,
    purges: u32,
    sets: Vec<String>,
    /// Keys whose copies (not owned values) were dropped: the second round.
    copies_dropped: Vec<String>,
    /// Times every copy was dropped: the second round of a purge.
    all_copies_dropped: u32,
}

struct Scripted {
    id: String,
    mode: Mutex<Mode>,
    seen: Mutex<Seen>,
}

impl Scripted {
    fn new(id: &str) -> Arc<Self> {
        Arc::new(Scripted {
            id: id.to_owned(),
            mode: Mutex::new(Mode::Up),
            seen: Mutex::new(Seen::default()),
        })
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Carries out a change as the mode says.
    fn change<'a>(
        &'a self,
        record: impl FnOnce(&mut Seen) + Send + 'a,
    ) -> BoxFuture<'a, Result<(), PeerError>> {
        let mode = *self.mode.lock().unwrap();
        Box::pin(async move {
            match mode {
                Mode::Up => {
                    record(&mut self.seen.lock().unwrap());
                    Ok(())
                }
                Mode::Down => Err(PeerError::unreachable("connection refused")),
                Mode::Hung => std::future::pending().await,
                Mode::Refusing => Err(PeerError::refused("answered 405")),
            }
        })
    }
}

impl Peer for Scripted {
    fn id(&self) -> &str {
        &self.id
    }
    fn fetch<'a>(&'a self, _: &'a str, key: &'a str) -> BoxFuture<'a, Result<Value, FetchError>> {
        Box::pin(async move { Ok(Value::from(format!("{key} from {}", self.id))) })
    }
    fn remove<'a>(
        &'a self,
        _: &'a str,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<(), PeerError>> {
        self.change(move |seen| seen.removed.extend(keys.iter().cloned()))
    }
    fn set<'a>(
        &'a self,
        _: &'a str,
        key: &'a str,
        _: &'a Value,
    ) -> BoxFuture<'a, Result<(), PeerError>> {
        self.change(move |seen| seen.sets.push(key.to_owned()))
    }
    fn purge<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), PeerError>> {
        self.change(|seen| seen.purges += 1)
    }
    fn drop_all_copies<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), PeerError>> {
        self.change(|seen| seen.all_copies_dropped += 1)
    }
    fn drop_copies<'a>(
        &'a self,
        _: &'a str,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<(), PeerError>> {
        self.change(move |seen| seen.copies_dropped.extend(keys.iter().cloned()))
    }
}

/// Keys starting with `owned-by-<id>` belong to that peer; the rest to
/// this node. `settling`: what [`PeerPicker::settling`] says.
struct Picker(Vec<Arc<Scripted>>, bool);

impl PeerPicker for Picker {
    fn pick(&self, key: &str) -> Option<Arc<dyn Peer>> {
        self.0
            .iter()
            .find(|p| key.starts_with(&format!("owned-by-{}", p.id)))
            .map(|p| Arc::clone(p) as Arc<dyn Peer>)
    }
    fn others(&self) -> Vec<Arc<dyn Peer>> {
        self.0
            .iter()
            .map(|p| Arc::clone(p) as Arc<dyn Peer>)
            .collect()
    }
    fn settling(&self) -> bool {
        self.1
    }
}

/// A node whose peers are `a`, `b` and `c`, and its group.
fn cluster(limits: HintLimits) -> (Group, [Arc<Scripted>; 3]) {
    cluster_settling(limits, false)
}

/// [`cluster`], with a picker whose view of the cluster is `settling`.
fn cluster_settling(limits: HintLimits, settling: bool) -> (Group, [Arc<Scripted>; 3]) {
    let peers = [Scripted::new("a"), Scripted::new("b"), Scripted::new("c")];
    let node = Node::with_picker(Arc::new(Picker(peers.to_vec(), settling)));
    let group = node
        .group_builder("g")
        .change_timeout(Duration::from_millis(300))
        .hint_limits(limits)
        .build(loader_fn(
            |k: String| async move { Ok(format!("{k} loaded")) },
        ))
        .unwrap();
    (group, peers)
}

/// Waits (on the paused clock, bounded) until `done`.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 20 s: {what}");
}

#[tokio::test(start_paused = true)]
async fn a_hung_non_owner_is_pending_and_gets_the_change_when_it_answers() {
    let (group, [a, b, c]) = cluster(HintLimits::default());
    b.set_mode(Mode::Hung);
    let started = tokio::time::Instant::now();
    let applied = group.set("owned-by-a:k", "new", None).await.unwrap();
    // The owner took it, b was waited for the change timeout only.
    assert_eq!(applied.pending(), [Arc::from("b")]);
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(a.seen.lock().unwrap().sets, ["owned-by-a:k"]);
    assert_eq!(c.seen.lock().unwrap().removed, ["owned-by-a:k"]);
    let pending = group.pending_hints();
    assert_eq!(
        (pending.len(), pending[0].peer.as_str(), pending[0].keys),
        (1, "b", 1)
    );
    assert_eq!(group.stats().hints_pending, 1);

    // b answers again: the removal reaches it once; then, every hint of
    // the key having landed, the second round drops the hot copies once
    // more everywhere (a copy b refilled from a stale node goes too), and
    // only copies: the owner keeps the value set.
    b.set_mode(Mode::Up);
    until("the hint reaches b", || group.pending_hints().is_empty()).await;
    let stats = group.stats();
    assert_eq!((stats.hints_pending, stats.hints_delivered), (0, 1));
    until("the second round", || {
        c.seen.lock().unwrap().copies_dropped.len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for peer in [&a, &b, &c] {
        let seen = peer.seen.lock().unwrap();
        assert_eq!(seen.copies_dropped, ["owned-by-a:k"], "{}", peer.id);
    }
    assert_eq!(b.seen.lock().unwrap().removed, ["owned-by-a:k"], "once");
    assert!(
        a.seen.lock().unwrap().removed.is_empty(),
        "the owner keeps its value"
    );
}

#[tokio::test(start_paused = true)]
async fn an_owner_not_reached_fails_the_change_and_still_gets_a_hint() {
    let (group, [a, _, _]) = cluster(HintLimits::default());
    a.set_mode(Mode::Down);
    let error = group.set("owned-by-a:k", "new", None).await.unwrap_err();
    assert_eq!(error.reached_owner(), Some(false));
    let failure = &error.failed_peers()[0];
    assert!(failure.owner && failure.pending, "{failure:?}");
    assert!(error.to_string().contains("kept for it"), "{error}");
    // Back, the owner drops the value it may still hold.
    a.set_mode(Mode::Up);
    until("the hint reaches a", || group.pending_hints().is_empty()).await;
    assert_eq!(a.seen.lock().unwrap().removed, ["owned-by-a:k"]);
}

#[tokio::test(start_paused = true)]
async fn an_owner_not_reached_is_kept_every_key_of_the_removal() {
    // a owns one key and may hold a copy of the other: both wait for it.
    let (group, [a, _, _]) = cluster(HintLimits::default());
    a.set_mode(Mode::Down);
    let keys = ["owned-by-a:k", "mine"];
    assert!(group.remove_keys(keys).await.is_err());
    assert_eq!(group.pending_hints()[0].keys, 2);
    a.set_mode(Mode::Up);
    until("the hint reaches a", || group.pending_hints().is_empty()).await;
    let mut removed = a.seen.lock().unwrap().removed.clone();
    removed.sort();
    assert_eq!(removed, ["mine", "owned-by-a:k"]);
}

#[tokio::test(start_paused = true)]
async fn a_refusing_peer_fails_the_change_and_gets_no_hint() {
    let (group, [_, b, _]) = cluster(HintLimits::default());
    b.set_mode(Mode::Refusing);
    let error = group.remove("mine").await.unwrap_err();
    assert_eq!(error.reached_owner(), Some(true));
    let failure = &error.failed_peers()[0];
    assert_eq!((&*failure.peer, failure.pending), ("b", false));
    assert!(group.pending_hints().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_later_change_that_reaches_the_peer_supersedes_its_hint() {
    let (group, [_, b, _]) = cluster(HintLimits::default());
    b.set_mode(Mode::Hung);
    assert_eq!(group.remove("k1").await.unwrap().pending().len(), 1);
    assert_eq!(group.remove("k2").await.unwrap().pending().len(), 1);
    // b answers the next change before the delivery task runs again.
    b.set_mode(Mode::Up);
    group.remove("k1").await.unwrap();
    assert_eq!(group.pending_hints()[0].keys, 1, "k2 still waits");
    until("k2 reaches b", || group.pending_hints().is_empty()).await;
    until("the second round", || {
        !b.seen.lock().unwrap().copies_dropped.is_empty()
    })
    .await;
    {
        let seen = b.seen.lock().unwrap();
        assert_eq!(seen.removed, ["k1", "k2"], "k1 was not sent again");
        // No hint of k1 landed: it has no second round.
        assert_eq!(seen.copies_dropped, ["k2"]);
    }
    // A purge that reaches the peer supersedes everything before it.
    b.set_mode(Mode::Down);
    group.remove("k3").await.unwrap();
    b.set_mode(Mode::Up);
    group.purge().await.unwrap();
    assert!(group.pending_hints().is_empty());
}

#[tokio::test(start_paused = true)]
async fn hints_past_their_bound_collapse_into_one_purge() {
    let limits = HintLimits {
        max_keys: 2,
        max_bytes: 1 << 20,
    };
    let (group, [_, _, c]) = cluster(limits);
    c.set_mode(Mode::Down);
    for key in ["k1", "k2", "k3"] {
        group.remove(key).await.unwrap();
    }
    let pending = group.pending_hints();
    assert_eq!((pending[0].keys, pending[0].purge), (0, true));
    assert_eq!(group.stats().hints_collapsed, 1);
    // A key removed after the collapse is kept besides the purge.
    group.remove("k4").await.unwrap();
    assert_eq!(group.stats().hints_pending, 2);
    c.set_mode(Mode::Up);
    until("the purge reaches c", || group.pending_hints().is_empty()).await;
    let seen = c.seen.lock().unwrap();
    assert_eq!(seen.purges, 1);
    assert!(!seen.removed.contains(&"k1".to_owned()), "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn a_purge_waits_once_for_a_hung_peer_and_keeps_a_purge_for_it() {
    let (group, [a, b, c]) = cluster(HintLimits::default());
    c.set_mode(Mode::Hung);
    let started = tokio::time::Instant::now();
    let applied = group.purge().await.unwrap();
    assert_eq!(applied.pending(), [Arc::from("c")]);
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(300),
        "not asked in round two"
    );
    assert_eq!(
        (a.seen.lock().unwrap().purges, b.seen.lock().unwrap().purges),
        (2, 2)
    );
    c.set_mode(Mode::Up);
    until("the purge reaches c", || group.pending_hints().is_empty()).await;
    assert_eq!(c.seen.lock().unwrap().purges, 1);
    // The purge landed everywhere: every node drops its copies once more.
    until("the second round", || {
        [&a, &b, &c]
            .iter()
            .all(|p| p.seen.lock().unwrap().all_copies_dropped == 1)
    })
    .await;
}

#[tokio::test]
async fn a_zero_change_timeout_is_refused() {
    let node = Node::new();
    let built = node
        .group_builder("g")
        .change_timeout(Duration::ZERO)
        .build(loader_fn(|k: String| async move { Ok(k) }));
    let error = built.unwrap_err();
    assert!(error.to_string().contains("change_timeout"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn while_the_view_settles_a_change_drops_the_copies_twice() {
    // Settled: a set is the owner's set and one removal elsewhere.
    let (group, [_, b, _]) = cluster(HintLimits::default());
    group.set("owned-by-a:k", "v", None).await.unwrap();
    assert!(b.seen.lock().unwrap().copies_dropped.is_empty());
    // Settling: then every node reached drops its copy once more, and the
    // owner keeps its value.
    let (group, [a, b, c]) = cluster_settling(HintLimits::default(), true);
    group.set("owned-by-a:k", "v", None).await.unwrap();
    for peer in [&a, &b, &c] {
        assert_eq!(peer.seen.lock().unwrap().copies_dropped, ["owned-by-a:k"]);
    }
    assert_eq!(b.seen.lock().unwrap().removed, ["owned-by-a:k"]);
    assert!(a.seen.lock().unwrap().removed.is_empty());
}
