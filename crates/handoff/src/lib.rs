//! # handoff: every OS handle closed exactly once
//!
//! Rust libraries lend the OS handles they own: a [`File`](std::fs::File) lends its fd
//! (Unix) or `HANDLE` (Windows) through [`AsFd`](https://doc.rust-lang.org/std/os/fd/trait.AsFd.html) /
//! [`AsHandle`](https://doc.rust-lang.org/std/os/windows/io/trait.AsHandle.html). Much C code *takes ownership* of the handle it
//! is given: the C runtime's `_open_osfhandle` and `fdopen`, zlib's `gzdopen`, libarchive's
//! `archive_read_open_fd` close it when done. Give a taker a borrowed handle and it is closed
//! twice: a debug-CRT assertion or an "invalid handle" fault on Windows, and on Unix something
//! worse, a second `close` that hits a descriptor number the process has meanwhile reused for
//! another file, and silently closes *that*.
//!
//! The cure is a duplicate, so that each owner closes its own handle once. [`crt`] makes that
//! the typed, one-line way to do it, with one API on Unix and Windows:
//!
//! - **Rust handle to C**: [`CrtFd::dup_from`](crt::CrtFd::dup_from) gives the C runtime its own
//!   descriptor over a borrowed handle (`DuplicateHandle` + `_open_osfhandle`, or
//!   `F_DUPFD_CLOEXEC`); [`CStream`](crt::CStream) does the same for `FILE*`.
//! - **C descriptor to Rust**: [`CrtFd::try_clone_os`](crt::CrtFd::try_clone_os) gives a library
//!   that will close it a duplicate of the handle behind a descriptor.
//!
//! [`limits`] reads and raises how many descriptors the process may hold.
//!
//! ```
//! use std::io::{Read, Seek};
//! use handoff::crt::{Access, AsOsHandle, CStream};
//!
//! // A library owns this file and lends its handle.
//! let mut file = tempfile::tempfile()?;
//!
//! // C wants a FILE* and will fclose it: give it a stream over its own duplicate.
//! let mut stream = CStream::dup_from(file.as_os_handle(), Access::Write)?;
//! std::io::Write::write_all(&mut stream, b"written by C stdio")?;
//! stream.close()?; // fclose closes the duplicate, once
//!
//! // The lender's handle was never touched.
//! file.rewind()?;
//! let mut text = String::new();
//! file.read_to_string(&mut text)?;
//! assert_eq!(text, "written by C stdio");
//! # Ok::<(), std::io::Error>(())
//! ```
#![warn(missing_docs)]

#[cfg(target_os = "linux")]
mod audit_tag;
pub mod crt;
pub mod limits;
pub mod pager;

// The README's examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
