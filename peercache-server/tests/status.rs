//! The status page in headless Chromium, against a live three-node cluster:
//! the figures it shows (this node, each peer's state and ring share, each
//! group's counters, hit ratio and cache fill) match `/stats`, and a
//! screenshot is kept as a test artefact (`target/tmp/status-node0.png`).
//!
//! Needs Chromium (`apt-get install -y chromium`; `.ci/run` installs it);
//! without it the test passes saying it skipped and what to install, unless
//! `CI` or `PEERCACHE_FULL_TESTS` is set, where it fails
//! ([`support::require`]); `PEERCACHE_SKIP_BROWSER=1` skips it knowingly.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Runs headless Chromium on `url` with `extra` arguments, bounded in time;
/// its standard output.
fn headless(browser: &PathBuf, url: &str, extra: &[String]) -> String {
    // Each run its own profile and output: tests run Chromium at once.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("{}-{run}", std::process::id());
    let profile = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("chromium-profile-{id}"));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("chromium-{id}.out"));
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.display()),
            // Let the page fetch /stats and render (virtual time runs as
            // fast as the page allows).
            "--virtual-time-budget=5000",
        ])
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("Chromium starts");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::read_to_string(&out).unwrap()
}

/// The text of the element whose `data-test` is `key` in a dumped DOM.
fn shown<'a>(dom: &'a str, key: &str) -> &'a str {
    let marker = format!("data-test=\"{key}\"");
    let at = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("the page shows no {key}"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap();
    &rest[start..start + end]
}

/// A percentage as the page shows it (`12.3%`), as a fraction.
fn percent(text: &str) -> f64 {
    text.trim_end_matches('%').parse::<f64>().unwrap() / 100.0
}

#[test]
fn the_status_page_shows_what_stats_says() {
    let Some(browser) = require(Tool::Chromium, "the status page in Chromium") else {
        return;
    };
    let nodes = start_servers(3, &[]);
    let colors = colors();
    for node in &nodes {
        for (name, _) in colors.iter().take(12) {
            get_ok(node.addr, &format!("/color?name={}", escape(name)));
        }
    }
    // A browser asking for / gets the page too.
    let url = format!("{}/status", nodes[0].url);
    let dom = headless(&browser, &url, &["--dump-dom".to_owned()]);
    assert!(
        dom.contains("data-rendered=\"yes\""),
        "the page did not render: {dom}"
    );
    let stats = stats(nodes[0].addr);

    assert_eq!(shown(&dom, "self"), stats["self_url"].as_str().unwrap());
    for peer in stats["peers"].as_array().unwrap() {
        let name = peer["peer"].as_str().unwrap();
        assert_eq!(
            shown(&dom, &format!("peer:{name}:state")),
            peer["state"].as_str().unwrap()
        );
        let share = stats["ring"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["peer"] == name)
            .unwrap()["share"]
            .as_f64()
            .unwrap();
        let on_page = percent(shown(&dom, &format!("peer:{name}:share")));
        assert!(
            (on_page - share).abs() < 0.0006,
            "{name}: {on_page} vs {share}"
        );
    }
    let group = &group_in(&stats, "colors");
    for field in [
        "gets",
        "loads",
        "local_loads",
        "peer_loads",
        "peer_errors",
        "server_requests",
        "server_batches",
        "loads_refused",
        "loads_failed_fast",
        "refreshes",
        "negative_hits",
    ] {
        assert_eq!(
            shown(&dom, &format!("group:colors:{field}")),
            group[field].as_u64().unwrap().to_string(),
            "{field}"
        );
    }
    assert_eq!(
        shown(&dom, "group:colors:hints"),
        format!(
            "{} / {}",
            group["hints_pending"].as_u64().unwrap(),
            group["hints_delivered"].as_u64().unwrap()
        )
    );
    assert_eq!(
        shown(&dom, "group:colors:hot_aged"),
        group["hot_cache"]["aged"].as_u64().unwrap().to_string()
    );
    let gets = group["gets"].as_u64().unwrap() as f64;
    let hits = group["cache_hits"].as_u64().unwrap() as f64;
    let ratio = percent(shown(&dom, "group:colors:hit_ratio"));
    assert!(
        (ratio - hits / gets).abs() < 0.0006,
        "{ratio} vs {}",
        hits / gets
    );
    let held = group["main_cache"]["bytes"].as_u64().unwrap()
        + group["hot_cache"]["bytes"].as_u64().unwrap();
    let budget = group["budget_bytes"].as_u64().unwrap();
    let fill = shown(&dom, "group:colors:fill");
    let expected = format!(
        "{:.1} MiB of {:.1} MiB",
        held as f64 / 1048576.0,
        budget as f64 / 1048576.0
    );
    assert!(fill.starts_with(&expected), "{fill} vs {expected}");

    // The artefact: what a person would see.
    let png = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-node0.png");
    let _ = std::fs::remove_file(&png);
    headless(
        &browser,
        &url,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,800".to_owned(),
        ],
    );
    let bytes = std::fs::read(&png).expect("Chromium wrote the screenshot");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{} bytes",
        bytes.len()
    );
    println!("screenshot: {}", png.display());
}

#[test]
fn with_tokens_the_page_takes_one_from_its_fragment() {
    let Some(browser) = require(Tool::Chromium, "the status page with a token") else {
        return;
    };
    let token = "status-0123456789abcdef";
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-tokens");
    std::fs::write(&file, format!("prometheus metrics {token}\n")).unwrap();
    let secret = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
    let nodes = start_cluster(1, |_, addrs| {
        let args = server_args(
            addrs[0],
            addrs,
            &[
                "--front-token-file",
                &file.display().to_string(),
                "--peer-secret-file",
                &secret.display().to_string(),
            ],
        );
        start_tokened("node", &args, addrs[0])
    });
    let page = format!("{}/status", nodes[0].url);
    let dom = headless(
        &browser,
        &format!("{page}#token={token}"),
        &["--dump-dom".to_owned()],
    );
    assert!(
        dom.contains("data-rendered=\"yes\""),
        "the page did not render: {dom}"
    );
    assert_eq!(shown(&dom, "self"), nodes[0].url);
    let dom = headless(&browser, &page, &["--dump-dom".to_owned()]);
    assert!(!dom.contains("data-rendered=\"yes\""), "{dom}");
    assert!(
        dom.contains("/stats answered 401: open this page as /status#token=TOKEN"),
        "{dom}"
    );
}

#[test]
fn a_browser_asking_for_the_root_gets_the_page_and_curl_gets_text() {
    let nodes = start_servers(1, &[]);
    let (status, text) = get(nodes[0].addr, "/").unwrap();
    assert_eq!(status, 200);
    assert!(text.starts_with("peercache-server"), "{text}");
    let mut stream = std::net::TcpStream::connect(nodes[0].addr).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: localhost\r\nAccept: text/html,application/xhtml+xml\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("text/html"), "{answer}");
    assert!(answer.contains("<title>peercache status</title>"));
    // Self-contained: no external script, style or image.
    assert!(!answer.contains("src=\"http") && !answer.contains("href=\"http"));
}
