//! The platform contract: what the portable pager needs from a platform's backing, as one
//! trait that `unix` (reopen by path, identity checked) and `windows` (the `HANDLE` kept for
//! life, C-runtime descriptors paged) implement. The portable layer never names a platform
//! type; everything it asks of the platform is here.

use std::fs::{self, File, Metadata};
use std::io;
use std::path::PathBuf;

use super::OpenOptions;

/// A real descriptor as the state word holds it (32 bits): a Unix fd, or a Windows C-runtime
/// descriptor.
pub(super) type RawDescriptor = std::ffi::c_int;

/// What a first open or an `adopt` leaves for the table.
pub(super) struct Opened<R> {
    /// The descriptor that stays resident (Unix), for which a budget token is taken; `None`
    /// where nothing is resident until C code asks (Windows).
    pub(super) resident: Option<File>,
    /// How to page the file in again; `None` if it cannot be (it then stays resident).
    pub(super) reopen: Option<R>,
    /// The access a page-in asks for.
    pub(super) options: OpenOptions,
    /// Whether writes append (the file was opened, or found, in append mode).
    pub(super) append: bool,
    /// Whether positional I/O works (a regular file or a block device).
    pub(super) seekable: bool,
    /// The cursor to start with (an adopted handle's own position).
    pub(super) cursor: u64,
}

/// A platform's backing of one entry (its reopen facts), and the platform's calls.
///
/// Descriptors are `RawDescriptor`s because the entry's state word holds them; every function
/// that takes one and relies on the caller for its validity is an `unsafe fn`.
pub(crate) trait Backing: Default + Send + Sync + Sized {
    /// Per-table state shared by the entries (Unix: the path arena).
    type Shared: Default + Send + Sync;
    /// What a first open gives the entry to find the file again.
    type Reopen;

    /// Whether the first open leaves a descriptor resident (Unix), so that a budget token is
    /// taken before it; `false` on Windows, where the first open keeps only a `HANDLE`.
    const OPEN_IS_RESIDENT: bool;
    /// Whether an append-mode write of zero bytes moves the file position to the end (as the
    /// platform's own `File` does: not on Unix, yes on Windows).
    const EMPTY_APPEND_MOVES_TO_END: bool;

    /// Flags every open adds (Unix: `O_NOCTTY`).
    fn open_flags(options: &mut fs::OpenOptions);

    /// After the first open of `path`: what stays resident and how to reopen.
    fn first_open(
        file: File,
        path: PathBuf,
        metadata: &Metadata,
        options: &OpenOptions,
    ) -> Opened<Self::Reopen>;

    /// Takes ownership of an open handle (Unix: any fd; Windows: any `HANDLE`). On error the
    /// handle is closed.
    fn adopt(handle: crate::crt::OsHandle) -> io::Result<Opened<Self::Reopen>>;

    /// The descriptor of a resident file, now owned by the entry.
    fn into_descriptor(file: File) -> RawDescriptor;

    /// Keeps `reopen` in the entry (nobody else sees the slot yet). `false` if it cannot be
    /// kept: the file then stays resident for life.
    fn store(&self, shared: &Self::Shared, reopen: Self::Reopen) -> bool;

    /// Opens a descriptor for the file again (the entry's LOCKED bit is held). A failure
    /// that is the pager's own (the file removed or replaced, access refused) carries a
    /// [`PageInError`](super::PageInError) payload; a lack of descriptors stays the plain OS
    /// error, so that the caller evicts and retries.
    fn page_in(&self, shared: &Self::Shared, options: &OpenOptions) -> io::Result<RawDescriptor>;

    /// Forgets the reopen facts (the slot is being freed; LOCKED is held).
    fn clear(&self, shared: &Self::Shared);

    /// Whether a descriptor about to be evicted must stay resident instead (Unix: its file
    /// was unlinked, so it could never be reopened).
    ///
    /// # Safety
    /// `fd` must be open and claimed (BUSY) by the caller.
    unsafe fn keep_at_eviction(fd: RawDescriptor) -> bool;

    /// Closes a descriptor, with its error (a file system may report a failed write only
    /// here).
    ///
    /// # Safety
    /// `fd` must be open and the caller's to give up (claimed, or never published); it is not
    /// used again.
    unsafe fn close(fd: RawDescriptor) -> io::Result<()>;

    /// `pread`-like: reads at `offset` without using the file position.
    fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// `pwrite`-like: writes at `offset` without using the file position.
    fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// Reads all of `buf` at `offset`.
    fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()>;
}
