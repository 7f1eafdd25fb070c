use super::*;
use clap::Parser;

fn args(argv: &[&str]) -> Args {
    Args::parse_from(std::iter::once("peercache-server").chain(argv.iter().copied()))
}

fn at(addr: &str) -> SocketAddr {
    addr.parse().unwrap()
}

fn plan(argv: &[&str], local: &str) -> Result<Plan, ServerError> {
    Plan::from_args(&args(argv), at(local), None, Some("cachebox"))
}

#[test]
fn go_port_spelling_binds_every_interface() {
    assert_eq!(bind_addr(":8080"), "0.0.0.0:8080");
    assert_eq!(bind_addr(":0"), "0.0.0.0:0");
    assert_eq!(bind_addr("127.0.0.1:8080"), "127.0.0.1:8080");
    assert_eq!(bind_addr("[::1]:8080"), "[::1]:8080");
}

#[test]
fn self_url_defaults_to_the_address() {
    let alone = plan(&[], "127.0.0.1:8080").unwrap();
    assert_eq!(alone.self_url, "http://127.0.0.1:8080");
    assert_eq!(alone.self_from, SelfFrom::Addr);
    assert_eq!(alone.peers, ["http://127.0.0.1:8080"]);
    assert!(alone.warnings.is_empty());
    // Port 0: the port picked.
    let picked = plan(&["--addr", "127.0.0.1:0"], "127.0.0.1:41234").unwrap();
    assert_eq!(picked.self_url, "http://127.0.0.1:41234");
    // As spelled in --addr when the pool lists it so.
    let named = plan(
        &[
            "--addr",
            "localhost:8080",
            "--pool",
            "http://localhost:8080",
        ],
        "127.0.0.1:8080",
    )
    .unwrap();
    assert_eq!(named.self_url, "http://localhost:8080");
    assert_eq!(named.self_from, SelfFrom::Addr);
    // Every interface and no peers: the bound address.
    let open = plan(&["--addr", ":8080"], "0.0.0.0:8080").unwrap();
    assert_eq!(open.self_url, "http://0.0.0.0:8080");
    assert_eq!(open.warnings, [OPEN_PEER_ENDPOINT]);
    // --self wins.
    let given = plan(
        &[
            "--addr",
            ":8080",
            "--self",
            "http://10.0.0.1:8080",
            "--pool",
            "http://10.0.0.1:8080",
        ],
        "0.0.0.0:8080",
    )
    .unwrap();
    assert_eq!(given.self_url, "http://10.0.0.1:8080");
    assert_eq!(given.self_from, SelfFrom::Flag);
}

#[test]
fn self_url_is_derived_from_the_one_pool_url_naming_this_machine() {
    // The seed's command line: -addr=:8080 -pool=http://127.0.0.1:8080.
    let seed = plan(
        &["--addr", ":8080", "--pool", "http://127.0.0.1:8080"],
        "0.0.0.0:8080",
    )
    .unwrap();
    assert_eq!(seed.self_url, "http://127.0.0.1:8080");
    assert_eq!(seed.self_from, SelfFrom::Pool);
    assert_eq!(seed.peers, ["http://127.0.0.1:8080"]);
    for (pool, mine) in [
        // Other nodes on other ports or hosts do not count.
        (
            "http://127.0.0.1:8081,http://localhost:8080,http://10.0.0.2:8080",
            "http://localhost:8080",
        ),
        (
            "http://cachebox:8080,http://otherbox:8080",
            "http://cachebox:8080",
        ),
        (
            "http://CacheBox.:8080,http://otherbox:8080",
            "http://CacheBox.:8080",
        ),
        (
            "http://127.0.0.2:8080,http://10.0.0.2:8080",
            "http://127.0.0.2:8080",
        ),
    ] {
        let derived = plan(&["--addr", ":8080", "--pool", pool], "0.0.0.0:8080").unwrap();
        assert_eq!(derived.self_url, mine, "{pool}");
    }
    // [::] takes IPv6 loopback too; 0.0.0.0 does not listen there.
    let v6 = plan(
        &[
            "--addr",
            "[::]:8080",
            "--pool",
            "http://[::1]:8080,http://10.0.0.2:8080",
        ],
        "[::]:8080",
    )
    .unwrap();
    assert_eq!(v6.self_url, "http://[::1]:8080");
    assert!(plan(
        &[
            "--addr",
            ":8080",
            "--pool",
            "http://[::1]:8080,http://10.0.0.2:8080"
        ],
        "0.0.0.0:8080",
    )
    .is_err());
    // A loopback address: `localhost` on its port.
    let local = plan(
        &[
            "--addr",
            "127.0.0.1:8080",
            "--pool",
            "http://localhost:8080,http://localhost:8081",
        ],
        "127.0.0.1:8080",
    )
    .unwrap();
    assert_eq!(local.self_url, "http://localhost:8080");
    assert_eq!(local.self_from, SelfFrom::Pool);
    // Port 0 matches the port the listener got.
    let picked = plan(
        &[
            "--addr",
            ":0",
            "--pool",
            "http://127.0.0.1:41234,http://127.0.0.1:41235",
        ],
        "0.0.0.0:41234",
    )
    .unwrap();
    assert_eq!(picked.self_url, "http://127.0.0.1:41234");
    // A TLS node takes only https:// URLs.
    #[cfg(feature = "tls")]
    {
        let tls = plan(
            &[
                "--addr",
                ":8443",
                "--pool",
                "http://127.0.0.1:8443,https://localhost:8443",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem",
            ],
            "0.0.0.0:8443",
        )
        .unwrap();
        assert_eq!(tls.self_url, "https://localhost:8443");
        let default_port = plan(
            &[
                "--addr",
                ":443",
                "--pool",
                "https://localhost",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem",
            ],
            "0.0.0.0:443",
        )
        .unwrap();
        assert_eq!(default_port.self_url, "https://localhost");
    }
}

