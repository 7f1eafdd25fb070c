#!/usr/bin/env python3
"""What the hot copies' maximum age costs: three benchmark nodes (bench-node,
hot caches on, 100-byte values), 16 clients of loadgen on all three, keys
from a Zipf law (s = 1.1) over 10,000 keys, with each --hot-max-age in turn
(0 = no limit, as in groupcache), alternating, ROUNDS rounds. Per run:
requests a second, and per node the share of gets answered by the hot
cache and the fetches from owners a second over the measured window. The
default (10 s) is chosen from these figures (BENCHMARKS.md).

    cargo build --release -p peercache-bench
    python3 bench/hot_age.py [ROUNDS] [SECONDS]     # default 3 rounds of 20 s
"""
import statistics
import sys

import harness as h

AGES = ["0", "60s", "10s", "2s", "500ms"]


def run(age, secs):
    urls, procs = h.start_nodes("rust", 3, hot_cache=True, extra_args=["--hot-max-age", age])
    try:
        h.loadgen(urls, duration="5s", dist="zipf", keys=10000, c=16)
        before = [h.stats(u) for u in urls]
        out = h.loadgen(urls, duration=f"{secs}s", dist="zipf", keys=10000, c=16)
        after = [h.stats(u) for u in urls]
    finally:
        for p in procs:
            p.stop()
    gets = sum(a["gets"] - b["gets"] for a, b in zip(after, before))
    hot_hits = sum(a["hot_cache"]["hits"] - b["hot_cache"]["hits"] for a, b in zip(after, before))
    fetches = sum(a["peer_loads"] - b["peer_loads"] for a, b in zip(after, before))
    aged = sum(a["hot_aged"] - b["hot_aged"] for a, b in zip(after, before))
    return {"rps": out["rps"], "errors": out["errors"], "hot_share": hot_hits / max(gets, 1),
            "fetches_per_s": fetches / secs, "aged_per_s": aged / secs}


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    secs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    h.LOGS.mkdir(parents=True, exist_ok=True)
    results = {age: [] for age in AGES}
    for r in range(rounds):
        order = AGES if r % 2 == 0 else list(reversed(AGES))
        for age in order:
            results[age].append(run(age, secs))
            last = results[age][-1]
            print(f"round {r} age {age:>5}: {last['rps']:.0f} req/s, hot {last['hot_share']:.3f}, "
                  f"{last['fetches_per_s']:.0f} fetches/s, {last['aged_per_s']:.0f} aged/s, "
                  f"{last['errors']} errors", flush=True)
    print("\n| --hot-max-age | req/s (median) | gets answered by hot copies | fetches from owners /s | copies aged /s |")
    print("| --- | --- | --- | --- | --- |")
    for age in AGES:
        med = lambda k: statistics.median(x[k] for x in results[age])
        print(f"| {age} | {med('rps'):.0f} | {med('hot_share') * 100:.1f} % | "
              f"{med('fetches_per_s'):.0f} | {med('aged_per_s'):.0f} |")


if __name__ == "__main__":
    main()
