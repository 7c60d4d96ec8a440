//! The scenario handoff exists for: an I/O library lends its handle; a C consumer takes
//! ownership of whatever it is given. Done right with `dup_from`, and the wrong way, to show
//! what the right way prevents.

mod common;

use std::ffi::c_int;
use std::fs::File;
use std::io::{Read, Seek, Write};

use common::{crt_write, is_open, raw, serial, Census};
use handoff::crt::{Access, AsOsHandle, BorrowedOsHandle, CrtFd};

/// Stands for an I/O library: it owns its file, lends the handle, and keeps using the file.
struct Library {
    file: File,
}

impl Library {
    fn new() -> Library {
        Library {
            file: tempfile::tempfile().unwrap(),
        }
    }

    fn lend(&self) -> BorrowedOsHandle<'_> {
        self.file.as_os_handle()
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.seek(std::io::SeekFrom::End(0))?;
        self.file.write_all(bytes)
    }

    fn contents(&mut self) -> std::io::Result<Vec<u8>> {
        self.file.rewind()?;
        let mut bytes = Vec::new();
        self.file.read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

/// Stands for a C consumer (`gzdopen`, `fdopen`, ...): takes ownership of the descriptor it is
/// given and closes it, once, when done.
struct Consumer {
    fd: c_int,
}

impl Consumer {
    fn take(fd: c_int) -> Consumer {
        Consumer { fd }
    }

    fn write(&self, bytes: &[u8]) {
        // SAFETY: the consumer owns `self.fd`, open until its drop.
        assert_eq!(unsafe { crt_write(self.fd, bytes) }.unwrap(), bytes.len());
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // SAFETY: the consumer owns `self.fd` and closes it once, here.
        unsafe { common::crt_close(self.fd) }.expect("the consumer closes what it owns");
    }
}

#[test]
fn right_way_dup_from_gives_each_owner_its_own_handle() {
    let _serial = serial();
    let census = Census::take();
    let mut library = Library::new();
    let lent = raw(library.lend());

    let consumer = Consumer::take(
        CrtFd::dup_from(library.lend(), Access::Write)
            .unwrap()
            .into_raw(),
    );
    consumer.write(b"consumer;");
    library.append(b"library;").unwrap();
    drop(consumer); // closes its duplicate

    assert!(is_open(lent), "the library's handle survived the consumer");
    library.append(b"library again").unwrap();
    assert_eq!(
        library.contents().unwrap(),
        b"consumer;library;library again"
    );
    drop(library); // closes its own handle: no double close anywhere
    assert!(!is_open(lent));
    census.assert_back();
}

#[test]
fn wrong_way_the_consumer_closes_the_lenders_handle() {
    let _serial = serial();
    let mut library = Library::new();
    let lent = raw(library.lend());

    // The bug: the borrowed handle itself is given to a taker.
    // SAFETY: deliberately wrong, to show the failure; the library is forgotten below so that
    // it does not close the handle a second time.
    let stolen = unsafe { common::steal(lent) };
    let consumer = Consumer::take(CrtFd::from_owned(stolen, Access::Write).unwrap().into_raw());
    consumer.write(b"consumer");
    drop(consumer);

    assert!(!is_open(lent), "the taker closed the lender's handle");
    let error = library.append(b"library").unwrap_err();
    assert_eq!(error.raw_os_error(), Some(common::NOT_OPEN), "{error:?}");
    std::mem::forget(library); // its drop would be the second close
}

/// On Unix the second close does worse than fail: the number is reused by the next open, and
/// the lender then reads, writes and finally closes somebody else's file.
#[cfg(unix)]
#[test]
fn wrong_way_on_unix_the_lender_then_uses_and_closes_another_file() {
    use std::os::fd::AsRawFd;

    let _serial = serial();
    let mut library = Library::new();
    let lent = raw(library.lend());
    // SAFETY: deliberately wrong, as above.
    let stolen = unsafe { common::steal(lent) };
    drop(Consumer::take(
        CrtFd::from_owned(stolen, Access::Write).unwrap().into_raw(),
    ));

    // Someone else opens a file: POSIX gives it the lowest free number, the one just closed.
    let mut victim = tempfile::tempfile().unwrap();
    assert_eq!(victim.as_raw_fd(), lent, "the number was reused");
    victim.write_all(b"someone else's data").unwrap();

    // The library still believes the number is its own file.
    assert_eq!(library.contents().unwrap(), b"someone else's data");
    drop(library); // the double close: it closes the other owner's descriptor
    assert!(
        !is_open(lent),
        "the lender's drop closed someone else's file"
    );
    // The victim's own drop would now fail with EBADF (std aborts on that: an I/O-safety
    // violation), so it is forgotten.
    std::mem::forget(victim);
}
