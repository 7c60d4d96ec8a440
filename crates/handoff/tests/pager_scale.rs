//! The pager at scale and under threads, against the real descriptor limit.
#![cfg(unix)]

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use handoff::pager::{OpenOptions, Pager};

/// A small deterministic generator (xorshift), so that failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

fn content(i: usize) -> Vec<u8> {
    format!("file {i}: {}\n", "x".repeat(i % 97)).into_bytes()
}

/// A child process limited to 64 descriptors opens 20,000 virtual files, writes distinct
/// content to each, and reads every one back in shuffled order.
#[test]
fn twenty_thousand_files_under_a_limit_of_64() {
    if !common::in_child() {
        return common::run_in_child("twenty_thousand_files_under_a_limit_of_64", 64, 64);
    }
    const N: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::from_limit().unwrap();
    assert!(pager.budget() < 64);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    let mut files: Vec<_> = (0..N)
        .map(|i| {
            pager
                .open(dir.path().join(format!("{i:05}")), &options)
                .unwrap()
        })
        .collect();
    for (i, file) in files.iter_mut().enumerate() {
        file.write_all(&content(i)).unwrap();
    }
    let mut order: Vec<usize> = (0..N).collect();
    Rng(0x9e37_79b9_7f4a_7c15).shuffle(&mut order);
    for &i in &order {
        let file = &mut files[i];
        file.seek(SeekFrom::Start(0)).unwrap();
        let mut back = Vec::new();
        file.read_to_end(&mut back).unwrap();
        assert_eq!(back, content(i), "file {i}");
    }
    let stats = pager.stats();
    assert!(stats.peak_resident <= pager.budget() as u64);
    assert!(stats.page_ins >= N as u64, "{stats:?}");
    drop(files);
    assert_eq!(pager.resident(), 0);
}

/// 8 threads do random operations on 2,000 files with a budget of 4, while a sampler counts
/// the process's open descriptors: never above baseline + budget, back to the baseline at the
/// end, and all done before a deadline (no deadlock).
#[test]
fn eight_threads_two_thousand_files_budget_four() {
    if !common::in_child() {
        return common::run_in_child("eight_threads_two_thousand_files_budget_four", 1024, 1024);
    }
    const FILES: usize = 2_000;
    const THREADS: usize = 8;
    const OPS: usize = 4_000;
    const BUDGET: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    // The sampler's own listing of /proc/self/fd is open while it counts: part of the baseline.
    let baseline = common::open_count();
    let pager = Pager::new(BUDGET);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    // File i holds records of 8 bytes: (i as u32, sequence u32), written only by thread i % 8
    // at its own offsets, so every byte read back can be checked.
    let files: Arc<Vec<_>> = Arc::new(
        (0..FILES)
            .map(|i| {
                pager
                    .open(dir.path().join(format!("{i}")), &options)
                    .unwrap()
            })
            .collect(),
    );

    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (done, peak) = (Arc::clone(&done), Arc::clone(&peak));
        std::thread::spawn(move || {
            let mut samples = 0u64;
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(common::open_count(), Ordering::Relaxed);
                samples += 1;
            }
            samples
        })
    };
    // Threads themselves hold no descriptors, so the ceiling is baseline + budget.
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let files = Arc::clone(&files);
            std::thread::spawn(move || {
                let mut rng = Rng(0x1234_5678 + t as u64);
                let mut written = vec![0u32; FILES];
                for _ in 0..OPS {
                    let i = rng.below(FILES / THREADS) * THREADS + t;
                    let file = &files[i];
                    match rng.below(4) {
                        0 | 1 => {
                            let sequence = written[i];
                            let mut record = [0u8; 8];
                            record[..4].copy_from_slice(&(i as u32).to_le_bytes());
                            record[4..].copy_from_slice(&sequence.to_le_bytes());
                            file.write_all_at(&record, u64::from(sequence) * 8).unwrap();
                            written[i] += 1;
                        }
                        2 => {
                            let count = written[i];
                            if count > 0 {
                                let k = rng.below(count as usize) as u64;
                                let mut record = [0u8; 8];
                                file.read_exact_at(&mut record, k * 8).unwrap();
                                assert_eq!(&record[..4], &(i as u32).to_le_bytes());
                                assert_eq!(&record[4..], &(k as u32).to_le_bytes());
                            }
                        }
                        _ => {
                            let len = file.metadata().unwrap().len();
                            assert_eq!(len, u64::from(written[i]) * 8);
                        }
                    }
                }
                written
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut totals = vec![0u32; FILES];
    for worker in workers {
        while !worker.is_finished() {
            assert!(Instant::now() < deadline, "deadlock: workers still running");
            std::thread::sleep(Duration::from_millis(5));
        }
        for (total, n) in totals.iter_mut().zip(worker.join().unwrap()) {
            *total += n;
        }
    }
    done.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap();
    let stats = pager.stats();
    assert!(
        peak.load(Ordering::Relaxed) <= baseline + BUDGET,
        "peak {} > baseline {baseline} + budget {BUDGET}",
        peak.load(Ordering::Relaxed)
    );
    assert!(samples > 100, "the sampler ran ({samples} samples)");
    assert!(stats.peak_resident <= BUDGET as u64, "{stats:?}");
    assert!(stats.evictions > 1000, "{stats:?}");
    for (i, file) in files.iter().enumerate() {
        assert_eq!(file.metadata().unwrap().len(), u64::from(totals[i]) * 8);
    }
    drop(files);
    assert_eq!(common::open_count(), baseline);
}

/// Pins that nest deeper than the budget on one thread get an error, not a deadlock; with a
/// pin held by another thread, a page-in waits for it instead.
#[test]
fn pins_wait_for_other_threads_and_refuse_to_wait_for_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(2);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    let files: Vec<_> = (0..3)
        .map(|i| {
            pager
                .open(dir.path().join(format!("{i}")), &options)
                .unwrap()
        })
        .collect();

    // One thread: two pins fill the budget; a third would wait for itself.
    let error = files[0]
        .with_fd(|_| files[1].with_fd(|_| files[2].with_fd(|_| ()).unwrap_err()))
        .unwrap()
        .unwrap();
    assert_eq!(error.kind(), std::io::ErrorKind::Deadlock, "{error}");

    // Two threads: the second waits until the first unpins.
    std::thread::scope(|scope| {
        let (pinned_tx, pinned_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let files = &files;
        let holder = scope.spawn(move || {
            files[0]
                .with_fd(|_| {
                    files[1]
                        .with_fd(|_| {
                            pinned_tx.send(()).unwrap();
                            release_rx.recv().unwrap();
                        })
                        .unwrap()
                })
                .unwrap()
        });
        pinned_rx.recv().unwrap();
        let waiter = scope.spawn(move || files[2].write_all_at(b"after the wait", 0));
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !waiter.is_finished(),
            "it waits while both descriptors are pinned"
        );
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        waiter.join().unwrap().unwrap();
    });
    assert!(pager.stats().waits > 0);
}
