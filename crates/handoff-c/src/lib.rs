//! The C API of handoff's pager: `handoff.h` over [`handoff::pager::Pager`], as
//! `libhandoff_c.so`/`libhandoff_c.a` (Linux) and `handoff_c.dll` (Windows, MinGW-w64).
//!
//! A C program that needs more open files than the descriptor limit (`RLIMIT_NOFILE`, or the
//! 2048 slots of msvcrt.dll's descriptor table) opens *virtual descriptors*: `int`s numbered
//! from 2^30 (so that one passed to `read(2)` by mistake fails with `EBADF` instead of touching
//! someone's file), backed by at most a budget of real descriptors, paged in and out as the
//! Rust pager does. `handoff_pin` lends a real C-runtime descriptor at the file's cursor until
//! `handoff_unpin`.
//!
//! Conventions, for every function: `-1` (or `NULL`) with `errno` set on failure; `EINVAL` for
//! a NULL pointer or an argument out of range; `EBADF` for a virtual descriptor that is not
//! open; a Rust panic never crosses the boundary (it is caught: `EIO`). Thread-safe: any call
//! from any thread, on any virtual descriptor (calls on one descriptor are serialized where
//! they move its cursor, as the Rust `VirtualFile`'s are).
//!
//! The header, `include/handoff.h`, is written by hand; `tests/header.rs` checks that it
//! declares exactly the functions the library exports and compiles a program calling each.

mod boundary;
mod crt;
mod errno;
mod files;
mod flags;

use std::ffi::{c_char, c_int, c_void, CStr};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use handoff::pager::{Pager, VirtualFile};

use boundary::{call, invalid};
use errno::Errno;
use files::{File, Files};

/// A pager and its virtual descriptors (`handoff_pager` in C, opaque there).
#[allow(non_camel_case_types)]
pub struct handoff_pager {
    pager: Pager,
    files: Files,
}

/// The pager's counters (`handoff_stats` in C), filled by [`handoff_pager_stats`].
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct handoff_stats {
    /// The most real descriptors the pager may hold.
    pub budget: u64,
    /// Real descriptors held now.
    pub resident: u64,
    /// The most real descriptors held at once.
    pub peak_resident: u64,
    /// Resident descriptors that can never be paged out (pipes, unlinked files).
    pub permanent: u64,
    /// Operations that found their descriptor resident.
    pub hits: u64,
    /// Descriptors opened again to page a file in.
    pub page_ins: u64,
    /// Descriptors closed to make room.
    pub evictions: u64,
    /// Page-ins refused because another file (or none) was at the path.
    pub identity_failures: u64,
    /// Virtual descriptors opened.
    pub opens: u64,
    /// Virtual descriptors closed.
    pub closes: u64,
    /// Times a caller waited for a descriptor of the budget.
    pub waits: u64,
    /// Opens retried after EMFILE/ENFILE from elsewhere in the process.
    pub emfile_retries: u64,
}

/// The pager behind a C pointer (`EINVAL` if NULL).
///
/// # Safety
/// `pager` is NULL or from `handoff_pager_new` and not freed.
unsafe fn pager<'a>(pager: *const handoff_pager) -> Result<&'a handoff_pager, Errno> {
    // SAFETY: NULL or a live pager (the caller's contract).
    match unsafe { pager.as_ref() } {
        Some(pager) => Ok(pager),
        None => invalid(),
    }
}

/// A C buffer as a slice (`EINVAL` if NULL with a length, or longer than a slice can be).
///
/// # Safety
/// `buf` is NULL or valid for `len` bytes, not used elsewhere during the call.
unsafe fn bytes<'a>(buf: *const c_void, len: usize) -> Result<&'a [u8], Errno> {
    if len == 0 {
        return Ok(&[]);
    }
    if buf.is_null() || len > isize::MAX as usize {
        return invalid();
    }
    // SAFETY: valid for `len` bytes (the caller's contract).
    Ok(unsafe { std::slice::from_raw_parts(buf.cast(), len) })
}

/// As [`bytes`], writable.
///
/// # Safety
/// `buf` is NULL or valid for writes of `len` bytes, not used elsewhere during the call.
unsafe fn bytes_mut<'a>(buf: *mut c_void, len: usize) -> Result<&'a mut [u8], Errno> {
    if len == 0 {
        return Ok(&mut []);
    }
    if buf.is_null() || len > isize::MAX as usize {
        return invalid();
    }
    // SAFETY: valid for writes of `len` bytes (the caller's contract).
    Ok(unsafe { std::slice::from_raw_parts_mut(buf.cast(), len) })
}

