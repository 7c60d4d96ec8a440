#!/usr/bin/env python3
"""Prints scripts/compare-partition.sh's results as the README's Markdown table: a row per
tool, a column per key count, each cell the wall time, peak RSS, files written and, unless it
is ok, what went wrong.

    python3 scripts/partition-table.py [RESULTS.tsv]   (default: docs/partition-peers.tsv)"""
import csv
import sys

ORDER = ["handoff", "handoff-32M", "handoff-above-keys", "xsv", "python-lru", "gawk-lru",
         "miller", "duckdb", "polars", "arrow"]


def cell(r):
    wall, rss, files = float(r["wall_s"]), int(r["rss_mib"]), int(r["files"])
    status = r["status"]
    if status == "ok":
        order = "" if r["order"] == "yes" else ", order not kept"
        return f"{wall:.2f} s, {rss} MiB, {files:,} files{order}"
    if status.startswith("timeout"):
        return f"**timeout** ({wall:.0f} s), {rss} MiB, {files:,} files so far"
    if status.startswith("WRONG"):
        return f"**wrong output** ({status[7:60]}), {wall:.2f} s"
    low = status.lower()
    why = "EMFILE" if "too many open files" in low or "os error 24" in low else status[:60]
    return f"**fails**: {why}, after {wall:.2f} s, {files:,} files"


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else "docs/partition-peers.tsv"
    with open(source, newline="") as f:
        rows = list(csv.DictReader((l for l in f if not l.startswith("#")), delimiter="\t"))
    keys = sorted({int(r["keys"]) for r in rows})
    distinct = {int(r["keys"]): int(r["distinct_keys"]) for r in rows}
    tools = sorted({r["tool"] for r in rows}, key=lambda t: ORDER.index(t) if t in ORDER else 99)
    print("| tool (`ulimit -n`; runs) | " + " | ".join(
        f"{k:,} keys ({distinct[k]:,} seen)" for k in keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for tool in tools:
        by_keys = {int(r["keys"]): r for r in rows if r["tool"] == tool}
        first = next(iter(by_keys.values()))
        runs = max(int(r["rounds"]) for r in by_keys.values())
        label = f"{tool} ({first['nofile']}; {'best of ' + str(runs) if runs > 1 else '1 run'})"
        print(f"| {label} | " + " | ".join(
            cell(by_keys[k]) if k in by_keys else "—" for k in keys) + " |")


if __name__ == "__main__":
    main()
