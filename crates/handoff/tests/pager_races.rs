//! The pager under races between threads of one process, through the public API: each test is
//! the reproducer of a bug that was found (issue 8), kept so that it cannot come back. Each one
//! fails (rather than hangs) on the code that had the bug: a watchdog bounds every wait.
//! (Most need Unix: paging in by reopening, `with_fd`; those that hold for C-runtime
//! descriptors run on Windows too.)

use std::io;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
#[cfg(unix)]
use std::{
    fs,
    io::{Read, Seek, SeekFrom},
    os::fd::AsRawFd,
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use handoff::pager::{OpenOptions, Pager};

fn rw_create() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    options
}

/// Runs `scenario` on its own thread and fails the test if it does not end within `limit`
/// (a hang becomes a failure; the stuck threads are left behind and die with the process).
fn within<T: Send + 'static>(limit: Duration, scenario: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, ended) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(scenario());
    });
    match ended.recv_timeout(limit) {
        Ok(result) => result,
        Err(_) => panic!("the scenario did not end within {limit:?}: a hang"),
    }
}

/// Bug 1 of issue 8: a file unlinked while resident is made permanent by the eviction that
/// finds it unlinked. A reader that waited for that eviction (BUSY) went on as if the file were
/// paged out: it reopened the unlinked path and failed with `NotFound`, and
/// `identity_failures` counted a failure that never happened. The recipe from the issue:
/// budget 16, 8 spare files, 8 files written then unlinked, one thread evicting in a loop, the
/// main thread reading the 8 for 3 ms per round (it failed within 10-200 rounds).
#[test]
#[cfg(unix)]
fn a_file_kept_resident_by_a_racing_eviction_is_read_not_reopened() {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut rounds = 0;
    while Instant::now() < deadline && rounds < 400 {
        rounds += 1;
        let dir = tempfile::tempdir().unwrap();
        let pager = Pager::new(16);
        let spares: Vec<_> = (0..8)
            .map(|i| pager.open(dir.path().join(format!("spare{i}")), &rw_create()))
            .collect::<io::Result<_>>()
            .unwrap();
        let unlinked: Vec<_> = (0..8)
            .map(|i| {
                let path = dir.path().join(format!("gone{i}"));
                let file = pager.open(&path, &rw_create()).unwrap();
                file.write_all_at(format!("file {i}").as_bytes(), 0)
                    .unwrap();
                fs::remove_file(&path).unwrap();
                file
            })
            .collect();
        let stop = AtomicBool::new(false);
        thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    pager.release_one();
                    thread::yield_now();
                }
            });
            let until = Instant::now() + Duration::from_millis(3);
            while Instant::now() < until {
                for (i, file) in unlinked.iter().enumerate() {
                    let mut buf = [0; 6];
                    let read = file.read_at(&mut buf, 0);
                    if read.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    let n = read.unwrap_or_else(|error| {
                        panic!("round {rounds}: a resident file failed to read: {error}")
                    });
                    assert_eq!(&buf[..n], format!("file {i}").as_bytes());
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert_eq!(pager.stats().identity_failures, 0, "round {rounds}");
        assert!(unlinked.iter().all(|file| file.is_resident()));
        drop(spares);
    }
}

/// Bug 2 of issue 8: with a budget of 1, `x.read_at` inside `y.with_fd` can never get a
/// descriptor (y's pin holds the only one) and says so with `Deadlock`. But when another thread
/// was paging x in at that moment (holding x's page-in lock while waiting for the budget), the
/// `with_fd` thread waited for that lock forever and both threads hung. The order is made
/// certain through the public counters: the second thread has counted its wait before the
/// `with_fd` thread reads x.
#[test]
#[cfg(unix)]
fn a_self_wait_behind_another_threads_page_in_is_a_deadlock_error_not_a_hang() {
    let (inner, other) = within(Duration::from_secs(10), || {
        let dir = tempfile::tempdir().unwrap();
        let pager = Pager::new(1);
        let x = pager.open(dir.path().join("x"), &rw_create()).unwrap();
        x.write_all_at(b"x data", 0).unwrap();
        let y = pager.open(dir.path().join("y"), &rw_create()).unwrap(); // x paged out
        assert!(!x.is_resident());
        let (go, started) = mpsc::channel();
        thread::scope(|scope| {
            let x_ref = &x;
            let other = scope.spawn(move || {
                started.recv().unwrap();
                let x = x_ref;
                let mut buf = [0; 6];
                x.read_at(&mut buf, 0).map(|n| buf[..n].to_vec())
            });
            let inner = y
                .with_fd(|_fd| {
                    let waits = pager.stats().waits;
                    go.send(()).unwrap();
                    // The other thread holds x's page-in and waits for y's descriptor.
                    while pager.stats().waits == waits {
                        thread::yield_now();
                    }
                    x.read_at(&mut [0; 6], 0).map_err(|error| error.kind())
                })
                .unwrap();
            (inner, other.join().unwrap().unwrap())
        })
    });
    assert_eq!(inner, Err(io::ErrorKind::Deadlock));
    assert_eq!(other, b"x data");
}

