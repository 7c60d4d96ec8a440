//! [`PinnedFile`]: a virtual file's real descriptor, pinned for as long as the value lives
//! (not only for a closure), for code that keeps a descriptor across calls, such as a C API's
//! `pin`/`unpin`.
//!
//! The rules are [`VirtualFile::with_crt_fd`]'s, stretched over the value's life:
//! - the file is pinned (never paged out) until the `PinnedFile` is dropped or unpinned;
//! - the descriptor's offset is set to the virtual file's cursor when it is pinned, and the
//!   cursor takes the descriptor's offset back when it is unpinned (so that C code reads and
//!   writes where Rust left off, and the other way round);
//! - the pin counts as the pinning thread's for the budget's deadlock check, until it is given
//!   back (from whatever thread): a thread whose own pins use up the budget gets
//!   [`ErrorKind::Deadlock`](io::ErrorKind::Deadlock) for the next page-in instead of waiting
//!   forever. Pins held by other threads are waited for, as with `with_fd`.
//!
//! Pinning *moves* the `VirtualFile` in, and unpinning gives it back: while pinned there is
//! no second way to the cursor, so the descriptor's offset is the only position there is.

use std::ffi::c_int;
use std::fs::Metadata;
use std::io;
use std::io::SeekFrom;
use std::mem::ManuallyDrop;
use std::thread::{self, ThreadId};

use super::backing::RawDescriptor;
use super::file::Writes;
use super::sync::lock_std as lock;
use super::{sys, Vfd, VirtualFile};

/// A virtual file whose real descriptor is pinned for as long as this value lives: a
/// C-runtime descriptor that C code may use across calls (but must not close), positioned at
/// the file's cursor. [`unpin`](Self::unpin) gives the [`VirtualFile`] back, its cursor where
/// the descriptor's offset is then; dropping a `PinnedFile` unpins and closes the file.
///
/// It is `Send` and `Sync`, so it can live in a table shared by threads, and be unpinned on
/// another thread than the one that pinned it.
///
/// ```
/// use std::io::Read;
/// use handoff::pager::{OpenOptions, Pager};
///
/// let dir = tempfile::tempdir()?;
/// let pager = Pager::new(1);
/// let mut options = OpenOptions::new();
/// options.read(true).write(true).create(true);
/// let file = pager.open(dir.path().join("a"), &options)?;
/// let pinned = file.into_pinned().map_err(|(error, _file)| error)?;
/// let fd = pinned.crt_fd(); // `write` on Unix, `_write` on Windows
/// // SAFETY: `fd` stays open while `pinned` lives; `write` does not keep it.
/// assert_eq!(unsafe { libc::write(fd, b"from C".as_ptr().cast(), 6) }, 6);
/// // The budget (1) is pinned by this thread: another file cannot be had, and says so.
/// let other = pager.open(dir.path().join("b"), &options);
/// # #[cfg(unix)] // (on Windows an open takes no descriptor; a second pin would fail so)
/// assert_eq!(other.unwrap_err().kind(), std::io::ErrorKind::Deadlock);
/// let mut file = pinned.unpin();
/// file.write_all_at(b"F", 0)?; // positional: no cursor
/// let mut rest = String::new();
/// file.read_to_string(&mut rest)?; // the cursor is where C left it
/// assert_eq!(rest, "");
/// assert_eq!(std::fs::read_to_string(dir.path().join("a"))?, "From C");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct PinnedFile {
    file: ManuallyDrop<VirtualFile>,
    fd: RawDescriptor,
    /// The thread the pin is counted for (in the budget's ledger), if it is counted (a file
    /// that can never be paged out is counted among the permanent ones already).
    owner: Option<ThreadId>,
}

impl VirtualFile {
    /// Pins the file's real descriptor (paging it in if needed) until the returned
    /// [`PinnedFile`] is unpinned or dropped, and sets its offset to the cursor.
    ///
    /// # Errors
    ///
    /// Those of [`with_crt_fd`](Self::with_crt_fd), among them
    /// [`ErrorKind::Deadlock`](io::ErrorKind::Deadlock) if this thread's own pins
    /// (`PinnedFile`s and `with_fd` closures) hold the whole budget. The file is given back
    /// with the error, untouched.
    ///
    /// ```
    /// use handoff::pager::{OpenOptions, Pager};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let pager = Pager::new(1);
    /// let mut options = OpenOptions::new();
    /// options.write(true).create(true);
    /// let a = pager.open(dir.path().join("a"), &options)?;
    /// let b = pager.open(dir.path().join("b"), &options)?;
    /// let a = a.into_pinned().map_err(|(error, _)| error)?;
    /// let (error, b) = b.into_pinned().unwrap_err(); // budget 1, pinned by this thread
    /// assert_eq!(error.kind(), std::io::ErrorKind::Deadlock);
    /// drop(a); // unpinned (and closed)
    /// let b = b.into_pinned().map_err(|(error, _)| error)?;
    /// assert!(b.crt_fd() >= 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[allow(clippy::result_large_err)] // the file itself is given back
    pub fn into_pinned(self) -> Result<PinnedFile, (io::Error, VirtualFile)> {
        let at = match self.writes {
            Writes::Stream => None,
            _ => match self.cursor_to_lend() {
                Ok(at) => Some(at),
                Err(error) => return Err((error, self)),
            },
        };
        let (entry, fd) = match self.table.pin(self.slot) {
            Ok(pinned) => pinned,
            Err(error) => return Err((error, self)),
        };
        if let Some(at) = at {
            // SAFETY: the pin keeps `fd` open for the call.
            if let Err(error) = unsafe { seek(fd, SeekFrom::Start(at)) } {
                self.table.unpin(entry);
                return Err((error, self));
            }
        }
        let owner = (!entry.snapshot().is_permanent()).then(|| {
            let owner = thread::current().id();
            self.table.budget.long_pins.add(owner);
            owner
        });
        Ok(PinnedFile {
            file: ManuallyDrop::new(self),
            fd,
            owner,
        })
    }
}

