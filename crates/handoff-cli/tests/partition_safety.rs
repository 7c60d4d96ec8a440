//! `handoff partition`, end to end, one test (or a few) per item of issue #9: the real binary,
//! real files, symlinks, limits set in the child, real signals. The oracle is the input: every
//! expected output is built from the record bytes the test itself wrote, never from the code.

mod file_size_limit;
mod partition_support;

use std::collections::BTreeMap;
use std::fs;
#[cfg(unix)]
use std::io::Read;
use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

#[cfg(unix)]
use file_size_limit::file_size_limited;
use partition_support::{files, stderr};

fn handoff() -> Command {
    Command::new(env!("CARGO_BIN_EXE_handoff"))
}

fn with_stdin(command: &mut Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // A thread, so that a child that stops reading early cannot block the test.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

/// The expected files: `header` then each key's records, from (key, record bytes) pairs.
fn expected(header: &[u8], records: &[(&str, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (key, bytes) in records {
        files
            .entry(format!("{key}.csv"))
            .or_insert_with(|| header.to_vec())
            .extend_from_slice(bytes);
    }
    files
}

fn show(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(name, bytes)| {
            (
                name.clone(),
                format!("{:?}", String::from_utf8_lossy(bytes)),
            )
        })
        .collect()
}

fn partition_stdin(args: &[&str], out: &Path, input: &[u8]) -> Output {
    with_stdin(handoff().arg("partition").args(args).arg(out), input)
}

// ----- 1. terminators ---------------------------------------------------------------------

/// Runs the records through the binary (from a file and through stdin) and checks every file.
fn check_bytes_kept(header: &[u8], records: &[(&str, Vec<u8>)], last_added: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let mut input = header.to_vec();
    for (_, bytes) in records {
        input.extend_from_slice(bytes);
    }
    // The last record as written: with the terminator the input used last.
    let mut want: Vec<(&str, Vec<u8>)> = records.to_vec();
    want.last_mut().unwrap().1.extend_from_slice(last_added);
    let want = expected(header, &want);

    let path = dir.path().join("in.csv");
    fs::write(&path, &input).unwrap();
    let out = dir.path().join("file");
    let output = handoff()
        .args(["partition", "-q", "k"])
        .arg(&out)
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        show(&files(&out)),
        show(&want),
        "input {:?}",
        String::from_utf8_lossy(&input)
    );

    let out = dir.path().join("stdin");
    let output = partition_stdin(&["-q", "k"], &out, &input);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(show(&files(&out)), show(&want));
}

#[test]
fn crlf_input_keeps_every_byte() {
    let records = vec![
        ("a", b"a,1\r\n".to_vec()),
        ("b", b"b,2\r\n".to_vec()),
        ("a", b"a,3\r\n".to_vec()),
    ];
    check_bytes_kept(b"k,v\r\n", &records, b"");
    // No final terminator: the last record gets the input's, \r\n.
    let records = vec![("a", b"a,1\r\n".to_vec()), ("b", b"b,2".to_vec())];
    check_bytes_kept(b"k,v\r\n", &records, b"\r\n");
}

#[test]
fn lone_cr_and_mixed_terminators_and_quotes_keep_every_byte() {
    let records = vec![
        ("a", b"a,1\r".to_vec()),
        ("b", b"b,2\n".to_vec()),
        ("a", b"a,\"x\r\ny\"\r\n".to_vec()),
        ("c", b"\"c\",\"q\"\"\r\"\r".to_vec()),
        ("b", b"b,\"\n\"\n".to_vec()),
        ("a", b"a,4\r".to_vec()),
        ("c", b"c,5".to_vec()),
    ];
    check_bytes_kept(b"k,v\n", &records, b"\r");
    // Blank lines are not records and are not written.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = partition_stdin(&["-q", "k"], &out, b"k,v\r\n\r\na,1\r\n\n\rb,2\r\n\r\n");
    assert!(output.status.success(), "{}", stderr(&output));
    let want = expected(
        b"k,v\r\n",
        &[("a", b"a,1\r\n".to_vec()), ("b", b"b,2\r\n".to_vec())],
    );
    assert_eq!(show(&files(&out)), show(&want));
}

#[test]
fn a_crlf_cut_between_reads_is_one_terminator() {
    // Through a pipe, each piece arrives in its own read: `\r` ends one, `\n` starts the next.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = handoff()
        .args(["partition", "-q", "k"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let pieces: [&[u8]; 6] = [
        b"k,v\r",
        b"\na,1\r",
        b"\nb,\"2\r",
        b"\n\"\r",
        b"\na,3\r",
        b"\n",
    ];
    for piece in pieces {
        stdin.write_all(piece).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(60));
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let want = expected(
        b"k,v\r\n",
        &[
            ("a", b"a,1\r\n".to_vec()),
            ("b", b"b,\"2\r\n\"\r\n".to_vec()),
            ("a", b"a,3\r\n".to_vec()),
        ],
    );
    assert_eq!(show(&files(&out)), show(&want));

    // From a file: a `\r\n` across the 1 MiB read boundary, at every offset around it.
    for shift in 0..4 {
        let mut records = Vec::new();
        let mut len = 5 + shift; // "k,v\r\n" and a shift
        let filler = "x".repeat(shift);
        let mut i = 0;
        while len < (1 << 20) + 200 {
            let key = ["a", "b", "c"][i % 3];
            let record = format!("{key},{i}{filler}\r\n").into_bytes();
            len += record.len();
            records.push((key, record));
            i += 1;
        }
        let mut input = b"k,v\r\n".to_vec();
        for (_, bytes) in &records {
            input.extend_from_slice(bytes);
        }
        let path = dir.path().join(format!("big{shift}.csv"));
        fs::write(&path, &input).unwrap();
        let out = dir.path().join(format!("big{shift}"));
        let output = handoff()
            .args(["partition", "-q", "k"])
            .arg(&out)
            .arg(&path)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(
            files(&out) == expected(b"k,v\r\n", &records),
            "shift {shift}"
        );
    }
}

// ----- 2. signals -------------------------------------------------------------------------

/// Feeds records through a pipe in pieces that cut records in half, signals the run while
/// records still arrive, and checks that the files hold exactly records 1..N, N as reported.
#[cfg(unix)]
fn signal_while_records_arrive(signal: i32, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = handoff()
        .args(["partition", "k"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let record = |i: usize| format!("key{},{i},{}\n", i % 7, "p".repeat(i % 50)).into_bytes();
    let mut stream = b"k,n,payload\n".to_vec();
    for i in 1..=200_000 {
        stream.extend_from_slice(&record(i));
    }
    let writer = std::thread::spawn(move || {
        // 1,001-byte pieces: nearly every one ends inside a record.
        for piece in stream.chunks(1001) {
            if stdin.write_all(piece).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_micros(300));
        }
    });
    // Signalled once it runs (OUTDIR made) and has had time to read some records.
    for _ in 0..1000 {
        if out.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let mut message = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut message)
        .unwrap();
    let status = child.wait().unwrap();
    writer.join().unwrap();
    assert_eq!(status.code(), Some(code), "{message}");
    let last: usize = message
        .split("the last is record ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no last record in {message:?}"));
    assert!(last > 0, "{message}");
    let records: Vec<(String, Vec<u8>)> = (1..=last)
        .map(|i| (format!("key{}", i % 7), record(i)))
        .collect();
    let records: Vec<(&str, Vec<u8>)> = records
        .iter()
        .map(|(key, bytes)| (key.as_str(), bytes.clone()))
        .collect();
    let written = files(&out);
    let want = expected(b"k,n,payload\n", &records);
    assert_eq!(written.len(), want.len(), "{message}");
    for (name, bytes) in &want {
        // Compared by length first: a cut record shows as a short tail.
        let got = &written[name];
        assert!(
            got == bytes,
            "{name}: {} bytes, want {}; tail {:?}",
            got.len(),
            bytes.len(),
            String::from_utf8_lossy(&got[got.len().saturating_sub(80)..])
        );
    }
}

#[test]
#[cfg(unix)]
fn sigint_while_records_arrive_never_cuts_a_record() {
    for _ in 0..3 {
        signal_while_records_arrive(libc::SIGINT, 130);
    }
}

#[test]
#[cfg(unix)]
fn sigterm_while_records_arrive_never_cuts_a_record() {
    for _ in 0..3 {
        signal_while_records_arrive(libc::SIGTERM, 143);
    }
}

// ----- 3. symlinks ------------------------------------------------------------------------

#[test]
#[cfg(unix)]
fn a_symlink_in_outdir_is_an_error_and_nothing_outside_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside.txt");
    let input = dir.path().join("in.csv");
    fs::write(&input, "k,v\na,1\nb,2\n").unwrap();
    for mode in ["--force", "--append"] {
        fs::write(&outside, "precious\n").unwrap();
        let out = dir.path().join(format!("out{mode}"));
        fs::create_dir(&out).unwrap();
        symlink(&outside, out.join("a.csv")).unwrap();
        let output = handoff()
            .args(["partition", "-q", mode, "k"])
            .arg(&out)
            .arg(&input)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{mode}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("a.csv") && stderr(&output).contains("symbolic link"),
            "{mode}: {}",
            stderr(&output)
        );
        assert_eq!(fs::read(&outside).unwrap(), b"precious\n", "{mode}");
        assert!(fs::symlink_metadata(out.join("a.csv"))
            .unwrap()
            .file_type()
            .is_symlink());
    }
    // A dangling link: nothing is created where it points.
    let out = dir.path().join("dangling");
    fs::create_dir(&out).unwrap();
    let target = dir.path().join("created-outside.csv");
    symlink(&target, out.join("a.csv")).unwrap();
    let output = handoff()
        .args(["partition", "-q", "--force", "k"])
        .arg(&out)
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(!target.exists(), "a file was created outside OUTDIR");
}

// ----- 4. inputs inside OUTDIR ------------------------------------------------------------

#[test]
#[cfg(unix)]
fn an_input_inside_outdir_is_refused_and_left_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let mut text = String::from("k,v\n");
    for i in 0..1000 {
        text.push_str(&format!("{},{i}\n", ["a", "b"][i % 2]));
    }
    let inside = out.join("a.csv");
    fs::write(&inside, &text).unwrap();
    let link = dir.path().join("link.csv");
    symlink(&inside, &link).unwrap();
    for input in [&inside, &link] {
        let output = handoff()
            .args(["partition", "-q", "--force", "k"])
            .arg(&out)
            .arg(input)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains("inside"), "{}", stderr(&output));
        assert_eq!(fs::read_to_string(&inside).unwrap(), text);
        assert_eq!(fs::read_dir(&out).unwrap().count(), 1);
    }
    // Standard input redirected from the file.
    let output = handoff()
        .args(["partition", "-q", "--append", "k"])
        .arg(&out)
        .stdin(fs::File::open(&inside).unwrap())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(fs::read_to_string(&inside).unwrap(), text);
}