/// Bug 3 of issue 8: `with_fd` read the cursor, ran the closure, and wrote the cursor back
/// without holding it, so a `(&file).read` of another thread in between was undone and its
/// bytes were read a second time. As with `&std::fs::File`, each read must consume distinct
/// bytes: here C code reads 3 bytes in the closure while another thread reads 2 through the
/// cursor, and a final read takes the rest; every byte is read exactly once.
#[test]
#[cfg(unix)]
fn with_fd_and_a_concurrent_cursor_read_consume_distinct_bytes() {
    let (in_closure, concurrent, rest) = within(Duration::from_secs(10), || {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), b"0123456789").unwrap();
        let pager = Pager::new(4);
        let file = pager
            .open(dir.path().join("f"), OpenOptions::new().read(true))
            .unwrap();
        let (go, started) = mpsc::channel();
        let (read, was_read) = mpsc::channel();
        let (in_closure, concurrent) = thread::scope(|scope| {
            let file_ref = &file;
            let other = scope.spawn(move || {
                started.recv().unwrap();
                let mut buf = [0; 2];
                let n = { file_ref }.read(&mut buf).unwrap();
                read.send(()).unwrap();
                buf[..n].to_vec()
            });
            let in_closure = file
                .with_fd(|fd| {
                    go.send(()).unwrap();
                    // Give the other thread's read every chance to run now (with the fix it
                    // waits for this closure, so the wait times out).
                    let _ = was_read.recv_timeout(Duration::from_millis(200));
                    let mut buf = [0u8; 3];
                    // SAFETY: the descriptor is pinned open while the closure runs.
                    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), 3) };
                    buf[..n as usize].to_vec()
                })
                .unwrap();
            (in_closure, other.join().unwrap())
        });
        let mut rest = Vec::new();
        (&file).read_to_end(&mut rest).unwrap();
        (in_closure, concurrent, rest)
    });
    let mut all = [in_closure.clone(), concurrent.clone(), rest.clone()].concat();
    all.sort_unstable();
    assert_eq!(
        all,
        b"0123456789",
        "closure read {:?}, the other thread {:?}, the rest {:?}",
        String::from_utf8_lossy(&in_closure),
        String::from_utf8_lossy(&concurrent),
        String::from_utf8_lossy(&rest)
    );
}

/// Also bug 3: the cursor is held while a `with_fd` closure runs, so a closure that uses the
/// same file's cursor (or nests `with_fd` on it) gets `Deadlock` at once instead of hanging,
/// and the file works again afterwards.
#[test]
#[cfg(unix)]
fn a_closure_using_its_own_files_cursor_gets_deadlock_not_a_hang() {
    let kinds = within(Duration::from_secs(10), || {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), b"abcdef").unwrap();
        let pager = Pager::new(4);
        let file = pager
            .open(dir.path().join("f"), OpenOptions::new().read(true))
            .unwrap();
        let kinds = file
            .with_fd(|_fd| {
                let read = (&file).read(&mut [0; 2]).map_err(|e| e.kind());
                let seek = (&file).seek(SeekFrom::Start(1)).map_err(|e| e.kind());
                let nested = file.with_fd(|_| ()).map_err(|e| e.kind());
                // Positional I/O needs no cursor: it works.
                let at = file.read_at(&mut [0; 2], 0).map_err(|e| e.kind());
                (read.map(drop), seek.map(drop), nested, at.map(drop))
            })
            .unwrap();
        let mut text = String::new();
        (&file).read_to_string(&mut text).unwrap();
        assert_eq!(text, "abcdef");
        kinds
    });
    let deadlock = Err(io::ErrorKind::Deadlock);
    assert_eq!(kinds, (deadlock, deadlock, deadlock, Ok(())));
}

/// Also bug 3: when the position cannot be read back after the closure (here the closure
/// breaks the contract and puts a pipe in place of the descriptor, so `lseek` fails with
/// `ESPIPE`), the closure's result is still returned; the error is not lost either: the next
/// cursor operation returns it.
#[test]
#[cfg(unix)]
fn the_closures_result_survives_a_failed_read_back_of_the_position() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f"), b"abcdef").unwrap();
    let pager = Pager::new(4);
    let file = pager
        .open(dir.path().join("f"), OpenOptions::new().read(true))
        .unwrap();
    let (reader, _writer) = io::pipe().unwrap();
    let result = file.with_fd(|fd| {
        // SAFETY: dup2 replaces the (pinned, open) descriptor by a duplicate of the pipe's.
        let replaced = unsafe { libc::dup2(reader.as_raw_fd(), fd.as_raw_fd()) };
        assert_eq!(replaced, fd.as_raw_fd());
        42
    });
    assert_eq!(result.unwrap(), 42, "the closure's result is returned");
    let error = (&file).read(&mut [0; 2]).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotSeekable, "{error}");
    assert!(error.to_string().contains("with_fd"), "{error}");
}

