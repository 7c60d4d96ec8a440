//! Rust programs that close the raw number of a `CrtFd`, of a `CStream` and of a pager's file
//! behind its owner's back: under `handoff audit` the report names the owner that handoff
//! announced (`handoff::crt::CrtFd`, `handoff::crt::CStream (FILE*)`, `handoff::pager::Pager`).
#![cfg(target_os = "linux")]

mod audit_support;

use audit_support::audited;
use handoff::crt::{Access, AsOsHandle, CStream, CrtFd};
use handoff::pager::{OpenOptions, Pager};

/// The misuse itself; run only by the test below, under the audit.
#[test]
#[ignore = "run under handoff audit by crtfd_closed_behind_its_back_names_the_owner"]
// (Never inlined: the test looks for this function in the stack the audit reports.)
#[inline(never)]
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

/// A `CStream`'s descriptor closed behind its back; its `fclose` comes second.
#[test]
#[ignore = "run under handoff audit by cstream_closed_behind_its_back_names_the_owner"]
fn cstream_misuse_child() {
    let file = tempfile::tempfile().unwrap();
    let stream = CStream::dup_from(file.as_os_handle(), Access::Read).unwrap();
    // SAFETY: none: this is the bug under test.
    unsafe { libc::close(stream.fileno()) };
    drop(stream);
}

/// A pager's resident descriptor (lent by a pin) closed behind the pager's back.
#[test]
#[ignore = "run under handoff audit by pager_descriptor_closed_behind_its_back_names_the_pager"]
fn pager_misuse_child() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(4);
    let mut options = OpenOptions::new();
    options.write(true).create(true);
    let file = pager.open(dir.path().join("a"), &options).unwrap();
    let pinned = file.into_pinned().map_err(|(error, _)| error).unwrap();
    // SAFETY: none: this is the bug under test (the fd is the pager's).
    unsafe { libc::close(pinned.crt_fd()) };
    drop(pinned);
}

/// Correct use of both: nothing to report.
#[test]
#[ignore = "run under handoff audit by cstream_and_pager_used_correctly_are_clean"]
fn cstream_and_pager_correct_child() {
    let file = tempfile::tempfile().unwrap();
    let raw = CStream::dup_from(file.as_os_handle(), Access::Write)
        .unwrap()
        .into_raw();
    // SAFETY: given away by into_raw: ours to fclose, once.
    assert_eq!(unsafe { libc::fclose(raw.as_ptr()) }, 0);
    CStream::dup_from(file.as_os_handle(), Access::Read)
        .unwrap()
        .close()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(2);
    let mut options = OpenOptions::new();
    options.write(true).create(true);
    let files: Vec<_> = (0..6)
        .map(|i| {
            pager
                .open(dir.path().join(i.to_string()), &options)
                .unwrap()
        })
        .collect();
    for mut file in files {
        std::io::Write::write_all(&mut file, b"paged in and out").unwrap();
    }
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

/// The one `owned_close` of a child's report, with the owner it names.
fn owned_close_of(audit: &audit_support::Audited) -> String {
    assert!(audit.output.status.success(), "{}", audit.report);
    let owned: Vec<_> = audit
        .findings
        .iter()
        .filter(|f| f["kind"] == "owned_close")
        .collect();
    assert_eq!(owned.len(), 1, "{}", audit.report);
    assert_eq!(owned[0]["call"], "close");
    owned[0]["owner"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn cstream_closed_behind_its_back_names_the_owner() {
    let audit = run_child("cstream_misuse_child");
    assert_eq!(owned_close_of(&audit), "handoff::crt::CStream (FILE*)");
}

#[test]
fn pager_descriptor_closed_behind_its_back_names_the_pager() {
    let audit = run_child("pager_misuse_child");
    assert_eq!(owned_close_of(&audit), "handoff::pager::Pager");
}

#[test]
fn cstream_and_pager_used_correctly_are_clean() {
    let audit = run_child("cstream_and_pager_correct_child");
    assert!(audit.output.status.success(), "{}", audit.report);
    assert!(audit.findings.is_empty(), "{}", audit.report);
}
