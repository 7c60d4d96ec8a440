//! Unix: the C-runtime descriptor is the kernel fd.

use std::ffi::c_int;
use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};

use super::Access;

/// The fd is already the descriptor; `Append` sets `O_APPEND` on it.
pub(super) fn open_crt(fd: OwnedFd, access: Access) -> io::Result<c_int> {
    if access == Access::Append {
        set_append(&fd)?;
    }
    let raw = fd.into_raw_fd();
    #[cfg(target_os = "linux")]
    crate::audit_tag::own(raw, c"handoff::crt::CrtFd");
    Ok(raw)
}

/// `fd` leaves the `CrtFd` (closed by it, or handed to a C call that closes it).
pub(super) fn disown(fd: c_int) {
    #[cfg(target_os = "linux")]
    crate::audit_tag::disown(fd);
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

fn set_append(fd: &OwnedFd) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `fd` is open for the duration of both calls; F_GETFL/F_SETFL touch only flags.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags == -1 {
            return Err(io::Error::last_os_error());
        }
        if flags & libc::O_APPEND == 0
            && libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_APPEND) == -1
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// # Safety
/// `fd` must be open for as long as the returned borrow is used.
pub(super) unsafe fn borrow_os<'a>(fd: c_int) -> BorrowedFd<'a> {
    // SAFETY: the caller guarantees `fd` stays open for `'a`.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// `close`: the number is released whatever the result (on Linux and the BSDs `close` releases
/// it even when it reports an error).
///
/// # Safety
/// `fd` must be an open descriptor that the caller owns and gives up here: nothing may use or
/// close it afterwards (its number may be reused at once by anyone).
pub(super) unsafe fn close_crt(fd: c_int) -> io::Result<()> {
    disown(fd);
    // SAFETY: the caller owns `fd` and gives it up here; it is closed once.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The descriptor is the OS handle: ownership moves to an `OwnedFd`.
///
/// # Safety
/// `fd` must be an open descriptor that the caller owns and gives up here.
pub(super) unsafe fn into_os(fd: c_int) -> io::Result<OwnedFd> {
    // SAFETY: the caller gives up ownership of the open fd `fd` (see above).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Nothing to do: a failing call always sets `errno` on Unix.
pub(super) fn clear_errno() {}

pub(super) fn last_crt_error() -> io::Error {
    io::Error::last_os_error()
}

/// Why `fdopen` failed: `errno` says.
pub(super) fn fdopen_error() -> io::Error {
    io::Error::last_os_error()
}

pub(super) use libc::clearerr;

/// Forgets end of file: `clearerr` is enough, the kernel has no end-of-file state.
///
/// # Safety
/// `file` must be an open stream.
pub(super) unsafe fn clear_eof(file: *mut libc::FILE) {
    // SAFETY: the caller guarantees `file` is open.
    unsafe { libc::clearerr(file) }
}
