"""The large-value scenario of bench/harness.py (`--only large`).

groupcache was built for file chunks: this scenario measures the peer path
with 64 KiB and 1 MiB values, Go and Rust alternately, beside each side's
do-nothing floors at the same body size.

For each size (64 KiB over 3,000 keys with 80 MiB a node, 1 MiB over 300
keys with 128 MiB a node: every owner holds its keys, and Go's hot cache
only a fraction of the others):
  hot off   3 nodes, peercache's hot cache off (Go's cannot be turned off;
            it takes what the main cache leaves of the budget), 8 clients
            on node 0, uniform
            keys: two requests in three cross to the owner
  hot on    the same with both hot caches on
  h2c       Rust only: hot off, peers asked over HTTP/2 without TLS
  floors    the one-hop floor (a server answering the body) and the
            two-hop floor (a relay reading the body from a floor and
            answering it: two serves and one read), same load
The node's figures are set against its mixed floor, one-hop for the third
of the requests node 0 owns and two-hop for the rest:
(one-hop + 2 x two-hop) / 3 server CPU per request.
"""
import statistics

# (label, value size, keys, per-node budget): each node owns about a third
# of the keys (62.5 and 100 MiB); the budget holds them with room to spare
# but leaves Go's hot cache (which takes what the main cache leaves of the
# budget) a fraction of the keys owned elsewhere, so requests cross.
SIZES = (("64 KiB", 64 << 10, 3000, 80 << 20), ("1 MiB", 1 << 20, 300, 128 << 20))
CLIENTS = 8


def label(name):
    return name.replace(" ", "").lower()


def scenario_large(h, side, a):
    """One round of every large-value run of `side`: a dict of results
    keyed `<size>_<run>` (e.g. `64kib_hot_off`)."""
    out = {}
    for name, size, keys, budget in SIZES:
        tag = label(name)
        out[f"{tag}_hot_off"] = node_run(h, side, a, size, keys, budget, hot=False)
        out[f"{tag}_hot_on"] = node_run(h, side, a, size, keys, budget, hot=True)
        if side == "rust":
            out[f"{tag}_h2c"] = node_run(h, side, a, size, keys, budget, hot=False, http2=True)
        out[f"{tag}_floor1"] = floor_run(h, side, a, size, keys, hops=1)
        out[f"{tag}_floor2"] = floor_run(h, side, a, size, keys, hops=2)
    return out


def node_run(h, side, a, size, keys, budget, *, hot, http2=False):
    urls, procs = h.start_nodes(side, 3, value_size=size, hot_cache=hot, cache_bytes=budget,
                                extra_args=["--http2"] if http2 else [])
    try:
        # Every key asked once through every node: the owners hold them all.
        h.loadgen(urls, requests=3 * keys, dist="sequential", keys=keys, c=CLIENTS)
        h.loadgen([urls[0]], duration=a.warmup, keys=keys, c=CLIENTS)
        before = h.stats(urls[0])
        r = h.run_http(side, urls, procs, lambda u: h.loadgen(
            [u[0]], duration=a.duration, keys=keys, c=CLIENTS))
        after = h.stats(urls[0])
        r["peer_loads"] = after["peer_loads"] - before["peer_loads"]
        r["rss_mib"] = sum(h.status_kib(p.pid, "VmRSS") for p in procs) / 1024
        return r
    finally:
        for p in procs:
            p.stop()


def floor_run(h, side, a, size, keys, *, hops):
    procs = []
    try:
        url, proc = h.start_floor(side, body_size=size)
        procs.append(proc)
        if hops == 2:
            url, proc = h.start_floor(side, body_size=size, upstream=url)
            procs.append(proc)
        h.loadgen([url], duration=a.warmup, keys=keys, c=CLIENTS)
        return h.run_http(side, [url], procs, lambda u: h.loadgen(
            u, duration=a.duration, keys=keys, c=CLIENTS))
    finally:
        for p in procs:
            p.stop()


def med(runs, key, field):
    vals = [r[key][field] for r in runs if key in r and r[key].get(field) is not None]
    return statistics.median(vals) if vals else None


def crossed(runs, key):
    """Median share of node 0's requests fetched from a peer."""
    vals = [r[key]["peer_loads"] / max(r[key]["requests"], 1) for r in runs if key in r]
    return statistics.median(vals) if vals else None


def mixed_floor(runs, tag):
    """Median over rounds of (one-hop + 2 x two-hop) / 3 CPU per request."""
    vals = [(r[f"{tag}_floor1"]["cpu_us_per_req"] + 2 * r[f"{tag}_floor2"]["cpu_us_per_req"]) / 3
            for r in runs if f"{tag}_floor1" in r]
    return statistics.median(vals) if vals else None


def rows(runs, row, ratio):
    """The summary rows of the large scenario, through harness's `row`."""
    g, r = runs["go"], runs["rust"]
    for name, *_ in SIZES:
        tag = label(name)
        for run, text, targets in (("hot_off", "hot cache off", (0.8, 1.2)),
                                   ("hot_on", "hot caches on", (None, None))):
            key = f"{tag}_{run}"
            row("large", f"{name}, {text}: server CPU µs/request",
                med(g, key, "cpu_us_per_req"), med(r, key, "cpu_us_per_req"), targets[0])
            row("large", f"{name}, {text}: req/s", med(g, key, "rps"), med(r, key, "rps"),
                targets[1], "higher")
            row("large", f"{name}, {text}: p99 µs", med(g, key, "p99_us"), med(r, key, "p99_us"))
            row("large", f"{name}, {text}: errors", med(g, key, "errors"), med(r, key, "errors"),
                note="target 0")
            row("large", f"{name}, {text}: peer fetches / request", crossed(g, key),
                crossed(r, key))
        h2, h1 = f"{tag}_h2c", f"{tag}_hot_off"
        row("large", f"{name}, Rust h2c / HTTP/1.1: server CPU µs/request", None, None,
            note=f"h2c {fmt(med(r, h2, 'cpu_us_per_req'))}, HTTP/1.1 "
                 f"{fmt(med(r, h1, 'cpu_us_per_req'))}: "
                 f"{fmt(ratio(med(r, h2, 'cpu_us_per_req'), med(r, h1, 'cpu_us_per_req')))}×")
        row("large", f"{name}, Rust h2c / HTTP/1.1: req/s", None, None,
            note=f"h2c {fmt(med(r, h2, 'rps'))}, HTTP/1.1 {fmt(med(r, h1, 'rps'))}: "
                 f"{fmt(ratio(med(r, h2, 'rps'), med(r, h1, 'rps')))}×")
        for hops in (1, 2):
            key = f"{tag}_floor{hops}"
            row("large", f"{name}, {hops}-hop floor: server CPU µs/request",
                med(g, key, "cpu_us_per_req"), med(r, key, "cpu_us_per_req"))
        gm, rm = mixed_floor(g, tag), mixed_floor(r, tag)
        row("large", f"{name}, hot off: node CPU / mixed floor CPU",
            ratio(med(g, h1, "cpu_us_per_req"), gm), ratio(med(r, h1, "cpu_us_per_req"), rm),
            note=f"Rust ≤ 1.3× its floor: "
                 f"{'yes' if (ratio(med(r, h1, 'cpu_us_per_req'), rm) or 99) <= 1.3 else 'no'}")


def fmt(x, digits=2):
    if x is None:
        return "–"
    return f"{x:,.{digits}f}" if isinstance(x, float) else f"{x:,}"
