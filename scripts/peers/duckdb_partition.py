#!/usr/bin/env python3
"""DuckDB's partitioned write, as its documentation shows it: one Hive directory per key
(`OUTDIR/KEY=value/data_N.csv`, the key column left out of the files). DuckDB keeps at most
`partitioned_write_max_open_files` (default 100) files open and starts a new file for a key
whose file it had to close, so a key can end up in several files.

    duckdb_partition.py INPUT OUTDIR KEY"""
import sys

import duckdb

source, outdir, key = sys.argv[1:4]
duckdb.sql(
    f"COPY (SELECT * FROM read_csv('{source}')) TO '{outdir}' "
    f"(FORMAT csv, PARTITION_BY ({key}))"
)
