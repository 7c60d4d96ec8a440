//! [`CrtFd`]: one owned C-runtime descriptor.

use std::ffi::c_int;
use std::fmt;
use std::io;
use std::mem::ManuallyDrop;

use super::{sys, Access, BorrowedOsHandle, OsHandle};

/// Owns one C-runtime descriptor, the `int` that C functions take, and closes it exactly once.
///
/// On Unix it is the kernel fd. On Windows it is a slot in the C runtime's descriptor table that
/// owns a `HANDLE`: closing the slot (`_close`) closes the handle too.
///
/// | method | ownership |
/// |---|---|
/// | [`from_owned`](Self::from_owned) | an owned OS handle moves into the C runtime |
/// | [`dup_from`](Self::dup_from) | the C runtime gets its own duplicate; the lender keeps its handle |
/// | [`as_raw`](Self::as_raw) | lends the `int` to a C call that does not close it |
/// | [`into_raw`](Self::into_raw) | gives the `int` to a C call that closes it |
/// | [`as_fd`](https://doc.rust-lang.org/std/os/fd/trait.AsFd.html#tymethod.as_fd) / [`as_handle`](https://doc.rust-lang.org/std/os/windows/io/trait.AsHandle.html#tymethod.as_handle) | borrows the OS handle for as long as `self` lives |
/// | [`try_clone_os`](Self::try_clone_os) | a duplicate OS handle that another owner may close |
/// | [`into_os`](Self::into_os) | takes the OS handle out; the C-runtime slot is closed |
///
/// ```
/// use std::io::{Read, Seek};
/// use handoff::crt::{Access, AsOsHandle, CrtFd};
///
/// // A library lends its file; a C function would take ownership of the descriptor it is given.
/// let mut file = tempfile::tempfile()?;
/// let fd = CrtFd::dup_from(file.as_os_handle(), Access::Write)?;
/// let raw = fd.into_raw(); // give the duplicate away: the taker closes it, once
/// # let n = unsafe { libc::write(raw, b"hi".as_ptr().cast(), 2) };
/// # assert_eq!(n, 2);
/// # unsafe { libc::close(raw) };
///
/// // The lender's handle is untouched and still works.
/// file.rewind()?;
/// let mut s = String::new();
/// file.read_to_string(&mut s)?;
/// assert_eq!(s, "hi");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct CrtFd {
    raw: c_int,
}

