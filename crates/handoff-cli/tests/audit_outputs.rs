//! `handoff audit --json FILE` / `--log-file FILE` whose FILE cannot be written: the audit
//! refuses before the program runs (exit 1, a message naming the file), rather than running it
//! to the end and then losing its report and its exit status.

use std::path::Path;
use std::process::Command;

/// Runs `handoff audit OPTION <unwritable path> -- sh -c 'touch MARKER; exit 3'` and checks
/// that the program never ran, that the exit status is 1 and that stderr names the file.
fn refused_before_running(option: &str) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let marker = dir.path().join("ran");
    let unwritable = dir.path().join("no-such-directory").join("report");
    let output = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .arg("audit")
        .arg(option)
        .arg(&unwritable)
        .args(["--", "sh", "-c", "touch \"$0\"; exit 3"])
        .arg(&marker)
        .output()
        .expect("running handoff audit");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !Path::new(&marker).exists(),
        "{option} {}: the program ran although its report could not be written; stderr: {stderr}",
        unwritable.display()
    );
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(&unwritable.display().to_string()),
        "the message names the file: {stderr}"
    );
}

#[test]
fn unwritable_log_file_is_refused_before_the_program_runs() {
    refused_before_running("--log-file");
}

#[test]
fn unwritable_json_is_refused_before_the_program_runs() {
    refused_before_running("--json");
}

/// A writable report file that exists already is replaced (not appended to), as before.
#[test]
fn existing_report_files_are_replaced() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (json, log) = (dir.path().join("r.json"), dir.path().join("r.txt"));
    std::fs::write(
        &json,
        "old junk that is longer than the new report, surely ".repeat(20),
    )
    .unwrap();
    std::fs::write(&log, "old junk ".repeat(200)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .arg("audit")
        .arg("--json")
        .arg(&json)
        .arg("--log-file")
        .arg(&log)
        .args(["--", "sh", "-c", "exit 3"])
        .output()
        .expect("running handoff audit");
    assert_eq!(output.status.code(), Some(3));
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).expect("valid JSON");
    assert_eq!(value["findings"], serde_json::json!([]));
    assert!(!std::fs::read_to_string(&log).unwrap().contains("old junk"));
}
