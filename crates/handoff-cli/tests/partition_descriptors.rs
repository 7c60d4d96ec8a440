//! `--max-open N` is a ceiling on the real descriptors of the output files, whichever road a
//! file takes (the pager's, or a new file's single write at the end, created and closed
//! outside it): checked by asking the kernel, with `strace -f` recording every open and
//! close of the run's threads, replayed here to find the most output files open at once.
#![cfg(target_os = "linux")]

mod partition_support;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::process::Command;

use partition_support::{files, stderr};

/// The most output descriptors open at once in an strace log of `openat`/`close` (with `-f`:
/// a call cut by another thread's is finished on a `<... resumed>` line). An output is an
/// `openat` of a name ending in `.csv` (the input is `input.txt`), or of a hive directory
/// (`key=…`).
fn peak_outputs(log: &str) -> (usize, usize) {
    let mut pending: HashMap<&str, bool> = HashMap::new(); // pid -> an output's openat
    let mut open: HashSet<i64> = HashSet::new();
    let (mut peak, mut opens) = (0, 0);
    for line in log.lines() {
        let Some((pid, call)) = line.split_once(' ') else {
            continue;
        };
        let call = call.trim_start();
        let result = |text: &str| -> Option<i64> {
            text.rsplit("= ").next()?.split(' ').next()?.parse().ok()
        };
        if call.starts_with("openat(") {
            let output = call.contains(".csv\"") || call.contains("key=");
            if call.ends_with("<unfinished ...>") {
                pending.insert(pid, output);
                continue;
            }
            if let (true, Some(fd)) = (output, result(call)) {
                if fd >= 0 {
                    opens += 1;
                    open.insert(fd);
                }
            }
        } else if call.starts_with("<... openat resumed>") {
            if let (Some(true), Some(fd)) = (pending.remove(pid), result(call)) {
                if fd >= 0 {
                    opens += 1;
                    open.insert(fd);
                }
            }
        } else if let Some(rest) = call.strip_prefix("close(") {
            // The number leaves the table as close begins (whatever it returns, EINTR and EIO
            // included, on Linux): an unfinished close counts as done.
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(fd) = digits.parse::<i64>() {
                open.remove(&fd);
            }
        }
        peak = peak.max(open.len());
    }
    (peak, opens)
}

#[test]
fn output_descriptors_never_exceed_max_open_whichever_road_a_file_takes() {
    if Command::new("strace").arg("-V").output().is_err() {
        panic!("strace is needed (CI installs it)");
    }
    // New files (the pager's, created early, written once at the end), replaced files (every
    // one through the pager, two threads at the end), hive (a directory's descriptor beside
    // each file's); budgets from the smallest that allows two writing threads.
    for (mode, max_open) in [
        (None, 12),
        (None, 4),
        (Some("--force"), 12),
        (Some("--force"), 4),
        (Some("--layout=hive"), 12),
        (Some("--layout=hive"), 5),
    ] {
        census(mode, max_open);
    }
}