impl CrtFd {
    /// Gives an owned OS handle to the C runtime (Windows: `_open_osfhandle`; Unix: the fd is
    /// the descriptor).
    ///
    /// On error the handle is closed. `access` says how C code will use the descriptor (see
    /// [`Access`]; `Append` sets append mode).
    ///
    /// # Errors
    ///
    /// A full descriptor table on Windows (recognised by
    /// [`limits::is_out_of_descriptors`](crate::limits::is_out_of_descriptors)); a handle that is
    /// not a file, pipe or device on Windows (`ERROR_INVALID_HANDLE`); on Unix, `Append` on a
    /// descriptor whose flags cannot be changed.
    ///
    /// # References
    /// - [`_open_osfhandle`](https://learn.microsoft.com/cpp/c-runtime-library/reference/open-osfhandle)
    /// - [`fcntl(F_SETFL)`](https://man7.org/linux/man-pages/man2/fcntl.2.html)
    ///
    /// ```
    /// use handoff::crt::{Access, CrtFd, OsHandle};
    ///
    /// let handle: OsHandle = tempfile::tempfile()?.into();
    /// let fd = CrtFd::from_owned(handle, Access::ReadWrite)?;
    /// assert!(fd.as_raw() >= 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_owned(handle: OsHandle, access: Access) -> io::Result<CrtFd> {
        Ok(CrtFd {
            raw: sys::open_crt(handle, access)?,
        })
    }

    /// Gives the C runtime its own duplicate of a borrowed handle; the lender keeps its handle
    /// and closes it itself (Windows: `DuplicateHandle` + `_open_osfhandle`; Unix:
    /// `fcntl(F_DUPFD_CLOEXEC)`).
    ///
    /// The duplicate shares the file position with the lender's handle (one open file
    /// description / kernel file object).
    ///
    /// # Errors
    ///
    /// A handle value that is not open (Unix `EBADF`, Windows `ERROR_INVALID_HANDLE`), no
    /// descriptor left (recognised by
    /// [`limits::is_out_of_descriptors`](crate::limits::is_out_of_descriptors)), and the errors
    /// of [`from_owned`](Self::from_owned).
    ///
    /// # References
    /// - [`DuplicateHandle`](https://learn.microsoft.com/windows/win32/api/handleapi/nf-handleapi-duplicatehandle)
    /// - [`fcntl(F_DUPFD_CLOEXEC)`](https://man7.org/linux/man-pages/man2/fcntl.2.html)
    ///
    /// ```
    /// use handoff::crt::{Access, AsOsHandle, CrtFd};
    ///
    /// let file = tempfile::tempfile()?;
    /// let fd = CrtFd::dup_from(file.as_os_handle(), Access::Read)?;
    /// drop(fd); // closes the duplicate only
    /// assert!(file.metadata().is_ok());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn dup_from(handle: BorrowedOsHandle<'_>, access: Access) -> io::Result<CrtFd> {
        CrtFd::from_owned(handle.try_clone_to_owned()?, access)
    }

    /// Takes ownership of a raw C-runtime descriptor.
    ///
    /// # Safety
    ///
    /// `raw` must be an open C-runtime descriptor that nothing else will close, and on Windows it
    /// must have an OS handle (`_get_osfhandle(raw)` is a real handle, not `-2`).
    ///
    /// ```
    /// use handoff::crt::{Access, AsOsHandle, CrtFd};
    ///
    /// let file = tempfile::tempfile()?;
    /// let raw = CrtFd::dup_from(file.as_os_handle(), Access::Read)?.into_raw();
    /// // SAFETY: `raw` came from `into_raw` and nothing else owns it.
    /// let fd = unsafe { CrtFd::from_raw(raw) };
    /// assert_eq!(fd.as_raw(), raw);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub unsafe fn from_raw(raw: c_int) -> CrtFd {
        CrtFd { raw }
    }

    /// Lends the descriptor to a C call that does not close it.
    ///
    /// ```
    /// use handoff::crt::{Access, AsOsHandle, CrtFd};
    ///
    /// let file = tempfile::tempfile()?;
    /// let fd = CrtFd::dup_from(file.as_os_handle(), Access::Write)?;
    /// // SAFETY: `fd` stays open for the call; `write` does not close it.
    /// let n = unsafe { libc::write(fd.as_raw(), b"x".as_ptr().cast(), 1) };
    /// assert_eq!(n, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn as_raw(&self) -> c_int {
        self.raw
    }

    /// Gives the descriptor to a C call that closes it (`gzdopen`, `fdopen`, ...): `self` will not.
    ///
    /// ```
    /// use handoff::crt::{Access, AsOsHandle, CrtFd};
    ///
    /// let file = tempfile::tempfile()?;
    /// let raw = CrtFd::dup_from(file.as_os_handle(), Access::Write)?.into_raw();
    /// // SAFETY: `raw` is ours to close, once.
    /// assert_eq!(unsafe { libc::close(raw) }, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_raw(self) -> c_int {
        let raw = ManuallyDrop::new(self).raw;
        #[cfg(unix)]
        sys::disown(raw);
        raw
    }

    /// A new OS handle to the same file, for a library that will close it; `self` stays open
    /// (Windows: `DuplicateHandle(_get_osfhandle(fd))`; Unix: `fcntl(F_DUPFD_CLOEXEC)`).
    ///
    /// # Errors
    ///
    /// Out of handles or descriptors.
    ///
    /// ```
    /// use std::fs::File;
    /// use handoff::crt::{Access, AsOsHandle, CrtFd};
    ///
    /// let fd = CrtFd::dup_from(tempfile::tempfile()?.as_os_handle(), Access::ReadWrite)?;
    /// let file = File::from(fd.try_clone_os()?); // the File closes its own handle
    /// assert_eq!(file.metadata()?.len(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn try_clone_os(&self) -> io::Result<OsHandle> {
        self.borrow_os().try_clone_to_owned()
    }

    /// Takes the OS handle out and closes the C-runtime descriptor. Unix: the fd itself.
    /// Windows: a duplicate of the slot's handle, then `_close` of the slot (the C runtime has no
    /// call that releases a slot without closing its handle).
    ///
    /// # Errors
    ///
    /// Windows: out of handles (the descriptor is closed anyway), or `_close` failed (the
    /// duplicate is closed too, since a failed close may mean lost writes).
    ///
    /// ```
    /// use std::fs::File;
    /// use std::io::Write;
    /// use handoff::crt::{Access, AsOsHandle, CrtFd};
    ///
    /// let fd = CrtFd::dup_from(tempfile::tempfile()?.as_os_handle(), Access::Write)?;
    /// let mut file = File::from(fd.into_os()?);
    /// file.write_all(b"data")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_os(self) -> io::Result<OsHandle> {
        // SAFETY: `into_raw` gives up `self`'s open descriptor, which nothing else owns.
        unsafe { sys::into_os(self.into_raw()) }
    }

    /// Closes the descriptor and reports the error that `Drop` would ignore (some file systems
    /// report a failed write only at close).
    ///
    /// ```
    /// use handoff::crt::{Access, AsOsHandle, CrtFd};
    ///
    /// let fd = CrtFd::dup_from(tempfile::tempfile()?.as_os_handle(), Access::Read)?;
    /// fd.close()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(self) -> io::Result<()> {
        // SAFETY: `into_raw` gives up `self`'s open descriptor, which nothing else owns.
        unsafe { sys::close_crt(self.into_raw()) }
    }

    fn borrow_os(&self) -> BorrowedOsHandle<'_> {
        // SAFETY: `self.raw` is an open descriptor owned by `self`; the borrow cannot outlive it.
        unsafe { sys::borrow_os(self.raw) }
    }
}

impl Drop for CrtFd {
    fn drop(&mut self) {
        // Like `OwnedFd`, a close error here has nowhere to go; `close()` reports it.
        // SAFETY: `self` owns the open descriptor and is never used again after `drop`.
        let _ = unsafe { sys::close_crt(self.raw) };
    }
}

impl fmt::Debug for CrtFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrtFd").field("raw", &self.raw).finish()
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for CrtFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.borrow_os()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsHandle for CrtFd {
    fn as_handle(&self) -> std::os::windows::io::BorrowedHandle<'_> {
        self.borrow_os()
    }
}
