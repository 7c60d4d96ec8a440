//! The pager against raw std I/O and its peers, measured in the same run.
//!
//! ```text
//! cargo bench -p handoff --bench pager
//! ```
//!
//! | group | pager function | baseline function(s) |
//! |---|---|---|
//! | `hot_read_at_4k` | `pager` | `std_file` (`File::read_at`) |
//! | `page_in_and_eviction` | `pager_budget_1` (2 files alternate, 1-byte reads) | `open_fstat_pread_close` |
//! | `hot_reads_threads` | `pager/2` (throughput) | `pager/1` |
//! | `zipf_100k_files_4k_reads` | `pager_budget_256` | `open_pread_close`, `lru_256_std_files` |

use std::fs::{self, File};
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use handoff::pager::{OpenOptions, Pager};
use rand::{RngExt, SeedableRng};

const BLOCK: usize = 4096;

fn read_only() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true);
    options
}

/// A file of `blocks` 4 KiB blocks, read once so that it is in the page cache.
fn cached_file(path: &std::path::Path, blocks: usize) {
    let data: Vec<u8> = (0..blocks * BLOCK).map(|i| (i % 251) as u8).collect();
    fs::write(path, &data).unwrap();
    black_box(fs::read(path).unwrap());
}

fn hot_read_at(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hot");
    cached_file(&path, 256);
    let std_file = File::open(&path).unwrap();
    let pager = Pager::new(16);
    let virtual_file = pager.open(&path, &read_only()).unwrap();
    let mut buf = vec![0u8; BLOCK];

    // Rounds alternate std and pager (A B A B ...): this machine drifts by more than the
    // difference being measured, so each variant gets the same share of early and late time.
    let mut group = c.benchmark_group("hot_read_at_4k");
    group.throughput(Throughput::Bytes(BLOCK as u64));
    for round in 1..=3 {
        group.bench_function(BenchmarkId::new("std_file", round), |b| {
            let mut i = 0u64;
            b.iter(|| {
                i = (i + 1) % 256;
                black_box(std_file.read_at(&mut buf, i * BLOCK as u64).unwrap());
            })
        });
        group.bench_function(BenchmarkId::new("pager", round), |b| {
            let mut i = 0u64;
            b.iter(|| {
                i = (i + 1) % 256;
                black_box(virtual_file.read_at(&mut buf, i * BLOCK as u64).unwrap());
            })
        });
    }
    group.finish();
}

fn page_in_and_eviction(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let paths = [dir.path().join("a"), dir.path().join("b")];
    for path in &paths {
        cached_file(path, 1);
    }
    let mut group = c.benchmark_group("page_in_and_eviction");
    // Both read one byte, so that the pager side is a plain operation.
    group.bench_function("open_fstat_pread_close", |b| {
        let mut i = 0;
        b.iter(|| {
            i ^= 1;
            let file = File::open(&paths[i]).unwrap();
            black_box(file.metadata().unwrap());
            black_box(file.read_at(&mut [0; 1], 0).unwrap());
        })
    });
    let pager = Pager::new(1);
    let files = [
        pager.open(&paths[0], &read_only()).unwrap(),
        pager.open(&paths[1], &read_only()).unwrap(),
    ];
    // Each iteration reads from the file that is paged out: one page-in (open + statx), one
    // eviction (fstat for st_nlink + close), one pread.
    group.bench_function("pager_budget_1", |b| {
        let mut i = 0;
        b.iter(|| {
            i ^= 1;
            black_box(files[i].read_at(&mut [0; 1], 0).unwrap());
        })
    });
    group.finish();
}

/// Each of `threads` threads reads 4 KiB blocks from its own file, `iters` times.
fn timed_reads(pager: &Pager, paths: &[PathBuf], threads: usize, iters: u64) -> Duration {
    let files: Vec<_> = paths[..threads]
        .iter()
        .map(|path| pager.open(path, &read_only()).unwrap())
        .collect();
    let barrier = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for file in &files {
            let barrier = &barrier;
            scope.spawn(move || {
                let mut buf = vec![0u8; BLOCK];
                barrier.wait();
                for i in 0..iters {
                    black_box(file.read_at(&mut buf, (i % 256) * BLOCK as u64).unwrap());
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn hot_reads_threads(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = (0..2).map(|i| dir.path().join(format!("t{i}"))).collect();
    for path in &paths {
        cached_file(path, 256);
    }
    let pager = Pager::new(16);
    let mut group = c.benchmark_group("hot_reads_threads");
    for threads in [1, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_with_input(
            BenchmarkId::new("pager", threads),
            &threads,
            |b, &threads| b.iter_custom(|iters| timed_reads(&pager, &paths, threads, iters)),
        );
    }
    group.finish();
}

fn zipf_reads(c: &mut Criterion) {
    const FILES: usize = 100_000;
    const BUDGET: usize = 256;
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let block: Vec<u8> = (0..BLOCK).map(|i| (i % 251) as u8).collect();
    let paths: Vec<PathBuf> = (0..FILES)
        .map(|i| {
            let path = dir.path().join(format!("{i:06}"));
            fs::write(&path, &block).unwrap();
            path
        })
        .collect();
    let zipf = rand_distr::Zipf::new(FILES as f64, 1.1).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let picks: Vec<usize> = (0..1 << 20)
        .map(|_| rng.sample(zipf) as usize - 1)
        .collect();
    eprintln!("zipf setup: {FILES} files in {:?}", started.elapsed());

    let mut group = c.benchmark_group("zipf_100k_files_4k_reads");
    group.throughput(Throughput::Elements(1));
    let mut buf = vec![0u8; BLOCK];
    group.bench_function("open_pread_close", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % picks.len();
            let file = File::open(&paths[picks[i]]).unwrap();
            black_box(file.read_at(&mut buf, 0).unwrap());
        })
    });
    group.bench_function("lru_256_std_files", |b| {
        let mut cache = lru::LruCache::new(std::num::NonZeroUsize::new(BUDGET).unwrap());
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % picks.len();
            let file = cache.get_or_insert(picks[i], || File::open(&paths[picks[i]]).unwrap());
            black_box(file.read_at(&mut buf, 0).unwrap());
        })
    });
    let pager = Pager::new(BUDGET);
    let files: Vec<_> = paths
        .iter()
        .map(|path| pager.open(path, &read_only()).unwrap())
        .collect();
    group.bench_function("pager_budget_256", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % picks.len();
            black_box(files[picks[i]].read_at(&mut buf, 0).unwrap());
        })
    });
    group.finish();
    eprintln!("pager: {:?}", pager.stats());
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = hot_read_at, page_in_and_eviction, hot_reads_threads, zipf_reads
}
criterion_main!(benches);
