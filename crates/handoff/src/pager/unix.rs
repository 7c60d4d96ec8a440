//! Unix backing: paging out closes the fd; paging in reopens the path and checks identity.

use std::fs::{self, File, Metadata};
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, AtomicPtr, Ordering};

use super::path_arena::{self, PathArena};
use super::OpenOptions;

pub(super) type RawDescriptor = RawFd;

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

/// Every open, first or re-, gets `O_NOCTTY` (std adds `O_CLOEXEC`).
pub(super) fn reopen_flags(options: &mut fs::OpenOptions) {
    options.custom_flags(libc::O_NOCTTY);
}

/// Whether a file can be closed and found again by its path: a regular file with a name.
/// Pipes, sockets, devices and anonymous or unlinked files cannot.
pub(super) fn is_reopenable(metadata: &Metadata) -> bool {
    metadata.file_type().is_file() && metadata.nlink() > 0
}

/// Whether positional I/O works: regular files and block devices (not pipes, sockets, ttys).
pub(super) fn is_seekable(metadata: &Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    metadata.file_type().is_file() || metadata.file_type().is_block_device()
}

/// Whether the open file has `O_APPEND`.
pub(super) fn is_append(fd: &OwnedFd) -> bool {
    // SAFETY: F_GETFL only reads the open file's status flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    flags != -1 && flags & libc::O_APPEND != 0
}

/// Whether the file behind `fd` has lost its last name since it was opened: `fstat`, which
/// is cheaper than the `statx` behind `File::metadata` (this runs at every eviction).
pub(super) fn is_unlinked(fd: RawFd) -> io::Result<bool> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fd` is open (claimed by the caller); `stat` is writable and fstat fills it.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded, so `stat` is initialised.
    Ok(unsafe { stat.assume_init() }.st_nlink == 0)
}

/// Runs `f` with a `File` view of `fd`, which is not closed afterwards.
#[inline]
pub(super) fn with_file<R>(fd: RawFd, f: impl FnOnce(&File) -> R) -> R {
    // SAFETY: the caller has `fd` pinned open for the whole call; the `File` is never dropped,
    // so it never closes what it does not own.
    let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    f(&file)
}

/// Borrows a pinned descriptor.
///
/// # Safety
/// `fd` must stay open for `'a` (the entry is pinned).
pub(super) unsafe fn borrow<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: the caller keeps `fd` open for `'a`.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

pub(super) fn into_raw(file: File) -> RawFd {
    file.into_raw_fd()
}

pub(super) fn raw_of(fd: &OwnedFd) -> RawFd {
    fd.as_raw_fd()
}

