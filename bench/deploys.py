#!/usr/bin/env python3
"""Deploys and scaling under load (bench/deploys.py): how many origin loads a
rolling restart, a scale-out and a scale-in cost, with real peercache-server
processes finding each other through peers files (--peers-file), in front of
an HTTP origin that counts its loads. Each scenario runs in a fresh cluster:

- rolling: 5 nodes; each in turn is taken out of the clients' rotation (as a
  load balancer drains it), sent SIGTERM, started again, and put back once
  every node has it in its ring;
- scale-out: a 4th node joins a warm 3-node cluster;
- scale-in: the 4th node of a warm 4-node cluster leaves on SIGTERM.
- churn (only with --churn SECONDS): a 4th node joins a 3-node cluster and
  leaves it on SIGTERM again and again for that long, under the load; the
  three steady nodes' RSS is sampled every 10 s (a leak shows as a slope).

Clients keep a Zipf load (s = 1.0 over --keys keys, 100-byte values) on the
nodes in rotation throughout. After a warm-up (every key read once, then
--steady seconds of load), origin loads are counted until the end: the
scenario, --settle seconds more load, and one more read of every key (the
keys that would be loaded again later). Failed requests and the p99 of gets
during the scenario (against the steady p99) are reported too.

    python3 bench/deploys.py                     # all three, both modes (builds first)
    python3 bench/deploys.py --only rolling --rounds 3
    python3 bench/deploys.py --bin target/release/peercache-server --mode on

`--mode off` runs the nodes with --peek-window 0 --handoff-bytes 0 (what a
node without warm handoff does), `on` with the defaults; `both` (default)
alternates them.
"""
import argparse, bisect, http.client, http.server, json, os, random, signal, socket
import faulthandler, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VALUE = 100


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Origin:
    """An HTTP origin on 127.0.0.1 that counts its GETs."""

    def __init__(self):
        self.loads = 0
        self.lock = threading.Lock()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                # Headers and body go in two writes: without this, Nagle and
                # the client's delayed ACK hold each answer 40 ms.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self):
                with origin.lock:
                    origin.loads += 1
                body = self.path.encode().ljust(VALUE, b".")[:VALUE]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def count(self):
        with self.lock:
            return self.loads


