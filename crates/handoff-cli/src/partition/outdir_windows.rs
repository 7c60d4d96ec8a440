//! The output directory on Windows (the Unix one is `outdir.rs`; both give the same API).
//!
//! OUTDIR is held open for the whole run by a handle that does not share delete access, so it
//! cannot be renamed, replaced or removed while the run writes into it: the paths
//! `OUTDIR\name` the files are opened by keep naming this very directory (Windows' stand-in
//! for Unix's `openat` on a directory descriptor).
//!
//! Every output is opened with `FILE_FLAG_OPEN_REPARSE_POINT`, so a symbolic link or junction
//! where an output would go is opened as itself, never followed, and refused; what the open
//! finds must be a regular file with one link (`GetFileInformationByHandle`), checked before
//! anything is written; only then is it truncated (`--force`). The handle is then handed to
//! the pager (`Pager::adopt`), which keeps it for life: HANDLEs are plentiful on Windows, and
//! the pager's budget counts only C-runtime descriptors, which partition never asks for.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use windows_sys::Win32::Storage::FileSystem::{
    GetFileInformationByHandle, BY_HANDLE_FILE_INFORMATION, FILE_ATTRIBUTE_DIRECTORY,
    FILE_ATTRIBUTE_REPARSE_POINT, FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT,
    FILE_SHARE_READ, FILE_SHARE_WRITE,
};

use super::display::shown_path;

/// An entry name's bytes: its UTF-8 (an unpaired surrogate, which no name handoff writes has,
/// becomes U+FFFD).
fn name_bytes(name: &std::ffi::OsStr) -> Vec<u8> {
    name.to_string_lossy().into_owned().into_bytes()
}

/// What to do with an output file that exists already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// The directory must hold no files (`CREATE_NEW`).
    Refuse,
    /// Add records at the end of existing files (a header only to empty ones).
    Append,
    /// Replace the files this run writes (truncated once checked).
    Replace,
}

/// A file's identity: volume serial number and file index.
pub type Identity = (u64, u64);

/// What `GetFileInformationByHandle` says about an open file.
pub struct Information {
    info: BY_HANDLE_FILE_INFORMATION,
}

impl Information {
    /// Neither a directory nor a reparse point (a symbolic link or a junction opened as
    /// itself).
    pub fn is_regular(&self) -> bool {
        self.info.dwFileAttributes & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT) == 0
    }

    fn is_reparse_point(&self) -> bool {
        self.info.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT != 0
    }

    fn links(&self) -> u32 {
        self.info.nNumberOfLinks
    }

    /// (volume serial number, file index).
    pub fn identity(&self) -> Identity {
        (
            u64::from(self.info.dwVolumeSerialNumber),
            u64::from(self.info.nFileIndexHigh) << 32 | u64::from(self.info.nFileIndexLow),
        )
    }
}

/// `GetFileInformationByHandle` on an open file.
pub fn handle_information(file: &File) -> io::Result<Information> {
    // SAFETY: an all-zero BY_HANDLE_FILE_INFORMATION is a valid value (plain integers).
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: the handle is open for the call (`file` is borrowed); `info` is writable.
    if unsafe { GetFileInformationByHandle(file.as_raw_handle(), &mut info) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Information { info })
}

/// The output directory, open.
pub struct Outdir {
    path: PathBuf,
    /// OUTDIR's handle, without delete sharing (taken out to remove OUTDIR again).
    handle: Mutex<Option<OwnedHandle>>,
    /// Whether this run created it (it is removed again if the run is refused).
    created: bool,
}

/// Why the output directory cannot be used.
pub enum OutdirError {
    /// It is not a directory (exit 2).
    NotADirectory(String),
    /// Creating or opening it failed (exit 1).
    Failed(String),
}

/// Options that open an entry of OUTDIR as itself: a reparse point is not followed.
fn as_itself() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
    options
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

