//! The few file calls partition makes that differ between Unix and Windows: a positional read,
//! a file's identity, a name from its bytes. Everything else in partition is portable; the
//! output directory has a module per platform (`outdir.rs`, `outdir_windows.rs`).

use std::fs::File;
use std::io;
use std::path::Path;

use super::outdir::Identity;

/// Reads at `offset`. On Windows (`seek_read`) the file's position moves too; on Unix
/// (`pread`) it does not.
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::read_at(file, buf, offset);
    #[cfg(windows)]
    return std::os::windows::fs::FileExt::seek_read(file, buf, offset);
}

/// Gives back to the system the memory freed so far that the allocator still keeps. glibc keeps
/// what a thread allocated in that thread's arena: a second half's buffers, freed when it is
/// dropped, could stay resident after its thread ended while the main thread read the same
/// records again into its own (a debug build under load: peak RSS one parser's + 25 MiB).
/// Elsewhere there is nothing to do.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a padding size and only works on the allocator's free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Fills `buf` from `offset` on (see [`read_at`]).
pub fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// A name's bytes back as a path component (on Windows as UTF-8: every name handoff writes is
/// ASCII).
pub fn name_of(bytes: &[u8]) -> std::borrow::Cow<'_, Path> {
    #[cfg(unix)]
    return std::borrow::Cow::Borrowed(Path::new(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes),
    ));
    #[cfg(windows)]
    return std::borrow::Cow::Owned(String::from_utf8_lossy(bytes).into_owned().into());
}

/// The identity of an open file, if it is a regular file (not a directory, a pipe, a console,
/// or on Windows a reparse point opened as itself).
pub fn identity(file: &File) -> io::Result<Option<Identity>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let metadata = file.metadata()?;
        Ok(metadata.is_file().then(|| (metadata.dev(), metadata.ino())))
    }
    #[cfg(windows)]
    {
        let info = super::outdir::handle_information(file)?;
        Ok(info.is_regular().then_some(info.identity()))
    }
}

/// The metadata of an input: its file's (symlinks followed), or standard input's.
pub fn input_metadata(path: &Path) -> io::Result<std::fs::Metadata> {
    if path == Path::new("-") {
        let stdin = io::stdin();
        #[cfg(unix)]
        let owned = std::os::fd::AsFd::as_fd(&stdin).try_clone_to_owned()?;
        #[cfg(windows)]
        let owned = std::os::windows::io::AsHandle::as_handle(&stdin).try_clone_to_owned()?;
        File::from(owned).metadata()
    } else {
        std::fs::metadata(path)
    }
}

/// The identity of an input (`-` is standard input), if it is a regular file (symlinks
/// followed). Fails if the input cannot be opened or examined.
pub fn input_identity(path: &Path) -> io::Result<Option<Identity>> {
    if path == Path::new("-") {
        #[cfg(unix)]
        let owned = std::os::fd::AsFd::as_fd(&io::stdin()).try_clone_to_owned()?;
        #[cfg(windows)]
        let owned = {
            let stdin = io::stdin();
            let handle = std::os::windows::io::AsHandle::as_handle(&stdin);
            // A GUI-less process started without a standard input has none: nothing to refuse.
            if std::os::windows::io::AsRawHandle::as_raw_handle(&handle).is_null() {
                return Ok(None);
            }
            handle.try_clone_to_owned()?
        };
        #[cfg(unix)]
        return identity(&File::from(owned));
        // A pipe or a console has no file identity to compare (the call fails on them).
        #[cfg(windows)]
        return Ok(identity(&File::from(owned)).unwrap_or(None));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path)?;
        Ok(metadata.is_file().then(|| (metadata.dev(), metadata.ino())))
    }
    #[cfg(windows)]
    {
        // A directory cannot be opened as a file without FILE_FLAG_BACKUP_SEMANTICS; it is
        // no regular file either.
        if std::fs::metadata(path)?.is_dir() {
            return Ok(None);
        }
        identity(&File::open(path)?)
    }
}

/// Closes `file`, reporting what `close` (`CloseHandle`) says: dropping a `File` ignores it.
pub fn close(file: File) -> io::Result<()> {
    #[cfg(unix)]
    {
        let fd = std::os::fd::IntoRawFd::into_raw_fd(file);
        // SAFETY: `fd` came out of the `File`, which owned it; it is closed here, once.
        if unsafe { libc::close(fd) } == 0 {
            return Ok(());
        }
    }
    #[cfg(windows)]
    {
        let handle = std::os::windows::io::IntoRawHandle::into_raw_handle(file);
        // SAFETY: `handle` came out of the `File`, which owned it; it is closed here, once.
        if unsafe { windows_sys::Win32::Foundation::CloseHandle(handle) } != 0 {
            return Ok(());
        }
    }
    Err(io::Error::last_os_error())
}
