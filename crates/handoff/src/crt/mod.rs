//! C-runtime descriptors and streams that are closed exactly once.
//!
//! C code names files by a C-runtime descriptor (an `int`) or a stream (`FILE*`), and many C
//! functions *take ownership* of what they are given: `_open_osfhandle`, `fdopen`, `gzdopen`,
//! `archive_read_open_fd` close it when they are done. Rust code names files by an OS handle
//! ([`OwnedFd`](https://doc.rust-lang.org/std/os/fd/struct.OwnedFd.html) on Unix, [`OwnedHandle`](https://doc.rust-lang.org/std/os/windows/io/struct.OwnedHandle.html)
//! on Windows), often *borrowed* from a library that stays its owner. Giving a borrowed handle to
//! a taker closes it twice. This module gives each owner its own handle:
//!
//! | you have | the taker wants | call |
//! |---|---|---|
//! | an owned OS handle you give away | a C descriptor | [`CrtFd::from_owned`] |
//! | a borrowed OS handle (the lender keeps it) | a C descriptor | [`CrtFd::dup_from`] |
//! | a C descriptor you own | an OS handle it will close | [`CrtFd::try_clone_os`] / [`CrtFd::into_os`] |
//! | a borrowed OS handle | a `FILE*` | [`CStream::dup_from`] |
//!
//! On Unix the C-runtime descriptor *is* the kernel fd and a duplicate is
//! `fcntl(F_DUPFD_CLOEXEC)`. On Windows it is a slot in the C runtime's own table (2048 slots in
//! msvcrt.dll, 8192 in the UCRT) that wraps a `HANDLE`; a duplicate is `DuplicateHandle`, and
//! `_close` closes the `HANDLE` too.
//!
//! # Errors
//!
//! Failures are [`io::Error`](std::io::Error)s that keep the OS error code. On Windows the C
//! runtime reports `errno` values, which are mapped to the Win32 code of the same meaning (a full
//! descriptor table, `EMFILE`/`ENFILE`, becomes `ERROR_TOO_MANY_OPEN_FILES`), so that
//! [`raw_os_error`](std::io::Error::raw_os_error) and [`kind`](std::io::Error::kind) mean the same
//! thing everywhere; [`limits::is_out_of_descriptors`](crate::limits::is_out_of_descriptors)
//! recognises a full table on every platform. No call can reach the Windows C runtime's
//! invalid-parameter handler: every descriptor handed to it is one this module owns.

mod fd;
mod stream;

#[cfg(unix)]
#[path = "unix.rs"]
mod sys;
#[cfg(windows)]
#[path = "windows.rs"]
mod sys;

pub use fd::CrtFd;
pub use stream::CStream;

/// An owned OS handle: [`OwnedFd`](https://doc.rust-lang.org/std/os/fd/struct.OwnedFd.html) on Unix.
#[cfg(unix)]
pub type OsHandle = std::os::fd::OwnedFd;
/// An owned OS handle: [`OwnedHandle`](https://doc.rust-lang.org/std/os/windows/io/struct.OwnedHandle.html) on Windows.
#[cfg(windows)]
pub type OsHandle = std::os::windows::io::OwnedHandle;

/// A borrowed OS handle: [`BorrowedFd`](https://doc.rust-lang.org/std/os/fd/struct.BorrowedFd.html) on Unix.
#[cfg(unix)]
pub type BorrowedOsHandle<'a> = std::os::fd::BorrowedFd<'a>;
/// A borrowed OS handle: [`BorrowedHandle`](https://doc.rust-lang.org/std/os/windows/io/struct.BorrowedHandle.html) on Windows.
#[cfg(windows)]
pub type BorrowedOsHandle<'a> = std::os::windows::io::BorrowedHandle<'a>;

/// Borrows the OS handle of anything that has one, with the same name on every platform.
///
/// Implemented for every [`AsFd`](https://doc.rust-lang.org/std/os/fd/trait.AsFd.html) type on Unix and every
/// [`AsHandle`](https://doc.rust-lang.org/std/os/windows/io/trait.AsHandle.html) type on Windows, so portable code can write
/// `file.as_os_handle()` where it would otherwise write `as_fd()` or `as_handle()`.
///
/// ```
/// use handoff::crt::{AsOsHandle, Access, CrtFd};
///
/// let file = tempfile::tempfile()?;
/// let fd = CrtFd::dup_from(file.as_os_handle(), Access::ReadWrite)?;
/// # drop(fd);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait AsOsHandle {
    /// Borrows the handle; the borrow never closes it.
    fn as_os_handle(&self) -> BorrowedOsHandle<'_>;
}

#[cfg(unix)]
impl<T: std::os::fd::AsFd + ?Sized> AsOsHandle for T {
    fn as_os_handle(&self) -> BorrowedOsHandle<'_> {
        self.as_fd()
    }
}

#[cfg(windows)]
impl<T: std::os::windows::io::AsHandle + ?Sized> AsOsHandle for T {
    fn as_os_handle(&self) -> BorrowedOsHandle<'_> {
        self.as_handle()
    }
}

/// How the C runtime will use a descriptor or stream.
///
/// | variant | Windows descriptor flags | stream mode |
/// |---|---|---|
/// | `Read` | `_O_RDONLY` | `"rb"` |
/// | `Write` | `_O_WRONLY` | `"wb"` (never truncates: `fdopen` does not) |
/// | `ReadWrite` | `_O_RDWR` | `"r+b"` |
/// | `Append` | `_O_WRONLY \| _O_APPEND` | `"ab"` |
///
/// Windows descriptors are always opened `_O_BINARY | _O_NOINHERIT`: no newline translation,
/// and not inherited by `_spawn`ed children (on Unix, duplicates carry `FD_CLOEXEC`).
///
/// `Append` makes every C-runtime write go to the end of the file. On Unix that is the
/// `O_APPEND` status flag, which belongs to the *open file description*: a lender that shares
/// it through [`CrtFd::dup_from`] appends too from then on (glibc's `fdopen(fd, "a")` sets the
/// same flag). On Windows it is a flag of the C-runtime slot only.
///
/// The access is not checked against how the handle was opened: a `Write` descriptor over a
/// read-only handle fails at the first write, with the OS error.
///
/// ```
/// use handoff::crt::Access;
/// assert_eq!(Access::Append.stream_mode(), "ab");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Reading only.
    Read,
    /// Writing only, at the current position.
    Write,
    /// Reading and writing.
    ReadWrite,
    /// Writing only, always at the end of the file.
    Append,
}

impl Access {
    /// The `fopen`-style mode string a stream of this access is opened with (always binary).
    ///
    /// ```
    /// use handoff::crt::Access;
    /// assert_eq!(Access::ReadWrite.stream_mode(), "r+b");
    /// ```
    pub fn stream_mode(self) -> &'static str {
        self.stream_mode_c()
            .to_str()
            .expect("mode strings are ASCII")
    }

    fn stream_mode_c(self) -> &'static std::ffi::CStr {
        match self {
            Access::Read => c"rb",
            Access::Write => c"wb",
            Access::ReadWrite => c"r+b",
            Access::Append => c"ab",
        }
    }
}
