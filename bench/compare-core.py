#!/usr/bin/env python3
"""Runs the core micro-benchmarks on both sides in one session and prints a
Markdown table of medians: criterion (peercache/benches/core.rs and
peer.rs) and
`go test -bench` (bench/go, golang/groupcache from Debian), Go run 5 times.

Usage: python3 bench/compare-core.py   (from the repository root)
Needs: cargo, and apt-get install -y golang-go golang-github-golang-groupcache-dev
"""
import json
import pathlib
import re
import statistics
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent

# (row label, criterion id, go benchmark name)
ROWS = [
    ("Group::get, cache hit", "group_get_hit", "BenchmarkGroupGetHit"),
    ("floor: locked hash map get", "floor_locked_hashmap_get", "BenchmarkFloorLockedMapGet"),
    ("Group::get, miss, trivial loader", "group_get_miss_trivial_loader", "BenchmarkGroupGetMissTrivialLoader"),
    ("Group::get, miss, trivial loader, polled in a task (no block_on)", "group_get_miss_polled", "BenchmarkGroupGetMissTrivialLoader"),
    ("tokio block_on of a ready future (the first miss row pays it)", "tokio_block_on_ready", None),
] + [
    (f"ring owner, {n} peers, golang crc32", f"ring_owner/Golang/{n}", f"BenchmarkRingOwner/Golang/{n}")
    for n in (8, 32, 128, 512)
] + [
    (f"ring owner, {n} peers, mailgun fnv1", f"ring_owner/Mailgun/{n}", None)
    for n in (8, 32, 128, 512)
] + [
    ("peer fetch over loopback HTTP/1.1, one at a time", "peer_fetch/http1_sequential", "BenchmarkPeerFetch"),
    ("peer fetch over loopback HTTP/1.1, 16 at once (time per fetch)", "peer_fetch/http1_parallel16", "BenchmarkPeerFetchParallel16"),
    ("peer fetch over loopback h2c, one at a time", "peer_fetch/h2c_sequential", None),
    ("peer fetch over loopback h2c, 16 at once (time per fetch)", "peer_fetch/h2c_parallel16", None),
]


def go_medians():
    out = subprocess.run(
        [str(ROOT / "bench/go/run.sh")], check=True, capture_output=True, text=True
    ).stdout
    runs = {}
    for line in out.splitlines():
        m = re.match(r"(Benchmark\S+?)-\d+\s+\d+\s+([\d.]+) ns/op", line)
        if m:
            runs.setdefault(m.group(1), []).append(float(m.group(2)))
    return {name: statistics.median(v) for name, v in runs.items()}


def rust_medians():
    subprocess.run(
        ["cargo", "bench", "-p", "peercache", "--bench", "core", "--bench", "peer", "--",
         "--warm-up-time", "1", "--measurement-time", "3"],
        check=True, cwd=ROOT, capture_output=True,
    )
    medians = {}
    for _, crit_id, _ in ROWS:
        path = ROOT / "target/criterion" / crit_id / "new/estimates.json"
        medians[crit_id] = json.loads(path.read_text())["median"]["point_estimate"]
    return medians


def fmt(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.1f} ns"


go = go_medians()
rust = rust_medians()
print("| benchmark | peercache (median) | golang/groupcache (median of 5) | ratio Rust/Go |")
print("| --- | --- | --- | --- |")
for label, crit_id, go_name in ROWS:
    r = rust[crit_id]
    g = go.get(go_name) if go_name else None
    ratio = f"{r / g:.2f}×" if g else "—"
    print(f"| {label} | {fmt(r)} | {fmt(g) if g else '— (Go has no h2c peers)' if 'h2c' in label else '— (no Go counterpart)'} | {ratio} |")