fn offset(offset: i64) -> Result<u64, Errno> {
    u64::try_from(offset).or_else(|_| invalid())
}

fn count(n: u64) -> Result<i64, Errno> {
    i64::try_from(n).map_err(|_| Errno(libc::EOVERFLOW))
}

/// The path a C string names (UTF-8 on Windows).
fn path_of(path: &CStr) -> Result<PathBuf, Errno> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(std::ffi::OsStr::from_bytes(path.to_bytes()).into())
    }
    #[cfg(windows)]
    match path.to_str() {
        Ok(path) => Ok(path.into()),
        Err(_) => invalid(),
    }
}

/// Runs `f` on the open (or pinned) file `vfd`, shared.
///
/// # Safety
/// As [`pager`].
unsafe fn with_file<T>(
    handle: *const handoff_pager,
    vfd: c_int,
    f: impl FnOnce(&File) -> Result<T, Errno>,
) -> Result<T, Errno> {
    // SAFETY: the caller's contract.
    let slot = unsafe { pager(handle) }?.files.get(vfd)?;
    let file = files::read(&slot);
    match &*file {
        File::Closed => Err(Errno(libc::EBADF)),
        file => f(file),
    }
}

fn pager_from(budget: usize) -> std::io::Result<Pager> {
    match budget {
        0 => Pager::from_limit(),
        budget => Ok(Pager::new(budget)),
    }
}

/// Creates a pager that holds at most `budget` real descriptors (0: derived from the
/// descriptor limit, less a reserve for the rest of the process). NULL with `errno` set if the
/// limit cannot be read.
#[no_mangle]
pub extern "C" fn handoff_pager_new(budget: usize) -> *mut handoff_pager {
    call(std::ptr::null_mut(), || {
        let pager = pager_from(budget)?;
        Ok(Box::into_raw(Box::new(handoff_pager {
            pager,
            files: Files::default(),
        })))
    })
}

/// Frees a pager, closing every virtual descriptor still open in it (and unpinning every
/// pinned one: their descriptors are closed). NULL is ignored.
///
/// # Safety
/// `pager` is NULL or from `handoff_pager_new`, not freed yet, and no other call on it runs
/// or follows.
#[no_mangle]
pub unsafe extern "C" fn handoff_pager_free(pager: *mut handoff_pager) {
    call((), || {
        if !pager.is_null() {
            // SAFETY: from `Box::into_raw` in `handoff_pager_new`, freed once (the contract).
            drop(unsafe { Box::from_raw(pager) });
        }
        Ok(())
    })
}

/// Changes the budget (0: from the descriptor limit). A smaller budget evicts at once; pinned
/// descriptors are not evicted, and new page-ins wait until the pager is within the budget.
///
/// # Safety
/// `pager` is NULL or a live pager.
#[no_mangle]
pub unsafe extern "C" fn handoff_pager_set_budget(
    pager: *mut handoff_pager,
    budget: usize,
) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let pager = unsafe { self::pager(pager) }?;
        let budget = pager_from(budget)?.budget();
        pager.pager.set_budget(budget);
        Ok(0)
    })
}

/// Fills `*stats` with the pager's counters.
///
/// # Safety
/// `pager` is NULL or a live pager; `stats` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn handoff_pager_stats(
    pager: *const handoff_pager,
    stats: *mut handoff_stats,
) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let pager = unsafe { self::pager(pager) }?;
        if stats.is_null() {
            return invalid();
        }
        let s = pager.pager.stats();
        let out = handoff_stats {
            budget: pager.pager.budget() as u64,
            resident: s.resident,
            peak_resident: s.peak_resident,
            permanent: s.permanent,
            hits: s.hits,
            page_ins: s.page_ins,
            evictions: s.evictions,
            identity_failures: s.identity_failures,
            opens: s.opens,
            closes: s.closes,
            waits: s.waits,
            emfile_retries: s.emfile_retries,
        };
        // SAFETY: valid for a write (the caller's contract).
        unsafe { stats.write(out) };
        Ok(0)
    })
}

/// Opens `path` as a virtual descriptor. `flags` are the C runtime's `O_*` (`_O_*`) values;
/// `O_CREAT`, `O_TRUNC` and `O_EXCL` apply to this first open only; `mode` is the permission
/// of a created file (Unix).
///
/// # Safety
/// `pager` is NULL or a live pager; `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn handoff_open(
    pager: *mut handoff_pager,
    path: *const c_char,
    flags: c_int,
    mode: c_int,
) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let pager = unsafe { self::pager(pager) }?;
        if path.is_null() {
            return invalid();
        }
        // SAFETY: NUL-terminated (the caller's contract).
        let path = path_of(unsafe { CStr::from_ptr(path) })?;
        let options = flags::options(flags, mode)?;
        let file = pager.pager.open(path, &options)?;
        pager.files.insert(file)
    })
}