#[test]
fn self_url_is_not_guessed_when_the_pool_is_ambiguous_or_elsewhere() {
    for pool in [
        // Two spellings of this machine.
        "http://127.0.0.1:8080,http://localhost:8080",
        // No URL on this port.
        "http://127.0.0.1:8081,http://127.0.0.1:8082",
        // Not this machine.
        "http://10.0.0.1:8080,http://10.0.0.2:8080",
        "http://otherbox:8080",
        // Not the scheme this node serves.
        "https://127.0.0.1:8080",
    ] {
        let error = plan(&["--addr", ":8080", "--pool", pool], "0.0.0.0:8080")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("--addr :8080 listens on every interface")
                && error.contains("give --self http://<this host's address>:8080"),
            "{pool}: {error}"
        );
    }
    // Without the machine's name, a URL naming it is not recognised.
    let unnamed = Plan::from_args(
        &args(&["--addr", ":8080", "--pool", "http://cachebox:8080"]),
        at("0.0.0.0:8080"),
        None,
        None,
    );
    assert!(matches!(unnamed, Err(ServerError::NeedSelf { .. })));
    // Discovery has no list to look in.
    let dns = plan(
        &["--addr", ":8080", "--peers-dns", "peercache.svc:8080"],
        "0.0.0.0:8080",
    );
    assert!(matches!(dns, Err(ServerError::NeedSelf { port: 8080, .. })));
    // A specific address is not replaced by another host's URL: the
    // pool's own check says this node is missing.
    let elsewhere = plan(
        &["--addr", "127.0.0.1:0", "--pool", "http://127.0.0.1:1"],
        "127.0.0.1:41234",
    )
    .unwrap();
    assert_eq!(elsewhere.self_url, "http://127.0.0.1:41234");
    let other_ip = plan(
        &[
            "--addr",
            "10.0.0.1:8080",
            "--pool",
            "http://10.0.0.2:8080,http://localhost:8080",
        ],
        "10.0.0.1:8080",
    )
    .unwrap();
    assert_eq!(other_ip.self_url, "http://10.0.0.1:8080");
}

#[test]
fn pool_entries_are_trimmed() {
    let spaced = plan(
        &[
            "--pool",
            "http://127.0.0.1:8080, http://127.0.0.1:8081 ,\thttp://127.0.0.1:8082",
        ],
        "127.0.0.1:8080",
    )
    .unwrap();
    assert_eq!(
        spaced.peers,
        [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8081",
            "http://127.0.0.1:8082"
        ]
    );
    assert_eq!(spaced.self_url, "http://127.0.0.1:8080");
}

