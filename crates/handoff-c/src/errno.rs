//! `errno`: how every error crosses the boundary. An [`Errno`] is the value a failing call
//! leaves in the C runtime's `errno` (the one the library links: glibc's on Linux, msvcrt.dll's
//! for the `-gnu` Windows build); [`Errno::of`] maps a Rust `io::Error` to it.

use std::ffi::c_int;
use std::io;

use handoff::pager::{PageInError, PageInErrorKind};

/// An `errno` value, set by a failing call before it returns `-1` (or `NULL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Errno(pub(crate) c_int);

impl Errno {
    /// The `errno` for an error of the pager or of the OS.
    pub(crate) fn of(error: &io::Error) -> Errno {
        if let Some(why) = PageInError::of(error) {
            match why.kind() {
                PageInErrorKind::Deadlock => return Errno(libc::EDEADLK),
                PageInErrorKind::Removed | PageInErrorKind::Replaced => return Errno(libc::ENOENT),
                PageInErrorKind::AccessRefused => return Errno(libc::EACCES),
                _ => {
                    if let Some(raw) = why.raw_os_error() {
                        return Errno(from_os(raw));
                    }
                }
            }
        }
        match error.raw_os_error() {
            Some(raw) => Errno(from_os(raw)),
            None => Errno(from_kind(error.kind())),
        }
    }

    /// Stores the value in this thread's `errno`.
    pub(crate) fn set(self) {
        // SAFETY: the C runtime's `errno` location is this thread's, valid for the thread's
        // life; writing an `int` there is what C code does.
        unsafe { *location() = self.0 };
    }
}

impl From<io::Error> for Errno {
    fn from(error: io::Error) -> Errno {
        Errno::of(&error)
    }
}

/// Unix: `io::Error`s carry `errno` values already.
#[cfg(unix)]
fn from_os(raw: i32) -> c_int {
    raw
}

/// Windows: `io::Error`s carry Win32 error codes; these are the ones a file call gives, mapped
/// as the C runtime maps them (`_dosmaperr`).
#[cfg(windows)]
fn from_os(raw: i32) -> c_int {
    match raw {
        2 | 3 | 15 | 18 | 53 | 67 | 161 => libc::ENOENT, // FILE/PATH_NOT_FOUND, ...
        4 => libc::EMFILE,                               // TOO_MANY_OPEN_FILES
        5 | 19 | 32 | 33 | 65 | 82 | 108 => libc::EACCES, // ACCESS_DENIED, SHARING_VIOLATION, ...
        6 => libc::EBADF,                                // INVALID_HANDLE
        8 | 14 => libc::ENOMEM,
        17 => libc::EXDEV,
        80 | 183 => libc::EEXIST, // FILE_EXISTS, ALREADY_EXISTS
        87 | 131 => libc::EINVAL, // INVALID_PARAMETER, NEGATIVE_SEEK
        112 => libc::ENOSPC,      // DISK_FULL
        145 => libc::ENOTEMPTY,
        _ => libc::EIO,
    }
}

fn from_kind(kind: io::ErrorKind) -> c_int {
    use io::ErrorKind as K;
    match kind {
        K::NotFound => libc::ENOENT,
        K::PermissionDenied => libc::EACCES,
        K::AlreadyExists => libc::EEXIST,
        K::InvalidInput | K::InvalidData => libc::EINVAL,
        K::Deadlock => libc::EDEADLK,
        K::ResourceBusy => libc::EBUSY,
        K::Interrupted => libc::EINTR,
        K::WouldBlock => libc::EAGAIN,
        K::OutOfMemory => libc::ENOMEM,
        K::StorageFull | K::WriteZero => libc::ENOSPC,
        K::IsADirectory => libc::EISDIR,
        K::NotADirectory => libc::ENOTDIR,
        K::Unsupported => libc::ENOSYS,
        _ => libc::EIO,
    }
}

#[cfg(target_os = "linux")]
fn location() -> *mut c_int {
    // SAFETY: glibc/musl: the address of this thread's errno; no preconditions.
    unsafe { libc::__errno_location() }
}

#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
fn location() -> *mut c_int {
    // SAFETY: the address of this thread's errno; no preconditions.
    unsafe { libc::__error() }
}

#[cfg(windows)]
fn location() -> *mut c_int {
    extern "C" {
        /// The linked C runtime's (msvcrt.dll's) per-thread `errno`.
        fn _errno() -> *mut c_int;
    }
    // SAFETY: the address of this thread's errno in the linked C runtime; no preconditions.
    unsafe { _errno() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pagers_own_errors_map_to_their_errno() {
        let deadlock = io::Error::new(io::ErrorKind::Deadlock, "waiting could never end");
        assert_eq!(Errno::of(&deadlock), Errno(libc::EDEADLK));
        let os = io::Error::from_raw_os_error(if cfg!(windows) { 2 } else { libc::ENOENT });
        assert_eq!(Errno::of(&os), Errno(libc::ENOENT));
        let odd = io::Error::other("something else");
        assert_eq!(Errno::of(&odd), Errno(libc::EIO));
    }
}
