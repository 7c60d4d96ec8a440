//! Windows backing: kernel handles are plentiful, C-runtime descriptors are scarce.
//!
//! Every entry owns its file's `HANDLE` for life, and Rust-side I/O goes through it directly.
//! The budget counts C-runtime descriptors: a page-in is `DuplicateHandle` + `_open_osfhandle`
//! (a [`CrtFd::dup_from`]), an eviction is `_close` of that descriptor, which closes only the
//! duplicate. The file position lives in the kernel file object, which the handle and every
//! duplicate share.

use std::ffi::{c_int, c_void};
use std::fs::{File, Metadata};
use std::io::{self, Seek, SeekFrom};
use std::mem::ManuallyDrop;
use std::os::windows::fs::FileExt;
use std::os::windows::io::{
    AsRawHandle, BorrowedHandle, FromRawHandle, IntoRawHandle, OwnedHandle, RawHandle,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicPtr, Ordering};

use super::OpenOptions;
use crate::crt::{Access, CrtFd};

/// A C-runtime descriptor.
pub(super) type RawDescriptor = c_int;

/// Windows: the first open keeps a handle, not a C-runtime descriptor.
pub(super) const OPEN_IS_RESIDENT: bool = false;

/// Nothing is shared between entries.
#[derive(Default)]
pub(super) struct Shared;

/// The handle of a file, owned by its entry from the first open on.
pub(super) struct Reopen {
    handle: OwnedHandle,
}

impl Reopen {
    pub(super) fn new(handle: OwnedHandle) -> Reopen {
        Reopen { handle }
    }
}

/// After the first open: no descriptor yet, the handle kept for life.
pub(super) fn first_open(
    file: File,
    _path: PathBuf,
    _metadata: &Metadata,
) -> (Option<RawDescriptor>, Option<Reopen>) {
    (None, Some(Reopen::new(file.into())))
}

/// An entry's handle (null for a free slot).
#[derive(Default)]
pub(super) struct Backing {
    handle: AtomicPtr<c_void>,
}

/// A page-in failure (never an identity failure: the handle is the file).
pub(super) struct PageInError {
    pub(super) error: io::Error,
    pub(super) identity: bool,
}

fn access(options: &OpenOptions) -> Access {
    match (options.read, options.write, options.append) {
        (_, _, true) => Access::Append,
        (true, true, false) => Access::ReadWrite,
        (false, true, false) => Access::Write,
        _ => Access::Read,
    }
}

impl Backing {
    /// Keeps the handle (nobody else sees the slot yet). Always `true`: any handle can give a
    /// C-runtime descriptor again.
    pub(super) fn store(&self, _shared: &Shared, reopen: Reopen) -> bool {
        self.handle
            .store(reopen.handle.into_raw_handle(), Ordering::Relaxed);
        true
    }

    fn borrow(&self) -> BorrowedHandle<'_> {
        // SAFETY: the handle is owned by the entry until `clear`, which runs only when the
        // virtual file is closed, so never while `self` is borrowed for I/O or a page-in.
        unsafe { BorrowedHandle::borrow_raw(self.handle.load(Ordering::Relaxed)) }
    }

    /// A C-runtime descriptor over a duplicate of the handle.
    pub(super) fn page_in(
        &self,
        _shared: &Shared,
        options: &OpenOptions,
    ) -> Result<RawDescriptor, PageInError> {
        CrtFd::dup_from(self.borrow(), access(options))
            .map(CrtFd::into_raw)
            .map_err(|error| PageInError {
                error,
                identity: false,
            })
    }

    /// Closes the handle (the slot is being freed).
    pub(super) fn clear(&self, _shared: &Shared) {
        let handle = self.handle.swap(std::ptr::null_mut(), Ordering::Relaxed);
        if !handle.is_null() {
            // SAFETY: the entry owned this handle, and the pointer is gone from it.
            drop(unsafe { OwnedHandle::from_raw_handle(handle) });
        }
    }

    /// Runs `f` on a `File` view of the handle, which is not closed afterwards.
    pub(super) fn with_file<R>(&self, f: impl FnOnce(&File) -> R) -> R {
        with_handle_file(self.borrow().as_raw_handle(), f)
    }

    /// The handle, borrowed.
    pub(super) fn handle(&self) -> BorrowedHandle<'_> {
        self.borrow()
    }
}

fn with_handle_file<R>(handle: RawHandle, f: impl FnOnce(&File) -> R) -> R {
    // SAFETY: the caller keeps the handle open for the call; the `File` is never dropped.
    let file = ManuallyDrop::new(unsafe { File::from_raw_handle(handle) });
    f(&file)
}

/// Nothing is ever kept at eviction: the entry's handle keeps even a deleted file.
pub(super) fn keep_at_eviction(_fd: RawDescriptor) -> bool {
    false
}

/// `_close` of a C-runtime descriptor (only the duplicate handle is closed).
pub(super) fn close(fd: RawDescriptor) -> io::Result<()> {
    // SAFETY: the caller has claimed `fd` and gives it up here, once.
    unsafe { CrtFd::from_raw(fd) }.close()
}

/// Reopens add no flags on Windows (std's handles are not inherited).
pub(super) fn reopen_flags(_options: &mut std::fs::OpenOptions) {}

/// Whether positional I/O works: files (not pipes or consoles).
pub(super) fn is_seekable(metadata: &Metadata) -> bool {
    metadata.is_file()
}

/// Moves a C-runtime descriptor's position (`_lseeki64`), which is the kernel file object's.
pub(super) fn seek_descriptor(fd: RawDescriptor, position: SeekFrom) -> io::Result<u64> {
    extern "C" {
        fn _lseeki64(fd: c_int, offset: i64, origin: c_int) -> i64;
    }
    let (offset, origin) = match position {
        SeekFrom::Start(n) => (n as i64, 0),
        SeekFrom::Current(n) => (n, 1),
        SeekFrom::End(n) => (n, 2),
    };
    // SAFETY: `fd` is pinned open by the caller; `_lseeki64` only moves its position.
    let at = unsafe { _lseeki64(fd, offset, origin) };
    if at < 0 {
        return Err(io::Error::other(format!(
            "_lseeki64 on C-runtime descriptor {fd} failed"
        )));
    }
    Ok(at as u64)
}

/// The handle's current position (the cursor of an adopted handle).
pub(super) fn position(handle: &OwnedHandle) -> u64 {
    with_handle_file(handle.as_raw_handle(), |mut file| file.stream_position()).unwrap_or(0)
}

/// Metadata of an adopted handle.
pub(super) fn metadata(handle: &OwnedHandle) -> io::Result<Metadata> {
    with_handle_file(handle.as_raw_handle(), |file| file.metadata())
}

// Positional I/O through the handle. `seek_read`/`seek_write` also move the kernel position;
// the virtual file's cursor is its own, and `with_crt_fd` sets the position before C code runs.

#[inline]
pub(super) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    file.seek_read(buf, offset)
}

#[inline]
pub(super) fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    file.seek_write(buf, offset)
}

pub(super) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "failed to fill whole buffer",
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(super) fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.seek_write(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "failed to write whole buffer",
                ))
            }
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether an append-mode write of zero bytes moves the file position to the end.
pub(super) const EMPTY_APPEND_MOVES_TO_END: bool = true;
