//! `handoff audit` on a corpus of small C programs compiled here (`cc -g -O0`): each buggy one
//! gives the right kind naming the right functions; each correct one gives no finding and
//! the same output and status as when run natively.
#![cfg(target_os = "linux")]

mod audit_support;

use audit_support::{audited, compile, functions, names, native};
use serde_json::Value;

fn one_finding(findings: &[Value], report: &str) -> Value {
    assert_eq!(findings.len(), 1, "expected one finding, got: {report}");
    findings[0].clone()
}

/// A correct program: nothing found, same stdout and status with and without the audit.
fn clean(name: &str, args: &[&str]) {
    clean_with(&[], name, args);
}

fn clean_with(options: &[&str], name: &str, args: &[&str]) {
    let binary = compile(name);
    let dir = tempfile::tempdir().unwrap();
    let native = native(&binary, args, dir.path());
    let audit = audited(options, &binary, args, dir.path());
    assert!(audit.findings.is_empty(), "{name}: {}", audit.report);
    assert_eq!(
        String::from_utf8_lossy(&audit.output.stdout),
        String::from_utf8_lossy(&native.stdout),
        "{name}: output differs"
    );
    assert_eq!(
        audit.output.status.code(),
        native.status.code(),
        "{name}: status differs"
    );
    assert!(native.status.success(), "{name} fails natively: {native:?}");
}

#[test]
fn double_close_names_both_closers_and_the_opener() {
    let binary = compile("double_close");
    let dir = tempfile::tempdir().unwrap();
    for (options, quarantined) in [
        (&["--quarantine", "64"][..], true),
        (&["--quarantine", "0"], false),
        (&["--fast-stacks"], true),
    ] {
        let audit = audited(options, &binary, &[], dir.path());
        let f = one_finding(&audit.findings, &audit.report);
        assert_eq!(f["kind"], "double_close");
        assert_eq!(f["call"], "close");
        assert_eq!(f["quarantined"], quarantined, "{}", audit.report);
        assert!(names(&f, "stack", "second_owner"), "{}", audit.report);
        assert!(names(&f, "previous", "first_owner"), "{}", audit.report);
        assert!(names(&f, "opened", "open_it"), "{}", audit.report);
        assert!(!functions(&f, "stack").contains(&"first_owner".to_owned()));
        assert_eq!(audit.output.status.code(), Some(0));
        assert_eq!(audit.output.stdout, b"done\n");
    }
}

/// A double close of stderr: the audit's report file, opened while fd 2 is free, is closed
/// again, so the program's second close still fails with `EBADF` and its writes to stderr do
/// not land in the report (they did: the writer kept any report descriptor numbered 2 open).
#[test]
fn double_close_of_stderr_leaves_the_programs_results_alone() {
    let binary = compile("stderr_closed");
    let dir = tempfile::tempdir().unwrap();
    let plain = native(&binary, &[], dir.path());
    let expected = "second close(2): -1 Bad file descriptor\nwrite(2): -1 Bad file descriptor\n";
    assert_eq!(String::from_utf8_lossy(&plain.stdout), expected);
    for options in [&[][..], &["--quarantine", "0"]] {
        let audit = audited(options, &binary, &[], dir.path());
        assert_eq!(
            String::from_utf8_lossy(&audit.output.stdout),
            expected,
            "{options:?}: {}",
            audit.report
        );
        let kinds: Vec<_> = audit
            .findings
            .iter()
            .map(|f| (f["kind"].as_str(), f["call"].as_str(), f["fd"].as_i64()))
            .collect();
        assert_eq!(
            kinds,
            [
                (Some("double_close"), Some("close"), Some(2)),
                (Some("use_after_close"), Some("write"), Some(2))
            ],
            "{}",
            audit.report
        );
    }
}

