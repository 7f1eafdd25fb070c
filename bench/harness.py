#!/usr/bin/env python3
"""The side-by-side benchmarks of peercache and golang/groupcache.

Runs each scenario of issue 7 against Go and Rust alternately (Go, Rust,
Go, Rust, ...: `--rounds` rounds, 3 by default), prints medians and the
Rust/Go ratios, and writes bench/results/results.json and
bench/results/summary.png. Called by bench/run, which installs and builds
what it needs; run it alone only after bench/run has built everything.

A third contestant, groupcache-rs (the crates.io crate `groupcache` 0.3.0,
a gRPC-based Rust port; node in bench/rs-groupcache/), runs in the cluster,
peer and storm scenarios in the same rounds (Go, Rust, groupcache-rs, ...)
when bench/run could build it (target/rs-groupcache/release/rsgcnode);
--no-groupcache-rs leaves it out. Its medians and its ratio to Go are
reported next to Rust's (results.json: "groupcache_rs" and
"groupcache_rs_ratio" in the summary rows, runs[scenario]["groupcache_rs"]).

Scenarios (--only picks some, comma-separated):
  inproc   Group::get of a cached key, 1 and 2 threads, against Go's
           testing.B, and the locked-HashMap floor
  cluster  3 nodes, warm, Zipf s=1.1 over 10,000 keys, 100-byte values,
           16 clients on one node; server CPU per request; a do-nothing
           server (Rust hyper and Go net/http) as the floor
  peer     uniform over 100,000 keys, hot cache off: most requests cross to
           the owner; TIME_WAIT sockets left after the run
  storm    1,000 concurrent requests for one cold key over 3 nodes, loader
           delay 200 ms: loads in the cluster, slowest request
  memory   one node filling a 256 MiB budget with 1 KiB values: RSS
  hotkeys  Zipf s=1.1 over 3 nodes, same hot-cache bytes: peer fetches per
           1,000 requests
  large    64 KiB and 1 MiB values, hot cache off and on, Rust's h2c, and
           one- and two-hop floors at the same body sizes (bench/large.py)
"""
import argparse
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import large
from report import GCRS, GCRS_LABEL, RESULTS, chart, print_table, summarize

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release"
GO_BIN = ROOT / "target/bench-go"
LOGS = ROOT / "target/bench-logs"
TICKS = os.sysconf("SC_CLK_TCK")

SIDES = {
    "go": {"node": GO_BIN / "benchnode", "floor": GO_BIN / "floornode"},
    "rust": {"node": BIN / "bench-node", "floor": BIN / "floor"},
    # The third contestant: the crates.io `groupcache` crate (no floor of its
    # own: its "node CPU / floor CPU" uses the Rust floor).
    "groupcache_rs": {"node": ROOT / "target/rs-groupcache/release/rsgcnode"},
}
GCRS_SCENARIOS = ("cluster", "peer", "storm")


# ---------------------------------------------------------------- processes

def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Proc:
    def __init__(self, args, name):
        self.name = name
        self.log = open(LOGS / f"{name}.log", "w")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=self.log)

    @property
    def pid(self):
        return self.p.pid

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def wait_ready(url, proc, what):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.p.poll() is not None:
            raise RuntimeError(f"{what} exited: see {proc.log.name}")
        try:
            http_get(url, timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} not ready within 20 s: see {proc.log.name}")


def start_nodes(side, n, *, cache_bytes=64 << 20, value_size=100, load_delay="0",
                hot_cache=True, extra_args=()):
    ports = free_ports(n)
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    procs = []
    try:
        for i, port in enumerate(ports):
            args = [str(SIDES[side]["node"]), "--self", urls[i], "--peers", ",".join(urls),
                    "--listen", f"127.0.0.1:{port}", "--group", "bench",
                    "--cache-bytes", str(cache_bytes), "--value-size", str(value_size),
                    "--load-delay", load_delay]
            if not hot_cache:
                args += ["--hot-cache=false"]
            args += list(extra_args)
            proc = Proc(args, f"{side}-node{i}")
            procs.append(proc)
            wait_ready(urls[i] + "/stats", proc, f"{side} node {i}")
        if side == GCRS:
            wait_peers(urls, procs, side)
    except Exception:
        for p in procs:
            p.stop()
        raise
    return urls, procs


