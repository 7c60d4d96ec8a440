//! Windows: the C runtime's descriptor table and its `FILE*` stream limit.

use std::ffi::c_int;
use std::io;

use windows_sys::Win32::Foundation::ERROR_TOO_MANY_OPEN_FILES;

use super::{Limit, Limits};

extern "C" {
    fn _getmaxstdio() -> c_int;
    fn _setmaxstdio(new_maximum: c_int) -> c_int;
}

/// Slots in the loaded C runtime's descriptor table: the UCRT's `_NHANDLE_` (8192) for the
/// targets that link it, msvcrt.dll's 2048 for `*-windows-gnu` (MinGW-w64's default runtime).
const TABLE_SIZE: c_int = if cfg!(any(target_env = "msvc", target_abi = "llvm")) {
    8192
} else {
    2048
};

pub(super) fn current() -> io::Result<Limits> {
    // SAFETY: `_getmaxstdio` only reads the runtime's stream limit.
    let streams = unsafe { _getmaxstdio() };
    let table = TABLE_SIZE as u64;
    Ok(Limits {
        descriptors: Limit {
            soft: table,
            hard: table,
        },
        streams: Limit {
            soft: streams as u64,
            hard: table,
        },
    })
}

pub(super) fn raise() -> io::Result<()> {
    // SAFETY: `TABLE_SIZE` is within [_IOB_ENTRIES, _NHANDLE_] of the loaded runtime, so the
    // call cannot reach the invalid-parameter handler.
    if unsafe { _setmaxstdio(TABLE_SIZE) } == -1 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("the C runtime refused _setmaxstdio({TABLE_SIZE})"),
        ));
    }
    Ok(())
}

pub(super) fn is_out_of_descriptors(code: i32) -> bool {
    code == ERROR_TOO_MANY_OPEN_FILES as i32
}
