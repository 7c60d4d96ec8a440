#!/usr/bin/env python3
"""An oracle for `handoff partition` that shares no code with it (used by ci/windows-test.sh).

    partition_oracle.py generate INPUT LINES KEYS SEED   write a CSV input
    partition_oracle.py check INPUT OUTDIR               judge what a run left in OUTDIR
    partition_oracle.py interrupt DIR CMD...             Ctrl-C a run mid-record, judge it

`generate` writes a header `n,key,note` and LINES records over KEYS keys (every key at least
once; keys `k00000`.. are plain names, so a key's file is `KEY.csv`), with the bytes that make
CSV hard: CRLF and LF terminators mixed, quoted fields holding the delimiter, CR LF, LF and
doubled quotes, quoted keys, an empty field.

`interrupt` runs `CMD... partition key DIR/out -` (CMD: e.g. `wine handoff.exe`) with a pipe on
its standard input, writes the header, 150 whole records and half of the next one, waits until
the run has taken every byte out of the pipe, sends SIGINT (which Wine delivers to the program as
CTRL_C_EVENT, through the handlers of SetConsoleCtrlHandler), keeps the pipe open and quiet, and
requires exit code 130, a summary naming 150 records, and OUTDIR as `check` finds it for exactly
the 150 whole records: nothing of the cut record, nothing lost.

`check` splits the input into records itself, straight from its bytes (a record ends at an
unquoted LF, CR LF or lone CR; quotes toggle), reads each record's key with Python's csv module,
and requires OUTDIR to hold exactly one file per key, `KEY.csv`, whose bytes are the header's
followed by that key's records, in input order, each byte for byte as in the input.
"""

import csv
import os
import random
import sys


def generate(path, lines, keys, seed):
    rng = random.Random(seed)
    order = list(range(keys)) + [rng.randrange(keys) for _ in range(lines - keys)]
    rng.shuffle(order)
    out = [b"n,key,note\r\n"]
    for n, k in enumerate(order):
        key = b"k%05d" % k
        if n % 7 == 3:
            key = b'"' + key + b'"'
        note = [
            b"plain %d" % n,
            b'"a, comma and ""quotes"" %d"' % n,
            b'"CR LF\r\ninside %d"' % n,
            b'"LF\ninside, %d"' % n,
            b"",
            b"x" * (n % 97),
        ][n % 6]
        term = b"\n" if n % 5 == 4 else b"\r\n"
        out.append(b"%d,%s,%s%s" % (n, key, note, term))
    with open(path, "wb") as f:
        f.write(b"".join(out))


def records(data):
    """The input's records, each with its terminator, split from the bytes."""
    out, start, quoted, i, n = [], 0, False, 0, len(data)
    while i < n:
        c = data[i]
        if c == 0x22:  # "
            quoted = not quoted
        elif not quoted and c in (0x0A, 0x0D):
            if c == 0x0D and i + 1 < n and data[i + 1] == 0x0A:
                i += 1
            out.append(data[start : i + 1])
            start = i + 1
        i += 1
    assert not quoted, "the input ends inside quotes"
    if start < n:
        out.append(data[start:])  # no terminator (generate never writes one)
    return out


def fields(record):
    return next(csv.reader([record.decode("utf-8")], strict=True))


def check(input_path, outdir):
    with open(input_path, "rb") as f:
        data = f.read()
    recs = records(data)
    header, body = recs[0], recs[1:]
    column = fields(header).index("key")
    expected = {}
    for rec in body:
        key = fields(rec)[column]
        expected.setdefault(key + ".csv", [header]).append(rec)
    got = sorted(os.listdir(outdir))
    if got != sorted(expected):
        missing = sorted(set(expected) - set(got))[:5]
        extra = sorted(set(got) - set(expected))[:5]
        sys.exit(f"oracle: {len(got)} files, want {len(expected)}; missing {missing}, extra {extra}")
    for name, parts in expected.items():
        with open(os.path.join(outdir, name), "rb") as f:
            have = f.read()
        want = b"".join(parts)
        if have != want:
            at = next((i for i, (a, b) in enumerate(zip(want, have)) if a != b), min(len(want), len(have)))
            sys.exit(
                f"oracle: {name}: {len(have)} bytes, want {len(want)}; first difference at byte {at}: "
                f"want {want[max(0, at - 20):at + 20]!r}, got {have[max(0, at - 20):at + 20]!r}"
            )
    print(f"oracle: {len(body)} records in {len(expected)} files, every byte as the input's")


def interrupt(work, command):
    import fcntl
    import signal
    import subprocess
    import termios
    import time

    source = os.path.join(work, "all.csv")
    generate(source, 400, 20, 7)
    with open(source, "rb") as f:
        recs = records(f.read())
    whole = 150
    sent = os.path.join(work, "sent.csv")
    with open(sent, "wb") as f:
        f.write(b"".join(recs[: whole + 1]))  # the header and 150 records
    cut = recs[whole + 1]
    cut = cut[: len(cut) // 2]
    out = os.path.join(work, "out")
    # stderr to a file, not a pipe: a wineserver or Wine service the run starts inherits it and
    # may outlive the run, and a pipe would not end before they do.
    log = open(os.path.join(work, "stderr.txt"), "w+b")
    child = subprocess.Popen(
        command + ["partition", "key", "out", "-"],
        cwd=work,
        stdin=subprocess.PIPE,
        stderr=log,
    )
    deadline = time.monotonic() + 60
    while not os.path.isdir(out):  # the run's set-up is done (Wine starts slowly)
        assert time.monotonic() < deadline and child.poll() is None, "the run never made OUTDIR"
        time.sleep(0.05)
    with open(sent, "rb") as f:
        child.stdin.write(f.read() + cut)
    child.stdin.flush()
    while True:  # until the run has read every byte sent (FIONREAD on the write end)
        unread = fcntl.ioctl(child.stdin.fileno(), termios.FIONREAD, b"\0\0\0\0")
        if int.from_bytes(unread, sys.byteorder) == 0:
            break
        assert time.monotonic() < deadline, "the run left bytes unread for 60 s"
        time.sleep(0.05)
    time.sleep(1)  # from its reading thread through the parser
    os.kill(child.pid, signal.SIGINT)
    try:
        code = child.wait(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        sys.exit("interrupt: still running 60 s after Ctrl-C (the pipe open and quiet)")
    log.seek(0)
    stderr = log.read().decode("utf-8", "replace")
    child.stdin.close()
    if code != 130:
        sys.exit(f"interrupt: exit code {code}, want 130; stderr: {stderr}")
    if f"{whole} records into " not in stderr or "Ctrl-C" not in stderr:
        sys.exit(f"interrupt: the summary should name {whole} records and Ctrl-C: {stderr}")
    check(sent, out)
    print(f"interrupt: exit 130 after Ctrl-C mid-record; {stderr.strip()}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["generate"] and len(sys.argv) == 6:
        generate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif sys.argv[1:2] == ["check"] and len(sys.argv) == 4:
        check(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["interrupt"] and len(sys.argv) >= 4:
        interrupt(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
