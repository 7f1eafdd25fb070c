//! The command line of golang/groupcache's example, as the project's seed
//! gives it, works verbatim:
//!
//! ```sh
//! peercache-server -addr=:8080 -pool=http://127.0.0.1:8080
//! curl 'localhost:8080/color?name=green'    # -> #00FF00
//! curl 'localhost:8080/color?name=red'      # -> #FF0000
//! ```
//!
//! `-addr=:PORT` listens on every interface, as the seed's command does;
//! the tests send traffic to 127.0.0.1 only.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use support::{free_addrs, parse_answer, run_to_exit, server_binary, start, Proc, WAIT};

/// `GET target` on `addr` with `Host: host`, as curl sends it for
/// `curl 'host/target'`: status and body.
fn get_as(addr: SocketAddr, host: &str, target: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT)?;
    stream.set_read_timeout(Some(WAIT))?;
    stream.set_write_timeout(Some(WAIT))?;
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    parse_answer(&answer)
}

/// `peercache-server -addr=:PORT -pool=http://127.0.0.1:PORT`, on a port
/// that was free (fresh ports if another process takes one first).
fn start_seed_node() -> (Proc, u16) {
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_addrs(1)[0].port();
        let args = [
            format!("-addr=:{port}"),
            format!("-pool=http://127.0.0.1:{port}"),
        ];
        match start(
            "seed",
            &server_binary(),
            &args,
            ([127, 0, 0, 1], port).into(),
        ) {
            Ok(node) => return (node, port),
            Err(error) => last = error,
        }
    }
    panic!("the seed node did not start in 5 tries: {last}");
}

#[test]
fn the_seed_command_line_and_its_curl_lines_work_verbatim() {
    let (node, port) = start_seed_node();
    let host = format!("localhost:{port}");
    for (name, hex) in [("green", "#00FF00"), ("red", "#FF0000")] {
        let (status, body) = get_as(node.addr, &host, &format!("/color?name={name}")).unwrap();
        assert_eq!((status, body.trim_end()), (200, hex), "{name}");
    }
    // Its URL was not given: it is the one --pool URL on its port.
    let (status, stats) = get_as(node.addr, &host, "/stats").unwrap();
    assert_eq!(status, 200, "{stats}");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["self_url"], format!("http://127.0.0.1:{port}"));
    // It owns every key: the colours were loaded here, once each.
    let colors = stats["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "colors")
        .unwrap()
        .clone();
    assert_eq!(colors["local_loads"], 2, "{colors}");
    assert!(
        node.log().contains("peercache-server listening"),
        "{}",
        node.log()
    );
}

#[test]
fn go_style_flags_without_a_url_for_this_node_still_ask_for_self() {
    // Every interface, and no --pool URL names this machine: the node
    // cannot know how the others reach it.
    let (code, out) = run_to_exit(
        &server_binary(),
        &["-addr=:0", "-pool=http://10.0.0.1:80, http://10.0.0.2:80"],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("--addr :0 listens on every interface")
            && out.contains("give --self http://<this host's address>:"),
        "{out}"
    );
    // Go's `-flag value` spelling, and a name clap does not know.
    let (code, out) = run_to_exit(&server_binary(), &["-addr", "127.0.0.1:0", "-peers=x"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("unexpected argument"), "{out}");
}
