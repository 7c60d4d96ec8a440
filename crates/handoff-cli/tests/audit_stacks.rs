//! The audit's cached stack unwinder (crates/handoff-audit/csrc/unwind.c) against libgcc's,
//! the unwinder behind glibc's `backtrace()`: `handoff audit --check-stacks` unwinds every
//! stack both ways and prints each difference on stderr, and at each process's exit how many
//! stacks it compared and how many it left to libgcc alone (frames the cache cannot express).
#![cfg(target_os = "linux")]

mod audit_support;

use std::process::Command;

use audit_support::{audited, compile_at, native};

/// Per process: (stacks compared, stacks unwound by libgcc alone); panics on any difference.
fn tallies(stderr: &[u8]) -> Vec<(u64, u64)> {
    let text = String::from_utf8_lossy(stderr);
    assert!(!text.contains("stacks differ"), "{text}");
    let counts: Vec<(u64, u64, u64)> = text
        .lines()
        .filter_map(|line| {
            // handoff-audit: pid P: N stacks unwound by the cache, D of them unlike libgcc's; L by libgcc alone
            let rest = line.strip_prefix("handoff-audit: pid ")?;
            let words: Vec<&str> = rest.split_whitespace().collect();
            let number = |i: usize| words.get(i)?.trim_end_matches(';').parse::<u64>().ok();
            Some((number(1)?, number(7)?, number(12)?))
        })
        .collect();
    assert!(!counts.is_empty(), "no tallies in: {text}");
    assert!(counts.iter().all(|c| c.1 == 0), "{text}");
    counts.iter().map(|c| (c.0, c.2)).collect()
}

/// Deep recursion, a variable-length array, several epilogues, a qsort callback, threads and
/// a signal handler, built without (-O2) and with (-O0) frame pointers: every stack the cache
/// unwinds is the one libgcc gives, and the signal handler's go to libgcc.
#[test]
fn cached_stacks_are_libgccs_in_every_frame_shape() {
    for level in ["-O0", "-O2"] {
        let binary = compile_at("stacks", level);
        let dir = tempfile::tempdir().unwrap();
        let plain = native(&binary, &[], dir.path());
        let audit = audited(&["--check-stacks"], &binary, &[], dir.path());
        assert!(audit.findings.is_empty(), "{level}: {}", audit.report);
        assert_eq!(audit.output.stdout, plain.stdout, "{level}");
        assert_eq!(audit.output.status.code(), Some(0), "{level}");
        let counts = tallies(&audit.output.stderr);
        assert_eq!(counts.len(), 1, "{level}: one process: {counts:?}");
        let (compared, alone) = counts[0];
        // 24 recursions + 6 arrays + 3 exits + >= 4 qsort calls + 4 threads x 100: x 2 (open, close)
        assert!(
            compared >= 2 * (24 + 6 + 3 + 4 + 400),
            "{level}: {counts:?}"
        );
        assert_eq!(
            alone, 2,
            "{level}: the signal handler's open and close: {counts:?}"
        );
    }
}

/// Real programs (bash, Python, git, tar: stripped binaries, big shared libraries, forks and
/// execs): no difference anywhere, and the cache did the unwinding.
#[test]
fn cached_stacks_are_libgccs_in_real_programs() {
    let dir = tempfile::tempdir().unwrap();
    let script = "seq 1 300 | sort -r | head -2; \
                  python3 -c 'import subprocess; subprocess.run([\"true\"], check=True)'; \
                  git init -q repo && cd repo && echo x > f && git add f && \
                  git -c user.name=a -c user.email=b@c commit -qm m && tar czf ../t.tgz . && echo ok";
    let audit = audited(&["--check-stacks"], "bash", &["-c", script], dir.path());
    assert_eq!(audit.output.status.code(), Some(0), "{:?}", audit.output);
    assert!(String::from_utf8_lossy(&audit.output.stdout).ends_with("ok\n"));
    let counts = tallies(&audit.output.stderr);
    assert!(
        counts.len() >= 5,
        "bash, python3, git and tar processes: {counts:?}"
    );
    let compared: u64 = counts.iter().map(|c| c.0).sum();
    let alone: u64 = counts.iter().map(|c| c.1).sum();
    assert!(compared >= 200, "{counts:?}");
    assert!(
        alone * 20 <= compared,
        "the cache unwinds nearly all: {counts:?}"
    );
}

