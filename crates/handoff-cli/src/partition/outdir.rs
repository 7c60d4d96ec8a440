//! The output directory: everything the run does in it goes through one descriptor of it.
//!
//! Files are opened with `openat(OUTDIR fd, name, O_NOFOLLOW | …)`, and a name never holds a
//! `/`, so nothing is ever created, written or truncated outside OUTDIR: an existing symlink
//! where an output would go (dangling or not) fails the open (`ELOOP`, or `EEXIST` with
//! `O_EXCL`) and is reported, never followed. What the open finds must be a regular file with
//! one link (a hard link would write into a file elsewhere), checked with `fstat` on the open
//! descriptor before anything is written; only then is it truncated (`--force`). The
//! descriptor is then handed to the pager (`Pager::adopt`), which pages it out and in by its
//! path and checks the file's identity (device, inode) after every reopen, before any I/O: a
//! link swapped in later is caught there.
//!
//! Files that must be new (no `--force`/`--append`) take a cheaper road where Linux offers it:
//! the pager creates them itself, `O_CREAT | O_EXCL`, by a path through OUTDIR's descriptor
//! (`/proc/self/fd/N/name`, see [`Outdir::through_fd`]). `O_EXCL` never follows a symlink, and
//! the path always resolves to this very directory, so the guarantee is the same, with none of
//! the system calls that adopting an fd costs (`readlink`, `stat`, `fcntl`, `lseek`).

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::display::shown_path;

/// What to do with an output file that exists already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// The directory must hold no files (`O_EXCL`).
    Refuse,
    /// Add records at the end of existing files (a header only to empty ones).
    Append,
    /// Replace the files this run writes (truncated once checked).
    Replace,
}

/// A file's identity: device and inode.
pub type Identity = (u64, u64);

/// The output directory, open.
pub struct Outdir {
    path: PathBuf,
    fd: OwnedFd,
    /// Whether this run created it (it is removed again if the run is refused).
    created: bool,
    /// `/proc/self/fd/N`, if it names this directory (Linux).
    through_fd: Option<PathBuf>,
}

/// Why the output directory cannot be used.
pub enum OutdirError {
    /// It is not a directory (exit 2).
    NotADirectory(String),
    /// Creating or opening it failed (exit 1).
    Failed(String),
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

/// `openat(dir, name, flags | O_CLOEXEC | O_NOCTTY, 0o666)`.
fn open_at(dir: BorrowedFd<'_>, name: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    let name = cstring(name)?;
    let flags = flags | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: `dir` is an open descriptor borrowed for the call; `name` is a NUL-terminated
    // string that outlives it; the mode is read only with O_CREAT.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, 0o666 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: a symlink is reported as one.
fn stat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<libc::stat> {
    let name = cstring(name)?;
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `dir` is open for the call, `name` is NUL-terminated, and `stat` is writable;
    // fstatat fills it when it returns 0.
    let result = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            stat.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatat succeeded, so `stat` is initialised.
    Ok(unsafe { stat.assume_init() })
}

/// Runs `f` on a `File` view of `fd`, which stays open and owned by the caller.
fn with_file<R>(fd: BorrowedFd<'_>, f: impl FnOnce(&File) -> R) -> R {
    // SAFETY: `fd` is open for the whole call; the `File` is never dropped, so it never closes
    // what it does not own.
    let file = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd.as_raw_fd()) });
    f(&file)
}

/// `error`, saying which directory under OUTDIR it concerns.
fn in_directory(directory: &[u8], error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!(
            "its directory {}: {error}",
            super::display::shown(directory)
        ),
    )
}

