#!/usr/bin/env python3
"""An independent check of partitioned CSV outputs against their input, for
scripts/compare-partition.sh: it shares no code with handoff or with any peer.

    check_partition.py INPUT KEY_COLUMN NAME=OUTDIR [NAME=OUTDIR ...]

The input is parsed once with Python's csv module and its records grouped by KEY_COLUMN, in
input order. Each OUTDIR is then read whole (every regular file under it, recursively, in
natural name order): each file must start with a header naming the input's columns (all of
them, or all but KEY_COLUMN when the key is in a `KEY_COLUMN=value` directory above the file,
the Hive layout of DuckDB, Polars and Arrow); every record's fields are mapped back to the
input's column order by that header; a file with the key column must hold one key only.
Records are compared as parsed fields, never as bytes (DuckDB and Arrow quote differently).

Verdicts, one tab-separated line per NAME: name, `ok` or `WRONG: why`, the number of files,
and whether each key's records came out in input order (`yes`/`no`; the files of one key are
read in natural name order: `data_0`, `data_1`, ... `data_10`). `ok` means every key has
exactly the input's records as a multiset (sorted lists compared), no key is missing or
extra; order is reported, not required, since DuckDB, Polars and Arrow do not promise it."""
import collections
import csv
import os
import re
import sys
import urllib.parse

csv.field_size_limit(1 << 30)


def natural(path):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def read_input(path, key_column):
    with open(path, newline="", encoding="utf-8") as source:
        rows = csv.reader(source)
        header = next(rows)
        key_at = header.index(key_column)
        groups = collections.defaultdict(list)
        for row in rows:
            groups[row[key_at]].append(tuple(row))
    return header, key_at, groups


def hive_key(relative, key_column):
    """The key from a `KEY_COLUMN=value` directory in the path, or None."""
    for part in relative.split(os.sep)[:-1]:
        name, sep, value = part.partition("=")
        if sep and name == key_column:
            return urllib.parse.unquote(value)
    return None


def read_output(outdir, header, key_column):
    """(key -> records in file order, number of files) or raises ValueError."""
    files = []
    for root, _dirs, names in os.walk(outdir):
        for name in names:
            files.append(os.path.relpath(os.path.join(root, name), outdir))
    files.sort(key=natural)
    groups = collections.defaultdict(list)
    for relative in files:
        with open(os.path.join(outdir, relative), newline="", encoding="utf-8") as source:
            rows = csv.reader(source)
            names = next(rows, None)
            if names is None:
                if hive_key(relative, key_column) is None:
                    raise ValueError(f"{relative}: empty, no header")
                continue
            path_key = hive_key(relative, key_column)
            if key_column in names:
                expected = sorted(header)
            else:
                expected = sorted(c for c in header if c != key_column)
                if path_key is None:
                    raise ValueError(f"{relative}: no {key_column} column and no {key_column}= directory")
            if sorted(names) != expected:
                raise ValueError(f"{relative}: header {names} is not the input's {header}")
            position = {name: i for i, name in enumerate(names)}
            order = [position.get(name) for name in header]
            file_key = None
            for row in rows:
                if len(row) != len(names):
                    raise ValueError(f"{relative}: a record with {len(row)} fields, header {len(names)}")
                record = tuple(path_key if i is None else row[i] for i in order)
                key = record[header.index(key_column)]
                if path_key is not None and key != path_key:
                    raise ValueError(f"{relative}: key {key!r} under {key_column}={path_key}")
                if path_key is None and file_key is not None and key != file_key:
                    raise ValueError(f"{relative}: holds keys {file_key!r} and {key!r}")
                file_key = key
                groups[key].append(record)
    return groups, len(files)


def verdict(expected, got):
    missing = expected.keys() - got.keys()
    if missing:
        return f"WRONG: {len(missing)} keys missing (e.g. {sorted(missing)[0]!r})", "-"
    extra = got.keys() - expected.keys()
    if extra:
        return f"WRONG: {len(extra)} keys not in the input (e.g. {sorted(extra)[0]!r})", "-"
    ordered = True
    for key, records in expected.items():
        if got[key] != records:
            ordered = False
            if sorted(got[key]) != sorted(records):
                return (f"WRONG: key {key!r}: {len(got[key])} records, "
                        f"input {len(records)}, or different records"), "-"
    return "ok", "yes" if ordered else "no"


def main():
    path, key_column, outputs = sys.argv[1], sys.argv[2], sys.argv[3:]
    header, _key_at, expected = read_input(path, key_column)
    for spec in outputs:
        name, _, outdir = spec.partition("=")
        try:
            got, files = read_output(outdir, header, key_column)
        except (ValueError, OSError, UnicodeDecodeError, csv.Error) as error:
            print(f"{name}\tWRONG: {error}\t-\t-", flush=True)
            continue
        result, ordered = verdict(expected, got)
        print(f"{name}\t{result}\t{files}\t{ordered}", flush=True)


if __name__ == "__main__":
    main()
