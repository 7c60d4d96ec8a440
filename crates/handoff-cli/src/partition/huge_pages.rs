//! Transparent huge pages for the buffers, on Linux with glibc.
//!
//! A run keeps up to `--memory` of records in buffers, and every 4 KiB page of them costs a
//! page fault the first time a record is copied into it: 53,000 faults in a 146 MB run, about
//! 14 % of its CPU on this project's VM. A large buffer is a mapping of its own, advised onto
//! huge pages by the binary's allocator (`crate::allocator`); the many small ones live in
//! glibc's heap, which glibc places on transparent huge pages (one fault per 2 MiB) only when
//! `GLIBC_TUNABLES` asks, and its loader reads that before `main` and never again. So
//! `partition` re-executes itself once: the same binary (by the path it was
//! started by, else the one `/proc/self/exe` names, if the file there is still this one, so
//! that the process keeps its name) with the same arguments and environment, plus
//! `GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.top_pad=N:glibc.malloc.mmap_threshold=M`
//! (and a thread that fills its heap grows it first: [`grow_this_threads_heap`]).
//! `hugetlb=1` makes malloc `madvise(MADV_HUGEPAGE)` what it takes from the kernel, and the
//! padding makes it take whole huge pages' worth at a time. (The padding alone would also keep
//! a large buffer inside the heap, grown by copying and leaving its old copies resident: that
//! is why large ones are the allocator's.) The 146 MB run then has 5,600 faults instead of
//! 53,000 and is 121 ± 60 ms faster (20 alternating runs on a loaded host).
//!
//! Nothing else changes: the process, its descriptors, signal dispositions and mask are the
//! ones the user started (`execve` keeps them). It is skipped when `GLIBC_TUNABLES` is already
//! set (the user's tuning wins, and `GLIBC_TUNABLES=` with nothing turns this off), for a
//! set-user-ID run (`AT_SECURE`: glibc ignores the tunables there anyway), and below
//! [`SMALLEST_MEMORY`] of `--memory`. If the `execve` fails the run goes on as it is.

/// The `--memory` from which the heap is put on huge pages: memory comes in 2 MiB pieces, so
/// a little more of it is resident than on 4 KiB pages. Measured peak RSS, 4 KiB pages → huge
/// pages: the default 256 MiB, 146 MB of 50,000 Zipf keys, 204 → 230 MiB, and 600 MB, 255 →
/// 252 MiB; `--memory 128M`, 600 MB: 137 → 141 MiB (each within `--memory` + 32 MiB). At
/// `--memory 64M` it was 78 → 84 MiB (with an earlier, larger `top_pad`): within 96, but with
/// less margin than we want.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub const SMALLEST_MEMORY: usize = 128 << 20;

/// glibc's `top_pad` for a run with `memory` of buffers: how much more than asked malloc takes
/// from the kernel each time, and also how much freed memory it keeps at the top of each heap
/// (main and per-thread arenas) rather than give back: resident, on huge pages, and not
/// counted in `--memory`. So it is small: a thirty-second of `--memory`, at most 8 MiB (with
/// hugetlb=1 glibc grows its heap by whole huge pages anyway). A quarter, at most 64 MiB, kept
/// 64 MiB of the heap resident after 40 buffers had grown in it and moved out to mappings of
/// their own: peak RSS 304 MiB at `--memory 256M`, over the 288 promised; 248 MiB with 8 MiB
/// (`tests/partition_huge_pages.rs`), and no slower on the Zipf run.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn top_pad(memory: usize) -> usize {
    (memory / 32).min(8 << 20)
}

/// The tunables string for a run with `memory` of buffers.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tunables(memory: usize) -> String {
    format!(
        "glibc.malloc.hugetlb=1:glibc.malloc.top_pad={}:glibc.malloc.mmap_threshold={}",
        top_pad(memory),
        MMAP_THRESHOLD
    )
}

