use super::*;

#[test]
fn sizes() {
    assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
    assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
    assert_eq!(parse_bytes("2G"), Ok(2 << 30));
    assert!(parse_bytes("64 parsecs").is_err());
    assert!(parse_bytes("MiB").is_err());
    assert!(parse_bytes("99999999999999GiB").is_err());
}

#[test]
fn durations() {
    assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("0s").is_err());
    assert!(parse_duration("-1s").is_err());
    let huge = parse_duration("18000000000000000000s").unwrap_err();
    assert!(huge.contains("too long"), "{huge}");
    assert!(parse_duration("1e400s").is_err());
    assert_eq!(parse_duration("3153600000s"), Ok(MAX_DURATION));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert!(parse_duration("1d").unwrap_err().contains("ms, s, m or h"));
}

#[test]
fn the_load_cap_and_its_wait() {
    assert_eq!(parse_count("8"), Ok(8));
    assert!(parse_count("0").unwrap_err().contains("at least 1"));
    assert!(parse_count("many").is_err());
    assert_eq!(parse_wait("0"), Ok(Duration::ZERO));
    assert_eq!(parse_wait("250ms"), Ok(Duration::from_millis(250)));
    assert!(parse_wait("soon").is_err());
    let args = parse(&["--max-concurrent-loads", "4"]).unwrap();
    assert_eq!(args.max_concurrent_loads, Some(4));
    assert_eq!(args.load_admission_wait, Duration::from_secs(1));
    let refused = parse(&["--max-concurrent-loads", "0"])
        .unwrap_err()
        .to_string();
    assert!(refused.contains("--max-concurrent-loads"), "{refused}");
}

fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
    Args::try_parse_from(go_style_flags(
        std::iter::once("peercache-server").chain(argv.iter().copied()),
    ))
}

#[test]
fn go_style_flags_are_rewritten() {
    let rewritten = |argv: &[&str]| -> Vec<String> {
        go_style_flags(argv.iter().copied())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    };
    assert_eq!(
        rewritten(&[
            "peercache-server",
            "-addr=:8080",
            "-pool=http://127.0.0.1:8080"
        ]),
        [
            "peercache-server",
            "--addr=:8080",
            "--pool=http://127.0.0.1:8080"
        ]
    );
    assert_eq!(
        rewritten(&[
            "p",
            "-addr",
            ":8080",
            "-pool",
            "http://a:1",
            "-self",
            "http://a:1"
        ]),
        [
            "p",
            "--addr",
            ":8080",
            "--pool",
            "http://a:1",
            "--self",
            "http://a:1"
        ]
    );
    // Clap's own spellings, other flags, and look-alikes stay.
    for verbatim in [
        ["p", "--addr", ":8080"],
        ["p", "-h", "-V"],
        ["p", "-address", "x"],
        ["p", "-pools=x", "y"],
        ["p", "--echo-group", "-V"],
        // After `--` nothing is a flag.
        ["p", "--", "-addr=:1"],
        // A value is not a flag; the program name neither.
        ["p", "--self", "-pool"],
    ] {
        assert_eq!(rewritten(&verbatim), verbatim);
    }
    assert_eq!(rewritten(&["-addr"]), ["-addr"]);
    // The value of `-addr V` is never rewritten.
    assert_eq!(
        rewritten(&["p", "-self", "-pool", "-pool=x"]),
        ["p", "--self", "-pool", "--pool=x"]
    );
}

#[test]
fn go_style_command_lines_parse() {
    let seed = parse(&["-addr=:8080", "-pool=http://127.0.0.1:8080"]).unwrap();
    assert_eq!(seed.addr, ":8080");
    assert_eq!(seed.pool, ["http://127.0.0.1:8080"]);
    assert_eq!(seed.self_url, None);
    let spaced = parse(&[
        "-addr",
        ":9090",
        "-pool",
        "http://a:1,http://b:2",
        "-self",
        "http://a:1",
    ])
    .unwrap();
    assert_eq!(spaced.addr, ":9090");
    assert_eq!(spaced.pool, ["http://a:1", "http://b:2"]);
    assert_eq!(spaced.self_url.as_deref(), Some("http://a:1"));
    // Mixed with clap's spellings.
    let mixed = parse(&["-addr=:1", "--echo-group", "--cache-bytes", "1MiB"]).unwrap();
    assert!(mixed.echo_group);
    assert_eq!(mixed.cache_bytes, 1 << 20);
    // Other single-dash words are still refused.
    assert!(parse(&["-ttl=5s"]).is_err());
}

#[test]
fn pool_entries_are_trimmed() {
    let args = parse(&["--pool", "http://a:1, http://b:2 ,\thttp://c:3 "]).unwrap();
    assert_eq!(args.pool, ["http://a:1", "http://b:2", "http://c:3"]);
    let args = parse(&["-pool", " http://a:1"]).unwrap();
    assert_eq!(args.pool, ["http://a:1"]);
}

#[test]
fn hot_cache_policies() {
    assert_eq!(parse_hot_cache("one-in-4"), Ok(HotCachePolicy::OneIn(4)));
    assert_eq!(parse_hot_cache("never"), Ok(HotCachePolicy::Never));
    assert_eq!(parse_hot_cache("frequent"), Ok(HotCachePolicy::Frequent));
    assert!(parse_hot_cache("one-in-0").is_err());
    assert!(parse_hot_cache("sometimes").is_err());
    // The node's default follows the hash mode's family unless given.
    let default_of = |argv: &[&str]| {
        let mut full = vec!["peercache-server"];
        full.extend_from_slice(argv);
        Args::parse_from(full).hot_cache_default()
    };
    assert_eq!(default_of(&[]), HotCachePolicy::Frequent);
    assert_eq!(
        default_of(&["--hash-mode", "mailgun"]),
        HotCachePolicy::Always
    );
    assert_eq!(
        default_of(&["--hash-mode", "mailgun", "--hot-cache", "never"]),
        HotCachePolicy::Never
    );
}
