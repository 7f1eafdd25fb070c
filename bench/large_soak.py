#!/usr/bin/env python3
"""Minutes of large values: three benchmark nodes (bench-node, hot caches
on) with one of bench/large.py's sizes, 8 clients of loadgen on all three
for SECONDS, the nodes' resident memory sampled every 10 s, and the slope
of their sum over the second half, in bytes per request.

    cargo build --release -p peercache-bench
    python3 bench/large_soak.py 0 180     # 64 KiB values for 3 minutes
    python3 bench/large_soak.py 1 180     # 1 MiB values
"""
import sys
import threading
import time

import harness as h
import large


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    name, size, keys, budget = large.SIZES[int(sys.argv[1])]
    secs = int(sys.argv[2])
    h.LOGS.mkdir(parents=True, exist_ok=True)
    urls, procs = h.start_nodes("rust", 3, value_size=size, hot_cache=True, cache_bytes=budget)
    try:
        h.loadgen(urls, requests=3 * keys, dist="sequential", keys=keys, c=8)
        samples, out = [], {}
        run = threading.Thread(target=lambda: out.update(
            h.loadgen(urls, duration=f"{secs}s", keys=keys, c=8)))
        start = time.monotonic()
        run.start()
        while run.is_alive():
            samples.append((time.monotonic() - start,
                            [h.status_kib(p.pid, "VmRSS") for p in procs]))
            run.join(10)
        print(f"{name}: {out['requests']} requests, {out['errors']} errors, "
              f"{out['rps']:.0f} a second")
        for t, rss in samples:
            print(f"t={t:4.0f} s  RSS kB {rss}")
        half = [(t, sum(rss)) for t, rss in samples if t >= secs / 2]
        mx = sum(t for t, _ in half) / len(half)
        my = sum(y for _, y in half) / len(half)
        slope = sum((t - mx) * (y - my) for t, y in half) / sum((t - mx) ** 2 for t, _ in half)
        print(f"second-half slope: {slope:.1f} kB/s, {slope * 1024 / out['rps']:.3f} bytes/request")
    finally:
        for p in procs:
            p.stop()


if __name__ == "__main__":
    main()
