//! `partition` re-executes itself once so that glibc puts its heap on transparent huge pages
//! (`GLIBC_TUNABLES`, read only before `main`), and maps a large buffer on its own, advised
//! onto huge pages. Checked by asking the kernel about the running process (`/proc/PID/...`):
//! the same process (PID) keeps its name and its descriptors, its environment gains exactly
//! that tunable (or keeps the user's), its memory is advised and backed by huge pages; and the
//! files hold exactly the input's records, split by the test itself.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::fs;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Two keys, `a` with 96% of the records (its buffer passes 2 MiB soon), `b` the rest.
fn records(count: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for i in 0..count {
        let key = if i % 25 == 0 { "b" } else { "a" };
        bytes.extend(format!("{key},{i},{}\n", "x".repeat(60)).into_bytes());
    }
    bytes
}

/// What each key's file must hold: the header, then that key's records in input order.
fn expected(header: &[u8], records: &[u8], key: &[u8]) -> Vec<u8> {
    let mut file = header.to_vec();
    for line in records.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(key) && line[key.len()] == b',' {
            file.extend_from_slice(line);
        }
    }
    file
}

/// `handoff partition -q [ARGS] k OUT` reading its stdin from this test, with `environment`.
fn spawn(out: &std::path::Path, args: &[&str], environment: Option<&str>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_handoff"));
    command
        .args(["partition", "-q"])
        .args(args)
        .arg("k")
        .arg(out);
    command.env_remove("GLIBC_TUNABLES");
    if let Some(value) = environment {
        command.env("GLIBC_TUNABLES", value);
    }
    command.stdin(Stdio::piped()).spawn().unwrap()
}

/// Waits until the process has started a second thread (partition's reader: past the point
/// where it re-executes itself), then returns its `GLIBC_TUNABLES` as the kernel shows it.
fn tunables_once_running(child: &Child) -> Option<String> {
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while fs::read_dir(format!("/proc/{pid}/task")).unwrap().count() < 2 {
        assert!(Instant::now() < deadline, "no second thread within 20 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap();
    environ
        .split(|&b| b == 0)
        .find_map(|pair| pair.strip_prefix(b"GLIBC_TUNABLES="))
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

/// The kilobytes after `label` in a /proc file's text.
fn kilobytes(text: &str, label: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(label))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn huge_pages_enabled() -> bool {
    fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|modes| !modes.contains("[never]"))
}

#[test]
fn a_run_moves_onto_huge_pages_in_the_same_process_with_the_same_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let header = b"k,v,p\n";
    let first = records(200_000); // 14 MB, 13 MB of it key a
    let mut child = spawn(&out, &[], None);
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(header).unwrap();
    stdin.write_all(&first).unwrap();
    let tunables = tunables_once_running(&child);
    assert!(
        tunables
            .as_deref()
            .is_some_and(|value| value.starts_with("glibc.malloc.hugetlb=1")),
        "GLIBC_TUNABLES of the running process: {tunables:?}"
    );
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        "handoff"
    );
    // The reader keeps up with the pipe; the 13 MB of key a are in its buffer once the
    // process has read them all (the pipe is empty then, its records copied soon after).
    let deadline = Instant::now() + Duration::from_secs(20);
    let (smaps, rollup) = loop {
        let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
        let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
        let resident = kilobytes(&rollup, "Rss:");
        if resident > 13_000 || Instant::now() > deadline {
            break (smaps, rollup);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The advice, as the kernel records it for each mapping: the heap's and the large buffer's.
    let mut advised_kib = 0;
    let mut mapping_kib = 0;
    for line in smaps.lines() {
        if let Some(size) = line.strip_prefix("Size:") {
            mapping_kib = size.trim().trim_end_matches("kB").trim().parse().unwrap();
        }
        if line.starts_with("VmFlags:") && line.split_whitespace().any(|flag| flag == "hg") {
            advised_kib += mapping_kib;
        }
    }
    assert!(
        advised_kib >= 13_000,
        "only {advised_kib} KiB advised onto huge pages:\n{rollup}"
    );
    if huge_pages_enabled() {
        assert!(
            kilobytes(&rollup, "AnonHugePages:") >= 2048,
            "no huge page backs the buffers:\n{rollup}"
        );
    }
    let second = records(1_000);
    stdin.write_all(&second).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let all = [first, second].concat();
    for key in [&b"a"[..], b"b"] {
        let name = format!("{}.csv", String::from_utf8_lossy(key));
        assert!(
            fs::read(out.join(&name)).unwrap() == expected(header, &all, key),
            "{name} differs from the input's records"
        );
    }
    assert_eq!(fs::read_dir(&out).unwrap().count(), 2);
}

/// Started through a symlink of another name, the process keeps that name (`comm`, what
/// `ps` and `pgrep` match) once re-executed: the kernel takes it from the path executed,
/// which must be the link's, not the binary's it resolves to.
#[test]
fn a_run_started_through_a_symlink_keeps_the_links_name() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("hf");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_handoff"), &link).unwrap();
    let out = dir.path().join("out");
    let mut child = Command::new(&link)
        .args(["partition", "-q", "k"])
        .arg(&out)
        .env_remove("GLIBC_TUNABLES")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"k,v\na,1\n").unwrap();
    let tunables = tunables_once_running(&child);
    let comm = fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    assert!(tunables.is_some(), "re-executed");
    assert_eq!(comm.trim(), "hf");
    assert_eq!(fs::read(out.join("a.csv")).unwrap(), b"k,v\na,1\n");
}

/// A user's own `GLIBC_TUNABLES` is left as it is (and `GLIBC_TUNABLES=` turns huge pages
/// off); a small `--memory` is not moved onto huge pages either.
#[test]
fn the_users_tunables_and_a_small_memory_bound_are_left_alone() {
    for (args, environment, want) in [
        (
            &[][..],
            Some("glibc.malloc.check=0"),
            Some("glibc.malloc.check=0"),
        ),
        (&[][..], Some(""), Some("")),
        (&["--memory", "64M"][..], None, None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut child = spawn(&out, args, environment);
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"k,v\na,1\n").unwrap();
        let tunables = tunables_once_running(&child);
        assert_eq!(tunables.as_deref(), want, "{args:?} with {environment:?}");
        drop(stdin);
        assert!(child.wait().unwrap().success());
        assert_eq!(fs::read(out.join("a.csv")).unwrap(), b"k,v\na,1\n");
    }
}
