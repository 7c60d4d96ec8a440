//! A virtual file's cursor: held by each cursor call for the call and by `with_fd` for its
//! closure, so that no update is lost, and a `Deadlock` error (not a hang) when the closure's
//! own thread uses it.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use super::budget::Budget;
use super::error::{PageInError, PageInErrorKind};

/// A virtual file's cursor. Each cursor call holds it for the call, and `with_fd` for its
/// closure (C code moves the descriptor's offset, which becomes the cursor), so that, as with
/// `&File`, concurrent reads and writes through the cursor never lose an update.
pub(super) struct Cursor {
    state: Mutex<CursorState>,
    /// The thread whose `with_fd` closure holds the cursor (its `thread_tag`), else 0: that
    /// thread's own use of the cursor inside the closure is a `Deadlock` error, not a hang.
    /// Only the holder writes its own tag, so a thread reading its own tag here knows it holds
    /// the cursor (Relaxed suffices: it reads its own write, or anything but its tag).
    owner: AtomicUsize,
}

pub(super) struct CursorState {
    pub(super) at: u64,
    /// The position could not be read back after a `with_fd` closure: returned by the next
    /// cursor call (the cursor stays where it was before the closure).
    lost: Option<io::Error>,
}

/// A number that tells the live threads apart: the address of a thread-local.
fn thread_tag() -> usize {
    thread_local! {
        static TAG: u8 = const { 0 };
    }
    TAG.with(|tag| std::ptr::from_ref(tag) as usize)
}

/// Holds the cursor for a `with_fd` closure, and marks it as this thread's meanwhile.
pub(super) struct HeldCursor<'a> {
    owner: &'a AtomicUsize,
    pub(super) state: MutexGuard<'a, CursorState>,
}

impl Drop for HeldCursor<'_> {
    fn drop(&mut self) {
        // Cleared before `state` unlocks (fields drop after this).
        self.owner.store(0, Ordering::Relaxed);
    }
}

impl Cursor {
    pub(super) fn new(at: u64) -> Cursor {
        Cursor {
            state: Mutex::new(CursorState { at, lost: None }),
            owner: AtomicUsize::new(0),
        }
    }

    /// Locks the cursor, and returns the error a `with_fd` left, if any. Waits while another
    /// thread holds it; fails with `Deadlock` if this thread's own `with_fd` closure does, or
    /// if this thread holds pins and the holder can only be waiting for them (a cursor call
    /// that pages its file in holds the cursor while it waits for the budget).
    pub(super) fn lock(&self, budget: &Budget) -> io::Result<MutexGuard<'_, CursorState>> {
        let mut spins = 0u32;
        let mut state = loop {
            match self.state.try_lock() {
                Ok(state) => break state,
                Err(TryLockError::Poisoned(poisoned)) => break poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
            if self.owner.load(Ordering::Relaxed) == thread_tag() {
                return Err(PageInError::new(
                    PageInErrorKind::Deadlock,
                    None,
                    Some(io::Error::new(
                        io::ErrorKind::Deadlock,
                        "the virtual file's cursor is held by this thread's own with_fd closure \
                         (use read_at/write_at there, or the descriptor the closure is given)",
                    )),
                )
                .into());
            }
            if !budget.holds_pins() {
                // Without pins this thread is in no cycle: wait for the holder.
                break self
                    .state
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if let Some(error) = budget.deadlock() {
                return Err(error);
            }
            spins += 1;
            if spins < 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        };
        match state.lost.take() {
            Some(error) => Err(error),
            None => Ok(state),
        }
    }

    /// Locks the cursor for a `with_fd` closure.
    pub(super) fn hold(&self, budget: &Budget) -> io::Result<HeldCursor<'_>> {
        let state = self.lock(budget)?;
        self.owner.store(thread_tag(), Ordering::Relaxed);
        Ok(HeldCursor {
            owner: &self.owner,
            state,
        })
    }
}

impl HeldCursor<'_> {
    /// Takes the descriptor's position after the closure; if it cannot be read, keeps the
    /// error for the next cursor call (the closure's result is returned all the same).
    pub(super) fn take_back(&mut self, position: io::Result<u64>) {
        match position {
            Ok(at) => self.state.at = at,
            Err(error) => {
                self.state.lost = Some(io::Error::new(
                    error.kind(),
                    format!(
                        "the position could not be read back from the descriptor after a \
                         with_fd closure ({error}); the cursor stays where it was before it"
                    ),
                ))
            }
        }
    }
}
