//! `handoff partition` stopped early — by SIGINT/SIGTERM while a slow pipe is half way through
//! a record, or by a write past RLIMIT_FSIZE — leaves only whole records, exactly what the
//! reference splitter (tests/oracle, written from the spec) computes for the records it names
//! (spec 11).

mod file_size_limit;
mod oracle;

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use file_size_limit::file_size_limited;
use oracle::csv::{split, split_columns, Column, Options};
use oracle::judge::{judge_files, keys_of, listing, show, summary_counts, Strictness};

fn options() -> Options {
    Options {
        headers: true,
        delimiter: b',',
        column: Column::Name(b"key".to_vec()),
        prefix_length: None,
        skip_malformed: false,
    }
}

/// A header and 40 records: three keys, CRLF and LF terminators, quoted fields holding CR LF,
/// LF and delimiters — so that a cut can fall inside quotes, between CR and LF, after a
/// delimiter.
fn input() -> (Vec<u8>, Vec<Vec<u8>>) {
    let header = b"key,note,n\r\n".to_vec();
    let records = (0..40)
        .map(|i| {
            let key = ["a", "b", "c\"d"][i % 3];
            let key = if i % 3 == 2 {
                format!("\"{}\"", key.replace('"', "\"\""))
            } else {
                key.to_string()
            };
            let note = match i % 4 {
                0 => format!("plain {i}"),
                1 => format!("\"quoted\r\nline {i}, with a comma\""),
                2 => format!("\"lf\ninside {i}\""),
                _ => "x".repeat(100 + i),
            };
            let term = if i % 5 == 4 { "\n" } else { "\r\n" };
            format!("{key},{note},{i}{term}").into_bytes()
        })
        .collect();
    (header, records)
}

/// Waits for `child` to exit, up to `limit`.
fn wait(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        sleep(Duration::from_millis(10));
    }
    None
}

