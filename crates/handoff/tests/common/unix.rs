use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

pub type RawOs = RawFd;

pub fn raw_of(handle: BorrowedFd<'_>) -> RawFd {
    handle.as_raw_fd()
}

/// Whether `fd` is an open descriptor, by `fcntl(F_GETFD)`.
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; a closed fd gives EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// On Unix the C-runtime slot is the fd.
pub fn crt_slot_is_open(fd: c_int) -> bool {
    is_open(fd)
}

/// The open descriptors, from /proc/self/fd, less the listing's own.
pub fn open_handles() -> Vec<usize> {
    let listing = std::fs::read_dir("/proc/self/fd").unwrap();
    let mut fds: Vec<usize> = listing
        .map(|entry| entry.unwrap().path())
        // The listing's own fd names the directory being listed.
        .filter(|path| {
            !std::fs::read_link(path)
                .is_ok_and(|target| target.starts_with("/proc") && target.ends_with("fd"))
        })
        .map(|path| path.file_name().unwrap().to_str().unwrap().parse().unwrap())
        .collect();
    fds.sort_unstable();
    fds
}

/// How many entries /proc/self/fd has: the open descriptors and the listing's own fd, which is
/// there every time, so it cancels out of a comparison (and this costs no `readlink`).
pub fn open_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The double-close bug itself: treats a borrowed handle as owned.
///
/// # Safety
/// Only for tests that show what goes wrong; the caller must not let both owners close it.
pub unsafe fn steal(fd: RawFd) -> OwnedFd {
    // SAFETY: deliberately wrong ownership, as documented; the fd is open.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A descriptor number that is certainly not open.
pub fn not_open() -> RawFd {
    (100..).find(|&fd| !is_open(fd)).unwrap()
}

/// The error code for "not an open handle".
pub const NOT_OPEN: i32 = libc::EBADF;

/// `write` (Unix) / `_write` (Windows) on a C-runtime descriptor.
///
/// # Safety
/// `fd` must be an open descriptor that the caller owns or borrows for the call.
pub unsafe fn crt_write(fd: c_int, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: `bytes` is valid for its length; the caller lends an open fd (see above).
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `close` (Unix) / `_close` (Windows).
///
/// # Safety
/// `fd` must be an open descriptor that the caller owns and gives up here.
pub unsafe fn crt_close(fd: c_int) -> io::Result<()> {
    // SAFETY: the caller owns `fd` and closes it once (see above).
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether this process is the child that `run_in_child` started.
pub fn in_child() -> bool {
    std::env::var_os("HANDOFF_TEST_CHILD").is_some()
}

/// Runs test `name` of this test binary again, alone, in a child process whose
/// `RLIMIT_NOFILE` is set to (`soft`, `hard`) between fork and exec, and asserts that it ran and
/// passed.
pub fn run_in_child(name: &str, soft: u64, hard: u64) {
    run_child(name, Some((soft, hard)), false);
}

/// Runs test `name` in a child process that obeys file permissions even as root: the
/// capabilities that bypass them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) are dropped from its
/// bounding set before exec. Without root this changes nothing, and nothing is needed.
pub fn run_in_child_obeying_permissions(name: &str) {
    run_child(name, None, true);
}

fn run_child(name: &str, limit: Option<(u64, u64)>, drop_dac: bool) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env("HANDOFF_TEST_CHILD", "1");
    // SAFETY: only async-signal-safe calls (setrlimit, prctl) run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if let Some((soft, hard)) = limit {
                let limit = libc::rlimit {
                    rlim_cur: soft as libc::rlim_t,
                    rlim_max: hard as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if drop_dac && libc::geteuid() == 0 {
                for capability in [1, 2] {
                    // CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
                    if libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
            }
            Ok(())
        });
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "child `{name}` ({limit:?}, drop_dac {drop_dac}) failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

/// After `CrtFd::into_os` on Unix the fd *is* the handle: no copy was made.
#[track_caller]
pub fn assert_slot_released_by_into_os(slot: c_int, handle: BorrowedFd<'_>) {
    assert_eq!(
        handle.as_raw_fd(),
        slot,
        "into_os returned the descriptor itself"
    );
}
