//! One table entry (48 bytes on Unix) and its state machine: every rule about who may use,
//! close, or page in a file's descriptor is here, and nowhere else.
//!
//! # The state word
//!
//! One `AtomicU64`, private to this module: read through a [`Snapshot`], changed only by the
//! named transitions below, so that a hit is one compare-and-swap to pin and one subtraction to
//! unpin.
//!
//! ```text
//! bits 32..64  the real descriptor (meaningful while RESIDENT)
//! bit  28      ERROR      an eviction's close failed; the error waits in the table's map
//! bit  27      PERMANENT  resident for life: a pipe, socket, memfd or unlinked file
//! bit  26      REF        used since the clock hand last passed (second chance)
//! bit  25      BUSY       claimed by whoever is closing (or keeping) the descriptor
//! bit  24      RESIDENT   holds a real descriptor
//! bit  23      LOCKED     a page-in or the final close of this entry is under way
//! bits 20..23  APPEND, WRITE, READ: the access a reopen asks for
//! bits  0..20  pins       operations and `with_fd` closures using the descriptor now
//! ```
//!
//! # Transitions
//!
//! | transition | who | needs | does | ordering, and why |
//! |---|---|---|---|---|
//! | [`install`](Entry::install) | `open`/`adopt`, before the slot is shared | a free slot | access bits; RESIDENT + descriptor if the first open left one; PERMANENT if it cannot be reopened | `Release`: publishes the backing's facts with the word |
//! | [`pin`](Entry::pin) (hit) | any operation | RESIDENT, ¬BUSY, ¬ERROR, pins < max | pins + 1, REF | CAS `Acquire`: sees the descriptor that `page_in`/`install` published |
//! | [`unpin`](Entry::unpin) | the pinner | pins > 0 | pins − 1 | `SeqCst` RMW: `Release` so that the evictor's claim sees the I/O done with the descriptor; `SeqCst` for the budget's wake-up protocol (the same instruction on x86) |
//! | [`try_lock`](Entry::try_lock) / drop of [`Locked`] | a page-in, the final close | ¬LOCKED | sets / clears LOCKED | `Acquire` / `Release`: one page-in at a time, and the next one sees the last one's work |
//! | [`begin_page_in`](Entry::begin_page_in) | an operation whose pin failed | — | waits for LOCKED (checking for a deadlock) and BUSY; a hit if the entry is resident by then; takes a kept error | the loads are `Acquire` (they may lead to a pin) |
//! | [`page_in`](Entry::page_in) | the LOCKED holder, with a budget token | ¬RESIDENT, ¬BUSY, pins = 0 | RESIDENT + descriptor, REF, 1 pin | `Release`: publishes the descriptor to later pins |
//! | [`try_claim`](Entry::try_claim) | an evictor (the clock) | RESIDENT, ¬BUSY, ¬PERMANENT, pins = 0 | + BUSY | CAS `Acquire`: sees the last pinner's `Release`, so no I/O is under way |
//! | [`claim_for_close`](Entry::claim_for_close) | the final close, holding LOCKED | RESIDENT, ¬BUSY | + BUSY (waits while an evictor holds BUSY) | as `try_claim` |
//! | [`Claim::closed`] | the claimer, after `close` | BUSY | ¬RESIDENT, ¬BUSY, no descriptor, ERROR if the close failed | `Release`: the kept error (map) is in place before ERROR shows |
//! | [`Claim::keep`] | the claimer, finding the file unlinked | BUSY | ¬BUSY, PERMANENT (still RESIDENT) | `Release` |
//! | [`clear_ref`](Entry::clear_ref) | the clock hand | — | ¬REF | `Relaxed`: only a hint for the policy |
//! | [`take_error_flag`](Entry::take_error_flag) | a page-in, the final close | — | ¬ERROR | `AcqRel`: sees the map insert that came before ERROR |
//! | [`free`](Entry::free) | the final close, holding LOCKED | ¬RESIDENT | all bits but LOCKED cleared, generation + 1 | `Release` |
//!
//! # Invariants
//!
//! - pins > 0 ⇒ RESIDENT ∧ ¬BUSY: a pin needs RESIDENT ∧ ¬BUSY, a claim needs pins = 0, and only
//!   a claim (BUSY) leads out of RESIDENT. So a descriptor in use is never closed.
//! - BUSY ⇒ RESIDENT, and only the claimer closes the descriptor, once. So a closed descriptor
//!   is never used and never closed twice.
//! - ERROR ⇒ ¬RESIDENT: set only by `closed`; a page-in takes it before it reopens.
//! - PERMANENT ∧ RESIDENT: never claimed by an evictor (only by the final close).
//! - ¬RESIDENT ⇒ only the LOCKED holder pages in (so there is never a second descriptor).
//! - pins ≤ 2^20 − 1: `pin` refuses the one pin more, which would carry into READ.
//!
//! Every change keeps the bits it does not own (read-modify-writes, never a plain store, except
//! `install` on a slot nobody else can see), since LOCKED, BUSY and pins have different holders.
//!
//! # Lock order
//!
//! A virtual file's cursor → the entry's LOCKED bit → the budget's wait (and the clock mutex,
//! which the budget's eviction callback takes) → the errors map. The clock mutex is never held
//! while a descriptor is closed, and BUSY is never waited for while holding anything but
//! LOCKED (a BUSY holder never waits for anything).

