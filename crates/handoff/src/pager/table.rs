//! The pager's shared state, and the coordination of its parts: the slots ([`slots`]), each
//! entry's state machine ([`entry`]), the budget ([`budget`]), the eviction policy
//! ([`clock`]) and the platform's backing. The rules live in those modules; this one only
//! calls them in order.
//!
//! [`slots`]: super::slots
//! [`entry`]: super::entry
//! [`budget`]: super::budget
//! [`clock`]: super::clock

use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use super::backing::{Backing as _, RawDescriptor};
use super::budget::{Budget, Token};
use super::clock::{Clock, Look};
use super::entry::{Claim, Entry, PageIn};
use super::error::{PageInError, PageInErrorKind};
use super::slots::{Slots, Vfd};
use super::stats::{Counters, Stats};
use super::sync::lock_std as lock;
use super::{sys, OpenOptions};
use crate::limits;

pub(super) struct Table {
    slots: Slots,
    pub(super) budget: Budget,
    clock: Mutex<Clock>,
    /// The backing's per-table state (Unix: the paths).
    shared: sys::Shared,
    /// Errors from closing at eviction, returned by the entry's next operation.
    errors: Mutex<HashMap<u32, io::Error>>,
    pub(super) counters: Counters,
}

impl Table {
    pub(super) fn new(budget: usize) -> Table {
        Table {
            slots: Slots::new(),
            budget: Budget::new(budget),
            clock: Mutex::default(),
            shared: sys::Shared::default(),
            errors: Mutex::default(),
            counters: Counters::default(),
        }
    }

    #[inline]
    pub(super) fn entry(&self, slot: u32) -> &Entry {
        self.slots.entry(slot)
    }

    /// Sets the budget; a smaller one evicts until it is met or nothing more is evictable.
    pub(super) fn set_budget(&self, budget: usize) {
        self.budget.set(budget);
        while self.budget.resident() > self.budget.budget() && self.evict_one() {}
    }

