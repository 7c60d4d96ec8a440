//! `handoff partition` judged by an independent oracle (issue #9): generated CSV inputs run
//! through the real binary, every output file compared byte for byte with what a reference
//! splitter written from the contract (/work/partition-spec.md) computes from the same bytes.
//! The reference itself is checked against Python's `csv` module.
//!
//! Cases: `HANDOFF_ORACLE_CASES` (default 200; CI runs 2,000).

mod oracle;

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::{Command, Stdio};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use oracle::csv::{parse, split, Column, Expected, Failure, Options, BOM};
use oracle::gen::{case, case_sized, render, AppendTo, Case, Outdir};
use oracle::judge::{judge_files, listing, show, summary_counts, Strictness};

fn cases() -> u32 {
    std::env::var("HANDOFF_ORACLE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// The reference's options for a generated case.
fn options(case: &Case) -> Options {
    Options {
        headers: case.headers,
        delimiter: case.delimiter,
        column: if case.headers {
            Column::Name(case.key_name.clone())
        } else {
            Column::Index(case.key_index + 1)
        },
        prefix_length: case.prefix_length,
        skip_malformed: case.skip_malformed,
    }
}

/// The command line for a generated case (run in the directory holding `in0.csv`, …).
fn command(case: &Case, outdir: &Outdir) -> (Command, Vec<String>) {
    let mut args: Vec<OsString> = vec!["partition".into()];
    match outdir {
        Outdir::Fresh => {}
        Outdir::Force(_) => args.push("--force".into()),
        Outdir::Append(_) => args.push("--append".into()),
    }
    if !case.headers {
        args.push("--no-headers".into());
    }
    args.push("--delimiter".into());
    args.push(OsString::from_vec(vec![case.delimiter]));
    if let Some(p) = case.prefix_length {
        args.push(format!("--prefix-length={p}").into());
    }
    if let Some(m) = case.max_open {
        args.push(format!("--max-open={m}").into());
    }
    if let Some(m) = case.memory {
        args.push(format!("--memory={m}").into());
    }
    if case.skip_malformed {
        args.push("--skip-malformed".into());
    }
    if case.template != "{}.csv" {
        args.push(format!("--filename={}", case.template).into());
    }
    args.push(if case.headers {
        OsString::from_vec(case.key_name.clone())
    } else {
        (case.key_index + 1).to_string().into()
    });
    args.push("out".into());
    // With `stdin`, the last input comes from standard input: as `-` after the files, or as
    // no input argument at all when it is the only one.
    let n = case.inputs.len();
    let names: Vec<String> = (0..n)
        .map(|i| {
            if case.stdin && i + 1 == n {
                "<stdin>".to_string()
            } else {
                format!("in{i}.csv")
            }
        })
        .collect();
    for (i, name) in names.iter().enumerate() {
        if !(case.stdin && i + 1 == n) {
            args.push(name.into());
        } else if n > 1 {
            args.push("-".into());
        }
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_handoff"));
    command.args(&args);
    if case.split {
        command.env("HANDOFF_PARTITION_SPLIT_MIN", "1");
    }
    (command, names)
}

/// Runs one case and judges it.
fn check(case: &Case) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = Vec::new();
    for (i, input) in case.inputs.iter().enumerate() {
        let (bytes, meant, open) = render(input, case.delimiter);
        // The reference reads back what the generator meant (a check of the reference).
        let parsed = parse(&bytes, case.delimiter);
        let got: Vec<_> = parsed.records.iter().map(|r| r.fields.clone()).collect();
        if got != meant || parsed.unterminated.is_some() != open {
            return Err(format!(
                "REFERENCE BUG: input {} parsed as {got:?} (open quote: {:?}), meant {meant:?}",
                show(&bytes),
                parsed.unterminated
            ));
        }
        fs::write(dir.path().join(format!("in{i}.csv")), &bytes).unwrap();
        inputs.push(bytes);
    }
    let mut expected = split(&inputs, &options(case));
    // Existing files only where the run must succeed: what a failing run leaves beside them is
    // not specified.
    let outdir = if expected.failure.is_some() {
        Outdir::Fresh
    } else {
        case.outdir.clone()
    };
    let out = dir.path().join("out");
    let refused = prepare_outdir(&out, case, &outdir, &inputs, &mut expected);
    let before = listing(&out)?;
    let (mut command, names) = command(case, &outdir);
    command
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if case.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = command.spawn().unwrap();
    if case.stdin {
        let mut stdin = child.stdin.take().unwrap();
        let bytes = inputs.last().unwrap().clone();
        std::thread::spawn(move || {
            // The child may stop reading early (an error): a broken pipe is fine.
            let _ = stdin.write_all(&bytes);
        });
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let context = || {
        let mut s = format!(
            "\n  command: {:?}\n  stderr: {stderr}\n",
            command.get_args().collect::<Vec<_>>()
        );
        for (i, input) in inputs.iter().enumerate() {
            s += &format!("  {}: {}\n", names.get(i).map_or("?", |n| n), show(input));
        }
        s
    };
    if refused {
        // Spec 13: exit 2, every file untouched, nothing written.
        return if output.status.code() != Some(2) {
            Err(format!(
                "--append onto another header: exit {}, want 2",
                output.status
            ))
        } else if listing(&out)? != before {
            Err("--append onto another header changed OUTDIR".into())
        } else {
            Ok(())
        }
        .map_err(|e| format!("{e}{}", context()));
    }
    judge(
        &expected,
        &output.status,
        &stderr,
        &out,
        &names,
        case.template,
    )
    .map_err(|e| format!("{e}{}", context()))
}

/// Fills OUTDIR as `outdir` says and makes `expected` what it must hold after the run: files
/// this run does not write stay as they were; `--force` replaces, `--append` adds the records
/// (the header only to an empty file). Returns whether the run must refuse (spec 13).
fn prepare_outdir(
    out: &Path,
    case: &Case,
    outdir: &Outdir,
    inputs: &[Vec<u8>],
    expected: &mut Expected,
) -> bool {
    let (head, tail) = case.template.split_once("{}").unwrap();
    let header: Vec<u8> = if case.headers {
        parse(&inputs[0], case.delimiter).records[0].out.clone()
    } else {
        Vec::new()
    };
    let mut before: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = Default::default();
    let mut refused = false;
    match outdir {
        Outdir::Fresh => return false,
        Outdir::Force(keys) => {
            for key in keys {
                before.insert(
                    key.as_bytes().to_vec(),
                    format!("junk {key}\n").into_bytes(),
                );
            }
        }
        Outdir::Append(files) => {
            // One kind per key (the last drawn).
            let files: std::collections::BTreeMap<_, _> = files.iter().copied().collect();
            for (key, kind) in &files {
                let key = key.as_bytes().to_vec();
                let written = expected.files.contains_key(&key);
                let same = |bom: bool| {
                    let mut content = Vec::new();
                    let bare = header.strip_prefix(BOM).unwrap_or(&header);
                    if bom && case.headers {
                        content.extend_from_slice(BOM);
                    }
                    content.extend_from_slice(bare);
                    content.extend_from_slice(b"old\n");
                    content
                };
                let content = match kind {
                    AppendTo::Empty => Vec::new(),
                    AppendTo::SameHeader { bom } => same(*bom),
                    // Only where this run writes: whether a file it never opens is checked is
                    // not specified.
                    AppendTo::OtherHeader if case.headers && written => {
                        refused = true;
                        b"other\nold\n".to_vec()
                    }
                    AppendTo::OtherHeader => same(false),
                };
                before.insert(key, content);
            }
        }
    }
    fs::create_dir(out).unwrap();
    let appending = matches!(outdir, Outdir::Append(_));
    for (key, content) in &before {
        let mut name = head.as_bytes().to_vec();
        name.extend_from_slice(key);
        name.extend_from_slice(tail.as_bytes());
        fs::write(out.join(std::ffi::OsStr::from_bytes(&name)), content).unwrap();
        match expected.files.get_mut(key) {
            None => {
                expected.files.insert(key.clone(), content.clone());
            }
            Some(file) if appending && !content.is_empty() => {
                let records = file[header.len()..].to_vec();
                *file = [content.clone(), records].concat();
            }
            Some(_) => {}
        }
    }
    refused
}

fn judge(
    expected: &Expected,
    status: &std::process::ExitStatus,
    stderr: &str,
    out: &Path,
    names: &[String],
    template: &str,
) -> Result<(), String> {
    if status.code() != Some(expected.exit_code()) {
        return Err(format!(
            "exit {status}, want {} ({:?})",
            expected.exit_code(),
            expected.failure
        ));
    }
    let mut strictness = Strictness::Exact;
    match &expected.failure {
        None => {
            let files = expected.written;
            match summary_counts(stderr) {
                Some((n, m)) if n == expected.records && m == files => {}
                got => {
                    return Err(format!(
                        "summary counts {got:?}, want ({} records, {files} files)",
                        expected.records
                    ))
                }
            }
            if expected.skipped > 0 && !stderr.contains(&format!("{} malformed", expected.skipped))
            {
                return Err(format!(
                    "summary does not count {} skipped",
                    expected.skipped
                ));
            }
        }
        Some(Failure::FieldCount { input, line }) | Some(Failure::Unterminated { input, line }) => {
            let at = format!("{}:{line}", names[*input]);
            if !stderr.contains(&at) {
                return Err(format!("the message does not name {at}"));
            }
            if let Some(Failure::FieldCount { .. }) = expected.failure {
                // What is written before a malformed record is not specified: whole records.
                strictness = Strictness::WholeRecordPrefix;
            } else if !stderr.to_lowercase().contains("quot") {
                return Err("the message does not say a quote is open".into());
            }
        }
        Some(Failure::HeaderMismatch { input }) => {
            if !stderr.contains(&names[*input]) {
                return Err(format!("the message does not name {}", names[*input]));
            }
            strictness = Strictness::WholeRecordPrefix;
        }
        Some(Failure::NoColumn) => return Ok(()),
    }
    judge_files(&listing(out)?, expected, template, strictness)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    /// The binary's files are the reference's files, byte for byte, name for name.
    #[test]
    fn partition_matches_the_reference(case in case()) {
        if let Err(e) = check(&case) {
            return Err(TestCaseError::fail(e));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases() / 4,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    /// Inputs of up to 300 records, each file parsed by two threads (see the CLI's
    /// `partition::halves`): the guess of where the second half starts lands inside quoted
    /// fields, on blank lines, before malformed and unterminated records; the second half's
    /// share of a small `--memory` runs out and the main thread reads on from there.
    #[test]
    fn two_threads_match_the_reference(case in case_sized(50..300)) {
        let case = Case { split: true, ..case };
        if let Err(e) = check(&case) {
            return Err(TestCaseError::fail(e));
        }
    }
}

/// A few fixed inputs, each with the contract's answer written out by hand: the reference
/// must give these (a check of the reference against the spec's own examples).
#[test]
fn reference_gives_the_spec_examples() {
    let opts = |headers| Options {
        headers,
        delimiter: b',',
        column: if headers {
            Column::Name(b"key".to_vec())
        } else {
            Column::Index(1)
        },
        prefix_length: None,
        skip_malformed: false,
    };
    let files = |input: &[u8], headers| split(&[input.to_vec()], &opts(headers)).files;
    // Issue #9, item 1: CRLF kept.
    let f = files(b"key,value\r\na,1\r\nb,2\r\na,3\r\n", true);
    assert_eq!(f[&b"a".to_vec()], b"key,value\r\na,1\r\na,3\r\n");
    // Spec 6: the last record gets the input's terminator; lone CR is one.
    let f = files(b"key,value\r\na,1\r\na,3", true);
    assert_eq!(f[&b"a".to_vec()], b"key,value\r\na,1\r\na,3\r\n");
    let f = files(b"key,value\ra,1\ra,3", true);
    assert_eq!(f[&b"a".to_vec()], b"key,value\ra,1\ra,3\r");
    let f = files(b"key", true);
    assert!(f.is_empty());
    let f = files(b"a", false);
    assert_eq!(f[&b"a".to_vec()], b"a\n");
    // Spec 3: after a closing quote, literal; a quote inside an unquoted field, literal.
    let f = files(b"key\n\"a\"b\na\"b\n\"x\r\ny\"\n", true);
    assert_eq!(f[&b"ab".to_vec()], b"key\n\"a\"b\n");
    assert_eq!(f[&b"a\"b".to_vec()], b"key\na\"b\n");
    assert_eq!(f[&b"x\r\ny".to_vec()], b"key\n\"x\r\ny\"\n");
    // Spec 5: blank lines are not records, not written.
    let f = files(b"key,v\n\r\n\na,1\r\r\n", true);
    assert_eq!(f[&b"a".to_vec()], b"key,v\na,1\r");
    // Spec 7: the BOM is in the header bytes, not in its names.
    let f = files(b"\xEF\xBB\xBFkey,v\na,1\n", true);
    assert_eq!(f[&b"a".to_vec()], b"\xEF\xBB\xBFkey,v\na,1\n");
    let f = files(b"\xEF\xBB\xBFa,1\n", false);
    assert_eq!(f[&b"a".to_vec()], b"\xEF\xBB\xBFa,1\n");
    // Spec 9: an open quote on line 4 (lines inside quotes count).
    let e = split(&[b"key\n\"a\r\nb\"\n\"open\nrest".to_vec()], &opts(true));
    assert_eq!(e.failure, Some(Failure::Unterminated { input: 0, line: 4 }));
    assert_eq!(e.files[&b"a\r\nb".to_vec()], b"key\n\"a\r\nb\"\n");
    // Spec 8: too few fields.
    let e = split(&[b"key,v\na,1\nb\n".to_vec()], &opts(true));
    assert_eq!(e.failure, Some(Failure::FieldCount { input: 0, line: 3 }));
    // Spec 12: without headers, a first record too short for the key column (here: the
    // second input's, the first being empty) means the column is missing: exit 2. Found by
    // the generated cases (about once in 15,000); the binary said so, the reference did not.
    let no_headers = Options {
        column: Column::Index(2),
        ..opts(false)
    };
    let e = split(&[Vec::new(), b"\"\"".to_vec()], &no_headers);
    assert_eq!(e.failure, Some(Failure::NoColumn));
    let e = split(&[b"a\nb,c\n".to_vec()], &no_headers);
    assert_eq!(e.failure, Some(Failure::NoColumn));
    let e = split(&[b"a,b\nc\n".to_vec()], &no_headers);
    assert_eq!(e.failure, Some(Failure::FieldCount { input: 0, line: 2 }));
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("in0.csv"), b"").unwrap();
    fs::write(dir.path().join("in1.csv"), b"\"\"").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .current_dir(dir.path())
        .args([
            "partition",
            "--no-headers",
            "2",
            "out",
            "in0.csv",
            "in1.csv",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(BOM.len() == 3);
}

/// Python's `csv` module reads the same fields (and record start lines) as the reference from
/// 300 generated inputs (3,000 in CI).
///
/// Where the spec deliberately differs from Python, the comparison adapts:
/// - a BOM: Python keeps it as field content (so a quoted first field is not quoted); the spec
///   ignores it for fields (spec 7). The script drops a leading BOM before parsing.
/// - an input ending inside quotes: Python (strict=False) returns the open field as a last
///   record; the spec makes it an error (spec 9). Python must give exactly one record more.
/// - lone `\r`: Python (newline='') ends a line there, like the spec (spec 2): no adaptation.
#[test]
fn reference_agrees_with_python_csv() {
    if Command::new("python3").arg("--version").output().is_err() {
        println!(
            "NOTE: python3 not found: the reference is not cross-checked against Python's csv"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = case();
    let mut files = Vec::new();
    let mut manifest = String::new();
    let wanted = if cases() >= 1000 { 3000 } else { 300 };
    while files.len() < wanted {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        for input in &case.inputs {
            let (bytes, _, _) = render(input, case.delimiter);
            let path = dir.path().join(format!("{}.csv", files.len()));
            fs::write(&path, &bytes).unwrap();
            manifest += &format!("{} {}\n", path.display(), case.delimiter);
            files.push((bytes, case.delimiter));
        }
    }
    let script = r#"
import csv, io, sys
for entry in sys.stdin.read().splitlines():
    path, delim = entry.rsplit(" ", 1)
    data = open(path, "rb").read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    reader = csv.reader(io.StringIO(data.decode("latin-1"), newline=""),
                        delimiter=chr(int(delim)), strict=False)
    print("F")
    before = 0
    try:
        for row in reader:
            if row:
                print("R", before + 1, ",".join(f.encode("latin-1").hex() for f in row))
            before = reader.line_num
    except csv.Error as e:
        print("E", e)
"#;
    let mut python = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    python
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    let output = python.wait_with_output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let mut blocks = text.split("F\n").skip(1);
    let mut compared = 0;
    for (bytes, delimiter) in &files {
        let block = blocks.next().expect("a block per file");
        let mut py: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
        for line in block.lines() {
            let mut parts = line.splitn(3, ' ');
            match parts.next() {
                Some("R") => {
                    let start: usize = parts.next().unwrap().parse().unwrap();
                    let fields = parts
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .map(|h| {
                            (0..h.len())
                                .step_by(2)
                                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                                .collect()
                        })
                        .collect();
                    py.push((start, fields));
                }
                _ => panic!("python: {line} on {}", show(bytes)),
            }
        }
        let parsed = parse(bytes, *delimiter);
        let ours: Vec<(usize, Vec<Vec<u8>>)> = parsed
            .records
            .iter()
            .map(|r| (r.line, r.fields.clone()))
            .collect();
        if parsed.unterminated.is_some() {
            assert_eq!(
                py.len(),
                ours.len() + 1,
                "open quote: python gives one record more, on {}",
                show(bytes)
            );
            py.pop();
        }
        assert_eq!(ours, py, "reference vs python on {}", show(bytes));
        compared += 1;
    }
    println!("reference agrees with python's csv on {compared} inputs");
}

/// One case per malformation, spelled out (the property test draws them at random too).
#[test]
fn malformed_inputs_fail_as_the_spec_says() {
    let run = |input: &[u8], skip: bool| {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("in.csv"), input).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_handoff"));
        command.current_dir(dir.path()).arg("partition");
        if skip {
            command.arg("--skip-malformed");
        }
        let output = command.args(["key", "out", "in.csv"]).output().unwrap();
        let expected = split(
            &[input.to_vec()],
            &Options {
                headers: true,
                delimiter: b',',
                column: Column::Name(b"key".to_vec()),
                prefix_length: None,
                skip_malformed: skip,
            },
        );
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        judge(
            &expected,
            &output.status,
            &stderr,
            &dir.path().join("out"),
            &["in.csv".to_string()],
            "{}.csv",
        )
        .map_err(|e| format!("{} (skip {skip}): {e}\n  stderr: {stderr}", show(input)))
    };
    let mut failures = Vec::new();
    for input in [
        &b"key,v\na,1\nb,2,3\na,4\n"[..],
        b"key,v\r\na,1\r\nb\r\na,4\r\n",
        b"key,v\na,1\nb,\"open\nmore\nlines\n",
        b"key,v\r\na,1\r\n\"b\r\n\",2\r\nc,\"open\r\n",
        b"key,v\ra,1\rb,2,3\r\"open",
        b"key,v\na,1\n\"open,2\n",
    ] {
        for skip in [false, true] {
            if let Err(e) = run(input, skip) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The generator reaches every feature the issue lists (counted over 500 cases, no binary
/// run): a feature it never produced would be a silent hole in the property test.
#[test]
fn generator_covers_the_issue_list() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = case();
    let mut seen: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut count = |what: &'static str, yes: bool| *seen.entry(what).or_default() += yes as usize;
    for _ in 0..500 {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        let inputs: Vec<Vec<u8>> = case
            .inputs
            .iter()
            .map(|i| render(i, case.delimiter).0)
            .collect();
        let expected = split(&inputs, &options(&case));
        for bytes in &inputs {
            let parsed = parse(bytes, case.delimiter);
            let terms = |t: &[u8]| {
                parsed
                    .records
                    .iter()
                    .filter(|r| r.terminated && r.out.ends_with(t))
                    .count()
            };
            let crlf = terms(b"\r\n");
            let lf = terms(b"\n") - crlf;
            let cr = terms(b"\r");
            count("CRLF record", crlf > 0);
            count("LF record", lf > 0);
            count("lone CR record", cr > 0);
            count(
                "mixed terminators in one input",
                (crlf > 0) as u8 + (lf > 0) as u8 + (cr > 0) as u8 > 1,
            );
            count(
                "no final terminator",
                parsed.records.last().is_some_and(|r| !r.terminated),
            );
            count("BOM", bytes.starts_with(BOM));
            count(
                "blank line",
                bytes.windows(2).any(|w| w == b"\n\n" || w == b"\r\r"),
            );
            let fields = || parsed.records.iter().flat_map(|r| &r.fields);
            count(
                "CR LF inside quotes",
                fields().any(|f| f.windows(2).any(|w| w == b"\r\n")),
            );
            count(
                "lone CR inside quotes",
                fields().any(|f| {
                    f.ends_with(b"\r") || f.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n')
                }),
            );
            count("LF inside quotes", fields().any(|f| f.contains(&b'\n')));
            count("doubled quote", bytes.windows(2).any(|w| w == b"\"\""));
            count(
                "delimiter inside quotes",
                fields().any(|f| f.contains(&case.delimiter)),
            );
            count("empty field", fields().any(|f| f.is_empty()));
            count("unterminated quote", parsed.unterminated.is_some());
        }
        let keys = || expected.files.keys();
        count("empty key", keys().any(|k| k.is_empty()));
        count("key > 200 bytes", keys().any(|k| k.len() > 200));
        count("key with /", keys().any(|k| k.contains(&b'/')));
        count("key ..", keys().any(|k| k == b".."));
        count("key .x", keys().any(|k| k.starts_with(b".") && k.len() > 1));
        count("key with NUL", keys().any(|k| k.contains(&0)));
        count("key with ESC", keys().any(|k| k.contains(&0x1b)));
        count("key with %", keys().any(|k| k.contains(&b'%')));
        count(
            "non-ASCII UTF-8 key",
            keys().any(|k| std::str::from_utf8(k).is_ok_and(|s| !s.is_ascii())),
        );
        count(
            "invalid UTF-8 key",
            keys().any(|k| std::str::from_utf8(k).is_err()),
        );
        count(
            "Windows device key",
            keys().any(|k| k.eq_ignore_ascii_case(b"con") || k.eq_ignore_ascii_case(b"aux")),
        );
        count("several inputs", case.inputs.len() > 1);
        count("--no-headers", !case.headers);
        count("--delimiter tab", case.delimiter == b'\t');
        count("--prefix-length", case.prefix_length.is_some());
        count("--max-open 1", case.max_open == Some(1));
        count("--memory 64", case.memory == Some("64"));
        count("--filename", case.template != "{}.csv");
        count("--skip-malformed skipped some", expected.skipped > 0);
        count("stdin", case.stdin);
        count(
            "--force over files",
            matches!(case.outdir, Outdir::Force(_)),
        );
        count(
            "--append onto files",
            matches!(case.outdir, Outdir::Append(_)),
        );
        count("succeeds", expected.failure.is_none());
        count(
            "field-count failure",
            matches!(expected.failure, Some(Failure::FieldCount { .. })),
        );
        count(
            "unterminated failure",
            matches!(expected.failure, Some(Failure::Unterminated { .. })),
        );
        count(
            "header mismatch",
            matches!(expected.failure, Some(Failure::HeaderMismatch { .. })),
        );
    }
    println!("{seen:#?}");
    let missing: Vec<_> = seen
        .iter()
        .filter(|(_, &n)| n == 0)
        .map(|(w, _)| w)
        .collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
}

/// Spec 2 ("a `\r\n` split across two reads is still one `\r\n`") and its kin: the input comes
/// through a pipe in small writes with pauses, so reads end at every kind of place — between
/// CR and LF, after a lone CR, inside a BOM, between two quotes of a doubled quote, right after
/// an opening quote.
#[test]
fn records_split_across_reads() {
    let input: &[u8] = b"\xEF\xBB\xBFkey,v\r\na,\"x\r\ny\"\r\nb,\"q\"\"r\"\rc,plain\n\r\n\"a\",\"\"\"\"\r\nb,\"\r\"\ra,\"\n\"\r\n\rb,last";
    let expected = split(
        &[input.to_vec()],
        &Options {
            headers: true,
            delimiter: b',',
            column: Column::Name(b"key".to_vec()),
            prefix_length: None,
            skip_malformed: false,
        },
    );
    assert!(expected.failure.is_none());
    let mut failures = Vec::new();
    for sizes in [&[1usize][..], &[2], &[3], &[1, 2, 5], &[4, 1, 1, 3], &[7]] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_handoff"))
            .current_dir(dir.path())
            .args([
                "partition",
                "--max-open",
                "1",
                "--memory",
                "64",
                "key",
                "out",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut at = 0;
        for &size in sizes.iter().cycle() {
            if at >= input.len() {
                break;
            }
            let end = (at + size).min(input.len());
            stdin.write_all(&input[at..end]).unwrap();
            stdin.flush().unwrap();
            at = end;
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        drop(stdin);
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let result = if output.status.code() != Some(0) {
            Err(format!("exit {}", output.status))
        } else {
            judge_files(
                &listing(&dir.path().join("out")).unwrap(),
                &expected,
                "{}.csv",
                Strictness::Exact,
            )
        };
        if let Err(e) = result {
            failures.push(format!(
                "writes of {sizes:?} bytes: {e}\n  stderr: {stderr}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Large generated inputs (~0.2 MB, ~950 keys in 10,000 records): longer than the small
/// property-test inputs, so the binary's read buffers end at arbitrary places inside records
/// (a probabilistic complement of `records_split_across_reads`). One seed of 4,000 records, or
/// three of 10,000 when HANDOFF_ORACLE_CASES ≥ 1,000 (CI); small buffers and 3 descriptors so
/// the pager works too.
#[test]
fn large_generated_inputs() {
    use oracle::gen::{header, record, GenInput};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let names = vec![b"c0".to_vec(), b"key".to_vec(), b"c2".to_vec()];
    let ci = cases() >= 1000;
    let strategy = (
        header(names),
        prop::collection::vec(record(3, 1, false), if ci { 10_000 } else { 4_000 }),
    );
    let seeds = if ci { 3 } else { 1 };
    for seed in 0..seeds {
        let (header, records) = strategy.new_tree(&mut runner).unwrap().current();
        let input = GenInput {
            bom: seed == 1,
            leading_blanks: vec![],
            header: Some(header),
            records,
            final_term: seed != 2,
            unterminated: None,
        };
        let (bytes, _, _) = render(&input, b',');
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("in.csv"), &bytes).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_handoff"))
            .current_dir(dir.path())
            .args([
                "partition",
                "--max-open",
                "3",
                "--memory",
                "4K",
                "key",
                "out",
                "in.csv",
            ])
            .output()
            .unwrap();
        let expected = split(
            std::slice::from_ref(&bytes),
            &Options {
                headers: true,
                delimiter: b',',
                column: Column::Name(b"key".to_vec()),
                prefix_length: None,
                skip_malformed: false,
            },
        );
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(0), "seed {seed}: {stderr}");
        if let Err(e) = judge(
            &expected,
            &output.status,
            &stderr,
            &dir.path().join("out"),
            &["in.csv".into()],
            "{}.csv",
        ) {
            panic!("seed {seed} ({} bytes): {e}", bytes.len());
        }
    }
}