def wait_peers(urls, procs, what):
    """groupcache-rs nodes route only to peers they have connected to, and
    connect in the background as the others come up: wait until every node
    reports all its peers connected ("peers_ready" in /stats)."""
    deadline = time.monotonic() + 20
    for i, (url, proc) in enumerate(zip(urls, procs)):
        while not stats(url).get("peers_ready"):
            if proc.p.poll() is not None:
                raise RuntimeError(f"{what} node {i} exited: see {proc.log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} node {i}: peers not connected within 20 s: "
                                   f"see {proc.log.name}")
            time.sleep(0.02)


def start_floor(side, body_size=100, upstream=None):
    port = free_ports(1)[0]
    args = [str(SIDES[side]["floor"]), "--listen", f"127.0.0.1:{port}",
            "--body-size", str(body_size)]
    if upstream:
        args += ["--upstream", upstream.removeprefix("http://")]
    proc = Proc(args, f"{side}-floor" + ("-relay" if upstream else ""))
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/", proc, f"{side} floor")
    return url, proc


def cpu_seconds(procs):
    total = 0
    for p in procs:
        with open(f"/proc/{p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def stats(url):
    return json.loads(http_get(url + "/stats"))


def time_wait(ports):
    """Sockets in TIME_WAIT with a local or remote port among `ports`."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] != "06":
                continue
            local, remote = int(f[1].split(":")[1], 16), int(f[2].split(":")[1], 16)
            if local in ports or remote in ports:
                count += 1
    return count


def loadgen(targets, *, c=16, duration=None, requests=None, warmup="0", keys=10000,
            dist="uniform", zipf_s=1.1, prefix="key-", threads=1):
    args = [str(BIN / "loadgen"), "--target", ",".join(targets), "-c", str(c),
            "--keys", str(keys), "--dist", dist, "--zipf-s", str(zipf_s),
            "--key-prefix", prefix, "--warmup", warmup, "--threads", str(threads), "--json"]
    if duration:
        args += ["--duration", duration]
    if requests:
        args += ["--requests", str(requests)]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


# ---------------------------------------------------------------- scenarios

def run_http(side, targets_of, procs, measure):
    """Warm up, then measure with CPU time of `procs` around the run."""
    before = cpu_seconds(procs)
    result = measure(targets_of)
    cpu = cpu_seconds(procs) - before
    result["server_cpu_s"] = cpu
    result["cpu_us_per_req"] = cpu * 1e6 / max(result["requests"], 1)
    return result


def scenario_cluster(side, a):
    urls, procs = start_nodes(side, 3)
    try:
        loadgen([urls[0]], duration=a.warmup, dist="zipf", keys=10000)
        r = run_http(side, urls, procs, lambda u: loadgen(
            [u[0]], duration=a.duration, dist="zipf", keys=10000))
        r["peer_loads"] = sum(stats(u)["peer_loads"] for u in urls)
        return r
    finally:
        for p in procs:
            p.stop()


def scenario_floor(side, a):
    url, proc = start_floor(side)
    try:
        loadgen([url], duration=a.warmup)
        return run_http(side, [url], [proc], lambda u: loadgen(
            u, duration=a.duration, dist="zipf", keys=10000))
    finally:
        proc.stop()


def scenario_peer(side, a):
    urls, procs = start_nodes(side, 3, hot_cache=False)
    ports = [int(u.rsplit(":", 1)[1]) for u in urls]
    try:
        # Warm-up fills every owner's main cache with all 100,000 keys.
        loadgen(urls, requests=100000, dist="sequential", keys=100000)
        before = stats(urls[0])
        r = run_http(side, urls, procs, lambda u: loadgen(
            [u[0]], duration=a.duration, dist="uniform", keys=100000))
        after = stats(urls[0])
        r["peer_loads"] = after["peer_loads"] - before["peer_loads"]
        hits_after, hits_before = after["hot_cache"]["hits"], before["hot_cache"]["hits"]
        # null where a node cannot tell (groupcache-rs with a hot cache on)
        r["hot_hits"] = None if hits_after is None or hits_before is None \
            else hits_after - hits_before
        r["time_wait"] = time_wait(ports)
        return r
    finally:
        for p in procs:
            p.stop()


def scenario_storm(side, a, round_no):
    urls, procs = start_nodes(side, 3, load_delay="200ms")
    try:
        r = loadgen(urls, c=1000, requests=1000, keys=1, prefix=f"storm-{round_no}-")
        s = [stats(u) for u in urls]
        r["loads"] = sum(x["loads"] for x in s)
        return r
    finally:
        for p in procs:
            p.stop()


def scenario_memory(side, a):
    budget = 256 << 20
    urls, procs = start_nodes(side, 1, cache_bytes=budget, value_size=1024)
    try:
        # 1.5 times the budget of distinct 1 KiB values, each asked once.
        keys = int(budget * 1.5 / 1024)
        r = loadgen(urls, requests=keys, dist="sequential", keys=keys, c=16)
        s = stats(urls[0])
        r["cache_bytes"] = s["main_cache"]["bytes"] + s["hot_cache"]["bytes"]
        r["rss_mib"] = status_kib(procs[0].pid, "VmRSS") / 1024
        r["peak_rss_mib"] = status_kib(procs[0].pid, "VmHWM") / 1024
        r["budget_mib"] = budget / (1 << 20)
        return r
    finally:
        for p in procs:
            p.stop()


def scenario_hotkeys(side, a):
    urls, procs = start_nodes(side, 3)
    try:
        r = loadgen(urls, duration=a.duration, dist="zipf", keys=10000)
        s = [stats(u) for u in urls]
        r["peer_loads"] = sum(x["peer_loads"] for x in s)
        r["peer_fetches_per_1000"] = r["peer_loads"] * 1000 / max(r["requests"], 1)
        r["hot_items"] = sum(x["hot_cache"]["items"] for x in s)
        return r
    finally:
        for p in procs:
            p.stop()


def scenario_inproc(a):
    """Criterion (Rust) and go test -bench (Go), alternated per round."""
    rust_ids = {"hit_1": "group_get_hit", "hit_2": "group_get_hit_2threads",
                "floor_1": "floor_locked_hashmap_get",
                "floor_2": "floor_locked_hashmap_get_2threads"}
    go_names = {"hit_1": ("BenchmarkGroupGetHit", 1), "hit_2": ("BenchmarkGroupGetHitParallel", 2),
                "floor_1": ("BenchmarkFloorLockedMapGet", 1),
                "floor_2": ("BenchmarkFloorLockedMapGetParallel", 2)}
    rounds = {"go": [], "rust": []}
    for _ in range(a.rounds):
        go = {}
        out = subprocess.run(
            [str(ROOT / "bench/go/run.sh"), "-bench", "GroupGetHit|FloorLockedMapGet",
             "-cpu", "1,2", "-count", "1"],
            check=True, capture_output=True, text=True, env={**os.environ, "COUNT": "1"}).stdout
        for key, (name, cpu) in go_names.items():
            for line in out.splitlines():
                parts = line.split()
                label = name if cpu == 1 else f"{name}-{cpu}"
                if parts and (parts[0] == label or (cpu == 1 and parts[0] == name)) \
                        and "ns/op" in line:
                    go[key] = float(parts[2])
        rounds["go"].append(go)
        subprocess.run(
            ["cargo", "bench", "-p", "peercache", "--bench", "core", "--",
             "--warm-up-time", "1", "--measurement-time", "2",
             "^(group_get_hit|group_get_hit_2threads|floor_locked_hashmap_get.*)$"],
            check=True, cwd=ROOT, capture_output=True)
        rust = {}
        for key, crit in rust_ids.items():
            est = ROOT / "target/criterion" / crit / "new/estimates.json"
            rust[key] = json.loads(est.read_text())["median"]["point_estimate"]
        rounds["rust"].append(rust)
    return rounds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--warmup", default="3s")
    ap.add_argument("--only", default="inproc,cluster,peer,storm,memory,hotkeys,large")
    ap.add_argument("--no-groupcache-rs", action="store_true",
                    help="leave out the third contestant (crates.io groupcache) even if built")
    a = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    only = a.only.split(",")
    runs = {}
    machine = {
        "cpus": os.cpu_count(),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                     if l.startswith("model name")), "?"),
        "kernel": os.uname().release,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if "inproc" in only:
        print("== inproc", flush=True)
        runs["inproc"] = scenario_inproc(a)
    http = [s for s in ("cluster", "peer", "storm", "memory", "hotkeys", "large") if s in only]
    sides = ["go", "rust"]
    third = [s for s in http if s in GCRS_SCENARIOS]
    if third and not a.no_groupcache_rs:
        if SIDES[GCRS]["node"].exists():
            sides.append(GCRS)
        else:
            print(f"note: {SIDES[GCRS]['node']} not built: running without {GCRS_LABEL}",
                  file=sys.stderr, flush=True)
    gcrs_failures = []
    for name in http:
        runs[name] = {"go": [], "rust": []}
        if GCRS in sides and name in GCRS_SCENARIOS:
            runs[name][GCRS] = []
        if name == "cluster":
            runs["floor"] = {"go": [], "rust": []}
    for round_no in range(a.rounds):
        for side in sides:
            for name in http:
                if side == GCRS:
                    if name in GCRS_SCENARIOS:
                        run_gcrs(name, a, round_no, runs, gcrs_failures)
                    continue
                print(f"== round {round_no + 1}: {name}, {side}", flush=True)
                if name == "cluster":
                    runs[name][side].append(scenario_cluster(side, a))
                    runs["floor"][side].append(scenario_floor(side, a))
                elif name == "storm":
                    runs[name][side].append(scenario_storm(side, a, round_no))
                elif name == "large":
                    runs[name][side].append(large.scenario_large(sys.modules[__name__], side, a))
                else:
                    runs[name][side].append(globals()[f"scenario_{name}"](side, a))
    summary = summarize(runs)
    out = {"machine": machine, "args": vars(a), "runs": runs, "summary": summary}
    if gcrs_failures:
        out["groupcache_rs_failures"] = gcrs_failures
    (RESULTS / "results.json").write_text(json.dumps(out, indent=2))
    print_table(summary)
    chart(summary)


def run_gcrs(name, a, round_no, runs, failures):
    """One groupcache-rs run of a scenario; a failure is reported and
    recorded, and does not stop the Go and Rust runs."""
    print(f"== round {round_no + 1}: {name}, {GCRS_LABEL}", flush=True)
    try:
        if name == "storm":
            r = scenario_storm(GCRS, a, round_no)
        else:
            r = globals()[f"scenario_{name}"](GCRS, a)
    except Exception as e:  # noqa: BLE001 - the third contestant must not sink the run
        print(f"warning: {GCRS_LABEL} {name}, round {round_no + 1} failed: {e}",
              file=sys.stderr, flush=True)
        failures.append({"scenario": name, "round": round_no + 1, "error": str(e)})
        return
    runs[name][GCRS].append(r)


if __name__ == "__main__":
    main()
