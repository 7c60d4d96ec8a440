//! Compress a file with zlib's `gzdopen`, which takes ownership of the descriptor it is given,
//! while Rust keeps using its own `File`: the seed scenario of handoff, with a real C library.
//!
//! ```text
//! cargo run -p handoff --example gzip_through_crt -- [OUTPUT.gz]
//! ```

use std::ffi::c_int;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use handoff::crt::{Access, AsOsHandle, CrtFd};

fn main() -> io::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("handoff-example.gz"));
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;

    let text = "every OS handle is closed exactly once\n".repeat(10_000);
    // zlib gets its own duplicate of the file's handle, and will close it in gzclose.
    let fd = CrtFd::dup_from(file.as_os_handle(), Access::Write)?;
    gzip(fd.into_raw(), text.as_bytes())?;

    // The File was never closed by zlib: read back what zlib wrote through it.
    let compressed = file.seek(SeekFrom::End(0))?;
    file.rewind()?;
    let mut magic = [0; 2];
    file.read_exact(&mut magic)?;
    println!(
        "{}: {} bytes of text -> {compressed} bytes of gzip (magic {magic:02x?}); the File still works",
        path.display(),
        text.len()
    );
    Ok(())
}

/// Writes `data` through zlib, which owns `fd` from here on (and closes it, once).
fn gzip(fd: c_int, data: &[u8]) -> io::Result<()> {
    // SAFETY: `fd` is an open descriptor that we give to zlib; the mode is a C string.
    let gz = unsafe { libz_sys::gzdopen(fd, c"wb".as_ptr()) };
    if gz.is_null() {
        // SAFETY: zlib does not take the descriptor when gzdopen fails; it is still ours.
        drop(unsafe { CrtFd::from_raw(fd) });
        return Err(io::Error::other("gzdopen failed"));
    }
    // SAFETY: `data` is valid for its length and `gz` is open.
    let written = unsafe { libz_sys::gzwrite(gz, data.as_ptr().cast(), data.len() as u32) };
    // SAFETY: `gz` is open; gzclose flushes, closes the descriptor and frees `gz`, whatever
    // the result.
    let closed = unsafe { libz_sys::gzclose(gz) };
    if written as usize != data.len() || closed != libz_sys::Z_OK {
        return Err(io::Error::other("zlib failed to write the file"));
    }
    Ok(())
}
