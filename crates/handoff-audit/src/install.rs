//! Writing the embedded library to disk, once per distinct build.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
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
/// # Errors
/// Creating `dir`, writing the file or renaming it fails: the error names the path.
pub fn install(dir: &Path) -> io::Result<PathBuf> {
    let digest = Sha256::digest(LIBRARY);
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("libhandoff_audit-{name}.so"));
    if let Ok(existing) = fs::read(&path) {
        if Sha256::digest(&existing) == digest {
            return Ok(path);
        }
    }
    let named =
        |e: io::Error, what: &Path| io::Error::new(e.kind(), format!("{}: {e}", what.display()));
    fs::create_dir_all(dir).map_err(|e| named(e, dir))?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| named(e, dir))?;
    file.write_all(LIBRARY).map_err(|e| named(e, file.path()))?;
    // Readable by whatever the audited program runs as (the dynamic loader maps it).
    file.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(|e| named(e, file.path()))?;
    file.persist(&path).map_err(|e| named(e.error, &path))?;
    Ok(path)
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
        // An ELF shared object, as the build script made it.
        assert_eq!(&LIBRARY[..4], b"\x7fELF");
    }
}
