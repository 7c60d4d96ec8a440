//! Errors the kernel will not produce on demand, injected at the syscall seam.

use std::io::{self, Write};

use super::sys::FAIL_NEXT_CLOSE;
use super::{OpenOptions, PageInError, PageInErrorKind, Pager};

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

    FAIL_NEXT_CLOSE.with(|fail| fail.set(true));
    let b = pager.open(dir.path().join("b"), &options()).unwrap(); // evicts a: close "fails"
    assert!(!a.is_resident());
    let error = a.write_all_at(b"!", 0).unwrap_err();
    let kept = PageInError::of(&error).expect("the pager's payload");
    assert_eq!(kept.kind(), PageInErrorKind::KeptCloseError, "{error}");
    assert_eq!(
        kept.raw_os_error(),
        Some(libc::EIO),
        "the kept error comes first"
    );
    assert_eq!(error.kind(), io::Error::from_raw_os_error(libc::EIO).kind());
    // Reported once; the file works again afterwards.
    a.write_all_at(b"W", 0).unwrap();

    FAIL_NEXT_CLOSE.with(|fail| fail.set(true));
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

/// Bug 1 of issue 8, made deterministic: an evictor has claimed a file (BUSY) when a reader
/// comes; the evictor then finds the file unlinked and keeps it resident for life. The reader,
/// which waited for BUSY to clear, must pin the resident descriptor, not reopen the path.
#[test]
fn a_reader_behind_an_eviction_that_keeps_the_file_pins_it_instead_of_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(4);
    let file = pager.open(dir.path().join("a"), &options()).unwrap();
    file.write_all_at(b"data", 0).unwrap();
    std::fs::remove_file(dir.path().join("a")).unwrap();
    let slot = file.id().slot;
    let entry = pager.table.entry(slot);
    let claim = entry
        .try_claim(entry.snapshot())
        .expect("claimed as an evictor does");
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut buf = [0; 4];
            file.read_at(&mut buf, 0).map(|n| buf[..n].to_vec())
        });
        // Wherever the reader is by now, it can only wait for BUSY to clear.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !pager.table.finish_eviction(slot, claim),
            "kept, not evicted"
        );
        assert_eq!(reader.join().unwrap().unwrap(), b"data");
    });
    assert_eq!(pager.stats().identity_failures, 0);
    assert_eq!(pager.stats().page_ins, 0);
    assert_eq!(pager.stats().permanent, 1);
}

/// Bug 4 of issue 8: the pin count is 20 bits; one pin more than it holds carried into the
/// access bits (READ) and corrupted the entry. It is an error now, and the entry is intact.
#[test]
fn a_pin_beyond_the_count_is_an_error_and_corrupts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(2);
    let file = pager.open(dir.path().join("a"), &options()).unwrap();
    file.write_all_at(b"data", 0).unwrap();
    let entry = pager.table.entry(file.id().slot);
    let before = entry.snapshot();
    let most = (super::entry::MAX_PINS - before.pins()) as usize;
    for _ in 0..most {
        entry.pin().expect("pinned");
    }
    let error = file.read_at(&mut [0; 4], 0).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ResourceBusy, "{error}");
    let options = entry.snapshot().options();
    assert!(options.read && options.write && !options.append);
    for _ in 0..most {
        entry.unpin();
    }
    let after = entry.snapshot();
    assert_eq!(
        (after.pins(), after.descriptor(), after.options().read),
        (before.pins(), before.descriptor(), true)
    );
    let mut buf = [0; 4];
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"data");
}
