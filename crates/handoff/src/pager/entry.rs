//! One table entry, 48 bytes on Unix: a lock-free state word for the hit path, and what it
//! takes to page the file in again (the platform's `Backing`).
//!
//! The state word packs everything a hit needs into one `AtomicU64`, so that a hit is one
//! compare-and-swap to pin and one subtraction to unpin:
//!
//! ```text
//! bits 32..64  the real descriptor (valid while RESIDENT)
//! bit  28      ERROR      an eviction's close failed; the error waits in the table's map
//! bit  27      PERMANENT  resident for life: a pipe, socket, memfd or unlinked file
//! bit  26      REF        used since the clock hand last passed (second chance)
//! bit  25      BUSY       claimed by whoever is closing the descriptor: nobody may pin
//! bit  24      RESIDENT   holds a real descriptor
//! bit  23      LOCKED     a page-in or the final close of this entry is under way
//! bits 20..23  APPEND, WRITE, READ: the access a reopen asks for
//! bits  0..20  pins       operations and `with_fd` closures using the descriptor now
//! ```
//!
//! Rules: pinning needs RESIDENT and neither BUSY nor ERROR; only an entry with no pins can be
//! claimed (BUSY), and only the claimer closes the descriptor. So a descriptor in use is never
//! closed, and a closed one is never used. Every change keeps the bits it does not own (a
//! read-modify-write, never a plain store), since LOCKED and BUSY have different holders.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::sys::{self, Backing, RawDescriptor};
use super::OpenOptions;

pub(super) const PINS: u64 = (1 << 20) - 1;
const READ: u64 = 1 << 20;
const WRITE: u64 = 1 << 21;
const APPEND: u64 = 1 << 22;
const ACCESS: u64 = READ | WRITE | APPEND;
const LOCKED: u64 = 1 << 23;
pub(super) const RESIDENT: u64 = 1 << 24;
pub(super) const BUSY: u64 = 1 << 25;
pub(super) const REF: u64 = 1 << 26;
pub(super) const PERMANENT: u64 = 1 << 27;
pub(super) const ERROR: u64 = 1 << 28;
const DESCRIPTOR: u64 = !0 << 32;

pub(super) fn descriptor_of(state: u64) -> RawDescriptor {
    (state >> 32) as u32 as RawDescriptor
}

fn descriptor_bits(fd: RawDescriptor) -> u64 {
    u64::from(fd as u32) << 32
}

#[derive(Default)]
pub(super) struct Entry {
    pub(super) state: AtomicU64,
    /// Bumped when the slot is freed, so a recycled slot is never taken for its old file.
    pub(super) generation: AtomicU32,
    /// Hits on this entry since it was last folded into the table's total. Bumped by a plain
    /// load and store, not a read-modify-write: a hit costs no extra atomic instruction, at the
    /// price of undercounting when threads hit the same file at the same instant.
    pub(super) hits: AtomicU32,
    /// How the file is found again once its descriptor is closed (the platform's backing).
    pub(super) backing: Backing,
}

/// Holds an entry's LOCKED bit: one page-in, or the final close, at a time.
pub(super) struct Locked<'a>(&'a Entry);

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.0.state.fetch_and(!LOCKED, Ordering::Release);
    }
}

