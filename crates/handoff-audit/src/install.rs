//! Writing the embedded library to disk, once per distinct build.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::LIBRARY;

/// Makes sure `dir` holds this build's preload library and returns its path.
///
/// The file is named after the SHA-256 of its bytes (`libhandoff_audit-<16 hex>.so`), so that
/// different builds never overwrite each other; an existing file is used only if its bytes hash
/// to that name, otherwise it is replaced. It is written to a temporary file in `dir` first and
/// renamed into place, so concurrent runs never see half a library.
///
/// `dir` is created with mode 0700 if it does not exist, and must be a directory (not a
/// symlink) owned by the effective user that nobody else can write to: otherwise another user
/// could swap the library between this check and the loader mapping it into every audited
/// process.
///
/// # Errors
/// Creating `dir`, writing the file or renaming it fails, or `dir` is not safe: the error
/// names the path.
pub fn install(dir: &Path) -> io::Result<PathBuf> {
    let named =
        |e: io::Error, what: &Path| io::Error::new(e.kind(), format!("{}: {e}", what.display()));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| named(e, dir))?;
    check_private(dir)?;
    let digest = Sha256::digest(LIBRARY);
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("libhandoff_audit-{name}.so"));
    if let Ok(existing) = fs::read(&path) {
        if Sha256::digest(&existing) == digest {
            return Ok(path);
        }
    }
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| named(e, dir))?;
    file.write_all(LIBRARY).map_err(|e| named(e, file.path()))?;
    // Readable by whatever the audited program runs as (the dynamic loader maps it).
    file.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(|e| named(e, file.path()))?;
    file.persist(&path).map_err(|e| named(e.error, &path))?;
    Ok(path)
}

/// Refuses a directory that is a symlink, is owned by another user, or that others may write.
fn check_private(dir: &Path) -> io::Result<()> {
    let metadata = fs::symlink_metadata(dir)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !metadata.is_dir() || metadata.uid() != euid || metadata.mode() & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{}: not a private directory of this user (a symlink, another owner, or \
                 writable by others): the preload library is not written there",
                dir.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_once_and_replaces_a_damaged_copy() {
        let dir = tempfile::tempdir().unwrap();
        let first = install(&dir.path().join("cache")).unwrap();
        assert_eq!(fs::read(&first).unwrap(), LIBRARY);
        let modified = fs::metadata(&first).unwrap().modified().unwrap();
        assert_eq!(install(&dir.path().join("cache")).unwrap(), first);
        assert_eq!(fs::metadata(&first).unwrap().modified().unwrap(), modified);
        fs::write(&first, b"not the library").unwrap();
        assert_eq!(install(&dir.path().join("cache")).unwrap(), first);
        assert_eq!(fs::read(&first).unwrap(), LIBRARY);
        // A directory that others may write to is refused, and nothing is written there.
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        let error = install(&shared).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied, "{error}");
        assert_eq!(fs::read_dir(&shared).unwrap().count(), 0);
        // So is a symlink to a private directory.
        std::os::unix::fs::symlink(dir.path().join("cache"), dir.path().join("link")).unwrap();
        assert!(install(&dir.path().join("link")).is_err());
        // An ELF shared object, as the build script made it.
        assert_eq!(&LIBRARY[..4], b"\x7fELF");
    }
}
