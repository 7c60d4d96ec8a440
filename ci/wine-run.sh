#!/usr/bin/env bash
# Runs a Windows program under Wine once the previous program's wineserver has exited: cargo's
# runner for x86_64-pc-windows-gnu in ci/windows-test.sh, and the script's own `wine` calls.
#
# Debian's /usr/bin/wineserver starts the server with -p0: it begins its shutdown the instant
# the last Windows process exits, and a program that connects in that instant is dropped ("wine
# client error:0: recvmsg: Connection reset by peer", before it prints a line) or killed two
# seconds later. cargo starts the next test binary within milliseconds of the last one's exit,
# and three CI runs failed so. `wineserver -w` waits on the server's lock, not its socket, so
# it cannot meet that instant; then `wine` starts a fresh server. The wait is bounded: a
# program left running by the last one keeps its server up, and the next program then joins that
# server as before. (A server kept alive for the whole run, `wineserver -p`, removed the race but
# brought another failure: CreateProcess of handoff.exe returning ERROR_INTERNAL_ERROR, in 3 of
# some 15 runs of the partition tests under it and in none of some 15 CI runs without it.)
timeout 60 wineserver -w || true
exec wine "$@"
