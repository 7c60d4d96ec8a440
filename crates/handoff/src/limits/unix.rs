//! Unix: `RLIMIT_NOFILE`.

use std::io;

use super::{Limit, Limits};

#[allow(clippy::unnecessary_cast)] // `rlim_t` is not `u64` on every Unix
fn to_u64(value: libc::rlim_t) -> u64 {
    if value == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        value as u64
    }
}

fn get() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

pub(super) fn current() -> io::Result<Limits> {
    let limit = get()?;
    let descriptors = Limit {
        soft: to_u64(limit.rlim_cur),
        hard: to_u64(limit.rlim_max),
    };
    Ok(Limits {
        descriptors,
        streams: descriptors,
    })
}

/// The highest soft limit the kernel accepts when the hard limit is unlimited.
fn ceiling_for_unlimited() -> libc::rlim_t {
    #[cfg(target_os = "linux")]
    {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    }
    #[cfg(target_vendor = "apple")]
    {
        libc::OPEN_MAX as libc::rlim_t
    }
    #[cfg(not(any(target_os = "linux", target_vendor = "apple")))]
    {
        libc::RLIM_INFINITY
    }
}

pub(super) fn raise() -> io::Result<()> {
    let mut limit = get()?;
    let target = if limit.rlim_max == libc::RLIM_INFINITY {
        ceiling_for_unlimited()
    } else {
        limit.rlim_max
    };
    #[cfg(target_vendor = "apple")]
    let target = target.min(libc::OPEN_MAX as libc::rlim_t);
    if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur >= target {
        return Ok(());
    }
    limit.rlim_cur = target;
    // SAFETY: `limit` is a valid `rlimit`; only the soft value changed, within the hard one.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(super) fn is_out_of_descriptors(code: i32) -> bool {
    code == libc::EMFILE || code == libc::ENFILE
}
