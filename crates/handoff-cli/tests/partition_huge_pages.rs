//! `partition` re-executes itself once so that glibc puts its heap on transparent huge pages
//! (`GLIBC_TUNABLES`, read only before `main`), and maps a large buffer on its own, advised
//! onto huge pages. Checked by asking the kernel about the running process (`/proc/PID/...`):
//! the same process (PID) keeps its name and its standard input (a pipe written to before
//! and after it re-executes), its environment gains exactly
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

/// Asserts that OUT holds `a.csv` and `b.csv`, each exactly what [`expected`] says.
fn assert_files_hold(out: &std::path::Path, header: &[u8], records: &[u8]) {
    for key in [&b"a"[..], b"b"] {
        let name = format!("{}.csv", String::from_utf8_lossy(key));
        assert!(
            fs::read(out.join(&name)).unwrap() == expected(header, records, key),
            "{name} differs from the input's records"
        );
    }
}

/// `handoff partition -q [ARGS] k OUT`, with `GLIBC_TUNABLES` set to `environment` (removed
/// with `None`).
fn command(out: &std::path::Path, args: &[&str], environment: Option<&str>) -> Command {
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
    command
}

/// [`command`] reading its stdin from this test.
fn spawn(out: &std::path::Path, args: &[&str], environment: Option<&str>) -> Child {
    command(out, args, environment)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap()
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

/// How many KiB of `pid`'s mappings are advised onto huge pages (`hg` in the kernel's
/// `VmFlags`), and its `smaps_rollup`, once that is `want` KiB (or after 20 s: the records
/// written to its stdin are copied into the buffers a little after the pipe takes them).
fn advised_kib_reaching(pid: u32, want: u64) -> (u64, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
        let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
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
        if advised_kib >= want || Instant::now() > deadline {
            return (advised_kib, rollup);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
    let (advised_kib, rollup) = advised_kib_reaching(pid, 13_000);
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
    assert_files_hold(&out, header, &all);
    assert_eq!(fs::read_dir(&out).unwrap().count(), 2);
}

/// A large buffer is on huge pages by the binary's own allocator, whatever glibc does: with
/// `GLIBC_TUNABLES=` (no re-execution, glibc advises nothing), key a's 13 MB buffer is still a
/// mapping advised onto huge pages. (The run above cannot tell: there glibc's own mappings
/// are advised too, and it passed with the allocator's advice, or the allocator, taken out.)
#[test]
fn a_large_buffer_is_advised_by_the_allocator_without_the_tunables() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let header = b"k,v,p\n";
    let records = records(200_000);
    let mut child = spawn(&out, &[], Some(""));
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(header).unwrap();
    stdin.write_all(&records).unwrap();
    assert_eq!(tunables_once_running(&child).as_deref(), Some(""));
    let (advised_kib, rollup) = advised_kib_reaching(pid, 12_288);
    drop(stdin);
    assert!(child.wait().unwrap().success());
    assert!(
        advised_kib >= 12_288,
        "only {advised_kib} KiB advised onto huge pages:\n{rollup}"
    );
    assert_files_hold(&out, header, &records);
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

/// The memory promise (peak RSS within `--memory` + 32 MiB) holds with the heap on huge pages:
/// glibc keeps up to its `top_pad` of freed memory at the top of its heap, resident and not
/// counted in `--memory`. 40 keys' buffers grow in the heap to 2 MiB, move out to mappings of
/// their own (the heap's top freed) and fill `--memory 256M`, from 300 MB of input. The peak
/// (the kernel's high-water mark, `VmHWM`, polled) was 304 MiB with a 64 MiB `top_pad` (64
/// MiB of the heap still resident), 248 MiB with 8 MiB. The files' sizes are checked against
/// the records each key was given.
#[test]
fn the_heaps_padding_stays_within_the_memory_promise() {
    const KEYS: usize = 40;
    const RECORDS: usize = 300_000_000 / 4005;
    let record = |key: usize| [format!("k{key:02},").as_bytes(), &[b'x'; 4000], b"\n"].concat();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let mut file = std::io::BufWriter::new(fs::File::create(&input).unwrap());
    file.write_all(b"k,p\n").unwrap();
    let block: Vec<u8> = (0..KEYS).flat_map(record).collect();
    for _ in 0..RECORDS / KEYS {
        file.write_all(&block).unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();
    let out = dir.path().join("out");
    let mut child = command(&out, &["--memory", "256M"], None)
        .arg(&input)
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak_kib = 0;
    let status = loop {
        if let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(line) = status.lines().find(|line| line.starts_with("VmHWM:")) {
                peak_kib = peak_kib.max(kilobytes(line, "VmHWM:"));
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(status.success());
    for key in 0..KEYS {
        let size = fs::metadata(out.join(format!("k{key:02}.csv")))
            .unwrap()
            .len();
        assert_eq!(
            size as usize,
            4 + RECORDS / KEYS * record(key).len(),
            "k{key:02}"
        );
    }
    assert!(
        peak_kib <= (256 + 32) << 10,
        "peak RSS {peak_kib} KiB, over --memory 256M + 32 MiB"
    );
}

/// A file large enough to be parsed by two threads: the second half's glibc heap (a 64 MiB
/// reservation at an address aligned to it, of which glibc makes accessible only what it
/// uses, advising the first part onto huge pages itself) is grown once to most of it, and the
/// rest advised too. The kernel then shows, right after a heap's first part (a mapping that
/// starts on a 64 MiB boundary), an accessible mapping of 30 MiB or more with the `hg` flag.
/// Without it, what glibc makes accessible later is not advised (no `hg`) and grows a little
/// at a time. The files hold exactly the input's records.
#[test]
fn a_second_halfs_heap_is_grown_and_advised_whole() {
    let dir = tempfile::tempdir().unwrap();
    let header = b"k,v,p\n";
    let records = records(600_000); // 41 MB: split (16 MiB or more)
    let input = dir.path().join("in.csv");
    fs::write(&input, [&header[..], &records].concat()).unwrap();
    let out = dir.path().join("out");
    let mut child = command(&out, &[], None).arg(&input).spawn().unwrap();
    let pid = child.id();
    const HEAP_MAX_SIZE: usize = 64 << 20;
    let mut grown = false;
    while !grown && child.try_wait().unwrap().is_none() {
        let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
        // (start, end, readable and writable) of each mapping, and whether it is advised.
        let mut mappings: Vec<(usize, usize, bool, bool)> = Vec::new();
        for line in smaps.lines() {
            let mut words = line.split_whitespace();
            if let Some((start, end)) = words.next().and_then(|range| range.split_once('-')) {
                if let (Ok(start), Ok(end)) = (
                    usize::from_str_radix(start, 16),
                    usize::from_str_radix(end, 16),
                ) {
                    mappings.push((start, end, words.next() == Some("rw-p"), false));
                    continue;
                }
            }
            if let (Some(last), Some(flags)) = (mappings.last_mut(), line.strip_prefix("VmFlags:"))
            {
                last.3 = flags.split_whitespace().any(|flag| flag == "hg");
            }
        }
        grown = mappings.windows(2).any(|pair| {
            let ((first_start, first_end, ..), (start, end, writable, advised)) =
                (pair[0], pair[1]);
            first_start % HEAP_MAX_SIZE == 0
                && first_end == start
                && end <= first_start + HEAP_MAX_SIZE
                && end - start >= 30 << 20
                && writable
                && advised
        });
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(child.wait().unwrap().success());
    assert!(
        grown,
        "no thread heap grown and advised past its first part was seen"
    );
    assert_files_hold(&out, header, &records);
}
