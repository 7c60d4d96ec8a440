//! [`VirtualFile`]: a virtual descriptor, used like a `File`.

use std::fs::Metadata;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::mem::ManuallyDrop;
use std::sync::Arc;

use super::backing::{Backing as _, RawDescriptor};
use super::cursor::Cursor;
use super::entry::Entry;
use super::sys;
use super::table::Table;
use super::Vfd;

/// An open virtual file: one virtual descriptor of a [`Pager`](super::Pager), used like a
/// [`File`](std::fs::File). Dropping it closes the virtual descriptor, once.
///
/// Every operation pins the file's real descriptor for its duration, paging the file in first
/// if it was paged out. Each `VirtualFile` has its own cursor (`Read`, `Write`, `Seek`), which
/// survives paging; positional calls (`read_at`, `write_at`) do not use it.
///
/// Differences from holding a descriptor open, on Unix (where paging in reopens the path):
/// - a file renamed, replaced or removed while paged out cannot be paged in again (the error
///   is [`ErrorKind::NotFound`](io::ErrorKind::NotFound), and no byte of whatever file is now
///   at the path is read or written);
/// - permissions are checked again at every page-in: a file `chmod`ed to `000` while paged
///   out fails with [`ErrorKind::PermissionDenied`](io::ErrorKind::PermissionDenied);
/// - files that cannot be reopened (pipes, sockets, memfds, files unlinked while open) are
///   never paged out, and count against the budget for as long as they are open.
///
/// ```
/// use std::io::{Read, Seek, SeekFrom, Write};
/// use handoff::pager::{OpenOptions, Pager};
///
/// let dir = tempfile::tempdir()?;
/// let pager = Pager::new(1);
/// let mut options = OpenOptions::new();
/// options.read(true).write(true).create(true);
/// let mut a = pager.open(dir.path().join("a"), &options)?;
/// let mut b = pager.open(dir.path().join("b"), &options)?;
/// a.write_all(b"hello")?; // Unix: a is paged in, b out
/// b.write_all(b"world")?; // and the other way round
/// a.seek(SeekFrom::Start(0))?;
/// let mut text = String::new();
/// a.read_to_string(&mut text)?;
/// assert_eq!(text, "hello");
/// // A real descriptor for C code: at most one at a time, with a budget of one.
/// a.with_crt_fd(|_fd| ())?;
/// b.with_crt_fd(|_fd| ())?;
/// assert_eq!(pager.resident(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct VirtualFile {
    pub(super) table: Arc<Table>,
    pub(super) slot: u32,
    generation: u32,
    pub(super) writes: Writes,
    cursor: Cursor,
}

/// How the cursor calls reach the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Writes {
    /// `pread`/`pwrite` at the cursor.
    AtCursor,
    /// Reads at the cursor; writes go to the end (`O_APPEND`), and the cursor follows.
    Append,
    /// A pipe, socket or device: plain `read`/`write`, no cursor, no seeking.
    Stream,
}

/// Unpins on drop, so that a panic in a `with_fd` closure unpins too.
struct Pin<'a> {
    table: &'a Table,
    entry: &'a Entry,
    fd: RawDescriptor,
}

impl Drop for Pin<'_> {
    #[inline]
    fn drop(&mut self) {
        self.table.unpin(self.entry);
    }
}

impl Writes {
    pub(super) fn of(seekable: bool, append: bool) -> Writes {
        if !seekable {
            Writes::Stream
        } else if append {
            Writes::Append
        } else {
            Writes::AtCursor
        }
    }
}

impl VirtualFile {
    pub(super) fn new(table: Arc<Table>, vfd: Vfd, writes: Writes, cursor: u64) -> VirtualFile {
        VirtualFile {
            table,
            slot: vfd.slot,
            generation: vfd.generation,
            writes,
            cursor: Cursor::new(cursor),
        }
    }

    /// The cursor, for a [`PinnedFile`](super::PinnedFile) to lend to its descriptor (or the
    /// error a `with_fd` left). The file is the caller's alone (moved into the pin).
    pub(super) fn cursor_to_lend(&self) -> io::Result<u64> {
        Ok(self.cursor.hold(&self.table.budget)?.state.at)
    }

    /// The position read back from a [`PinnedFile`](super::PinnedFile)'s descriptor.
    pub(super) fn take_cursor_back(&self, position: io::Result<u64>) {
        if let Ok(mut held) = self.cursor.hold(&self.table.budget) {
            held.take_back(position);
        }
    }