// ----- 5. --append checks the header ------------------------------------------------------

#[test]
fn append_refuses_a_file_with_another_header() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("a.csv"), "key,value\na,1\n").unwrap();
    let output = partition_stdin(&["-q", "--append", "key"], &out, b"key,x,y\na,2,3\nb,4,5\n");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("a.csv"), "{}", stderr(&output));
    assert_eq!(fs::read(out.join("a.csv")).unwrap(), b"key,value\na,1\n");
    assert!(!out.join("b.csv").exists(), "written before the check");
    // The same names (a BOM aside) are accepted.
    fs::write(out.join("a.csv"), "\u{feff}key,value\na,1\n").unwrap();
    let output = partition_stdin(&["-q", "--append", "key"], &out, b"key,value\na,2\n");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        fs::read(out.join("a.csv")).unwrap(),
        "\u{feff}key,value\na,1\na,2\n".as_bytes()
    );
}

// ----- 6. unterminated quote --------------------------------------------------------------

#[test]
fn an_unterminated_quote_is_an_error_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("open.csv");
    fs::write(&input, "k,v\na,1\nb,\"open\nc,3\nd,4\n").unwrap();
    for extra in [&[][..], &["--skip-malformed"][..]] {
        let out = dir.path().join(format!("out{}", extra.len()));
        let output = handoff()
            .args(["partition", "-q"])
            .args(extra)
            .arg("k")
            .arg(&out)
            .arg(&input)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        let message = stderr(&output);
        assert!(
            message.contains("open.csv:3") && message.contains("quote"),
            "{message}"
        );
        // The records before it are written, whole.
        assert_eq!(
            show(&files(&out)),
            show(&expected(b"k,v\n", &[("a", b"a,1\n".to_vec())]))
        );
    }
}

