use std::ffi::c_int;
use std::io;
use std::os::windows::io::{AsRawHandle, BorrowedHandle, FromRawHandle, OwnedHandle, RawHandle};

use windows_sys::Win32::Foundation::{GetHandleInformation, ERROR_INVALID_HANDLE};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, GetProcessHandleCount};

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

/// `GetProcessHandleCount`.
pub fn open_count() -> usize {
    let mut count = 0;
    // SAFETY: writes one u32; the pseudo-handle of the current process needs no closing.
    assert_ne!(
        unsafe { GetProcessHandleCount(GetCurrentProcess(), &mut count) },
        0
    );
    count as usize
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

pub fn crt_write(fd: c_int, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: `bytes` is valid for its length; the caller lends an open fd.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len() as u32) };
    if n < 0 {
        Err(io::Error::other("_write failed"))
    } else {
        Ok(n as usize)
    }
}

pub fn crt_close(fd: c_int) -> io::Result<()> {
    // SAFETY: the caller owns `fd` and closes it once.
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
