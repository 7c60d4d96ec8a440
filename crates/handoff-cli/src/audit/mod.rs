//! `handoff audit -- CMD`: run a program with the preload library of `handoff-audit`, then
//! symbolize, merge and print what every process of it found.
//!
//! The library's bytes are embedded in this binary (see `handoff_audit::LIBRARY`) and written
//! once to `$XDG_CACHE_HOME/handoff/` (or `~/.cache/handoff/`, or the temporary directory),
//! under a name that is the hash of its bytes; each process writes its findings to
//! `PID.audit` in a fresh temporary directory, read back when the program has exited.

pub mod bench;
mod report;
mod symbolize;

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use handoff_audit::{DIR_VAR, LEAKS_VAR, QUARANTINE_VAR, STACKS_VAR};

use report::Finding;
use symbolize::Symbolizer;

#[derive(clap::Args)]
pub struct AuditArgs {
    /// Also write every finding, of every process, as one JSON object to FILE (written even
    /// when nothing is found).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the readable report to FILE instead of standard error.
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Exit with N when anything was found (otherwise: the program's own status).
    #[arg(long, value_name = "N")]
    error_exitcode: Option<u8>,
    /// Keep each closed number (>= 3) out of circulation for the next K closes, so that a late
    /// second close cannot hit a file opened since; 0 turns it off (at most 4096).
    #[arg(long, value_name = "K", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(0..=4096))]
    quarantine: u16,
    /// Also report the descriptors each process opened and still held at exit.
    #[arg(long)]
    leaks: bool,
    /// Stacks by walking frame pointers instead of unwinding with DWARF call-frame
    /// information (whose rules the audit caches per return address): a little cheaper per
    /// open and close, but past the caller of open/close only code built with frame pointers
    /// (-O0, -fno-omit-frame-pointer) has its frames shown.
    #[arg(long)]
    fast_stacks: bool,
    /// Unwind every stack twice, with the cached unwinder and with libgcc's, and say on stderr
    /// where they differ and how many were compared (for testing the unwinder).
    #[arg(long, hide = true, conflicts_with = "fast_stacks")]
    check_stacks: bool,
    /// The program and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<OsString>,
}

/// Runs the audit; `Err` is a message for the CLI to print (exit 1).
pub fn run(args: AuditArgs) -> Result<ExitCode, String> {
    // The report files are created before the program runs: one that cannot be written is
    // refused now, not after a long run whose report and exit status it would lose.
    let log_file = args.log_file.as_deref().map(create_report).transpose()?;
    let json_file = args.json.as_deref().map(create_report).transpose()?;
    let library = install_library()?;
    let reports = tempfile::Builder::new()
        .prefix("handoff-audit-")
        .tempdir()
        .map_err(|e| format!("cannot create a directory for the reports: {e}"))?;

    let mut preload = OsString::from(&library);
    if let Some(existing) = std::env::var_os("LD_PRELOAD").filter(|p| !p.is_empty()) {
        preload.push(":");
        preload.push(existing);
    }
    let mut command = Command::new(&args.command[0]);
    command
        .args(&args.command[1..])
        .env("LD_PRELOAD", preload)
        .env(DIR_VAR, reports.path())
        .env(QUARANTINE_VAR, args.quarantine.to_string());
    if args.leaks {
        command.env(LEAKS_VAR, "1");
    } else {
        command.env_remove(LEAKS_VAR);
    }
    if args.fast_stacks {
        command.env(STACKS_VAR, "fast");
    } else if args.check_stacks {
        command.env(STACKS_VAR, "check");
    } else {
        command.env_remove(STACKS_VAR);
    }

    // Killed by SIGKILL (which no handler sees), `handoff audit` takes the program with it, as
    // one process under valgrind would end: the kernel sends it SIGKILL when this thread is
    // gone (`PR_SET_PDEATHSIG`). Otherwise it ran on, unaudited, its findings going to a
    // directory no one would read. (That directory is left behind then: nothing is left to
    // remove it.)
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec, and makes only async-signal-safe calls
    // (prctl, getppid, _exit), on no memory shared with the parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                // The parent was gone before the prctl: its signal would never come.
                libc::_exit(128 + libc::SIGKILL);
            }
            Ok(())
        });
    }

    // The terminal's ^C goes to the program; we stay to report what it found.
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGQUIT] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&interrupted));
    }
    let program = Path::new(&args.command[0]).display().to_string();
    // SIGTERM and SIGHUP are caught before the program starts: one that comes as soon as it
    // runs (it may already have printed its pid) is held, then passed on to it, where the
    // default action would end `handoff audit` alone, the program left running unreported.
    let passed_on = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| format!("cannot catch SIGTERM and SIGHUP: {e}"))?;
    let status = match command.spawn() {
        Ok(child) => wait_passing_on_signals(child, passed_on)
            .map_err(|e| format!("cannot wait for {program}: {e}"))?,
        Err(error) => {
            eprintln!("handoff audit: cannot run {program}: {error}");
            let code = if error.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return Ok(ExitCode::from(code));
        }
    };

    let findings = collect(reports.path())?;
    let text = report::text(&findings);
    match (log_file, &args.log_file) {
        (Some(mut file), Some(path)) => file
            .write_all(text.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?,
        _ => {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }
    if let (Some(mut file), Some(path)) = (json_file, &args.json) {
        let mut body = serde_json::to_string_pretty(&report::json(&findings))
            .map_err(|e| format!("cannot format the JSON report: {e}"))?;
        body.push('\n');
        file.write_all(body.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }

    if let (false, Some(code)) = (findings.is_empty(), args.error_exitcode) {
        return Ok(ExitCode::from(code));
    }
    Ok(ExitCode::from(exit_code(status)))
}

/// Creates (or empties) a report file (`--log-file`, `--json`), close-on-exec as every `File`,
/// so the program never sees it.
fn create_report(path: &Path) -> Result<fs::File, String> {
    fs::File::create(path)
        .map_err(|e| format!("cannot write the report to {}: {e}", path.display()))
}

/// Waits for the program. A SIGTERM or SIGHUP sent to `handoff audit` alone (`kill`,
/// `timeout`, a closed terminal) is passed on to the program, and the report is still written
/// once it ends: dying at once would lose the findings and leave the program running.
/// `signals` (SIGTERM and SIGHUP, caught since before the program started) hold any that came
/// already. The signal goes through a pidfd where the kernel has them, so a signal arriving
/// after the program was reaped cannot reach another process given its number.
fn wait_passing_on_signals(
    mut child: std::process::Child,
    mut signals: signal_hook::iterator::Signals,
) -> std::io::Result<std::process::ExitStatus> {
    let pid = child.id() as libc::pid_t;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; the child
    // is not reaped yet, so `pid` is still its number.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    // SAFETY: a descriptor pidfd_open just returned is ours alone.
    let pidfd = (pidfd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(pidfd) });
    let handle = signals.handle();
    let passing = std::thread::scope(|scope| {
        scope.spawn(|| {
            for signal in signals.forever() {
                match &pidfd {
                    // SAFETY: the pidfd stays open for the scope; a null siginfo sends the
                    // signal as kill(2) would.
                    Some(fd) => unsafe {
                        libc::syscall(
                            libc::SYS_pidfd_send_signal,
                            fd.as_raw_fd(),
                            signal,
                            std::ptr::null::<libc::siginfo_t>(),
                            0,
                        );
                    },
                    // SAFETY: kill takes any pid and signal (no pidfd: an old kernel).
                    None => unsafe {
                        libc::kill(pid, signal);
                    },
                }
            }
        });
        let status = child.wait();
        handle.close();
        status
    });
    passing
}

/// The program's status as a shell reports it: its code, or 128 + the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => 128u8.wrapping_add(signal as u8),
        (None, None) => 1,
    }
}

