//! The cursor calls on a pinned descriptor: while a virtual descriptor is pinned, its
//! descriptor's offset *is* the cursor, so `handoff_read`/`handoff_write`/`handoff_lseek` go
//! through the descriptor itself (`read`/`write`/`lseek`; on Windows the linked C runtime's
//! `_read`/`_write`/`_lseeki64`).

use std::ffi::c_int;

use crate::errno::Errno;

#[cfg(unix)]
fn failed() -> Errno {
    Errno::of(&std::io::Error::last_os_error())
}

/// The C runtime's `errno`, as the failing CRT call left it.
#[cfg(windows)]
fn failed() -> Errno {
    extern "C" {
        fn _errno() -> *mut c_int;
    }
    // SAFETY: this thread's errno in the linked C runtime.
    Errno(unsafe { *_errno() })
}

/// `read(fd)`.
///
/// # Safety
/// `fd` is open (pinned) for the call.
pub(crate) unsafe fn read(fd: c_int, buf: &mut [u8]) -> Result<i64, Errno> {
    #[cfg(unix)]
    // SAFETY: `buf` is valid for its length; `fd` is open (the caller's contract).
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } as i64;
    #[cfg(windows)]
    // SAFETY: as above; the length is cut to what `_read` takes.
    let n = unsafe {
        libc::read(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len().min(c_int::MAX as usize) as _,
        )
    } as i64;
    if n < 0 {
        return Err(failed());
    }
    Ok(n)
}

/// `write(fd)`.
///
/// # Safety
/// `fd` is open (pinned) for the call.
pub(crate) unsafe fn write(fd: c_int, buf: &[u8]) -> Result<i64, Errno> {
    #[cfg(unix)]
    // SAFETY: `buf` is valid for its length; `fd` is open (the caller's contract).
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) } as i64;
    #[cfg(windows)]
    // SAFETY: as above; the length is cut to what `_write` takes.
    let n = unsafe {
        libc::write(
            fd,
            buf.as_ptr().cast(),
            buf.len().min(c_int::MAX as usize) as _,
        )
    } as i64;
    if n < 0 {
        return Err(failed());
    }
    Ok(n)
}

/// `lseek(fd)`.
///
/// # Safety
/// `fd` is open (pinned) for the call.
pub(crate) unsafe fn lseek(fd: c_int, offset: i64, whence: c_int) -> Result<i64, Errno> {
    #[cfg(unix)]
    // SAFETY: `fd` is open (the caller's contract); `lseek` only moves its offset.
    let at = unsafe { libc::lseek(fd, offset as libc::off_t, whence) } as i64;
    #[cfg(windows)]
    // SAFETY: as above (`_lseeki64`).
    let at = unsafe { libc::lseek64(fd, offset, whence) };
    if at < 0 {
        return Err(failed());
    }
    Ok(at)
}