impl Entry {
    /// The hit path: pins a resident entry and returns its descriptor, or `None` if the slow
    /// path must run (paged out, being closed, or an error is waiting).
    #[inline]
    pub(super) fn try_pin(&self) -> Option<RawDescriptor> {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            // Not resident, being closed, an error waiting, or every pin taken (one more
            // would carry into the access bits): the slow path decides.
            if state & (RESIDENT | BUSY | ERROR) != RESIDENT || state & PINS == PINS {
                return None;
            }
            match self.state.compare_exchange_weak(
                state,
                (state + 1) | REF,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(descriptor_of(state)),
                Err(now) => state = now,
            }
        }
    }

    /// Drops one pin; returns whether it was the last.
    #[inline]
    pub(super) fn unpin(&self) -> bool {
        let before = self.state.fetch_sub(1, Ordering::Release);
        debug_assert!(before & PINS != 0, "unpin without a pin");
        before & PINS == 1
    }

    /// Counts a hit; returns a count to fold into the table's total when it grows large.
    #[inline]
    pub(super) fn count_hit(&self) -> Option<u64> {
        let hits = self.hits.load(Ordering::Relaxed).wrapping_add(1);
        if hits < 1 << 31 {
            self.hits.store(hits, Ordering::Relaxed);
            None
        } else {
            self.hits.store(0, Ordering::Relaxed);
            Some(u64::from(hits))
        }
    }

    /// Takes the hits counted so far (to fold them into the total).
    pub(super) fn take_hits(&self) -> u64 {
        u64::from(self.hits.swap(0, Ordering::Relaxed))
    }

    /// Takes the LOCKED bit, yielding while another thread holds it. Only for the final
    /// close, whose competitors (page-ins of the same file) never wait on anything this thread
    /// holds; a page-in uses `try_lock` and checks for a deadlock while it waits.
    pub(super) fn lock(&self) -> Locked<'_> {
        loop {
            if let Some(locked) = self.try_lock() {
                return locked;
            }
            std::thread::yield_now();
        }
    }

    /// Takes the LOCKED bit if nobody holds it.
    pub(super) fn try_lock(&self) -> Option<Locked<'_>> {
        (self.state.fetch_or(LOCKED, Ordering::Acquire) & LOCKED == 0).then_some(Locked(self))
    }

    /// Fills a free slot: the descriptor the first open left resident (if any) and what it
    /// takes to page the file in again (`None`: nothing; the file must then be resident, and
    /// stays so for life: PERMANENT). Nobody else can see the slot yet. Returns whether the
    /// entry is permanent.
    pub(super) fn install(
        &self,
        shared: &sys::Shared,
        fd: Option<RawDescriptor>,
        reopen: Option<sys::Reopen>,
        options: &OpenOptions,
    ) -> bool {
        let access = [
            (options.read, READ),
            (options.write, WRITE),
            (options.append, APPEND),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |bits, (_, bit)| bits | bit);
        let pageable = reopen.is_some_and(|reopen| self.backing.store(shared, reopen));
        let flags = if pageable { REF | access } else { PERMANENT };
        let state = match fd {
            Some(fd) => descriptor_bits(fd) | RESIDENT | flags,
            None => {
                debug_assert!(pageable, "a file with nothing resident must be pageable");
                flags
            }
        };
        self.state.store(state, Ordering::Release);
        !pageable
    }

    /// The access a page-in asks for.
    pub(super) fn options(&self) -> OpenOptions {
        let state = self.state.load(Ordering::Relaxed);
        let mut options = OpenOptions::new();
        options
            .read(state & READ != 0)
            .write(state & WRITE != 0)
            .append(state & APPEND != 0);
        options
    }

    /// Publishes a descriptor just reopened by the holder of LOCKED, pinned once.
    pub(super) fn page_in(&self, fd: RawDescriptor) {
        self.state
            .fetch_update(Ordering::Release, Ordering::Relaxed, |state| {
                debug_assert_eq!(state & (RESIDENT | BUSY | PINS | DESCRIPTOR), 0);
                Some(state | descriptor_bits(fd) | RESIDENT | REF | 1)
            })
            .expect("the closure always returns Some");
    }

    /// Claims an unpinned resident entry for closing. Fails if it is pinned, busy, permanent or
    /// not resident (the caller looks again later).
    pub(super) fn try_claim(&self, state: u64) -> bool {
        state & (RESIDENT | BUSY | PERMANENT | PINS) == RESIDENT
            && self
                .state
                .compare_exchange(state, state | BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Claims the entry for its final close, whatever its flags, once an evictor is done.
    /// Returns the state claimed, or `None` if it holds no descriptor.
    pub(super) fn claim_for_close(&self) -> Option<u64> {
        loop {
            let state = self.state.load(Ordering::Acquire);
            if state & BUSY != 0 {
                std::thread::yield_now(); // an evictor is closing it; done in a moment
                continue;
            }
            if state & RESIDENT == 0 {
                return None;
            }
            debug_assert_eq!(state & PINS, 0, "closed while pinned");
            if self
                .state
                .compare_exchange(state, state | BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Some(state);
            }
        }
    }

    /// After the claimer closed the descriptor: not resident, with ERROR if the close failed.
    pub(super) fn closed(&self, failed: bool) {
        let error = if failed { ERROR } else { 0 };
        self.state
            .fetch_update(Ordering::Release, Ordering::Relaxed, |state| {
                Some((state & (ACCESS | LOCKED)) | error)
            })
            .expect("the closure always returns Some");
    }

    /// After the claimer found the file unlinked: resident for life instead.
    pub(super) fn make_permanent(&self) {
        self.state
            .fetch_update(Ordering::Release, Ordering::Relaxed, |state| {
                Some((state & !(BUSY | REF)) | PERMANENT)
            })
            .expect("the closure always returns Some");
    }

    /// Takes the ERROR flag; returns whether it was set.
    pub(super) fn take_error_flag(&self) -> bool {
        self.state.fetch_and(!ERROR, Ordering::AcqRel) & ERROR != 0
    }

    /// Frees the slot's reopen facts and clears its state (keeping LOCKED, which `locked`
    /// holds), for the next file. The descriptor must be closed already.
    pub(super) fn free(&self, shared: &sys::Shared, locked: &Locked<'_>) {
        debug_assert!(std::ptr::eq(locked.0, self));
        self.backing.clear(shared);
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.state.fetch_and(LOCKED, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_entry_is_48_bytes_on_unix_and_24_on_windows() {
        let expected = if cfg!(unix) { 48 } else { 24 };
        assert_eq!(std::mem::size_of::<super::Entry>(), expected);
    }
}
