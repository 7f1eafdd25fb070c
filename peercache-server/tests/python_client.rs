//! The Python client of `examples/python/` against a real 3-node cluster
//! with tokens and the front API on its own ports: reads, batched reads,
//! writes, refusals (`check_client.py` says what it checks). Needs python3
//! with `requests`: skipped with a line where they are missing, failed
//! under `CI` or `PEERCACHE_FULL_TESTS`.

mod support;

use std::process::Command;
use support::*;

#[test]
fn the_python_client_works_against_a_cluster() {
    let Some(python) = require(Tool::Python, "the Python client test") else {
        return;
    };
    let (read, write, admin) = (
        "py-read-0123456789abcdef",
        "py-write-0123456789abcdef",
        "py-admin-0123456789abcdef",
    );
    let tokens = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python-tokens");
    std::fs::write(
        &tokens,
        format!("app read {read}\nimporter write {write}\nops admin {admin}\n"),
    )
    .unwrap();
    let tokens = tokens.display().to_string();
    let mut peer_ports = Vec::new();
    let nodes = start_cluster(3, |i, addrs| {
        peer_ports = addrs.to_vec();
        let front = free_addrs(1)[0];
        let extra = ["--front-token-file", &tokens, "--echo-group"];
        let mut args = server_args(addrs[i], addrs, &extra);
        args.extend(["--front-addr".to_owned(), front.to_string()]);
        start_tokened(&format!("node{i}"), &args, front)
    });
    let urls: Vec<String> = nodes.iter().map(|n| format!("http://{}", n.addr)).collect();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/python/check_client.py"
    );
    let output = Command::new(&python)
        .arg(script)
        .env("PEERCACHE_URLS", urls.join(","))
        .env("PEERCACHE_READ_TOKEN", read)
        .env("PEERCACHE_WRITE_TOKEN", write)
        .env("PEERCACHE_ADMIN_TOKEN", admin)
        .env("PEERCACHE_PEER_URL", format!("http://{}", peer_ports[0]))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // Straight to the nodes, whatever proxy the environment names.
        .env("NO_PROXY", "*")
        .env("no_proxy", "*")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "check_client.py failed: {said}");
    assert!(said.contains("every check passed"), "{said}");
}
