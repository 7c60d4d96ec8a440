//! `handoff audit` on real programs: no finding (or, for bash, exactly the double closes that
//! strace sees bash make natively), and the same output and exit status as without it.
#![cfg(target_os = "linux")]

mod audit_support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use audit_support::{audited, native};

/// Same stdout and status natively and under the audit, and no finding.
fn same(program: &str, args: &[&str], cwd: &Path) -> String {
    let plain = native(program, args, cwd);
    let audit = audited(&[], program, args, cwd);
    assert!(
        audit.findings.is_empty(),
        "{program} {args:?}: {}",
        audit.report
    );
    assert_eq!(
        String::from_utf8_lossy(&audit.output.stdout),
        String::from_utf8_lossy(&plain.stdout),
        "{program} {args:?}: output differs"
    );
    assert_eq!(
        audit.output.status.code(),
        plain.status.code(),
        "{program} {args:?}"
    );
    String::from_utf8_lossy(&plain.stdout).into_owned()
}

#[test]
fn python3_with_subprocess() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import subprocess, sys, os
r = subprocess.run(["echo", "hello"], capture_output=True)
print(r.stdout, r.returncode)
p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
print(p.communicate(b"through a pipe"))
with open("f.txt", "w") as f:
    f.write("x" * 100)
print(sorted(os.listdir(".")), os.path.getsize("f.txt"))
print(subprocess.call(["sh", "-c", "exit 3"]))
sys.exit(5)
"#;
    let out = same("python3", &["-c", script], dir.path());
    assert!(out.contains("through a pipe"), "{out}");
}

#[test]
fn git_init_add_commit() {
    let dir = tempfile::tempdir().unwrap();
    let script = "set -e; rm -rf repo; mkdir repo; cd repo; git init -q; \
                  echo one > a.txt; mkdir d; echo two > d/b.txt; git add -A; \
                  git -c user.name=t -c user.email=t@example.invalid commit -q -m first; \
                  git log --format='%H %s'; git status --porcelain; git ls-files";
    // The same commit hash needs the same dates and no user configuration.
    let run = |audit: bool| {
        let mut command = if audit {
            let mut c = Command::new(env!("CARGO_BIN_EXE_handoff"));
            c.args(["audit", "--error-exitcode", "99", "--", "sh", "-c", script]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", script]);
            c
        };
        command
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
            .output()
            .unwrap()
    };
    let plain = run(false);
    let audit = run(true);
    assert!(plain.status.success(), "{plain:?}");
    assert_eq!(
        audit.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&plain.stdout)
    );
    assert!(String::from_utf8_lossy(&plain.stdout).contains(" first\n"));
}

#[test]
fn tar_czf() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        let sub = dir.path().join("data").join(format!("d{}", i % 4));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("f{i}")), vec![b'a' + i as u8; 1000 * i]).unwrap();
    }
    let plain = native("tar", &["czvf", "native.tgz", "data"], dir.path());
    let audit = audited(&[], "tar", &["czvf", "audited.tgz", "data"], dir.path());
    assert!(audit.findings.is_empty(), "{}", audit.report);
    assert_eq!(audit.output.stdout, plain.stdout);
    assert_eq!(audit.output.status.code(), Some(0));
    // Both archives hold the same entries (listed natively).
    let a = native("tar", &["tzvf", "native.tgz"], dir.path());
    let b = native("tar", &["tzvf", "audited.tgz"], dir.path());
    assert!(!a.stdout.is_empty());
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn cargo_version() {
    let dir = tempfile::tempdir().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = same(&cargo, &["--version"], dir.path());
    assert!(out.starts_with("cargo "), "{out}");
}

/// `ls -la /proc/self/fd`: the same descriptors, pointing at the same things (the pid in
/// `/proc/PID/fd` and the times aside): the quarantine leaves no tombstone behind.
#[test]
fn ls_proc_self_fd() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["-la", "/proc/self/fd"];
    let plain = native("ls", &args, dir.path());
    let audit = audited(&[], "ls", &args, dir.path());
    assert!(audit.findings.is_empty(), "{}", audit.report);
    let normalize = |out: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(out)
            .lines()
            .filter(|l| !l.starts_with("total"))
            .map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                let name = fields.iter().skip(8).copied().collect::<Vec<_>>().join(" ");
                let mut words: Vec<String> = Vec::new();
                for word in name.split('/') {
                    let numeric = !word.is_empty() && word.chars().all(|c| c.is_ascii_digit());
                    words.push(if numeric && words.last().is_some_and(|w| w == "proc") {
                        "PID".to_owned()
                    } else {
                        word.to_owned()
                    });
                }
                // The test harness's own pipes differ from run to run.
                let joined = words.join("/");
                match joined.split_once("pipe:[") {
                    Some((head, _)) => format!("{head}pipe"),
                    None => joined,
                }
            })
            .collect()
    };
    assert_eq!(normalize(&audit.output.stdout), normalize(&plain.stdout));
    assert_eq!(audit.output.status.code(), Some(0));
}