    /// Takes one descriptor of the budget, evicting to make room (see [`Budget::acquire`]).
    pub(super) fn acquire(&self) -> io::Result<Token<'_>> {
        self.budget.acquire(|| self.evict_one())
    }

    // ----- opening and closing -----------------------------------------------------------

    /// Publishes a freshly opened file: its resident descriptor with the token taken for it,
    /// if the first open left one, and how to page it in again.
    pub(super) fn install(
        &self,
        resident: Option<(RawDescriptor, Token<'_>)>,
        reopen: Option<sys::Reopen>,
        options: &OpenOptions,
    ) -> io::Result<Vfd> {
        let vfd = match self.slots.allocate() {
            Ok(vfd) => vfd,
            Err(error) => {
                if let Some((fd, _token)) = resident {
                    // SAFETY: the descriptor was opened for this file and never published.
                    let _ = unsafe { sys::Backing::close(fd) };
                }
                return Err(error);
            }
        };
        let entry = self.entry(vfd.slot);
        let fd = resident.map(|(fd, token)| {
            token.keep();
            fd
        });
        if entry.install(&self.shared, fd, reopen, options) {
            self.budget.count_permanent(true);
        } else if fd.is_some() {
            self.enlist(vfd.slot, entry);
            // Resident and unpinned: evictable for a waiter (the fence orders the install
            // before the look at the waiters, as a `SeqCst` read-modify-write would).
            super::sync::fence(Ordering::SeqCst);
            self.budget.notify();
        }
        self.counters.opens.fetch_add(1, Ordering::Relaxed);
        Ok(vfd)
    }

    /// Closes the entry's descriptor if it has one, frees the slot, and returns the first
    /// error: one kept from an eviction, or this close's.
    pub(super) fn release(&self, slot: u32) -> io::Result<()> {
        let entry = self.entry(slot);
        let locked = entry.lock();
        // Claiming waits for an evictor that is closing the descriptor right now, so the error
        // of that close, if any, is kept by the time it is taken below.
        let mut closed = Ok(());
        if let Some(claim) = entry.claim_for_close(&locked) {
            let permanent = claim.claimed().is_permanent();
            // SAFETY: the claim (BUSY, no pins) makes this the descriptor's only user.
            closed = unsafe { sys::Backing::close(claim.descriptor()) };
            claim.closed(false);
            if permanent {
                self.budget.count_permanent(false);
            }
            self.budget.release();
        }
        let kept = self.take_kept_error(slot);
        self.counters
            .hits
            .fetch_add(entry.take_hits(), Ordering::Relaxed);
        entry.free(&self.shared, &locked);
        drop(locked);
        self.slots.free(slot);
        self.counters.closes.fetch_add(1, Ordering::Relaxed);
        match kept {
            Some(error) => Err(error),
            None => closed,
        }
    }

    // ----- pinning: the hit path and the page-in ----------------------------------------

    /// Pins `slot`, paging it in if it is not resident. Returns its entry and descriptor.
    #[inline]
    pub(super) fn pin(&self, slot: u32) -> io::Result<(&Entry, RawDescriptor)> {
        let entry = self.entry(slot);
        if let Some(fd) = entry.pin() {
            if let Some(hits) = entry.count_hit() {
                self.counters.hits.fetch_add(hits, Ordering::Relaxed);
            }
            return Ok((entry, fd));
        }
        Ok((entry, self.page_in(slot, entry)?))
    }

    /// Unpins `entry` (one of this table's); a waiting page-in may evict it now.
    #[inline]
    pub(super) fn unpin(&self, entry: &Entry) {
        if entry.unpin() {
            super::sync::seq_cst_order_for_loom();
            self.budget.notify();
        }
    }

    #[cold]
    fn page_in(&self, slot: u32, entry: &Entry) -> io::Result<RawDescriptor> {
        let locked =
            match entry.begin_page_in(|| self.budget.deadlock(), || self.take_kept_error(slot))? {
                PageIn::Hit(fd) => return Ok(fd), // counted as the page-in it waited for
                PageIn::Locked(locked) => locked,
            };
        let options = entry.snapshot().options();
        let token = self.acquire()?;
        let opened = self.retry_evicting(
            || entry.backing.page_in(&self.shared, &options),
            limits::is_out_of_descriptors,
        );
        let fd = match opened {
            Ok(fd) => fd,
            Err(error) => {
                if PageInError::of(&error).is_some_and(PageInError::is_identity_failure) {
                    self.counters
                        .identity_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
                return Err(error); // the token goes back as it drops
            }
        };
        entry.page_in(&locked, fd);
        token.keep();
        self.enlist(slot, entry);
        self.counters.page_ins.fetch_add(1, Ordering::Relaxed);
        Ok(fd)
    }

    /// Takes the error kept for `slot` from a failed close at eviction, if there is one.
    pub(super) fn take_kept_error(&self, slot: u32) -> Option<io::Error> {
        if !self.entry(slot).take_error_flag() {
            return None;
        }
        let error = lock(&self.errors).remove(&slot)?;
        Some(PageInError::new(PageInErrorKind::KeptCloseError, None, Some(error)).into())
    }

    /// Runs `attempt`; while it fails for want of descriptors (EMFILE/ENFILE: other code in
    /// the process holds descriptors too), evicts one of ours and tries again, until it works
    /// or nothing is evictable.
    pub(super) fn retry_evicting<T, E>(
        &self,
        attempt: impl Fn() -> Result<T, E>,
        out_of_descriptors: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        loop {
            match attempt() {
                Err(error) if out_of_descriptors(&error) && self.evict_one() => {
                    self.counters.emfile_retries.fetch_add(1, Ordering::Relaxed);
                }
                result => return result,
            }
        }
    }

    // ----- eviction ----------------------------------------------------------------------

    fn enlist(&self, slot: u32, entry: &Entry) {
        let generation = entry.generation();
        let mut clock = lock(&self.clock);
        // Closed files leave stale records that only the hand removes; when nothing is ever
        // evicted the hand never moves, so sweep them here once they outnumber the budget.
        if clock.len() >= self.budget.budget().saturating_mul(2).saturating_add(64) {
            clock.sweep(|slot, generation| self.is_enlisted(slot, generation));
        }
        clock.push(slot, generation);
    }

    /// How many records the clock holds (live or stale), for the unit tests.
    #[cfg(all(test, unix, not(loom)))]
    pub(super) fn clock_len(&self) -> usize {
        lock(&self.clock).len()
    }

    /// Whether a clock record still stands for a resident, evictable file.
    fn is_enlisted(&self, slot: u32, generation: u32) -> bool {
        let entry = self.entry(slot);
        let state = entry.snapshot();
        entry.generation() == generation && state.is_resident() && !state.is_permanent()
    }

    /// Closes one unpinned resident descriptor, chosen by the clock. Returns whether one was
    /// closed.
    pub(super) fn evict_one(&self) -> bool {
        loop {
            let mut claimed = None;
            let taken = lock(&self.clock).next(|slot, generation| {
                if !self.is_enlisted(slot, generation) {
                    return Look::Stale;
                }
                let entry = self.entry(slot);
                let state = entry.snapshot();
                if state.pins() != 0 || state.is_busy() {
                    return Look::Pass;
                }
                if state.is_referenced() {
                    entry.clear_ref();
                    return Look::Pass;
                }
                match entry.try_claim(state) {
                    Some(claim) => {
                        claimed = Some(claim);
                        Look::Take
                    }
                    None => Look::Again, // it changed under us
                }
            });
            let (Some((slot, _)), Some(claim)) = (taken, claimed) else {
                return false;
            };
            // The clock's lock is not held while the descriptor is closed.
            if self.finish_eviction(slot, claim) {
                return true;
            }
        }
    }

    /// Closes a claimed entry's descriptor. An unlinked file cannot be reopened: it becomes
    /// permanent instead, and `false` is returned.
    pub(super) fn finish_eviction(&self, slot: u32, claim: Claim<'_>) -> bool {
        let fd = claim.descriptor();
        // SAFETY: the claim (BUSY, no pins) makes this thread the descriptor's only user.
        if unsafe { sys::Backing::keep_at_eviction(fd) } {
            self.budget.count_permanent(true);
            claim.keep();
            return false;
        }
        // SAFETY: as above; the descriptor is given up here, once.
        if let Err(error) = unsafe { sys::Backing::close(fd) } {
            lock(&self.errors).insert(slot, error);
            claim.closed(true);
        } else {
            claim.closed(false);
        }
        self.budget.release();
        self.counters.evictions.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The counters now; the hits are the folded total plus what every entry holds (a scan of
    /// every slot).
    pub(super) fn stats(&self) -> Stats {
        let live: u64 = (0..self.slots.high_water())
            .map(|slot| self.entry(slot).hits())
            .sum();
        self.counters.snapshot(
            self.counters.hits.load(Ordering::Relaxed) + live,
            &self.budget,
        )
    }
}