// ----- 7. terminal escapes ----------------------------------------------------------------

#[test]
#[cfg(unix)]
fn input_bytes_reach_the_terminal_escaped_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    let output = partition_stdin(
        &["x"],
        &dir.path().join("out"),
        b"k\x1b]0;PWNED\x07\x1b[2J,v\xff\x7f\na,1\n",
    );
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    for byte in [0x1b, 0x07, 0x7f, 0xff] {
        assert!(!output.stderr.contains(&byte), "{byte:#x} in {message:?}");
    }
    assert!(message.contains("k\\x1B]0;PWNED\\x07\\x1B[2J"), "{message}");
    assert!(message.contains("v\\xFF\\x7F"), "{message}");

    // A 10 KB key in an error message is cut.
    let key = format!("\x1b[31m{}", "K".repeat(10_000));
    let input = format!("k,v\n{key},1\n");
    let output = file_size_limited(&mut handoff(), 4096)
        .arg("partition")
        .arg("k")
        .arg(dir.path().join("big"))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(input.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(!output.stderr.contains(&0x1b), "{message}");
    assert!(message.contains('…'), "{message}");
    assert!(message.len() < 2000, "{} bytes: {message}", message.len());
}

// ----- 8. the smaller items ---------------------------------------------------------------

#[test]
fn outdir_that_is_a_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    fs::write(&file, "x").unwrap();
    let output = partition_stdin(&["k"], &file, b"k\na\n");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not a directory"),
        "{}",
        stderr(&output)
    );
    assert_eq!(fs::read(&file).unwrap(), b"x");
}

