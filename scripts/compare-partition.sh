#!/usr/bin/env bash
# `handoff partition` side by side with its peers, on the same generated input and the same
# descriptor limit, every output checked, for several key counts: the README's peers table and
# docs/partition-peers.svg (rendered from the results by scripts/partition-chart.py).
#
#   bash scripts/compare-partition.sh [WORKDIR] [LINES] [KEYS...]
#   bash scripts/compare-partition.sh /dev/shm/handoff-peers 2000000 100 1000 10000 100000
#
# Run from the repository root. WORKDIR should be on tmpfs (on ext4 here, file creation and
# writeback swing every tool 5x from run to run). Environment:
#   TIMEOUT=120   seconds per run; a run past it is killed and recorded as a timeout
#   NOFILE=256    the descriptor limit (`ulimit -n`, soft and hard) every tool runs under, but
#                 xsv, which keeps every file open at once: it gets the hard limit (recorded)
#   ROUNDS=3      runs of handoff (every variant) and xsv (best wall time kept); the others
#                 run once
#   TOOLS="handoff xsv python-lru gawk-lru miller duckdb polars arrow" (the default); also
#                 handoff-32M (`--memory 32M`) and handoff-above-keys (`--max-open KEYS+32`
#                 under the hard limit), which with handoff, xsv and python-lru give the
#                 earlier handoff-only table of the README's Performance section
#   RESULTS=docs/partition-peers.tsv   written when the run ends (and $WORKDIR/results.tsv
#                 as it goes)
#   XSV=/tmp/xsv-install/bin/xsv  (`cargo install xsv --root /tmp/xsv-install`)
# Peers: Debian gawk and miller; Python duckdb, polars, pyarrow (matplotlib for the chart).
#
# Each run starts on an empty output directory. Recorded per tool and key count: wall time
# (GNU time's %e: of the best round for handoff and xsv), peak RSS (%M, of that round), the
# number of files written (DuckDB and Arrow split a key over several files once they have to
# close one), the status (ok, timeout, failed with the last line of its stderr, or WRONG with
# the checker's reason), and whether each key's records kept their input order. Outputs are
# checked by scripts/check_partition.py (Python's csv module, parsed records per key compared
# as multisets, since DuckDB, Polars and Arrow do not promise order).
set -uo pipefail
W=${1:-/dev/shm/handoff-peers}
LINES=${2:-2000000}
shift 2 2>/dev/null || shift $#
KEYS=("$@")
[ ${#KEYS[@]} -gt 0 ] || KEYS=(100 1000 10000 100000)
TIMEOUT=${TIMEOUT:-120}
NOFILE=${NOFILE:-256}
ROUNDS=${ROUNDS:-3}
TOOLS=${TOOLS:-handoff xsv python-lru gawk-lru miller duckdb polars arrow}
RESULTS=${RESULTS:-docs/partition-peers.tsv}
XSV=${XSV:-/tmp/xsv-install/bin/xsv}
REPO=$PWD
H=$REPO/target/release/handoff
HARD=$(ulimit -Hn)

cargo build -q --release -p handoff-cli || exit 1
mkdir -p "$W"
TSV=$W/results.tsv
load() { cut -d' ' -f1-3 /proc/loadavg; }
{
    echo "# $(date -u +%FT%TZ), $(nproc) cores, $(uname -sr), WORKDIR $W ($(stat -f -c %T "$W")), $LINES lines, timeout ${TIMEOUT}s, ulimit -n $NOFILE (xsv: $HARD, the hard limit)"
    echo "# versions: $("$H" --version 2>/dev/null | head -1); xsv $("$XSV" --version 2>/dev/null || echo missing); $(gawk --version | head -1 | cut -d, -f1); $(mlr --version); python3 $(python3 -c 'import platform; print(platform.python_version())'), $(python3 -c 'import duckdb, polars, pyarrow; print(f"duckdb {duckdb.__version__}, polars {polars.__version__}, pyarrow {pyarrow.__version__}")' 2>&1)"
    echo "# load average before: $(load)"
    printf 'lines\tkeys\tdistinct_keys\ttool\tnofile\trounds\twall_s\trss_mib\tfiles\tstatus\torder\n'
} > "$TSV"
head -3 "$TSV"

# command TOOL INPUT OUTDIR: the tool's command line, one word per line.
command_of() {
    local input=$2 out=$3
    case $1 in
        handoff)    printf '%s\n' "$H" partition -q key "$out" "$input" ;;
        handoff-32M) printf '%s\n' "$H" partition -q --memory 32M key "$out" "$input" ;;
        handoff-above-keys) printf '%s\n' "$H" partition -q --max-open $((KEYS_NOW + 32)) key "$out" "$input" ;;
        xsv)        printf '%s\n' "$XSV" partition key "$out" "$input" ;;
        python-lru) printf '%s\n' python3 "$REPO/scripts/lru_partition.py" "$out" "$input" 200 ;;
        gawk-lru)   printf '%s\n' gawk -F, -v "OUTDIR=$out" -v KEY=key -v MAX_OPEN=200 \
                        -f "$REPO/scripts/peers/lru_partition.awk" "$input" ;;
        miller)     printf '%s\n' mlr --csv --from "$input" split -g key --prefix "$out/split" ;;
        duckdb)     printf '%s\n' python3 "$REPO/scripts/peers/duckdb_partition.py" "$input" "$out" key ;;
        polars)     printf '%s\n' python3 "$REPO/scripts/peers/polars_partition.py" "$input" "$out" key ;;
        arrow)      printf '%s\n' python3 "$REPO/scripts/peers/arrow_partition.py" "$input" "$out" key 200 ;;
    esac
}

