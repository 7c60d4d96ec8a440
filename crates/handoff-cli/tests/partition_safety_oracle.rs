//! `handoff partition`'s safety promises, judged from the contract's text (spec 12–14 and the
//! exit codes), at the command line only: what is on disk before and after, the exit code, and
//! the bytes printed.

mod oracle;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use oracle::judge::show;
use oracle::names::unsafe_because;

fn handoff(dir: &Path, args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_handoff"))
        .current_dir(dir)
        .arg("partition")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn err(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every file under `dir` (not following links): relative path → content or link target.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if kind.is_symlink() {
            let target = fs::read_link(entry.path()).unwrap();
            all.push((
                format!("{name} -> "),
                target.as_os_str().as_bytes().to_vec(),
            ));
        } else if kind.is_dir() {
            for (sub, content) in tree(&entry.path()) {
                all.push((format!("{name}/{sub}"), content));
            }
        } else {
            all.push((name, fs::read(entry.path()).unwrap()));
        }
    }
    all.sort();
    all
}

/// Spec 12: an existing symlink where an output goes is an error (exit 1, the file named),
/// nothing written through it — with --force and with --append, dangling or not.
#[test]
fn a_symlink_in_outdir_is_never_followed() {
    for mode in ["--force", "--append"] {
        for dangling in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            fs::write(d.join("in.csv"), b"key,v\na,1\nb,2\n").unwrap();
            fs::create_dir(d.join("out")).unwrap();
            let target = d.join("outside.csv");
            if !dangling {
                fs::write(&target, b"key,v\nprecious\n").unwrap();
            }
            symlink(&target, d.join("out/a.csv")).unwrap();
            let before = tree(d);
            let output = handoff(d, &[os(mode), os("key"), os("out"), os("in.csv")]);
            let what = format!("{mode}, dangling {dangling}: {}", err(&output));
            assert_eq!(output.status.code(), Some(1), "{what}");
            assert!(
                err(&output).contains("a.csv"),
                "the file is not named: {what}"
            );
            if dangling {
                assert!(
                    !target.exists(),
                    "created outside OUTDIR through a link: {what}"
                );
            } else {
                assert_eq!(fs::read(&target).unwrap(), b"key,v\nprecious\n", "{what}");
            }
            // Nothing outside OUTDIR changed (the input and the link's target included).
            let outside = |t: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
                t.iter()
                    .filter(|(p, _)| !p.starts_with("out/"))
                    .cloned()
                    .collect()
            };
            assert_eq!(outside(&tree(d)), outside(&before), "{what}");
        }
    }
}

/// Spec 12: an input that is, or resolves to, a file inside OUTDIR is refused up front (exit
/// 2), whatever names it: its path in OUTDIR, a symlink, a hard link outside, standard input.
#[test]
fn an_input_inside_outdir_is_refused_and_kept() {
    let content = b"key,v\na,1\nb,2\na,3\n";
    for how in ["path", "symlink", "hardlink", "stdin", "other-file"] {
        for mode in ["--force", "--append"] {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            fs::create_dir(d.join("out")).unwrap();
            let inside = if how == "other-file" {
                "out/notes.txt"
            } else {
                "out/a.csv"
            };
            fs::write(d.join(inside), content).unwrap();
            let input = match how {
                "symlink" => {
                    symlink(d.join(inside), d.join("link.csv")).unwrap();
                    "link.csv"
                }
                "hardlink" => {
                    fs::hard_link(d.join(inside), d.join("hard.csv")).unwrap();
                    "hard.csv"
                }
                _ => inside,
            };
            let before = tree(d);
            let mut command = Command::new(env!("CARGO_BIN_EXE_handoff"));
            command
                .current_dir(d)
                .args(["partition", mode, "key", "out"]);
            if how == "stdin" {
                command.stdin(fs::File::open(d.join(inside)).unwrap());
            } else {
                command.arg(input).stdin(Stdio::null());
            }
            let output = command.output().unwrap();
            let what = format!("{how} {mode}: {}", err(&output));
            assert_eq!(output.status.code(), Some(2), "{what}");
            assert_eq!(tree(d), before, "something changed: {what}");
        }
    }
}

/// Spec 13: --append onto a file whose first record differs from the run's header: exit 2,
/// the file untouched, nothing written at all. A BOM on either side does not count.
#[test]
fn append_checks_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("out")).unwrap();
    fs::write(d.join("out/a.csv"), b"key,value\na,1\n").unwrap();
    fs::write(d.join("in.csv"), b"key,x,y\nb,1,2\na,3,4\n").unwrap();
    let before = tree(d);
    let output = handoff(d, &[os("--append"), os("key"), os("out"), os("in.csv")]);
    assert_eq!(output.status.code(), Some(2), "{}", err(&output));
    assert_eq!(tree(d), before, "{}", err(&output));

    // The same names, one side with a BOM: appended, no second header.
    for (existing, input, want) in [
        (
            &b"\xEF\xBB\xBFkey,value\na,1\n"[..],
            &b"key,value\na,2\n"[..],
            &b"\xEF\xBB\xBFkey,value\na,1\na,2\n"[..],
        ),
        (
            b"key,value\na,1\n",
            b"\xEF\xBB\xBFkey,value\na,2\n",
            b"key,value\na,1\na,2\n",
        ),
        (b"", b"key,value\r\na,2\r\n", b"key,value\r\na,2\r\n"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("out")).unwrap();
        fs::write(d.join("out/a.csv"), existing).unwrap();
        fs::write(d.join("in.csv"), input).unwrap();
        let output = handoff(d, &[os("--append"), os("key"), os("out"), os("in.csv")]);
        assert_eq!(output.status.code(), Some(0), "{}", err(&output));
        let got = fs::read(d.join("out/a.csv")).unwrap();
        assert_eq!(
            got,
            want,
            "{} onto {}: got {}",
            show(input),
            show(existing),
            show(&got)
        );
    }
}