/// Writes the embedded library where the dynamic loader can map it: the user's cache, else a
/// private directory of this user in the temporary directory.
fn install_library() -> Result<PathBuf, String> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    let mut tried = Vec::new();
    for dir in cache
        .map(|c| c.join("handoff"))
        .into_iter()
        // SAFETY: geteuid has no preconditions and cannot fail.
        .chain([std::env::temp_dir().join(format!("handoff-audit-{}", unsafe { libc::geteuid() }))])
    {
        match handoff_audit::install(&dir) {
            Ok(path) => return Ok(path),
            Err(error) => tried.push(error.to_string()),
        }
    }
    Err(format!(
        "cannot write the preload library: {}",
        tried.join("; ")
    ))
}

/// Every process's findings, in pid order, each process's in the order it found them.
fn collect(dir: &Path) -> Result<Vec<Finding>, String> {
    let mut files: Vec<(u32, PathBuf)> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path();
            let pid = path.file_stem()?.to_str()?.parse().ok()?;
            (path.extension()? == "audit").then_some((pid, path))
        })
        .collect();
    files.sort();
    let mut symbolizer = Symbolizer::default();
    let mut findings = Vec::new();
    for (_, path) in files {
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for raw in handoff_audit::record::parse(&text) {
            findings.push(Finding::resolve(raw, &mut symbolizer));
        }
    }
    Ok(findings)
}
