#!/usr/bin/env bash
# Issue #12's three ratios, on tmpfs, best of 3 with the two sides alternating:
#   1. 2M lines, 50,000 Zipf keys, `ulimit -n 256`: handoff vs a C program that creates and
#      writes the same files (scripts/partition-floor.c);
#   2. 2M lines, 5,000 uniform keys, `ulimit -n 256`: handoff vs xsv (if $XSV exists);
#   3. 200k lines, 20,000 uniform keys: `--memory 6M` vs `--memory 64M`; and 200k lines,
#      200,000 uniform keys: `--memory 1M` vs `256M` (with peak RSS).
# Run from the repository root; prints the load average before and after.
#
#   bash scripts/partition-ratios.sh [WORKDIR on tmpfs]
set -euo pipefail
W=${1:-/dev/shm/handoff-ratios}
XSV=${XSV:-/tmp/xsv-install/bin/xsv}
H=$PWD/target/release/handoff
cargo build -q --release -p handoff-cli
mkdir -p "$W"
FLOOR=$W/floor
cc -O2 -pthread -o "$FLOOR" scripts/partition-floor.c
gen() { [ -f "$W/$1/input.csv" ] || "$H" bench partition --generate-only --dir "$W/$1" "${@:2}" 2>/dev/null; }
gen z50k --lines 2000000 --keys 50000
gen u5k --lines 2000000 --keys 5000 --distribution uniform
gen u20k --lines 200000 --keys 20000 --distribution uniform
gen u200k --lines 200000 --keys 200000 --distribution uniform

# t NAME COMMAND...: one wall-clock run into a fresh $W/out, appended to $W/NAME.times.
t() {
    local name=$1; shift
    rm -rf "$W/out"
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$W/rss" "$@" > /dev/null 2> "$W/stderr" || { cat "$W/stderr"; return 1; }
    t1=$(date +%s.%N)
    echo "$(echo "$t1 - $t0" | bc) $(cat "$W/rss")" >> "$W/$name.times"
}
best() { sort -n "$W/$1.times" | head -1; }
rm -f "$W"/*.times
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$W/src50k"
bash -c "ulimit -n 256; exec $H partition -q key $W/src50k $W/z50k/input.csv"
for round in 1 2 3; do
    t zipf bash -c "ulimit -n 256; exec $H partition -q key $W/out $W/z50k/input.csv"
    rm -rf "$W/dst"; "$FLOOR" "$W/src50k" "$W/dst" | awk '{print $3, 0}' >> "$W/floor.times"
    t uniform bash -c "ulimit -n 256; exec $H partition -q key $W/out $W/u5k/input.csv"
    if [ -x "$XSV" ]; then t xsv bash -c "cd $W && mkdir -p out && exec $XSV partition key out u5k/input.csv"; fi
    t m64 "$H" partition -q --memory 64M key "$W/out" "$W/u20k/input.csv"
    t m6 "$H" partition -q --memory 6M key "$W/out" "$W/u20k/input.csv"
    t m256 "$H" partition -q --memory 256M key "$W/out" "$W/u200k/input.csv"
    t m1 "$H" partition -q --memory 1M key "$W/out" "$W/u200k/input.csv"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
ratio() { echo "scale=2; $(best "$1" | cut -d' ' -f1) / $(best "$2" | cut -d' ' -f1)" | bc; }
echo "1. 50k Zipf, ulimit -n 256: handoff $(best zipf) s/KB, floor $(best floor | cut -d' ' -f1) s: $(ratio zipf floor)x (target <= 1.5)"
[ -f "$W/xsv.times" ] && echo "2. 5k uniform: handoff $(best uniform), xsv $(best xsv): $(ratio uniform xsv)x (target <= 0.8)" \
    || echo "2. 5k uniform: handoff $(best uniform) s/KB (no xsv at $XSV)"
echo "3. 20k keys: --memory 6M $(best m6), 64M $(best m64): $(ratio m6 m64)x (target <= 2)"
echo "   200k keys: --memory 1M $(best m1), 256M $(best m256): $(ratio m1 m256)x (target <= 2)"