/// Sends `signal` to `child` and waits for it, `limit` at most (else it is killed): its status
/// and what it wrote to stderr.
fn signal_and_wait(
    child: &mut Child,
    signal: i32,
    limit: Duration,
) -> Result<(ExitStatus, String), String> {
    // SAFETY: kill(2) on the pid of a child we have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
    let Some(status) = wait(child, limit) else {
        child.kill().unwrap();
        child.wait().unwrap();
        return Err(format!("still running {limit:?} after signal {signal}"));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Ok((status, stderr))
}

/// Where a record is cut: after `whole` whole records, `offset` bytes into the next one
/// (`usize::MAX`: just before its last byte, i.e. between CR and LF for a CRLF record).
struct Cut {
    whole: usize,
    offset: usize,
    small_buffers: bool,
}

/// Feeds the input up to the cut through a pipe (in two chunks), waits, signals, keeps the pipe
/// open and quiet, and judges what is on disk.
fn interrupt(signal: i32, cut: &Cut, pause: Duration) -> Result<(), String> {
    let (header, records) = input();
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_handoff"));
    command
        .current_dir(dir.path())
        .arg("partition")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if cut.small_buffers {
        command.args(["--max-open", "1", "--memory", "200"]);
    }
    let mut child = command.args(["key", "out"]).spawn().unwrap();
    // The run has started (its set-up made OUTDIR) before anything is timed: a loaded machine
    // may take a while to get there.
    let start = Instant::now();
    while !dir.path().join("out").exists() && start.elapsed() < Duration::from_secs(20) {
        sleep(Duration::from_millis(5));
    }
    let mut stdin = child.stdin.take().unwrap();
    let half = cut.whole / 2;
    let mut first = header.clone();
    first.extend(records[..half].concat());
    stdin.write_all(&first).unwrap();
    stdin.flush().unwrap();
    sleep(Duration::from_millis(100));
    let partial = &records[cut.whole];
    let offset = cut.offset.min(partial.len() - 1);
    let mut second = records[half..cut.whole].concat();
    second.extend_from_slice(&partial[..offset]);
    stdin.write_all(&second).unwrap();
    stdin.flush().unwrap();
    sleep(pause);
    let waited = signal_and_wait(&mut child, signal, Duration::from_secs(20));
    drop(stdin);
    let (status, stderr) = waited.map_err(|e| format!("{e} (the pipe was open and quiet)"))?;
    let cut_at = format!(
        "cut after {} records + {} bytes of {}",
        cut.whole,
        offset,
        show(partial)
    );
    let want_code = 128 + signal;
    if status.code() != Some(want_code) {
        return Err(format!(
            "{cut_at}: exit {status}, want {want_code}; stderr {stderr}"
        ));
    }
    let Some((n, _)) = summary_counts(&stderr) else {
        return Err(format!(
            "{cut_at}: no \"N records\" in the summary: {stderr}"
        ));
    };
    if n != cut.whole {
        return Err(format!(
            "{}{cut_at}: the summary names {n} records; {} whole records were sent {pause:?} \
             before the signal: {stderr}",
            if n < cut.whole { SHORT } else { "" },
            cut.whole
        ));
    }
    let mut sent = header;
    sent.extend(records[..n].concat());
    let expected = split(&[sent], &options());
    judge_files(
        &listing(&dir.path().join("out"))?,
        &expected,
        "{}.csv",
        Strictness::Exact,
    )
    .map_err(|e| format!("{cut_at}: {e}\n  stderr: {stderr}"))
}

fn cuts() -> Vec<Cut> {
    let (_, records) = input();
    let mut cuts = Vec::new();
    for (i, whole) in [3usize, 9, 13, 21, 26, 33].into_iter().enumerate() {
        let record = &records[whole];
        let offset = match i {
            0 => 1,                                                    // inside the key
            1 => record.iter().position(|&c| c == b',').unwrap() + 1,  // just after a delimiter
            2 => record.iter().position(|&c| c == b'\r').unwrap() + 1, // inside quotes, after CR
            3 => usize::MAX,                                           // between CR and LF
            4 => 0,                                                    // at a record boundary
            _ => record.len() / 2,
        };
        cuts.push(Cut {
            whole,
            offset,
            small_buffers: i % 2 == 1,
        });
    }
    cuts
}

/// Marks a run where the child had not yet read every whole record sent (a slow machine, not
/// a broken promise): retried once with a longer pause.
const SHORT: &str = "SHORT: ";

fn interrupt_all(signal: i32) {
    let failures: Vec<String> = cuts()
        .iter()
        .filter_map(|cut| {
            match interrupt(signal, cut, Duration::from_millis(500)) {
                Err(e) if e.starts_with(SHORT) => interrupt(signal, cut, Duration::from_secs(3)),
                other => other,
            }
            .err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// SIGINT (exit 130): on disk exactly records 1..N, each whole; N as the summary says.
#[test]
fn sigint_mid_record_writes_whole_records_only() {
    interrupt_all(libc::SIGINT);
}

/// SIGTERM (exit 143): the same.
#[test]
fn sigterm_mid_record_writes_whole_records_only() {
    interrupt_all(libc::SIGTERM);
}

/// A write past RLIMIT_FSIZE (EFBIG): exit 1, every file ends at a record boundary, and the
/// summary's record count is what the files hold.
#[test]
fn a_failed_write_leaves_whole_records() {
    let limit: u64 = 4096;
    let mut input = b"key,payload\r\n".to_vec();
    for i in 0..400 {
        let key = ["big", "small", "big", "big", "other"][i % 5];
        let payload = match i % 3 {
            0 => "p".repeat(10 + i % 190),
            1 => format!("\"q\r\n{}\"", "y".repeat(i % 70)),
            _ => format!("{i}"),
        };
        input.extend(format!("{key},{payload}\r\n").into_bytes());
    }
    let expected = split(std::slice::from_ref(&input), &options());
    for memory in ["1K", "64K"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.csv"), &input).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_handoff"));
        command.current_dir(dir.path()).args([
            "partition",
            "--memory",
            memory,
            "key",
            "out",
            "in.csv",
        ]);
        file_size_limited(&mut command, limit);
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(1), "--memory {memory}: {stderr}");
        assert!(
            stderr.contains("big.csv"),
            "--memory {memory}: the file is not named: {stderr}"
        );
        let out = dir.path().join("out");
        let files = listing(&out).unwrap();
        if let Err(e) = judge_files(&files, &expected, "{}.csv", Strictness::WholeRecordPrefix) {
            panic!("--memory {memory}: {e}\n  stderr: {stderr}");
        }
        // The file that hit the limit holds every whole record that reached it: its bytes up
        // to RLIMIT_FSIZE, cut back to the last record boundary (spec 11).
        let big = &files[&b"big.csv".to_vec()];
        let fits = *expected.boundaries[&b"big".to_vec()]
            .iter()
            .filter(|&&b| b as u64 <= limit)
            .max()
            .unwrap();
        assert_eq!(
            big.len(),
            fits,
            "--memory {memory}: big.csv should end at the last record boundary within the \
             {limit}-byte limit: {stderr}"
        );
        // Records on disk, by the boundaries each file ends at.
        let on_disk: usize = keys_of(&files, &expected, "{}.csv")
            .unwrap()
            .iter()
            .map(|(key, name)| {
                let bounds = &expected.boundaries[key];
                let len = files[name].len();
                bounds.iter().position(|&b| b == len).unwrap_or(0)
            })
            .sum();
        match summary_counts(&stderr) {
            Some((n, _)) if n == on_disk => {}
            got => panic!(
                "--memory {memory}: the files hold {on_disk} records; the summary says {got:?}: \
                 {stderr}"
            ),
        }
    }
}

/// A signal while the second of two inputs (a named pipe given as a file) is half way through a
/// record: the first input's records and the second's whole ones, nothing more (spec 1, 11).
#[test]
fn signal_during_the_second_input() {
    let (header, records) = input();
    let dir = tempfile::tempdir().unwrap();
    let mut first = header.clone();
    first.extend(records[..10].concat());
    std::fs::write(dir.path().join("in0.csv"), &first).unwrap();
    let fifo = dir.path().join("in1.csv");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let mut child = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .current_dir(dir.path())
        .args(["partition", "key", "out", "in0.csv", "in1.csv"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Blocks until the child opens the pipe, i.e. has read in0.csv.
    let mut pipe = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let mut second = header;
    second.extend(records[10..17].concat());
    second.extend_from_slice(&records[17][..5]);
    pipe.write_all(&second).unwrap();
    pipe.flush().unwrap();
    // Signal once the child has taken every byte out of the pipe (FIONREAD on the write end
    // counts what is still unread), not after a fixed pause that a loaded machine may outlast.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut unread: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int through the pointer; the fd is open (`pipe`).
        let rc = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&pipe),
                libc::FIONREAD,
                &mut unread,
            )
        };
        assert_eq!(rc, 0, "FIONREAD: {}", std::io::Error::last_os_error());
        if unread == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child left {unread} bytes unread for 20 s"
        );
        sleep(Duration::from_millis(10));
    }
    sleep(Duration::from_millis(100));
    let (status, stderr) =
        signal_and_wait(&mut child, libc::SIGTERM, Duration::from_secs(20)).unwrap();
    drop(pipe);
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert_eq!(summary_counts(&stderr).map(|c| c.0), Some(17), "{stderr}");
    let mut sent = input().0;
    sent.extend(records[10..17].concat());
    let expected = split(&[first, sent], &options());
    let files = listing(&dir.path().join("out")).unwrap();
    if let Err(e) = judge_files(&files, &expected, "{}.csv", Strictness::Exact) {
        panic!("{e}\n  stderr: {stderr}");
    }
}

