use super::*;
use axum::http::HeaderValue;
use std::io::Write;

fn loopback() -> Option<IpAddr> {
    Some("127.0.0.1".parse().unwrap())
}

fn remote() -> Option<IpAddr> {
    Some("192.0.2.7".parse().unwrap())
}

fn with_token(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

fn status((_, result): (ClientKey, Result<(), Refused>)) -> u16 {
    match result {
        Ok(()) => 200,
        Err(refused) => refused.into_response().status().as_u16(),
    }
}

#[test]
fn each_route_needs_its_scope() {
    let cases = [
        (Method::GET, "/color", Need::Read),
        (Method::HEAD, "/colors/red", Need::Read),
        (Method::GET, "/", Need::Read),
        (Method::PUT, "/color", Need::Write),
        (Method::DELETE, "/colors/red", Need::Write),
        (Method::POST, "/colors/_get-many", Need::Read),
        (Method::POST, "/colors/_purge", Need::Admin),
        // An escaped `_purge` (axum decodes it) needs admin too.
        (Method::POST, "/colors/%5Fpurge", Need::Admin),
        (Method::POST, "/colors/red", Need::Admin),
        (Method::GET, "/stats", Need::Metrics),
        (Method::GET, "/metrics", Need::Metrics),
        (Method::GET, "/status", Need::Public),
        (Method::GET, "/openapi.json", Need::Public),
    ];
    for (method, path, expected) in cases {
        assert_eq!(need(&method, path), expected, "{method} {path}");
    }
}

#[test]
fn without_tokens_reads_are_for_loopback_and_writes_need_the_flag() {
    let closed = Access::new(&AccessSettings::default()).unwrap();
    let headers = HeaderMap::new();
    assert_eq!(status(closed.admit(Need::Read, &headers, loopback())), 200);
    assert_eq!(
        status(closed.admit(Need::Metrics, &headers, loopback())),
        200
    );
    assert_eq!(status(closed.admit(Need::Read, &headers, remote())), 403);
    // No address known (not served by peercache's Server): not loopback.
    assert_eq!(status(closed.admit(Need::Read, &headers, None)), 403);
    assert_eq!(status(closed.admit(Need::Public, &headers, remote())), 200);
    assert_eq!(status(closed.admit(Need::Write, &headers, loopback())), 403);
    assert_eq!(status(closed.admit(Need::Admin, &headers, loopback())), 403);
    let mapped = Some("::ffff:127.0.0.1".parse().unwrap());
    assert_eq!(status(closed.admit(Need::Read, &headers, mapped)), 200);

    let open = Access::new(&AccessSettings {
        writes: true,
        open: true,
        ..AccessSettings::default()
    })
    .unwrap();
    assert_eq!(status(open.admit(Need::Read, &headers, remote())), 200);
    assert_eq!(status(open.admit(Need::Admin, &headers, remote())), 200);
}

#[test]
fn tokens_decide_everything_and_reload_keeps_the_old_on_error() {
    let dir = std::env::temp_dir().join(format!("peercache-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens");
    let write = |text: &str| {
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(text.as_bytes()).unwrap();
    };
    write("reader read aaaaaaaaaaaaaaaa\nops admin cccccccccccccccc\n");
    let access = Access::new(&AccessSettings {
        token_file: Some(path.clone()),
        ..AccessSettings::default()
    })
    .unwrap();
    let none = HeaderMap::new();
    let reader = with_token("aaaaaaaaaaaaaaaa");
    // Loopback is no exemption once there are tokens.
    assert_eq!(status(access.admit(Need::Read, &none, loopback())), 401);
    assert_eq!(status(access.admit(Need::Read, &reader, remote())), 200);
    assert_eq!(status(access.admit(Need::Write, &reader, remote())), 403);
    assert_eq!(status(access.admit(Need::Metrics, &reader, remote())), 403);
    let ops = with_token("cccccccccccccccc");
    assert_eq!(status(access.admit(Need::Admin, &ops, remote())), 200);
    // Limited by the token's client, refused or not; by address without one.
    let (key, _) = access.admit(Need::Write, &reader, remote());
    assert_eq!(key, ClientKey::Token("reader".into()));
    let (key, _) = access.admit(Need::Read, &none, remote());
    assert_eq!(key, ClientKey::addr(remote().unwrap()));
    let forged = with_token("aaaaaaaaaaaaaaab");
    let refused = access.admit(Need::Read, &forged, remote()).1.unwrap_err();
    let response = refused.into_response();
    assert_eq!(response.status(), 401);
    assert!(response.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    // Scheme in any case, extra spaces.
    let mut lower = HeaderMap::new();
    lower.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("bearer   aaaaaaaaaaaaaaaa"),
    );
    assert_eq!(status(access.admit(Need::Read, &lower, remote())), 200);
    let mut basic = HeaderMap::new();
    basic.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Basic YTpi"),
    );
    assert_eq!(status(access.admit(Need::Read, &basic, remote())), 401);

    // Rotation: the reader's token out, a new one in.
    write("reader2 read dddddddddddddddd\nops admin cccccccccccccccc\n");
    assert_eq!(access.reload().unwrap(), Some(2));
    assert_eq!(status(access.admit(Need::Read, &reader, remote())), 401);
    let reader2 = with_token("dddddddddddddddd");
    assert_eq!(status(access.admit(Need::Read, &reader2, remote())), 200);
    // A broken file is refused and the tokens in force stay.
    write("reader3 read short\n");
    let error = access.reload().unwrap_err().to_string();
    assert!(error.contains("line 1"), "{error}");
    assert_eq!(status(access.admit(Need::Read, &reader2, remote())), 200);
    // An empty file revokes every token.
    write("# nobody\n");
    assert_eq!(access.reload().unwrap(), Some(0));
    assert_eq!(status(access.admit(Need::Read, &reader2, remote())), 401);
    assert_eq!(status(access.admit(Need::Public, &none, remote())), 200);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn refusals_are_counted_by_reason() {
    let access = Access::new(&AccessSettings::default()).unwrap();
    let headers = HeaderMap::new();
    let refused = access
        .admit(Need::Write, &headers, loopback())
        .1
        .unwrap_err();
    let response = access.refuse(refused);
    assert_eq!(response.status(), 403);
    let response = access.refuse(Refused::RateLimited(std::time::Duration::from_millis(1500)));
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    assert_eq!(
        access.stats(),
        AccessStats {
            unauthorized: 0,
            forbidden: 1,
            rate_limited: 1
        }
    );
}
