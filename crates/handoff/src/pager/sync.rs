//! The synchronisation primitives of the pager's state machine ([`entry`](super::entry) and
//! [`budget`](super::budget)): std's, or loom's under `--cfg loom`, so that the model checker
//! explores the interleavings of the code as it is written (`loom` tests in `loom.rs`).

#[cfg(loom)]
pub(super) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(loom)]
pub(super) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(super) use loom::thread::yield_now;

#[cfg(not(loom))]
pub(super) use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(not(loom))]
pub(super) use std::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(super) use std::thread::yield_now;

pub(super) use std::sync::atomic::Ordering;

/// Locks `mutex`, whatever a panicking holder left: the pager's mutexes guard plain data
/// whose every update is complete before the guard drops.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`lock`] for the std mutexes of the parts loom does not model (slots, clock, errors).
pub(super) fn lock_std<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Between a `SeqCst` read-modify-write and a `SeqCst` load that a sleeping waiter must not
/// miss (the Dekker pattern of [`budget`](super::budget)'s wake-ups). In the program both
/// accesses are in the single `SeqCst` order already, so this is nothing (and the hit path pays
/// nothing: on x86 a `SeqCst` read-modify-write is the same `lock` instruction as a `Release`
/// one). Loom models `SeqCst` accesses as `AcqRel`, which would report a lost wake-up that
/// cannot happen, but models `SeqCst` fences exactly: under loom this is one.
#[inline(always)]
pub(super) fn seq_cst_order_for_loom() {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}
