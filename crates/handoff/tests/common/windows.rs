use std::ffi::c_int;
use std::io;
use std::os::windows::io::{AsRawHandle, BorrowedHandle, FromRawHandle, OwnedHandle, RawHandle};

use windows_sys::Win32::Foundation::{GetHandleInformation, ERROR_INVALID_HANDLE};

pub type RawOs = RawHandle;

pub fn raw_of(handle: BorrowedHandle<'_>) -> RawHandle {
    handle.as_raw_handle()
}

/// Whether `handle` is an open handle of this process, by `GetHandleInformation`.
pub fn is_open(handle: RawHandle) -> bool {
    let mut flags = 0;
    // SAFETY: only reads the handle's flags; an invalid handle gives ERROR_INVALID_HANDLE.
    unsafe { GetHandleInformation(handle, &mut flags) != 0 }
}

/// Whether C-runtime slot `fd` is open. msvcrt.dll (what the -gnu target links) answers -1 with
/// EBADF for a closed slot; the UCRT would call its invalid-parameter handler instead.
pub fn crt_slot_is_open(fd: c_int) -> bool {
    // SAFETY: msvcrt.dll's `_get_osfhandle` only reads its table (see above).
    unsafe { libc::get_osfhandle(fd) != -1 }
}

/// The highest handle value the census probes. Handle values are multiples of 4 handed out
/// from the bottom, so this sees the first 16,383 handles; `open_handles` refuses to answer if
/// the top value is taken (the census could then miss some).
const CENSUS_TOP: usize = 0xFFFC;

/// The handles open in this process: every value 4, 8, ..., 0xFFFC for which
/// `GetHandleInformation` succeeds. (`GetProcessHandleCount` would be simpler, but under Wine 8
/// it succeeds and always answers 0, so a census built on it can never fail.)
pub fn open_handles() -> Vec<usize> {
    assert!(
        !is_open(CENSUS_TOP as RawHandle),
        "handle {CENSUS_TOP:#x} is open: the census cannot see every handle"
    );
    (4..CENSUS_TOP)
        .step_by(4)
        .filter(|&value| is_open(value as RawHandle))
        .collect()
}

/// How many handles this process holds (see `open_handles`).
pub fn open_count() -> usize {
    open_handles().len()
}

/// The double-close bug itself: treats a borrowed handle as owned.
///
/// # Safety
/// Only for tests that show what goes wrong; the caller must not let both owners close it.
pub unsafe fn steal(handle: RawHandle) -> OwnedHandle {
    // SAFETY: deliberately wrong ownership, as documented; the handle is open.
    unsafe { OwnedHandle::from_raw_handle(handle) }
}

/// A handle value that is certainly not open (handle values are multiples of 4 counted up from
/// a small number; this one is far above any this process holds).
pub fn not_open() -> RawHandle {
    let handle = 0x7fff_fff0_usize as RawHandle;
    assert!(!is_open(handle));
    handle
}

/// The error code for "not an open handle".
pub const NOT_OPEN: i32 = ERROR_INVALID_HANDLE as i32;

/// `write` (Unix) / `_write` (Windows) on a C-runtime descriptor.
///
/// # Safety
/// `fd` must be an open descriptor that the caller owns or borrows for the call.
pub unsafe fn crt_write(fd: c_int, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: `bytes` is valid for its length; the caller lends an open fd (see above).
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len() as u32) };
    if n < 0 {
        Err(io::Error::other("_write failed"))
    } else {
        Ok(n as usize)
    }
}

/// `close` (Unix) / `_close` (Windows).
///
/// # Safety
/// `fd` must be an open descriptor that the caller owns and gives up here.
pub unsafe fn crt_close(fd: c_int) -> io::Result<()> {
    // SAFETY: the caller owns `fd` and closes it once (see above).
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(io::Error::other("_close failed"))
    }
}

/// After `CrtFd::into_os` on Windows the slot is closed and the handle is a duplicate.
#[track_caller]
pub fn assert_slot_released_by_into_os(slot: c_int, _handle: BorrowedHandle<'_>) {
    assert!(!crt_slot_is_open(slot), "the C-runtime slot is closed");
}
