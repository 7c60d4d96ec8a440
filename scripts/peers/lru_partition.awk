# What a user writes in awk to split a CSV by a column without running out of descriptors:
# keep at most MAX_OPEN files open and close() the least recently used one before opening
# another. The recency order is a doubly linked list in two arrays (newer[], older[]), so a
# record costs O(1) like scripts/lru_partition.py's OrderedDict, not a scan of the open files.
# Files are always opened for appending (`>>`), since awk's `>` would truncate a file reopened
# after close(); OUTDIR must start empty. Fields are split at every comma: right for this
# input (no quoted fields), not for all CSV.
#
#   gawk -F, -v OUTDIR=DIR -v KEY=key [-v MAX_OPEN=200] -f lru_partition.awk INPUT
NR == 1 {
    if (MAX_OPEN == "") MAX_OPEN = 200
    header = $0
    for (i = 1; i <= NF; i++) if ($i == KEY) column = i
    if (!column) { print "no column " KEY > "/dev/stderr"; exit 2 }
    # The list's sentinel: newer[HEAD] is the oldest open file, older[HEAD] the newest.
    HEAD = SUBSEP
    newer[HEAD] = HEAD; older[HEAD] = HEAD
    next
}
{
    file = OUTDIR "/" $column ".csv"
    if (file in newer) {
        if (older[HEAD] != file) {          # not already the newest: unlink it
            newer[older[file]] = newer[file]; older[newer[file]] = older[file]
            append_newest(file)
        }
    } else {
        if (open_count >= MAX_OPEN) {       # close the oldest
            oldest = newer[HEAD]
            close(oldest)
            newer[HEAD] = newer[oldest]; older[newer[oldest]] = HEAD
            delete newer[oldest]; delete older[oldest]
            open_count--
        }
        open_count++
        append_newest(file)
        if (!(file in seen)) { seen[file] = 1; print header >> file }
    }
    print >> file
}
function append_newest(f) {
    older[f] = older[HEAD]; newer[f] = HEAD
    newer[older[HEAD]] = f; older[HEAD] = f
}
