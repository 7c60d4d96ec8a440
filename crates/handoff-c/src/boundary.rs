//! The FFI boundary: every exported function runs its body through [`call`], which turns an
//! error into `errno` and the function's failure value, and a panic into the same (a Rust
//! panic must never unwind into C, which would abort the process).

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::errno::Errno;

/// Runs `body`; on an error sets `errno` and returns `failed`; on a panic sets `errno` to
/// `EIO` and returns `failed` (the panic message went to stderr through the panic hook).
pub(crate) fn call<T>(failed: T, body: impl FnOnce() -> Result<T, Errno>) -> T {
    // AssertUnwindSafe: after a panic the caller gets an error; the pager's own state stays
    // consistent (its locks recover from poisoning, its guards unpin on unwind).
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(errno)) => {
            errno.set();
            failed
        }
        Err(_panic) => {
            Errno(libc::EIO).set();
            failed
        }
    }
}

/// `EINVAL`: a NULL pointer or an argument out of range.
pub(crate) fn invalid<T>() -> Result<T, Errno> {
    Err(Errno(libc::EINVAL))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }

    #[test]
    fn a_panic_is_an_error_not_an_abort() {
        let result = call(-1, || -> Result<i32, Errno> {
            panic!("a bug inside the library")
        });
        assert_eq!(result, -1);
        #[cfg(unix)]
        assert_eq!(errno(), libc::EIO);
        let _ = errno;
    }

    #[test]
    fn an_error_sets_errno() {
        assert_eq!(call(-1, invalid::<i32>), -1);
        #[cfg(unix)]
        assert_eq!(errno(), libc::EINVAL);
        assert_eq!(call(-1, || Ok(7)), 7);
    }
}