def get(port, path, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class Cluster:
    def __init__(self, binary, workdir, origin, extra):
        self.binary, self.dir, self.extra = binary, workdir, extra
        self.config = os.path.join(workdir, "items.toml")
        with open(self.config, "w") as f:
            f.write(f'[[group]]\nname = "items"\nsource = "http"\n'
                    f'url = "http://127.0.0.1:{origin.port}/items/{{key}}"\n')
        self.procs = {}

    def url(self, port):
        return f"http://127.0.0.1:{port}"

    def write_peers(self, port, members):
        path = os.path.join(self.dir, f"peers-{port}.txt")
        with open(path + ".tmp", "w") as f:
            f.write("".join(self.url(p) + "\n" for p in members))
        os.replace(path + ".tmp", path)
        return path

    def start(self, port, members):
        peers = self.write_peers(port, members)
        log = open(os.path.join(self.dir, f"node-{port}.log"), "a")
        self.procs[port] = subprocess.Popen(
            [self.binary, "--addr", f"127.0.0.1:{port}", "--peers-file", peers,
             "--discovery-interval", "1s", "--config", self.config] + self.extra,
            stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if get(port, "/stats")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"node {port} did not start")

    def stop(self, port):
        proc = self.procs.pop(port)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    def settled(self, members, timeout=30):
        """Waits until every node lists exactly `members`, all up."""
        want = {self.url(p) for p in members}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = True
            for p in members:
                try:
                    stats = json.loads(get(p, "/stats")[1])
                except (OSError, ValueError):
                    ok = False
                    break
                peers = {x["peer"]: x["state"] for x in stats["peers"]}
                if set(peers) != want or any(s not in ("up", "self") for s in peers.values()):
                    ok = False
                    break
            if ok:
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster did not settle")

    def kill_all(self):
        for proc in self.procs.values():
            proc.kill()
            proc.wait()
        self.procs.clear()


class Load:
    """Client threads: Zipf gets on the nodes in rotation."""

    def __init__(self, keys, clients, seed):
        weights = [1.0 / (rank + 1) for rank in range(keys)]
        total = sum(weights)
        acc, self.cdf = 0.0, []
        for w in weights:
            acc += w / total
            self.cdf.append(acc)
        self.keys = keys
        self.rotation = []
        self.lock = threading.Lock()
        self.phase = "warm"
        self.latencies = {}
        self.failures = {}
        self.requests = 0
        self.running = True
        self.threads = [threading.Thread(target=self.client, args=(seed + i,), daemon=True)
                        for i in range(clients)]

    def client(self, seed):
        rnd = random.Random(seed)
        conns = {}
        while self.running:
            with self.lock:
                rotation = list(self.rotation)
                phase = self.phase
            if not rotation:
                time.sleep(0.01)
                continue
            port = rnd.choice(rotation)
            key = min(bisect.bisect_left(self.cdf, rnd.random()), self.keys - 1)
            start = time.perf_counter()
            ok = False
            # A keep-alive connection the node closed (it restarted) fails
            # before any answer: sent again once on a new one, as HTTP
            # clients do (urllib3, browsers) for an idempotent request.
            for attempt in range(2):
                reused = port in conns
                conn = conns.get(port) or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conns[port] = conn
                try:
                    conn.request("GET", f"/items/k{key}")
                    r = conn.getresponse()
                    r.read()
                    ok = r.status == 200
                    break
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    conn.close()
                    conns.pop(port, None)
                    if not reused:
                        break
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conns.pop(port, None)
                    break
            took = time.perf_counter() - start
            with self.lock:
                self.requests += 1
                if ok:
                    self.latencies.setdefault(phase, []).append(took)
                else:
                    self.failures[phase] = self.failures.get(phase, 0) + 1

    def set_rotation(self, ports):
        with self.lock:
            self.rotation = list(ports)

    def set_phase(self, phase):
        with self.lock:
            self.phase = phase

    def p99(self, phase):
        with self.lock:
            xs = sorted(self.latencies.get(phase, []))
        return xs[int(len(xs) * 0.99)] * 1000 if xs else float("nan")


def read_every_key(ports, keys):
    failed = 0
    for k in range(keys):
        try:
            if get(ports[k % len(ports)], f"/items/k{k}")[0] != 200:
                failed += 1
        except OSError:
            failed += 1
    return failed


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return round(int(line.split()[1]) / 1024, 1)


def join(cluster, load, members, new):
    """Starts `new` with every member listed, then lists it at the others
    and puts it in the rotation once every node has it up."""
    cluster.start(new, members + [new])
    for p in members:
        cluster.write_peers(p, members + [new])
    cluster.settled(members + [new])
    load.set_rotation(members + [new])
    return members + [new]


def leave(cluster, load, members, gone):
    """Takes `gone` out of the rotation, stops it with SIGTERM, and lists
    the others only; returns them."""
    rest = [p for p in members if p != gone]
    load.set_rotation(rest)
    time.sleep(0.2)  # the load balancer drains it
    cluster.stop(gone)
    for p in rest:
        cluster.write_peers(p, rest)
    cluster.settled(rest)
    return rest


def churn(cluster, load, members, extra, seconds):
    """A 4th node joins and leaves until `seconds` pass; the steady nodes'
    RSS (MiB) every 10 s, as [seconds, [rss...]]."""
    samples, start, next_sample = [], time.monotonic(), 0.0
    while time.monotonic() - start < seconds:
        grown = join(cluster, load, members, extra)
        time.sleep(1)
        leave(cluster, load, grown, extra)
        elapsed = time.monotonic() - start
        if elapsed >= next_sample:
            samples.append([round(elapsed), [rss_mib(cluster.procs[p].pid) for p in members]])
            print(f"churn t={elapsed:.0f}s RSS MiB {samples[-1][1]}", flush=True)
            next_sample += 10
    return samples


def scenario(name, args, mode):
    origin = Origin()
    extra = args.flags.split() if mode == "on" else ["--peek-window", "0", "--handoff-bytes", "0"]
    work = tempfile.mkdtemp(prefix=f"deploys-{name}-")
    cluster = Cluster(args.bin, work, origin, extra)
    size = {"rolling": args.nodes, "scale-out": 3, "scale-in": 4, "churn": 3}[name]
    ports = free_ports(size + 1)
    members = ports[:size]
    load = Load(args.keys, args.clients, seed=len(name))
    try:
        for p in members:
            cluster.start(p, members)
        cluster.settled(members)
        read_every_key(members, args.keys)
        load.set_rotation(members)
        for t in load.threads:
            t.start()
        load.set_phase("steady")
        time.sleep(args.steady)
        before = origin.count()
        load.set_phase("change")
        started = time.monotonic()
        if name == "rolling":
            for p in members:
                load.set_rotation([q for q in members if q != p])
                time.sleep(0.2)  # the load balancer drains it
                cluster.stop(p)
                cluster.start(p, members)
                cluster.settled(members)
                load.set_rotation(members)
                time.sleep(args.gap)
        elif name == "churn":
            rss = churn(cluster, load, members, ports[size], args.churn)
        elif name == "scale-out":
            members = join(cluster, load, members, ports[size])
        else:
            members = leave(cluster, load, members, members[-1])
        took = time.monotonic() - started
        load.set_phase("after")
        time.sleep(args.settle)
        load.running = False
        for t in load.threads:
            t.join()
        unreadable = read_every_key(members, args.keys)
        extra_loads = origin.count() - before
        result = {
            "scenario": name, "mode": mode if mode == "off" or not args.flags else f"on {args.flags}",
            "keys": args.keys,
            "nodes": {"rolling": f"{size}", "scale-out": "3 to 4", "scale-in": "4 to 3",
                      "churn": "3 + 1 joining and leaving"}[name],
            "extra_origin_loads": extra_loads,
            "percent_of_working_set": round(100.0 * extra_loads / args.keys, 2),
            "failed_requests": sum(load.failures.values()) + unreadable,
            "requests": load.requests,
            "p99_steady_ms": round(load.p99("steady"), 2),
            "p99_change_ms": round(load.p99("change"), 2),
            "change_seconds": round(took, 1),
        }
        if name == "churn":
            result["rss_mib"] = rss
        return result
    finally:
        load.running = False
        cluster.kill_all()
        origin.server.shutdown()


def main():
    faulthandler.register(signal.SIGUSR1)  # kill -USR1: where every thread is
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="peercache-server binary [default: build target/release's]")
    ap.add_argument("--only", default="rolling,scale-out,scale-in")
    ap.add_argument("--mode", choices=["on", "off", "both"], default="both")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--nodes", type=int, default=5, help="nodes of the rolling restart")
    ap.add_argument("--keys", type=int, default=10000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--steady", type=float, default=10, help="seconds of load before the change")
    ap.add_argument("--settle", type=float, default=10, help="seconds of load after it")
    ap.add_argument("--gap", type=float, default=1, help="seconds between two restarts")
    ap.add_argument("--churn", type=float, default=0,
                    help="seconds of the churn scenario (joins and leaves, RSS sampled); 0: not run")
    ap.add_argument("--flags", default="", help="more peercache-server flags in mode on, e.g. '--peek-window 10s'")
    args = ap.parse_args()
    if not args.bin:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "peercache-server"],
                       cwd=ROOT, check=True)
        args.bin = os.path.join(ROOT, "target", "release", "peercache-server")
    modes = ["off", "on"] if args.mode == "both" else [args.mode]
    results = []
    for _ in range(args.rounds):
        names = [n for n in args.only.split(",") if n] + (["churn"] if args.churn else [])
        for name in names:
            for mode in modes:
                r = scenario(name, args, mode)
                print(json.dumps(r), flush=True)
                results.append(r)
    print()
    print("| scenario | warm handoff | extra origin loads | % of working set | failed requests | p99 steady / during (ms) |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for r in results:
        print(f"| {r['scenario']} ({r['nodes']} nodes) | {r['mode']} | {r['extra_origin_loads']} "
              f"| {r['percent_of_working_set']} | {r['failed_requests']} "
              f"| {r['p99_steady_ms']} / {r['p99_change_ms']} |")


if __name__ == "__main__":
    sys.exit(main())
