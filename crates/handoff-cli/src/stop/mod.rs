//! What stops a partition run early, on every platform, behind one contract: [`install`] makes
//! each stop request set a flag to a number that is never 0, the run sees the flag, stops
//! reading, writes every whole record read so far, and exits with 128 + that number.
//!
//! - Unix (`unix.rs`): SIGINT and SIGTERM, whose numbers are stored (exit 130 / 143).
//! - Windows (`windows.rs`): the console's control events, through `SetConsoleCtrlHandler`.
//!   Ctrl-C and Ctrl-Break store [`INTERRUPT`] (exit 130, as SIGINT); closing the console,
//!   logging off and shutting down store [`TERMINATE`] (exit 143, as SIGTERM).

use std::io;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as sys;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as sys;

/// The number an interruption stores: SIGINT's (Ctrl-C on Windows).
pub const INTERRUPT: usize = 2;
/// The number a request to terminate stores: SIGTERM's (console close on Windows).
pub const TERMINATE: usize = 15;

/// Makes every stop request set `flag` to its number (see the module documentation). Call it
/// once.
///
/// # Errors
///
/// A handler cannot be installed (the message names it).
pub fn install(flag: &Arc<AtomicUsize>) -> io::Result<()> {
    sys::install(flag)
}

/// What stopped the run, for the summary: "signal 2" on Unix, "Ctrl-C or Ctrl-Break" on
/// Windows.
pub fn describe(number: usize) -> String {
    sys::describe(number)
}
