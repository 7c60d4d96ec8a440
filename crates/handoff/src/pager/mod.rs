//! Virtual descriptors: more open files than the operating system allows.
//!
//! A [`Pager`] hands out [`VirtualFile`]s, any number of them, while holding at most its
//! *budget* of real descriptors. Each virtual file is *resident* (it holds a real descriptor)
//! or *paged out*. Using a paged-out file pages it in, closing the least recently useful
//! resident one (a CLOCK, second-chance policy) if the budget is used up.
//!
//! **Unix backing: reopen.** Paging out closes the fd. Paging in reopens the path the file was
//! opened with (made absolute at the first open, so a later `chdir` does not matter), with the
//! same access, **minus** `create`, `truncate` and `create_new`, which apply once. Before any
//! byte is read or written, the reopened file's identity (device, inode, and birth time where
//! `statx` gives it) must equal the one recorded at the first open; otherwise the operation
//! fails with [`ErrorKind::NotFound`](std::io::ErrorKind::NotFound) and
//! [`Stats::identity_failures`] counts it. Reopens use `O_CLOEXEC | O_NOCTTY`.
//!
//! | while paged out, the file was | the next operation | [`PageInErrorKind`] |
//! |---|---|---|
//! | renamed or removed | fails: `NotFound`, "renamed or removed while ... paged out" (the OS error `ENOENT` is its `source`) | `Removed` |
//! | replaced by another file, or a symlink on its path swapped | fails: `NotFound`, "another file is at this path now"; that file is not touched | `Replaced` |
//! | `chmod`ed so that its access is refused | fails: `PermissionDenied` (source `EACCES`), until the permission is back | `AccessRefused` |
//!
//! Errors that are the pager's own (these, an error kept from a close at eviction, a
//! `Deadlock`) carry a [`PageInError`] that code can match on: [`PageInError::of`].
//!
//! Pipes, sockets, memfds and files unlinked while open cannot be reopened by path: they stay
//! resident for life and count against the budget. A file unlinked while resident is caught
//! at eviction (`st_nlink` is 0) and kept resident instead.
//!
//! **Windows backing: kernel handles.** A process may hold millions of `HANDLE`s but only
//! 2048 (msvcrt.dll) or 8192 (UCRT) C-runtime descriptors. Each virtual file keeps its
//! `HANDLE` for life (so it is never "paged out" in the Unix sense: renames and deletes do not
//! affect it), and Rust-side I/O goes through the handle without any descriptor. The budget
//! counts C-runtime descriptors: [`VirtualFile::with_crt_fd`] pages one in with
//! `DuplicateHandle` + `_open_osfhandle`, and eviction `_close`s only that duplicate. The file
//! position lives in the kernel file object, shared by the handle and every duplicate; the
//! virtual file's own cursor is set on the descriptor before C code runs and read back after,
//! as on Unix.
//!
//! **The budget is a hard ceiling**: whatever the number of threads, the pager never holds more
//! real descriptors than its budget. An operation *pins* its file for its duration (and
//! [`VirtualFile::with_fd`] for the closure's); a page-in that finds every resident file
//! pinned waits for one to be unpinned, and fails with
//! [`ErrorKind::Deadlock`](std::io::ErrorKind::Deadlock) instead if only the calling thread's
//! own pins could ever free one. Two threads that each hold pins with `with_fd` and wait for
//! more can still deadlock each other, as with any two locks: do not nest `with_fd` deeper
//! than the budget allows.
//!
//! **EMFILE/ENFILE from anywhere.** Other code in the process holds descriptors too. An open
//! that fails with either evicts one of the pager's descriptors and tries again; it fails only
//! when nothing is evictable.
//!
//! **Errors are never lost.** `close` can fail (NFS reports failed writes there). An error from
//! closing a descriptor at eviction is returned by the next operation on that virtual file, or
//! by [`VirtualFile::close`].
//!
//! ```
//! use std::io::Write;
//! use handoff::pager::{OpenOptions, Pager};
//!
//! let dir = tempfile::tempdir()?;
//! let pager = Pager::new(16); // at most 16 real descriptors
//! let mut options = OpenOptions::new();
//! options.write(true).create(true);
//! let mut files = Vec::new();
//! for i in 0..1000 {
//!     files.push(pager.open(dir.path().join(format!("{i}.txt")), &options)?);
//! }
//! for (i, file) in files.iter_mut().enumerate() {
//!     writeln!(file, "file {i}")?;
//! }
//! assert!(pager.stats().peak_resident <= 16);
//! assert_eq!(std::fs::read_to_string(dir.path().join("999.txt"))?, "file 999\n");
//! # Ok::<(), std::io::Error>(())
//! ```