impl Outdir {
    /// Creates OUTDIR (and its parents) if missing and opens it. An existing OUTDIR that is not
    /// a directory is refused.
    pub fn prepare(path: &Path) -> Result<Outdir, OutdirError> {
        let shown = shown_path(path);
        let created = match std::fs::metadata(path) {
            Ok(metadata) if metadata.is_dir() => false,
            Ok(_) => {
                return Err(OutdirError::NotADirectory(format!(
                    "{shown} is not a directory"
                )))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(path).map_err(|e| {
                    if e.raw_os_error() == Some(libc::ENOTDIR)
                        || e.kind() == io::ErrorKind::AlreadyExists
                    {
                        OutdirError::NotADirectory(format!("{shown} is not a directory ({e})"))
                    } else {
                        OutdirError::Failed(format!("cannot create {shown}: {e}"))
                    }
                })?;
                true
            }
            Err(error) if error.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(OutdirError::NotADirectory(format!(
                    "{shown} is not a directory ({error})"
                )))
            }
            Err(error) => return Err(OutdirError::Failed(format!("{shown}: {error}"))),
        };
        let fd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(path)
            .map_err(|e| OutdirError::Failed(format!("cannot open {shown}: {e}")))?;
        let fd = OwnedFd::from(fd);
        let through_fd = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        let same =
            |a: &std::fs::Metadata, b: &std::fs::Metadata| (a.dev(), a.ino()) == (b.dev(), b.ino());
        let through_fd = match (
            std::fs::metadata(&through_fd),
            with_file(fd.as_fd(), File::metadata),
        ) {
            (Ok(a), Ok(b)) if a.is_dir() && same(&a, &b) => Some(through_fd),
            _ => None,
        };
        Ok(Outdir {
            path: path.to_path_buf(),
            fd,
            created,
            through_fd,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path to `name` in OUTDIR that goes through OUTDIR's descriptor (`/proc/self/fd/N/
    /// name`, Linux), if there is one. Opened with `O_CREAT | O_EXCL` it creates a new regular
    /// file in this very directory, never through a symlink (`O_EXCL` fails on one, dangling
    /// or not), whatever happens to OUTDIR's path meanwhile; so the pager can create a new
    /// output by it (and reopen it by it) at no cost beyond its own open.
    pub fn through_fd(&self, name: &str) -> Option<PathBuf> {
        self.through_fd.as_ref().map(|dir| dir.join(name))
    }

    /// Removes OUTDIR again if this run created it and it is still empty (a refused run
    /// leaves things as they were).
    pub fn remove_if_created(&self) {
        if self.created {
            let _ = std::fs::remove_dir(&self.path);
        }
    }

    /// The names of the entries in OUTDIR.
    pub fn names(&self) -> io::Result<Vec<Vec<u8>>> {
        // Read through the descriptor: /proc/self/fd/N names this very directory.
        let listed = std::fs::read_dir(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
            .or_else(|_| std::fs::read_dir(&self.path))?;
        listed
            .map(|entry| Ok(entry?.file_name().as_bytes().to_vec()))
            .collect()
    }

    /// The identities of the regular files in OUTDIR, and in its directories down to `depth`
    /// components (symlinks not followed).
    pub fn file_identities(&self, depth: usize) -> io::Result<HashSet<Identity>> {
        Ok(self
            .files(depth)?
            .into_iter()
            .map(|(_, identity)| identity)
            .collect())
    }

    /// Opens the directory that holds `path` (a relative path, `/` between components; the
    /// last one is the file), one component at a time from OUTDIR's descriptor, each with
    /// `O_NOFOLLOW | O_DIRECTORY` (a symlink or anything but a directory fails the open, never
    /// followed), making the missing ones with `mkdirat` if `create`. Returns that directory
    /// (`None`: OUTDIR itself) and the file's name. `make_room` is called on EMFILE/ENFILE.
    fn parent<'p>(
        &self,
        path: &'p [u8],
        create: bool,
        make_room: &mut dyn FnMut() -> bool,
    ) -> io::Result<(Option<OwnedFd>, &'p [u8])> {
        let mut components = path.split(|&b| b == b'/').peekable();
        let mut dir: Option<OwnedFd> = None;
        let mut walked = Vec::new();
        while let Some(component) = components.next() {
            if components.peek().is_none() {
                return Ok((dir, component));
            }
            if matches!(component, b"" | b"." | b"..") {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an empty, `.` or `..` component (never used)",
                ));
            }
            if !walked.is_empty() {
                walked.push(b'/');
            }
            walked.extend_from_slice(component);
            let at = dir.as_ref().map_or(self.fd.as_fd(), AsFd::as_fd);
            if create {
                let name = cstring(component)?;
                // SAFETY: `at` is an open directory descriptor for the call, `name` is
                // NUL-terminated; mkdirat never follows a symlink at the last component (it
                // fails with EEXIST).
                let made = unsafe { libc::mkdirat(at.as_raw_fd(), name.as_ptr(), 0o777) };
                if made != 0 {
                    let error = io::Error::last_os_error();
                    if error.kind() != io::ErrorKind::AlreadyExists {
                        return Err(in_directory(&walked, error));
                    }
                }
            }
            let opened = loop {
                match open_at(
                    at,
                    component,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                ) {
                    Err(error) if handoff::limits::is_out_of_descriptors(&error) && make_room() => {
                        continue
                    }
                    opened => break opened,
                }
            };
            match opened {
                Ok(fd) => dir = Some(fd),
                Err(error) if matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                    let link = stat_at(at, component)
                        .is_ok_and(|stat| stat.st_mode & libc::S_IFMT == libc::S_IFLNK);
                    let why = if link {
                        "is a symbolic link (never followed: remove it, or choose another OUTDIR)"
                    } else {
                        "is not a directory"
                    };
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("its directory {} {why}", super::display::shown(&walked)),
                    ));
                }
                Err(error) => return Err(in_directory(&walked, error)),
            }
        }
        unreachable!("split yields one component at least")
    }

    /// The regular files under OUTDIR (symlinks never followed), at most `depth` components
    /// deep (1: OUTDIR's own files): each one's path (`/` between components) and identity.
    pub fn files(&self, depth: usize) -> io::Result<Vec<(Vec<u8>, Identity)>> {
        let mut found = Vec::new();
        self.files_in(self.fd.as_fd(), &[], depth, &mut found)?;
        Ok(found)
    }

    fn files_in(
        &self,
        dir: BorrowedFd<'_>,
        path: &[u8],
        depth: usize,
        found: &mut Vec<(Vec<u8>, Identity)>,
    ) -> io::Result<()> {
        let listed = match std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd())) {
            Ok(listed) => listed,
            Err(_) if path.is_empty() => std::fs::read_dir(&self.path)?,
            Err(error) => return Err(error),
        };
        for entry in listed {
            let name = entry?.file_name().as_bytes().to_vec();
            let Ok(stat) = stat_at(dir, &name) else {
                continue;
            };
            let mut inner = path.to_vec();
            if !inner.is_empty() {
                inner.push(b'/');
            }
            inner.extend_from_slice(&name);
            match stat.st_mode & libc::S_IFMT {
                // The types of st_dev and st_ino differ between platforms.
                #[allow(clippy::unnecessary_cast)]
                libc::S_IFREG => found.push((inner, (stat.st_dev as u64, stat.st_ino as u64))),
                libc::S_IFDIR if depth > 1 => {
                    let Ok(sub) = open_at(
                        dir,
                        &name,
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    ) else {
                        continue;
                    };
                    self.files_in(sub.as_fd(), &inner, depth - 1, found)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Opens `name` in OUTDIR for reading, if it is a regular file (never through a symlink).
    /// `name` may be a path of several components (`/` between them): none is followed.
    pub fn open_existing(&self, name: &[u8]) -> io::Result<File> {
        let (dir, name) = self.parent(name, false, &mut || false)?;
        let fd = open_at(
            dir.as_ref().map_or(self.fd.as_fd(), AsFd::as_fd),
            name,
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        )?;
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(file)
    }

    /// Creates the new output file `name` in OUTDIR, `O_CREAT | O_EXCL | O_NOFOLLOW`: a regular
    /// file of this run's own, never through a symlink (dangling or not: `EEXIST`), so none
    /// of [`Outdir::open_output`]'s checks are needed. For a file that is written once and
    /// closed at once, outside the pager (see `writer`).
    /// `name` is a plain name (no `/`: an `openat` would follow a link in a directory part).
    pub fn create_new(&self, name: &[u8]) -> io::Result<File> {
        if name.contains(&b'/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a name with a directory takes Outdir::open_output",
            ));
        }
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        open_at(self.fd.as_fd(), name, flags).map(File::from)
    }

    /// Opens for writing the output file `name` that this run created (`create_new`) and
    /// closed: never through a symlink (`O_NOFOLLOW`), never blocking on a FIFO put in its
    /// place (`O_NONBLOCK`, cleared once checked), and only if it is still the file created
    /// (`identity`: device and inode, by `fstat` on the open descriptor); else an error
    /// (`ErrorKind::Other`) and nothing written. `make_room` is called on EMFILE/ENFILE, and
    /// the open retried while it frees one.
    pub fn reopen_created(
        &self,
        name: &[u8],
        identity: Identity,
        mut make_room: impl FnMut() -> bool,
    ) -> io::Result<OwnedFd> {
        let flags = libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        let fd = loop {
            match open_at(self.fd.as_fd(), name, flags) {
                Err(error) if handoff::limits::is_out_of_descriptors(&error) && make_room() => {
                    continue
                }
                Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "it was replaced by a symbolic link while this run was writing it \
                         (never followed: nothing was written through it)",
                    ))
                }
                Err(error) => return Err(error),
                Ok(fd) => break fd,
            }
        };
        let metadata = with_file(fd.as_fd(), |file| file.metadata())?;
        if !metadata.is_file() || (metadata.dev(), metadata.ino()) != identity {
            return Err(io::Error::other(
                "it was replaced by another file while this run was writing it (nothing was \
                 written to the other file)",
            ));
        }
        // SAFETY: F_SETFL on a descriptor we own changes only its status flags.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, 0) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }

    /// Opens (creating it as `existing` says) the output file `name` in OUTDIR: never through
    /// a symlink, only a regular file with one link, truncated (`Replace`) only once checked.
    /// `name` may be a path of several components (`/` between them): the directories are
    /// made (`mkdirat`) and opened one by one, none followed if it is a symlink (see
    /// `parent`).
    /// `make_room` is called on EMFILE/ENFILE, and the open retried while it frees one.
    pub fn open_output(
        &self,
        name: &[u8],
        existing: Existing,
        mut make_room: impl FnMut() -> bool,
    ) -> io::Result<OwnedFd> {
        // O_NONBLOCK: a FIFO put where an output goes must not block the open (it is refused
        // below); it changes nothing for a regular file.
        let flags = libc::O_NOFOLLOW
            | libc::O_NONBLOCK
            | match existing {
                Existing::Refuse => libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                Existing::Replace => libc::O_WRONLY | libc::O_CREAT,
                Existing::Append => libc::O_RDWR | libc::O_CREAT | libc::O_APPEND,
            };
        let (dir, name) = self.parent(name, true, &mut make_room)?;
        let at = dir.as_ref().map_or(self.fd.as_fd(), AsFd::as_fd);
        let fd = loop {
            match open_at(at, name, flags) {
                Err(error) if handoff::limits::is_out_of_descriptors(&error) && make_room() => continue,
                Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "it is a symbolic link (never followed: remove it, or choose another OUTDIR)",
                    ))
                }
                Err(error) => return Err(error),
                Ok(fd) => break fd,
            }
        };
        let metadata = with_file(fd.as_fd(), |file| file.metadata())?;
        if !metadata.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is not a regular file",
            ));
        }
        if metadata.nlink() > 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "it has {} hard links (writing it would change a file outside OUTDIR)",
                    metadata.nlink()
                ),
            ));
        }
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own change only its status flags.
        unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            if flags == -1
                || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) == -1
            {
                return Err(io::Error::last_os_error());
            }
        }
        if existing == Existing::Replace && metadata.len() > 0 {
            with_file(fd.as_fd(), |file| file.set_len(0))?;
        }
        Ok(fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use handoff::pager::{OpenOptions, Pager};

    fn outdir() -> (tempfile::TempDir, Outdir) {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let Ok(outdir) = Outdir::prepare(&out) else {
            panic!("prepare failed")
        };
        (dir, outdir)
    }

    #[test]
    fn a_symlink_is_never_followed_by_either_road() {
        let (dir, out) = outdir();
        let target = dir.path().join("target");
        std::os::unix::fs::symlink(&target, out.path().join("a.csv")).unwrap();
        std::fs::write(dir.path().join("kept"), "kept").unwrap();
        std::os::unix::fs::symlink(dir.path().join("kept"), out.path().join("b.csv")).unwrap();
        // The pager's road: O_CREAT | O_EXCL through the descriptor.
        let path = out.through_fd("a.csv").expect("Linux has /proc/self/fd");
        let error = Pager::new(4)
            .open(path, OpenOptions::new().write(true).create_new(true))
            .err()
            .unwrap();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        // openat + O_NOFOLLOW, every mode.
        for mode in [Existing::Refuse, Existing::Replace, Existing::Append] {
            for name in ["a.csv", "b.csv"] {
                assert!(out.open_output(name.as_bytes(), mode, || false).is_err());
            }
        }
        assert!(!target.exists());
        assert_eq!(std::fs::read(dir.path().join("kept")).unwrap(), b"kept");
    }

    #[test]
    fn hard_links_and_fifos_are_refused_and_nothing_is_truncated() {
        let (dir, out) = outdir();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "outside").unwrap();
        std::fs::hard_link(&outside, out.path().join("a.csv")).unwrap();
        let fifo = cstring(out.path().join("f.csv").as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        for mode in [Existing::Replace, Existing::Append] {
            let error = out.open_output(b"a.csv", mode, || false).err().unwrap();
            assert!(error.to_string().contains("hard links"), "{error}");
            // Without a reader, a FIFO would block a plain open for writing.
            assert!(out.open_output(b"f.csv", mode, || false).is_err());
        }
        assert_eq!(std::fs::read(&outside).unwrap(), b"outside");
    }
}
