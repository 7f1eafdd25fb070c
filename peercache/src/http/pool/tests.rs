use super::*;
use crate::ring::HashMode;
use std::time::Duration;

#[test]
fn urls_are_checked() {
    for bad in [
        "",
        "10.0.0.1:8080",
        "ftp://h:1",
        "http://h:1/",
        "http://h:1?x=1",
        "http:///x",
    ] {
        assert!(
            matches!(check_url(bad, true), Err(PoolError::InvalidUrl { .. })),
            "{bad:?} accepted"
        );
    }
    for good in [
        "http://h:1",
        "http://10.0.0.1:8080",
        "http://[::1]:80",
        "http://h/prefix",
    ] {
        assert_eq!(check_url(good, false), Ok(()), "{good:?}");
    }
    assert_eq!(check_url("https://h:1", true), Ok(()));
    let refused = check_url("https://h:1", false).unwrap_err();
    assert!(matches!(refused, PoolError::NoTls { .. }), "{refused:?}");
    let text = refused.to_string();
    if cfg!(feature = "tls") {
        assert!(text.contains("--tls-ca"), "{text}");
    } else {
        assert!(text.contains("built without TLS"), "{text}");
    }
}

#[test]
fn https_peers_need_tls() {
    let error = HttpPool::new("http://h:1", HttpOptions::default())
        .unwrap()
        .set_peers(["http://h:1", "https://h:2"])
        .unwrap_err();
    assert!(matches!(error, PoolError::NoTls { .. }), "{error}");
    let error = HttpPool::new("https://h:1", HttpOptions::default()).unwrap_err();
    assert!(matches!(error, PoolError::NoTls { .. }), "{error}");
}

/// A node that starts looks back on the ring without itself; one ring
/// change later, it still does, past a ring where it owned the key itself.
#[tokio::test]
async fn a_peek_looks_back_past_the_rings_where_this_node_owned_the_key() {
    let [a, b, c] = [
        "http://10.0.0.1:1",
        "http://10.0.0.2:1",
        "http://10.0.0.3:1",
    ];
    let pool = HttpPool::new(a, HttpOptions::default()).unwrap();
    assert!(pool.previous_owner("k").is_none(), "alone: nothing to peek");
    pool.set_peers([a, b, c]).unwrap();
    let without_a = Ring::with_peers(HashMode::Golang, 50, [b, c]).unwrap();
    // A key `a` owns now, held by `b` while `a` was away, and one `c` owns.
    let mine = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| pool.owner(k) == a && without_a.owner(k) == Some(b))
        .unwrap();
    assert_eq!(pool.previous_owner(&mine).expect("a peek").id(), b);
    let theirs = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| pool.owner(k) == c)
        .unwrap();
    assert!(
        pool.previous_owner(&theirs).is_none(),
        "not this node's to load"
    );

    // `c` leaves: the newest earlier ring (all three) has `a` as the owner
    // of `mine`; the one before it still names `b`.
    assert!(pool.peer_left(c));
    assert_eq!(pool.previous_owner(&mine).expect("a peek").id(), b);

    // Without a peek window, no ring is kept.
    let options = HttpOptions::builder()
        .peek_window(Duration::ZERO)
        .build()
        .unwrap();
    let off = HttpPool::new(a, options).unwrap();
    off.set_peers([a, b, c]).unwrap();
    assert!(off.previous_owner(&mine).is_none());
}
