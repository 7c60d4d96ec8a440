//! Unix backing: paging out closes the fd; paging in reopens the path and checks identity.
//! The paths live in a per-table arena ([`path_arena`]).

mod path_arena;

use std::fs::{self, File, Metadata};
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, AtomicPtr, Ordering};

use path_arena::PathArena;

use super::backing::{self, Opened, RawDescriptor};
use super::error::{PageInError, PageInErrorKind};
use super::OpenOptions;

/// `fd` is resident in the pager from now on: `handoff audit` names the pager as its owner.
fn owned_by_pager(fd: RawDescriptor) -> RawDescriptor {
    #[cfg(target_os = "linux")]
    crate::audit_tag::own(fd, c"handoff::pager::Pager");
    fd
}

/// What makes a file the same file: device, inode and, where the file system records it
/// (`statx` on Linux), birth time, which tells a recycled inode number from the original.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Identity {
    dev: u64,
    ino: u64,
    born: Option<std::time::SystemTime>,
}

impl Identity {
    /// Packed into three words for the entry: device, inode, birth time in nanoseconds since
    /// the epoch (`i64::MIN` when unknown).
    pub(super) fn pack(&self) -> [i64; 3] {
        let born = self.born.map_or(i64::MIN, |born| {
            match born.duration_since(std::time::UNIX_EPOCH) {
                Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
                Err(before) => {
                    i64::try_from(before.duration().as_nanos()).map_or(i64::MIN + 1, |n| -n)
                }
            }
        });
        [self.dev as i64, self.ino as i64, born]
    }

    pub(super) fn unpack([dev, ino, born]: [i64; 3]) -> Identity {
        use std::time::{Duration, UNIX_EPOCH};
        let born = (born != i64::MIN).then(|| {
            if born >= 0 {
                UNIX_EPOCH + Duration::from_nanos(born as u64)
            } else {
                UNIX_EPOCH - Duration::from_nanos(born.unsigned_abs())
            }
        });
        Identity {
            dev: dev as u64,
            ino: ino as u64,
            born,
        }
    }

    pub(super) fn of(metadata: &Metadata) -> Identity {
        Identity {
            dev: metadata.dev(),
            ino: metadata.ino(),
            born: metadata.created().ok(),
        }
    }
}

/// Whether a file can be closed and found again by its path: a regular file with a name.
/// Pipes, sockets, devices and anonymous or unlinked files cannot.
pub(super) fn is_reopenable(metadata: &Metadata) -> bool {
    metadata.file_type().is_file() && metadata.nlink() > 0
}

/// The status flags of an open file (`F_GETFL`), `None` if they cannot be read.
fn status_flags(fd: BorrowedFd<'_>) -> Option<libc::c_int> {
    // SAFETY: F_GETFL only reads the open file's status flags; `fd` is open while borrowed.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    (flags != -1).then_some(flags)
}

