use super::*;

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
