//! A child whose file size is limited (`RLIMIT_FSIZE`): a write past the limit fails with
//! `EFBIG`, as on a full disk. Shared by the partition tests of failed writes.

#![cfg(unix)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Limits the child's file size to `fsize` bytes.
pub fn file_size_limited(command: &mut Command, fsize: u64) -> &mut Command {
    // SAFETY: only async-signal-safe calls (setrlimit, signal) run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: fsize as libc::rlim_t,
                rlim_max: fsize as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Ignored dispositions survive exec: the write fails with EFBIG instead.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        })
    }
}
