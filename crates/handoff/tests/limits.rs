//! `handoff::limits` against the real limits of a process.

mod common;

use handoff::limits::{self, Limit};

/// Unix: a child process starts with `RLIMIT_NOFILE` 64 soft, 128 hard.
#[cfg(unix)]
#[test]
fn raise_lifts_the_soft_limit_to_the_hard_one() {
    if !common::in_child() {
        return common::run_in_child("raise_lifts_the_soft_limit_to_the_hard_one", 64, 128);
    }
    let before = limits::current().unwrap();
    assert_eq!(
        before.descriptors,
        Limit {
            soft: 64,
            hard: 128
        }
    );
    assert_eq!(before.streams, before.descriptors);

    let mut files = Vec::new();
    let error = loop {
        match tempfile::tempfile() {
            Ok(file) => files.push(file),
            Err(error) => break error,
        }
    };
    assert!(limits::is_out_of_descriptors(&error), "{error:?}");
    assert!(files.len() < 64);

    let after = limits::raise().unwrap();
    assert_eq!(
        after.descriptors,
        Limit {
            soft: 128,
            hard: 128
        }
    );
    // The new limit is the one the kernel enforces: 64 more files open now.
    for _ in 0..64 {
        files.push(tempfile::tempfile().unwrap());
    }
    assert!(tempfile::tempfile().is_err());
    // Raising again is a no-op.
    assert_eq!(limits::raise().unwrap(), after);
}

/// Windows (msvcrt.dll): a fixed 2048-slot table; 512 streams until `raise`.
#[cfg(windows)]
#[test]
fn the_table_is_fixed_and_raise_lifts_the_stream_limit() {
    let before = limits::current().unwrap();
    assert_eq!(
        before.descriptors,
        Limit {
            soft: 2048,
            hard: 2048
        }
    );
    assert_eq!(
        before.streams,
        Limit {
            soft: 512,
            hard: 2048
        }
    );
    let after = limits::raise().unwrap();
    assert_eq!(after.descriptors, before.descriptors);
    assert_eq!(
        after.streams,
        Limit {
            soft: 2048,
            hard: 2048
        }
    );
}