/// Spec 14: whatever came from the input is printed escaped (control bytes, ESC, DEL, invalid
/// UTF-8 as `\xNN`) and cut to 64 characters with `…`.
#[test]
fn messages_are_safe_for_a_terminal() {
    fn check(stderr: &[u8], what: &str) {
        let text = std::str::from_utf8(stderr)
            .unwrap_or_else(|_| panic!("{what}: stderr is not UTF-8: {}", show(stderr)));
        assert!(
            !stderr
                .iter()
                .any(|&c| (c < 0x20 && c != b'\n') || c == 0x7f),
            "{what}: raw control bytes reach the terminal: {}",
            show(stderr)
        );
        assert!(
            text.lines().all(|l| l.len() < 2000),
            "{what}: an input value printed uncut: {} bytes",
            text.len()
        );
    }
    // A header naming no such column: the header names are printed.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut input = b"k\x1b]0;PWNED\x07\x1b[2J,\xff\xfe,\x7f,".to_vec();
    input.extend(vec![b'x'; 10_000]);
    input.extend(b"\na,b,c,d\n");
    fs::write(d.join("in.csv"), &input).unwrap();
    let output = handoff(d, &[os("missing"), os("out"), os("in.csv")]);
    assert_eq!(output.status.code(), Some(2), "{}", err(&output));
    check(&output.stderr, "no such column");
    let text = err(&output).to_lowercase();
    assert!(text.contains("\\x1b"), "ESC not shown as \\x1b: {text}");
    assert!(
        text.contains("\\xff"),
        "invalid UTF-8 not shown as \\xff: {text}"
    );
    assert!(text.contains('…'), "a 10 KB name not cut with …: {text}");
    assert!(
        !text.contains(&"x".repeat(65)),
        "more than 64 characters of a name: {text}"
    );

    // A malformed record in an input whose path holds ESC and BEL: the path is printed.
    let name = OsStr::from_bytes(b"in\x1b[31m\x07.csv");
    fs::write(d.join(name), b"key,v\na,1,2\n").unwrap();
    let output = handoff(d, &[os("key"), os("out2"), name]);
    assert_eq!(output.status.code(), Some(1), "{}", err(&output));
    check(&output.stderr, "malformed record in a hostile path");

    // A write that fails (RLIMIT_FSIZE) for a 10 KB key holding ESC: the error names the file
    // and the key.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut input = b"key\n\x1b[2J".to_vec();
    input.extend(vec![b'x'; 10_000]);
    input.push(b'\n');
    fs::write(d.join("in.csv"), &input).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_handoff"));
    command
        .current_dir(d)
        .args(["partition", "key", "out", "in.csv"]);
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let rl = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", err(&output));
    check(&output.stderr, "a 10 KB key with ESC in a write error");
    assert!(!err(&output).contains(&"x".repeat(65)), "{}", err(&output));

    // A key that becomes a symlinked file (an error naming the file, so its key): ESC bytes.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("out")).unwrap();
    symlink("nowhere", d.join("out/%1B%1B.csv")).unwrap();
    fs::write(d.join("in.csv"), b"key\n\"\x1b\x1b\"\n").unwrap();
    let output = handoff(d, &[os("--force"), os("key"), os("out"), os("in.csv")]);
    assert_eq!(output.status.code(), Some(1), "{}", err(&output));
    check(&output.stderr, "a key with ESC in an error");
}

/// Spec 12 and the exit codes: refused set-ups exit 2, say why, and leave no trace.
#[test]
fn refused_setups_exit_2_and_leave_outdir_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("in.csv"), b"key,v\na,1\n").unwrap();

    // OUTDIR is a regular file.
    fs::write(d.join("file"), b"keep\n").unwrap();
    let output = handoff(d, &[os("key"), os("file"), os("in.csv")]);
    assert_eq!(output.status.code(), Some(2), "{}", err(&output));
    assert!(err(&output).contains("not a directory"), "{}", err(&output));
    assert_eq!(fs::read(d.join("file")).unwrap(), b"keep\n");

    // A missing column, `-p 0`, a template too long for the longest escaped name: OUTDIR,
    // created by the run, is gone again.
    let long = format!("{}{{}}.csv", "t".repeat(200));
    for args in [
        vec!["nope", "new", "in.csv"],
        vec!["-p", "0", "key", "new", "in.csv"],
        vec!["--filename", &long, "key", "new", "in.csv"],
    ] {
        let args: Vec<&OsStr> = args.iter().map(|a| os(a)).collect();
        let output = handoff(d, &args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", err(&output));
        assert!(!d.join("new").exists(), "{args:?}: OUTDIR left behind");
    }
}

/// The README's device names: "NUL.txt and NUL.tar.gz are both equivalent to NUL" on Windows
/// (Microsoft's "Naming Files"), so a reserved name followed by an extension is one too.
#[test]
fn device_names_with_an_extension_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(
        d.join("in.csv"),
        b"key\nCON\ncon.x\naux.tar\nLPT1.a.b\nnul.\n",
    )
    .unwrap();
    let output = handoff(d, &[os("key"), os("out"), os("in.csv")]);
    assert_eq!(output.status.code(), Some(0), "{}", err(&output));
    for entry in fs::read_dir(d.join("out")).unwrap() {
        let name = entry.unwrap().file_name();
        if let Some(why) = unsafe_because(name.as_bytes()) {
            panic!("{}: {why}", show(name.as_bytes()));
        }
    }
}
