"""The report of bench/harness.py: one summary row per figure (medians,
Rust/Go ratios, targets), the Markdown table, and bench/results/summary.png.
"""
import pathlib
import statistics
import sys

import large

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
# The third contestant: the crates.io `groupcache` crate.
GCRS = "groupcache_rs"
GCRS_LABEL = "groupcache-rs"

def med(rows, key):
    vals = [r[key] for r in rows if key in r]
    return statistics.median(vals) if vals else None


def ratio(r, g):
    return r / g if r is not None and g else None


def fmt(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def summarize(runs):
    """One row per figure: Go median, Rust median, ratio, target, verdict;
    groupcache-rs's median and its ratio to Go where it ran ("groupcache_rs",
    "groupcache_rs_ratio"; the target and verdict are peercache's)."""
    rows = []

    def row(scenario, metric, go, rust, target=None, better="lower", note="", gcrs=None):
        rt = ratio(rust, go)
        met = None
        if target is not None and rt is not None:
            met = rt <= target if better == "lower" else rt >= target
        rows.append({"scenario": scenario, "metric": metric, "go": go, "rust": rust,
                     "ratio": rt, "target": target, "better": better, "met": met,
                     "note": note, GCRS: gcrs, f"{GCRS}_ratio": ratio(gcrs, go)})

    def third(scenario):
        return runs.get(scenario, {}).get(GCRS, [])

    if "inproc" in runs:
        g, r = runs["inproc"]["go"], runs["inproc"]["rust"]
        for k, label in (("hit_1", "hit, 1 thread (ns/op)"), ("hit_2", "hit, 2 threads (ns/op)")):
            row("inproc", label, med(g, k), med(r, k), 0.25)
        for k, hk, label in (("floor_1", "hit_1", "hit / locked-map floor, 1 thread"),
                             ("floor_2", "hit_2", "hit / locked-map floor, 2 threads")):
            rows.append({"scenario": "inproc", "metric": label, "go": None,
                         "rust": med(r, hk), "ratio": ratio(med(r, hk), med(r, k)),
                         "target": 2.0, "better": "lower",
                         "met": (ratio(med(r, hk), med(r, k)) or 99) <= 2.0,
                         "note": f"floor {fmt(med(r, k), 1)} ns"})
    if "cluster" in runs:
        g, r = runs["cluster"]["go"], runs["cluster"]["rust"]
        c = third("cluster")
        row("cluster", "server CPU µs/request", med(g, "cpu_us_per_req"), med(r, "cpu_us_per_req"), 0.5,
            gcrs=med(c, "cpu_us_per_req"))
        row("cluster", "req/s", med(g, "rps"), med(r, "rps"), 1.4, "higher", gcrs=med(c, "rps"))
        row("cluster", "p99 µs", med(g, "p99_us"), med(r, "p99_us"), 0.6, gcrs=med(c, "p99_us"))
        row("cluster", "errors", med(g, "errors"), med(r, "errors"), note="target 0",
            gcrs=med(c, "errors"))
        fg, fr = runs["floor"]["go"], runs["floor"]["rust"]
        row("floor", "do-nothing server CPU µs/request", med(fg, "cpu_us_per_req"), med(fr, "cpu_us_per_req"))
        row("floor", "do-nothing server req/s", med(fg, "rps"), med(fr, "rps"), better="higher")
        # groupcache-rs (hyper under axum) is set against the Rust floor.
        row("floor", "node CPU / floor CPU", ratio(med(g, "cpu_us_per_req"), med(fg, "cpu_us_per_req")),
            ratio(med(r, "cpu_us_per_req"), med(fr, "cpu_us_per_req")),
            gcrs=ratio(med(c, "cpu_us_per_req"), med(fr, "cpu_us_per_req")))
    if "peer" in runs:
        g, r = runs["peer"]["go"], runs["peer"]["rust"]
        p = third("peer")
        row("peer", "server CPU µs/request", med(g, "cpu_us_per_req"), med(r, "cpu_us_per_req"), 0.5,
            gcrs=med(p, "cpu_us_per_req"))
        row("peer", "req/s", med(g, "rps"), med(r, "rps"), 1.4, "higher", gcrs=med(p, "rps"))
        row("peer", "peer fetches / request", med_frac(g), med_frac(r), gcrs=med_frac(p))
        row("peer", "TIME_WAIT sockets after the run", med(g, "time_wait"), med(r, "time_wait"),
            note="target < 100 for Rust", gcrs=med(p, "time_wait"))
    if "storm" in runs:
        g, r = runs["storm"]["go"], runs["storm"]["rust"]
        s = third("storm")
        row("storm", "loads in the cluster", med(g, "loads"), med(r, "loads"), note="target exactly 1",
            gcrs=med(s, "loads"))
        row("storm", "slowest request ms", ms(med(g, "max_us")), ms(med(r, "max_us")),
            note="target ≤ 240 ms", gcrs=ms(med(s, "max_us")))
        row("storm", "errors", med(g, "errors"), med(r, "errors"), gcrs=med(s, "errors"))
    if "memory" in runs:
        g, r = runs["memory"]["go"], runs["memory"]["rust"]
        row("memory", "RSS MiB after filling 256 MiB", med(g, "rss_mib"), med(r, "rss_mib"),
            note="target Rust ≤ 326.4 MiB")
        row("memory", "peak RSS MiB", med(g, "peak_rss_mib"), med(r, "peak_rss_mib"))
    if "hotkeys" in runs:
        g, r = runs["hotkeys"]["go"], runs["hotkeys"]["rust"]
        row("hotkeys", "peer fetches per 1,000 requests", med(g, "peer_fetches_per_1000"),
            med(r, "peer_fetches_per_1000"), 0.5)
    if "large" in runs:
        large.rows(runs["large"], row, ratio)
    for x in rows:  # the rows written out above (inproc floors) have no third contestant
        x.setdefault(GCRS, None)
        x.setdefault(f"{GCRS}_ratio", None)
    return rows


def med_frac(rows):
    vals = [x["peer_loads"] / max(x["requests"], 1) for x in rows]
    return statistics.median(vals) if vals else None


def ms(us):
    return None if us is None else us / 1000


def has_gcrs(rows):
    return any(x.get(GCRS) is not None for x in rows)


def print_table(rows):
    """The Markdown table; with groupcache-rs columns only if it ran (the
    target and met columns are peercache's)."""
    third = has_gcrs(rows)
    print()
    if third:
        print(f"| scenario | figure | Go | Rust | Rust/Go | {GCRS_LABEL} | {GCRS_LABEL}/Go "
              "| target | met |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    else:
        print("| scenario | figure | Go | Rust | Rust/Go | target | met |")
        print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for x in rows:
        target = "" if x["target"] is None else (("≤ " if x["better"] == "lower" else "≥ ") + f"{x['target']}×")
        met = {True: "yes", False: "no", None: x["note"]}[x["met"]]
        extra = f"{fmt(x.get(GCRS))} | {fmt(x.get(f'{GCRS}_ratio'))} | " if third else ""
        print(f"| {x['scenario']} | {x['metric']} | {fmt(x['go'])} | {fmt(x['rust'])} | "
              f"{fmt(x['ratio'])} | {extra}{target} | {met} |")


def chart(rows):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no chart (apt-get install -y python3-matplotlib)", file=sys.stderr)
        return
    shown = [x for x in rows if x["ratio"] is not None and x["target"] is not None]
    if not shown:
        return
    labels = [f"{x['scenario']}: {x['metric']}" for x in shown]
    third = any(x.get(f"{GCRS}_ratio") is not None for x in shown)
    fig, ax = plt.subplots(figsize=(10, (0.8 if third else 0.55) * len(shown) + 1.5))
    ys = range(len(shown))
    colors = ["#2e7d32" if x["met"] else "#c62828" for x in shown]
    if third:
        # Two bars a row: peercache (coloured by its target) above,
        # groupcache-rs (blue; the target is peercache's) below.
        from matplotlib.patches import Patch
        ax.barh([y - 0.2 for y in ys], [x["ratio"] for x in shown], height=0.4, color=colors)
        gc = [(y, x[f"{GCRS}_ratio"]) for y, x in zip(ys, shown) if x.get(f"{GCRS}_ratio") is not None]
        ax.barh([y + 0.2 for y, _ in gc], [v for _, v in gc], height=0.4, color="#1565c0")
        for y, v in gc:
            ax.text(v, y + 0.2, f" {v:.2f}×", va="center", fontsize=7, color="#1565c0")
        ax.legend(handles=[Patch(color="#2e7d32", label="peercache / Go, target met"),
                           Patch(color="#c62828", label="peercache / Go, target missed"),
                           Patch(color="#1565c0", label=f"{GCRS_LABEL} / Go (no target)")],
                  loc="lower right", fontsize=8)
    else:
        ax.barh(list(ys), [x["ratio"] for x in shown], color=colors)
    for y, x in zip(ys, shown):
        ax.plot([x["target"], x["target"]], [y - 0.4, y + 0.4], color="black", linewidth=2)
        ax.text(x["ratio"], y - (0.2 if third else 0), f" {x['ratio']:.2f}×", va="center", fontsize=8)
    ax.set_yticks(list(ys))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="grey", linestyle=":")
    ax.set_xlabel("peercache / golang/groupcache (or / floor), median; black tick = target; "
                  "green = met")
    ax.set_title("peercache vs golang/groupcache, same machine, same run"
                 + (f" (and {GCRS_LABEL})" if third else ""))
    fig.tight_layout()
    fig.savefig(RESULTS / "summary.png", dpi=110)
    print(f"chart: {RESULTS / 'summary.png'}")