/// A signal while two threads parse one large file (see the CLI's `partition::halves`; forced
/// here with `HANDOFF_PARTITION_SPLIT_MIN`): the second half's records are taken only once the
/// first half reaches them, so the files hold exactly the first N records of the input, N being
/// the count the summary names — never a hole, never a record of the second half without all
/// before it. Signalled at several moments; at least one must land while the input is read.
#[test]
fn signal_while_two_threads_parse_a_file() {
    signal_while_two_threads_parse(&["key"]);
}

/// The same with a key of two columns (`key,n`: both threads decode every field and join the
/// key), judged by the reference keyed on both.
#[test]
fn signal_while_two_threads_parse_a_file_two_key_columns() {
    signal_while_two_threads_parse(&["key", "n"]);
}

fn signal_while_two_threads_parse(key: &[&str]) {
    let columns: Vec<Column> = key
        .iter()
        .map(|name| Column::Name(name.as_bytes().to_vec()))
        .collect();
    let (header, records) = input();
    let copies = 6_000;
    let dir = tempfile::tempdir().unwrap();
    let mut all = header.clone();
    for _ in 0..copies {
        all.extend(records.concat());
    }
    let path = dir.path().join("in.csv");
    std::fs::write(&path, &all).unwrap();
    let total = records.len() * copies;
    let mut interrupted = 0;
    for pause in [0u64, 5, 20, 80, 200, 500] {
        let out = dir.path().join(format!("out{pause}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_handoff"))
            .current_dir(dir.path())
            .env("HANDOFF_PARTITION_SPLIT_MIN", "1")
            .arg("partition")
            .arg(key.join(","))
            .arg(&out)
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !out.exists() && start.elapsed() < Duration::from_secs(20) {
            sleep(Duration::from_millis(1));
        }
        sleep(Duration::from_millis(pause));
        let (status, stderr) =
            signal_and_wait(&mut child, libc::SIGINT, Duration::from_secs(60)).unwrap();
        let n = summary_counts(&stderr)
            .unwrap_or_else(|| panic!("no summary: {stderr}"))
            .0;
        match status.code() {
            Some(130) => interrupted += usize::from(n < total),
            Some(0) => assert_eq!(n, total, "{stderr}"),
            _ => panic!("exit {status}: {stderr}"),
        }
        let mut sent = header.clone();
        for record in records.iter().cycle().take(n) {
            sent.extend_from_slice(record);
        }
        let expected = split_columns(&[sent], &options(), &columns);
        let files = listing(&out).unwrap();
        if let Err(e) = judge_files(&files, &expected, "{}.csv", Strictness::Exact) {
            panic!("signalled {pause} ms in, {n} records named: {e}\n  stderr: {stderr}");
        }
    }
    assert!(
        interrupted > 0,
        "every run ended before its signal: the test did not reach the parsing"
    );
}
