//! `handoff bench audit`: what the audit costs a program that opens, reads and closes a file in
//! a loop, measured inside the program (its startup aside) as the CPU time the process used
//! (user + system: on a shared machine, waiting for a core is not counted), natively and under
//! the audit in the same run; with `--peers`, also under `strace -f -c` (whose cost is mostly
//! in the tracer, a separate process: compare wall-clock time for it) and
//! `valgrind --track-fds=yes`.

use std::path::Path;
use std::process::Command;

/// The loop, compiled with the system C compiler (`cc -O2`) at run time.
const LOOP_C: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[2]);
    char buf[64];
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    for (long i = 0; i < n; i++) {
        int fd = open(argv[1], O_RDONLY);
        if (fd < 0 || read(fd, buf, sizeof buf) < 0 || close(fd) != 0) {
            perror("open/read/close");
            return 1;
        }
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    printf("%.6f\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}
"#;

#[derive(clap::Args)]
pub struct BenchAudit {
    /// open/read/close rounds in the loop.
    #[arg(long, default_value_t = 200_000)]
    iterations: u64,
    /// Times each variant runs; the fastest run of each is reported.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Also run the loop under `strace -f -c` and `valgrind --track-fds=yes` (slow).
    #[arg(long)]
    peers: bool,
}

/// Runs the comparison and prints one line per variant.
pub fn run(spec: &BenchAudit) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let source = dir.path().join("loop.c");
    let binary = dir.path().join("loop");
    let input = dir.path().join("input.txt");
    std::fs::write(&source, LOOP_C).map_err(|e| e.to_string())?;
    std::fs::write(&input, b"a small file read at each round\n").map_err(|e| e.to_string())?;
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let status = Command::new(&cc)
        .args(["-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .map_err(|e| format!("cannot run the C compiler ({}): {e}", cc.to_string_lossy()))?;
    if !status.success() {
        return Err(format!("the C compiler failed on {}", source.display()));
    }
    let handoff = std::env::current_exe().map_err(|e| e.to_string())?;
    let iterations = spec.iterations.to_string();
    let loop_args = |command: &mut Command| {
        command.arg(&binary).arg(&input).arg(&iterations);
    };

    let mut variants: Vec<(String, Command)> = Vec::new();
    let mut native = Command::new(&binary);
    native.arg(&input).arg(&iterations);
    variants.push(("native".into(), native));
    for options in [
        &["--quarantine", "64"][..],
        &["--quarantine", "0"],
        &["--fast-stacks"],
        &["--fast-stacks", "--quarantine", "0"],
    ] {
        let mut audit = Command::new(&handoff);
        audit.arg("audit").args(options).arg("--");
        loop_args(&mut audit);
        variants.push((format!("handoff audit {}", options.join(" ")), audit));
    }
    if spec.peers {
        let mut strace = Command::new("strace");
        strace.args(["-f", "-c", "-o", "/dev/null"]);
        loop_args(&mut strace);
        variants.push(("strace -f -c".into(), strace));
        let mut valgrind = Command::new("valgrind");
        valgrind.args(["-q", "--track-fds=yes", "--log-file=/dev/null"]);
        loop_args(&mut valgrind);
        variants.push(("valgrind --track-fds=yes".into(), valgrind));
    }

    println!(
        "open/read/close x {} (CPU seconds of the loop, best of {}):",
        spec.iterations, spec.runs
    );
    let mut baseline = None;
    for (name, mut command) in variants {
        let best = (0..spec.runs.max(1))
            .map(|_| time(&mut command, &name, dir.path()))
            .collect::<Result<Vec<f64>, String>>()?
            .into_iter()
            .fold(f64::INFINITY, f64::min);
        let base = *baseline.get_or_insert(best);
        println!("  {name:<48} {best:>9.3} s  {:>6.2}x", best / base);
    }
    Ok(())
}

fn time(command: &mut Command, name: &str, cwd: &Path) -> Result<f64, String> {
    let output = command
        .current_dir(cwd)
        .output()
        .map_err(|e| format!("{name}: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim().parse().map_err(|_| {
        format!(
            "{name}: no time printed ({:?}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}
