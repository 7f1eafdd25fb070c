//! The harness's own pieces, end to end on loopback: three `bench-node`
//! processes and a `floor`, driven by `loadgen` as `bench/run` drives them.
//! Checks behaviour only (values, one load per key, no errors, the report's
//! fields); no timing is asserted.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners.iter().map(|l| l.local_addr().unwrap()).collect()
}

/// `GET target`: status and body.
fn get(addr: SocketAddr, target: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let status = std::str::from_utf8(&answer[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, answer[head_end + 4..].to_vec()))
}

fn wait_ready(addr: SocketAddr, child: &mut Child, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{addr} exited with {status}");
        }
        if get(addr, path).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{addr} not ready within 20 s");
}

fn start_nodes(addrs: &[SocketAddr], extra: &[&str]) -> Vec<Proc> {
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    addrs
        .iter()
        .zip(&urls)
        .map(|(addr, url)| {
            let mut child = Command::new(env!("CARGO_BIN_EXE_bench-node"))
                .args(["--self", url, "--peers", &urls.join(",")])
                .args(["--listen", &addr.to_string()])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            wait_ready(*addr, &mut child, "/stats");
            Proc(child)
        })
        .collect()
}

fn loadgen(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stats(addr: SocketAddr) -> serde_json::Value {
    let (status, body) = get(addr, "/stats").unwrap();
    assert_eq!(status, 200);
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn three_nodes_serve_the_deterministic_values_with_one_load_per_key() {
    let addrs = free_addrs(3);
    let _nodes = start_nodes(&addrs, &["--value-size", "10"]);
    assert_eq!(
        get(addrs[1], "/get?key=ab").unwrap(),
        (200, b"v:abv:abv:".to_vec())
    );
    assert_eq!(get(addrs[0], "/get").unwrap().0, 400);

    let target = format!("http://{}", addrs[0]);
    let report = loadgen(&[
        "--target",
        &target,
        "-c",
        "4",
        "--requests",
        "300",
        "--keys",
        "50",
        "--dist",
        "sequential",
    ]);
    assert_eq!(report["requests"], 300);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["bytes"], 3000);
    for field in ["rps", "p50_us", "p90_us", "p99_us", "p999_us"] {
        assert!(report[field].as_f64().unwrap() > 0.0, "{field}: {report}");
    }
    let all: Vec<serde_json::Value> = addrs.iter().map(|a| stats(*a)).collect();
    let loads: u64 = all.iter().map(|s| s["loads"].as_u64().unwrap()).sum();
    // 50 keys through node 0, plus "ab" through node 1.
    assert_eq!(loads, 51, "{all:?}");
    assert!(all[0]["peer_loads"].as_u64().unwrap() > 0);
}

#[test]
fn a_burst_on_one_cold_key_is_one_load_and_errors_are_counted() {
    let addrs = free_addrs(3);
    let _nodes = start_nodes(&addrs, &["--load-delay", "100ms", "--hot-cache", "false"]);
    let targets: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    let report = loadgen(&[
        "--target",
        &targets.join(","),
        "-c",
        "60",
        "--requests",
        "60",
        "--keys",
        "1",
        "--key-prefix",
        "storm-",
    ]);
    assert_eq!(report["requests"], 60);
    assert_eq!(report["errors"], 0);
    let loads: u64 = addrs
        .iter()
        .map(|a| stats(*a)["loads"].as_u64().unwrap())
        .sum();
    assert_eq!(loads, 1);

    // Non-200 answers are errors: a path the node does not serve.
    let report = loadgen(&[
        "--target",
        &targets[0],
        "--path",
        "/nowhere?key=",
        "-c",
        "2",
        "--requests",
        "10",
    ]);
    assert_eq!(report["errors"], 10);
    assert!(report["first_error"].as_str().unwrap().contains("404"));
}

#[test]
fn the_floor_answers_every_request_with_its_fixed_body() {
    let addr = free_addrs(1)[0];
    let mut child = Command::new(env!("CARGO_BIN_EXE_floor"))
        .args(["--listen", &addr.to_string(), "--body-size", "100"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(addr, &mut child, "/");
    let _floor = Proc(child);
    let report = loadgen(&[
        "--target",
        &format!("http://{addr}"),
        "-c",
        "3",
        "--requests",
        "90",
    ]);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["bytes"], 9000);
}
