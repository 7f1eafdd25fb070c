#!/usr/bin/env python3
"""Minutes of changes with a dead member (bench/hints_soak.py): three peercache-server nodes whose
pool lists a fourth, dead node, so every change is pending there and kept
as a hint (bounded: collapses into a purge); sets and gets from 4 client
threads; each node's RSS every 10 s and the slope over the second half.

    cargo build --release -p peercache-server
    python3 bench/hints_soak.py target/release/peercache-server 180
"""
import http.client, os, random, socket, subprocess, sys, threading, time

BIN = sys.argv[1]
SECS = int(sys.argv[2]) if len(sys.argv) > 2 else 180

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

ports = [free_port() for _ in range(4)]
urls = [f"http://127.0.0.1:{p}" for p in ports]
procs = []
for p in ports[:3]:
    procs.append(subprocess.Popen([BIN, "--addr", f"127.0.0.1:{p}", "--pool", ",".join(urls),
                                   "--front-writes", "--hot-cache", "always", "--hot-max-age", "2s"],
                                  stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024
try:
    for p in ports[:3]:
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", p, timeout=5); c.request("GET", "/stats"); c.getresponse().read(); break
            except OSError:
                time.sleep(0.1)
    stop = time.monotonic() + SECS
    count = [0]
    lock = threading.Lock()
    def client(seed):
        rnd = random.Random(seed)
        conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in ports[:3]]
        n = 0
        while time.monotonic() < stop:
            c = rnd.choice(conns)
            key = f"k{rnd.randrange(20000)}"
            if rnd.random() < 0.3:
                c.request("PUT", f"/color?name={key}", body=f"#{rnd.randrange(1<<24):06X}")
            else:
                c.request("GET", f"/color?name={key}")
            r = c.getresponse(); r.read()
            n += 1
        with lock:
            count[0] += n
    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    start = time.monotonic()
    for t in threads: t.start()
    samples = []
    while any(t.is_alive() for t in threads):
        samples.append((time.monotonic() - start, [rss(p.pid) for p in procs]))
        time.sleep(10)
    for t in threads: t.join()
    total = count[0]
    print(f"{total} requests in {SECS} s ({total / SECS:.0f}/s)")
    for t, r in samples:
        print(f"t={t:5.0f} s RSS MiB {[round(x / 1048576, 1) for x in r]}")
    half = [s for s in samples if s[0] >= SECS / 2]
    if len(half) >= 2:
        (t0, r0), (t1, r1) = half[0], half[-1]
        reqs = total * (t1 - t0) / SECS
        for i in range(3):
            print(f"node {i}: slope {(r1[i] - r0[i]) / reqs:.2f} B/request over the second half")
    c = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=5); c.request("GET", "/stats")
    import json
    st = json.loads(c.getresponse().read())
    g = [x for x in st["groups"] if x["name"] == "colors"][0]
    print("node 0 colors: hints_pending", g["hints_pending"], "delivered", g["hints_delivered"],
          "collapsed", g["hints_collapsed"], "hot aged", g["hot_cache"]["aged"], "peer states",
          [p["state"] for p in st["peers"]])
finally:
    for p in procs: p.kill()