/// Re-executes this process with huge pages for its heap if they are worth it (see the module's
/// documentation); returns only if it does not (or cannot).
pub fn reexec_if_worth_it(memory: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    reexec(memory);
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = memory;
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn reexec(memory: usize) {
    use std::ffi::{CString, OsString};
    use std::os::unix::ffi::OsStringExt;

    if memory < SMALLEST_MEMORY || std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    // SAFETY: getauxval reads the auxiliary vector the kernel gave this process.
    if unsafe { libc::getauxval(libc::AT_SECURE) } != 0 {
        return;
    }
    // The binary by the path it was started by, so that the process keeps its name (`comm`,
    // what `ps` and `pgrep` show, is the last part of the path executed: through a symlink
    // `hf`, it is `hf`, where `/proc/self/exe` would make it `handoff`, and executing that
    // link itself would make it `exe`); else by the path `/proc/self/exe` names. Either only
    // if the file there is still this binary (not replaced while it ran).
    let identity = |path: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path)
            .ok()
            .map(|meta| (meta.dev(), meta.ino()))
    };
    let this = identity("/proc/self/exe".as_ref());
    if this.is_none() {
        return;
    }
    let Some(path) = [started_by(), std::env::current_exe().ok()]
        .into_iter()
        .flatten()
        .find(|path| identity(path) == this)
    else {
        return;
    };
    let c_strings = |items: Vec<OsString>| -> Option<Vec<CString>> {
        items
            .into_iter()
            .map(|item| CString::new(item.into_vec()).ok())
            .collect()
    };
    let Some(args) = c_strings(std::env::args_os().collect()) else {
        return;
    };
    let Ok(tunables) = CString::new(format!("GLIBC_TUNABLES={}", tunables(memory))) else {
        return;
    };
    let Some(path) = c_strings(vec![path.into_os_string()]) else {
        return;
    };
    let pointers = |strings: &[CString]| -> Vec<*const libc::c_char> {
        strings
            .iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let argv = pointers(&args);
    // The environment exactly as it is (`std::env::vars_os` would skip an entry without `=`),
    // and the tunables after it.
    let mut envp: Vec<*const libc::c_char> = Vec::new();
    // SAFETY: `environ` is the process's NULL-terminated array of C strings; nothing changes
    // it while this one thread (no other has started yet) reads it and executes.
    unsafe {
        let mut entry = libc::environ as *const *const libc::c_char;
        while !(*entry).is_null() {
            envp.push(*entry);
            entry = entry.add(1);
        }
    }
    envp.push(tunables.as_ptr());
    envp.push(std::ptr::null());
    // SAFETY: the path and both arrays are NUL-terminated C strings that live across the
    // call, each array ends with a null pointer; execve returns only on failure, and then
    // nothing has changed.
    unsafe {
        libc::execve(path[0].as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
}

/// The largest block glibc may take from a heap rather than map on its own (its
/// `mmap_threshold` tunable's upper bound, half its 64 MiB heap): so that
/// [`grow_this_threads_heap`]'s blocks come from the heap, and glibc's own blocks under 2 MiB
/// stay in its heaps on huge pages (this binary maps larger ones itself: `crate::allocator`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: usize = 32 << 20;

/// Makes the calling thread's glibc heap huge-page friendly, when this run's tunables are in
/// effect (see the module's documentation); called by a thread that will fill its heap (the
/// second half's parser). glibc maps a thread's heap as a 64 MiB reservation (its
/// `HEAP_MAX_SIZE` on 64-bit systems, aligned to that size), makes it accessible a little at a
/// time as the heap grows, and advises onto huge pages only the part it made accessible first
/// (the `top_pad`). A page touched at the accessible end is a 4 KiB one (a huge page needs its
/// whole 2 MiB range accessible) and stays one as the heap grows past it: 20,000 faults in the
/// second half's heap on the Zipf run. So the heap is grown once to nearly its reservation
/// (two blocks of 27 MiB taken and given back: glibc keeps the range accessible and returns
/// the memory with `MADV_DONTNEED`, nothing stays resident) and the reservation advised: the
/// run's faults go from 22,000 to 5,600. A thread on the main arena (below the program break,
/// which glibc itself advises as it grows) is left alone.
pub fn grow_this_threads_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
    {
        const HEAP_MAX_SIZE: usize = 64 << 20;
        const GROWTH: usize = 27 << 20;
        const _: () = assert!(GROWTH < MMAP_THRESHOLD && 2 * GROWTH < HEAP_MAX_SIZE - (8 << 20));
        let ours = std::env::var_os("GLIBC_TUNABLES").is_some_and(|value| {
            value
                .as_encoded_bytes()
                .starts_with(b"glibc.malloc.hugetlb=1")
        });
        if !ours {
            return;
        }
        // SAFETY: glibc's malloc and free, called directly (this binary's allocator would map
        // the large blocks itself); each block is freed once, and only its address is kept.
        let in_heap = unsafe {
            // (black_box: the compiler would otherwise drop a malloc whose block is only
            // freed, and with it the growth.)
            let small = std::hint::black_box(libc::malloc(1));
            let first = std::hint::black_box(libc::malloc(GROWTH));
            let second = std::hint::black_box(libc::malloc(GROWTH));
            libc::free(second);
            libc::free(first);
            libc::free(small);
            small as usize
        };
        // SAFETY: sbrk(0) only reads the program break.
        let program_break = unsafe { libc::sbrk(0) } as usize;
        if in_heap == 0 || in_heap < program_break {
            return;
        }
        // SAFETY: madvise only advises; the range is the reservation of the heap that held
        // `small`, glibc's own mapping.
        unsafe {
            libc::madvise(
                (in_heap & !(HEAP_MAX_SIZE - 1)) as *mut libc::c_void,
                HEAP_MAX_SIZE,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

/// The path this program was started by, as given to `execve` (`AT_EXECFN`; relative to the
/// working directory, which nothing has changed yet), if the kernel passed it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn started_by() -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: getauxval reads the auxiliary vector the kernel gave this process.
    let name = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const libc::c_char;
    if name.is_null() {
        return None;
    }
    // SAFETY: AT_EXECFN points to a NUL-terminated string the kernel put on the initial
    // stack, which lives as long as the process.
    let name = unsafe { std::ffi::CStr::from_ptr(name) };
    Some(std::ffi::OsStr::from_bytes(name.to_bytes()).into())
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    #[test]
    fn the_padding_is_a_thirty_second_of_the_memory_at_most_8_mib() {
        assert_eq!(top_pad(128 << 20), 4 << 20);
        assert_eq!(top_pad(256 << 20), 8 << 20);
        assert_eq!(top_pad(4 << 30), 8 << 20);
        assert_eq!(
            tunables(256 << 20),
            "glibc.malloc.hugetlb=1:glibc.malloc.top_pad=8388608:glibc.malloc.mmap_threshold=33554432"
        );
    }
}
