#!/usr/bin/env python3
"""The peer `handoff partition` is compared with: split a CSV by its first column into one
file per key, keeping at most 200 files open (an LRU of files in append mode), the way a
script works around the descriptor limit. Usage: lru_partition.py OUTDIR INPUT [OPEN]"""
import collections
import os
import sys


def main():
    outdir, path = sys.argv[1], sys.argv[2]
    capacity = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    os.makedirs(outdir, exist_ok=True)
    open_files = collections.OrderedDict()
    seen = set()
    with open(path, "rb") as source:
        header = source.readline()
        for line in source:
            key = line.split(b",", 1)[0]
            out = open_files.get(key)
            if out is None:
                if len(open_files) >= capacity:
                    open_files.popitem(last=False)[1].close()
                out = open(os.path.join(outdir, key.decode() + ".csv"), "ab")
                if key not in seen:
                    seen.add(key)
                    out.write(header)
                open_files[key] = out
            else:
                open_files.move_to_end(key)
            out.write(line)
    for out in open_files.values():
        out.close()


if __name__ == "__main__":
    main()
