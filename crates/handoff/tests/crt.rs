//! `CrtFd` and `CStream`: for every call, which handles are open afterwards, asked of the OS.

mod common;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};

use common::{crt_slot_is_open, crt_write, is_open, raw, serial, Census};
use handoff::crt::{Access, AsOsHandle, BorrowedOsHandle, CStream, CrtFd, OsHandle};

fn contents(file: &mut File) -> Vec<u8> {
    file.rewind().unwrap();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    bytes
}

/// A borrowed handle whose value is not open in this process.
fn not_open_handle() -> BorrowedOsHandle<'static> {
    // SAFETY: the value is not open; borrowing it only passes the value to the OS, which must
    // reject it (`BorrowedFd` forbids only -1, which this is not).
    unsafe { BorrowedOsHandle::borrow_raw(common::not_open()) }
}

#[test]
fn from_owned_moves_the_handle_into_the_crt_and_drop_closes_it_once() {
    let _serial = serial();
    let census = Census::take();
    let handle: OsHandle = tempfile::tempfile().unwrap().into();
    let value = raw(handle.as_os_handle());

    let fd = CrtFd::from_owned(handle, Access::ReadWrite).unwrap();
    assert!(
        is_open(value),
        "the CRT now owns the handle; it is still open"
    );
    assert_eq!(
        raw(fd.as_os_handle()),
        value,
        "the slot wraps that very handle"
    );
    // SAFETY: `fd` owns its open descriptor for the call.
    assert_eq!(unsafe { crt_write(fd.as_raw(), b"abc") }.unwrap(), 3);

    let slot = fd.as_raw();
    drop(fd);
    assert!(!is_open(value), "dropping the CrtFd closed the handle");
    assert!(!crt_slot_is_open(slot));
    census.assert_back();
}

#[test]
fn dup_from_gives_the_crt_its_own_handle_and_the_lender_keeps_working() {
    let _serial = serial();
    let census = Census::take();
    let mut lender = tempfile::tempfile().unwrap();
    let lender_value = raw(lender.as_os_handle());

    let fd = CrtFd::dup_from(lender.as_os_handle(), Access::Write).unwrap();
    let dup_value = raw(fd.as_os_handle());
    assert_ne!(
        dup_value, lender_value,
        "a duplicate, not the lender's handle"
    );
    // SAFETY: `fd` owns its open descriptor for the call.
    assert_eq!(unsafe { crt_write(fd.as_raw(), b"from C") }.unwrap(), 6);
    // One open file description / file object: the lender sees the C runtime's position.
    assert_eq!(lender.stream_position().unwrap(), 6);

    drop(fd);
    assert!(!is_open(dup_value), "the duplicate is closed");
    assert!(is_open(lender_value), "the lender's handle is not");
    lender.write_all(b", then Rust").unwrap();
    assert_eq!(contents(&mut lender), b"from C, then Rust");
    drop(lender);
    assert!(!is_open(lender_value));
    census.assert_back();
}

#[test]
fn borrowing_the_os_handle_never_closes_it() {
    let _serial = serial();
    let census = Census::take();
    let fd = CrtFd::dup_from(
        tempfile::tempfile().unwrap().as_os_handle(),
        Access::ReadWrite,
    )
    .unwrap();
    let value = {
        let borrowed = fd.as_os_handle();
        let mut file = File::from(borrowed.try_clone_to_owned().unwrap());
        file.write_all(b"x").unwrap();
        raw(borrowed)
    };
    assert!(is_open(value), "the borrow ended; the handle is still open");
    // SAFETY: `fd` owns its open descriptor for the call.
    assert_eq!(unsafe { crt_write(fd.as_raw(), b"y") }.unwrap(), 1);
    drop(fd);
    assert!(!is_open(value));
    census.assert_back();
}