/// Whether the file behind `fd` has lost its last name since it was opened: `fstat`, which
/// is cheaper than the `statx` behind `File::metadata` (this runs at every eviction).
fn is_unlinked(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fd` is open while borrowed; `stat` is writable and fstat fills it.
    if unsafe { libc::fstat(fd.as_raw_fd(), stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded, so `stat` is initialised.
    Ok(unsafe { stat.assume_init() }.st_nlink == 0)
}

/// Runs `f` with a `File` view of the borrowed `fd`, which is not closed afterwards.
#[inline]
pub(super) fn with_file<R>(fd: BorrowedFd<'_>, f: impl FnOnce(&File) -> R) -> R {
    // SAFETY: `fd` is open for the whole call (it is borrowed); the `File` is never dropped,
    // so it never closes what it does not own.
    let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd.as_raw_fd()) });
    f(&file)
}

/// Borrows a pinned descriptor.
///
/// # Safety
/// `fd` must stay open for `'a` (the entry is pinned).
#[inline]
pub(super) unsafe fn borrow<'a>(fd: RawDescriptor) -> BorrowedFd<'a> {
    // SAFETY: the caller keeps `fd` open for `'a`.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

#[cfg(test)]
thread_local! {
    /// A fault seam for the unit tests: the next close *on this thread* reports EIO (per
    /// thread, so that the other tests of the binary, closing files in parallel, never take it).
    pub(super) static FAIL_NEXT_CLOSE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What `adopt` needs to make an already open fd reopenable: its path (Linux:
/// `/proc/self/fd/N`, checked against the fd's identity) and its access mode (`F_GETFL`).
/// `None` if it cannot be reopened.
fn reopen_info(
    fd: BorrowedFd<'_>,
    flags: Option<libc::c_int>,
    metadata: &Metadata,
) -> Option<(PathBuf, OpenOptions)> {
    if !is_reopenable(metadata) {
        return None;
    }
    let path = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    if !path.is_absolute() || Identity::of(&fs::metadata(&path).ok()?) != Identity::of(metadata) {
        return None;
    }
    let flags = flags?;
    let mut options = OpenOptions::new();
    match flags & libc::O_ACCMODE {
        libc::O_RDONLY => options.read(true),
        libc::O_WRONLY => options.write(true),
        libc::O_RDWR => options.read(true).write(true),
        _ => return None, // O_PATH and the like
    };
    options.append(flags & libc::O_APPEND != 0);
    Some((path, options))
}

// ----- the backing: how a paged-out entry is found again ----------------------------------

/// Per-table state of the backing: where the paths live.
#[derive(Default)]
pub(super) struct Shared {
    paths: PathArena,
}

/// What a file needs to be found again after its fd is closed: its absolute path (as given:
/// symlinks are not resolved, a swapped link is caught by the identity) and its identity.
pub(super) struct Reopen {
    path: PathBuf,
    identity: Identity,
}

impl Reopen {
    /// `None` for what cannot be reopened by path (pipes, sockets, devices, unlinked files).
    pub(super) fn new(path: PathBuf, metadata: &Metadata) -> Option<Reopen> {
        is_reopenable(metadata).then(|| Reopen {
            path,
            identity: Identity::of(metadata),
        })
    }
}

/// An entry's reopen facts: 32 bytes, the path in the table's arena.
#[derive(Default)]
pub(super) struct Backing {
    /// Null for a file that cannot be reopened (and for a free slot).
    path: AtomicPtr<u8>,
    /// `Identity::pack`.
    identity: [AtomicI64; 3],
}

impl backing::Backing for Backing {
    type Shared = Shared;
    type Reopen = Reopen;

    /// Unix: the first open's fd stays resident (a budget token is taken before the open).
    const OPEN_IS_RESIDENT: bool = true;
    /// As a `File`'s: an empty append-mode write does not move the offset.
    const EMPTY_APPEND_MOVES_TO_END: bool = false;

    /// Every open, first or re-, gets `O_NOCTTY` (std adds `O_CLOEXEC`).
    fn open_flags(options: &mut fs::OpenOptions) {
        options.custom_flags(libc::O_NOCTTY);
    }

    fn first_open(
        file: File,
        path: PathBuf,
        metadata: &Metadata,
        options: &OpenOptions,
    ) -> Opened<Reopen> {
        Opened {
            resident: Some(file),
            reopen: Reopen::new(path, metadata),
            options: options.clone(),
            append: options.append,
            seekable: is_seekable(metadata),
            cursor: 0,
        }
    }

    /// A regular file whose path can be found (`/proc/self/fd`) and still names it is paged
    /// like any other, reopened with the fd's access mode; anything else stays resident.
    fn adopt(fd: OwnedFd) -> io::Result<Opened<Reopen>> {
        let metadata = with_file(fd.as_fd(), File::metadata)?;
        let flags = status_flags(fd.as_fd());
        let cursor = with_file(fd.as_fd(), |mut file| {
            std::io::Seek::stream_position(&mut file)
        })
        .unwrap_or(0);
        let (reopen, options) = match reopen_info(fd.as_fd(), flags, &metadata) {
            Some((path, options)) => (Reopen::new(path, &metadata), options),
            None => (None, OpenOptions::new()),
        };
        Ok(Opened {
            resident: Some(File::from(fd)),
            reopen,
            options,
            append: flags.is_some_and(|flags| flags & libc::O_APPEND != 0),
            seekable: is_seekable(&metadata),
            cursor,
        })
    }

    fn into_descriptor(file: File) -> RawDescriptor {
        owned_by_pager(file.into_raw_fd())
    }

    /// Keeps `reopen` in the entry (nobody else sees the slot yet). `false` if the path cannot
    /// be kept (over 65,535 bytes): the file then stays resident for life.
    fn store(&self, shared: &Shared, reopen: Reopen) -> bool {
        let Some(path) = shared.paths.alloc(&reopen.path) else {
            return false;
        };
        self.path.store(path.as_ptr(), Ordering::Relaxed);
        for (field, value) in self.identity.iter().zip(reopen.identity.pack()) {
            field.store(value, Ordering::Relaxed);
        }
        true
    }

    /// Reopens the file with `options` and checks its identity before anything else. Called
    /// with the entry's LOCKED bit held, which keeps `clear` out.
    fn page_in(&self, _shared: &Shared, options: &OpenOptions) -> io::Result<RawDescriptor> {
        let path = NonNull::new(self.path.load(Ordering::Relaxed))
            .expect("an entry that is paged out can be reopened");
        // SAFETY: the path lives until `clear`, which needs the LOCKED bit our caller holds.
        let path = unsafe { path_arena::as_path(path) };
        let fail = |kind, source| io::Error::from(PageInError::new(kind, Some(path), source));
        // O_NONBLOCK: a FIFO swapped in for the file while it was paged out must fail the
        // identity check below, not block this open forever (a FIFO opened for writing with
        // no reader). The flag is cleared once the file is known to be ours.
        let mut reopen = options.reopen();
        reopen.custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK);
        let opened = match reopen.open(path) {
            // Only a lease held on the file refuses a non-blocking open (EWOULDBLOCK): wait
            // for its holder as a plain open would.
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                let mut blocking = options.reopen();
                blocking.custom_flags(libc::O_NOCTTY);
                blocking.open(path)
            }
            opened => opened,
        };
        let file = match opened {
            Ok(file) => file,
            // A lack of descriptors stays the plain OS error (the caller evicts and retries).
            Err(error) if crate::limits::is_out_of_descriptors(&error) => return Err(error),
            Err(error) => {
                let kind = match error.kind() {
                    io::ErrorKind::NotFound => PageInErrorKind::Removed,
                    io::ErrorKind::PermissionDenied => PageInErrorKind::AccessRefused,
                    // A regular file never answers ENXIO: a FIFO with no reader (or a device)
                    // is there now, in place of the file.
                    _ if error.raw_os_error() == Some(libc::ENXIO) => PageInErrorKind::Replaced,
                    _ => PageInErrorKind::Reopen,
                };
                return Err(fail(kind, Some(error)));
            }
        };
        let identity = file
            .metadata()
            .map_err(|error| fail(PageInErrorKind::Reopen, Some(error)))?;
        let recorded =
            Identity::unpack([0, 1, 2].map(|i| self.identity[i].load(Ordering::Relaxed)));
        if Identity::of(&identity) != recorded {
            return Err(fail(PageInErrorKind::Replaced, None)); // `file` closes as it drops
        }
        // The file status flags the first open had: O_APPEND or nothing (O_NONBLOCK off).
        let status = if options.append { libc::O_APPEND } else { 0 };
        // SAFETY: `file` owns the descriptor for the duration of the call.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, status) } == -1 {
            return Err(fail(
                PageInErrorKind::Reopen,
                Some(io::Error::last_os_error()),
            ));
        }
        Ok(owned_by_pager(file.into_raw_fd()))
    }

    /// Forgets the facts (the slot is being freed; LOCKED is held).
    fn clear(&self, shared: &Shared) {
        let path = self.path.swap(std::ptr::null_mut(), Ordering::Relaxed);
        if let Some(path) = NonNull::new(path) {
            // SAFETY: the path came from `shared.paths.alloc`; the pointer is gone from the
            // entry, and LOCKED keeps every reader out.
            unsafe { shared.paths.free(path) };
        }
    }

    /// Its file was unlinked while open, so it could never be reopened.
    unsafe fn keep_at_eviction(fd: RawDescriptor) -> bool {
        // SAFETY: the caller has `fd` open and claimed for the call.
        is_unlinked(unsafe { borrow(fd) }).unwrap_or(false)
    }

    unsafe fn close(fd: RawDescriptor) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        crate::audit_tag::disown(fd);
        // SAFETY: the caller owns `fd` and gives it up here, once.
        let result = unsafe { libc::close(fd) };
        #[cfg(test)]
        if FAIL_NEXT_CLOSE.with(|fail| fail.replace(false)) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    #[inline]
    fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }

    #[inline]
    fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::write_at(file, buf, offset)
    }

    fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }

    fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }
}

/// Whether positional I/O works: regular files and block devices (not pipes, sockets, ttys).
fn is_seekable(metadata: &Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    metadata.file_type().is_file() || metadata.file_type().is_block_device()
}
