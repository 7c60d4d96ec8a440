//! Windows: a C-runtime descriptor is a slot in the C runtime's table that owns a `HANDLE`.

use std::ffi::{c_int, c_ulong};
use std::io;
use std::os::windows::io::{AsRawHandle, BorrowedHandle, IntoRawHandle, OwnedHandle, RawHandle};

use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_DISK_FULL, ERROR_FILE_NOT_FOUND, ERROR_INVALID_HANDLE,
    ERROR_INVALID_PARAMETER, ERROR_NOT_ENOUGH_MEMORY, ERROR_NO_DATA, ERROR_TOO_MANY_OPEN_FILES,
};

use super::Access;

extern "C" {
    fn _errno() -> *mut c_int;
    fn __doserrno() -> *mut c_ulong;
    pub(super) fn clearerr(stream: *mut libc::FILE);
    fn _fseeki64(stream: *mut libc::FILE, offset: i64, origin: c_int) -> c_int;
}

/// Forgets end of file. `clearerr` clears the stream's flag, but msvcrt (Wine's at least) also
/// marks the descriptor as at end of file and answers every later `_read` with 0 until a seek:
/// so seek to where we are. Pipes cannot seek; their end of file is final anyway.
///
/// # Safety
/// `file` must be an open stream.
pub(super) unsafe fn clear_eof(file: *mut libc::FILE) {
    // SAFETY: the caller guarantees `file` is open; a seek by 0 from the current position moves
    // nothing and clears end of file in the stream and its descriptor.
    unsafe {
        if _fseeki64(file, 0, libc::SEEK_CUR) != 0 {
            clearerr(file);
        }
    }
}

/// `_open_osfhandle`. Always binary (no CR/LF translation) and not inherited by `_spawn`.
/// It calls `GetFileType` on the handle and fails cleanly (`EBADF`) on one that is not open, so
/// no handle value can reach the invalid-parameter handler.
pub(super) fn open_crt(handle: OwnedHandle, access: Access) -> io::Result<c_int> {
    let mode = match access {
        Access::Read => libc::O_RDONLY,
        Access::Write => libc::O_WRONLY,
        Access::ReadWrite => libc::O_RDWR,
        Access::Append => libc::O_WRONLY | libc::O_APPEND,
    };
    clear_errno();
    // SAFETY: `handle` is an open handle that we own; on success the new slot owns it, on
    // failure it is still ours and `handle`'s drop closes it.
    let fd = unsafe {
        libc::open_osfhandle(
            handle.as_raw_handle() as libc::intptr_t,
            mode | libc::O_BINARY | libc::O_NOINHERIT,
        )
    };
    if fd == -1 {
        return Err(last_crt_error());
    }
    let _ = handle.into_raw_handle();
    Ok(fd)
}

/// `_get_osfhandle`.
///
/// # Safety
/// `fd` must be an open descriptor with a handle, open for as long as the borrow is used.
pub(super) unsafe fn borrow_os<'a>(fd: c_int) -> BorrowedHandle<'a> {
    // SAFETY: `fd` is open (caller), so `_get_osfhandle` returns its handle without reaching the
    // invalid-parameter handler; the handle lives as long as the slot, which outlives `'a`.
    unsafe {
        let handle = libc::get_osfhandle(fd);
        debug_assert!(
            handle != -1 && handle != -2,
            "descriptor {fd} has no handle"
        );
        BorrowedHandle::borrow_raw(handle as RawHandle)
    }
}

/// `_close`: frees the slot and closes its handle.
///
/// # Safety
/// `fd` must be an open descriptor that the caller owns and gives up here: nothing may use or
/// close it afterwards (the slot may be reused at once by anyone).
pub(super) unsafe fn close_crt(fd: c_int) -> io::Result<()> {
    clear_errno();
    // SAFETY: the caller owns the open descriptor `fd` and gives it up here (see above).
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(last_crt_error())
    }
}

/// The C runtime cannot release a slot without closing its handle: duplicate, then `_close`.
/// The slot is closed whatever happens.
///
/// # Safety
/// `fd` must be an open descriptor with a handle, which the caller owns and gives up here.
pub(super) unsafe fn into_os(fd: c_int) -> io::Result<OwnedHandle> {
    // SAFETY: `fd` is open and ours (caller) until `close_crt` below; the borrow ends first.
    let duplicate = unsafe { borrow_os(fd) }.try_clone_to_owned();
    // SAFETY: we own `fd` (caller) and give it up here; it is not used afterwards.
    let closed = unsafe { close_crt(fd) };
    let duplicate = duplicate?;
    closed?;
    Ok(duplicate)
}

/// Why `_fdopen` failed. Given an open descriptor and a valid mode it fails only when no stream
/// is free (`_getmaxstdio` are open): msvcrt.dll says `EMFILE`, Wine's msvcrt sets no `errno`.
pub(super) fn fdopen_error() -> io::Error {
    // SAFETY: returns a pointer to this thread's `errno`.
    if unsafe { *_errno() } == 0 {
        return io::Error::from_raw_os_error(ERROR_TOO_MANY_OPEN_FILES as i32);
    }
    last_crt_error()
}

/// Clears `errno` and `_doserrno`, so that `last_crt_error` reads what the next call sets.
pub(super) fn clear_errno() {
    // SAFETY: both return pointers to this thread's variables.
    unsafe {
        *_errno() = 0;
        *__doserrno() = 0;
    }
}

/// The error of the last failed C-runtime call, as the Win32 code of the same meaning, so that
/// `raw_os_error()` and `kind()` agree with errors from the rest of std.
pub(super) fn last_crt_error() -> io::Error {
    // SAFETY: both return pointers to this thread's variables.
    let (errno, doserrno) = unsafe { (*_errno(), *__doserrno()) };
    let win32 = match errno {
        // No OS call failed: the C runtime's own table (or stream limit) is full.
        libc::EMFILE | libc::ENFILE => ERROR_TOO_MANY_OPEN_FILES,
        // An OS call failed: the C runtime kept its code.
        _ if doserrno != 0 => doserrno,
        libc::EBADF => ERROR_INVALID_HANDLE,
        libc::EINVAL => ERROR_INVALID_PARAMETER,
        libc::EACCES => ERROR_ACCESS_DENIED,
        libc::ENOMEM => ERROR_NOT_ENOUGH_MEMORY,
        libc::ENOSPC => ERROR_DISK_FULL,
        libc::EPIPE => ERROR_NO_DATA,
        libc::ENOENT => ERROR_FILE_NOT_FOUND,
        other => {
            return io::Error::other(format!("C runtime call failed (errno {other})"));
        }
    };
    io::Error::from_raw_os_error(win32 as i32)
}
