//! The C API from C: `tests/c/pager_test.c`, compiled at test time with `cc` against
//! `include/handoff.h` and the library cargo built (`libhandoff_c.so`, and `libhandoff_c.a`
//! for one test), run in a child process (it lowers its own `RLIMIT_NOFILE`).

#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

mod common;
use common::{compile, crate_dir};

/// The test program, built once per test binary (shared library, or static).
fn program(static_link: bool) -> &'static Path {
    static SHARED: OnceLock<PathBuf> = OnceLock::new();
    static STATIC: OnceLock<PathBuf> = OnceLock::new();
    let cell = if static_link { &STATIC } else { &SHARED };
    cell.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(if static_link {
            "pager_test_static"
        } else {
            "pager_test"
        });
        compile(
            &crate_dir().join("tests/c/pager_test.c"),
            &out,
            static_link,
            &[],
        );
        out
    })
}

fn run(static_link: bool, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(program(static_link))
        .arg(args[0])
        .arg(dir.path())
        .args(&args[1..])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.ends_with("ok\n"),
        "{args:?}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    // Read by the test itself too: no file of the run may be a stray real descriptor's.
    stdout
}

/// 20,000 files under `RLIMIT_NOFILE` 64, through `handoff_write` and `write(2)` on pinned
/// descriptors, read back shuffled through both, checked by stdio; `/proc/self/fd` back to
/// its start after `handoff_pager_free` (with files still open and pinned in it).
#[test]
fn twenty_thousand_files_under_a_limit_of_64() {
    let out = run(false, &["bulk", "20000"]);
    assert!(out.contains("files 20000"), "{out}");
}

/// The same program linked with the static library.
#[test]
fn the_static_library_works_too() {
    run(true, &["bulk", "500"]);
}

/// Every error of the header, with its errno (EINVAL, EBADF, ENOENT, EEXIST, EACCES, EBUSY,
/// EDEADLK, EMFILE), and the calls that work around them.
#[test]
fn every_error_case() {
    run(false, &["errors"]);
}

/// A stale second `handoff_close` of a number closed before 1,023 other opens and closes fails
/// with `EBADF` and leaves the file opened since alone (natively, and before the free list held
/// numbers back, the number was handed out again at the next open and the stale close closed
/// that file).
#[test]
fn a_stale_close_cannot_close_a_file_opened_since() {
    run(false, &["stale"]);
}

/// 4 threads × 1,000 files, budget 8, pins included; the budget is never exceeded and every
/// descriptor is closed.
#[test]
fn four_threads_a_thousand_files_each_budget_8() {
    run(false, &["threads"]);
}

/// The C++ RAII example of `examples/raii.cpp` compiles (warnings as errors) and runs.
#[test]
fn the_cpp_raii_example_compiles_and_runs() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("raii");
    compile(&crate_dir().join("examples/raii.cpp"), &out, false, &[]);
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(&out).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.ends_with("ok\n"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("part-7")).unwrap(),
        "from C++ and from C, file 7\n"
    );
}
