//! A large input file parsed by two threads (the CLI's `partition::halves`, forced here with
//! `HANDOFF_PARTITION_SPLIT_MIN`) gives what one parser gives: every case is judged against the
//! independent reference (tests/oracle), never against the binary itself.
//!
//! The second half starts at a guess: the first `\n` at or after 45 % of the input past its
//! header. [`guess`] mirrors that rule only to choose inputs (each sweep below moves the guess
//! over every line break of a stretch of tricky records); should the rule change, the cases
//! stay right, they just land elsewhere.

mod file_size_limit;
mod oracle;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;

use file_size_limit::file_size_limited;
use oracle::csv::{split, split_columns, Column, Expected, Failure, Options};
use oracle::judge::{judge_files, keys_of, listing, show, summary_counts, Strictness};

/// What the binary's second half starts at for `input` whose header ends at `from` (see the
/// module documentation); `None` if it does not split.
fn guess(input: &[u8], from: usize) -> Option<usize> {
    let len = input.len();
    let middle = from + (len - from) * 45 / 100;
    let at = input[middle..].iter().position(|&b| b == b'\n')?;
    let start = middle + at + 1;
    (start < len).then_some(start)
}

fn options(skip_malformed: bool, prefix_length: Option<usize>) -> Options {
    Options {
        headers: true,
        delimiter: b',',
        column: Column::Name(b"k".to_vec()),
        prefix_length,
        skip_malformed,
    }
}

/// What a run left.
struct Ran {
    code: Option<i32>,
    stderr: String,
    out: std::path::PathBuf,
}

/// Runs `handoff partition ARGS k out IN…` in `dir` (`1` for `k` with `--no-headers`), every
/// input file split however small if `split`.
fn run(dir: &Path, args: &[&str], inputs: &[&str], split: bool) -> Ran {
    run_keyed(dir, args, &Key::of(args), inputs, split)
}

/// The key columns of a run: as given on the command line, and as the reference reads them.
#[derive(Clone)]
struct Key {
    arg: String,
    columns: Vec<Column>,
}

impl Key {
    /// `k`, or `1` with `--no-headers`.
    fn of(args: &[&str]) -> Key {
        if args.contains(&"--no-headers") {
            Key::indexes(&[1])
        } else {
            Key::names(&["k"])
        }
    }

    fn names(names: &[&str]) -> Key {
        Key {
            arg: names.join(","),
            columns: names
                .iter()
                .map(|name| Column::Name(name.as_bytes().to_vec()))
                .collect(),
        }
    }

    fn indexes(indexes: &[usize]) -> Key {
        Key {
            arg: indexes
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(","),
            columns: indexes.iter().map(|&at| Column::Index(at)).collect(),
        }
    }
}

/// [`run`] keyed on `key`.
fn run_keyed(dir: &Path, args: &[&str], key: &Key, inputs: &[&str], split: bool) -> Ran {
    run_keyed_env(dir, args, key, inputs, split, &[]).0
}

/// [`run_keyed`] with the variables of `env` set (`None`: removed), and the process's wall
/// time, in ms, measured here.
fn run_keyed_env(
    dir: &Path,
    args: &[&str],
    key: &Key,
    inputs: &[&str],
    split: bool,
    env: &[(&str, Option<&str>)],
) -> (Ran, f64) {
    let out = dir.join("out");
    let column = key.arg.as_str();
    let mut command = Command::new(env!("CARGO_BIN_EXE_handoff"));
    command
        .current_dir(dir)
        .arg("partition")
        .args(args)
        .args([column, "out"])
        .args(inputs);
    if split {
        command.env("HANDOFF_PARTITION_SPLIT_MIN", "1");
    }
    for &(name, value) in env {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let started = std::time::Instant::now();
    let output = command.output().unwrap();
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    let ran = Ran {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        out,
    };
    (ran, wall_ms)
}

/// Judges a run against the reference: exit code, the summary's counts, the failing
/// input:line, every file byte for byte (a whole-record prefix where the run must fail on a
/// malformed record).
fn judge(ran: &Ran, expected: &Expected, names: &[&str]) -> Result<(), String> {
    if ran.code != Some(expected.exit_code()) {
        return Err(format!(
            "exit {:?}, want {} ({:?})",
            ran.code,
            expected.exit_code(),
            expected.failure
        ));
    }
    let mut strictness = Strictness::Exact;
    match &expected.failure {
        None => {
            let want = (expected.records, expected.written);
            if summary_counts(&ran.stderr) != Some(want) {
                return Err(format!(
                    "summary counts {:?}, want {want:?}",
                    summary_counts(&ran.stderr)
                ));
            }
            let skipped = format!("{} malformed", expected.skipped);
            if expected.skipped > 0 && !ran.stderr.contains(&skipped) {
                return Err(format!("the summary does not say {skipped}"));
            }
        }
        Some(Failure::FieldCount { input, line } | Failure::Unterminated { input, line }) => {
            let at = format!("{}:{line}:", names[*input]);
            if !ran.stderr.contains(&at) {
                return Err(format!("the message does not name {at}"));
            }
            strictness = Strictness::WholeRecordPrefix;
        }
        Some(Failure::HeaderMismatch { input }) => {
            if !ran.stderr.contains(names[*input]) {
                return Err(format!("the message does not name {}", names[*input]));
            }
            strictness = Strictness::WholeRecordPrefix;
        }
        Some(Failure::NoColumn) => return Ok(()),
    }
    judge_files(&listing(&ran.out)?, expected, "{}.csv", strictness)
}

/// Runs one input split (with `args`) and judges it.
fn check(input: &[u8], args: &[&str], options: &Options) -> Result<(), String> {
    check_keyed(input, args, &Key::of(args), options)
}

/// [`check`] keyed on `key` (`options.column` is not used).
fn check_keyed(input: &[u8], args: &[&str], key: &Key, options: &Options) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("in.csv"), input).unwrap();
    let ran = run_keyed(dir.path(), args, key, &["in.csv"], true);
    let expected = split_columns(&[input.to_vec()], options, &key.columns);
    judge(&ran, &expected, &["in.csv"]).map_err(|e| {
        format!(
            "{e}\n  key {}, args {args:?}, guess at {:?} of {}\n  input {}\n  stderr {}",
            key.arg,
            guess(input, input.iter().position(|&b| b == b'\n').unwrap() + 1),
            input.len(),
            show(input),
            ran.stderr
        )
    })
}

