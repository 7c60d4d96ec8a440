//! The per-call overhead of the C API against the Rust API and the raw system call, on a
//! resident file (the hit path), in one run. Ignored by default (a measurement, not a test):
//!
//! ```sh
//! cargo test --release -p handoff-c --test overhead -- --ignored --nocapture
//! ```

#![cfg(target_os = "linux")]

mod common;

use std::hint::black_box;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use handoff::pager::{OpenOptions, Pager};

const ITERATIONS: u32 = 200_000;

fn measure(name: &str, mut call: impl FnMut() -> std::io::Result<usize>) {
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        black_box(call().unwrap());
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS);
    println!("{name:<32} {ns:8.1} ns/call");
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture (and --release)"]
fn per_call_overhead() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, [7u8; 4096]).unwrap();
    let mut buf = [0u8; 64];

    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let pager = Pager::new(16);
    let mut virtual_file = pager
        .open(&path, OpenOptions::new().read(true).write(true))
        .unwrap();
    measure("Rust: File::read_at", || file.read_at(&mut buf, 0));
    measure("Rust: VirtualFile::read_at", || {
        virtual_file.read_at(&mut buf, 0)
    });
    measure("Rust: File::write_at", || file.write_at(&[1; 64], 0));
    measure("Rust: VirtualFile::write_at", || {
        virtual_file.write_at(&[1; 64], 0)
    });
    measure("Rust: File seek + read", || {
        file.seek(SeekFrom::Start(0))?;
        file.read(&mut buf)
    });
    measure("Rust: VirtualFile seek + read", || {
        virtual_file.seek(SeekFrom::Start(0))?;
        virtual_file.read(&mut buf)
    });
    drop(virtual_file);

    let program = Path::new(env!("CARGO_TARGET_TMPDIR")).join("overhead");
    common::compile(
        &common::crate_dir().join("tests/c/overhead.c"),
        &program,
        false,
        &["-O2"],
    );
    let output = Command::new(&program)
        .arg(&path)
        .arg(ITERATIONS.to_string())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    print!("{}", String::from_utf8_lossy(&output.stdout));
}