    /// Runs a `with_fd`/`with_crt_fd` closure, its pin counted as this thread's (for the
    /// budget's deadlock check).
    fn hold<R>(&self, pin: &Pin<'_>, f: impl FnOnce() -> R) -> R {
        let permanent = pin.entry.snapshot().is_permanent();
        self.table.budget.hold(self.slot, permanent, f)
    }

    #[inline]
    fn pin(&self) -> io::Result<Pin<'_>> {
        let (entry, fd) = self.table.pin(self.slot)?;
        Ok(Pin {
            table: &self.table,
            entry,
            fd,
        })
    }

    /// Runs `f` on a `File` view of the file: on Unix the pinned descriptor (paged in if
    /// needed); on Windows the entry's own handle, which needs no descriptor at all. (The one
    /// place the portable layer tells the backings apart: what Rust I/O goes through.)
    #[cfg(unix)]
    #[inline]
    fn with_file<R>(&self, f: impl FnOnce(&std::fs::File) -> io::Result<R>) -> io::Result<R> {
        let pin = self.pin()?;
        // SAFETY: the pin keeps the descriptor open until after `f` returns.
        sys::with_file(unsafe { sys::borrow(pin.fd) }, f)
    }

    #[cfg(windows)]
    #[inline]
    fn with_file<R>(&self, f: impl FnOnce(&std::fs::File) -> io::Result<R>) -> io::Result<R> {
        if let Some(kept) = self.table.take_kept_error(self.slot) {
            return Err(kept);
        }
        self.table.entry(self.slot).backing.with_file(f)
    }

    /// Reads at `offset`, without using or moving the cursor (`pread`).
    ///
    /// ```
    /// # use handoff::pager::{OpenOptions, Pager};
    /// # let dir = tempfile::tempdir()?;
    /// # std::fs::write(dir.path().join("f"), b"0123456789")?;
    /// let pager = Pager::new(8);
    /// let file = pager.open(dir.path().join("f"), OpenOptions::new().read(true))?;
    /// let mut buf = [0; 3];
    /// assert_eq!(file.read_at(&mut buf, 4)?, 3);
    /// assert_eq!(&buf, b"456");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with_file(|file| sys::Backing::read_at(file, buf, offset))
    }

    /// Writes at `offset`, without using or moving the cursor (`pwrite`). On Linux a file opened
    /// with `append` appends whatever the offset, as `pwrite(2)` does.
    ///
    /// ```
    /// # use handoff::pager::{OpenOptions, Pager};
    /// # let dir = tempfile::tempdir()?;
    /// let pager = Pager::new(8);
    /// let mut options = OpenOptions::new();
    /// let file = pager.open(dir.path().join("f"), options.write(true).create(true))?;
    /// assert_eq!(file.write_at(b"abc", 2)?, 3);
    /// assert_eq!(std::fs::read(dir.path().join("f"))?, b"\0\0abc");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.with_file(|file| sys::Backing::write_at(file, buf, offset))
    }

    /// Reads exactly `buf.len()` bytes at `offset`, under one pin.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::UnexpectedEof`](io::ErrorKind::UnexpectedEof) if the file ends first.
    ///
    /// ```
    /// # use handoff::pager::{OpenOptions, Pager};
    /// # let dir = tempfile::tempdir()?;
    /// # std::fs::write(dir.path().join("f"), b"0123456789")?;
    /// let pager = Pager::new(8);
    /// let file = pager.open(dir.path().join("f"), OpenOptions::new().read(true))?;
    /// let mut buf = [0; 4];
    /// file.read_exact_at(&mut buf, 6)?;
    /// assert_eq!(&buf, b"6789");
    /// assert!(file.read_exact_at(&mut buf, 8).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.with_file(|file| sys::Backing::read_exact_at(file, buf, offset))
    }

    /// Writes all of `buf` at `offset`, under one pin.
    ///
    /// ```
    /// # use handoff::pager::{OpenOptions, Pager};
    /// # let dir = tempfile::tempdir()?;
    /// let pager = Pager::new(8);
    /// let mut options = OpenOptions::new();
    /// let file = pager.open(dir.path().join("f"), options.write(true).create(true))?;
    /// file.write_all_at(b"whole", 0)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.with_file(|file| sys::Backing::write_all_at(file, buf, offset))
    }

    /// Truncates or extends the file (`ftruncate`); the cursor does not move.
    ///
    /// ```
    /// # use handoff::pager::{OpenOptions, Pager};
    /// # let dir = tempfile::tempdir()?;
    /// let pager = Pager::new(8);
    /// let mut options = OpenOptions::new();
    /// let file = pager.open(dir.path().join("f"), options.write(true).create(true))?;
    /// file.set_len(10)?;
    /// assert_eq!(file.metadata()?.len(), 10);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        self.with_file(|file| file.set_len(len))
    }

    /// The file's metadata (`fstat`/`statx` on the real descriptor).
    ///
    /// ```
    /// # use handoff::pager::{OpenOptions, Pager};
    /// # let dir = tempfile::tempdir()?;
    /// # std::fs::write(dir.path().join("f"), b"abc")?;
    /// let pager = Pager::new(8);
    /// let file = pager.open(dir.path().join("f"), OpenOptions::new().read(true))?;
    /// assert_eq!(file.metadata()?.len(), 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn metadata(&self) -> io::Result<Metadata> {
        self.with_file(|file| file.metadata())
    }

    /// Flushes data and metadata to the device (`fsync`).
    ///
    /// ```
    /// # use handoff::pager::{OpenOptions, Pager};
    /// # let dir = tempfile::tempdir()?;
    /// let pager = Pager::new(8);
    /// let mut options = OpenOptions::new();
    /// let file = pager.open(dir.path().join("f"), options.write(true).create(true))?;
    /// file.write_all_at(b"durable", 0)?;
    /// file.sync_all()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sync_all(&self) -> io::Result<()> {
        self.with_file(|file| file.sync_all())
    }

    /// Flushes data to the device (`fdatasync`).
    ///
    /// ```
    /// # use handoff::pager::{OpenOptions, Pager};
    /// # let dir = tempfile::tempdir()?;
    /// let pager = Pager::new(8);
    /// let mut options = OpenOptions::new();
    /// let file = pager.open(dir.path().join("f"), options.write(true).create(true))?;
    /// file.sync_data()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sync_data(&self) -> io::Result<()> {
        self.with_file(|file| file.sync_data())
    }

    /// Lends the real descriptor to `f`, which C functions can be given; the file is pinned
    /// (never paged out) while `f` runs. The descriptor is the pager's: `f` must not close it.
    ///
    /// The descriptor's file offset is set to this virtual file's cursor before `f` runs, and
    /// the cursor takes the descriptor's offset after, so that C code reads and writes where
    /// Rust left off, and the other way round (not for pipes and sockets, which have neither).
    ///
    /// # Errors
    ///
    /// The page-in's, or `lseek`'s; [`ErrorKind::Deadlock`](io::ErrorKind::Deadlock) if this
    /// thread's nested `with_fd` closures already pin the whole budget, so that waiting could
    /// never end.
    ///
    /// ```
    /// # use handoff::pager::{OpenOptions, Pager};
    /// # let dir = tempfile::tempdir()?;
    /// # std::fs::write(dir.path().join("f"), b"abcdef")?;
    /// use std::io::Read;
    /// use std::os::fd::AsRawFd;
    ///
    /// let pager = Pager::new(8);
    /// let mut file = pager.open(dir.path().join("f"), OpenOptions::new().read(true))?;
    /// let mut buf = [0u8; 3];
    /// // SAFETY: the descriptor is pinned open while the closure runs; `read` does not keep it.
    /// let n = file.with_fd(|fd| unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), 3) })?;
    /// assert_eq!((n, &buf), (3, b"abc"));
    /// // Rust's cursor continues after what C read.
    /// let mut rest = String::new();
    /// file.read_to_string(&mut rest)?;
    /// assert_eq!(rest, "def");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(unix)]
    pub fn with_fd<R>(&self, f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> R) -> io::Result<R> {
        // The pin first, then the cursor: a page-in that waits for the budget never holds the
        // cursor here, and a pinned file is a hit for a cursor call holding the cursor.
        let pin = self.pin()?;
        let mut cursor = match self.writes {
            Writes::Stream => None,
            _ => Some(self.cursor.hold(&self.table.budget)?),
        };
        // SAFETY: the pin keeps the descriptor open until after `f` returns.
        let fd = unsafe { sys::borrow(pin.fd) };
        let Some(cursor) = &mut cursor else {
            return Ok(self.hold(&pin, || f(fd)));
        };
        let start = cursor.state.at;
        sys::with_file(fd, |mut file| file.seek(SeekFrom::Start(start)))?;
        let result = self.hold(&pin, || f(fd));
        cursor.take_back(sys::with_file(fd, |mut file| file.stream_position()));
        Ok(result)
    }

    /// Lends a C-runtime descriptor to `f`: on Unix the real fd itself (see
    /// [`with_fd`](Self::with_fd)). `f` must not close it.
    ///
    /// ```
    /// # use handoff::pager::{OpenOptions, Pager};
    /// # let dir = tempfile::tempdir()?;
    /// let pager = Pager::new(8);
    /// let mut options = OpenOptions::new();
    /// let file = pager.open(dir.path().join("f"), options.write(true).create(true))?;
    /// // SAFETY: the descriptor stays open during the call; `write` does not keep it.
    /// let n = file.with_crt_fd(|fd| unsafe { libc::write(fd, b"c".as_ptr().cast(), 1) })?;
    /// assert_eq!(n, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(unix)]
    pub fn with_crt_fd<R>(&self, f: impl FnOnce(std::ffi::c_int) -> R) -> io::Result<R> {
        use std::os::fd::AsRawFd;
        self.with_fd(|fd| f(fd.as_raw_fd()))
    }

    /// Lends a C-runtime descriptor to `f`, paged in over a duplicate of the file's handle
    /// (`DuplicateHandle` + `_open_osfhandle`) if it has none, and pinned while `f` runs. `f`
    /// must not close it. Its position is set to this virtual file's cursor before `f` runs,
    /// and the cursor takes it back after.
    ///
    /// # Errors
    ///
    /// No descriptor can be had (the table is full of others' and nothing of the pager's is
    /// evictable: recognised by [`limits::is_out_of_descriptors`](crate::limits::is_out_of_descriptors));
    /// [`ErrorKind::Deadlock`](io::ErrorKind::Deadlock) as for nested pins on Unix.
    ///
    /// ```
    /// # use handoff::pager::{OpenOptions, Pager};
    /// # let dir = tempfile::tempdir()?;
    /// let pager = Pager::new(8);
    /// let mut options = OpenOptions::new();
    /// let file = pager.open(dir.path().join("f"), options.write(true).create(true))?;
    /// // SAFETY: the descriptor stays open during the call; `write` does not keep it.
    /// let n = file.with_crt_fd(|fd| unsafe { libc::write(fd, b"c".as_ptr().cast(), 1) })?;
    /// assert_eq!(n, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(windows)]
    pub fn with_crt_fd<R>(&self, f: impl FnOnce(std::ffi::c_int) -> R) -> io::Result<R> {
        // The pin first, then the cursor (see `with_fd`).
        let pin = self.pin()?;
        let mut cursor = match self.writes {
            Writes::Stream => None,
            _ => Some(self.cursor.hold(&self.table.budget)?),
        };
        let Some(cursor) = &mut cursor else {
            return Ok(self.hold(&pin, || f(pin.fd)));
        };
        // SAFETY: the pin keeps the descriptor open for both calls.
        unsafe { sys::seek_descriptor(pin.fd, SeekFrom::Start(cursor.state.at)) }?;
        let result = self.hold(&pin, || f(pin.fd));
        // SAFETY: as above.
        cursor.take_back(unsafe { sys::seek_descriptor(pin.fd, SeekFrom::Current(0)) });
        Ok(result)
    }

    /// Whether the file holds a real descriptor now.
    ///
    /// ```
    /// # use handoff::pager::{OpenOptions, Pager};
    /// # let dir = tempfile::tempdir()?;
    /// let pager = Pager::new(1);
    /// let mut options = OpenOptions::new();
    /// options.write(true).create(true);
    /// let a = pager.open(dir.path().join("a"), &options)?;
    /// let b = pager.open(dir.path().join("b"), &options)?;
    /// a.with_crt_fd(|_fd| ())?;
    /// assert!(a.is_resident());
    /// b.with_crt_fd(|_fd| ())?;
    /// assert!(!a.is_resident() && b.is_resident());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_resident(&self) -> bool {
        self.table.entry(self.slot).snapshot().is_resident()
    }

    /// The virtual descriptor's id.
    ///
    /// ```
    /// # use handoff::pager::{OpenOptions, Pager};
    /// # let dir = tempfile::tempdir()?;
    /// let pager = Pager::new(1);
    /// let mut options = OpenOptions::new();
    /// options.write(true).create(true);
    /// let a = pager.open(dir.path().join("a"), &options)?;
    /// let b = pager.open(dir.path().join("b"), &options)?;
    /// assert_ne!(a.id(), b.id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn id(&self) -> Vfd {
        Vfd {
            slot: self.slot,
            generation: self.generation,
        }
    }

    /// Closes the virtual descriptor and reports what `Drop` cannot: an error kept from closing
    /// the real descriptor at an earlier eviction, or the error of closing it now.
    ///
    /// ```
    /// # use handoff::pager::{OpenOptions, Pager};
    /// # let dir = tempfile::tempdir()?;
    /// let pager = Pager::new(1);
    /// let mut options = OpenOptions::new();
    /// let file = pager.open(dir.path().join("a"), options.write(true).create(true))?;
    /// file.close()?;
    /// assert_eq!(pager.resident(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(self) -> io::Result<()> {
        let this = ManuallyDrop::new(self);
        // Every field, so that a new one cannot be forgotten here (this fails to compile).
        let VirtualFile {
            table,
            slot,
            generation: _,
            writes: _,
            cursor,
        } = &*this;
        let result = table.release(*slot);
        // SAFETY: `this` is never used or dropped again (ManuallyDrop), so each field that
        // owns something (the table's Arc, the cursor's Mutex, which some platforms box) is
        // moved out and dropped here exactly once.
        unsafe {
            drop(std::ptr::read(table));
            drop(std::ptr::read(cursor));
        }
        result
    }

    fn read_cursor(&self, buf: &mut [u8]) -> io::Result<usize> {
        if self.writes == Writes::Stream {
            return self.with_file(|mut file| file.read(buf));
        }
        let mut cursor = self.cursor.lock(&self.table.budget)?;
        let n = self.read_at(buf, cursor.at)?;
        cursor.at += n as u64;
        Ok(n)
    }

    fn write_cursor(&self, buf: &[u8]) -> io::Result<usize> {
        if self.writes == Writes::Stream {
            return self.with_file(|mut file| file.write(buf));
        }
        let mut cursor = self.cursor.lock(&self.table.budget)?;
        if self.writes == Writes::Append {
            // The kernel picks the offset (the end); the cursor follows, as a File's would. A
            // write of nothing moves nothing on Unix (where a reopened fd's offset is 0, not the
            // cursor), and moves to the end on Windows: as the platform's File does.
            let (n, end) = self.with_file(|mut file| {
                let n = file.write(buf)?;
                let moved = n > 0 || sys::Backing::EMPTY_APPEND_MOVES_TO_END;
                Ok((
                    n,
                    if moved {
                        file.stream_position()?
                    } else {
                        cursor.at
                    },
                ))
            })?;
            cursor.at = end;
            return Ok(n);
        }
        let n = self.write_at(buf, cursor.at)?;
        cursor.at += n as u64;
        Ok(n)
    }

    fn seek_cursor(&self, position: SeekFrom) -> io::Result<u64> {
        if self.writes == Writes::Stream {
            return self.with_file(|mut file| file.seek(position)); // ESPIPE, as for a File
        }
        let mut cursor = self.cursor.lock(&self.table.budget)?;
        let target = match position {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::Current(delta) => cursor.at.checked_add_signed(delta),
            SeekFrom::End(delta) => self.metadata()?.len().checked_add_signed(delta),
        };
        cursor.at = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "invalid seek to a negative or overflowing position",
            )
        })?;
        Ok(cursor.at)
    }
}

impl Drop for VirtualFile {
    fn drop(&mut self) {
        // The error has nowhere to go; `close()` reports it.
        let _ = self.table.release(self.slot);
    }
}

/// Borrows the file's own handle, which it keeps for life (never paged out).
#[cfg(windows)]
impl std::os::windows::io::AsHandle for VirtualFile {
    fn as_handle(&self) -> std::os::windows::io::BorrowedHandle<'_> {
        self.table.entry(self.slot).backing.handle()
    }
}

impl std::fmt::Debug for VirtualFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualFile")
            .field("id", &self.id())
            .field("resident", &self.is_resident())
            .finish()
    }
}

impl Read for VirtualFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_cursor(buf)
    }
}

impl Read for &VirtualFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_cursor(buf)
    }
}

impl Write for VirtualFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_cursor(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // nothing is buffered
    }
}

impl Write for &VirtualFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_cursor(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for VirtualFile {
    fn seek(&mut self, position: SeekFrom) -> io::Result<u64> {
        self.seek_cursor(position)
    }
}

impl Seek for &VirtualFile {
    fn seek(&mut self, position: SeekFrom) -> io::Result<u64> {
        self.seek_cursor(position)
    }
}