/// A pipe's two ends closed twice (closes 3, 4, 3, 4): both double closes are reported, the
/// back-and-forth not taken for a close-all loop (it was, and both were retracted).
#[test]
fn a_pipe_closed_twice_is_not_taken_for_a_close_all_loop() {
    let binary = compile("pipe_closed_twice");
    let dir = tempfile::tempdir().unwrap();
    for options in [&[][..], &["--quarantine", "0"]] {
        let audit = audited(options, &binary, &[], dir.path());
        assert_eq!(audit.output.stdout, b"done\n");
        let kinds: Vec<_> = audit.findings.iter().map(|f| f["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            [Some("double_close"), Some("double_close")],
            "{options:?}: {}",
            audit.report
        );
        for f in &audit.findings {
            assert!(names(f, "stack", "chan_close"), "{}", audit.report);
            assert!(names(f, "previous", "chan_close"), "{}", audit.report);
        }
    }
}

#[test]
fn stale_close_is_reported_and_the_victims_file_survives() {
    let binary = compile("stale_close");
    let dir = tempfile::tempdir().unwrap();
    // Without the audit the library's late close hits the victim's descriptor.
    let plain = native(&binary, &["victim.txt"], dir.path());
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        "victim write failed: Bad file descriptor\n"
    );
    assert_eq!(std::fs::read(dir.path().join("victim.txt")).unwrap(), b"");
    // Under it, the number was quarantined: the victim got another one and kept it.
    let audit = audited(&[], &binary, &["victim.txt"], dir.path());
    assert_eq!(
        String::from_utf8_lossy(&audit.output.stdout),
        "victim write ok\n"
    );
    assert_eq!(
        std::fs::read(dir.path().join("victim.txt")).unwrap(),
        b"victim data\n"
    );
    assert_eq!(audit.output.status.code(), Some(0));
    let f = one_finding(&audit.findings, &audit.report);
    assert_eq!(f["kind"], "double_close");
    assert!(names(&f, "stack", "library_cleanup"), "{}", audit.report);
    assert!(
        names(&f, "previous", "library_hand_to_stdio"),
        "{}",
        audit.report
    );
    assert_eq!(f["previous_call"], "fclose");
    assert_eq!(f["quarantined"], true);
    assert!(names(&f, "opened", "library_open"), "{}", audit.report);
    // The readable report says the same.
    assert!(
        audit.report.contains("double_close: close("),
        "{}",
        audit.report
    );
    assert!(
        audit.report.contains("at library_cleanup (stale_close.c:"),
        "{}",
        audit.report
    );
}

#[test]
fn close_of_a_streams_descriptor_is_an_owned_close() {
    let binary = compile("fileno_close");
    let dir = tempfile::tempdir().unwrap();
    let audit = audited(&[], &binary, &[], dir.path());
    let f = one_finding(&audit.findings, &audit.report);
    assert_eq!(f["kind"], "owned_close");
    assert_eq!(f["call"], "close");
    assert_eq!(f["owner"], "FILE*");
    assert!(names(&f, "stack", "steal_fd"), "{}", audit.report);
    assert_eq!(f["opened_call"], "fopen");
    assert_eq!(audit.output.stdout, b"done\n");
}

#[test]
fn two_fdopens_of_one_descriptor_are_found_at_the_second_fclose() {
    let binary = compile("two_fdopen");
    let dir = tempfile::tempdir().unwrap();
    let audit = audited(&[], &binary, &[], dir.path());
    let f = one_finding(&audit.findings, &audit.report);
    assert!(
        f["kind"] == "double_close" || f["kind"] == "owned_close",
        "{}",
        audit.report
    );
    assert_eq!(f["call"], "fclose");
    assert!(names(&f, "stack", "close_second"), "{}", audit.report);
    assert!(names(&f, "previous", "close_first"), "{}", audit.report);
}

#[test]
fn read_after_close_is_a_use_after_close() {
    let binary = compile("read_after_close");
    let dir = tempfile::tempdir().unwrap();
    let native = native(&binary, &[], dir.path());
    let audit = audited(&[], &binary, &[], dir.path());
    let f = one_finding(&audit.findings, &audit.report);
    assert_eq!(f["kind"], "use_after_close");
    assert_eq!(f["call"], "read");
    assert!(names(&f, "stack", "reader"), "{}", audit.report);
    assert!(names(&f, "previous", "main"), "{}", audit.report);
    // Same outcome for the program: the read fails (EBADF) either way.
    assert_eq!(audit.output.stdout, native.stdout);
    assert_eq!(audit.output.stdout, b"read failed\n");
}

#[test]
fn leaks_only_with_the_flag() {
    let binary = compile("leak");
    let dir = tempfile::tempdir().unwrap();
    assert!(audited(&[], &binary, &[], dir.path()).findings.is_empty());
    let audit = audited(&["--leaks"], &binary, &[], dir.path());
    let f = one_finding(&audit.findings, &audit.report);
    assert_eq!(f["kind"], "leak");
    assert!(names(&f, "opened", "leaky"), "{}", audit.report);
}

#[test]
fn error_exitcode_only_when_something_was_found() {
    let dir = tempfile::tempdir().unwrap();
    let buggy = compile("double_close");
    let audit = audited(&["--error-exitcode", "42"], &buggy, &[], dir.path());
    assert_eq!(audit.output.status.code(), Some(42));
    let correct = compile("popen");
    let audit = audited(&["--error-exitcode", "42"], &correct, &[], dir.path());
    assert_eq!(audit.output.status.code(), Some(0));
    let audit = audited(
        &["--error-exitcode", "42"],
        "sh",
        &["-c", "exit 7"],
        dir.path(),
    );
    assert_eq!(audit.output.status.code(), Some(7));
}

/// The quarantine's tombstones are not in the program's own listings of its descriptors.
#[test]
fn descriptor_listings_do_not_show_tombstones() {
    clean("fd_listing", &[]);
}

/// Nor in the other usual listings: scandir (glibc opens and reads the directory without going
/// through opendir/readdir), fdopendir of an fd opened on /proc/self/fd, a relative path, a
/// thread's /proc/self/task/TID/fd, /proc/self/fdinfo; and a close-all loop driven by a
/// listing never closes a tombstone (natively every one of its closes succeeds).
#[test]
fn other_descriptor_listings_do_not_show_tombstones() {
    clean("fd_listing_more", &[]);
}

