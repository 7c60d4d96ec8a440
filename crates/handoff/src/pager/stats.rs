//! [`Stats`]: what the pager did, and the counters behind it.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a pager's counters ([`Pager::stats`](super::Pager::stats)).
///
/// ```
/// use handoff::pager::{OpenOptions, Pager};
///
/// let dir = tempfile::tempdir()?;
/// let pager = Pager::new(1);
/// let mut options = OpenOptions::new();
/// options.read(true).write(true).create(true);
/// let a = pager.open(dir.path().join("a"), &options)?;
/// let b = pager.open(dir.path().join("b"), &options)?;
/// a.with_crt_fd(|_fd| ())?; // a real descriptor for a...
/// b.with_crt_fd(|_fd| ())?; // ...then for b: a's is closed
/// a.with_crt_fd(|_fd| ())?; // and a's again: paged in
/// let stats = pager.stats();
/// assert_eq!(stats.opens, 2);
/// assert!(stats.page_ins >= 1 && stats.evictions >= 2);
/// assert_eq!(stats.peak_resident, 1);
/// # drop(b);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Operations that found their file resident (may undercount hits on one file by several
    /// threads at the same instant).
    pub hits: u64,
    /// Reopens of a paged-out file.
    pub page_ins: u64,
    /// Descriptors closed to make room.
    pub evictions: u64,
    /// Page-ins refused because another file was at the path.
    pub identity_failures: u64,
    /// Real descriptors held now.
    pub resident: u64,
    /// The most real descriptors held at once, counting one being opened (the budget is taken
    /// before the open): never above the budget.
    pub peak_resident: u64,
    /// Files that cannot be paged out (pipes, sockets, unlinked files), held now.
    pub permanent: u64,
    /// First opens and adoptions.
    pub opens: u64,
    /// Virtual files closed.
    pub closes: u64,
    /// Times a page-in waited because every resident file was pinned.
    pub waits: u64,
    /// Opens that failed with EMFILE/ENFILE and were retried after an eviction.
    pub emfile_retries: u64,
}

/// The live counters (hits live mostly in the entries: see `Table::hits`).
#[derive(Default)]
pub(super) struct Counters {
    pub(super) hits: AtomicU64,
    pub(super) page_ins: AtomicU64,
    pub(super) evictions: AtomicU64,
    pub(super) identity_failures: AtomicU64,
    pub(super) opens: AtomicU64,
    pub(super) closes: AtomicU64,
    pub(super) emfile_retries: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self, hits: u64, budget: &super::budget::Budget) -> Stats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            hits,
            page_ins: load(&self.page_ins),
            evictions: load(&self.evictions),
            identity_failures: load(&self.identity_failures),
            resident: budget.resident() as u64,
            peak_resident: budget.peak(),
            permanent: budget.permanent() as u64,
            opens: load(&self.opens),
            closes: load(&self.closes),
            waits: budget.waits(),
            emfile_retries: load(&self.emfile_retries),
        }
    }
}