/// Inputs `header`, a filler record of any length, `body`, and (if `pad`) filler records
/// after it: one for each place the guess can land in `body` (each line break in it, and its
/// start).
fn sweep(header: &[u8], body: &[u8], pad: bool) -> Vec<Vec<u8>> {
    sweep_with(header, b"f,", body, pad.then_some(b"s,1\n"))
}

/// [`sweep`] with records of other field counts: the filler record is `filler` and `x`s, the
/// records after `body` (if any) copies of `pad`.
fn sweep_with(header: &[u8], filler: &[u8], body: &[u8], pad: Option<&[u8]>) -> Vec<Vec<u8>> {
    let suffix: Vec<u8> = match pad {
        Some(pad) => pad.repeat((4 * (body.len() * 5 / 16 + 4)).div_ceil(pad.len())),
        None => Vec::new(),
    };
    let mut seen = BTreeSet::new();
    let mut inputs = Vec::new();
    for p in 0..=2 * (body.len() + suffix.len()) {
        let mut input = header.to_vec();
        input.extend_from_slice(filler);
        input.extend(std::iter::repeat_n(b'x', p));
        input.push(b'\n');
        let at = input.len();
        input.extend_from_slice(body);
        input.extend_from_slice(&suffix);
        let Some(start) = guess(&input, header.len()) else {
            continue;
        };
        if (at..=at + body.len()).contains(&start) && seen.insert(start - at) {
            inputs.push(input);
        }
    }
    assert!(
        seen.len() > body.iter().filter(|&&b| b == b'\n').count() / 2,
        "the sweep reaches only {seen:?} of {}",
        show(body)
    );
    inputs
}

/// Runs every input of a sweep with each set of arguments (`--memory=input`: the input's size,
/// the least that still splits it, where the second half's share runs out after a few keys and
/// the main thread reads on from there); all failures in one message.
fn check_all(inputs: &[Vec<u8>], runs: &[(&[&str], Options)]) {
    check_all_keyed(inputs, &[], runs);
}