/// The regular files in `dir` (whose path under OUTDIR is `path`), and in its directories
/// down to `depth` (reparse points neither listed nor entered).
fn files_in(
    dir: &Path,
    path: &[u8],
    depth: usize,
    found: &mut Vec<(Vec<u8>, Identity)>,
) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = name_bytes(&entry.file_name());
        // No access asked: only the entry's information is read (directories too).
        let opened = as_itself()
            .access_mode(0)
            .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS)
            .open(entry.path());
        let Ok(info) = opened.and_then(|file| handle_information(&file)) else {
            continue;
        };
        let mut inner = path.to_vec();
        if !inner.is_empty() {
            inner.push(b'/');
        }
        inner.extend_from_slice(&name);
        if info.is_regular() {
            found.push((inner, info.identity()));
        } else if !info.is_reparse_point()
            && info.info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY != 0
            && depth > 1
        {
            files_in(&entry.path(), &inner, depth - 1, found)?;
        }
    }
    Ok(())
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
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        OutdirError::NotADirectory(format!("{shown} is not a directory ({e})"))
                    } else {
                        OutdirError::Failed(format!("cannot create {shown}: {e}"))
                    }
                })?;
                true
            }
            // ERROR_DIRECTORY (267): a file where a directory of the path should be.
            Err(error) if matches!(error.raw_os_error(), Some(3 | 267)) => {
                return Err(OutdirError::NotADirectory(format!(
                    "{shown} is not a directory ({error})"
                )))
            }
            Err(error) => return Err(OutdirError::Failed(format!("{shown}: {error}"))),
        };
        let handle = std::fs::OpenOptions::new()
            .read(true)
            .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE)
            .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
            .open(path)
            .map_err(|e| OutdirError::Failed(format!("cannot open {shown}: {e}")))?;
        Ok(Outdir {
            path: path.to_path_buf(),
            handle: Mutex::new(Some(handle.into())),
            created,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// None on Windows: every output is opened by [`Outdir::open_output`].
    pub fn through_fd(&self, _name: &str) -> Option<PathBuf> {
        None
    }

    /// Removes OUTDIR again if this run created it and it is still empty (a refused run
    /// leaves things as they were).
    pub fn remove_if_created(&self) {
        if self.created {
            drop(self.handle.lock().map(|mut handle| handle.take()));
            let _ = std::fs::remove_dir(&self.path);
        }
    }

    /// The names of the entries in OUTDIR.
    pub fn names(&self) -> io::Result<Vec<Vec<u8>>> {
        std::fs::read_dir(&self.path)?
            .map(|entry| Ok(name_bytes(&entry?.file_name())))
            .collect()
    }

    /// The identities of the regular files in OUTDIR, and in its directories down to `depth`
    /// components (reparse points not followed).
    pub fn file_identities(&self, depth: usize) -> io::Result<HashSet<Identity>> {
        Ok(self
            .files(depth)?
            .into_iter()
            .map(|(_, identity)| identity)
            .collect())
    }

    /// The regular files under OUTDIR (reparse points never followed), at most `depth`
    /// components deep (1: OUTDIR's own files): each one's path (`/` between components) and
    /// identity.
    pub fn files(&self, depth: usize) -> io::Result<Vec<(Vec<u8>, Identity)>> {
        let mut found = Vec::new();
        files_in(&self.path, &[], depth, &mut found)?;
        Ok(found)
    }

    /// Opens the directories that hold `path` (a relative path, `/` between components; the
    /// last one is the file) one component at a time, each as itself (a reparse point, a
    /// symbolic link or a junction, is refused, never followed), making the missing ones if
    /// `create`. Returns their handles, which share no delete access, so that none of them can
    /// be renamed or replaced while they are held (while the file is opened by its path), and
    /// the file's path.
    fn parent(&self, path: &[u8], create: bool) -> io::Result<(Vec<File>, PathBuf)> {
        let mut components = path.split(|&b| b == b'/').peekable();
        let mut held = Vec::new();
        let mut at = self.path.clone();
        let mut walked = Vec::new();
        while let Some(component) = components.next() {
            at.push(super::os::name_of(component));
            if components.peek().is_none() {
                return Ok((held, at));
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
            if create {
                if let Err(error) = std::fs::create_dir(&at) {
                    if error.kind() != io::ErrorKind::AlreadyExists {
                        return Err(in_directory(&walked, error));
                    }
                }
            }
            let dir = as_itself()
                .read(true)
                .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE)
                .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS)
                .open(&at)
                .map_err(|error| in_directory(&walked, error))?;
            let info = handle_information(&dir).map_err(|error| in_directory(&walked, error))?;
            if info.is_reparse_point() || info.info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY == 0
            {
                let why = if info.is_reparse_point() {
                    "is a symbolic link or a junction (never followed: remove it, or choose \
                     another OUTDIR)"
                } else {
                    "is not a directory"
                };
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("its directory {} {why}", super::display::shown(&walked)),
                ));
            }
            held.push(dir);
        }
        unreachable!("split yields one component at least")
    }

    /// Opens `name` in OUTDIR for reading, if it is a regular file (never through a reparse
    /// point). `name` may be a path of several components (`/` between them): none is
    /// followed.
    pub fn open_existing(&self, name: &[u8]) -> io::Result<File> {
        let (_held, path) = self.parent(name, false)?;
        let file = as_itself().read(true).open(path)?;
        if !handle_information(&file)?.is_regular() {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(file)
    }

    /// Creates the new output file `name` (a plain name) in OUTDIR: `CREATE_NEW` with
    /// `FILE_FLAG_OPEN_REPARSE_POINT`, so an existing entry of any kind (a reparse point
    /// included, dangling or not) fails the open. For a file written once and closed at once,
    /// outside the pager (see `writer`).
    pub fn create_new(&self, name: &[u8]) -> io::Result<File> {
        debug_assert!(!name.contains(&b'/'), "a plain name");
        as_itself()
            .write(true)
            .create_new(true)
            .open(self.path.join(super::os::name_of(name)))
    }

    /// Opens for writing the output file `name` that this run created (`create_new`) and
    /// closed: never through a reparse point, and only if it is still the file created
    /// (`identity`: volume serial number and file index); else an error (`ErrorKind::Other`)
    /// and nothing written. `_make_room` is for Unix's EMFILE.
    pub fn reopen_created(
        &self,
        name: &[u8],
        identity: Identity,
        _make_room: impl FnMut() -> bool,
    ) -> io::Result<OwnedHandle> {
        let file = as_itself()
            .write(true)
            .open(self.path.join(super::os::name_of(name)))?;
        let info = handle_information(&file)?;
        if !info.is_regular() || info.identity() != identity {
            return Err(io::Error::other(
                "it was replaced by another file while this run was writing it (nothing was \
                 written to the other file)",
            ));
        }
        Ok(file.into())
    }

    /// Opens (creating it as `existing` says) the output file `name` in OUTDIR: never through
    /// a reparse point, only a regular file with one link, truncated (`Replace`) only once
    /// checked; positioned at its end for `Append`. `name` may be a path of several components
    /// (`/` between them): the directories are made and opened one by one, none followed if
    /// it is a reparse point, and held while the file is opened (see `parent`). `_make_room`
    /// is for Unix's EMFILE: Windows has no limit on HANDLEs below memory.
    pub fn open_output(
        &self,
        name: &[u8],
        existing: Existing,
        _make_room: impl FnMut() -> bool,
    ) -> io::Result<OwnedHandle> {
        let mut options = as_itself();
        match existing {
            Existing::Refuse => options.write(true).create_new(true),
            // Not `truncate`: CREATE_ALWAYS would truncate before the checks.
            Existing::Replace => options.write(true).create(true),
            Existing::Append => options.read(true).append(true).create(true),
        };
        let (_held, path) = self.parent(name, true)?;
        let mut file = options.open(path)?;
        let info = handle_information(&file)?;
        if info.is_reparse_point() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a symbolic link or a junction (never followed: remove it, or choose \
                 another OUTDIR)",
            ));
        }
        if !info.is_regular() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is not a regular file",
            ));
        }
        if info.links() > 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "it has {} hard links (writing it would change a file outside OUTDIR)",
                    info.links()
                ),
            ));
        }
        match existing {
            Existing::Replace if file.metadata()?.len() > 0 => file.set_len(0)?,
            Existing::Append => {
                file.seek(SeekFrom::End(0))?;
            }
            _ => {}
        }
        Ok(file.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outdir() -> (tempfile::TempDir, Outdir) {
        let dir = tempfile::tempdir().unwrap();
        let Ok(outdir) = Outdir::prepare(&dir.path().join("out")) else {
            panic!("prepare failed")
        };
        (dir, outdir)
    }

    /// A hard link where an output would go is refused by every mode (`CREATE_NEW` finds it
    /// there; the others count its links), and the file it shares stays whole.
    #[test]
    fn hard_links_are_refused_and_nothing_is_truncated() {
        let (dir, out) = outdir();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "outside").unwrap();
        std::fs::hard_link(&outside, out.path().join("a.csv")).unwrap();
        for mode in [Existing::Replace, Existing::Append] {
            let error = out.open_output(b"a.csv", mode, || false).err().unwrap();
            assert!(error.to_string().contains("hard links"), "{error}");
        }
        let error = out
            .open_output(b"a.csv", Existing::Refuse, || false)
            .err()
            .unwrap();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "{error}");
        let error = out.create_new(b"a.csv").err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "{error}");
        assert_eq!(std::fs::read(&outside).unwrap(), b"outside");
    }

    /// Directories in a name are made under OUTDIR; a file where a directory should be is
    /// refused by name; the files found down to a depth are the regular ones, with their
    /// identities.
    #[test]
    fn directories_are_made_and_a_file_in_their_place_is_refused() {
        let (_dir, out) = outdir();
        let file = out
            .open_output(b"x/y/a.csv", Existing::Refuse, || false)
            .unwrap();
        drop(file);
        assert!(out.path().join("x").join("y").join("a.csv").is_file());
        std::fs::write(out.path().join("f"), "f").unwrap();
        let error = out
            .open_output(b"f/a.csv", Existing::Replace, || false)
            .err()
            .unwrap();
        assert!(error.to_string().contains("its directory f"), "{error}");
        assert_eq!(std::fs::read(out.path().join("f")).unwrap(), b"f");
        let mut found: Vec<Vec<u8>> = out.files(3).unwrap().into_iter().map(|f| f.0).collect();
        found.sort();
        assert_eq!(found, [b"f".to_vec(), b"x/y/a.csv".to_vec()]);
        assert_eq!(out.files(1).unwrap().len(), 1);
        assert_eq!(out.file_identities(3).unwrap().len(), 2);
    }

    /// `--append` opens at the end; `--force` truncates only once checked.
    #[test]
    fn append_starts_at_the_end_and_replace_truncates() {
        let (_dir, out) = outdir();
        std::fs::write(out.path().join("a.csv"), "k\n1\n").unwrap();
        let mut file = File::from(
            out.open_output(b"a.csv", Existing::Append, || false)
                .unwrap(),
        );
        assert_eq!(file.stream_position().unwrap(), 4);
        std::io::Write::write_all(&mut file, b"2\n").unwrap();
        drop(file);
        assert_eq!(
            std::fs::read(out.path().join("a.csv")).unwrap(),
            b"k\n1\n2\n"
        );
        drop(
            out.open_output(b"a.csv", Existing::Replace, || false)
                .unwrap(),
        );
        assert_eq!(std::fs::read(out.path().join("a.csv")).unwrap(), b"");
    }
}