/// A plugin unloaded and another loaded at the same address, with the same code offsets but a
/// different frame: the rules cached for the first must not unwind the second (the audit
/// empties its cache at each dlclose).
#[test]
fn a_plugin_loaded_where_another_was_gets_its_own_rules() {
    let sources =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/audit_corpus/plugins");
    let dir = tempfile::tempdir().unwrap();
    let cc = || Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()));
    for (name, frame) in [("small.so", 400), ("large.so", 4000)] {
        let status = cc()
            .args([
                "-O2",
                "-g",
                "-shared",
                "-fPIC",
                &format!("-DFRAME={frame}"),
                "-o",
            ])
            .arg(dir.path().join(name))
            .arg(sources.join("plugin.c"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let host = dir.path().join("host");
    let status = cc()
        .args(["-O2", "-g", "-o"])
        .arg(&host)
        .arg(sources.join("host.c"))
        .arg("-ldl")
        .status()
        .unwrap();
    assert!(status.success());
    let plugins = ["./small.so", "./large.so", "./small.so", "./large.so"];
    let audit = audited(&["--check-stacks"], &host, &plugins, dir.path());
    assert_eq!(audit.output.stdout, b"0\n0\n0\n0\n", "{:?}", audit.output);
    assert!(audit.findings.is_empty(), "{}", audit.report);
    let counts = tallies(&audit.output.stderr);
    assert_eq!(
        counts,
        [(8, 0)],
        "one process, 4 opens and 4 closes, all by the cache"
    );
}

/// A JIT drops code and writes other code, with another frame, at the same address
/// (`__deregister_frame`, then `__register_frame` of the new CFI): the rules cached for the
/// first code must not unwind the second. With them, the stack is cut short on the main
/// thread and, on a thread with nothing readable above its stack, the stale 2 MiB frame sends
/// the unwinder past the stack's top (SIGSEGV in the audited program; libgcc unwinds it).
#[test]
fn code_a_jit_replaces_gets_its_own_rules() {
    let binary = compile_at("jit_frames", "-O0");
    let dir = tempfile::tempdir().unwrap();
    for args in [&[][..], &["thread"]] {
        let plain = native(&binary, args, dir.path());
        assert_eq!(plain.stdout, b"done\n", "{args:?}: {plain:?}");
        let audit = audited(&["--check-stacks"], &binary, args, dir.path());
        assert_eq!(
            audit.output.status.code(),
            Some(0),
            "{args:?}: {:?}",
            audit.output
        );
        assert_eq!(audit.output.stdout, b"done\n", "{args:?}");
        assert!(audit.findings.is_empty(), "{}", audit.report);
        let counts = tallies(&audit.output.stderr);
        assert_eq!(counts, [(4, 0)], "{args:?}: two opens and two closes");
        let audit = audited(&[], &binary, args, dir.path());
        assert_eq!(
            audit.output.status.code(),
            Some(0),
            "{args:?}: {:?}",
            audit.output
        );
    }
}

/// A frame whose CFI saves the caller's stack pointer (a stack switch): libgcc takes the
/// caller's rsp from where it was saved; an unwinder that takes it to be the CFA looks for the
/// caller's frame above the new stack (SIGSEGV: nothing is mapped there).
#[test]
fn a_frame_that_saves_the_stack_pointer_is_followed_as_libgcc_does() {
    // -O2: the caller's CFA is rsp-based (at -O0 its frame pointer hides the difference).
    let binary = compile_at("stack_switch", "-O2");
    let dir = tempfile::tempdir().unwrap();
    let plain = native(&binary, &[], dir.path());
    assert_eq!(plain.stdout, b"done\n", "{plain:?}");
    for options in [&[][..], &["--check-stacks"]] {
        let audit = audited(options, &binary, &[], dir.path());
        assert_eq!(
            audit.output.status.code(),
            Some(0),
            "{options:?}: {:?}",
            audit.output
        );
        assert_eq!(audit.output.stdout, b"done\n", "{options:?}");
        assert!(audit.findings.is_empty(), "{}", audit.report);
        if !options.is_empty() {
            tallies(&audit.output.stderr);
        }
    }
}
