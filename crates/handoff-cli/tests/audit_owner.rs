//! A Rust program that closes a `CrtFd`'s raw number behind its back: under `handoff audit`
//! the report names the owner type that handoff announced (`handoff::crt::CrtFd`).
#![cfg(target_os = "linux")]

mod audit_support;

use audit_support::audited;
use handoff::crt::{Access, AsOsHandle, CrtFd};

/// The misuse itself; run only by the test below, under the audit.
#[test]
#[ignore = "run under handoff audit by crtfd_closed_behind_its_back_names_the_owner"]
fn crtfd_misuse_child() {
    let file = tempfile::tempfile().unwrap();
    let fd = CrtFd::dup_from(file.as_os_handle(), Access::Read).unwrap();
    // SAFETY: none: this is the bug under test. The CrtFd closes the number again when dropped.
    unsafe { libc::close(fd.as_raw()) };
    drop(fd);
}

/// Correct use: duplicate, hand the raw number to a C-style closer, drop another.
#[test]
#[ignore = "run under handoff audit by crtfd_used_correctly_is_clean"]
fn crtfd_correct_child() {
    let file = tempfile::tempfile().unwrap();
    let raw = CrtFd::dup_from(file.as_os_handle(), Access::Write)
        .unwrap()
        .into_raw();
    // SAFETY: `raw` was given away by into_raw: ours to close, once.
    assert_eq!(unsafe { libc::close(raw) }, 0);
    let kept = CrtFd::dup_from(file.as_os_handle(), Access::Read).unwrap();
    kept.close().unwrap();
    drop(CrtFd::dup_from(file.as_os_handle(), Access::Read).unwrap());
}

fn run_child(name: &str) -> audit_support::Audited {
    let exe = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    audited(
        &[],
        &exe,
        &["--ignored", "--exact", name, "--test-threads=1"],
        dir.path(),
    )
}

#[test]
fn crtfd_closed_behind_its_back_names_the_owner() {
    let audit = run_child("crtfd_misuse_child");
    assert!(
        audit.output.status.success(),
        "{audit_report}",
        audit_report = audit.report
    );
    let owned: Vec<_> = audit
        .findings
        .iter()
        .filter(|f| f["kind"] == "owned_close")
        .collect();
    assert_eq!(owned.len(), 1, "{}", audit.report);
    assert_eq!(owned[0]["owner"], "handoff::crt::CrtFd");
    assert_eq!(owned[0]["call"], "close");
    let stack: Vec<&str> = owned[0]["stack"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["function"].as_str())
        .collect();
    assert!(
        stack.iter().any(|f| f.contains("crtfd_misuse_child")),
        "{}",
        audit.report
    );
    assert!(
        audit.report.contains("owned by handoff::crt::CrtFd"),
        "{}",
        audit.report
    );
    // The CrtFd's own close afterwards is the second close of the number.
    assert!(
        audit.findings.iter().any(|f| f["kind"] == "double_close"),
        "{}",
        audit.report
    );
}

#[test]
fn crtfd_used_correctly_is_clean() {
    let audit = run_child("crtfd_correct_child");
    assert!(audit.output.status.success(), "{}", audit.report);
    assert!(audit.findings.is_empty(), "{}", audit.report);
}