# run TOOL KEYS INPUT DIR: ROUNDS (or 1) runs into DIR/out-TOOL, each under `ulimit -n` and the
# timeout; sets WALL RSS STATUS ROUNDS_DONE LIMIT.
run() {
    local tool=$1 keys=$2 input=$3 dir=$4 rounds=1 round rc line
    local out=$dir/out-$tool
    LIMIT=$NOFILE
    case $tool in xsv | handoff-above-keys) LIMIT=$HARD ;; esac
    case $tool in handoff* | xsv) rounds=$ROUNDS ;; esac
    local -a cmd
    mapfile -t cmd < <(command_of "$tool" "$input" "$out")
    WALL=; RSS=; STATUS=ok; ROUNDS_DONE=0
    for ((round = 1; round <= rounds; round++)); do
        rm -rf "$out" "$dir/cwd" && mkdir -p "$out" "$dir/cwd"
        # In a scratch directory on the same tmpfs: DuckDB spills to ./.tmp.
        (cd "$dir/cwd" && /usr/bin/time -f '%e %M' -o "$dir/time" \
            timeout -k 5 "$TIMEOUT" bash -c 'ulimit -n "$0" && exec "$@"' "$LIMIT" "${cmd[@]}" \
            > /dev/null 2> "$dir/stderr-$tool")
        rc=$?
        line=$(tail -1 "$dir/time")
        ROUNDS_DONE=$round
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
            STATUS="timeout after ${TIMEOUT}s"; WALL=$TIMEOUT; RSS=$(( ${line#* } / 1024 )); break
        elif [ $rc -ne 0 ]; then
            # The last line of stderr, tabs out, cut (the TSV and the README table take it).
            STATUS="failed (exit $rc): $(grep -v '^\s*$' "$dir/stderr-$tool" | tail -1 | tr '\t|' '  ' | cut -c1-110)"
            WALL=${line% *}; RSS=$(( ${line#* } / 1024 )); break
        fi
        if [ -z "$WALL" ] || (( $(echo "${line% *} < $WALL" | bc) )); then
            WALL=${line% *}; RSS=$(( ${line#* } / 1024 ))
        fi
    done
}

for keys in "${KEYS[@]}"; do
    dir=$W/k$keys
    KEYS_NOW=$keys
    input=$dir/input.csv
    [ -f "$input" ] || "$H" bench partition --generate-only --lines "$LINES" --keys "$keys" \
        --seed 1 --dir "$dir" 2>&1 | sed 's/^/  /'
    cat "$input" > /dev/null
    echo "== $keys keys ($(du -m "$input" | cut -f1) MB), load average $(load)"
    declare -A wall=() rss=() status=() rounds=() limit=() files=() order=()
    checks=()
    for tool in $TOOLS; do
        run "$tool" "$keys" "$input" "$dir"
        wall[$tool]=$WALL; rss[$tool]=$RSS; status[$tool]=$STATUS
        rounds[$tool]=$ROUNDS_DONE; limit[$tool]=$LIMIT
        files[$tool]=$(find "$dir/out-$tool" -type f | wc -l)
        order[$tool]=-
        [ "$STATUS" = ok ] && checks+=("$tool=$dir/out-$tool")
        printf '  %-11s %8s s %7s MiB %7s files  %s\n' "$tool" "$WALL" "$RSS" "${files[$tool]}" "$STATUS"
    done
    # The checker: the input's distinct keys, then a verdict per tool that ran to the end.
    distinct=$(python3 -c 'import sys
seen = set()
with open(sys.argv[1], "rb") as f:
    next(f)
    for line in f: seen.add(line.split(b",", 1)[0])
print(len(seen))' "$input")
    if [ ${#checks[@]} -gt 0 ]; then
        while IFS=$'\t' read -r tool verdict _files ordered; do
            order[$tool]=$ordered
            [ "$verdict" = ok ] || status[$tool]=$verdict
            echo "  check $tool: $verdict (per-key order kept: $ordered)"
        done < <(python3 "$REPO/scripts/check_partition.py" "$input" key "${checks[@]}")
    fi
    for tool in $TOOLS; do
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$LINES" "$keys" "$distinct" "$tool" \
            "${limit[$tool]}" "${rounds[$tool]}" "${wall[$tool]}" "${rss[$tool]}" "${files[$tool]}" \
            "${status[$tool]}" "${order[$tool]}" >> "$TSV"
        rm -rf "$dir/out-$tool"
    done
    unset wall rss status rounds limit files order
done
echo "# load average after: $(load)" >> "$TSV"
tail -1 "$TSV"
mkdir -p "$(dirname "$RESULTS")" && cp "$TSV" "$RESULTS" && echo "results: $RESULTS"