#[cfg(test)]
pub(super) static FAIL_NEXT_CLOSE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// `close`, with its error (a file system may report a failed write only here).
pub(super) fn close(fd: RawFd) -> io::Result<()> {
    // SAFETY: the caller has claimed `fd` (BUSY, no pins) and gives it up here, once.
    let result = unsafe { libc::close(fd) };
    #[cfg(test)]
    if FAIL_NEXT_CLOSE.swap(false, std::sync::atomic::Ordering::SeqCst) {
        return Err(io::Error::from_raw_os_error(libc::EIO));
    }
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What `adopt` needs to make an already open fd reopenable: its path (Linux:
/// `/proc/self/fd/N`, checked against the fd's identity) and its access mode (`F_GETFL`).
/// `None` if it cannot be reopened.
pub(super) fn reopen_info(fd: &OwnedFd, metadata: &Metadata) -> Option<(PathBuf, OpenOptions)> {
    if !is_reopenable(metadata) {
        return None;
    }
    let path = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    if !path.is_absolute() || Identity::of(&fs::metadata(&path).ok()?) != Identity::of(metadata) {
        return None;
    }
    // SAFETY: F_GETFL only reads the open file's status flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags == -1 {
        return None;
    }
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

/// The fd's own file position, which becomes the virtual file's cursor.
pub(super) fn position(fd: &OwnedFd) -> u64 {
    use std::io::Seek;
    with_file(fd.as_raw_fd(), |mut file| file.stream_position()).unwrap_or(0)
}

#[inline]
pub(super) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[inline]
pub(super) fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::write_at(file, buf, offset)
}

pub(super) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

pub(super) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
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

/// A page-in failure; `identity` if the file at the path is not the file any more (or gone).
pub(super) struct PageInError {
    pub(super) error: io::Error,
    pub(super) identity: bool,
}

/// A page-in failure: the path and the reason, with the OS error as its `source`.
#[derive(Debug)]
struct Reason {
    message: String,
    source: Option<io::Error>,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{} ({source})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Reason {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

impl Backing {
    /// Keeps `reopen` in the entry (nobody else sees the slot yet). `false` if the path cannot
    /// be kept (over 65,535 bytes): the file then stays resident for life.
    pub(super) fn store(&self, shared: &Shared, reopen: Reopen) -> bool {
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
    pub(super) fn page_in(
        &self,
        _shared: &Shared,
        options: &OpenOptions,
    ) -> Result<RawDescriptor, PageInError> {
        let path = NonNull::new(self.path.load(Ordering::Relaxed))
            .expect("an entry that is paged out can be reopened");
        // SAFETY: the path lives until `clear`, which needs the LOCKED bit our caller holds.
        let path = unsafe { path_arena::as_path(path) };
        let fail = |error: io::Error, identity: bool, why: &str| PageInError {
            error: io::Error::new(
                error.kind(),
                Reason {
                    message: format!("{}: {why}", path.display()),
                    source: Some(error),
                },
            ),
            identity,
        };
        let file = match options.reopen().open(path) {
            Ok(file) => file,
            // A lack of descriptors stays the plain OS error (the caller evicts and retries).
            Err(error) if crate::limits::is_out_of_descriptors(&error) => {
                return Err(PageInError {
                    error,
                    identity: false,
                })
            }
            Err(error) => {
                let (identity, why) = match error.kind() {
                    io::ErrorKind::NotFound => (
                        true,
                        "renamed or removed while the virtual file was paged out",
                    ),
                    io::ErrorKind::PermissionDenied => (
                        false,
                        "access refused at reopen (permissions are checked again at every page-in)",
                    ),
                    _ => (false, "cannot be reopened to page the virtual file in"),
                };
                return Err(fail(error, identity, why));
            }
        };
        let identity = file
            .metadata()
            .map_err(|error| fail(error, false, "cannot be checked after reopening"))?;
        let recorded =
            Identity::unpack([0, 1, 2].map(|i| self.identity[i].load(Ordering::Relaxed)));
        if Identity::of(&identity) != recorded {
            return Err(PageInError {
                error: io::Error::new(
                    io::ErrorKind::NotFound,
                    Reason {
                        message: format!(
                            "{}: another file is at this path now (replaced, or a symlink \
                             swapped, while the virtual file was paged out); nothing was read \
                             or written",
                            path.display()
                        ),
                        source: None,
                    },
                ),
                identity: true,
            });
        }
        Ok(into_raw(file))
    }

    /// Forgets the facts (the slot is being freed; LOCKED is held).
    pub(super) fn clear(&self, shared: &Shared) {
        let path = self.path.swap(std::ptr::null_mut(), Ordering::Relaxed);
        if let Some(path) = NonNull::new(path) {
            // SAFETY: the path came from `shared.paths.alloc`; the pointer is gone from the
            // entry, and LOCKED keeps every reader out.
            unsafe { shared.paths.free(path) };
        }
    }
}

/// Whether an fd about to be evicted must stay instead: its file was unlinked while open, so
/// it could never be reopened.
pub(super) fn keep_at_eviction(fd: RawFd) -> bool {
    is_unlinked(fd).unwrap_or(false)
}

/// Unix: the first open's fd stays resident (a budget token is taken before the open).
pub(super) const OPEN_IS_RESIDENT: bool = true;

/// After the first open: the fd, resident, and how to reopen the file if it can be.
pub(super) fn first_open(
    file: File,
    path: PathBuf,
    metadata: &Metadata,
) -> (Option<RawFd>, Option<Reopen>) {
    (Some(into_raw(file)), Reopen::new(path, metadata))
}

/// Whether an append-mode write of zero bytes moves the file position to the end.
pub(super) const EMPTY_APPEND_MOVES_TO_END: bool = false;