#[test]
fn a_column_past_the_last_field_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = partition_stdin(&["--no-headers", "5"], &out, b"a,1\nb,2\n");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("column 5") && message.contains("2 fields"),
        "{message}"
    );
    assert!(!out.exists(), "OUTDIR left behind");
}

#[test]
fn prefix_length_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = partition_stdin(&["-p", "0", "k"], &dir.path().join("out"), b"k\na\n");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(!dir.path().join("out").exists());
}

#[test]
fn a_too_long_template_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let template = format!("{}{{}}.csv", "t".repeat(60));
    let output = partition_stdin(&["--filename", &template, "k"], &out, b"k\na\nb\n");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--filename"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists(), "OUTDIR left behind");
}

#[test]
fn a_missing_column_leaves_no_outdir_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new").join("out");
    let output = partition_stdin(&["nope"], &out, b"k,v\na,1\n");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(!out.exists());
    // An OUTDIR that was there stays.
    fs::create_dir_all(&out).unwrap();
    let output = partition_stdin(&["nope"], &out, b"k,v\na,1\n");
    assert_eq!(output.status.code(), Some(2));
    assert!(out.is_dir());
}

#[test]
fn the_summary_counts_in_the_singular() {
    let dir = tempfile::tempdir().unwrap();
    let output = partition_stdin(&["k"], &dir.path().join("out"), b"k,v\na,1\n");
    assert!(output.status.success());
    assert!(
        stderr(&output).contains("1 record into 1 file:"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bench_with_no_keys_is_a_usage_error() {
    let output = handoff()
        .args(["bench", "partition", "--keys", "0", "--lines", "10"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(!stderr(&output).contains("Zipf"), "{}", stderr(&output));
    assert!(stderr(&output).contains("--keys"), "{}", stderr(&output));
}

#[test]
#[cfg(unix)]
fn a_full_disk_leaves_whole_records_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let header = b"k,payload\n";
    let mut text = header.to_vec();
    let mut records = Vec::new();
    for i in 0..4000 {
        let key = if i % 10 == 0 { "small" } else { "big" };
        let record = format!("{key},{i}{}\n", "x".repeat(53)).into_bytes();
        text.extend_from_slice(&record);
        records.push((key, record));
    }
    fs::write(&input, &text).unwrap();
    let out = dir.path().join("out");
    let output = file_size_limited(&mut handoff(), 64 * 1024)
        .args(["partition", "--memory", "16K", "k"])
        .arg(&out)
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("big.csv"), "{message}");
    assert!(message.contains(" records into "), "no summary: {message}");
    // Each file is the header and a prefix of its key's records, whole.
    let all = expected(header, &records);
    for (name, got) in files(&out) {
        let want = &all[&name];
        assert!(want.starts_with(&got), "{name}: not a prefix");
        let tail = &got[header.len()..];
        assert!(
            tail.is_empty() || tail.ends_with(b"\n"),
            "{name}: ends inside a record"
        );
        let whole = records
            .iter()
            .filter(|(key, _)| format!("{key}.csv") == name)
            .scan(header.len(), |len, (_, r)| {
                *len += r.len();
                Some(*len)
            })
            .any(|len| len == got.len());
        assert!(
            whole || got.len() == header.len(),
            "{name}: {} bytes",
            got.len()
        );
    }
}

/// Past the pager's budget a new key's file is created at once, empty, and closed (its
/// creation overlaps the parsing); its records are written at the end. A file swapped for
/// something else in between — a symlink to a file outside OUTDIR, a FIFO with no reader,
/// another regular file — is an error naming it, never followed, never a hang, and the
/// outside file is untouched.
#[test]
#[cfg(unix)]
fn an_output_swapped_after_its_early_creation_is_an_error_and_nothing_is_followed() {
    for swap in ["symlink", "fifo", "other file"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let outside = dir.path().join("outside.csv");
        fs::write(&outside, b"precious\n").unwrap();
        let mut child = handoff()
            .args(["partition", "--max-open", "4", "key"])
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // 200 keys: new keys reach the writer 64 at a time, so k100 is created by now.
        let mut first = b"key,n\n".to_vec();
        for i in 0..200 {
            first.extend_from_slice(format!("k{i},{i}\n").as_bytes());
        }
        stdin.write_all(&first).unwrap();
        stdin.flush().unwrap();
        let victim = out.join("k100.csv");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while fs::symlink_metadata(&victim).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "k100.csv was never created"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(fs::read(&victim).unwrap(), b"", "created early, empty");
        let staged = out.join("staged");
        match swap {
            "symlink" => symlink(&outside, &staged).unwrap(),
            "fifo" => {
                let path = std::ffi::CString::new(staged.as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: a valid NUL-terminated path.
                assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
            }
            _ => fs::write(&staged, b"").unwrap(),
        }
        fs::rename(&staged, &victim).unwrap();
        stdin.write_all(b"k100,last\n").unwrap();
        drop(stdin);
        let (done, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(child.wait_with_output());
        });
        let output = wait
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{swap}: the run hung"))
            .unwrap();
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{swap}: {message}");
        assert!(message.contains("k100.csv"), "{swap}: {message}");
        assert_eq!(fs::read(&outside).unwrap(), b"precious\n", "{swap}");
        match swap {
            "symlink" => assert!(fs::symlink_metadata(&victim).unwrap().is_symlink()),
            "other file" => assert_eq!(fs::read(&victim).unwrap(), b"", "nothing written to it"),
            _ => {}
        }
    }
}