/// A close-all loop over a listing read while the quarantine gave tombstones back: none of its
/// closes fails (natively none does).
#[test]
fn a_close_all_loop_over_a_listing_closes_no_given_back_tombstone() {
    clean("fd_listing_close_all", &[]);
}

#[test]
fn threads_racing_opens_and_closes() {
    clean("threads", &[]);
}

/// Frame-pointer stacks walk every thread's own stack (its bounds found once per thread).
#[test]
fn threads_with_fast_stacks() {
    clean_with(&["--fast-stacks"], "threads", &[]);
}

#[test]
fn fork_then_a_close_all_loop_then_exec() {
    clean("fork_closeall", &[]);
}

#[test]
fn opendir_and_fdopendir_then_closedir() {
    clean("dir", &[]);
}

#[test]
fn popen_then_pclose() {
    clean("popen", &[]);
}

#[test]
fn dup2_onto_stdout() {
    clean("dup2_stdout", &["out.txt"]);
}

#[test]
fn close_stdin_then_open_gives_zero() {
    clean("stdin_reopen", &[]);
}

#[test]
fn tombstones_never_reach_an_exec() {
    clean("exec_after_close", &[]);
}

#[test]
fn dup2_onto_a_quarantined_number() {
    clean("dup2_onto_closed", &["out.txt"]);
}

#[test]
fn emfile_gives_quarantined_numbers_back() {
    // 100 closes under a limit of 24 leave a different set of tombstones for each K (the ring
    // holds K..2K of them, at most 21 fit): each must give every number back on EMFILE.
    for k in ["1", "5", "8", "16", "21", "64"] {
        clean_with(&["--quarantine", k], "emfile", &[]);
    }
}

#[test]
fn a_finding_survives_an_abort_right_after_it() {
    let binary = compile("abort_after");
    let dir = tempfile::tempdir().unwrap();
    let native = native(&binary, &[], dir.path());
    let audit = audited(&[], &binary, &[], dir.path());
    let f = one_finding(&audit.findings, &audit.report);
    assert_eq!(f["kind"], "double_close");
    assert!(names(&f, "stack", "second_close"), "{}", audit.report);
    // Killed by SIGABRT either way: the shell's 128 + 6.
    assert_eq!(native.status.code(), None);
    assert_eq!(audit.output.status.code(), Some(134));
}

/// SIGTERM sent to `handoff audit` alone (`kill`, `timeout`) while the program runs: it is
/// passed on to the program, which dies of it, and the report of what it did before is still
/// written; the status is the program's (128 + 15). Checked against the OS: the program's pid
/// is gone once `handoff audit` has exited.
#[test]
fn sigterm_to_the_audit_ends_the_program_and_keeps_the_report() {
    use std::io::BufRead;
    let binary = compile("close_twice_then_wait");
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("report.json");
    let mut audit = std::process::Command::new(env!("CARGO_BIN_EXE_handoff"))
        .arg("audit")
        .arg("--json")
        .arg(&json)
        .arg("--")
        .arg(&binary)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(audit.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let program: libc::pid_t = line.trim().parse().expect("the program's pid");
    // SAFETY: kill with a live child's pid and a signal.
    assert_eq!(
        unsafe { libc::kill(audit.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let output = audit.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143), "{output:?}");
    // SAFETY: signal 0 only asks whether the pid exists.
    let alive = unsafe { libc::kill(program, 0) } == 0;
    assert!(!alive, "the program outlived handoff audit");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["kind"], "double_close");
    assert!(String::from_utf8_lossy(&output.stderr).contains("1 finding"));
}

/// `handoff audit` killed by SIGKILL (no handler sees it) takes the program with it, as one
/// process under valgrind would end, instead of leaving it running unaudited: the kernel's
/// record of the program (`/proc/PID/stat`) shows it gone or a zombie soon after.
#[test]
fn sigkill_to_the_audit_ends_the_program_too() {
    use std::io::BufRead;
    let binary = compile("close_twice_then_wait");
    let mut audit = std::process::Command::new(env!("CARGO_BIN_EXE_handoff"))
        .arg("audit")
        .arg("--")
        .arg(&binary)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(audit.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let program: u32 = line.trim().parse().expect("the program's pid");
    let running = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            // The state follows the command's closing parenthesis.
            let state = stat.rsplit_once(") ").map(|(_, rest)| rest.as_bytes()[0]);
            !matches!(state, Some(b'Z' | b'X'))
        })
    };
    assert!(running(program), "the program is not running");
    audit.kill().unwrap();
    audit.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while running(program) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let alive = running(program);
    if alive {
        // SAFETY: kill with a pid read from the program itself, still running.
        unsafe { libc::kill(program as libc::pid_t, libc::SIGKILL) };
    }
    assert!(
        !alive,
        "the program outlived handoff audit killed by SIGKILL"
    );
}
