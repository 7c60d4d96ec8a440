//! Owner tags for `handoff audit`: when its preload library is loaded, a `CrtFd` tells it
//! which descriptor it owns, so that a close behind its back is reported as "owned by
//! handoff::crt::CrtFd", and gives the number up before closing it (or handing it away).
//!
//! The library's two functions are looked up once with `dlsym(RTLD_DEFAULT)`; without the
//! library both calls are a load and a branch.

use std::ffi::{c_char, c_int, CStr};
use std::sync::OnceLock;

type OwnFn = unsafe extern "C" fn(c_int, *const c_char);
type DisownFn = unsafe extern "C" fn(c_int);

struct Hooks {
    own: Option<OwnFn>,
    disown: Option<DisownFn>,
}

fn hooks() -> &'static Hooks {
    static HOOKS: OnceLock<Hooks> = OnceLock::new();
    HOOKS.get_or_init(|| {
        // SAFETY: dlsym with a NUL-terminated name; a non-null result for these names is the
        // preload library's function of exactly these signatures (csrc/preload.c of
        // handoff-audit), which lives as long as the process.
        unsafe {
            let own = libc::dlsym(libc::RTLD_DEFAULT, c"handoff_audit_own".as_ptr());
            let disown = libc::dlsym(libc::RTLD_DEFAULT, c"handoff_audit_disown".as_ptr());
            Hooks {
                own: (!own.is_null()).then(|| std::mem::transmute::<*mut libc::c_void, OwnFn>(own)),
                disown: (!disown.is_null())
                    .then(|| std::mem::transmute::<*mut libc::c_void, DisownFn>(disown)),
            }
        }
    })
}

/// `fd` is owned by `owner` from now on.
pub(super) fn own(fd: c_int, owner: &'static CStr) {
    if let Some(own) = hooks().own {
        // SAFETY: the library's function takes any number and keeps the 'static tag.
        unsafe { own(fd, owner.as_ptr()) }
    }
}

/// The owner gives `fd` up (it closes it next, or hands it to a C call that will).
pub(super) fn disown(fd: c_int) {
    if let Some(disown) = hooks().disown {
        // SAFETY: the library's function takes any number.
        unsafe { disown(fd) }
    }
}
