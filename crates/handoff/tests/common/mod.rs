//! Helpers shared by the integration tests. They ask the OS, not handoff, what is open.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::{Mutex, MutexGuard};

use handoff::crt::BorrowedOsHandle;

#[cfg(unix)]
#[path = "unix.rs"]
mod sys;
#[cfg(windows)]
#[path = "windows.rs"]
mod sys;

pub use sys::*;

static SERIAL: Mutex<()> = Mutex::new(());

/// Tests that count the process's open descriptors, or fill its C-runtime table, must not run
/// beside each other: each holds this for its whole body.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The process's open descriptors (Unix: /proc/self/fd) or handles (Windows: every handle
/// value that `GetHandleInformation` accepts) when it was taken; `assert_back` checks that the
/// same ones are open again: every one opened since has been closed, and no earlier one closed.
/// `tests/census.rs` shows it seeing 50 files come and go.
pub struct Census(Vec<usize>);

impl Census {
    pub fn take() -> Census {
        Census(open_handles())
    }

    /// How many were open when it was taken.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// What differs now from when it was taken, if anything.
    pub fn changes(&self) -> Option<String> {
        let now = open_handles();
        let opened: Vec<_> = now.iter().filter(|h| !self.0.contains(h)).collect();
        let closed: Vec<_> = self.0.iter().filter(|h| !now.contains(h)).collect();
        (!opened.is_empty() || !closed.is_empty()).then(|| {
            format!(
                "open descriptors/handles differ from the census ({} then, {} now): opened \
                 since and still open {opened:?}, closed since {closed:?}",
                self.0.len(),
                now.len()
            )
        })
    }

    #[track_caller]
    pub fn assert_back(&self) {
        if let Some(changes) = self.changes() {
            panic!("{changes}");
        }
    }
}

/// The raw value behind a borrowed handle, for asking the OS about it after the borrow ends.
pub fn raw(handle: BorrowedOsHandle<'_>) -> RawOs {
    raw_of(handle)
}