/// [`check_all`] with each of `keys` (none: `k`, or `1` with `--no-headers`).
fn check_all_keyed(inputs: &[Vec<u8>], keys: &[Key], runs: &[(&[&str], Options)]) {
    let mut failures = Vec::new();
    let mut count = 0;
    for input in inputs {
        for (args, options) in runs {
            let default = [Key::of(args)];
            let keys = if keys.is_empty() { &default[..] } else { keys };
            let memory = format!("--memory={}", input.len());
            let args: Vec<&str> = args
                .iter()
                .map(|&arg| {
                    if arg == "--memory=input" {
                        &*memory
                    } else {
                        arg
                    }
                })
                .collect();
            for key in keys {
                count += 1;
                if let Err(e) = check_keyed(input, &args, key, options) {
                    failures.push(e);
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} runs differ from the reference:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every kind of terminator and blank line, quoted fields holding each kind of line break (one
/// field ends with one, so that a parser starting inside it meets a quote at a line's start),
/// a BOM's bytes at a line's start (part of the key there), a doubled quote in a key.
const TRICKY: &[u8] = b"a,1\rb,2\r\n\r\n\nc,3\n\rd,\"x\ny\"\ne,\"\r\n\"\r\nf,\"\r\"\r\
\xEF\xBB\xBFg,1\nh,\"p\n\"\n\"i\"\"\",5\nj,\"\n,\"\na,1\r\n\n";

#[test]
fn the_guess_on_every_line_break_of_tricky_records() {
    let inputs = sweep(b"k,v\n", TRICKY, true);
    check_all(
        &inputs,
        &[
            (&[], options(false, None)),
            (
                &["--prefix-length=1", "--max-open=1"],
                options(false, Some(1)),
            ),
            (&["--memory=input"], options(false, None)),
        ],
    );
}

/// `--no-headers`: the first record sets the field count, and the second half is cut from
/// the rest (the guess is made after the first record): a guess on every line break of the
/// tricky records, and near malformed ones, judged by the reference read without a header.
#[test]
fn no_headers_the_guess_after_the_first_record() {
    let no_headers = |skip_malformed| Options {
        headers: false,
        column: Column::Index(1),
        ..options(skip_malformed, None)
    };
    let mut body = TRICKY.to_vec();
    body.extend_from_slice(b"m\r\nb,2\n\"m\n\",1,2\r\nc,3\n");
    for first in [&b"k,v\n"[..], b"\xEF\xBB\xBFq,\"1\r\n\"\r\n"] {
        let inputs = sweep(first, &body, true);
        check_all(
            &inputs,
            &[
                (&["--no-headers"], no_headers(false)),
                (&["--no-headers", "--skip-malformed"], no_headers(true)),
                (
                    &["--no-headers", "--skip-malformed", "--memory=input"],
                    no_headers(true),
                ),
            ],
        );
    }
}

/// Whether a run of `handoff partition ARGS COLUMN out in.csv` in `dir` (split however small)
/// started a second half: `strace -f` sees a thread name itself "second half" (`prctl`), which
/// is the binary's own doing but no account of it: the kernel's record of what ran.
fn second_half_started(dir: &Path, args: &[&str], column: &str) -> (Ran, bool) {
    second_half_started_env(dir, args, column, &[])
}

/// [`second_half_started`] with the variables of `env` set.
fn second_half_started_env(
    dir: &Path,
    args: &[&str],
    column: &str,
    env: &[(&str, &str)],
) -> (Ran, bool) {
    let log = dir.join("strace.log");
    let out = dir.join("out");
    let _ = fs::remove_dir_all(&out);
    let output = Command::new("strace")
        .current_dir(dir)
        .env("HANDOFF_PARTITION_SPLIT_MIN", "1")
        .envs(env.iter().copied())
        .args(["-f", "-qq", "-s", "32", "-e", "trace=prctl", "-o"])
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_handoff"))
        .arg("partition")
        .args(args)
        .args([column, "out", "in.csv"])
        .output()
        .expect("strace (the package `strace`) is needed for this test");
    let started = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .any(|line| line.contains("PR_SET_NAME") && line.contains("\"second half\""));
    let ran = Ran {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        out,
    };
    (ran, started)
}

/// With `--no-headers` a file is split too (once its first record has set the field count),
/// and gives the reference's files; the same input with a header is split as before (the check
/// of the check: it sees a second half where one runs).
#[test]
fn a_file_without_a_header_is_split() {
    let mut body = Vec::new();
    for i in 0..2_000u32 {
        body.extend(format!("k{},{}\n", i * 7 % 37, "v".repeat((i % 50) as usize)).bytes());
    }
    for (first, args, column) in [
        (&b"k,v\n"[..], &["--no-headers"][..], "1"),
        (b"k,v\n", &[][..], "k"),
    ] {
        let mut input = first.to_vec();
        input.extend_from_slice(&body);
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("in.csv"), &input).unwrap();
        let (ran, started) = second_half_started(dir.path(), args, column);
        let options = Options {
            headers: args.is_empty(),
            column: if args.is_empty() {
                Column::Name(b"k".to_vec())
            } else {
                Column::Index(1)
            },
            ..options(false, None)
        };
        let expected = split(&[input], &options);
        if let Err(e) = judge(&ran, &expected, &["in.csv"]) {
            panic!("{args:?}: {e}\n  stderr {}", ran.stderr);
        }
        assert!(started, "{args:?}: no second half started");
    }
}

/// Two key columns: the second half decodes every field and joins the key as the main thread
/// does. The guess lands on every line break of records with quoted line breaks (in a key
/// column and out of them) and quoted keys; each run is judged by the reference (each pair of values'
/// file holds the header and its records byte for byte, as the oracle's parser reads them; the
/// values are plain, so the file is `K,V.csv`), and a second half must have run.
#[test]
fn two_key_columns_the_guess_on_every_line_break() {
    let header = b"k,v,n\r\n";
    let body: &[u8] = b"a,b,1\r\n\"a\",\"b\",\"x\ny\"\nb,a,\"\r\n\"\r\nc,\"a\",2\n\r\n\
\"b\",c,\"p\rq\"\r\na,a,\"\n,\"\nc,d,\"\"\"\"\n";
    let suffix = b"s,t,1\n".repeat(body.len() / 5 + 4);
    let (mut seen, mut failures, mut splits) = (BTreeSet::new(), Vec::new(), 0);
    for p in 0..=2 * (body.len() + suffix.len()) {
        let mut input = header.to_vec();
        input.extend_from_slice(format!("f,g,{}\n", "x".repeat(p)).as_bytes());
        let at = input.len();
        input.extend_from_slice(body);
        input.extend_from_slice(&suffix);
        let Some(start) = guess(&input, header.len()) else {
            continue;
        };
        if !(at..=at + body.len()).contains(&start) || !seen.insert(start - at) {
            continue;
        }
        // The reference: the header, then each pair's records.
        let parsed = oracle::csv::parse(&input, b',');
        assert_eq!(parsed.unterminated, None, "{}", show(&input));
        let mut want: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for record in &parsed.records[1..] {
            let name = [&record.fields[0][..], b",", &record.fields[1], b".csv"].concat();
            want.entry(name)
                .or_insert_with(|| header.to_vec())
                .extend_from_slice(&record.out);
        }
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("in.csv"), &input).unwrap();
        let (ran, started) = second_half_started(dir.path(), &[], "k,v");
        splits += usize::from(started);
        let got = listing(&ran.out);
        if ran.code != Some(0) || got.as_ref() != Ok(&want) {
            let names = |files: &BTreeMap<Vec<u8>, Vec<u8>>| -> Vec<String> {
                files
                    .iter()
                    .map(|(name, bytes)| format!("{} ({})", show(name), show(bytes)))
                    .collect()
            };
            failures.push(format!(
                "guess at {} of {}: exit {:?}, files {:?}\n  want {:?}\n  stderr {}",
                start - at,
                show(body),
                ran.code,
                got.as_ref().map(names),
                names(&want),
                ran.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(seen.len() > 8, "the sweep reaches only {seen:?}");
    assert_eq!(splits, seen.len(), "runs with a second half");
}

/// The tricky records with three fields, for keys of two columns: quoted key values holding
/// the delimiter (`"a,b",c` and `a,"b,c"`, whose joined keys must not collide), each kind of
/// line break in a key value (a guess inside it starts the second half inside a quoted key),
/// a BOM's bytes at a line's start (part of the value there; before a quote, which is then
/// no field's first byte: `\xEF\xBB\xBF"p` and `q"` are two values), a doubled quote, empty
/// key values, blank lines of each kind.
const TRICKY3: &[u8] = b"a,b,1\rb,\"a,b\",2\r\n\r\n\n\"a,b\",c,3\na,\"b,c\",4\r\n\
\rd,\"x\ny\",5\ne,\"\r\n\",6\r\nf,\"\r\",7\r\xEF\xBB\xBFg,1,8\nh,\"p\n\",9\n\
\"i\"\"\",,10\nj,\"\n,\",11\n,,\r\n\"\n\",\"\n\",\"\"\n\xEF\xBB\xBF\"p,q\",1\n\
a,b,1\r\n\n";

/// Malformed records for keys of two columns of three fields: one field (too few for either
/// key column), two (too few for the third column, enough for the first two: malformed all
/// the same), four (one quoted over two lines, one ending with an empty field), two quoted,
/// one (a BOM's bytes, then `"m`: no quoted field, the record ends at the line's end);
/// between them good ones, one with a key value over two lines.
const MALFORMED3: &[u8] = b"m\r\nm,1\n\"m\n\",1,2,3\r\nc,3,x\n\r\nm,1,2,\n\"m,1\",2\r\
n,\"2\n\",3\n\xEF\xBB\xBF\"m\nz\",1,2\n";

/// The keys of two columns given both ways: in the header's order, and one that starts with
/// the last column (a record is then too short for the key long before the first column).
fn two_columns() -> [Key; 2] {
    [Key::names(&["k", "v"]), Key::names(&["n", "k"])]
}

/// Two key columns (the second half decodes every field and joins the key): a guess on every
/// line break of the tricky records, with `--prefix-length` (each value cut: `"a,b"` and `a`
/// then share a file) and one descriptor, and with `--memory` about the input's size (the
/// second half stops early and the main thread reads on from there), judged by the reference
/// keyed on both columns (file names decoded value by value).
#[test]
fn two_key_columns_tricky_records_every_guess() {
    let inputs = sweep_with(b"k,v,n\n", b"f,g,", TRICKY3, Some(b"s,t,1\n"));
    check_all_keyed(
        &inputs,
        &two_columns(),
        &[
            (&[], options(false, None)),
            (
                &["--prefix-length=1", "--max-open=1"],
                options(false, Some(1)),
            ),
            (&["--memory=input"], options(false, None)),
        ],
    );
}

/// Two key columns and malformed records (too few fields for a key column, too many): skipped
/// and counted with `--skip-malformed`, whichever half meets them; else the first one is an
/// error naming its line, and the files hold whole records before it.
#[test]
fn two_key_columns_the_guess_near_malformed_records() {
    let body = [TRICKY3, MALFORMED3].concat();
    let inputs = sweep_with(b"k,v,n\r\n", b"f,g,", &body, Some(b"s,t,1\n"));
    check_all_keyed(
        &inputs,
        &two_columns(),
        &[
            (&["--skip-malformed"], options(true, None)),
            (&["--skip-malformed", "--memory=input"], options(true, None)),
            (&[], options(false, None)),
        ],
    );
}

/// `--no-headers` with two key columns: the first record sets the field count (plain, keys
/// `1,2`; or with a BOM and a quoted line break in a key value, keys `3,1`), then a guess on
/// every line break of the tricky and malformed records.
#[test]
fn no_headers_two_key_columns_the_guess_after_the_first_record() {
    let no_headers = |skip_malformed| Options {
        headers: false,
        ..options(skip_malformed, None)
    };
    let body = [TRICKY3, MALFORMED3].concat();
    // (One key each, to keep the test short.)
    for (first, key) in [
        (&b"k,v,n\n"[..], Key::indexes(&[1, 2])),
        (b"\xEF\xBB\xBFq,\"1\r\n\",z\r\n", Key::indexes(&[3, 1])),
    ] {
        let inputs = sweep_with(first, b"f,g,", &body, Some(b"s,t,1\n"));
        check_all_keyed(
            &inputs,
            &[key],
            &[
                (&["--no-headers"], no_headers(false)),
                (&["--no-headers", "--skip-malformed"], no_headers(true)),
                (
                    &["--no-headers", "--skip-malformed", "--memory=input"],
                    no_headers(true),
                ),
            ],
        );
    }
}

/// Two key columns, the input's last record without a terminator (it gets the one used last
/// before it, which the main thread gives it: the second half stops before it), a key value
/// quoted over two lines in it or before it, and an input ending inside a quoted key value.
#[test]
fn two_key_columns_the_guess_before_an_unterminated_last_record() {
    let long = "y".repeat(300);
    let mut failures = Vec::new();
    for end in [
        format!("a,b,1\r\nb,{long},2\r\n\rz,z,9"),
        format!("a,b,1\r\n\rz,{long},z"),
        format!("a,b,1\rb,{long},2\rz,\"9\n\",z"),
        format!("a,\"b\r\n\",1\nb,{long},2\r\n\rz,\"9\n"),
        format!("a,b,1\nb,{long},2\r\nm,1\r\n\rz,y,9"),
    ] {
        for input in sweep_with(b"\xEF\xBB\xBFk,v,n\r\n", b"f,g,", end.as_bytes(), None) {
            for (args, options) in [
                (&[][..], options(false, None)),
                (&["--skip-malformed"][..], options(true, None)),
            ] {
                if let Err(e) = check_keyed(&input, args, &Key::names(&["k", "v"]), &options) {
                    failures.push(e);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Malformed records (too few fields, too many, one quoted over two lines) among the tricky
/// ones: skipped and counted with `--skip-malformed`; else the first one is an error naming its
/// line, whichever half meets it.
#[test]
fn the_guess_near_malformed_records() {
    let mut body = TRICKY.to_vec();
    body.extend_from_slice(b"m\r\nb,2\n\"m\n\",1,2\r\nc,3\n\r\nm,1,2\n");
    let inputs = sweep(b"k,v\r\n", &body, true);
    check_all(
        &inputs,
        &[
            (&["--skip-malformed"], options(true, None)),
            (&["--skip-malformed", "--memory=input"], options(true, None)),
            (&[], options(false, None)),
        ],
    );
}

/// The input's last record lacks a terminator: it gets the one used last before it, which
/// here is a blank line's after the second half's records, or one from the first half when the
/// second half takes no record. (The input starts with a BOM: the guess is counted from past
/// it and the header.)
#[test]
fn the_guess_before_an_unterminated_last_record() {
    let long = "y".repeat(300);
    let mut failures = Vec::new();
    for end in [
        format!("a,1\r\nb,{long}\r\n\rz,9"),
        format!("a,1\r\n\rz,{long}"),
        format!("a,1\r\r\nb,{long}\n\r\nz,9"),
        format!("a,1\rb,{long}\rz,\"9\n\""),
        format!("a,1\nb,{long}\r\n\rz,\"9\n"),
        format!("a,1\nb,{long}\r\nm\r\n\rz,9"),
    ] {
        for input in sweep(b"\xEF\xBB\xBFk,v\r\n", end.as_bytes(), false) {
            for (args, options) in [
                (&[][..], options(false, None)),
                (&["--skip-malformed"][..], options(true, None)),
            ] {
                if let Err(e) = check(&input, args, &options) {
                    failures.push(e);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Several inputs: one split, one not (under the split's threshold), keys new in each half and
/// in each input, and a key whose records are in three parts (two split inputs); then a third
/// input whose header differs: the error names it, after the other two were taken whole.
#[test]
fn several_inputs_some_split() {
    let header = b"k,v\r\n";
    let mut big = header.to_vec();
    for i in 0..60 {
        let key = ["a", "b", "\"c,\"\"\"", "d"][i % 4];
        let key = if i > 30 {
            format!("{key}{}", i % 7)
        } else {
            key.into()
        };
        big.extend(format!("{key},{}\r\n", "v".repeat(i)).into_bytes());
    }
    let small = b"k,v\r\nb,1\r\nnew,2\n".to_vec();
    let other = b"k,w\na,1\n".to_vec();
    let threshold = (small.len() + 1).to_string();
    let mut failures = Vec::new();
    for (names, inputs) in [
        (
            vec!["big.csv", "small.csv"],
            vec![big.clone(), small.clone()],
        ),
        (
            vec!["small.csv", "big.csv"],
            vec![small.clone(), big.clone()],
        ),
        (
            vec!["big.csv", "small.csv", "big2.csv"],
            vec![big.clone(), small.clone(), big.clone()],
        ),
        (
            vec!["big.csv", "big2.csv", "other.csv"],
            vec![big.clone(), big.clone(), other.clone()],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in names.iter().zip(&inputs) {
            fs::write(dir.path().join(name), bytes).unwrap();
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_handoff"));
        let output = command
            .current_dir(dir.path())
            .env("HANDOFF_PARTITION_SPLIT_MIN", &threshold)
            .args(["partition", "k", "out"])
            .args(&names)
            .output()
            .unwrap();
        let ran = Ran {
            code: output.status.code(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            out: dir.path().join("out"),
        };
        let expected = split(&inputs, &options(false, None));
        if let Err(e) = judge(&ran, &expected, &names) {
            failures.push(format!("{names:?}: {e}\n  stderr {}", ran.stderr));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// When the keys' bookkeeping passes `--memory`, one parser warns at once; it must too when
/// the keys that pass it are first seen by the second half (which took every record to the
/// end: no record is added after the merge).
///
/// Failed on 3125127: the warning was made when the second half's keys were merged, but only
/// shown when a record was added after that, so here it never was.
#[test]
fn the_memory_warning_when_the_second_half_brings_the_keys() {
    // The first half: one key, long records; the second half: 40 keys of 300 bytes, each in
    // a buffer of about that size, so that the second half's share of --memory holds them
    // all, while their bookkeeping (about 1 KiB a key) passes --memory.
    let mut input = b"k,v\n".to_vec();
    for _ in 0..12 {
        input.extend_from_slice(b"a,");
        input.extend_from_slice(&[b'x'; 1000]);
        input.push(b'\n');
    }
    for i in 0..40 {
        input.extend(format!("{i:03}{},1\n", "y".repeat(297)).into_bytes());
    }
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("in.csv"), &input).unwrap();
    for split in [false, true] {
        let ran = run(dir.path(), &["--memory=30K"], &["in.csv"], split);
        let _ = fs::remove_dir_all(&ran.out);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        assert!(
            ran.stderr
                .contains("warning: --memory 0.0 MiB is less than the bookkeeping of the"),
            "split {split}: no warning:\n{}",
            ran.stderr
        );
    }
}

/// A write past RLIMIT_FSIZE (EFBIG) when a key's records are in two parts, the first half's
/// and the second half's (written one after the other): whichever part the limit falls in,
/// the file ends at its last whole record within the limit, and the summary counts what the
/// files hold. Ample `--memory` (every buffer written at the end) and a bound about the input's
/// size (buffers written mid-run too).
#[test]
fn a_failed_write_of_a_key_in_two_parts_leaves_whole_records() {
    let mut input = b"k,payload\r\n".to_vec();
    for i in 0..300 {
        let key = ["big", "small", "big", "big", "other"][i % 5];
        let payload = match i % 3 {
            0 => "p".repeat(10 + i % 90),
            // (No line break inside quotes: the guess lands on a record's end, the split
            // holds.)
            1 => format!("\"q,\"\"{}\"", "y".repeat(i % 70)),
            _ => format!("{i}"),
        };
        input.extend(format!("{key},{payload}\r\n").into_bytes());
    }
    let expected = split(std::slice::from_ref(&input), &options(false, None));
    let big = &expected.boundaries[&b"big".to_vec()];
    let whole = big.last().copied().unwrap();
    let memory = format!("{}K", input.len() / 1024 + 1);
    let mut failures = Vec::new();
    for limit in [
        whole / 5,
        whole / 3,
        whole / 2,
        whole * 2 / 3,
        whole * 9 / 10,
    ] {
        for memory in ["256M", memory.as_str()] {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("in.csv"), &input).unwrap();
            let mut command = Command::new(env!("CARGO_BIN_EXE_handoff"));
            command
                .current_dir(dir.path())
                .env("HANDOFF_PARTITION_SPLIT_MIN", "1")
                .args(["partition", "--memory", memory, "k", "out", "in.csv"]);
            let limit = limit as u64;
            file_size_limited(&mut command, limit);
            let output = command.output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            let files = listing(&dir.path().join("out")).unwrap();
            let fits = *big.iter().filter(|&&b| b as u64 <= limit).max().unwrap();
            let on_disk: usize = keys_of(&files, &expected, "{}.csv")
                .unwrap()
                .iter()
                .map(|(key, name)| {
                    let bounds = &expected.boundaries[key];
                    bounds
                        .iter()
                        .position(|&b| b == files[name].len())
                        .unwrap_or(0)
                })
                .sum();
            let result = if output.status.code() != Some(1) {
                Err(format!("exit {:?}", output.status.code()))
            } else if !stderr.contains("big.csv") {
                Err("the message does not name big.csv".into())
            } else if files.get(b"big.csv".as_slice()).map(Vec::len) != Some(fits) {
                Err(format!(
                    "big.csv holds {:?} bytes, want {fits} (the last whole record within the limit)",
                    files.get(b"big.csv".as_slice()).map(Vec::len)
                ))
            } else if summary_counts(&stderr).map(|c| c.0) != Some(on_disk) {
                Err(format!(
                    "the files hold {on_disk} records, the summary says otherwise"
                ))
            } else {
                judge_files(&files, &expected, "{}.csv", Strictness::WholeRecordPrefix)
            };
            if let Err(e) = result {
                failures.push(format!(
                    "limit {limit}, --memory {memory}: {e}\n  stderr {stderr}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `header`, short records, then `after`: as many short records as put the guess right at
/// `after`'s start.
fn guess_at(header: &[u8], after: &[u8]) -> Vec<u8> {
    // Short records of 7 bytes: the middle must fall in the last one, before its `\n`.
    let (h, a) = (header.len(), after.len());
    let n = (1..)
        .find(|n| {
            let middle = (7 * n + a) * 45 / 100;
            7 * n < middle + 8 && middle < 7 * n
        })
        .unwrap();
    let mut input = header.to_vec();
    for i in 0..n {
        input.extend(format!("s{},10\r\n", i % 9).into_bytes());
    }
    input.extend_from_slice(after);
    assert_eq!(
        guess(&input, h),
        Some(h + 7 * n),
        "the guess lands at `after`"
    );
    input
}

/// Lines longer than the 1 MiB searched for the guess's line break, and than the parsers'
/// 1 MiB buffers: one over the middle (no line break near it: one parser), one right after
/// the guess (the second half's buffer grows, plain or quoted), an unterminated last one after
/// the guess (the main thread reads it on from where the second half stopped).
#[test]
fn lines_longer_than_the_search_and_the_buffers() {
    let long = |c: u8| vec![c; 9 << 17];
    let header = b"k,v\n";
    let mut failures = Vec::new();
    for input in [
        [&header[..], b"a,1\n", b"b,", &long(b'x'), b"\r\n", b"c,2\n"].concat(),
        guess_at(
            header,
            &[&b"b,"[..], &long(b'y'), b"\n", b"c,\"2\n\"\n"].concat(),
        ),
        guess_at(
            header,
            &[&b"b,\""[..], &long(b'z'), b"\"\r\n", b"\rc,1\n"].concat(),
        ),
        guess_at(
            header,
            &[&b"b,"[..], &long(b'w'), b"\n\r\n\rc,", &long(b'v')].concat(),
        ),
    ] {
        if let Err(e) = check(&input, &[], &options(false, None)) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Peak resident memory of a run of `command`, in KiB, its exit code, and whether a thread
/// named "second half" was seen in it: the child's `VmHWM` (the high-water mark of its own
/// address space) and threads, read from `/proc` every 2 ms until it exits.
/// (`wait4`'s `ru_maxrss` will not do: it keeps the peak of the address space the child had
/// before `exec`, which `posix_spawn` shares with this test process and its inputs.)
fn peak_rss(command: &mut Command) -> (Option<i32>, u64, bool) {
    let mut child = command.spawn().unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let tasks = format!("/proc/{}/task", child.id());
    let (mut peak, mut second_half) = (0, false);
    loop {
        if let Ok(status) = fs::read_to_string(&status_file) {
            let hwm = status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse().ok());
            peak = peak.max(hwm.unwrap_or(0));
        }
        if let Ok(threads) = fs::read_dir(&tasks) {
            second_half |= threads.flatten().any(|thread| {
                fs::read_to_string(thread.path().join("comm"))
                    .is_ok_and(|name| name.trim() == "second half")
            });
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), peak, second_half);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Runs `handoff partition -q ARGS k OUT in.csv` in `dir` twice, by one parser and then split
/// however small, checks each run's OUT with `check(out, split)` (then removes it), and
/// asserts that the split run's peak RSS is within 14 MiB of one parser's (`what`: the case,
/// for the message). With `second_half_seen`, the split run must have run a second half long
/// enough to be seen (so that a change of the rules cannot leave the comparison one parser
/// against one parser).
fn split_peak_near_one_parsers(
    dir: &Path,
    args: &[&str],
    second_half_seen: bool,
    what: &str,
    check: impl Fn(&Path, bool),
) {
    let mut peaks = Vec::new();
    for split in [false, true] {
        let out = dir.join(format!("out{split}"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_handoff"));
        command
            .current_dir(dir)
            .env(
                "HANDOFF_PARTITION_SPLIT_MIN",
                if split { "1" } else { "999999999999" },
            )
            .args(["partition", "-q"])
            .args(args)
            .arg("k")
            .arg(&out)
            .arg("in.csv");
        let (code, peak, second_half) = peak_rss(&mut command);
        assert_eq!(code, Some(0));
        assert!(
            !second_half_seen || second_half == split,
            "split {split}: a second half {}",
            if second_half { "ran" } else { "was never seen" }
        );
        check(&out, split);
        fs::remove_dir_all(&out).unwrap();
        peaks.push(peak);
    }
    let (one, two) = (peaks[0], peaks[1]);
    assert!(
        two <= one + 14 * 1024,
        "peak RSS {what}: {two} KiB, one parser: {one} KiB"
    );
}

/// A guess inside a quoted field whose closing quote starts a line, with no quote after it:
/// to the second half, that quote opens a field that runs to the end of the input. The main
/// thread finds the guess wrong when it gets there and cancels the second half, which must not
/// have read (and decoded) the rest of the input into memory meanwhile: it stops before a
/// record of over 4 MiB. One parser's peak and the split run's are compared: +3 MiB here;
/// +24 MiB before the second half was cancelled at once and stopped at long records (it read
/// the rest, 10 MB, and decoded it).
#[test]
fn a_wrong_guess_does_not_read_the_rest_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    let line = b"a,123456\n";
    let lines = 2_000_000;
    let quoted = [&b"b,\"x"[..], &[b'\n'; 2000], b"\"\n"].concat();
    let guess_at = (lines * line.len() + quoted.len()) * 45 / 100;
    let before = (guess_at - 1000) / line.len();
    let mut input = b"k,v\n".to_vec();
    input.extend(line.repeat(before));
    input.extend_from_slice(&quoted);
    input.extend(line.repeat(lines - before));
    let header = 4;
    let at = guess(&input, header).unwrap();
    assert!(
        (header + before * line.len()..header + before * line.len() + quoted.len()).contains(&at),
        "the guess must fall inside the quoted field"
    );
    fs::write(dir.path().join("in.csv"), &input).unwrap();
    split_peak_near_one_parsers(dir.path(), &[], false, "with a wrong guess", |out, _| {
        let lines_in = |name: &str| {
            fs::read(out.join(name))
                .unwrap()
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
        };
        assert_eq!(lines_in("a.csv"), lines + 1);
        assert_eq!(lines_in("b.csv"), 2002);
    });
}

/// A wrong guess found only after the second half has stopped (here before a record of over
/// 4 MiB), holding the buffers of the records it took: a guess inside a quoted field whose
/// rest (`y,z"`) reads as a record of the right field count, after which it parses every
/// record right. Its buffers must be freed when the main thread finds the guess wrong (they
/// are no longer counted against `--memory` from then on), not kept until the input ends.
/// One parser's peak and the split run's are compared (`--memory` ample: no buffer is written
/// before the end, in either run).
///
/// Failed before: the second half's buffers (32 MB of `c` records) stayed in its thread's
/// result until the main thread joined it after the end of the input; the split run's peak was
/// one parser's plus those 32 MB.
#[test]
fn a_wrong_guess_frees_what_a_stopped_second_half_holds() {
    let header = b"k,v\n";
    // Quoted records before the guess (csv-core's path, slower than plain lines: the second
    // half has stopped by the time the main thread reaches the guess).
    let a = [&b"a,\"q,\"\"uoted\"\" "[..], &[b'p'; 80], b"\"\n"].concat();
    // The guess falls on its first line break.
    let straddle = [&b"b,\""[..], &[b'x'; 300], b"\ny,z\"\n"].concat();
    let c = [&b"c,"[..], &[b'v'; 97], b"\n"].concat();
    let cs = 320_000; // 32 MB
    let d = [&b"d,"[..], &vec![b'w'; 5 << 20], b"\n"].concat();
    let e = [&b"e,"[..], &[b'u'; 97], b"\n"].concat();
    let es = 30_000;
    let after = straddle.len() + c.len() * cs + d.len() + e.len() * es;
    // As many `a` records as put the middle on the straddling record's first line.
    let n = (0..)
        .find(|n| {
            let len = header.len() + n * a.len() + after;
            let middle = header.len() + (len - header.len()) * 45 / 100;
            let at = header.len() + n * a.len();
            (at..at + 300).contains(&middle)
        })
        .unwrap();
    let mut input = header.to_vec();
    input.extend(a.repeat(n));
    input.extend_from_slice(&straddle);
    input.extend(c.repeat(cs));
    input.extend_from_slice(&d);
    input.extend(e.repeat(es));
    let at = header.len() + n * a.len();
    assert_eq!(
        guess(&input, header.len()),
        Some(at + 3 + 300 + 1),
        "the guess must fall inside the quoted field"
    );
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("in.csv"), &input).unwrap();
    drop(input);
    let want = |record: &[u8], count: usize| [&header[..], &record.repeat(count)].concat();
    split_peak_near_one_parsers(
        dir.path(),
        &["--memory=128M"],
        true,
        "with a wrong guess found late",
        |out, split| {
            for (name, record, count) in [
                ("a.csv", &a, n),
                ("b.csv", &straddle, 1),
                ("c.csv", &c, cs),
                ("d.csv", &d, 1),
                ("e.csv", &e, es),
            ] {
                let got = fs::read(out.join(name)).unwrap();
                assert!(got == want(record, count), "split {split}: {name} differs");
            }
            assert_eq!(fs::read_dir(out).unwrap().count(), 5);
        },
    );
}

/// The keys' bookkeeping shrinks the buffers' budget as keys come (`--memory` less about
/// 480 bytes and twice the key's length a key, down to a floor): once the second half holds
/// more than the budget left, it must be dropped (its records cannot be written before the main
/// thread reaches them), or the buffers pass the bound that one parser keeps. Here 10,900
/// keys of 4,000 bytes before the guess take the budget from 96 MiB (`--memory=110M` less an
/// eighth for the heap's holes) down to the floor (8 MiB), while the second half holds its
/// share (about 49 MB of one key). One parser's peak and the split run's are compared.
///
/// Failed before: the split run's peak was one parser's plus about 40 MB (the second half's
/// buffers, kept while the main thread's buffers had no room at all: every record it read
/// went to the writer alone).
#[test]
fn a_second_half_holding_more_than_the_keys_leave_is_dropped() {
    let header = b"k,v\n";
    let long = |i: usize| {
        let mut record = format!("{i:06}").into_bytes();
        record.resize(4000, b'k');
        record.extend_from_slice(b",1\n");
        record
    };
    let keys = 10_900;
    let z = [&b"z,"[..], &[b'v'; 97], b"\n"].concat();
    let zs = 540_000;
    let mut input = header.to_vec();
    for i in 0..keys {
        input.extend(long(i));
    }
    let boundary = input.len();
    input.extend(z.repeat(zs));
    let at = guess(&input, header.len()).unwrap();
    assert!(at > boundary, "the guess must fall among the `z` records");
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("in.csv"), &input).unwrap();
    drop(input);
    let mut want: BTreeSet<Vec<u8>> = (0..keys)
        .map(|i| [&header[..], &long(i)].concat())
        .collect();
    want.insert([&header[..], &z.repeat(zs)].concat());
    split_peak_near_one_parsers(
        dir.path(),
        &["--memory=110M"],
        true,
        "with the budget shrunk below the second half's share",
        |out, split| {
            let got: BTreeSet<Vec<u8>> = fs::read_dir(out)
                .unwrap()
                .map(|entry| fs::read(entry.unwrap().path()).unwrap())
                .collect();
            assert!(got == want, "split {split}: the files differ");
        },
    );
}

/// The phases a run of `handoff partition -q k out IN…` told with `HANDOFF_PARTITION_PHASES`
/// set to `value` (`None`: unset), every input split however small if `split_all`, in the order
/// told, each with its time; `None` if it told none. The run must succeed and give the
/// reference's files, its phases be in order and none later than the wall time measured here
/// around the process.
fn phases_of(
    inputs: &[Vec<u8>],
    split_all: bool,
    value: Option<&str>,
) -> Option<Vec<(f64, String)>> {
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for (at, input) in inputs.iter().enumerate() {
        let name = format!("in{at}.csv");
        fs::write(dir.path().join(&name), input).unwrap();
        names.push(name);
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut env = vec![("HANDOFF_PARTITION_PHASES", value)];
    if !split_all {
        env.push(("HANDOFF_PARTITION_SPLIT_MIN", None));
    }
    let (ran, wall_ms) = run_keyed_env(
        dir.path(),
        &["-q"],
        &Key::names(&["k"]),
        &names,
        split_all,
        &env,
    );
    let stderr = ran.stderr;
    assert_eq!(ran.code, Some(0), "{stderr}");
    judge_files(
        &listing(&ran.out).unwrap(),
        &split(inputs, &options(false, None)),
        "{}.csv",
        Strictness::Exact,
    )
    .unwrap();
    if stderr.is_empty() {
        return None;
    }
    let line = stderr
        .strip_prefix("handoff partition phases (ms since the run began): ")
        .and_then(|line| line.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("not a phases line: {stderr:?}"));
    let told: Vec<(f64, String)> = line
        .split("; ")
        .map(|phase| {
            let (ms, name) = phase.split_once(' ').unwrap();
            (ms.parse().unwrap(), name.to_owned())
        })
        .collect();
    assert!(
        told.windows(2).all(|pair| pair[0].0 <= pair[1].0),
        "not in order: {line}"
    );
    assert!(
        told.last().unwrap().0 <= wall_ms,
        "{line}, wall {wall_ms} ms"
    );
    Some(told)
}

/// The names of `told`, those of `input` (`None`: the run's own), the two halves' ends
/// (either may come first) sorted.
fn names_of(told: &[(f64, String)], input: Option<usize>) -> Vec<String> {
    let suffix = input.map(|n| format!(" (input {n})")).unwrap_or_default();
    let mut names: Vec<String> = told
        .iter()
        .filter_map(|(_, name)| match input {
            Some(_) => name.strip_suffix(&suffix).map(str::to_owned),
            None => (!name.ends_with(')')).then(|| name.clone()),
        })
        .collect();
    if let Some(at) = names.iter().position(|name| name.ends_with(" half parsed")) {
        if names
            .get(at + 1)
            .is_some_and(|next| next.ends_with(" half parsed"))
        {
            names[at..at + 2].sort_unstable();
        }
    }
    names
}

/// `HANDOFF_PARTITION_PHASES=1` tells on standard error when each phase ended, in order
/// (see [`phases_of`]): a split run's split, both halves, the merge, the end of reading and of
/// writing; the rest read by the main thread after a second half that stopped early; a second
/// half dropped (its guess inside a quoted field) as such; a run that does
/// not split only the last two; several inputs each by its number. Set, even empty, it is on;
/// unset or `0`, a quiet run says nothing. Every run's files are the reference's.
#[test]
fn the_phases_report() {
    let mut input = b"k,v\n".to_vec();
    for i in 0..5_000u32 {
        input.extend(format!("k{},{}\n", i * 13 % 101, "v".repeat((i % 40) as usize)).bytes());
    }
    let split_run = ["split", "first half parsed", "second half parsed", "merged"];
    let told = phases_of(std::slice::from_ref(&input), true, Some("1")).unwrap();
    assert_eq!(
        names_of(&told, None),
        [&split_run[..], &["writing", "written"]].concat(),
        "{told:?}"
    );
    for value in [Some("0"), None] {
        assert_eq!(phases_of(std::slice::from_ref(&input), true, value), None);
    }
    // Set, even empty, it is on.
    assert!(phases_of(std::slice::from_ref(&input), true, Some("")).is_some());
    let told = phases_of(std::slice::from_ref(&input), false, Some("1")).unwrap();
    assert_eq!(names_of(&told, None), ["writing", "written"], "{told:?}");

    // An unterminated last record: the second half stops before it, the main thread reads it.
    let mut unterminated = input.clone();
    unterminated.extend(b"k7,last");
    let told = phases_of(&[unterminated], true, Some("1")).unwrap();
    assert_eq!(
        names_of(&told, None),
        [&split_run[..], &["rest parsed", "writing", "written"]].concat(),
        "{told:?}"
    );

    // A quoted field over the middle: the second half starts inside it, and is dropped.
    let mut quoted = b"k,v\na,\"".to_vec();
    quoted.extend(b"x\n".repeat(1_000));
    quoted.extend(b"\"\nb,1\n");
    let told = phases_of(std::slice::from_ref(&quoted), true, Some("1")).unwrap();
    assert_eq!(
        names_of(&told, None),
        ["split", "second half dropped", "writing", "written"],
        "{told:?}"
    );

    let told = phases_of(&[input.clone(), quoted, input], true, Some("1")).unwrap();
    for (number, want) in [
        (1, &split_run[..]),
        (2, &["split", "second half dropped"][..]),
        (3, &split_run[..]),
    ] {
        assert_eq!(names_of(&told, Some(number)), want, "{told:?}");
    }
    assert_eq!(names_of(&told, None), ["writing", "written"], "{told:?}");
}

/// The report tells a split exactly when the kernel saw a thread name itself "second half"
/// (`strace`'s record of `prctl`, the oracle): a second half taken, one dropped (its guess
/// inside a quoted field), and none started (no line break within the 1 MiB searched past
/// the middle).
#[test]
fn the_phases_report_tells_a_split_when_the_kernel_saw_one() {
    let mut taken = b"k,v\n".to_vec();
    for i in 0..5_000u32 {
        taken.extend(format!("k{},{}\n", i % 101, "v".repeat((i % 40) as usize)).bytes());
    }
    let mut dropped = b"k,v\na,\"".to_vec();
    dropped.extend(b"x\n".repeat(1_000));
    dropped.extend(b"\"\nb,1\n");
    let mut none = b"k,v\na,".to_vec();
    none.extend(vec![b'x'; 3 << 20]);
    none.extend(b"\nb,1\n");
    for (input, splits) in [(taken, true), (dropped, true), (none, false)] {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("in.csv"), &input).unwrap();
        let (ran, seen) = second_half_started_env(
            dir.path(),
            &["-q"],
            "k",
            &[("HANDOFF_PARTITION_PHASES", "1")],
        );
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        let told = ran.stderr.contains(" split;");
        assert!(
            ran.stderr
                .starts_with("handoff partition phases (ms since the run began): "),
            "{}",
            ran.stderr
        );
        assert_eq!((told, seen), (splits, splits), "{}", ran.stderr);
        judge_files(
            &listing(&ran.out).unwrap(),
            &split(&[input], &options(false, None)),
            "{}.csv",
            Strictness::Exact,
        )
        .unwrap();
    }
}
