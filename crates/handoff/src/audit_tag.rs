//! Owner tags for `handoff audit`: when its preload library is loaded, handoff's owning types
//! tell it which descriptor they own, so that a close behind their back is reported as "owned
//! by handoff::crt::CrtFd" (or `CStream`, or the pager), and give the number up before closing
//! it (or handing it away).
//!
//! The library's functions are looked up once with `dlsym(RTLD_DEFAULT)`; without the library
//! each call is a load and a branch.

use std::ffi::{c_char, c_int, CStr};
use std::sync::OnceLock;

type OwnFn = unsafe extern "C" fn(c_int, *const c_char);
type DisownFn = unsafe extern "C" fn(c_int);
type OwnStreamFn = unsafe extern "C" fn(c_int, *mut libc::FILE, *const c_char);

struct Hooks {
    own: Option<OwnFn>,
    disown: Option<DisownFn>,
    own_stream: Option<OwnStreamFn>,
}

fn hooks() -> &'static Hooks {
    static HOOKS: OnceLock<Hooks> = OnceLock::new();
    HOOKS.get_or_init(|| {
        let find = |name: &CStr| {
            // SAFETY: dlsym with a NUL-terminated name.
            let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            (!found.is_null()).then_some(found)
        };
        // SAFETY (the three transmutes): a non-null result for these names is the preload
        // library's function of exactly these signatures (csrc/preload.c of handoff-audit),
        // which lives as long as the process.
        unsafe {
            Hooks {
                own: find(c"handoff_audit_own")
                    .map(|f| std::mem::transmute::<*mut libc::c_void, OwnFn>(f)),
                disown: find(c"handoff_audit_disown")
                    .map(|f| std::mem::transmute::<*mut libc::c_void, DisownFn>(f)),
                own_stream: find(c"handoff_audit_own_stream")
                    .map(|f| std::mem::transmute::<*mut libc::c_void, OwnStreamFn>(f)),
            }
        }
    })
}

/// `fd` is owned by `owner` from now on.
pub(crate) fn own(fd: c_int, owner: &'static CStr) {
    if let Some(own) = hooks().own {
        // SAFETY: the library's function takes any number and keeps the 'static tag.
        unsafe { own(fd, owner.as_ptr()) }
    }
}

/// The owner gives `fd` up (it closes it next, or hands it to a C call that will).
pub(crate) fn disown(fd: c_int) {
    if let Some(disown) = hooks().disown {
        // SAFETY: the library's function takes any number.
        unsafe { disown(fd) }
    }
}

/// The stream `file` owns `fd`, and `holder` (or, with `None`, C code) holds the stream.
pub(crate) fn own_stream(fd: c_int, file: *mut libc::FILE, holder: Option<&'static CStr>) {
    if let Some(own_stream) = hooks().own_stream {
        // SAFETY: the library's function only records the pointer (never dereferences it)
        // and keeps the 'static tag.
        unsafe { own_stream(fd, file, holder.map_or(std::ptr::null(), CStr::as_ptr)) }
    }
}
