//! Compiles `csrc/preload.c` (the hooks) and `csrc/unwind.c` (the cached stack unwinder) into
//! a shared object in `OUT_DIR` (Linux only), with the C compiler the `cc` crate finds (`CC`,
//! then `cc`), so that `src/lib.rs` can embed its bytes.
//!
//! A `cdylib` crate cannot be a dependency of the `handoff` binary on stable Cargo (artifact
//! dependencies are unstable), and a preload library must define C-variadic functions
//! (`open`, `fcntl`), which stable Rust cannot: hence C, compiled here.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    for source in ["csrc/preload.c", "csrc/unwind.c", "csrc/unwind.h"] {
        println!("cargo:rerun-if-changed={source}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let library = out.join("libhandoff_audit.so");
    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .opt_level(2)
        .debug(true)
        .pic(true)
        .get_compiler();
    let mut command: Command = compiler.to_command();
    command
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-g",
            "-fvisibility=hidden",
            "-fno-omit-frame-pointer",
            "-U_FORTIFY_SOURCE",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wno-unused-parameter",
            "-Wno-nonnull-compare",
            "-fno-delete-null-pointer-checks",
            "-o",
        ])
        .arg(&library)
        .args(["csrc/preload.c", "csrc/unwind.c"])
        .args(["-ldl", "-lpthread"]);
    let status = command
        .status()
        .unwrap_or_else(|error| panic!("handoff-audit: cannot run the C compiler: {error}"));
    assert!(
        status.success(),
        "handoff-audit: the C compiler failed on csrc/preload.c ({status})"
    );
}
