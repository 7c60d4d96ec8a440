//! The pager's Windows backing, against msvcrt.dll's real 2048-slot descriptor table: far more
//! virtual files than C-runtime descriptors, each written by the C runtime and read by Rust.
#![cfg(windows)]

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::os::windows::io::AsHandle;

use common::{crt_write, is_open, raw, serial, Census};
use handoff::crt::{Access, AsOsHandle, CrtFd};
use handoff::limits;
use handoff::pager::{OpenOptions, Pager, VirtualFile};

fn rw_create() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    options
}

/// `count` new virtual files in `dir`, named by number.
fn open_files(pager: &Pager, dir: &std::path::Path, count: usize) -> Vec<VirtualFile> {
    (0..count)
        .map(|i| pager.open(dir.join(format!("{i}")), &rw_create()).unwrap())
        .collect()
}

fn content(i: usize) -> String {
    format!("file {i}, written by _write\n")
}

/// Writes `content(i)` into file i through the C runtime, then reads every file back through
/// Rust I/O in a shuffled order.
fn write_by_c_read_by_rust(files: &mut [VirtualFile]) {
    for (i, file) in files.iter().enumerate() {
        let text = content(i);
        let written = file
            // SAFETY: `with_crt_fd` lends `fd` pinned open for the call.
            .with_crt_fd(|fd| unsafe { crt_write(fd, text.as_bytes()) })
            .unwrap()
            .unwrap();
        assert_eq!(written, text.len());
    }
    let mut order: Vec<usize> = (0..files.len()).collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..order.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        order.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    for i in order {
        let file = &mut files[i];
        // The cursor followed the C runtime's write.
        assert_eq!(file.stream_position().unwrap(), content(i).len() as u64);
        file.seek(SeekFrom::Start(0)).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, content(i), "file {i}");
    }
}

#[test]
fn ten_thousand_files_through_the_c_runtime_far_beyond_2048() {
    let _serial = serial();
    let census = Census::take();
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::from_limit().unwrap();
    assert!(pager.budget() < 2048, "budget {}", pager.budget());
    let mut files = open_files(&pager, dir.path(), 10_000);
    write_by_c_read_by_rust(&mut files);
    let stats = pager.stats();
    assert!(stats.peak_resident <= pager.budget() as u64, "{stats:?}");
    assert!(stats.page_ins >= 10_000 && stats.evictions > 0, "{stats:?}");
    drop(files);
    assert_eq!(pager.resident(), 0);
    drop(dir);
    census.assert_back();
}

#[test]
fn with_the_table_filled_by_others_eight_free_slots_are_enough() {
    let _serial = serial();
    let census = Census::take();
    let dir = tempfile::tempdir().unwrap();
    let lender = tempfile::tempfile().unwrap();
    // Unrelated code holds every C-runtime descriptor but eight.
    let mut others = Vec::new();
    while let Ok(fd) = CrtFd::dup_from(lender.as_os_handle(), Access::Read) {
        others.push(fd);
    }
    others.truncate(others.len() - 8);

    let pager = Pager::new(1000); // a budget far above what the table has left
    let mut files = open_files(&pager, dir.path(), 2_000);
    write_by_c_read_by_rust(&mut files);
    let stats = pager.stats();
    // Eight descriptors held, and a ninth budget token taken for an open that failed with
    // EMFILE (then one of the eight was evicted and the open retried).
    assert!(stats.peak_resident <= 9, "{stats:?}");
    assert!(stats.emfile_retries > 0, "{stats:?}");

    // Nothing evictable (the pager's descriptors all pinned at once, by nested with_crt_fd
    // calls) and no slot left: a clean error, not a crash.
    fn pinned<R>(files: &[VirtualFile], f: impl FnOnce() -> R) -> R {
        match files.split_first() {
            None => f(),
            Some((first, rest)) => first.with_crt_fd(|_| pinned(rest, f)).unwrap(),
        }
    }
    let error = pinned(&files[..8], || {
        // Whatever slot may have come free meanwhile is taken too.
        let mut more = Vec::new();
        while let Ok(fd) = CrtFd::dup_from(lender.as_os_handle(), Access::Read) {
            more.push(fd);
        }
        files[8].with_crt_fd(|fd| fd).unwrap_err()
    });
    assert!(limits::is_out_of_descriptors(&error), "{error:?}");

    drop((files, others, lender, dir));
    census.assert_back();
}

#[test]
fn every_handle_is_closed_exactly_once() {
    let _serial = serial();
    let census = Census::take();
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(4);
    let files = open_files(&pager, dir.path(), 64);
    let mut duplicates = Vec::new();
    for file in &files {
        file.with_crt_fd(|fd| duplicates.push(fd)).unwrap();
    }
    let handles: Vec<_> = files.iter().map(|file| raw(file.as_handle())).collect();
    assert!(handles.iter().all(|&handle| is_open(handle)));
    // Closing reports nothing wrong, and closes each file's own handle.
    for file in files {
        file.close().unwrap();
    }
    assert!(handles.iter().all(|&handle| !is_open(handle)));
    assert_eq!(pager.resident(), 0);
    drop(dir);
    census.assert_back();
}

#[test]
fn four_threads_budget_eight_leak_nothing() {
    let _serial = serial();
    // Warm up the thread machinery, whose first use may keep a handle or two for good.
    std::thread::spawn(|| ()).join().unwrap();
    let census = Census::take();
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(8);
    let files = open_files(&pager, dir.path(), 400);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let files = &files;
            scope.spawn(move || {
                for round in 0..5 {
                    for (i, file) in files.iter().enumerate().filter(|(i, _)| i % 4 == t) {
                        let text = format!("{i}:{round};");
                        let at = file.metadata().unwrap().len();
                        file.with_crt_fd(|fd| {
                            // Append at the end, by the C runtime.
                            // SAFETY: `fd` is pinned open for both calls.
                            unsafe {
                                libc::lseek(fd, at as _, 0);
                                crt_write(fd, text.as_bytes())
                            }
                        })
                        .unwrap()
                        .unwrap();
                        let mut back = vec![0; text.len()];
                        file.read_exact_at(&mut back, at).unwrap();
                        assert_eq!(back, text.as_bytes());
                    }
                }
            });
        }
    });
    assert!(pager.stats().peak_resident <= 8);
    drop(files);
    drop(dir);
    census.assert_back();
}
