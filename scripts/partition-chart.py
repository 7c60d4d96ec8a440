#!/usr/bin/env python3
"""Renders scripts/compare-partition.sh's results as a chart: wall time against the number of
keys, log-log, one line per tool. A run that timed out is an X at the timeout, one that failed
or wrote wrong files an X at the time it took, each labelled; lines join the runs that succeeded.

    python3 scripts/partition-chart.py [RESULTS.tsv] [OUT.svg]
    (defaults: docs/partition-peers.tsv, docs/partition-peers.svg)"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ORDER = ["handoff", "handoff-32M", "handoff-above-keys", "xsv", "python-lru", "gawk-lru",
         "miller", "duckdb", "polars", "arrow"]
LABELS = {
    "handoff": "handoff partition",
    "xsv": "xsv partition (every file open)",
    "python-lru": "Python, LRU of 200 files",
    "gawk-lru": "gawk, LRU of 200 files",
    "miller": "Miller split -g",
    "duckdb": "DuckDB COPY ... PARTITION_BY",
    "polars": "Polars sink_csv(PartitionBy)",
    "arrow": "pyarrow write_dataset (max_open_files=200)",
}


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else "docs/partition-peers.tsv"
    target = sys.argv[2] if len(sys.argv) > 2 else "docs/partition-peers.svg"
    with open(source, newline="") as f:
        lines = [line for line in f if not line.startswith("#")]
    rows = list(csv.DictReader(lines, delimiter="\t"))
    if not rows:
        sys.exit(f"{source}: no results")
    lines_count = int(rows[0]["lines"])
    limit = next((r["nofile"] for r in rows if r["tool"] != "xsv"), "?")
    tools = sorted({r["tool"] for r in rows}, key=lambda t: ORDER.index(t) if t in ORDER else 99)

    fig, ax = plt.subplots(figsize=(11, 5.6))
    placed = []  # (keys, wall) of the labels so far, to stack the ones that would overlap
    for index, tool in enumerate(tools):
        runs = sorted((r for r in rows if r["tool"] == tool), key=lambda r: int(r["keys"]))
        color = f"C{index}"
        good = [(int(r["keys"]), float(r["wall_s"])) for r in runs if r["status"] == "ok"]
        label = LABELS.get(tool, tool)
        width = 2.6 if tool == "handoff" else 1.4
        if good:
            ax.plot(*zip(*good), marker="o", color=color, label=label, linewidth=width)
        else:
            ax.plot([], [], marker="o", color=color, label=label)
        for r in runs:
            if r["status"] == "ok":
                continue
            keys, wall = int(r["keys"]), max(float(r["wall_s"] or 0), 0.01)
            status = r["status"]
            if status.startswith("timeout"):
                text = "timeout"
            elif status.startswith("WRONG"):
                text = "wrong output"
            elif "too many open files" in status.lower() or "os error 24" in status.lower():
                text = "EMFILE"
            else:
                text = "failed"
            ax.plot([keys], [wall], marker="x", markersize=11, markeredgewidth=2.5,
                    color=color, linestyle="none")
            near = sum(1 for k, w in placed if k == keys and 0.6 < w / wall < 1.6)
            placed.append((keys, wall))
            ax.annotate(f"{tool}: {text}", (keys, wall), textcoords="offset points",
                        xytext=(7, -4 - 10 * near), fontsize=7.5, color=color)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("keys (output files); Zipf(1.1) over this many keys")
    ax.set_ylabel("wall time, s (log)")
    ax.set_title(f"Splitting {lines_count:,} CSV lines into one file per key, "
                 f"ulimit -n {limit} (xsv: the hard limit)", fontsize=11)
    ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
    key_counts = sorted({int(r["keys"]) for r in rows})
    ax.set_xticks(key_counts, [f"{k:,}" for k in key_counts])
    ax.set_xlim(key_counts[0] / 1.6, key_counts[-1] * 4)  # room for the labels at the right
    ax.minorticks_off()
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.text(0.01, 0.005, "X: timed out (at the timeout) or failed (at the time it took). "
             "tmpfs, 2-core VM shared with other jobs; see README for load and the table.",
             fontsize=7)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(target, format="svg", metadata={"Date": None})
    print(f"{target}: {len(rows)} runs, {len(tools)} tools")


if __name__ == "__main__":
    main()
