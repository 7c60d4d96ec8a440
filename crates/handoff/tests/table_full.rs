//! A full descriptor table, for real: Unix under `RLIMIT_NOFILE` = 64 (set in a child process),
//! Windows against msvcrt.dll's 2048-slot table. Every failure must be a clean `io::Error`, and
//! every handle opened on the way must be closed again.

mod common;

use common::{is_open, raw, serial, Census};
use handoff::crt::{Access, AsOsHandle, CStream, CrtFd};
use handoff::limits;

#[test]
fn filling_the_descriptor_table_is_a_clean_error() {
    #[cfg(unix)]
    if !common::in_child() {
        return common::run_in_child("filling_the_descriptor_table_is_a_clean_error", 64, 64);
    }
    let _serial = serial();
    let census = Census::take();
    let table = limits::current().unwrap().descriptors.soft;
    let lender = tempfile::tempfile().unwrap();
    let lent = raw(lender.as_os_handle());

    let mut held = Vec::new();
    let error = loop {
        match CrtFd::dup_from(lender.as_os_handle(), Access::ReadWrite) {
            Ok(fd) => held.push(fd),
            Err(error) => break error,
        }
        assert!(
            held.len() as u64 <= table,
            "more descriptors than the table holds"
        );
    };
    assert!(limits::is_out_of_descriptors(&error), "{error:?}");
    let highest = held.iter().map(CrtFd::as_raw).max().unwrap();
    assert_eq!(highest as u64, table - 1, "the table was really full");

    // A stream cannot be had either, and says so cleanly.
    let error = CStream::dup_from(lender.as_os_handle(), Access::Read).unwrap_err();
    assert!(limits::is_out_of_descriptors(&error), "{error:?}");
    // The failures leaked nothing and closed nothing of the lender's.
    assert!(is_open(lent));

    // One slot given back is one slot to use.
    let freed = held.pop().unwrap().as_raw();
    let again = CrtFd::dup_from(lender.as_os_handle(), Access::Write).unwrap();
    assert_eq!(again.as_raw(), freed);
    assert!(CrtFd::dup_from(lender.as_os_handle(), Access::Write).is_err());

    drop(again);
    drop(held);
    drop(lender);
    census.assert_back();
}

/// Windows: `_setmaxstdio` bounds `FILE*` streams (512 at start), separately from the table.
#[cfg(windows)]
#[test]
fn the_stream_limit_is_a_clean_error_until_raised() {
    let _serial = serial();
    let census = Census::take();
    let before = limits::current().unwrap();
    assert_eq!(before.streams.soft, 512);
    let lender = tempfile::tempfile().unwrap();

    let mut streams = Vec::new();
    let error = loop {
        match CStream::dup_from(lender.as_os_handle(), Access::Read) {
            Ok(stream) => streams.push(stream),
            Err(error) => break error,
        }
        assert!(streams.len() <= 512);
    };
    assert!(limits::is_out_of_descriptors(&error), "{error:?}");
    assert!(streams.len() >= 500, "only {} streams", streams.len());

    let raised = limits::raise().unwrap();
    assert_eq!(raised.streams.soft, raised.descriptors.hard);
    for _ in 0..100 {
        streams.push(CStream::dup_from(lender.as_os_handle(), Access::Read).unwrap());
    }
    drop(streams);
    drop(lender);
    census.assert_back();
}