/// The pager's own errors carry a payload that code can match on (not only a message):
/// removed, replaced, and the deadlock of a self-wait.
#[test]
#[cfg(unix)]
fn the_pagers_own_errors_carry_a_payload_to_match_on() {
    use handoff::pager::{PageInError, PageInErrorKind};
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(1);
    let kind_of = |error: &io::Error| PageInError::of(error).map(PageInError::kind);

    let removed = pager
        .open(dir.path().join("removed"), &rw_create())
        .unwrap();
    let replaced = pager
        .open(dir.path().join("replaced"), &rw_create())
        .unwrap();
    let other = pager.open(dir.path().join("other"), &rw_create()).unwrap();
    fs::remove_file(dir.path().join("removed")).unwrap();
    fs::remove_file(dir.path().join("replaced")).unwrap();
    fs::write(dir.path().join("replaced"), b"someone else's").unwrap();

    let error = removed.read_at(&mut [0; 1], 0).unwrap_err();
    assert_eq!(kind_of(&error), Some(PageInErrorKind::Removed), "{error}");
    let why = PageInError::of(&error).unwrap();
    assert!(why.is_identity_failure());
    assert_eq!(why.path(), Some(dir.path().join("removed").as_path()));
    assert_eq!(why.raw_os_error(), Some(libc::ENOENT));

    let error = replaced.read_at(&mut [0; 1], 0).unwrap_err();
    assert_eq!(kind_of(&error), Some(PageInErrorKind::Replaced), "{error}");
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
    assert_eq!(pager.stats().identity_failures, 2);

    // Budget 1, held by this thread's own pin: reading a paged-out file can never succeed.
    let error = other
        .with_fd(|_| removed.read_at(&mut [0; 1], 0).unwrap_err())
        .unwrap();
    assert_eq!(kind_of(&error), Some(PageInErrorKind::Deadlock), "{error}");
    assert_eq!(error.kind(), io::ErrorKind::Deadlock);

    // An OS error of the operation itself is not the pager's: no payload.
    let error = other.write_at(b"x", u64::MAX).unwrap_err();
    assert_eq!(kind_of(&error), None, "{error}");
}

/// Bug 2 of issue 8 with C-runtime descriptors (on Windows the only thing paged): inside
/// `y.with_crt_fd`, asking for x's descriptor while another thread's page-in of x waits for the
/// budget that y's pin holds is a `Deadlock` error, not a hang; the other thread then gets x.
#[test]
fn a_self_wait_for_a_crt_descriptor_is_a_deadlock_error_not_a_hang() {
    let (inner, other) = within(Duration::from_secs(10), || {
        let dir = tempfile::tempdir().unwrap();
        let pager = Pager::new(1);
        let x = pager.open(dir.path().join("x"), &rw_create()).unwrap();
        let y = pager.open(dir.path().join("y"), &rw_create()).unwrap();
        y.with_crt_fd(|_| ()).unwrap(); // y resident, x not (budget 1)
        assert!(!x.is_resident());
        let (go, started) = mpsc::channel();
        thread::scope(|scope| {
            let x_ref = &x;
            let other = scope.spawn(move || {
                started.recv().unwrap();
                x_ref.with_crt_fd(|fd| fd >= 0)
            });
            let inner = y
                .with_crt_fd(|_| {
                    let waits = pager.stats().waits;
                    go.send(()).unwrap();
                    while pager.stats().waits == waits {
                        thread::yield_now();
                    }
                    x.with_crt_fd(|_| ()).map_err(|error| error.kind())
                })
                .unwrap();
            (inner, other.join().unwrap().unwrap())
        })
    });
    assert_eq!(inner, Err(io::ErrorKind::Deadlock));
    assert!(other);
}

/// A cursor call that pages its file in holds the cursor while it waits for the budget. A
/// thread whose `with_fd` pin holds that budget and asks for the same cursor waited for it for
/// ever (both threads hung); it gets `Deadlock` now, and the other thread its bytes.
#[test]
#[cfg(unix)]
fn a_cursor_held_by_a_page_in_waiting_for_this_threads_pin_is_a_deadlock_error() {
    let (inner, other) = within(Duration::from_secs(10), || {
        let dir = tempfile::tempdir().unwrap();
        let pager = Pager::new(1);
        let x = pager.open(dir.path().join("x"), &rw_create()).unwrap();
        x.write_all_at(b"x data", 0).unwrap();
        let y = pager.open(dir.path().join("y"), &rw_create()).unwrap(); // x paged out
        let (go, started) = mpsc::channel();
        thread::scope(|scope| {
            let x_ref = &x;
            let other = scope.spawn(move || {
                started.recv().unwrap();
                let mut text = String::new();
                { x_ref }.read_to_string(&mut text).map(|_| text)
            });
            let inner = y
                .with_fd(|_| {
                    let waits = pager.stats().waits;
                    go.send(()).unwrap();
                    while pager.stats().waits == waits {
                        thread::yield_now();
                    }
                    (&x).read(&mut [0; 2]).map_err(|error| error.kind())
                })
                .unwrap();
            (inner, other.join().unwrap().unwrap())
        })
    });
    assert_eq!(inner, Err(io::ErrorKind::Deadlock));
    assert_eq!(other, "x data");
}
