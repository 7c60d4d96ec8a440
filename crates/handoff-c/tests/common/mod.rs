//! Compiling the C programs of the tests against the header and the library cargo built.

#![allow(dead_code)] // each test binary uses its part

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where cargo put the library that this test run built: `deps/`, beside the test binary.
///
/// `cargo test` builds the library's `cdylib` and `staticlib` there (the crate is an `rlib`
/// too, so the tests depend on it and it is built at all), but copies them up to
/// `target/<profile>/` only on `cargo build`: a copy there may be stale, or missing on a clean
/// clone.
pub fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    assert!(
        deps.join("libhandoff_c.so").exists() && deps.join("libhandoff_c.a").exists(),
        "cargo did not build libhandoff_c.so and libhandoff_c.a in {}",
        deps.display()
    );
    deps
}

pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles a C program of `tests/c/` (or `examples/`) with `cc`, warnings as errors.
pub fn compile(source: &Path, output: &Path, static_link: bool, extra: &[&str]) {
    let lib = library_dir();
    let cpp = source.extension().is_some_and(|e| e == "cpp");
    let (variable, default, standard) = match cpp {
        true => ("CXX", "c++", "-std=c++17"),
        false => ("CC", "cc", "-std=c11"),
    };
    let compiler = std::env::var(variable).unwrap_or_else(|_| default.into());
    let mut cc = Command::new(compiler);
    cc.args([standard, "-O1", "-g", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(source)
        .arg("-o")
        .arg(output);
    if static_link {
        cc.arg(lib.join("libhandoff_c.a"))
            .args(["-lpthread", "-ldl", "-lm"]);
    } else {
        cc.arg("-L")
            .arg(&lib)
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .arg("-lhandoff_c")
            .arg("-lpthread");
    }
    cc.args(extra);
    let status = cc.status().expect("running cc");
    assert!(status.success(), "cc failed for {}", source.display());
}