mod backing;
mod budget;
mod clock;
mod cursor;
mod entry;
mod error;
mod file;
#[cfg(all(test, loom))]
mod loom;
mod options;
mod pinned;
mod slots;
mod stats;
mod sync;
mod table;
#[cfg(all(test, unix, not(loom)))]
mod tests;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as sys;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as sys;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use backing::{Backing as _, Opened};
pub use error::{PageInError, PageInErrorKind};
pub use file::VirtualFile;
use file::Writes;
pub use options::OpenOptions;
pub use pinned::PinnedFile;
pub use slots::Vfd;
pub use stats::Stats;

use crate::limits;
use table::Table;

/// A table of virtual descriptors over a budget of real ones. Cloning gives another handle to
/// the same table; it is `Send + Sync`.
///
/// ```
/// use handoff::pager::Pager;
///
/// let pager = Pager::new(64);
/// let clone = pager.clone();
/// std::thread::spawn(move || assert_eq!(clone.budget(), 64)).join().unwrap();
/// ```
#[derive(Clone)]
pub struct Pager {
    table: Arc<Table>,
}

impl fmt::Debug for Pager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pager")
            .field("budget", &self.budget())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Pager {
    /// A pager that holds at most `budget` real descriptors (at least 1).
    ///
    /// ```
    /// assert_eq!(handoff::pager::Pager::new(0).budget(), 1);
    /// ```
    pub fn new(budget: usize) -> Pager {
        Pager {
            table: Arc::new(Table::new(budget)),
        }
    }

    /// A pager whose budget is the descriptor limit less a reserve for the rest of the process
    /// (an eighth of the limit, at least 16 and at most 256 descriptors): on Unix the soft
    /// `RLIMIT_NOFILE` (call [`limits::raise`] first to use the hard
    /// limit), on Windows the C runtime's table (2048 − 256 = 1792 with msvcrt.dll).
    ///
    /// # Errors
    ///
    /// Reading the limit failed.
    ///
    /// ```
    /// let pager = handoff::pager::Pager::from_limit()?;
    /// let soft = handoff::limits::current()?.descriptors.soft;
    /// assert!((pager.budget() as u64) < soft);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_limit() -> io::Result<Pager> {
        let soft = crate::limits::current()?.descriptors.soft;
        let soft = usize::try_from(soft).unwrap_or(usize::MAX);
        let reserve = (soft / 8).clamp(16, 256);
        Ok(Pager::new(soft.saturating_sub(reserve)))
    }

    /// Opens a file as a virtual file. On Unix it starts resident (evicting another if the
    /// budget is used up); on Windows it holds only its handle until C code asks for a
    /// descriptor ([`VirtualFile::with_crt_fd`]).
    ///
    /// # Errors
    ///
    /// Those of [`std::fs::OpenOptions::open`]; [`ErrorKind::Deadlock`](io::ErrorKind::Deadlock)
    /// if no descriptor of the budget can ever be freed for it (see [`VirtualFile::with_fd`]).
    ///
    /// ```
    /// use handoff::pager::{OpenOptions, Pager};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let pager = Pager::new(4);
    /// let file = pager.open(dir.path().join("new"), OpenOptions::new().write(true).create_new(true))?;
    /// assert!(pager.open(dir.path().join("new"), OpenOptions::new().write(true).create_new(true)).is_err());
    /// # drop(file);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open(&self, path: impl AsRef<Path>, options: &OpenOptions) -> io::Result<VirtualFile> {
        let path = std::path::absolute(path)?;
        // The token for the descriptor the open leaves resident (given back on any error).
        let token = match sys::Backing::OPEN_IS_RESIDENT {
            true => Some(self.table.acquire()?),
            false => None,
        };
        let file = self.table.retry_evicting(
            || options.first_open().open(&path),
            limits::is_out_of_descriptors,
        )?;
        let metadata = file.metadata()?;
        let opened = sys::Backing::first_open(file, path, &metadata, options);
        self.install(opened, token)
    }

    /// Takes ownership of anything already open and makes it a virtual file (one signature
    /// on every platform: an [`OsHandle`](crate::crt::OsHandle)).
    ///
    /// - Unix: a regular file whose path can be found (Linux: `/proc/self/fd`) and still names
    ///   it is paged like any other, reopened with the fd's access mode; anything else (a pipe,
    ///   a socket, a memfd, an unlinked file) stays resident for life.
    /// - Windows: the handle is kept for life, and a C-runtime descriptor is paged in over a
    ///   duplicate when C code needs one ([`VirtualFile::with_crt_fd`]), opened read-write (the
    ///   handle's own access decides what C code may do).
    ///
    /// The cursor starts at the handle's file position.
    ///
    /// # Errors
    ///
    /// The handle's metadata cannot be read, or (Unix) no descriptor of the budget can ever
    /// be freed for it; the handle is closed.
    ///
    /// ```
    /// use handoff::pager::Pager;
    ///
    /// let pager = Pager::new(4);
    /// let file = pager.adopt(tempfile::tempfile()?.into())?;
    /// file.write_all_at(b"adopted", 0)?;
    /// let mut buf = [0; 7];
    /// file.read_exact_at(&mut buf, 0)?;
    /// assert_eq!(&buf, b"adopted");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::io::Read;
    /// use handoff::pager::Pager;
    ///
    /// let (reader, mut writer) = std::io::pipe()?;
    /// let pager = Pager::new(4);
    /// let mut pipe = pager.adopt(reader.into())?;
    /// std::io::Write::write_all(&mut writer, b"through a pipe")?;
    /// drop(writer);
    /// let mut text = String::new();
    /// pipe.read_to_string(&mut text)?;
    /// assert_eq!(text, "through a pipe");
    /// assert_eq!(pager.stats().permanent, 1);
    /// # }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn adopt(&self, handle: crate::crt::OsHandle) -> io::Result<VirtualFile> {
        let opened = sys::Backing::adopt(handle)?;
        let token = match opened.resident {
            Some(_) => Some(self.table.acquire()?), // on error, `opened` closes the handle
            None => None,
        };
        self.install(opened, token)
    }

    /// Publishes an opened file, with the token taken for its resident descriptor if it has
    /// one.
    fn install(
        &self,
        opened: Opened<sys::Reopen>,
        token: Option<budget::Token<'_>>,
    ) -> io::Result<VirtualFile> {
        let writes = Writes::of(opened.seekable, opened.append);
        let resident = match (opened.resident, token) {
            (Some(file), Some(token)) => Some((sys::Backing::into_descriptor(file), token)),
            (None, _) => None,
            (Some(_), None) => unreachable!("a resident descriptor without a token"),
        };
        let vfd = self
            .table
            .install(resident, opened.reopen, &opened.options)?;
        Ok(VirtualFile::new(
            Arc::clone(&self.table),
            vfd,
            writes,
            opened.cursor,
        ))
    }

    /// The most real descriptors the pager may hold.
    ///
    /// ```
    /// assert_eq!(handoff::pager::Pager::new(32).budget(), 32);
    /// ```
    pub fn budget(&self) -> usize {
        self.table.budget.budget()
    }

    /// Changes the budget (at least 1). A smaller budget evicts at once down to it; pinned files
    /// and files that cannot be paged out are not evicted, and new page-ins wait until the
    /// pager is within the new budget.
    ///
    /// ```
    /// # use handoff::pager::{OpenOptions, Pager};
    /// # let dir = tempfile::tempdir()?;
    /// let pager = Pager::new(8);
    /// let mut options = OpenOptions::new();
    /// options.write(true).create(true);
    /// let files: Vec<_> = (0..8).map(|i| pager.open(dir.path().join(i.to_string()), &options)).collect::<Result<_, _>>()?;
    /// for file in &files {
    ///     file.with_crt_fd(|_fd| ())?;
    /// }
    /// assert_eq!(pager.resident(), 8);
    /// pager.set_budget(2);
    /// assert_eq!(pager.resident(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_budget(&self, budget: usize) {
        self.table.set_budget(budget);
    }

    /// Real descriptors held now.
    ///
    /// ```
    /// assert_eq!(handoff::pager::Pager::new(8).resident(), 0);
    /// ```
    pub fn resident(&self) -> usize {
        self.table.budget.resident()
    }

    /// Gives one real descriptor back to the process (evicts one file), for code elsewhere
    /// that needs a descriptor now. Returns whether one was freed.
    ///
    /// ```
    /// # use handoff::pager::{OpenOptions, Pager};
    /// # let dir = tempfile::tempdir()?;
    /// let pager = Pager::new(8);
    /// let file = pager.open(dir.path().join("a"), OpenOptions::new().write(true).create(true))?;
    /// file.with_crt_fd(|_fd| ())?; // resident now, whatever the platform
    /// assert!(pager.release_one());
    /// assert!(!file.is_resident());
    /// assert!(!pager.release_one());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn release_one(&self) -> bool {
        self.table.evict_one()
    }

    /// A snapshot of the counters (it scans every slot for the hit counts: cheap, but not
    /// for every operation of a hot loop).
    ///
    /// ```
    /// assert_eq!(handoff::pager::Pager::new(8).stats().resident, 0);
    /// ```
    pub fn stats(&self) -> Stats {
        self.table.stats()
    }
}