#[test]
fn a_refused_setting_names_its_flag() {
    for (argv, flag, reason) in [
        (
            ["--max-connections", "0"],
            "--max-connections",
            "setting max_connections: must be at least 1",
        ),
        (
            ["--replicas", "0"],
            "--replicas",
            "setting replicas: must be at least 1",
        ),
        (
            ["--max-remove-keys", "10"],
            "--max-remove-keys",
            "setting max_remove_keys: 10 is too small",
        ),
        (
            ["--max-uri-bytes", "100"],
            "--max-uri-bytes",
            "setting max_uri_bytes: 100 is too small",
        ),
    ] {
        let error = plan(&argv, "127.0.0.1:8080").unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("bad {flag}: {reason}")),
            "{argv:?}: {error}"
        );
    }
    // The one setting whose flag has another name.
    let timeout = ServerError::setting(peercache::InvalidSetting::new("request_timeout", "why"));
    assert_eq!(
        timeout.to_string(),
        "bad --peer-timeout: setting request_timeout: why"
    );
}

#[test]
fn scheme_and_conflict_checks_keep_their_messages() {
    let https_self = plan(&["--self", "https://127.0.0.1:8080"], "127.0.0.1:8080")
        .unwrap_err()
        .to_string();
    assert!(
        https_self.contains("is https:// but this node serves cleartext"),
        "{https_self}"
    );
    #[cfg(feature = "tls")]
    {
        let tls = ["--tls-cert", "c.pem", "--tls-key", "k.pem"];
        let http_self = plan(
            &[&["--self", "http://127.0.0.1:8080"][..], &tls[..]].concat(),
            "127.0.0.1:8080",
        )
        .unwrap_err()
        .to_string();
        assert!(http_self.contains("must be https://"), "{http_self}");
        let derived = plan(&tls, "127.0.0.1:8080").unwrap();
        assert_eq!(derived.self_url, "https://127.0.0.1:8080");
        assert!(derived.serves_tls());
        let dns = plan(
            &[&["--peers-dns", "peercache.svc:8080"][..], &tls[..]].concat(),
            "127.0.0.1:8080",
        );
        assert!(matches!(dns, Err(ServerError::DnsWithTls)));
    }
    let front = plan(
        &["--max-body-bytes", "1MiB", "--max-front-body-bytes", "1MiB"],
        "127.0.0.1:8080",
    )
    .unwrap_err()
    .to_string();
    assert!(
        front.starts_with("--max-front-body-bytes 1048576 leaves no room for the key within --max-body-bytes 1048576"),
        "{front}"
    );
    let fits = plan(
        &[
            "--max-body-bytes",
            "1MiB",
            "--max-front-body-bytes",
            "512KiB",
        ],
        "127.0.0.1:8080",
    )
    .unwrap();
    assert_eq!(fits.front.max_body_bytes, 512 << 10);
    let window = plan(&["--peer-auth-window", "500ms"], "127.0.0.1:8080")
        .unwrap_err()
        .to_string();
    assert!(window.contains("is too short"), "{window}");
    let dns = plan(&["--peers-dns", "no-port-here"], "127.0.0.1:8080")
        .unwrap_err()
        .to_string();
    assert!(
        dns.contains("--peers-dns") && dns.contains("NAME:PORT"),
        "{dns}"
    );
}

#[cfg(not(feature = "tls"))]
#[test]
fn tls_flags_say_they_need_the_feature() {
    let error = plan(&["--tls-ca", "ca.pem"], "127.0.0.1:8080")
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("--tls-ca needs TLS") && error.contains("--features tls"),
        "{error}"
    );
}

#[test]
fn peer_sources_and_warnings() {
    let dns = plan(&["--peers-dns", "peercache.svc:8080"], "127.0.0.1:8080").unwrap();
    assert_eq!(
        dns.discovery,
        Some(PeerSource::Dns(DnsDiscovery::new("peercache.svc", 8080)))
    );
    let file = plan(&["--peers-file", "peers.txt"], "127.0.0.1:8080").unwrap();
    assert_eq!(file.discovery, Some(PeerSource::File("peers.txt".into())));
    let open = plan(&["--addr", "10.0.0.1:8080"], "10.0.0.1:8080").unwrap();
    assert_eq!(open.warnings, [OPEN_PEER_ENDPOINT]);
    let signed = plan(
        &["--addr", "10.0.0.1:8080", "--peer-secret-file", "secret"],
        "10.0.0.1:8080",
    )
    .unwrap();
    assert!(signed.warnings.is_empty());
    let local = plan(&["--peer-secret-file", "secret"], "127.0.0.1:8080").unwrap();
    assert!(local.warnings.is_empty());
}

