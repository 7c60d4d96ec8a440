//! One table entry: a lock-free state word for the hit path, and the slow-path facts.
//!
//! The state word packs everything a hit needs into one `AtomicU64`, so that a hit is one
//! compare-and-swap to pin and one subtraction to unpin:
//!
//! ```text
//! bits 32..64  the real descriptor (valid while RESIDENT)
//! bit  28      ERROR      an eviction's close failed; the error waits in the pager's map
//! bit  27      PERMANENT  resident for life: a pipe, socket, memfd or unlinked file
//! bit  26      REF        used since the clock hand last passed (second chance)
//! bit  25      BUSY       claimed by whoever is closing the descriptor: nobody may pin
//! bit  24      RESIDENT   holds a real descriptor
//! bits  0..24  pins       operations and `with_fd` closures using the descriptor now
//! ```
//!
//! Rules: pinning needs RESIDENT and neither BUSY nor ERROR; only an entry with no pins can be
//! claimed (BUSY), and only the claimer closes the descriptor. So a descriptor in use is never
//! closed, and a closed one is never used.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use super::sys::{Identity, RawDescriptor};
use super::OpenOptions;

pub(super) const PINS: u64 = (1 << 24) - 1;
pub(super) const RESIDENT: u64 = 1 << 24;
pub(super) const BUSY: u64 = 1 << 25;
pub(super) const REF: u64 = 1 << 26;
pub(super) const PERMANENT: u64 = 1 << 27;
pub(super) const ERROR: u64 = 1 << 28;

pub(super) fn descriptor_of(state: u64) -> RawDescriptor {
    (state >> 32) as u32 as RawDescriptor
}

pub(super) fn resident_state(fd: RawDescriptor, flags: u64) -> u64 {
    (u64::from(fd as u32) << 32) | RESIDENT | flags
}

/// What it takes to reopen a file, fixed at its first open.
pub(super) struct Reopen {
    /// Absolute path, as given (symlinks not resolved: a swapped link is caught by identity).
    pub(super) path: Box<std::path::Path>,
    pub(super) options: OpenOptions,
    pub(super) identity: Identity,
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
    /// `None` for a file that cannot be reopened (and for a free slot).
    pub(super) reopen: Mutex<Option<Reopen>>,
}

impl Entry {
    /// The hit path: pins a resident entry and returns its descriptor, or `None` if the slow
    /// path must run (paged out, being closed, or an error is waiting).
    #[inline]
    pub(super) fn try_pin(&self) -> Option<RawDescriptor> {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state & (RESIDENT | BUSY | ERROR) != RESIDENT {
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

    /// Drops one pin; returns whether it was the last.
    #[inline]
    pub(super) fn unpin(&self) -> bool {
        let before = self.state.fetch_sub(1, Ordering::Release);
        debug_assert!(before & PINS != 0, "unpin without a pin");
        before & PINS == 1
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

    pub(super) fn reopen(&self) -> std::sync::MutexGuard<'_, Option<Reopen>> {
        self.reopen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
