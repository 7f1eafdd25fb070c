//! `--peer-secret-file` on real processes: a cluster sharing a secret serves
//! each other, strangers get 401 on the peer endpoint (the front API is
//! unchanged), a bad secret file stops the server with a clear error, and a
//! node serving beyond loopback without a secret warns at start-up.

mod support;

use std::path::PathBuf;
use support::*;

/// A secret file in the tests' scratch directory, owner-only.
fn secret_file(name: &str, content: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}.secret", std::process::id()));
    std::fs::write(&path, content).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// `counter` of group `colors` in a node's `/stats`.
fn colors_counter(addr: std::net::SocketAddr, name: &str) -> u64 {
    counter(addr, "colors", name)
}

#[test]
fn a_cluster_with_a_secret_serves_itself_and_refuses_strangers() {
    let secret = secret_file("cluster", "a shared secret of more than 16 bytes\n");
    let secret = secret.to_str().unwrap();
    let nodes = start_servers(3, &["--peer-secret-file", secret]);
    // Every colour through every node: the owners answer their peers.
    let colors = colors();
    for node in &nodes {
        for (name, hex) in colors.iter().take(12) {
            let target = format!("/color?name={}", escape(name));
            assert_eq!(get_ok(node.addr, &target), format!("{hex}\n"));
        }
    }
    let peer_loads: u64 = nodes
        .iter()
        .map(|n| colors_counter(n.addr, "peer_loads"))
        .sum();
    let peer_errors: u64 = nodes
        .iter()
        .map(|n| colors_counter(n.addr, "peer_errors"))
        .sum();
    assert!(peer_loads > 0, "no node fetched from a peer");
    assert_eq!(peer_errors, 0, "signed peer requests were refused");
    // A request without a proof, as a Go node or an intruder sends it.
    let (status, body) = get(nodes[0].addr, "/_groupcache/colors/red").unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("no PeerCache-HMAC-SHA256 proof"), "{body}");
    for node in &nodes {
        let (status, body) = request(node.addr, "DELETE", "/_groupcache/colors/red", b"").unwrap();
        assert_eq!(status, 401, "{body}");
    }
    // Nothing was removed: red's owner still has it cached, so reading it
    // through every node loads it nowhere.
    let local_loads = || -> u64 {
        nodes
            .iter()
            .map(|n| colors_counter(n.addr, "local_loads"))
            .sum()
    };
    let before = local_loads();
    for node in &nodes {
        assert_eq!(get_ok(node.addr, "/color?name=red"), "#FF0000\n");
    }
    assert_eq!(local_loads(), before);
}

#[test]
fn a_short_or_missing_secret_file_stops_the_server_with_a_clear_error() {
    let server = server_binary();
    let short = secret_file("short", "tiny\n");
    let (code, out) = run_to_exit(
        &server,
        &[
            "--addr",
            "127.0.0.1:0",
            "--peer-secret-file",
            short.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("--peer-secret-file") && out.contains("is 4 bytes: use at least 16"),
        "{out}"
    );
    let (code, out) = run_to_exit(
        &server,
        &[
            "--addr",
            "127.0.0.1:0",
            "--peer-secret-file",
            "/nonexistent/secret",
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("cannot read the peer secret file /nonexistent/secret"),
        "{out}"
    );
}

#[test]
fn serving_beyond_loopback_without_a_secret_warns() {
    let warning = "without authentication";
    let addr = free_addrs(1)[0];
    let open = start(
        "open",
        &server_binary(),
        &[
            "--addr".to_owned(),
            format!("0.0.0.0:{}", addr.port()),
            "--self".to_owned(),
            format!("http://{addr}"),
        ],
        addr,
    )
    .expect("node starts");
    assert!(open.log().contains(warning), "{}", open.log());
    drop(open);
    let secret = secret_file("quiet", "a shared secret of more than 16 bytes");
    let addr = free_addrs(1)[0];
    let guarded = start(
        "guarded",
        &server_binary(),
        &[
            "--addr".to_owned(),
            format!("0.0.0.0:{}", addr.port()),
            "--self".to_owned(),
            format!("http://{addr}"),
            "--peer-secret-file".to_owned(),
            secret.to_str().unwrap().to_owned(),
        ],
        addr,
    )
    .expect("node starts");
    assert!(!guarded.log().contains(warning), "{}", guarded.log());
    // Loopback alone is no warning either.
    let local = start_servers(1, &[]);
    assert!(!local[0].log().contains(warning), "{}", local[0].log());
}