#[test]
fn front_flags_and_their_warnings() {
    let front = |argv: &[&str], peers: &str, front: &str| {
        Plan::from_args(&args(argv), at(peers), Some(at(front)), Some("cachebox")).unwrap()
    };
    let secret = ["--peer-secret-file", "s", "--front-addr", "x"];
    // The front on loopback, the peers beyond: nothing to say.
    let quiet = front(&secret, "10.0.0.1:7000", "127.0.0.1:8080");
    assert!(quiet.warnings.is_empty());
    assert!(!quiet.front.access.open && !quiet.front.access.writes);
    let open = front(
        &[&secret[..], &["--front-open"]].concat(),
        "10.0.0.1:7000",
        "10.0.0.1:8080",
    );
    assert_eq!(open.warnings, [OPEN_FRONT]);
    let writes = [&secret[..], &["--front-open", "--front-writes"]].concat();
    let open_writes = front(&writes, "10.0.0.1:7000", "10.0.0.1:8080");
    assert_eq!(open_writes.warnings, [OPEN_FRONT_WRITES]);
    // Each port takes the local network's names only beyond loopback.
    assert!(!quiet.front.allowed_hosts.allows("cache:8080"));
    assert!(quiet.front.peer_hosts.allows("cache:7000"));
    let shared = plan(&[], "10.0.0.1:8080").unwrap();
    assert!(shared.front.allowed_hosts.allows("cache") && shared.front.peer_hosts.allows("cache"));
    // --front-open on a loopback front changes nothing worth a warning.
    assert!(front(&writes, "10.0.0.1:7000", "127.0.0.1:8080")
        .warnings
        .is_empty());
    let rate = plan(&["--front-rate-limit", "2.5"], "127.0.0.1:8080").unwrap();
    assert_eq!(rate.front.access.rate, Some((2.5, 3)));
    let burst = ["--front-rate-limit", "100", "--front-rate-burst", "10"];
    assert_eq!(
        plan(&burst, "127.0.0.1:8080").unwrap().front.access.rate,
        Some((100.0, 10))
    );
    let tokens = plan(
        &["--front-token-file", "t", "--front-addr", "x"],
        "127.0.0.1:8080",
    )
    .unwrap();
    assert_eq!(tokens.front.access.token_file, Some("t".into()));
    // Tokens beside an open peer endpoint on the same port: refused.
    let beside = plan(&["--front-token-file", "t"], "127.0.0.1:8080").unwrap_err();
    assert!(
        matches!(beside, ServerError::TokensBesideOpenPeers),
        "{beside}"
    );
    let signed = ["--front-token-file", "t", "--peer-secret-file", "s"];
    assert!(plan(&signed, "127.0.0.1:8080").is_ok());
}

#[test]
fn groups_get_the_flags_settings() {
    let defaults = plan(
        &[
            "--cache-bytes",
            "1MiB",
            "--ttl",
            "30s",
            "--trace-keys",
            "hashed",
            "--max-concurrent-loads",
            "8",
            "--load-admission-wait",
            "0",
            "--stale-while-revalidate",
            "30s",
            "--stale-if-error",
            "1h",
            "--cache-not-found",
            "10s",
            "--origin-breaker",
            "5",
            "--change-timeout",
            "300ms",
            "--hot-max-age",
            "0",
        ],
        "127.0.0.1:8080",
    )
    .unwrap()
    .groups;
    assert_eq!(
        defaults,
        GroupDefaults {
            cache_bytes: 1 << 20,
            ttl: Some(Duration::from_secs(30)),
            load_timeout: None,
            admission: Some((8, Duration::ZERO)),
            breaker: Some((5, Duration::from_secs(5))),
            waits: (Duration::ZERO, Duration::from_secs(5)),
            stale_while_revalidate: Some(Duration::from_secs(30)),
            stale_if_error: Some(Duration::from_secs(3600)),
            cache_not_found: Some(Duration::from_secs(10)),
            key_in_traces: KeyInTraces::Hashed,
            change_timeout: Duration::from_millis(300),
            hot_max_age: Duration::ZERO,
        }
    );
}
