//! [`CStream`]: one owned C `FILE*`.

use std::ffi::c_int;
use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use super::{sys, Access, BorrowedOsHandle, CrtFd};

/// Owns one C stream (`FILE*`) and closes it exactly once (`fclose`, which also closes its
/// descriptor and, on Windows, the descriptor's `HANDLE`).
///
/// [`io::Write`] and [`io::Read`] go through the stream's buffer (`fwrite`/`fread`), so C code
/// that is given [`as_ptr`](Self::as_ptr) sees the bytes in order with Rust's. A failed
/// `fwrite`/`fread` leaves the position unspecified (as in C) and is reported as an error,
/// never as a short count.
///
/// ```
/// use std::io::{Read, Seek, Write};
/// use handoff::crt::{Access, AsOsHandle, CStream};
///
/// let mut file = tempfile::tempfile()?;
/// let mut stream = CStream::dup_from(file.as_os_handle(), Access::Write)?;
/// stream.write_all(b"through stdio")?;
/// stream.close()?; // fclose: flushes, reports a failed flush, closes the duplicate
///
/// file.rewind()?;
/// let mut s = String::new();
/// file.read_to_string(&mut s)?;
/// assert_eq!(s, "through stdio");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct CStream {
    file: NonNull<libc::FILE>,
}

// SAFETY: `CStream` is the only owner of its `FILE*`; glibc, musl, the BSD libcs and the Windows
// C runtimes lock each stream internally, so moving the owner to another thread is sound.
unsafe impl Send for CStream {}

impl CStream {
    /// Opens a stream on a descriptor, which it then owns (`fdopen` / `_fdopen`).
    ///
    /// On error `fd` is closed.
    ///
    /// # Errors
    ///
    /// No stream left (Windows: `_getmaxstdio` streams are open; recognised by
    /// [`limits::is_out_of_descriptors`](crate::limits::is_out_of_descriptors)), out of memory.
    ///
    /// # References
    /// - [`fdopen`](https://man7.org/linux/man-pages/man3/fdopen.3.html),
    ///   [`_fdopen`](https://learn.microsoft.com/cpp/c-runtime-library/reference/fdopen-wfdopen)
    ///
    /// ```
    /// use std::io::Write;
    /// use handoff::crt::{Access, CStream, CrtFd, OsHandle};
    ///
    /// let handle: OsHandle = tempfile::tempfile()?.into();
    /// let fd = CrtFd::from_owned(handle, Access::Append)?;
    /// let mut stream = CStream::from_crt(fd, Access::Append)?;
    /// stream.write_all(b"appended")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_crt(fd: CrtFd, access: Access) -> io::Result<CStream> {
        sys::clear_errno();
        // SAFETY: `fd` is an open descriptor that we own and the mode is a valid C string.
        let file = unsafe { libc::fdopen(fd.as_raw(), access.stream_mode_c().as_ptr()) };
        match NonNull::new(file) {
            Some(file) => {
                // The stream owns the descriptor now.
                let _ = fd.into_raw();
                let stream = CStream { file };
                stream.announce(Some(c"handoff::crt::CStream"));
                Ok(stream)
            }
            None => Err(sys::fdopen_error()),
        }
    }

    /// A stream over the C runtime's own duplicate of a borrowed handle: the lender keeps its
    /// handle. [`CrtFd::dup_from`] then [`from_crt`](Self::from_crt).
    ///
    /// # Errors
    ///
    /// Those of [`CrtFd::dup_from`] and [`from_crt`](Self::from_crt).
    ///
    /// ```
    /// use std::io::Read;
    /// use handoff::crt::{Access, AsOsHandle, CStream};
    ///
    /// let file = tempfile::tempfile()?;
    /// let mut stream = CStream::dup_from(file.as_os_handle(), Access::Read)?;
    /// let mut buf = Vec::new();
    /// assert_eq!(stream.read_to_end(&mut buf)?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn dup_from(handle: BorrowedOsHandle<'_>, access: Access) -> io::Result<CStream> {
        CStream::from_crt(CrtFd::dup_from(handle, access)?, access)
    }

    /// Takes ownership of a raw `FILE*`.
    ///
    /// # Safety
    ///
    /// `file` must be an open stream of this process's C runtime that nothing else will close.
    ///
    /// ```
    /// use handoff::crt::{Access, AsOsHandle, CStream};
    ///
    /// let file = tempfile::tempfile()?;
    /// let raw = CStream::dup_from(file.as_os_handle(), Access::Read)?.into_raw();
    /// // SAFETY: `raw` came from `into_raw`; nothing else owns it.
    /// let stream = unsafe { CStream::from_raw(raw) };
    /// # drop(stream);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub unsafe fn from_raw(file: NonNull<libc::FILE>) -> CStream {
        let stream = CStream { file };
        stream.announce(Some(c"handoff::crt::CStream"));
        stream
    }

    /// Tells `handoff audit` (when it is watching) that this stream owns its descriptor and
    /// who holds the stream: a `CStream`, or with `None` C code it was handed to.
    fn announce(&self, holder: Option<&'static std::ffi::CStr>) {
        #[cfg(target_os = "linux")]
        crate::audit_tag::own_stream(self.fileno(), self.file.as_ptr(), holder);
        #[cfg(not(target_os = "linux"))]
        let _ = holder;
    }

    /// Lends the `FILE*` to a C call that does not close it.
    ///
    /// ```
    /// use handoff::crt::{Access, AsOsHandle, CStream};
    ///
    /// let file = tempfile::tempfile()?;
    /// let stream = CStream::dup_from(file.as_os_handle(), Access::Write)?;
    /// // SAFETY: the stream stays open for the call, which does not close it.
    /// let n = unsafe { libc::fwrite(b"c".as_ptr().cast(), 1, 1, stream.as_ptr()) };
    /// assert_eq!(n, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn as_ptr(&self) -> *mut libc::FILE {
        self.file.as_ptr()
    }

    /// Gives the `FILE*` to a C call that closes it: `self` will not.
    ///
    /// ```
    /// use handoff::crt::{Access, AsOsHandle, CStream};
    ///
    /// let file = tempfile::tempfile()?;
    /// let raw = CStream::dup_from(file.as_os_handle(), Access::Write)?.into_raw();
    /// // SAFETY: we own `raw` and close it once.
    /// assert_eq!(unsafe { libc::fclose(raw.as_ptr()) }, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_raw(self) -> NonNull<libc::FILE> {
        self.announce(None);
        ManuallyDrop::new(self).file
    }

    /// The descriptor under the stream (`fileno`), lent for as long as the stream is open.
    ///
    /// ```
    /// use handoff::crt::{Access, AsOsHandle, CStream};
    ///
    /// let file = tempfile::tempfile()?;
    /// let stream = CStream::dup_from(file.as_os_handle(), Access::Read)?;
    /// assert!(stream.fileno() >= 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn fileno(&self) -> c_int {
        // SAFETY: `self.file` is an open stream that we own.
        unsafe { libc::fileno(self.file.as_ptr()) }
    }

    /// Flushes and closes the stream (`fclose`), reporting a failed flush or close: buffered
    /// data that could not be written is never lost silently. The stream is closed either way.
    ///
    /// # Errors
    ///
    /// The error of the final write or of closing the descriptor (`ENOSPC`, `EPIPE`, ...).
    ///
    /// ```
    /// use std::io::Write;
    /// use handoff::crt::{Access, AsOsHandle, CStream};
    ///
    /// let file = tempfile::tempfile()?;
    /// let mut stream = CStream::dup_from(file.as_os_handle(), Access::Write)?;
    /// stream.write_all(b"buffered")?;
    /// stream.close()?;
    /// assert_eq!(file.metadata()?.len(), 8);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(mut self) -> io::Result<()> {
        // Flush first and keep that error: `fclose` must report a failed final flush, but
        // Wine's msvcrt returns 0 for it (it tests the error flag from before the flush).
        let flushed = io::Write::flush(&mut self);
        let file = self.into_raw();
        sys::clear_errno();
        // SAFETY: we own `file`; after `fclose` it is gone whatever the result.
        let closed = if unsafe { libc::fclose(file.as_ptr()) } == 0 {
            Ok(())
        } else {
            Err(sys::last_crt_error())
        };
        flushed.and(closed)
    }

    /// Turns the stream's sticky error flag into an `io::Error`, clearing it so that the stream
    /// stays usable after the caller has seen the error.
    fn take_error(&mut self) -> Option<io::Error> {
        // SAFETY: `self.file` is an open stream that we own.
        if unsafe { libc::ferror(self.file.as_ptr()) } == 0 {
            return None;
        }
        let error = sys::last_crt_error();
        // SAFETY: as above.
        unsafe { sys::clearerr(self.file.as_ptr()) };
        Some(error)
    }
}