fn census(mode: Option<&str>, max_open: usize) {
    const KEYS: usize = 3_000;
    let hive = mode == Some("--layout=hive");
    let dir = tempfile::tempdir().unwrap();
    // A few keys with many long records (their buffers are written mid-run, through the
    // pager), most with a few short ones (held to the end, then written once each).
    let mut input = String::from("key,n\n");
    for i in 0..30_000usize {
        if i % 3 == 0 {
            input.push_str(&format!("k{},{i}{}\n", i % 7, "x".repeat(100)));
        } else {
            input.push_str(&format!("k{},{i}\n", i % KEYS));
        }
    }
    fs::write(dir.path().join("input.txt"), &input).unwrap();
    let out = dir.path().join("out");
    let log = dir.path().join("strace.log");
    let output = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=openat,close", "-o"])
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_handoff"))
        .args([
            "partition",
            "-q",
            "--memory",
            "256K",
            "--max-open",
            &max_open.to_string(),
        ])
        .args(mode)
        .arg("key")
        .arg(&out)
        .arg(dir.path().join("input.txt"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));

    // Every record, in its key's file, in input order (the oracle: the input's lines).
    let mut expected: HashMap<String, String> = HashMap::new();
    for line in input.lines().skip(1) {
        let key = line.split(',').next().unwrap();
        let name = if hive {
            format!("key={key}/data.csv")
        } else {
            format!("{key}.csv")
        };
        expected
            .entry(name)
            .or_insert_with(|| "key,n\n".into())
            .push_str(&format!("{line}\n"));
    }
    let written = if hive {
        let mut all = std::collections::BTreeMap::new();
        for entry in fs::read_dir(&out).unwrap() {
            let dir = entry.unwrap().file_name().into_string().unwrap();
            for (name, content) in files(&out.join(&dir)) {
                all.insert(format!("{dir}/{name}"), content);
            }
        }
        all
    } else {
        files(&out)
    };
    assert_eq!(written.len(), expected.len());
    for (name, content) in &expected {
        assert_eq!(
            written.get(name).map(|c| &c[..]),
            Some(content.as_bytes()),
            "{name}"
        );
    }

    let (peak, opens) = peak_outputs(&fs::read_to_string(&log).unwrap());
    // The census moved: every file was opened at least once.
    assert!(
        opens >= expected.len(),
        "{mode:?}: {opens} opens seen for {} files",
        expected.len()
    );
    assert!(
        peak >= max_open / 2,
        "{mode:?}: peak {peak}: the log shows too few opens to mean anything"
    );
    assert!(
        peak <= max_open,
        "{mode:?}: {peak} output descriptors open at once, --max-open {max_open}"
    );
}

/// Every descriptor the run opens is closed before it exits, by `handoff audit --leaks` (the
/// preload library's record of every open and close): small inputs (two keys; one split
/// between two threads, one key of two columns) three times each, and one of 1,000 keys (what
/// the run's last threads free is freed by threads of their own, which the process may exit
/// before; the input is read by a thread of its own too).
///
/// Failed before OUTDIR's descriptor was kept out of the "outputs drop" thread: it was that
/// thread's to close when it let go of the outputs last, and the process had often exited
/// first (every run here: "leak: fd 3 ... Outdir::prepare"); and (once in 12 runs) before the
/// reading thread let go of the input before telling the end ("leak: fd 6 ... Feed::open").
#[test]
fn every_descriptor_is_closed_before_the_run_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut many = String::from("k,v\n");
    for i in 0..2_000 {
        many.push_str(&format!("k{},{i}\n", i % 1_000));
    }
    fs::write(dir.path().join("many.csv"), many).unwrap();
    fs::write(
        dir.path().join("small.csv"),
        "k,v\na,1\nb,\"2\n\"\na,3\nb,4\n",
    )
    .unwrap();
    let mut failures = Vec::new();
    for (case, (input, key, split)) in [
        ("small.csv", "k", false),
        ("small.csv", "k", true),
        ("small.csv", "k,v", true),
        ("many.csv", "k", false),
    ]
    .into_iter()
    .enumerate()
    {
        // (A run of many keys is slow under the audit: one.)
        let rounds = if input == "many.csv" { 1 } else { 3 };
        for round in 0..rounds {
            let out = dir.path().join(format!("out-{case}-{round}"));
            let json = dir.path().join("audit.json");
            let output = Command::new(env!("CARGO_BIN_EXE_handoff"))
                .current_dir(dir.path())
                .env(
                    "HANDOFF_PARTITION_SPLIT_MIN",
                    if split { "1" } else { "999999999999" },
                )
                .args(["audit", "--leaks", "--json"])
                .arg(&json)
                .arg("--")
                .arg(env!("CARGO_BIN_EXE_handoff"))
                .args(["partition", "-q", key])
                .arg(&out)
                .arg(input)
                .output()
                .unwrap();
            assert!(output.status.success(), "{}", stderr(&output));
            let report: serde_json::Value =
                serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
            let findings = report["findings"].as_array().unwrap();
            if !findings.is_empty() {
                failures.push(format!(
                    "{input} by {key}, split {split}, round {round}: {}",
                    stderr(&output)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
