//! Errors the kernel will not produce on demand, injected at the syscall seam.

use std::io::{self, Write};
use std::sync::atomic::Ordering;

use super::sys::FAIL_NEXT_CLOSE;
use super::{OpenOptions, Pager};

/// The fault seam is process-wide: these tests must not run beside each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    options
}

#[test]
fn an_error_from_close_at_eviction_is_kept_for_the_next_operation_and_for_close() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(1);
    let mut a = pager.open(dir.path().join("a"), &options()).unwrap();
    a.write_all(b"written before the failed close").unwrap();

    FAIL_NEXT_CLOSE.store(true, Ordering::SeqCst);
    let b = pager.open(dir.path().join("b"), &options()).unwrap(); // evicts a: close "fails"
    assert!(!a.is_resident());
    let error = a.write_all_at(b"!", 0).unwrap_err();
    assert_eq!(
        error.raw_os_error(),
        Some(libc::EIO),
        "the kept error comes first"
    );
    // Reported once; the file works again afterwards.
    a.write_all_at(b"W", 0).unwrap();

    FAIL_NEXT_CLOSE.store(true, Ordering::SeqCst);
    let c = pager.open(dir.path().join("c"), &options()).unwrap(); // evicts a again
    assert!(!a.is_resident());
    let error = a.close().unwrap_err();
    assert_eq!(error.kind(), io::Error::from_raw_os_error(libc::EIO).kind());
    assert_eq!(
        std::fs::read(dir.path().join("a")).unwrap(),
        b"Written before the failed close"
    );
    drop((b, c));
    assert_eq!(pager.resident(), 0);
}

#[test]
fn the_clock_keeps_no_more_than_a_few_budgets_of_records_when_nothing_is_evicted() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(8);
    for _ in 0..5_000 {
        let file = pager.open(dir.path().join("same"), &options()).unwrap();
        file.close().unwrap();
    }
    assert_eq!(pager.stats().evictions, 0);
    assert!(
        pager.table.clock_len() <= 2 * 8 + 64,
        "{}",
        pager.table.clock_len()
    );
}
