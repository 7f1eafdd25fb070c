//! TLS between `peercache-server` processes (the `tls` feature): a CA and
//! certificates made at test time with rcgen, a three-node cluster on
//! 127.0.0.1 with https:// peer URLs and client certificates required, and
//! the clients it must refuse at the handshake.

#![cfg(feature = "tls")]

mod support;

use peercache::http::rustls;
use peercache::ring::{HashMode, Ring};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use support::*;

/// A certificate authority made for one test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A certificate and its key, as PEM.
struct Issued {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A certificate for 127.0.0.1 and localhost, good for serving and as
    /// a client certificate.
    fn issue(&self, name: &str) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// A fresh directory for one test's files.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("tls-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The files of one node: its certificate (served and presented to peers),
/// its key, and the CA to trust.
struct NodeFiles {
    cert: String,
    key: String,
    ca: String,
}

fn node_files(dir: &Path, ca: &Ca, name: &str) -> NodeFiles {
    let issued = ca.issue(name);
    NodeFiles {
        cert: write(dir, &format!("{name}.pem"), &issued.cert),
        key: write(dir, &format!("{name}.key"), &issued.key),
        ca: write(dir, "ca.pem", &ca.pem),
    }
}

/// A TLS client configuration trusting `ca`, presenting `client` if given.
fn client_config(ca: &str, client: Option<&Issued>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(issued) => {
            let chain = CertificateDer::pem_slice_iter(issued.cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(issued.key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// `GET target` over HTTPS on a fresh connection: status and body, or the
/// error (a refused handshake shows here).
fn https_get(
    addr: SocketAddr,
    target: &str,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<(u16, String)> {
    let tcp = TcpStream::connect_timeout(&addr, WAIT)?;
    tcp.set_read_timeout(Some(WAIT))?;
    tcp.set_write_timeout(Some(WAIT))?;
    let name = ServerName::IpAddress(addr.ip().into());
    let connection =
        rustls::ClientConnection::new(Arc::clone(config), name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    write!(
        tls,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    tls.flush()?;
    let mut answer = Vec::new();
    match tls.read_to_end(&mut answer) {
        Ok(_) => {}
        // A server that closes without close_notify after a whole answer.
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
        Err(error) => return Err(error),
    }
    parse_answer(&answer)
}

/// A TLS handshake with `addr` that must fail: the client's own refusal,
/// or the server's alert, read before any request is sent (writing one
/// would race the server's close and could end in a broken pipe instead).
fn refused_handshake(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> String {
    let mut tcp = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.set_write_timeout(Some(WAIT)).unwrap();
    let name = ServerName::IpAddress(addr.ip().into());
    let mut connection = rustls::ClientConnection::new(Arc::clone(config), name).unwrap();
    while connection.is_handshaking() {
        if let Err(error) = connection.complete_io(&mut tcp) {
            return error.to_string();
        }
    }
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    match tls.read(&mut [0; 1]) {
        Err(error) => error.to_string(),
        Ok(n) => panic!("https://{addr} accepted the handshake (read {n} bytes)"),
    }
}

fn https_get_ok(addr: SocketAddr, target: &str, config: &Arc<rustls::ClientConfig>) -> String {
    match https_get(addr, target, config) {
        Ok((200, body)) => body,
        other => panic!("GET {target} on https://{addr}: {other:?}"),
    }
}

/// Starts a cluster of `n` nodes serving HTTPS with mutual TLS, with
/// `extra` flags; node `i` presents a client certificate unless
/// `without_client_cert(i)`.
fn start_tls_cluster(
    n: usize,
    files: &[NodeFiles],
    client: &Arc<rustls::ClientConfig>,
    extra: &[&str],
    without_client_cert: impl Fn(usize) -> bool,
) -> Vec<Proc> {
    start_cluster(n, |i, addrs| {
        let pool: Vec<String> = addrs.iter().map(|a| format!("https://{a}")).collect();
        let f = &files[i];
        let mut args: Vec<String> = [
            "--addr",
            &addrs[i].to_string(),
            "--self",
            &pool[i],
            "--pool",
            &pool.join(","),
            "--peer-timeout",
            "3s",
            "--echo-group",
            "--tls-cert",
            &f.cert,
            "--tls-key",
            &f.key,
            "--tls-ca",
            &f.ca,
            "--tls-require-client-cert",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        if !without_client_cert(i) {
            args.extend(
                ["--tls-client-cert", &f.cert, "--tls-client-key", &f.key].map(str::to_owned),
            );
        }
        start_until(
            &format!("tls-node{i}"),
            &server_binary(),
            &args,
            addrs[i],
            pool[i].clone(),
            |addr| matches!(https_get(addr, "/stats", client), Ok((200, _))),
        )
    })
}

#[test]
fn a_mutual_tls_cluster_serves_and_refuses_strangers() {
    let started = Instant::now();
    let dir = scratch_dir("cluster");
    let ca = Ca::new("peercache test CA");
    let files: Vec<NodeFiles> = (0..3)
        .map(|i| node_files(&dir, &ca, &format!("node{i}")))
        .collect();
    let user = ca.issue("user");
    let client = client_config(&ca.pem, Some(&user));
    let nodes = start_tls_cluster(3, &files, &client, &[], |_| false);
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    assert!(urls.iter().all(|u| u.starts_with("https://127.0.0.1:")));
    let ring = Ring::with_peers(HashMode::Golang, 50, &urls).unwrap();

    // (a) Every colour through every node: keys owned elsewhere come from
    // their owner over mutual TLS.
    let colors = colors();
    for node in &nodes {
        for (name, hex) in &colors {
            let body = https_get_ok(node.addr, &format!("/color?name={name}"), &client);
            assert_eq!(body, format!("{hex}\n"), "{name} through {}", node.url);
        }
    }
    for node in &nodes {
        let stats: serde_json::Value =
            serde_json::from_str(&https_get_ok(node.addr, "/stats", &client)).unwrap();
        let owned = colors
            .iter()
            .filter(|(name, _)| ring.owner(name) == Some(&node.url))
            .count();
        let group = group_in(&stats, "colors");
        assert!(owned < colors.len(), "{}: owns every colour", node.url);
        assert_eq!(group["peer_errors"], 0, "{}: {group}", node.url);
        assert_eq!(
            group["peer_loads"],
            (colors.len() - owned) as u64,
            "{}: {group}",
            node.url
        );
        assert_eq!(group["local_loads"], owned as u64, "{}: {group}", node.url);
        for peer in stats["peers"].as_array().unwrap() {
            assert!(
                peer["state"] == "up" || peer["state"] == "self",
                "{}: {peer}",
                node.url
            );
            assert_eq!(peer["failures"], 0, "{}: {peer}", node.url);
        }
    }
    // A key owned by another node, by name: the echo group escapes it.
    let key = (0..)
        .map(|i| format!("key {i}/é"))
        .find(|k| ring.owner(k) != Some(&nodes[0].url))
        .unwrap();
    assert_eq!(
        https_get_ok(nodes[0].addr, &format!("/echo/{}", escape(&key)), &client),
        key
    );
    let echo = group_in(
        &serde_json::from_str(&https_get_ok(nodes[0].addr, "/stats", &client)).unwrap(),
        "echo",
    );
    assert_eq!(
        (echo["peer_loads"].as_u64(), echo["peer_errors"].as_u64()),
        (Some(1), Some(0)),
        "{echo}"
    );

    // A client that stalls its handshake does not hold up the others: the
    // handshake runs in the connection's own task.
    let stalled: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect_timeout(&nodes[1].addr, WAIT).unwrap())
        .collect();
    let asked = Instant::now();
    assert_eq!(
        https_get_ok(nodes[1].addr, "/color?name=red", &client),
        "#FF0000\n"
    );
    assert!(asked.elapsed() < std::time::Duration::from_secs(2));
    drop(stalled);

    // (b) No client certificate: refused at the handshake.
    let anonymous = client_config(&ca.pem, None);
    let error = refused_handshake(nodes[0].addr, &anonymous);
    assert!(
        error.contains("CertificateRequired"),
        "no client certificate: {error}"
    );
    // (c) Trusting another CA: this client refuses the node's certificate.
    let other_ca = Ca::new("another CA");
    let stranger = other_ca.issue("stranger");
    let distrusting = client_config(&other_ca.pem, Some(&user));
    let error = refused_handshake(nodes[0].addr, &distrusting);
    assert!(error.contains("UnknownIssuer"), "other CA: {error}");
    // (d) A client certificate from another CA: the node refuses it.
    let forged = client_config(&ca.pem, Some(&stranger));
    let error = refused_handshake(nodes[0].addr, &forged);
    assert!(
        error.contains("received fatal alert"),
        "client certificate from another CA: {error}"
    );
    eprintln!("refused as expected: {error}");
    // (e) Cleartext to a TLS port gets no HTTP answer.
    assert!(
        !matches!(get(nodes[0].addr, "/stats"), Ok((200, _))),
        "cleartext was served on the TLS port"
    );
    eprintln!("mutual TLS cluster test took {:?}", started.elapsed());
}

#[test]
fn a_peer_without_a_client_certificate_is_refused_and_the_key_loaded_locally() {
    let dir = scratch_dir("no-client-cert");
    let ca = Ca::new("peercache test CA");
    let files: Vec<NodeFiles> = (0..2)
        .map(|i| node_files(&dir, &ca, &format!("node{i}")))
        .collect();
    let client = client_config(&ca.pem, Some(&ca.issue("user")));
    // Node 1 serves TLS but presents no client certificate to node 0.
    let nodes = start_tls_cluster(2, &files, &client, &[], |i| i == 1);
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let ring = Ring::with_peers(HashMode::Golang, 50, &urls).unwrap();
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| ring.owner(k) == Some(&nodes[0].url))
        .unwrap();
    // Still answered: node 1 loads the key itself after the refusal.
    assert_eq!(
        https_get_ok(nodes[1].addr, &format!("/echo/{key}"), &client),
        key
    );
    let stats: serde_json::Value =
        serde_json::from_str(&https_get_ok(nodes[1].addr, "/stats", &client)).unwrap();
    let echo = group_in(&stats, "echo");
    assert_eq!(echo["peer_errors"], 1, "{echo}");
    assert_eq!(echo["local_loads"], 1, "{echo}");
    let peer = stats["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer"] == nodes[0].url.as_str())
        .cloned()
        .unwrap();
    // The refusal reads as the server's alert, or as the connection it
    // closed when the request was already on its way.
    assert!(
        peer["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{peer}"
    );
    // Node 0 is up and serves a client with a certificate: what it refused
    // was node 1's missing certificate.
    https_get_ok(nodes[0].addr, "/stats", &client);
    assert!(
        nodes[1]
            .log()
            .contains("--tls-require-client-cert without --tls-client-cert"),
        "{}",
        nodes[1].log()
    );
}

#[test]
fn peers_speak_http2_over_tls_with_http2() {
    let dir = scratch_dir("http2");
    let ca = Ca::new("peercache test CA");
    let files: Vec<NodeFiles> = (0..2)
        .map(|i| node_files(&dir, &ca, &format!("node{i}")))
        .collect();
    let client = client_config(&ca.pem, Some(&ca.issue("user")));
    let nodes = start_tls_cluster(2, &files, &client, &["--http2"], |_| false);
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let ring = Ring::with_peers(HashMode::Golang, 50, &urls).unwrap();
    let keys: Vec<String> = (0..)
        .map(|i| format!("k{i}"))
        .filter(|k| ring.owner(k) == Some(&nodes[0].url))
        .take(5)
        .collect();
    for key in &keys {
        assert_eq!(
            https_get_ok(nodes[1].addr, &format!("/echo/{key}"), &client),
            *key
        );
    }
    let stats: serde_json::Value =
        serde_json::from_str(&https_get_ok(nodes[1].addr, "/stats", &client)).unwrap();
    let echo = group_in(&stats, "echo");
    assert_eq!(echo["peer_loads"], keys.len() as u64, "{echo}");
    assert_eq!(echo["peer_errors"], 0, "{echo}");
}

#[test]
fn bad_tls_flags_get_clear_errors() {
    let dir = scratch_dir("flags");
    let ca = Ca::new("peercache test CA");
    let files = node_files(&dir, &ca, "node");
    let server = server_binary();

    // A key where the certificate should be.
    let (code, out) = run_to_exit(
        &server,
        &[
            "--addr",
            "127.0.0.1:0",
            "--tls-cert",
            &files.key,
            "--tls-key",
            &files.key,
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("bad --tls-* flag: the certificate chain")
            && out.contains("node.key holds no certificate"),
        "{out}"
    );
    // A missing CA file.
    let missing = dir.join("nope.pem").display().to_string();
    let (code, out) = run_to_exit(&server, &["--addr", "127.0.0.1:0", "--tls-ca", &missing]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("cannot read the CA bundle {missing}")),
        "{out}"
    );
    // --tls-cert without --tls-key: clap names the missing flag.
    let (code, out) = run_to_exit(&server, &["--tls-cert", &files.cert]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--tls-key"), "{out}");
    // An https:// pool without a CA to trust.
    let (code, out) = run_to_exit(
        &server,
        &[
            "--addr",
            "127.0.0.1:0",
            "--self",
            "https://127.0.0.1:1",
            "--pool",
            "https://127.0.0.1:1,https://127.0.0.1:2",
            "--tls-cert",
            &files.cert,
            "--tls-key",
            &files.key,
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("is https:// but no TLS is configured") && out.contains("--tls-ca"),
        "{out}"
    );
    // An http:// --self on a node that serves HTTPS.
    let (code, out) = run_to_exit(
        &server,
        &[
            "--addr",
            "127.0.0.1:0",
            "--self",
            "http://127.0.0.1:1",
            "--tls-cert",
            &files.cert,
            "--tls-key",
            &files.key,
            "--tls-ca",
            &files.ca,
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("must be https://"), "{out}");
    // A cleartext peer in a TLS cluster (the list a --peers-file could give).
    let (code, out) = run_to_exit(
        &server,
        &[
            "--addr",
            "127.0.0.1:0",
            "--self",
            "https://127.0.0.1:1",
            "--pool",
            "https://127.0.0.1:1,http://127.0.0.1:2",
            "--tls-cert",
            &files.cert,
            "--tls-key",
            &files.key,
            "--tls-ca",
            &files.ca,
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("\"http://127.0.0.1:2\" is http://") && out.contains("TLS cluster"),
        "{out}"
    );
}

/// An `http` group of `--config` in front of an https:// origin: trusted
/// through the group's `ca`, each key fetched once; a group without `ca`
/// checks the origin against the system's roots, which do not know the
/// test CA, so its reads fail with the certificate error and cache nothing.
#[test]
fn a_config_group_reads_through_to_an_https_origin() {
    let dir = scratch_dir("origin");
    let ca = Ca::new("peercache origin CA");
    let origin_files = node_files(&dir, &ca, "origin");
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    write(&dir.join("docs"), "hello.txt", "hello over https");
    let origin_config = write(
        &dir,
        "origin.toml",
        &format!(
            "[[group]]\nname = \"docs\"\nsource = \"files\"\ndir = {:?}\n",
            dir.join("docs").display().to_string()
        ),
    );
    let trusting = client_config(&ca.pem, None);
    let origin = &start_cluster(1, |_, addrs| {
        let url = format!("https://{}", addrs[0]);
        let args: Vec<String> = [
            "--addr",
            &addrs[0].to_string(),
            "--self",
            &url,
            "--pool",
            &url,
            "--config",
            &origin_config,
            "--tls-cert",
            &origin_files.cert,
            "--tls-key",
            &origin_files.key,
            "--tls-ca",
            &origin_files.ca,
        ]
        .map(str::to_owned)
        .to_vec();
        start_until(
            "https-origin",
            &server_binary(),
            &args,
            addrs[0],
            url,
            |a| matches!(https_get(a, "/stats", &trusting), Ok((200, _))),
        )
    })[0];
    let origin_url = format!("https://{}/docs/{{key}}", origin.addr);
    let front_config = write(
        &dir,
        "front.toml",
        &format!(
            "[[group]]\nname = \"pages\"\nsource = \"http\"\nurl = {origin_url:?}\nca = {:?}\n\n\
             [[group]]\nname = \"untrusted\"\nsource = \"http\"\nurl = {origin_url:?}\n",
            origin_files.ca
        ),
    );
    let front = &start_cluster(1, |_, addrs| {
        let pool = [addrs[0]];
        start(
            "https-front",
            &server_binary(),
            &server_args(addrs[0], &pool, &["--config", &front_config]),
            addrs[0],
        )
    })[0];

    for _ in 0..3 {
        assert_eq!(
            get(front.addr, "/pages/hello.txt").unwrap(),
            (200, "hello over https".to_owned())
        );
    }
    assert_eq!(counter(front.addr, "pages", "loads"), 1);
    assert_eq!(get(front.addr, "/pages/nope.txt").unwrap().0, 404);

    let (status, body) = get(front.addr, "/untrusted/hello.txt").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("certificate"), "{body}");
    let untrusted = group_stats(front.addr, "untrusted");
    assert_eq!(untrusted["local_load_errs"], 1);
    assert_eq!(untrusted["main_cache"]["items"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}