use std::io;

use super::backing::{Backing as _, RawDescriptor};
use super::sync::{self, AtomicU32, AtomicU64, Ordering};
use super::{sys, OpenOptions};

const PINS: u64 = (1 << 20) - 1;
const READ: u64 = 1 << 20;
const WRITE: u64 = 1 << 21;
const APPEND: u64 = 1 << 22;
const ACCESS: u64 = READ | WRITE | APPEND;
const LOCKED: u64 = 1 << 23;
const RESIDENT: u64 = 1 << 24;
const BUSY: u64 = 1 << 25;
const REF: u64 = 1 << 26;
const PERMANENT: u64 = 1 << 27;
const ERROR: u64 = 1 << 28;
const DESCRIPTOR: u64 = !0 << 32;

/// The most pins an entry counts at once.
pub(super) const MAX_PINS: u64 = PINS;

fn descriptor_bits(fd: RawDescriptor) -> u64 {
    u64::from(fd as u32) << 32
}

/// A copy of an entry's state word at one instant.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Snapshot(u64);

impl Snapshot {
    pub(super) fn is_resident(self) -> bool {
        self.0 & RESIDENT != 0
    }
    pub(super) fn is_busy(self) -> bool {
        self.0 & BUSY != 0
    }
    pub(super) fn is_permanent(self) -> bool {
        self.0 & PERMANENT != 0
    }
    pub(super) fn has_error(self) -> bool {
        self.0 & ERROR != 0
    }
    pub(super) fn is_referenced(self) -> bool {
        self.0 & REF != 0
    }
    pub(super) fn pins(self) -> u64 {
        self.0 & PINS
    }
    /// The descriptor, if resident.
    pub(super) fn descriptor(self) -> Option<RawDescriptor> {
        self.is_resident()
            .then_some((self.0 >> 32) as u32 as RawDescriptor)
    }
    /// Resident and evictable now: not permanent, not pinned, not being closed.
    pub(super) fn is_evictable(self) -> bool {
        self.0 & (RESIDENT | BUSY | PERMANENT | PINS) == RESIDENT
    }
    /// The access a page-in asks for.
    pub(super) fn options(self) -> OpenOptions {
        let mut options = OpenOptions::new();
        options
            .read(self.0 & READ != 0)
            .write(self.0 & WRITE != 0)
            .append(self.0 & APPEND != 0);
        options
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let flags = [
            (LOCKED, "LOCKED"),
            (RESIDENT, "RESIDENT"),
            (BUSY, "BUSY"),
            (REF, "REF"),
            (PERMANENT, "PERMANENT"),
            (ERROR, "ERROR"),
        ];
        let mut list = f.debug_struct("Snapshot");
        list.field("pins", &self.pins());
        for (bit, name) in flags {
            if self.0 & bit != 0 {
                list.field(name, &true);
            }
        }
        if let Some(fd) = self.descriptor() {
            list.field("descriptor", &fd);
        }
        list.finish()
    }
}

/// One virtual file's slot in the table.
pub(super) struct Entry {
    state: AtomicU64,
    /// Bumped when the slot is freed, so a recycled slot is never taken for its old file.
    generation: AtomicU32,
    /// Hits on this entry since it was last folded into the table's total. Bumped by a plain
    /// load and store, not a read-modify-write: a hit costs no extra atomic instruction, at the
    /// price of undercounting when threads hit the same file at the same instant.
    hits: AtomicU32,
    /// How the file is found again once its descriptor is closed (the platform's backing).
    pub(super) backing: sys::Backing,
}

impl Default for Entry {
    fn default() -> Entry {
        Entry {
            state: AtomicU64::new(0),
            generation: AtomicU32::new(0),
            hits: AtomicU32::new(0),
            backing: sys::Backing::default(),
        }
    }
}

/// Holds an entry's LOCKED bit: one page-in, or the final close, at a time.
#[must_use]
pub(super) struct Locked<'a>(&'a Entry);

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.0.state.fetch_and(!LOCKED, Ordering::Release);
    }
}

