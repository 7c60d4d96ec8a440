#!/usr/bin/env bash
# Reproduces the README's partition table: handoff partition against itself with a budget
# above the key count, xsv partition, an LRU-of-files Python script, and `cat` (the floor), on
# one generated input. Run from the repository root, as root (to raise the hard descriptor
# limit for the unlimited runs). xsv: `cargo install xsv --root /tmp/xsv-install`.
#
#   bash scripts/compare-partition.sh [WORKDIR] [LINES] [KEYS]
set -euo pipefail
W=${1:-/tmp/handoff-compare}
LINES=${2:-2000000}
KEYS=${3:-50000}
XSV=${XSV:-/tmp/xsv-install/bin/xsv}
H=$PWD/target/release/handoff
cargo build -q --release -p handoff-cli
mkdir -p "$W"
"$H" bench partition --lines "$LINES" --keys "$KEYS" --seed 1 --generate-only --dir "$W"
INPUT=$W/input.csv
cat "$INPUT" > /dev/null # into the page cache

# run NAME COMMAND...: the best of 3 wall-clock times and the peak RSS of that run, each run
# into a fresh directory (file creation cost depends on the file system's state).
run() {
    local name=$1; shift
    local best=999999 rss=0
    for round in 1 2 3; do
        rm -rf "$W/out" && mkdir -p "$W/out"
        local t0 t1
        t0=$(date +%s.%N)
        /usr/bin/time -f "%M" -o "$W/rss" "$@" > /dev/null 2> "$W/stderr" || { cat "$W/stderr"; return 1; }
        t1=$(date +%s.%N)
        local t; t=$(echo "$t1 - $t0" | bc)
        if (( $(echo "$t < $best" | bc) )); then best=$t; rss=$(cat "$W/rss"); fi
    done
    printf "%-44s %8.2f s   peak RSS %7.1f MiB\n" "$name" "$best" "$(echo "$rss / 1024" | bc -l)"
    echo "$name $best" >> "$W/times"
    # Keep one output per tool, to compare the files.
    rm -rf "$W/out-$name" && mv "$W/out" "$W/out-$name"
}
: > "$W/times"
echo "input: $(wc -l < "$INPUT") lines, $(du -m "$INPUT" | cut -f1) MB, $KEYS keys (Zipf 1.1); descriptor limit $(ulimit -Sn)/$(ulimit -Hn)"
HARD=$(ulimit -Hn)
run cat                    cat "$INPUT"
run handoff-max-open-256   "$H" partition -q --max-open 256 key "$W/out" "$INPUT"
run handoff-256-memory-32M "$H" partition -q --max-open 256 --memory 32M key "$W/out" "$INPUT"
if [ "$HARD" -gt $((KEYS + 64)) ]; then
    # Both need a descriptor per key: only when the hard limit allows (raising it needs
    # CAP_SYS_RESOURCE, which this machine's root lacks).
    run handoff-above-keys "$H" partition -q --max-open $((KEYS + 32)) key "$W/out" "$INPUT"
    if [ -x "$XSV" ]; then
        run xsv-unlimited bash -c "ulimit -n $HARD && exec \"$XSV\" partition key \"$W/out\" \"$INPUT\""
    fi
else
    echo "(handoff above the key count and xsv need $KEYS descriptors; the hard limit is $HARD: skipped)"
fi
run python-lru-200         python3 scripts/lru_partition.py "$W/out" "$INPUT" 200

# Same files, byte for byte, whichever way they were made.
for other in handoff-256-memory-32M handoff-above-keys xsv-unlimited python-lru-200; do
    if [ -d "$W/out-$other" ]; then
        if diff -r "$W/out-handoff-max-open-256" "$W/out-$other" > /dev/null; then
            echo "outputs: handoff-max-open-256 == $other"
        else
            echo "outputs: handoff-max-open-256 != $other"
        fi
    fi
done
awk '{t[$1]=$2} END {
  printf "ratios: python / handoff-256 = %.1f; handoff-256 / cat = %.0f", t["python-lru-200"]/t["handoff-max-open-256"], t["handoff-max-open-256"]/t["cat"]
  if ("handoff-above-keys" in t) printf "; handoff-256 / handoff-above-keys = %.2f", t["handoff-max-open-256"]/t["handoff-above-keys"]
  if ("xsv-unlimited" in t) printf "; handoff-256 / xsv = %.2f", t["handoff-max-open-256"]/t["xsv-unlimited"]
  printf "\n" }' "$W/times"