#[test]
fn try_clone_os_gives_a_handle_that_outlives_the_descriptor() {
    let _serial = serial();
    let census = Census::take();
    let fd = CrtFd::dup_from(
        tempfile::tempfile().unwrap().as_os_handle(),
        Access::ReadWrite,
    )
    .unwrap();
    let slot_value = raw(fd.as_os_handle());

    // The clone goes to "a library that closes it": here a File, dropped before the CrtFd.
    let clone = fd.try_clone_os().unwrap();
    let clone_value = raw(clone.as_os_handle());
    assert_ne!(clone_value, slot_value);
    drop(File::from(clone));
    assert!(!is_open(clone_value));
    assert!(
        is_open(slot_value),
        "closing the clone left the descriptor's handle open"
    );
    // SAFETY: `fd` owns its open descriptor for the call.
    assert_eq!(
        unsafe { crt_write(fd.as_raw(), b"still works") }.unwrap(),
        11
    );

    // And the other order: the descriptor closes first, the clone keeps working.
    let mut clone = File::from(fd.try_clone_os().unwrap());
    drop(fd);
    assert!(!is_open(slot_value));
    clone.write_all(b"!").unwrap();
    assert_eq!(contents(&mut clone), b"still works!");
    drop(clone);
    census.assert_back();
}

#[test]
fn into_os_takes_the_handle_out_and_frees_the_slot() {
    let _serial = serial();
    let census = Census::take();
    let fd = CrtFd::dup_from(
        tempfile::tempfile().unwrap().as_os_handle(),
        Access::ReadWrite,
    )
    .unwrap();
    let slot = fd.as_raw();
    // SAFETY: `slot` is `fd`'s, open for the call.
    assert_eq!(unsafe { crt_write(slot, b"before") }.unwrap(), 6);

    let handle = fd.into_os().unwrap();
    common::assert_slot_released_by_into_os(slot, handle.as_os_handle());
    let value = raw(handle.as_os_handle());
    assert!(is_open(value));
    let mut file = File::from(handle);
    file.write_all(b" after").unwrap();
    assert_eq!(contents(&mut file), b"before after");
    drop(file);
    assert!(!is_open(value));
    census.assert_back();
}

#[test]
fn into_raw_gives_the_descriptor_away_and_from_raw_takes_it_back() {
    let _serial = serial();
    let census = Census::take();
    let lender = tempfile::tempfile().unwrap();
    let fd = CrtFd::dup_from(lender.as_os_handle(), Access::Write).unwrap();
    let value = raw(fd.as_os_handle());

    let given = fd.into_raw();
    assert!(is_open(value), "into_raw does not close");
    // SAFETY: `given` came from `into_raw`; nothing else owns it.
    let back = unsafe { CrtFd::from_raw(given) };
    assert_eq!(back.as_raw(), given);
    back.close().unwrap();
    assert!(!is_open(value));

    // A C consumer closes what it was given, once; nothing else does.
    let given = CrtFd::dup_from(lender.as_os_handle(), Access::Write)
        .unwrap()
        .into_raw();
    // SAFETY: `into_raw` gave us `given`, open and owned by nothing else; closed once here.
    unsafe { common::crt_close(given) }.unwrap();
    assert!(!crt_slot_is_open(given));
    drop(lender);
    census.assert_back();
}

#[test]
fn append_access_writes_at_the_end_whatever_the_position() {
    let _serial = serial();
    let mut lender = tempfile::tempfile().unwrap();
    lender.write_all(b"0123456789").unwrap();
    lender.seek(SeekFrom::Start(2)).unwrap();

    let fd = CrtFd::dup_from(lender.as_os_handle(), Access::Append).unwrap();
    // SAFETY: `fd` owns its open descriptor for the call.
    assert_eq!(unsafe { crt_write(fd.as_raw(), b"END") }.unwrap(), 3);
    drop(fd);
    assert_eq!(contents(&mut lender), b"0123456789END");
}

#[test]
fn a_handle_that_is_not_open_is_a_clean_error() {
    let _serial = serial();
    let census = Census::take();
    let error = CrtFd::dup_from(not_open_handle(), Access::Read).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(common::NOT_OPEN), "{error:?}");
    let error = CStream::dup_from(not_open_handle(), Access::Read).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(common::NOT_OPEN), "{error:?}");
    census.assert_back();
}