/// Holds an entry's BUSY bit: the right, and the duty, to close (or keep) its descriptor. It
/// must end in [`Claim::closed`] or [`Claim::keep`].
#[must_use]
pub(super) struct Claim<'a> {
    entry: &'a Entry,
    claimed: Snapshot,
}

/// What [`Entry::begin_page_in`] found.
pub(super) enum PageIn<'a> {
    /// Resident after all (paged in by another thread, or kept by an eviction): pinned.
    Hit(RawDescriptor),
    /// Paged out, and LOCKED is ours: page it in.
    Locked(Locked<'a>),
}

impl Entry {
    /// An entry for the loom models: resident with `fd`, or paged out; pageable, read access.
    #[cfg(all(test, loom))]
    pub(super) fn model(fd: Option<RawDescriptor>) -> Entry {
        let entry = Entry::default();
        let state = match fd {
            Some(fd) => descriptor_bits(fd) | RESIDENT | READ,
            None => READ,
        };
        entry.state.store(state, Ordering::Relaxed);
        entry
    }

    /// The state now (`Acquire`: what it shows, such as a descriptor, may be used).
    #[inline]
    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot(self.state.load(Ordering::Acquire))
    }

    /// The slot's generation (bumped by `free`).
    #[inline]
    pub(super) fn generation(&self) -> u32 {
        self.generation.load(Ordering::Relaxed)
    }

    /// The hit path: pins a resident entry and returns its descriptor, or `None` if the slow
    /// path must run (paged out, being closed, an error waiting, or every pin taken).
    #[inline]
    pub(super) fn pin(&self) -> Option<RawDescriptor> {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & (RESIDENT | BUSY | ERROR) != RESIDENT || state & PINS == PINS {
                return None;
            }
            match self.state.compare_exchange_weak(
                state,
                (state + 1) | REF,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some((state >> 32) as u32 as RawDescriptor),
                Err(now) => state = now,
            }
        }
    }

    /// Drops one pin; returns whether it was the last.
    #[inline]
    pub(super) fn unpin(&self) -> bool {
        let before = self.state.fetch_sub(1, Ordering::SeqCst);
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

    /// The hits counted and not yet folded into the total.
    pub(super) fn hits(&self) -> u64 {
        u64::from(self.hits.load(Ordering::Relaxed))
    }

    /// Takes the hits counted so far (to fold them into the total).
    pub(super) fn take_hits(&self) -> u64 {
        u64::from(self.hits.swap(0, Ordering::Relaxed))
    }

    /// Takes the LOCKED bit if nobody holds it.
    #[must_use]
    pub(super) fn try_lock(&self) -> Option<Locked<'_>> {
        // `then`, not `then_some`: a `Locked` made and dropped would clear the holder's bit.
        (self.state.fetch_or(LOCKED, Ordering::Acquire) & LOCKED == 0).then(|| Locked(self))
    }

    /// Takes the LOCKED bit, yielding while another thread holds it. Only for the final
    /// close, which owns the only `VirtualFile` of the entry: no page-in of it can be under
    /// way, and evictors never take LOCKED, so the wait is short if there is one at all.
    pub(super) fn lock(&self) -> Locked<'_> {
        loop {
            if let Some(locked) = self.try_lock() {
                return locked;
            }
            sync::yield_now();
        }
    }

    /// The slow path of an operation whose `pin` failed: takes LOCKED, waits for an evictor
    /// (BUSY) to finish, and decides. While another thread holds LOCKED (paging the file in),
    /// it pins the file as soon as that page-in publishes it, and asks `deadlock` whether the
    /// holder can only be waiting for this thread (then waiting is a deadlock: its error is
    /// returned). An error kept from an eviction's close (`take_error`) comes first.
    pub(super) fn begin_page_in(
        &self,
        deadlock: impl Fn() -> Option<io::Error>,
        mut take_error: impl FnMut() -> Option<io::Error>,
    ) -> io::Result<PageIn<'_>> {
        let locked = loop {
            if let Some(locked) = self.try_lock() {
                break locked;
            }
            if let Some(fd) = self.pin() {
                return Ok(PageIn::Hit(fd)); // paged in by the holder
            }
            if let Some(error) = deadlock() {
                return Err(error);
            }
            sync::yield_now();
        };
        loop {
            // Paged in meanwhile, or kept resident (PERMANENT) by an eviction that found the
            // file unlinked: a hit, never a second descriptor.
            if let Some(fd) = self.pin() {
                return Ok(PageIn::Hit(fd));
            }
            let state = self.snapshot();
            if state.is_busy() {
                sync::yield_now(); // an evictor closes or keeps it: done in a moment
                continue;
            }
            if state.has_error() {
                // An eviction's close failed: its error comes first (once).
                if let Some(error) = take_error() {
                    return Err(error);
                }
                continue;
            }
            if state.is_resident() && state.pins() == MAX_PINS {
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!(
                        "the virtual file is pinned {MAX_PINS} times at once, the most a pager \
                         entry counts"
                    ),
                ));
            }
            if state.is_resident() {
                continue; // it changed after `pin` looked (a claim ended): look again
            }
            return Ok(PageIn::Locked(locked));
        }
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

    /// Publishes a descriptor just opened by the holder of LOCKED (with a budget token),
    /// pinned once.
    pub(super) fn page_in(&self, locked: &Locked<'_>, fd: RawDescriptor) {
        debug_assert!(std::ptr::eq(locked.0, self));
        // One read-modify-write: RESIDENT never shows without the pin (an evictor would
        // claim the entry in between).
        let _ = self
            .state
            .fetch_update(Ordering::Release, Ordering::Relaxed, |state| {
                debug_assert_eq!(state & (RESIDENT | BUSY | PINS | DESCRIPTOR | ERROR), 0);
                Some(state | descriptor_bits(fd) | RESIDENT | REF | 1)
            });
    }

    /// Clears REF (the clock hand passing: the second chance is used up).
    pub(super) fn clear_ref(&self) {
        self.state.fetch_and(!REF, Ordering::Relaxed);
    }

    /// Claims an evictable entry (as `seen`) for closing; `None` if it changed since.
    pub(super) fn try_claim(&self, seen: Snapshot) -> Option<Claim<'_>> {
        let claimed = seen.is_evictable()
            && self
                .state
                .compare_exchange(seen.0, seen.0 | BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok();
        if !claimed {
            return None;
        }
        Some(Claim {
            entry: self,
            claimed: seen,
        })
    }

    /// Claims the entry for its final close, whatever its flags, once an evictor is done.
    /// `None` if it holds no descriptor.
    pub(super) fn claim_for_close(&self, locked: &Locked<'_>) -> Option<Claim<'_>> {
        debug_assert!(std::ptr::eq(locked.0, self));
        loop {
            let state = self.snapshot();
            if state.is_busy() {
                sync::yield_now(); // an evictor is closing it; done in a moment
                continue;
            }
            if !state.is_resident() {
                return None;
            }
            debug_assert_eq!(state.pins(), 0, "closed while pinned");
            if self
                .state
                .compare_exchange(
                    state.0,
                    state.0 | BUSY,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return Some(Claim {
                    entry: self,
                    claimed: state,
                });
            }
        }
    }

    /// Takes the ERROR flag; returns whether it was set.
    pub(super) fn take_error_flag(&self) -> bool {
        self.state.fetch_and(!ERROR, Ordering::AcqRel) & ERROR != 0
    }

    /// Frees the slot's reopen facts and clears its state (keeping LOCKED, which `locked`
    /// holds), for the next file. The descriptor must be closed already.
    pub(super) fn free(&self, shared: &sys::Shared, locked: &Locked<'_>) {
        debug_assert!(std::ptr::eq(locked.0, self));
        debug_assert!(!self.snapshot().is_resident());
        self.backing.clear(shared);
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.state.fetch_and(LOCKED, Ordering::Release);
    }
}

