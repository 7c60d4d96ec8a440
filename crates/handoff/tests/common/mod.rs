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

/// The process's open descriptors (Unix) or handles (Windows) when it was taken; `assert_back`
/// checks that every one opened since has been closed, and no earlier one closed.
pub struct Census(usize);

impl Census {
    pub fn take() -> Census {
        Census(open_count())
    }

    #[track_caller]
    pub fn assert_back(&self) {
        assert_eq!(
            open_count(),
            self.0,
            "open descriptors/handles differ from the census"
        );
    }
}

/// The raw value behind a borrowed handle, for asking the OS about it after the borrow ends.
pub fn raw(handle: BorrowedOsHandle<'_>) -> RawOs {
    raw_of(handle)
}
