//! Shared by the `handoff audit` tests: compile the C corpus, run a program natively and under
//! `handoff audit --json`, and look into the findings.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// Where the corpus binaries go (one directory for the whole test binary).
fn build_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
        .path()
}

/// Compiles `tests/audit_corpus/NAME.c` with `cc -g -O0 -pthread` (once per test binary: two
/// tests may run one program at the same time) and returns the binary.
pub fn compile(name: &str) -> PathBuf {
    compile_at(name, "-O0")
}

/// Like [`compile`], at optimization `level` (`-O0`, `-O2`, ...).
pub fn compile_at(name: &str, level: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let key = format!("{name}{level}");
    if let Some((_, path)) = built.iter().find(|(n, _)| *n == key) {
        return path.clone();
    }
    let path = compile_now(name, level, &key);
    built.push((key, path.clone()));
    path
}

fn compile_now(name: &str, level: &str, binary_name: &str) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/audit_corpus")
        .join(format!("{name}.c"));
    let binary = build_dir().join(binary_name);
    let output = Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()))
        .args(["-g", level, "-pthread", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("running the C compiler (cc)");
    assert!(
        output.status.success(),
        "cc {}: {}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    binary
}

/// What a run under the audit gave.
pub struct Audited {
    pub output: Output,
    /// The `findings` array of `--json`.
    pub findings: Vec<Value>,
    /// The readable report (`--log-file`).
    pub report: String,
}

/// Runs `program args` natively.
pub fn native(program: impl AsRef<std::ffi::OsStr>, args: &[&str], cwd: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("running the program natively")
}

/// Runs `handoff audit OPTIONS --json F --log-file L -- program args`.
pub fn audited(
    options: &[&str],
    program: impl AsRef<std::ffi::OsStr>,
    args: &[&str],
    cwd: &Path,
) -> Audited {
    let out = tempfile::tempdir().expect("a temporary directory");
    let json = out.path().join("report.json");
    let log = out.path().join("report.txt");
    let output = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .arg("audit")
        .args(options)
        .arg("--json")
        .arg(&json)
        .arg("--log-file")
        .arg(&log)
        .arg("--")
        .arg(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("running handoff audit");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let value: Value = serde_json::from_str(&text).expect("the JSON report parses");
    let findings = value["findings"]
        .as_array()
        .expect("findings is an array")
        .clone();
    let report = std::fs::read_to_string(&log).unwrap_or_default();
    Audited {
        output,
        findings,
        report,
    }
}

/// The function names of one stack of a finding (`stack`, `previous` or `opened`).
pub fn functions(finding: &Value, which: &str) -> Vec<String> {
    finding[which]
        .as_array()
        .map(|frames| {
            frames
                .iter()
                .map(|f| f["function"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Does `which` of `finding` name `function` (with a file and a line: the corpus has -g)?
pub fn names(finding: &Value, which: &str, function: &str) -> bool {
    finding[which].as_array().is_some_and(|frames| {
        frames.iter().any(|f| {
            f["function"] == function
                && f["file"].as_str().is_some_and(|p| p.ends_with(".c"))
                && f["line"].as_u64().is_some_and(|l| l > 0)
        })
    })
}