impl PinnedFile {
    /// The pinned C-runtime descriptor (on Unix the fd itself), open until `self` is unpinned
    /// or dropped. It is the pager's: do not close it.
    ///
    /// On Windows it belongs to the C runtime that this library links (msvcrt.dll for the
    /// `-gnu` targets): `_read`/`_write` of that runtime must be used on it.
    pub fn crt_fd(&self) -> c_int {
        self.fd
    }

    /// Unpins: the cursor takes the descriptor's offset, the descriptor may be paged out again,
    /// and the virtual file is given back. (If the offset cannot be read, the cursor stays where
    /// it was, and the file's next cursor call returns the error.)
    pub fn unpin(self) -> VirtualFile {
        let mut this = ManuallyDrop::new(self);
        this.give_back();
        // SAFETY: `this` is never dropped (ManuallyDrop), so the file is moved out once.
        unsafe { ManuallyDrop::take(&mut this.file) }
    }

    /// The virtual descriptor's id.
    pub fn id(&self) -> Vfd {
        self.file.id()
    }

    /// [`VirtualFile::read_at`], while pinned: the descriptor's offset does not move.
    ///
    /// On Windows a positional read moves the file position that the handle and the
    /// descriptor share, so it is put back after the read (not atomically: C code using the
    /// descriptor's offset on another thread meanwhile may see it move).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.keeping_offset(|| self.file.read_at(buf, offset))
    }

    /// [`VirtualFile::write_at`], while pinned: the descriptor's offset does not move (see
    /// [`read_at`](Self::read_at) for Windows).
    pub fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.keeping_offset(|| self.file.write_at(buf, offset))
    }

    /// Runs a positional call; on Windows puts the shared file position back after it.
    fn keeping_offset<R>(&self, call: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        #[cfg(windows)]
        if self.file.writes != Writes::Stream {
            // SAFETY: the pin keeps `fd` open for both calls.
            let at = unsafe { seek(self.fd, SeekFrom::Current(0)) }?;
            let result = call();
            // SAFETY: as above.
            unsafe { seek(self.fd, SeekFrom::Start(at)) }?;
            return result;
        }
        call()
    }

    /// [`VirtualFile::set_len`], while pinned.
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    /// [`VirtualFile::metadata`], while pinned.
    pub fn metadata(&self) -> io::Result<Metadata> {
        self.file.metadata()
    }

    /// [`VirtualFile::sync_all`], while pinned.
    pub fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn give_back(&mut self) {
        if self.file.writes != Writes::Stream {
            // SAFETY: the pin (not given back yet) keeps `fd` open for the call.
            self.file
                .take_cursor_back(unsafe { seek(self.fd, SeekFrom::Current(0)) });
        }
        let table = &self.file.table;
        table.unpin(table.entry(self.file.slot));
        if let Some(owner) = self.owner.take() {
            table.budget.long_pins.remove(owner);
        }
    }
}

impl Drop for PinnedFile {
    fn drop(&mut self) {
        self.give_back();
        // SAFETY: dropped once, here; `self.file` is not used after.
        unsafe { ManuallyDrop::drop(&mut self.file) }
    }
}

impl std::fmt::Debug for PinnedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedFile")
            .field("id", &self.id())
            .field("crt_fd", &self.fd)
            .finish()
    }
}

/// Borrows the pinned fd, open while `self` lives.
#[cfg(unix)]
impl std::os::fd::AsFd for PinnedFile {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the pin keeps the descriptor open for as long as `self` is borrowed.
        unsafe { sys::borrow(self.fd) }
    }
}

/// Moves a pinned descriptor's offset (`lseek`; `_lseeki64` on Windows).
///
/// # Safety
/// `fd` must be pinned (open) for the call.
unsafe fn seek(fd: RawDescriptor, position: SeekFrom) -> io::Result<u64> {
    #[cfg(unix)]
    {
        use std::io::Seek;
        // SAFETY: the caller keeps `fd` open for the call.
        sys::with_file(unsafe { sys::borrow(fd) }, |mut file| file.seek(position))
    }
    #[cfg(windows)]
    // SAFETY: the caller keeps `fd` open for the call.
    unsafe {
        sys::seek_descriptor(fd, position)
    }
}

/// The pins of [`PinnedFile`]s, by the thread that took them (a pin given back on another
/// thread is still taken off its taker's count), for the budget's deadlock check.
#[derive(Default)]
pub(super) struct Ledger {
    held: std::sync::Mutex<Vec<(ThreadId, usize)>>,
}

impl Ledger {
    fn add(&self, owner: ThreadId) {
        let mut held = lock(&self.held);
        match held.iter_mut().find(|(id, _)| *id == owner) {
            Some((_, count)) => *count += 1,
            None => held.push((owner, 1)),
        }
    }

    fn remove(&self, owner: ThreadId) {
        let mut held = lock(&self.held);
        if let Some(i) = held.iter().position(|(id, _)| *id == owner) {
            held[i].1 -= 1;
            if held[i].1 == 0 {
                held.swap_remove(i);
            }
        }
    }

    /// How many pins the calling thread took and has not given back.
    pub(super) fn held_by_this_thread(&self) -> usize {
        let held = lock(&self.held);
        if held.is_empty() {
            return 0; // the common case: no long pins at all
        }
        let me = thread::current().id();
        held.iter()
            .find(|(id, _)| *id == me)
            .map_or(0, |&(_, count)| count)
    }
}
