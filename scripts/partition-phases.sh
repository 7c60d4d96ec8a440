#!/usr/bin/env bash
# Where `handoff partition`'s time goes on issue #12's Zipf run (2M lines, 50,000 Zipf keys,
# `ulimit -n 256`, on tmpfs): N rounds, each a run with HANDOFF_PARTITION_PHASES=1 and the C
# floor on one and on two threads (scripts/partition-floor.c), alternating; prints the mean
# length of each phase over the rounds (± its standard error), and of the floors.
#
#   bash scripts/partition-phases.sh [N (default 15)] [WORKDIR on tmpfs]
#
# Needs cc and python3. WORKDIR (default /dev/shm/handoff-ratios, shared with
# partition-ratios.sh) keeps the generated input (153 MB) for the next time; the copies made
# from it (about 900 MB) are removed at the end.
set -euo pipefail
N=${1:-15}
W=${2:-/dev/shm/handoff-ratios}
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "N must be a whole number of rounds, 1 or more" >&2; exit 2; }
H=$PWD/target/release/handoff
cargo build -q --release -p handoff-cli
mkdir -p "$W"
cc -O2 -pthread -o "$W/floor" scripts/partition-floor.c
[ -f "$W/z50k/input.csv" ] ||
    "$H" bench partition --generate-only --dir "$W/z50k" --lines 2000000 --keys 50000 2>/dev/null
# partition RUN-ARGS...: handoff partition -q key RUN-ARGS under `ulimit -n 256`.
partition() { bash -c 'ulimit -n 256; exec "$0" partition -q key "$@"' "$H" "$@"; }
rm -rf "$W/src50k"
partition "$W/src50k" "$W/z50k/input.csv"
log=$W/phases.log
: > "$log"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$N"); do
    rm -rf "$W/out"
    # (Only the report's line: a warning on stderr would be another.)
    phases=$(HANDOFF_PARTITION_PHASES=1 partition "$W/out" "$W/z50k/input.csv" 2>&1 >/dev/null |
        grep '^handoff partition phases')
    rm -rf "$W/dst"; one=$("$W/floor" "$W/src50k" "$W/dst" 1 | awk '{print $3}')
    rm -rf "$W/dst"; two=$("$W/floor" "$W/src50k" "$W/dst" 2 | awk '{print $3}')
    echo "$one|$two|$phases" >> "$log"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$W/out" "$W/dst" "$W/src50k"
python3 - "$log" <<'PY'
import re, statistics, sys
rows = []
for line in open(sys.argv[1]):
    one, two, phases = line.rstrip("\n").split("|", 2)
    at = {name: float(ms) for ms, name in re.findall(r"([\d.]+) ([a-z ]+?)(?=;|$)", phases.split(": ", 1)[1])}
    row = {"floor, one thread": float(one) * 1e3, "floor, two threads": float(two) * 1e3, "run": at["written"]}
    if "merged" in at:
        first, second = at["first half parsed"], at["second half parsed"]
        row.update({
            "first half (from the split)": first - at["split"],
            "second half (from the split)": second - at["split"],
            "one core idle: |first - second|": abs(first - second),
            "merge": at["merged"] - max(first, second),
            "hand-over (and any rest read alone)": at["writing"] - at["merged"],
        })
    row["end (writing)"] = at["written"] - at["writing"]
    rows.append(row)
names = list(dict.fromkeys(name for row in rows for name in row))
print(f"{len(rows)} rounds, ms (mean ± standard error; a phase over the runs that had it):")
for name in names:
    values = [row[name] for row in rows if name in row]
    sem = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0
    print(f"  {name:40} {statistics.mean(values):7.0f} ± {sem:.0f}  ({len(values)} runs)")
PY
