#!/usr/bin/env python3
"""Polars' streaming partitioned sink (`pl.PartitionBy`, unstable in Polars 1.x/2.x), as its
documentation shows it: `OUTDIR/KEY=value/N.csv`.

    polars_partition.py INPUT OUTDIR KEY"""
import sys

import polars as pl

source, outdir, key = sys.argv[1:4]
pl.scan_csv(source).sink_csv(pl.PartitionBy(outdir, key=key))
