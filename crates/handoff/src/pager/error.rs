//! [`PageInError`]: why an operation on a virtual file failed for a reason of the pager's own
//! (not the operation's), as a value code can match on.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The payload of an [`io::Error`] that the pager itself caused: the file could not be paged
/// in again, an error was kept from closing its descriptor at an eviction, or waiting for a
/// descriptor could never end. Reach it with [`io::Error::get_ref`] and
/// `downcast_ref` of [`dyn Error`](std::error::Error) (or [`PageInError::of`]); the
/// `io::Error`'s [`kind`](io::Error::kind) is as stable as the payload's
/// [`kind`](PageInError::kind) (see [`PageInErrorKind`]).
///
/// ```
/// # #[cfg(unix)] {
/// use handoff::pager::{OpenOptions, PageInError, PageInErrorKind, Pager};
///
/// let dir = tempfile::tempdir()?;
/// let pager = Pager::new(1);
/// let mut options = OpenOptions::new();
/// options.read(true).write(true).create(true);
/// let a = pager.open(dir.path().join("a"), &options)?;
/// let _b = pager.open(dir.path().join("b"), &options)?; // a is paged out (budget 1)
/// std::fs::rename(dir.path().join("a"), dir.path().join("moved"))?;
///
/// let error = a.read_at(&mut [0; 1], 0).unwrap_err();
/// assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
/// let why = PageInError::of(&error).expect("the pager's own error");
/// assert_eq!(why.kind(), PageInErrorKind::Removed);
/// assert_eq!(why.path(), Some(dir.path().join("a").as_path()));
/// assert_eq!(why.raw_os_error(), Some(libc::ENOENT));
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct PageInError {
    kind: PageInErrorKind,
    path: Option<PathBuf>,
    source: Option<io::Error>,
}

/// What went wrong, for [`PageInError::kind`]. New kinds may be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PageInErrorKind {
    /// The path names no file any more: renamed or removed while paged out.
    /// (`io::ErrorKind::NotFound`; counted in `Stats::identity_failures`.)
    Removed,
    /// Another file is at the path now (replaced, or a symlink swapped) while paged out;
    /// nothing was read from or written to it. (`NotFound`; counted in
    /// `Stats::identity_failures`.)
    Replaced,
    /// Reopening was refused: permissions are checked again at every page-in.
    /// (`PermissionDenied`.)
    AccessRefused,
    /// Reopening, or checking the reopened file, failed otherwise (the OS error is the
    /// source).
    Reopen,
    /// Closing the file's descriptor at an earlier eviction failed (some file systems report
    /// a failed write only there); this operation did not run. Reported once.
    KeptCloseError,
    /// Waiting for a descriptor could never end: only the calling thread's own `with_fd`
    /// pins (and files that cannot be paged out) could free one. (`Deadlock`.)
    Deadlock,
}

impl PageInError {
    pub(super) fn new(
        kind: PageInErrorKind,
        path: Option<&Path>,
        source: Option<io::Error>,
    ) -> PageInError {
        PageInError {
            kind,
            path: path.map(Path::to_path_buf),
            source,
        }
    }

    /// The payload of `error`, if the pager put one there.
    pub fn of(error: &io::Error) -> Option<&PageInError> {
        error.get_ref()?.downcast_ref()
    }

    /// What went wrong.
    pub fn kind(&self) -> PageInErrorKind {
        self.kind
    }

    /// The path the file was opened with (for the reopen kinds; Unix).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The OS error underneath, if there is one (`ENOENT`, `EACCES`, the close's `EIO`, ...).
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.as_ref()?.raw_os_error()
    }

    /// Whether the file at the path is not the virtual file's any more (removed or replaced).
    pub fn is_identity_failure(&self) -> bool {
        matches!(
            self.kind,
            PageInErrorKind::Removed | PageInErrorKind::Replaced
        )
    }

    /// The `io::ErrorKind` this error is reported with.
    pub(super) fn io_kind(&self) -> io::ErrorKind {
        match self.kind {
            PageInErrorKind::Removed | PageInErrorKind::Replaced => io::ErrorKind::NotFound,
            PageInErrorKind::AccessRefused => io::ErrorKind::PermissionDenied,
            PageInErrorKind::Deadlock => io::ErrorKind::Deadlock,
            PageInErrorKind::Reopen | PageInErrorKind::KeptCloseError => self
                .source
                .as_ref()
                .map_or(io::ErrorKind::Other, io::Error::kind),
        }
    }
}

impl From<PageInError> for io::Error {
    fn from(error: PageInError) -> io::Error {
        io::Error::new(error.io_kind(), error)
    }
}

impl fmt::Display for PageInError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}: ", path.display())?;
        }
        f.write_str(match self.kind {
            PageInErrorKind::Removed => "renamed or removed while the virtual file was paged out",
            PageInErrorKind::Replaced => {
                "another file is at this path now (replaced, or a symlink swapped, while the \
                 virtual file was paged out); nothing was read or written"
            }
            PageInErrorKind::AccessRefused => {
                "access refused at reopen (permissions are checked again at every page-in)"
            }
            PageInErrorKind::Reopen => "cannot be reopened to page the virtual file in",
            PageInErrorKind::KeptCloseError => {
                "closing the virtual file's descriptor at an earlier eviction failed"
            }
            PageInErrorKind::Deadlock => "waiting for a descriptor could never end",
        })?;
        match &self.source {
            Some(source) => write!(f, " ({source})"),
            None => Ok(()),
        }
    }
}

impl Error for PageInError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_ref().map(|error| error as _)
    }
}
