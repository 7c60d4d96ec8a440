//! How many descriptors this process may hold, and how to raise that to the maximum.
//!
//! - **Unix**: `RLIMIT_NOFILE`. The soft limit (often 1024) is what `open` obeys; a process may
//!   raise it up to the hard limit without privileges. [`raise`] does that, as Go's runtime does
//!   at start-up since Go 1.19. Children inherit the raised limit; a program that still uses
//!   `select(2)` (which cannot see descriptors ≥ 1024) should not raise it.
//! - **Windows**: the C runtime's descriptor table has a fixed size: 2048 slots in msvcrt.dll
//!   (what the `*-windows-gnu` targets link), 8192 in the UCRT (`*-windows-msvc`,
//!   `*-windows-gnullvm`). `_setmaxstdio` changes only how many `FILE*` streams may be open
//!   (512 at start); [`raise`] sets it to the table size, the most the loaded runtime accepts.
//!   Kernel `HANDLE`s have no such limit.
//!
//! ```
//! let before = handoff::limits::current()?;
//! let after = handoff::limits::raise()?;
//! assert!(after.descriptors.soft >= before.descriptors.soft);
//! // Raised all the way (an unlimited hard limit is capped where the kernel would refuse it).
//! assert!(after.descriptors.soft == after.descriptors.hard || after.descriptors.hard == u64::MAX);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;

#[cfg(unix)]
#[path = "unix.rs"]
mod sys;
#[cfg(windows)]
#[path = "windows.rs"]
mod sys;

/// A soft limit (in force now) and the hard limit it may be raised to. `u64::MAX` means
/// unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// The limit in force.
    pub soft: u64,
    /// The most the soft limit may be raised to.
    pub hard: u64,
}

/// The limits that bound how many files a process can have open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Descriptors: Unix `RLIMIT_NOFILE`; Windows the C runtime's table size (fixed, so soft ==
    /// hard).
    pub descriptors: Limit,
    /// `FILE*` streams: Windows `_getmaxstdio` and the table size; Unix has no separate limit,
    /// so this equals `descriptors`.
    pub streams: Limit,
}

/// The limits in force now (Unix `getrlimit(RLIMIT_NOFILE)`; Windows `_getmaxstdio`).
///
/// # Errors
///
/// `getrlimit` failed (it does not, in practice).
///
/// # References
/// - [`getrlimit`](https://man7.org/linux/man-pages/man2/getrlimit.2.html)
/// - [`_getmaxstdio`](https://learn.microsoft.com/cpp/c-runtime-library/reference/getmaxstdio)
///
/// ```
/// let limits = handoff::limits::current()?;
/// assert!(limits.descriptors.soft <= limits.descriptors.hard);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn current() -> io::Result<Limits> {
    sys::current()
}

/// Raises the soft limits to the most this process may have, and returns the limits then in
/// force.
///
/// Unix: soft `RLIMIT_NOFILE` to the hard limit; an unlimited hard limit is capped where the
/// kernel would refuse it (Linux `/proc/sys/fs/nr_open`, macOS `OPEN_MAX`). Windows:
/// `_setmaxstdio(table size)`; never a larger value, which the UCRT answers with its
/// invalid-parameter handler.
///
/// # Errors
///
/// `setrlimit` failed; the C runtime refused `_setmaxstdio` (`ErrorKind::Unsupported`).
///
/// # References
/// - [`setrlimit`](https://man7.org/linux/man-pages/man2/setrlimit.2.html)
/// - [`_setmaxstdio`](https://learn.microsoft.com/cpp/c-runtime-library/reference/setmaxstdio)
///
/// ```
/// let limits = handoff::limits::raise()?;
/// assert!(limits.streams.soft == limits.streams.hard || limits.streams.hard == u64::MAX);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn raise() -> io::Result<Limits> {
    sys::raise()?;
    current()
}

/// Whether `error` says the process (or the system, or the C runtime's table) has no descriptor
/// left: Unix `EMFILE`/`ENFILE`; Windows `ERROR_TOO_MANY_OPEN_FILES`, which is also what
/// [`crt`](crate::crt) reports for a full C-runtime table (`EMFILE`, or `ENFILE` under Wine).
///
/// ```
/// use std::io;
/// # #[cfg(unix)] let code = libc::EMFILE;
/// # #[cfg(windows)] let code = 4; // ERROR_TOO_MANY_OPEN_FILES
/// assert!(handoff::limits::is_out_of_descriptors(&io::Error::from_raw_os_error(code)));
/// assert!(!handoff::limits::is_out_of_descriptors(&io::Error::from(io::ErrorKind::NotFound)));
/// ```
pub fn is_out_of_descriptors(error: &io::Error) -> bool {
    error.raw_os_error().is_some_and(sys::is_out_of_descriptors)
}
