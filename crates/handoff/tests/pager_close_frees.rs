//! `VirtualFile::close` gives back everything the virtual file owns (its own test binary: a
//! global allocator that counts live bytes sees the whole process).
#![cfg(unix)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicIsize, Ordering};

use handoff::pager::{OpenOptions, Pager};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only a count is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The cursor can own memory: here an error kept for the next cursor call (a `with_fd`
/// closure put a pipe in place of the descriptor, so the position could not be read back).
/// Closing the file (rather than dropping it) must free that too: `close` once forgot every
/// field but the table.
#[test]
fn close_frees_what_the_cursor_owns() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"abc").unwrap();
    let pager = Pager::new(4);
    let (reader, _writer) = io::pipe().unwrap();
    let once = || {
        let file = pager
            .open(dir.path().join("f"), OpenOptions::new().read(true))
            .unwrap();
        file.with_fd(|fd| {
            // SAFETY: replaces the pinned (open) descriptor by a duplicate of the pipe's.
            assert_ne!(
                unsafe { libc::dup2(reader.as_raw_fd(), fd.as_raw_fd()) },
                -1
            );
        })
        .unwrap();
        file.close()
    };
    // Warms up what grows to a bound and stays (the table's chunk, the path arena's block, the
    // clock's ring, which is swept at twice the budget plus 64 records).
    for _ in 0..300 {
        once().unwrap();
    }
    let before = LIVE.load(Ordering::Relaxed);
    for _ in 0..300 {
        once().unwrap();
    }
    let leaked = LIVE.load(Ordering::Relaxed) - before;
    assert!(leaked <= 0, "{leaked} bytes not freed by 300 closes");
    // The same with the kept error taken first: nothing is owned then, nothing leaks.
    let file = pager
        .open(dir.path().join("f"), OpenOptions::new().read(true))
        .unwrap();
    let mut buf = [0; 3];
    assert_eq!((&file).read(&mut buf).unwrap(), 3);
    file.close().unwrap();
}