/// Double closes in a strace log of one process (`strace -ff`): a close that fails with EBADF
/// on a number this process closed successfully before, with nothing opened on it since.
fn double_closes_in(trace: &str) -> usize {
    let mut closed: HashMap<i64, bool> = HashMap::new();
    let mut count = 0;
    for line in trace.lines() {
        let Some((call, result)) = line.rsplit_once(" = ") else {
            continue;
        };
        let call = call.trim();
        let result = result.split_whitespace().next().unwrap_or("");
        let number = |s: &str| s.trim().parse::<i64>().ok();
        if let Some(arg) = call.strip_prefix("close(") {
            let Some(fd) = number(arg.trim_end_matches(')')) else {
                continue;
            };
            if result == "0" {
                closed.insert(fd, true);
            } else if result == "-1" && line.contains("EBADF") && closed.get(&fd) == Some(&true) {
                count += 1;
                closed.insert(fd, false);
            }
        } else if call.starts_with("execve(") && result == "0" {
            closed.clear();
        } else if call.starts_with("pipe") || call.starts_with("socketpair(") {
            if let Some(inner) = call.split('[').nth(1).and_then(|s| s.split(']').next()) {
                for fd in inner.split(',').filter_map(number) {
                    closed.insert(fd, false);
                }
            }
        } else if let Some(fd) = number(result).filter(|fd| *fd >= 0) {
            closed.insert(fd, false); // open*, dup*, fcntl(F_DUPFD*), socket, ...
        }
    }
    count
}

/// bash pipelines: same output and status; bash 5 closes a pipe end twice in some pipelines
/// (nothing opened in between, so it is harmless there): the audit must report exactly the
/// double closes that strace shows bash making when run natively, and nothing else.
#[test]
fn bash_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let script = "seq 1 2000 | grep 7 | sort -r | head -3; echo \"${PIPESTATUS[@]}\"; \
                  x=$(echo sub | tr a-z A-Z); echo $x; for i in 1 2 3; do cat /etc/hostname >/dev/null; done; \
                  echo done > out.txt; wc -c < out.txt; exit 4";
    let args = ["-c", script];
    let plain = native("bash", &args, dir.path());
    let audit = audited(&[], "bash", &args, dir.path());
    assert_eq!(
        String::from_utf8_lossy(&audit.output.stdout),
        String::from_utf8_lossy(&plain.stdout)
    );
    assert_eq!(audit.output.status.code(), Some(4));
    assert_eq!(plain.status.code(), Some(4));

    let traces = tempfile::tempdir().unwrap();
    let status = Command::new("strace")
        .args(["-f", "-ff", "-qq", "-e", "signal=none", "-e"])
        .arg(
            "trace=close,pipe,pipe2,dup,dup2,dup3,open,openat,creat,fcntl,socket,socketpair,execve",
        )
        .arg("-o")
        .arg(traces.path().join("t"))
        .arg("bash")
        .args(args)
        .current_dir(dir.path())
        .output()
        .expect("strace (the package `strace`) is needed for this test");
    assert!(status.status.code() == Some(4), "{status:?}");
    let expected: usize = std::fs::read_dir(traces.path())
        .unwrap()
        .map(|e| double_closes_in(&std::fs::read_to_string(e.unwrap().path()).unwrap()))
        .sum();
    for finding in &audit.findings {
        assert_eq!(finding["kind"], "double_close", "{}", audit.report);
        assert_eq!(finding["call"], "close", "{}", audit.report);
    }
    assert_eq!(
        audit.findings.len(),
        expected,
        "strace saw {expected}: {}",
        audit.report
    );
}

/// bash saves a number before it reuses it (`exec 5>&-; exec 5>b`: an `F_GETFD` on 5, then a
/// `dup2` onto it), which under the audit meets 5 still quarantined: a probe, not a use after
/// close (strace shows bash closing nothing twice here). No finding, the same output.
#[test]
fn bash_reusing_an_explicit_number_is_no_finding() {
    let dir = tempfile::tempdir().unwrap();
    let script = "exec 5>a; exec 5>&-; exec 5>b; echo one >&5; exec 5>&-; \
                  exec 6>c; exec 6>&-; exec 6>>b; echo two >&6; cat b";
    let out = same("bash", &["-c", script], dir.path());
    assert_eq!(out, "one\ntwo\n");
}

/// The same question about a quarantined number, followed by anything but a descriptor put
/// there, is still a use after close (Rust's std asks it, in debug builds, before closing an
/// OwnedFd already closed, and aborts): reported, and answered `EBADF` as natively.
#[test]
fn a_probe_of_a_closed_number_not_reused_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let script = "import fcntl, os\n\
                  f = os.open('.', os.O_RDONLY)\n\
                  os.close(f)\n\
                  try:\n    fcntl.fcntl(f, fcntl.F_GETFD)\n\
                  except OSError as e:\n    print(e.errno)\n\
                  os.dup2(os.open('.', os.O_RDONLY), f)\n";
    let audit = audited(&[], "python3", &["-c", script], dir.path());
    assert_eq!(String::from_utf8_lossy(&audit.output.stdout), "9\n");
    let uses: Vec<_> = audit
        .findings
        .iter()
        .filter(|f| f["kind"] == "use_after_close" && f["call"] == "fcntl")
        .collect();
    assert_eq!(uses.len(), 1, "{}", audit.report);
}
