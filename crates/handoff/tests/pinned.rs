//! `VirtualFile::into_pinned`: a pin that outlives a call (what a C API's `pin`/`unpin` needs),
//! with `with_crt_fd`'s cursor rules and the budget's deadlock check. Real files and real
//! descriptors; the oracle is the file's bytes as `std::fs` reads them.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::mpsc;
use std::time::Duration;

use handoff::pager::{OpenOptions, Pager, PinnedFile, VirtualFile};

fn rw() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    options
}

fn pin(file: VirtualFile) -> PinnedFile {
    file.into_pinned().map_err(|(error, _)| error).unwrap()
}

/// `write` on a C-runtime descriptor (`_write` on Windows).
fn crt_write(fd: std::ffi::c_int, bytes: &[u8]) -> isize {
    // SAFETY: `fd` is pinned open by the caller; `bytes` is valid for its length.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len() as _) as isize }
}

/// Runs `f` on another thread; fails the test instead of hanging if it does not finish.
fn within<T: Send + 'static>(seconds: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || send.send(f()).unwrap());
    receive
        .recv_timeout(Duration::from_secs(seconds))
        .expect("hung: a wait that should have ended (or failed with Deadlock)")
}

#[test]
fn the_descriptor_starts_at_the_cursor_and_the_cursor_takes_its_offset_back() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(2);
    let mut file = pager.open(dir.path().join("f"), &rw()).unwrap();
    file.write_all(b"rust,").unwrap();
    let pinned = pin(file);
    assert_eq!(crt_write(pinned.crt_fd(), b"c,"), 2);
    pinned.write_at(b"R", 0).unwrap(); // positional calls work while pinned
    let mut file = pinned.unpin();
    file.write_all(b"rust again").unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("f")).unwrap(),
        b"Rust,c,rust again"
    );
    assert_eq!(file.stream_position().unwrap(), 17);
    file.seek(SeekFrom::Start(5)).unwrap();
    let mut rest = String::new();
    file.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "c,rust again");
}

#[test]
fn a_pinned_file_is_never_paged_out_and_dropping_it_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(2);
    let pinned = pin(pager.open(dir.path().join("pinned"), &rw()).unwrap());
    let others: Vec<_> = (0..20)
        .map(|i| pager.open(dir.path().join(i.to_string()), &rw()).unwrap())
        .collect();
    for other in &others {
        other.with_crt_fd(|_| ()).unwrap(); // pages each in, another out
    }
    assert_eq!(crt_write(pinned.crt_fd(), b"still open"), 10);
    assert!(pager.stats().peak_resident <= 2);
    drop(others);
    drop(pinned);
    assert_eq!(pager.resident(), 0);
    assert_eq!(
        std::fs::read(dir.path().join("pinned")).unwrap(),
        b"still open"
    );
}

/// Budget 1: a second pin by the thread that holds the first can never be granted
/// (`Deadlock`, at once); by another thread it waits until the first is unpinned.
#[test]
fn a_second_pin_under_budget_1_is_a_deadlock_for_this_thread_and_a_wait_for_another() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(1);
    let a = pager.open(dir.path().join("a"), &rw()).unwrap();
    let b = pager.open(dir.path().join("b"), &rw()).unwrap();
    let (pinned_a, b) = within(10, move || {
        let pinned_a = pin(a);
        let (error, b) = b.into_pinned().unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::Deadlock, "{error}");
        (pinned_a, b)
    });
    // Another thread waits for `a`'s pin, which this one gives back (a pin taken on one
    // thread, given back on another).
    let waiter = std::thread::spawn(move || pin(b));
    std::thread::sleep(Duration::from_millis(200));
    assert!(!waiter.is_finished(), "the pin did not wait for the budget");
    let a = pinned_a.unpin();
    let pinned_b = waiter.join().unwrap();
    // The pin taken on the other thread does not count as this thread's: no spurious
    // deadlock here, only a wait that `pinned_b`'s drop on a third thread ends.
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(pinned_b);
    });
    let a = within(10, move || pin(a));
    assert_eq!(crt_write(a.crt_fd(), b"a"), 1);
}

/// A pin given back on another thread is taken off its taker's count: here the other thread
/// unpins and pins again, holding the budget (1) for a while; the taking thread's next pin must
/// wait for it, not fail with `Deadlock` (which a ledger that still counted the first pin as
/// this thread's would report).
#[test]
fn a_pin_given_back_on_another_thread_is_no_longer_its_takers() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(1);
    let a = pager.open(dir.path().join("a"), &rw()).unwrap();
    let b = pager.open(dir.path().join("b"), &rw()).unwrap();
    let pinned = pin(a);
    let (pinned_again, receive) = mpsc::channel();
    let other = std::thread::spawn(move || {
        let again = pin(pinned.unpin());
        pinned_again.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        drop(again);
    });
    receive.recv().unwrap();
    let b = b.into_pinned().map_err(|(error, _)| error).unwrap(); // waits, on this thread
    assert!(b.crt_fd() >= 0);
    other.join().unwrap();
}

#[test]
fn a_pinned_file_can_live_in_a_table_shared_by_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<PinnedFile>();
}
