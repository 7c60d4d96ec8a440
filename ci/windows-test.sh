#!/usr/bin/env bash
# Build handoff for x86_64-pc-windows-gnu (msvcrt.dll, as MinGW-w64 links it) and run the whole
# test suite under Wine. Needs root for the one-time apt install; everything else lives under
# target/wine/ (or $HANDOFF_WINE_DIR).
#
#   bash ci/windows-test.sh [extra cargo test args, e.g. --test crt]
#
# Facts and traps behind each step: ../shared/notes/windows-under-wine.md.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${HANDOFF_WINE_DIR:-$PWD/target/wine}
T=x86_64-pc-windows-gnu
mkdir -p "$W"
SECONDS=0

# 1. Packages: Debian's rustc-web/cargo-web 1.96 with the std sources (rustup's toolchain has no
#    Windows std and cannot fetch one), the MinGW-w64 linker and CRT import libraries, Wine 8.
packages=(rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 wine64 wine python3)
if ! dpkg-query -W -f='${Status}\n' "${packages[@]}" 2>/dev/null | grep -qv "install ok installed" &&
   [ "$(dpkg-query -W -f='${Status}\n' "${packages[@]}" 2>/dev/null | wc -l)" -eq "${#packages[@]}" ]; then
    echo "[windows] packages present"
else
    echo "[windows] installing ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# 2. Environment: /usr/bin first so Debian's cargo 1.96 wins over rustup's proxies;
#    RUSTC_BOOTSTRAP lets it build std from source (-Zbuild-std).
export PATH=/usr/bin:/bin:$PATH
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=$W/target
export WINEPREFIX=$W/prefix WINEDEBUG=-all
# No Mono/Gecko prompts; a crash on any thread is a non-zero exit (Wine's default handler may
# otherwise exit 0).
export WINEDLLOVERRIDES="mscoree,mshtml=;winedbg.exe=d"
# Every Windows program starts once the last one's server has exited (see ci/wine-run.sh).
wine_run=$PWD/ci/wine-run.sh
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=$wine_run
# The pager's model test: fewer cases under Wine, where every file operation is slower.
export HANDOFF_MODEL_CASES=${HANDOFF_MODEL_CASES:-1000}

# 3. Wine prefix, plus a bcryptprimitives.dll that exports ProcessPrng (Rust >= 1.78 std imports
#    it; Wine 8.0 lacks it and every .exe would exit 53 without a word). Python 3 runs the
#    partition oracle (step 6).
[ -d "$WINEPREFIX/drive_c/windows/system32" ] || wineboot -i >/dev/null 2>&1
stub=$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll
if [ ! -s "$stub" ] || ! grep -q ProcessPrng "$stub"; then
    cat > "$W/bcryptprimitives.c" <<'C'
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len); /* RtlGenRandom (advapi32) */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE p, SIZE_T n) {
    while (n) { ULONG k = n > 0x7fffffff ? 0x7fffffff : (ULONG)n;
                if (!SystemFunction036(p, k)) return FALSE; p += k; n -= k; }
    return TRUE;
}
C
    x86_64-w64-mingw32-gcc -O2 -shared -s -o "$stub" "$W/bcryptprimitives.c" -ladvapi32
fi
echo "[windows] toolchain and prefix ready at ${SECONDS}s"

# 4. Build (warnings are errors, as on Unix) and test the library. One test thread: the C
#    runtime's descriptor table is process-wide, and the tests count the process's handles.
RUSTFLAGS="-D warnings" cargo test -Zbuild-std --target "$T" -p handoff "$@" -- --test-threads=1
echo "[windows] tests passed under Wine at ${SECONDS}s"

# 5. The C API: handoff_c.dll (+ libhandoff_c.dll.a), its unit and header tests, and the C test
#    program built with MinGW-w64 against the DLL (both link msvcrt.dll), run under Wine:
#    10,000 files through _write/_read on pinned descriptors (more than msvcrt's 2048 slots),
#    every HANDLE closed at the end (a GetHandleInformation census), every error case, and
#    4 threads x 1,000 files under a budget of 8.
RUSTFLAGS="-D warnings" cargo test -Zbuild-std --target "$T" -p handoff-c -- --test-threads=1
RUSTFLAGS="-D warnings" cargo build -Zbuild-std --target "$T" -p handoff-c
out=$CARGO_TARGET_DIR/$T/debug
x86_64-w64-mingw32-gcc -std=c11 -O1 -Wall -Wextra -Werror -I crates/handoff-c/include \
    crates/handoff-c/tests/c/pager_test.c -o "$out/pager_test.exe" -L "$out" -lhandoff_c
if x86_64-w64-mingw32-objdump -p "$out/pager_test.exe" "$out/handoff_c.dll" | grep -i "DLL Name" |
   grep -qiv -e msvcrt.dll -e kernel32.dll -e handoff_c.dll -e ntdll.dll -e bcryptprimitives.dll \
             -e advapi32.dll -e ws2_32.dll -e userenv.dll -e api-ms-win; then
    echo "[windows] the DLL or the test program imports an unexpected DLL:" >&2
    x86_64-w64-mingw32-objdump -p "$out/pager_test.exe" "$out/handoff_c.dll" | grep -i "DLL Name" >&2
    exit 1
fi
for test in bulk errors threads stale; do
    dir=$(mktemp -d "$W/c-api.XXXXXX")
    count=$([ "$test" = bulk ] && echo 10000 || true)
    # shellcheck disable=SC2086
    (cd "$out" && "$wine_run" ./pager_test.exe "$test" "$("$wine_run" winepath -w "$dir")" $count)
    rm -rf "$dir"
done
echo "[windows] C API tests passed under Wine at ${SECONDS}s"

# 6. `handoff partition`, the CLI: its unit tests (the console control handler among them) and
#    the end-to-end tests that make sense on Windows (CRLF, lone CR, quotes, a CRLF cut between
#    reads, --append/--force, a missing column: exit 2, malformed records, several inputs;
#    those that need setrlimit, Unix signals or symlinks are cfg(unix)). Then the real binary
#    under Wine, judged by ci/partition_oracle.py (Python, no code shared with handoff):
#    36,000 records over 5,000 keys with --max-open 64, every file byte for byte; and Ctrl-C
#    mid-record (SIGINT to the Wine process, which Wine delivers as CTRL_C_EVENT to the
#    handlers of SetConsoleCtrlHandler): exit 130, only the whole records, all of them.
RUSTFLAGS="-D warnings" cargo test -Zbuild-std --target "$T" -p handoff-cli --bin handoff \
    --test partition --test partition_safety -- --test-threads=1
exe=$("$wine_run" winepath -w "$out/handoff.exe")
dir=$(mktemp -d "$W/partition.XXXXXX")
python3 ci/partition_oracle.py generate "$dir/in.csv" 36000 5000 1
started=$SECONDS
(cd "$dir" && "$wine_run" "$exe" partition --max-open 64 key out in.csv)
echo "[windows] partition: 5,000 files in $((SECONDS - started)) s under Wine"
python3 ci/partition_oracle.py check "$dir/in.csv" "$dir/out"
rm -rf "$dir"
dir=$(mktemp -d "$W/partition.XXXXXX")
python3 ci/partition_oracle.py interrupt "$dir" "$wine_run" "$exe"
rm -rf "$dir"
echo "[windows] partition tests passed under Wine at ${SECONDS}s"
