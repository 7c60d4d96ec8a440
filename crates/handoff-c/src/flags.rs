//! `open` flags: the platform C runtime's `O_*` (Unix) or `_O_*` (Windows) values, turned into
//! the pager's [`OpenOptions`]. `O_CREAT`, `O_TRUNC` and `O_EXCL` apply at the first open only
//! (a page-in never creates or truncates). A flag the pager cannot honour is `EINVAL`, never
//! silently dropped.

use std::ffi::c_int;

use handoff::pager::OpenOptions;

use crate::boundary::invalid;
use crate::errno::Errno;

/// Flags accepted and ignored: the pager opens every descriptor close-on-exec and never as a
/// controlling terminal (Unix), binary and not inherited (Windows).
#[cfg(unix)]
const IGNORED: c_int = libc::O_CLOEXEC | libc::O_NOCTTY | LARGEFILE;
#[cfg(all(unix, target_os = "linux"))]
const LARGEFILE: c_int = libc::O_LARGEFILE;
#[cfg(all(unix, not(target_os = "linux")))]
const LARGEFILE: c_int = 0;
#[cfg(windows)]
const IGNORED: c_int = libc::O_BINARY | libc::O_NOINHERIT | 0x0010 | 0x0020; // _O_RANDOM, _O_SEQUENTIAL

const ACCESS: c_int = libc::O_RDONLY | libc::O_WRONLY | libc::O_RDWR;
const ONCE: c_int = libc::O_CREAT | libc::O_TRUNC | libc::O_EXCL;

/// The options for `flags` and `mode` (the permission bits of a created file; Unix only, as
/// `_open`'s `_S_IREAD`/`_S_IWRITE` are not supported on Windows, where files are created
/// read-write).
pub(crate) fn options(flags: c_int, mode: c_int) -> Result<OpenOptions, Errno> {
    if flags & !(ACCESS | ONCE | libc::O_APPEND | IGNORED) != 0 {
        return invalid(); // O_DIRECTORY, O_SYNC, _O_TEXT, ...: not supported
    }
    let mut options = OpenOptions::new();
    match flags & ACCESS {
        libc::O_RDONLY => options.read(true),
        libc::O_WRONLY => options.write(true),
        libc::O_RDWR => options.read(true).write(true),
        _ => return invalid(),
    };
    let append = flags & libc::O_APPEND != 0;
    options
        .append(append)
        .create(flags & libc::O_CREAT != 0)
        .truncate(flags & libc::O_TRUNC != 0)
        .create_new(flags & (libc::O_CREAT | libc::O_EXCL) == libc::O_CREAT | libc::O_EXCL);
    if flags & libc::O_TRUNC != 0 && flags & ACCESS == libc::O_RDONLY {
        return invalid(); // unspecified in POSIX; refused by Rust's OpenOptions
    }
    #[cfg(unix)]
    if flags & libc::O_CREAT != 0 {
        if !(0..=0o7777).contains(&mode) {
            return invalid();
        }
        options.mode(mode as u32);
    }
    #[cfg(windows)]
    let _ = mode;
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_flags_are_einval() {
        assert!(options(libc::O_RDWR | libc::O_CREAT, 0o644).is_ok());
        assert!(options(ACCESS, 0).is_err()); // O_WRONLY | O_RDWR
        assert!(options(libc::O_RDONLY | libc::O_TRUNC, 0).is_err());
        #[cfg(target_os = "linux")]
        assert!(options(libc::O_RDONLY | libc::O_DIRECTORY, 0).is_err());
        #[cfg(windows)]
        assert!(options(libc::O_RDONLY | libc::O_TEXT, 0).is_err());
    }
}
