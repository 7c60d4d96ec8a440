#!/usr/bin/env python3
"""pyarrow's dataset writer with Hive partitioning (`OUTDIR/KEY=value/part-N.csv`, the key
column left out of the files), set as a user must to get past its defaults: `max_partitions`
(default 1,024 per batch: more keys fail) raised past any key count here, and `max_open_files`
(default 1,024) lowered to MAX_OPEN to stay under the descriptor limit; Arrow then closes the
least recently used file and starts a new one for that key, so a key can end up in many files.

    arrow_partition.py INPUT OUTDIR KEY [MAX_OPEN]"""
import sys

import pyarrow.dataset as ds

source, outdir, key = sys.argv[1:4]
max_open = int(sys.argv[4]) if len(sys.argv) > 4 else 200
ds.write_dataset(
    ds.dataset(source, format="csv"),
    outdir,
    format="csv",
    partitioning=[key],
    partitioning_flavor="hive",
    max_partitions=1_000_000,
    max_open_files=max_open,
)