/// Closes a virtual descriptor (pinned or not), and reports an error kept from closing its
/// real descriptor at an earlier eviction.
///
/// # Safety
/// `pager` is NULL or a live pager.
#[no_mangle]
pub unsafe extern "C" fn handoff_close(pager: *mut handoff_pager, vfd: c_int) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let file = unsafe { self::pager(pager) }?.files.remove(vfd)?;
        let file: VirtualFile = match file {
            File::Open(file) => file,
            File::Pinned(pinned) => pinned.unpin(),
            File::Closed => return Err(Errno(libc::EBADF)),
        };
        file.close()?;
        Ok(0)
    })
}

/// Reads at the cursor, and moves it (a pinned descriptor: `read` on it).
///
/// # Safety
/// `pager` is NULL or a live pager; `buf` is valid for writes of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn handoff_read(
    pager: *mut handoff_pager,
    vfd: c_int,
    buf: *mut c_void,
    len: usize,
) -> i64 {
    call(-1, || {
        // SAFETY: the caller's contract.
        let buf = unsafe { bytes_mut(buf, len) }?;
        // SAFETY: the caller's contract.
        unsafe {
            with_file(pager, vfd, |file| match file {
                File::Open(file) => count((&mut &*file).read(buf)? as u64),
                // SAFETY: pinned while the slot is held shared.
                File::Pinned(pinned) => crt::read(pinned.crt_fd(), buf),
                File::Closed => unreachable!(),
            })
        }
    })
}

/// Writes at the cursor (at the end with `O_APPEND`), and moves it.
///
/// # Safety
/// `pager` is NULL or a live pager; `buf` is valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn handoff_write(
    pager: *mut handoff_pager,
    vfd: c_int,
    buf: *const c_void,
    len: usize,
) -> i64 {
    call(-1, || {
        // SAFETY: the caller's contract.
        let buf = unsafe { bytes(buf, len) }?;
        // SAFETY: the caller's contract.
        unsafe {
            with_file(pager, vfd, |file| match file {
                File::Open(file) => count((&mut &*file).write(buf)? as u64),
                // SAFETY: pinned while the slot is held shared.
                File::Pinned(pinned) => crt::write(pinned.crt_fd(), buf),
                File::Closed => unreachable!(),
            })
        }
    })
}

/// Reads at `offset` without using or moving the cursor.
///
/// # Safety
/// `pager` is NULL or a live pager; `buf` is valid for writes of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn handoff_pread(
    pager: *mut handoff_pager,
    vfd: c_int,
    buf: *mut c_void,
    len: usize,
    offset: i64,
) -> i64 {
    call(-1, || {
        // SAFETY: the caller's contract.
        let buf = unsafe { bytes_mut(buf, len) }?;
        let offset = self::offset(offset)?;
        // SAFETY: the caller's contract.
        unsafe {
            with_file(pager, vfd, |file| match file {
                File::Open(file) => count(file.read_at(buf, offset)? as u64),
                File::Pinned(pinned) => count(pinned.read_at(buf, offset)? as u64),
                File::Closed => unreachable!(),
            })
        }
    })
}

/// Writes at `offset` without using or moving the cursor (on Linux, a file opened with
/// `O_APPEND` appends, as `pwrite(2)` does).
///
/// # Safety
/// `pager` is NULL or a live pager; `buf` is valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn handoff_pwrite(
    pager: *mut handoff_pager,
    vfd: c_int,
    buf: *const c_void,
    len: usize,
    offset: i64,
) -> i64 {
    call(-1, || {
        // SAFETY: the caller's contract.
        let buf = unsafe { bytes(buf, len) }?;
        let offset = self::offset(offset)?;
        // SAFETY: the caller's contract.
        unsafe {
            with_file(pager, vfd, |file| match file {
                File::Open(file) => count(file.write_at(buf, offset)? as u64),
                File::Pinned(pinned) => count(pinned.write_at(buf, offset)? as u64),
                File::Closed => unreachable!(),
            })
        }
    })
}