impl Claim<'_> {
    /// The state claimed (its descriptor, its flags).
    pub(super) fn claimed(&self) -> Snapshot {
        self.claimed
    }

    /// The descriptor to close (or keep).
    pub(super) fn descriptor(&self) -> RawDescriptor {
        self.claimed
            .descriptor()
            .expect("a claimed entry is resident")
    }

    /// The descriptor is closed: not resident, with ERROR if the close failed (its error is
    /// already in the table's map).
    pub(super) fn closed(self, failed: bool) {
        let error = if failed { ERROR } else { 0 };
        let _ = self
            .entry
            .state
            .fetch_update(Ordering::Release, Ordering::Relaxed, |state| {
                Some((state & (ACCESS | LOCKED)) | error)
            });
    }

    /// The file cannot be reopened (unlinked while resident): resident for life instead.
    pub(super) fn keep(self) {
        let _ = self
            .entry
            .state
            .fetch_update(Ordering::Release, Ordering::Relaxed, |state| {
                Some((state & !(BUSY | REF)) | PERMANENT)
            });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #[test]
    fn an_entry_is_48_bytes_on_unix_and_24_on_windows() {
        let expected = if cfg!(unix) { 48 } else { 24 };
        assert_eq!(std::mem::size_of::<super::Entry>(), expected);
    }
}