#[test]
fn a_stream_writes_through_stdio_and_close_flushes_it() {
    let _serial = serial();
    let census = Census::take();
    let mut lender = tempfile::tempfile().unwrap();
    let mut stream = CStream::dup_from(lender.as_os_handle(), Access::Write).unwrap();
    let stream_value = raw(stream_handle(&stream));
    assert_ne!(stream_value, raw(lender.as_os_handle()));

    stream.write_all(b"line one\n").unwrap();
    // C code writes into the same FILE*, in order with Rust's writes.
    // SAFETY: the stream is open; fputs does not keep the pointer.
    assert!(unsafe { libc::fputs(c"line two\n".as_ptr(), stream.as_ptr()) } >= 0);
    assert_eq!(
        lender.metadata().unwrap().len(),
        0,
        "still in the stdio buffer"
    );
    stream.flush().unwrap();
    assert_eq!(lender.metadata().unwrap().len(), 18);
    stream.write_all(b"line three\n").unwrap();
    stream.close().unwrap();

    assert!(!is_open(stream_value), "fclose closed the duplicate");
    assert_eq!(contents(&mut lender), b"line one\nline two\nline three\n");
    drop(lender);
    census.assert_back();
}

/// The handle behind a stream, borrowed for the stream's life.
fn stream_handle(stream: &CStream) -> BorrowedOsHandle<'_> {
    // SAFETY: `fileno` is open for as long as `stream` is (the returned borrow's lifetime).
    let fd = std::mem::ManuallyDrop::new(unsafe { CrtFd::from_raw(stream.fileno()) });
    // SAFETY: as above; the CrtFd is never dropped, so the stream keeps sole ownership.
    unsafe { BorrowedOsHandle::borrow_raw(raw(fd.as_os_handle())) }
}

#[test]
fn a_stream_reads_and_sees_data_appended_after_end_of_file() {
    let _serial = serial();
    let census = Census::take();
    let named = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(named.path(), b"first").unwrap();

    let mut stream = CStream::dup_from(named.as_file().as_os_handle(), Access::Read).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert_eq!(text, "first");
    assert_eq!(stream.read(&mut [0; 8]).unwrap(), 0, "end of file");

    // Data written after end of file (by another open file) is read next: the EOF flag is not
    // sticky, as with read(2).
    let mut appender = OpenOptions::new().append(true).open(named.path()).unwrap();
    appender.write_all(b" second").unwrap();
    drop(appender);
    text.clear();
    stream.read_to_string(&mut text).unwrap();
    assert_eq!(text, " second");
    drop(stream); // Drop closes without the report
    drop(named);
    census.assert_back();
}

#[test]
fn close_reports_a_failed_flush() {
    let _serial = serial();
    let census = Census::take();
    let (reader, writer) = io::pipe().unwrap();
    let mut stream = CStream::from_crt(
        CrtFd::from_owned(writer.into(), Access::Write).unwrap(),
        Access::Write,
    )
    .unwrap();
    stream.write_all(b"nobody will read this").unwrap(); // buffered: no error yet
    drop(reader);
    let error = stream.close().unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::BrokenPipe, "{error:?}");
    census.assert_back();
}

#[test]
fn writing_through_a_read_only_handle_fails_at_flush_not_silently() {
    let _serial = serial();
    let census = Census::take();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("read-only");
    std::fs::write(&path, b"keep").unwrap();
    let read_only = File::open(&path).unwrap();

    match CStream::dup_from(read_only.as_os_handle(), Access::Write) {
        // glibc's fdopen checks the mode against the descriptor's access.
        Err(error) => assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error:?}"),
        // The Windows C runtimes do not: the write fails when the buffer is flushed.
        Ok(mut stream) => {
            stream.write_all(b"lost?").unwrap(); // only buffered
            assert!(stream.flush().is_err(), "the failed write is reported");
        }
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"keep");
    drop(read_only);
    census.assert_back();
}

#[test]
fn into_raw_hands_the_stream_to_c_which_closes_it_once() {
    let _serial = serial();
    let census = Census::take();
    let lender = tempfile::tempfile().unwrap();
    let stream = CStream::dup_from(lender.as_os_handle(), Access::Write).unwrap();
    let value = raw(stream_handle(&stream));
    let file = stream.into_raw();
    assert!(is_open(value));
    // SAFETY: we own `file` now and close it once.
    assert_eq!(unsafe { libc::fclose(file.as_ptr()) }, 0);
    assert!(!is_open(value));
    drop(lender);
    census.assert_back();
}