impl io::Write for CStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        sys::clear_errno();
        // SAFETY: `buf` is valid for `buf.len()` bytes; `self.file` is open and ours.
        let n = unsafe { libc::fwrite(buf.as_ptr().cast(), 1, buf.len(), self.file.as_ptr()) };
        if n < buf.len() {
            return Err(self.take_error().unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::WriteZero, "fwrite wrote short")
            }));
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        sys::clear_errno();
        // SAFETY: `self.file` is open and ours.
        if unsafe { libc::fflush(self.file.as_ptr()) } == 0 {
            Ok(())
        } else {
            Err(self.take_error().unwrap_or_else(sys::last_crt_error))
        }
    }
}

impl io::Read for CStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        sys::clear_errno();
        // SAFETY: `buf` is valid for `buf.len()` bytes; `self.file` is open and ours.
        let n = unsafe { libc::fread(buf.as_mut_ptr().cast(), 1, buf.len(), self.file.as_ptr()) };
        if n == 0 {
            if let Some(error) = self.take_error() {
                return Err(error);
            }
            // End of file. Clear the sticky end-of-file state so that a later read sees data
            // appended since, as `read(2)` would.
            // SAFETY: `self.file` is open and ours.
            unsafe { sys::clear_eof(self.file.as_ptr()) };
        }
        Ok(n)
    }
}

impl Drop for CStream {
    fn drop(&mut self) {
        // The error has nowhere to go here; `close()` reports it.
        // SAFETY: we own `self.file` and close it once.
        unsafe { libc::fclose(self.file.as_ptr()) };
    }
}

impl fmt::Debug for CStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CStream")
            .field("file", &self.file)
            .field("fileno", &self.fileno())
            .finish()
    }
}