/// Moves the cursor (`SEEK_SET`, `SEEK_CUR`, `SEEK_END`); returns the new position.
///
/// # Safety
/// `pager` is NULL or a live pager.
#[no_mangle]
pub unsafe extern "C" fn handoff_lseek(
    pager: *mut handoff_pager,
    vfd: c_int,
    offset: i64,
    whence: c_int,
) -> i64 {
    call(-1, || {
        let position = match whence {
            libc::SEEK_SET => SeekFrom::Start(self::offset(offset)?),
            libc::SEEK_CUR => SeekFrom::Current(offset),
            libc::SEEK_END => SeekFrom::End(offset),
            _ => return invalid(),
        };
        // SAFETY: the caller's contract.
        unsafe {
            with_file(pager, vfd, |file| match file {
                File::Open(file) => count((&mut &*file).seek(position)?),
                // SAFETY: pinned while the slot is held shared.
                File::Pinned(pinned) => crt::lseek(pinned.crt_fd(), offset, whence),
                File::Closed => unreachable!(),
            })
        }
    })
}

/// Lends a real C-runtime descriptor, positioned at the cursor, until `handoff_unpin`: it is
/// never paged out meanwhile. Do not close it. `EBUSY` if already pinned; `EDEADLK` if this
/// thread's own pins hold the whole budget (no descriptor could ever be freed for it).
///
/// # Safety
/// `pager` is NULL or a live pager.
#[no_mangle]
pub unsafe extern "C" fn handoff_pin(pager: *mut handoff_pager, vfd: c_int) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let slot = unsafe { self::pager(pager) }?.files.get(vfd)?;
        let mut file = files::write(&slot);
        match std::mem::replace(&mut *file, File::Closed) {
            File::Open(open) => match open.into_pinned() {
                Ok(pinned) => {
                    let fd = pinned.crt_fd();
                    *file = File::Pinned(pinned);
                    Ok(fd)
                }
                Err((error, open)) => {
                    *file = File::Open(open);
                    Err(error.into())
                }
            },
            File::Pinned(pinned) => {
                *file = File::Pinned(pinned);
                Err(Errno(libc::EBUSY))
            }
            File::Closed => Err(Errno(libc::EBADF)),
        }
    })
}

/// Gives a pinned descriptor back: the cursor takes its offset. `EINVAL` if not pinned.
///
/// # Safety
/// `pager` is NULL or a live pager.
#[no_mangle]
pub unsafe extern "C" fn handoff_unpin(pager: *mut handoff_pager, vfd: c_int) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let slot = unsafe { self::pager(pager) }?.files.get(vfd)?;
        let mut file = files::write(&slot);
        match std::mem::replace(&mut *file, File::Closed) {
            File::Pinned(pinned) => {
                *file = File::Open(pinned.unpin());
                Ok(0)
            }
            File::Open(open) => {
                *file = File::Open(open);
                invalid()
            }
            File::Closed => Err(Errno(libc::EBADF)),
        }
    })
}

/// Flushes data and metadata to the device (`fsync`).
///
/// # Safety
/// `pager` is NULL or a live pager.
#[no_mangle]
pub unsafe extern "C" fn handoff_fsync(pager: *mut handoff_pager, vfd: c_int) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        unsafe {
            with_file(pager, vfd, |file| {
                match file {
                    File::Open(file) => file.sync_all()?,
                    File::Pinned(pinned) => pinned.sync_all()?,
                    File::Closed => unreachable!(),
                }
                Ok(0)
            })
        }
    })
}

/// Truncates or extends the file to `length` bytes; the cursor does not move.
///
/// # Safety
/// `pager` is NULL or a live pager.
#[no_mangle]
pub unsafe extern "C" fn handoff_ftruncate(
    pager: *mut handoff_pager,
    vfd: c_int,
    length: i64,
) -> c_int {
    call(-1, || {
        let length = offset(length)?;
        // SAFETY: the caller's contract.
        unsafe {
            with_file(pager, vfd, |file| {
                match file {
                    File::Open(file) => file.set_len(length)?,
                    File::Pinned(pinned) => pinned.set_len(length)?,
                    File::Closed => unreachable!(),
                }
                Ok(0)
            })
        }
    })
}

/// The file's size in bytes (`fstat`'s `st_size`).
///
/// # Safety
/// `pager` is NULL or a live pager.
#[no_mangle]
pub unsafe extern "C" fn handoff_size(pager: *mut handoff_pager, vfd: c_int) -> i64 {
    call(-1, || {
        // SAFETY: the caller's contract.
        unsafe {
            with_file(pager, vfd, |file| match file {
                File::Open(file) => count(file.metadata()?.len()),
                File::Pinned(pinned) => count(pinned.metadata()?.len()),
                File::Closed => unreachable!(),
            })
        }
    })
}
