//! Randomized stress test: threads × random operations on one `Pager` with a tiny budget, until
//! a deadline, every result checked against a model of each file.
//!
//! - **Own files** (`FILES`): each is used by one thread at a time (a `try_lock`ed slot), so
//!   its model (expected bytes and cursor) is exact while the other threads page files in and
//!   out under it. Operations: open, close, read, write, `read_at`, `write_at`, seek, `with_fd`
//!   (C `read`/`write`, an unlink while pinned, a nested operation on a shared file),
//!   `with_crt_fd`, rename away (sometimes leaving a decoy at the old path) and back, unlink.
//! - **Shared files** (`SHARED`): used by every thread at once through `&VirtualFile`: cursor
//!   reads (`Read for &VirtualFile`), C reads inside `with_fd`, `read_at`. Record `k` of shared
//!   file `id` holds `encode(id, k)`, so every read says where it read from; at the end the
//!   cursor reads must have consumed each record exactly once, as reads through a shared
//!   `&std::fs::File` do.
//! - **Global**: `set_budget(1..=4)`, `release_one()`.
//! - **A sampler** counts `/proc/self/fd` all along: the pager's real descriptors never exceed
//!   the largest budget (the test itself holds none while it runs: decoys are hard links).
//! - **A watchdog**: an operation running for `HANG` fails the test with every thread's current
//!   operation, instead of hanging.
//!
//! Errors are classified. Expected, as documented: `NotFound` from a file renamed away or
//! unlinked (it may have been paged out; once it failed, it can never succeed again until it is
//! back at its path); `Deadlock` inside a nested pin, or while unlinked (hence possibly
//! permanent) files hold the budget. Everything else is a bug, including `NotFound` on a file
//! at its own path or on a file unlinked while pinned (which stays resident for life), and any
//! byte that differs from the model.
//!
//! `HANDOFF_STRESS_SECS` (default 4) sets the duration, `HANDOFF_STRESS_SEED` the seed (the
//! threads' interleaving is not reproducible; the seed fixes each thread's operations);
//! `HANDOFF_STRESS_NO_NESTING=1` leaves out the nested operations (to look past a hang there).
#![cfg(unix)]

use std::fs;
use std::io::{self, ErrorKind, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use handoff::pager::{OpenOptions, Pager, VirtualFile};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const THREADS: usize = 4;
/// Own files (one thread at a time each).
const FILES: usize = 12;
/// Shared files (every thread at once).
const SHARED: usize = 2;
/// 8-byte records per shared file (1 MiB).
const RECORDS: u64 = 1 << 17;
/// `set_budget` picks from 1..=MAX_BUDGET.
const MAX_BUDGET: usize = 4;
/// An operation running this long is a hang.
const HANG: Duration = Duration::from_secs(10);

fn encode(id: u64, k: u64) -> [u8; 8] {
    ((0xA5 << 56) | (id << 40) | k).to_le_bytes()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Entries of /proc/self/fd (the listing's own fd is counted every time, so it cancels out).
fn open_count() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// At its own path.
    Home,
    /// Renamed to `<path>.away`.
    Away,
    /// Unlinked while the virtual file is open.
    Unlinked,
}

/// What one own file must hold.
#[derive(Debug)]
struct Model {
    contents: Vec<u8>,
    cursor: u64,
    place: Place,
    /// A hard link to this slot's decoy template sits at the home path.
    decoy: bool,
    /// An operation failed with NotFound while away: the file was paged out, and cannot come
    /// back until it is home again.
    lost: bool,
    /// Unlinked while pinned (so resident): never paged out again, so never NotFound.
    kept_resident: bool,
}

impl Model {
    fn expect_read(&self, offset: u64, len: usize) -> &[u8] {
        let start = (offset as usize).min(self.contents.len());
        let end = (offset as usize + len).min(self.contents.len());
        &self.contents[start..end]
    }

    fn apply_write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return; // a write of nothing extends nothing
        }
        let end = offset as usize + data.len();
        if self.contents.len() < end {
            self.contents.resize(end, 0);
        }
        self.contents[offset as usize..end].copy_from_slice(data);
    }
}

struct Slot {
    file: Option<VirtualFile>,
    model: Model,
}

struct SharedFile {
    id: u64,
    file: VirtualFile,
    /// Record ranges (first, count) consumed by cursor reads.
    consumed: Mutex<Vec<(u64, u64)>>,
}

/// What a thread is doing, for the watchdog.
#[derive(Default)]
struct Status {
    current: Mutex<Option<(Instant, String)>>,
    ops: AtomicU64,
}

#[derive(Default)]
struct Counts {
    not_found: AtomicU64,
    deadlock: AtomicU64,
    nested: AtomicU64,
    unlinked_while_pinned: AtomicU64,
    renames: AtomicU64,
    shared_reads: AtomicU64,
}

struct World {
    pager: Pager,
    dir: PathBuf,
    slots: Vec<Mutex<Slot>>,
    shared: Vec<SharedFile>,
    /// One thread at a time nests an operation inside `with_fd`: two nesting threads can
    /// deadlock each other, as documented (like two locks).
    nest: Mutex<()>,
    /// Own files open and unlinked now (each possibly permanent, holding the budget), and
    /// unlinks ever started: `Deadlock` is expected only while one may be permanent.
    unlinked_open: AtomicUsize,
    unlinks: AtomicUsize,
    stop: AtomicBool,
    bugs: Mutex<Vec<String>>,
    counts: Counts,
    seed: u64,
    /// `HANDOFF_STRESS_NO_NESTING`: no operation nested in `with_fd` (to look past a hang).
    no_nesting: bool,
}

/// Where an operation started: decides whether `Deadlock` is documented there.
#[derive(Clone, Copy)]
struct Window {
    unlinked_open: usize,
    unlinks: usize,
    nested: bool,
}

impl World {
    fn home(&self, i: usize) -> PathBuf {
        self.dir.join(format!("f{i}"))
    }

    fn away(&self, i: usize) -> PathBuf {
        self.dir.join(format!("f{i}.away"))
    }

    fn template(&self, i: usize) -> PathBuf {
        self.dir.join(format!("decoy{i}"))
    }

    /// The unlinks count is read before the open-and-unlinked count, and an unlinker raises
    /// them in the other order (`unlinked_open` first): an unlink that is under way when the
    /// window is taken is then seen in one of them — `unlinks` moves after the first read, or
    /// `unlinked_open` is already raised at the second. (The reverse order on both sides let
    /// an unlink slip between the two reads: a Deadlock caused by it was judged a bug.)
    fn window(&self, nested: bool) -> Window {
        let unlinks = self.unlinks.load(Ordering::SeqCst);
        Window {
            unlinked_open: self.unlinked_open.load(Ordering::SeqCst),
            unlinks,
            nested,
        }
    }

    fn deadlock_documented(&self, window: Window) -> bool {
        window.nested
            || window.unlinked_open > 0
            || self.unlinks.load(Ordering::SeqCst) != window.unlinks
    }

    fn bug(&self, message: String) {
        lock(&self.bugs).push(message);
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Judges an error of an operation on own file `i`: `Ok` if documented (and counted).
    fn judge(
        &self,
        i: usize,
        model: &mut Model,
        what: &str,
        window: Window,
        error: &io::Error,
    ) -> Result<(), String> {
        match error.kind() {
            ErrorKind::NotFound if model.place == Place::Home => Err(format!(
                "file {i} {what}: NotFound on a file at its own path ({error}); {model:?}"
            )),
            ErrorKind::NotFound if model.kept_resident => Err(format!(
                "file {i} {what}: NotFound on a file unlinked while pinned, which stays \
                 resident for life ({error})"
            )),
            ErrorKind::NotFound => {
                model.lost = true;
                self.counts.not_found.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            ErrorKind::Deadlock if self.deadlock_documented(window) => {
                self.counts.deadlock.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(format!(
                "file {i} {what}: unexpected error {:?}: {error}; {model:?}",
                error.kind()
            )),
        }
    }

    /// An operation on own file `i` that needs its descriptor succeeded: fine unless an earlier
    /// one failed NotFound while it was away (then that one was spurious, or this one read a
    /// file it should not have).
    fn succeeded(&self, i: usize, model: &Model, what: &str) -> Result<(), String> {
        if model.lost && model.place != Place::Home {
            return Err(format!(
                "file {i} {what}: succeeded after an earlier NotFound while {:?}: that NotFound \
                 was spurious (the file was resident), or this reached another file",
                model.place
            ));
        }
        Ok(())
    }
}

/// Checks what a read of a shared file returned: whole records of that file, consecutive.
/// Returns the first record's index.
fn check_records(shared: &SharedFile, bytes: &[u8], at: Option<u64>) -> Result<u64, String> {
    if !bytes.len().is_multiple_of(8) {
        return Err(format!(
            "shared {}: a read returned {} bytes, not whole records",
            shared.id,
            bytes.len()
        ));
    }
    let Some(first) = bytes.first_chunk::<8>() else {
        return Ok(at.unwrap_or(0));
    };
    let k0 = u64::from_le_bytes(*first) & ((1 << 40) - 1);
    if let Some(at) = at {
        if k0 != at {
            return Err(format!(
                "shared {}: read at record {at} returned record {k0}",
                shared.id
            ));
        }
    }
    for (n, record) in bytes.chunks_exact(8).enumerate() {
        if record != encode(shared.id, k0 + n as u64) {
            return Err(format!(
                "shared {}: record {} of a read from record {k0} is {:02x?}, not this file's",
                shared.id, n, record
            ));
        }
    }
    Ok(k0)
}

fn c_read(fd: BorrowedFd<'_>, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    // SAFETY: `buf` is writable for `len` bytes; `fd` is borrowed (pinned open) for the call.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), len) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// # Safety
/// `fd` must be open for the call (`with_crt_fd` lends it pinned).
unsafe fn c_write(fd: std::ffi::c_int, data: &[u8]) -> io::Result<usize> {
    // SAFETY: `data` is readable for its length; `fd` is open (see above).
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One operation on a shared file.
/// `within`: the own-file operation it is nested in, if any (for the watchdog's report).
fn shared_op(
    world: &World,
    rng: &mut StdRng,
    status: &Status,
    within: Option<&str>,
) -> Result<(), String> {
    let nested = within.is_some();
    let shared = &world.shared[rng.random_range(0..SHARED)];
    let doing = |what: &str| {
        let prefix = within.map_or(String::new(), |within| format!("{within} > "));
        set(status, format!("{prefix}shared {} {what}", shared.id));
    };
    let len = 8 * rng.random_range(1..=16usize);
    let window = world.window(nested);
    let judge = |error: io::Error, what: &str| -> Result<(), String> {
        if error.kind() == ErrorKind::Deadlock && world.deadlock_documented(window) {
            world.counts.deadlock.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        Err(format!(
            "shared {} {what} (nested {nested}): unexpected error {:?}: {error}",
            shared.id,
            error.kind()
        ))
    };
    world.counts.shared_reads.fetch_add(1, Ordering::Relaxed);
    match rng.random_range(0..10) {
        // A cursor read through `&VirtualFile`.
        0..=3 => {
            doing("cursor read");
            let mut buf = vec![0u8; len];
            match (&shared.file).read(&mut buf) {
                Ok(n) => {
                    let k0 = check_records(shared, &buf[..n], None)?;
                    if n > 0 {
                        lock(&shared.consumed).push((k0, n as u64 / 8));
                    }
                    Ok(())
                }
                Err(error) => judge(error, "read"),
            }
        }
        // C reads at the cursor, through the lent descriptor.
        4..=6 => {
            doing("with_fd C read");
            match shared.file.with_fd(|fd| c_read(fd, len)) {
                Ok(Ok(bytes)) => {
                    let k0 = check_records(shared, &bytes, None)?;
                    if !bytes.is_empty() {
                        lock(&shared.consumed).push((k0, bytes.len() as u64 / 8));
                    }
                    Ok(())
                }
                Ok(Err(error)) => Err(format!("shared {}: C read failed: {error}", shared.id)),
                Err(error) => judge(error, "with_fd"),
            }
        }
        _ => {
            doing("read_at");
            let k = rng.random_range(0..RECORDS);
            let mut buf = vec![0u8; len];
            match shared.file.read_at(&mut buf, k * 8) {
                Ok(n) => {
                    let expected = (len as u64).min((RECORDS - k) * 8) as usize;
                    if n != expected {
                        return Err(format!(
                            "shared {}: read_at record {k}: {n} bytes, expected {expected}",
                            shared.id
                        ));
                    }
                    check_records(shared, &buf[..n], Some(k)).map(drop)
                }
                Err(error) => judge(error, "read_at"),
            }
        }
    }
}

fn random_bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.random_range(0..=255u8)).collect()
}

/// One operation on own file `i`, whose slot the caller holds.
fn own_op(
    world: &World,
    rng: &mut StdRng,
    i: usize,
    slot: &mut Slot,
    status: &Status,
) -> Result<(), String> {
    let Slot { file, model } = slot;
    let window = world.window(false);
    let Some(vf) = file.as_ref() else {
        let truncate = rng.random_bool(0.3);
        let mut options = OpenOptions::new();
        options
            .read(true)
            .write(true)
            .create(true)
            .truncate(truncate);
        set(status, format!("open file {i}"));
        match world.pager.open(world.home(i), &options) {
            Ok(opened) => {
                *file = Some(opened);
                model.cursor = 0;
                if truncate {
                    model.contents.clear();
                }
                return Ok(());
            }
            Err(error) => return world.judge(i, model, "open", window, &error),
        }
    };
    let len = rng.random_range(0..48usize);
    let offset = rng.random_range(0..160u64);
    // An unlinked file may be permanent and hold the budget: close it soon.
    let pick = if model.place == Place::Unlinked && rng.random_bool(0.3) {
        99
    } else {
        rng.random_range(0..100)
    };
    match pick {
        0..=13 => {
            set(status, format!("read file {i}"));
            let mut buf = vec![0u8; len];
            match (&*vf).read(&mut buf) {
                Ok(n) => {
                    world.succeeded(i, model, "read")?;
                    let expected = model.expect_read(model.cursor, len);
                    if buf[..n] != *expected {
                        return Err(format!(
                            "file {i} read at {}: {:?}, expected {:?}",
                            model.cursor,
                            &buf[..n],
                            expected
                        ));
                    }
                    model.cursor += n as u64;
                }
                Err(error) => world.judge(i, model, "read", window, &error)?,
            }
        }
        14..=27 => {
            set(status, format!("write file {i}"));
            let data = random_bytes(rng, len);
            match io::Write::write_all(&mut &*vf, &data) {
                Ok(()) => {
                    if !data.is_empty() {
                        // (`write_all` of nothing makes no call at all.)
                        world.succeeded(i, model, "write")?;
                    }
                    model.apply_write(model.cursor, &data);
                    model.cursor += data.len() as u64;
                }
                Err(error) => world.judge(i, model, "write", window, &error)?,
            }
        }
        28..=37 => {
            set(status, format!("read_at file {i}"));
            let mut buf = vec![0u8; len];
            match vf.read_at(&mut buf, offset) {
                Ok(n) => {
                    world.succeeded(i, model, "read_at")?;
                    let expected = model.expect_read(offset, len);
                    if buf[..n] != *expected {
                        return Err(format!(
                            "file {i} read_at {offset}: {:?}, expected {:?}",
                            &buf[..n],
                            expected
                        ));
                    }
                }
                Err(error) => world.judge(i, model, "read_at", window, &error)?,
            }
        }
        38..=46 => {
            set(status, format!("write_at file {i}"));
            let data = random_bytes(rng, len);
            match vf.write_all_at(&data, offset) {
                Ok(()) => {
                    world.succeeded(i, model, "write_at")?;
                    model.apply_write(offset, &data);
                }
                Err(error) => world.judge(i, model, "write_at", window, &error)?,
            }
        }
        47..=53 => {
            set(status, format!("seek file {i}"));
            let (to, needs_file) = match rng.random_range(0..3) {
                0 => (SeekFrom::Start(offset), false),
                1 => (SeekFrom::Current(rng.random_range(-20..=20)), false),
                _ => (SeekFrom::End(rng.random_range(-20..=20)), true),
            };
            let target = match to {
                SeekFrom::Start(n) => Some(n),
                SeekFrom::Current(d) => model.cursor.checked_add_signed(d),
                SeekFrom::End(d) => (model.contents.len() as u64).checked_add_signed(d),
            };
            match ((&*vf).seek(to), target) {
                (Ok(at), Some(target)) if at == target => {
                    if needs_file {
                        world.succeeded(i, model, "seek from the end")?;
                    }
                    model.cursor = at;
                }
                (Err(error), None) if error.kind() == ErrorKind::InvalidInput => {}
                (Err(error), _) if needs_file => {
                    world.judge(i, model, "seek from the end", window, &error)?
                }
                (result, target) => {
                    return Err(format!(
                        "file {i} seek {to:?}: {result:?}, expected {target:?} (cursor {}, \
                         length {})",
                        model.cursor,
                        model.contents.len()
                    ))
                }
            }
        }
        54..=61 => {
            set(status, format!("with_fd C read file {i}"));
            match vf.with_fd(|fd| c_read(fd, len)) {
                Ok(Ok(bytes)) => {
                    world.succeeded(i, model, "with_fd read")?;
                    let expected = model.expect_read(model.cursor, len);
                    if bytes != expected {
                        return Err(format!(
                            "file {i} C read at cursor {}: {bytes:?}, expected {expected:?}",
                            model.cursor
                        ));
                    }
                    model.cursor += bytes.len() as u64;
                }
                Ok(Err(error)) => return Err(format!("file {i}: C read failed: {error}")),
                Err(error) => world.judge(i, model, "with_fd read", window, &error)?,
            }
        }
        62..=67 => {
            set(status, format!("with_crt_fd C write file {i}"));
            let data = random_bytes(rng, len);
            // SAFETY: `with_crt_fd` lends `fd` pinned open for the call.
            match vf.with_crt_fd(|fd| unsafe { c_write(fd, &data) }) {
                Ok(Ok(n)) => {
                    world.succeeded(i, model, "with_crt_fd write")?;
                    if n != data.len() {
                        return Err(format!("file {i}: C wrote {n} of {} bytes", data.len()));
                    }
                    model.apply_write(model.cursor, &data);
                    model.cursor += n as u64;
                }
                Ok(Err(error)) => return Err(format!("file {i}: C write failed: {error}")),
                Err(error) => world.judge(i, model, "with_crt_fd write", window, &error)?,
            }
        }
        68..=72 => {
            // Nested: a shared file used while this one is pinned.
            if world.no_nesting {
                return Ok(());
            }
            let Ok(_nest) = world.nest.try_lock() else {
                return Ok(());
            };
            let within = format!("with_fd file {i}");
            set(status, within.clone());
            world.counts.nested.fetch_add(1, Ordering::Relaxed);
            match vf.with_fd(|_fd| shared_op(world, rng, status, Some(&within))) {
                Ok(inner) => {
                    world.succeeded(i, model, "with_fd (nested)")?;
                    inner?;
                }
                Err(error) => world.judge(i, model, "with_fd (nested)", window, &error)?,
            }
        }
        73..=77 => {
            if model.place == Place::Unlinked {
                return Ok(());
            }
            // Unlinked while pinned: resident now, so kept resident for life.
            set(status, format!("with_fd file {i}: unlink while pinned"));
            let path = if model.place == Place::Home {
                world.home(i)
            } else {
                world.away(i)
            };
            world.unlinked_open.fetch_add(1, Ordering::SeqCst); // first: see `World::window`
            world.unlinks.fetch_add(1, Ordering::SeqCst);
            match vf.with_fd(|_fd| fs::remove_file(&path)) {
                Ok(Ok(())) => {
                    world.succeeded(i, model, "with_fd (unlink)")?;
                    world
                        .counts
                        .unlinked_while_pinned
                        .fetch_add(1, Ordering::Relaxed);
                    model.place = Place::Unlinked;
                    model.kept_resident = true;
                    // Read it back at once while others evict: it must never fail.
                    for _ in 0..8 {
                        let mut buf = vec![0u8; 16];
                        match vf.read_at(&mut buf, 0) {
                            Ok(n) if buf[..n] == *model.expect_read(0, 16) => {}
                            Ok(n) => {
                                return Err(format!(
                                    "file {i} read_at 0 after unlink: {:?}, expected {:?}",
                                    &buf[..n],
                                    model.expect_read(0, 16)
                                ))
                            }
                            Err(error) => world.judge(
                                i,
                                model,
                                "read_at after unlink while pinned",
                                world.window(false),
                                &error,
                            )?,
                        }
                    }
                }
                Ok(Err(error)) => return Err(format!("file {i}: unlink {path:?}: {error}")),
                Err(error) => {
                    world.unlinked_open.fetch_sub(1, Ordering::SeqCst);
                    world.judge(i, model, "with_fd (unlink)", window, &error)?
                }
            }
        }
        78..=80 => {
            if model.place == Place::Unlinked {
                return Ok(());
            }
            set(status, format!("unlink file {i}"));
            let path = if model.place == Place::Home {
                world.home(i)
            } else {
                world.away(i)
            };
            world.unlinked_open.fetch_add(1, Ordering::SeqCst); // first: see `World::window`
            world.unlinks.fetch_add(1, Ordering::SeqCst);
            fs::remove_file(&path).map_err(|e| format!("unlink {path:?}: {e}"))?;
            model.place = Place::Unlinked;
        }
        81..=86 => {
            set(status, format!("rename file {i}"));
            world.counts.renames.fetch_add(1, Ordering::Relaxed);
            match model.place {
                Place::Home => {
                    fs::rename(world.home(i), world.away(i)).map_err(|e| e.to_string())?;
                    model.place = Place::Away;
                    if rng.random_bool(0.5) {
                        fs::hard_link(world.template(i), world.home(i))
                            .map_err(|e| e.to_string())?;
                        model.decoy = true;
                    }
                }
                Place::Away => {
                    // Replaces the decoy, if there is one.
                    fs::rename(world.away(i), world.home(i)).map_err(|e| e.to_string())?;
                    model.place = Place::Home;
                    model.decoy = false;
                    model.lost = false;
                }
                Place::Unlinked => {}
            }
        }
        87..=99 => {
            set(status, format!("close file {i}"));
            let vf = file.take().expect("open");
            vf.close()
                .map_err(|error| format!("file {i}: close failed: {error}"))?;
            put_back(world, i, model)?;
        }
        _ => unreachable!(),
    }
    Ok(())
}

/// After closing own file `i`: its file is at its home path again (an unlinked one is gone).
fn put_back(world: &World, i: usize, model: &mut Model) -> Result<(), String> {
    match model.place {
        Place::Home => {}
        Place::Away => fs::rename(world.away(i), world.home(i)).map_err(|e| e.to_string())?,
        Place::Unlinked => {
            if model.decoy {
                fs::remove_file(world.home(i)).map_err(|e| e.to_string())?;
            }
            model.contents.clear();
            world.unlinked_open.fetch_sub(1, Ordering::SeqCst);
        }
    }
    model.place = Place::Home;
    model.decoy = false;
    model.lost = false;
    model.kept_resident = false;
    model.cursor = 0;
    Ok(())
}

fn set(status: &Status, what: String) {
    *lock(&status.current) = Some((Instant::now(), what));
}

fn worker(world: &World, t: usize, status: &Status, deadline: Instant) {
    let mut rng = StdRng::seed_from_u64(world.seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9));
    while !world.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        status.ops.fetch_add(1, Ordering::Relaxed);
        let result = match rng.random_range(0..100) {
            0..=2 => {
                let budget = rng.random_range(1..=MAX_BUDGET);
                set(status, format!("set_budget({budget})"));
                world.pager.set_budget(budget);
                Ok(())
            }
            3..=9 => {
                set(status, "release_one".to_string());
                world.pager.release_one();
                Ok(())
            }
            10..=34 => shared_op(world, &mut rng, status, None),
            _ => {
                let i = rng.random_range(0..FILES);
                match world.slots[i].try_lock() {
                    Ok(mut slot) => own_op(world, &mut rng, i, &mut slot, status),
                    Err(TryLockError::Poisoned(_)) => Err(format!("slot {i} poisoned")),
                    Err(TryLockError::WouldBlock) => Ok(()),
                }
            }
        };
        *lock(&status.current) = None;
        if let Err(message) = result {
            world.bug(format!("thread {t}: {message}"));
        }
    }
}

fn settings() -> (Duration, u64) {
    let secs = std::env::var("HANDOFF_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(4.0);
    let seed = std::env::var("HANDOFF_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    (Duration::from_secs_f64(secs), seed)
}

fn setup(dir: &Path, seed: u64) -> World {
    for id in 0..SHARED as u64 {
        let bytes: Vec<u8> = (0..RECORDS).flat_map(|k| encode(id, k)).collect();
        fs::write(dir.join(format!("shared{id}")), bytes).unwrap();
    }
    for i in 0..FILES {
        fs::write(
            dir.join(format!("decoy{i}")),
            format!("decoy {i} ").repeat(20),
        )
        .unwrap();
    }
    let pager = Pager::new(2);
    let shared = (0..SHARED as u64)
        .map(|id| SharedFile {
            id,
            file: pager
                .open(
                    dir.join(format!("shared{id}")),
                    OpenOptions::new().read(true),
                )
                .unwrap(),
            consumed: Mutex::default(),
        })
        .collect();
    let slots = (0..FILES)
        .map(|_| {
            Mutex::new(Slot {
                file: None,
                model: Model {
                    contents: Vec::new(),
                    cursor: 0,
                    place: Place::Home,
                    decoy: false,
                    lost: false,
                    kept_resident: false,
                },
            })
        })
        .collect();
    World {
        pager,
        dir: dir.to_path_buf(),
        slots,
        shared,
        nest: Mutex::new(()),
        unlinked_open: AtomicUsize::new(0),
        unlinks: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        bugs: Mutex::default(),
        counts: Counts::default(),
        seed,
        no_nesting: std::env::var_os("HANDOFF_STRESS_NO_NESTING").is_some(),
    }
}

/// Cursor reads of a shared file: every record read once, none skipped.
fn check_consumed(shared: &SharedFile) -> Vec<String> {
    let mut ranges = lock(&shared.consumed).clone();
    ranges.sort_unstable();
    let mut problems = Vec::new();
    let mut next = 0;
    for &(first, count) in &ranges {
        if first < next {
            problems.push(format!(
                "shared {}: records {first}..{} read twice by cursor reads (the cursor lost an \
                 update: a read went back over bytes already read)",
                shared.id,
                next.min(first + count)
            ));
        } else if first > next {
            problems.push(format!(
                "shared {}: records {next}..{first} skipped by cursor reads",
                shared.id
            ));
        }
        next = next.max(first + count);
    }
    let cursor = (&shared.file).stream_position().unwrap();
    if cursor != next * 8 {
        problems.push(format!(
            "shared {}: cursor at byte {cursor}, but cursor reads consumed {} bytes",
            shared.id,
            next * 8
        ));
    }
    problems.truncate(5);
    problems
}

#[test]
fn threads_with_random_operations_on_a_tiny_budget_agree_with_the_model() {
    let (duration, seed) = settings();
    eprintln!(
        "pager_stress: seed {seed}, {duration:?} (rerun with HANDOFF_STRESS_SEED={seed} \
         HANDOFF_STRESS_SECS=<secs>)"
    );
    let dir = tempfile::tempdir().unwrap();
    // Taken before the pager exists; the test holds no descriptor of its own from here on.
    let baseline = open_count();
    let world = Arc::new(setup(dir.path(), seed));
    let statuses: Arc<Vec<Status>> = Arc::new((0..THREADS).map(|_| Status::default()).collect());
    let deadline = Instant::now() + duration;

    let sampler = {
        let world = Arc::clone(&world);
        std::thread::spawn(move || {
            let (mut peak, mut samples) = (0, 0u64);
            while !world.stop.load(Ordering::Relaxed) {
                let count = open_count() - baseline;
                peak = peak.max(count);
                samples += 1;
                if count > MAX_BUDGET {
                    world.bug(format!(
                        "sampler: the pager holds {count} descriptors, more than any budget \
                         ({MAX_BUDGET})"
                    ));
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            (peak, samples)
        })
    };

    let (done_tx, done_rx) = mpsc::channel();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (world, statuses, done) =
                (Arc::clone(&world), Arc::clone(&statuses), done_tx.clone());
            std::thread::spawn(move || {
                struct Done(mpsc::Sender<usize>, usize);
                impl Drop for Done {
                    fn drop(&mut self) {
                        let _ = self.0.send(self.1);
                    }
                }
                let _done = Done(done, t);
                worker(&world, t, &statuses[t], deadline);
            })
        })
        .collect();

    // The watchdog: no operation may run for HANG.
    let mut finished = 0;
    while finished < THREADS {
        match done_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(_) => finished += 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let stuck: Vec<String> = statuses
                    .iter()
                    .enumerate()
                    .filter_map(|(t, status)| {
                        let current = lock(&status.current);
                        let (since, what) = current.as_ref()?;
                        Some(format!("thread {t}: {what} for {:?}", since.elapsed()))
                    })
                    .collect();
                let hung = statuses.iter().any(|status| {
                    lock(&status.current)
                        .as_ref()
                        .is_some_and(|(since, _)| since.elapsed() > HANG)
                });
                if hung {
                    world.stop.store(true, Ordering::SeqCst);
                    panic!(
                        "hang (seed {seed}): an operation has run for over {HANG:?}; \
                         threads now:\n  {}\nstats: {:?}\nbugs so far: {:#?}",
                        stuck.join("\n  "),
                        world.pager.stats(),
                        lock(&world.bugs)
                    );
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => unreachable!(),
        }
    }
    for (t, worker) in workers.into_iter().enumerate() {
        if let Err(panic) = worker.join() {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            world.bug(format!("thread {t} panicked: {message}"));
        }
    }
    let stopped_early = world.stop.swap(true, Ordering::SeqCst);
    let (peak, samples) = sampler.join().unwrap();

    // After the run: shared cursors, every own file's bytes on disk, the decoys, no leak.
    let mut bugs = lock(&world.bugs).clone();
    for shared in &world.shared {
        bugs.extend(check_consumed(shared));
    }
    for (i, slot) in world.slots.iter().enumerate() {
        let mut slot = lock(slot);
        let Slot { file, model } = &mut *slot;
        if let Some(vf) = file.take() {
            if let Err(error) = vf.close() {
                bugs.push(format!("file {i}: close at the end failed: {error}"));
            }
            if let Err(error) = put_back(&world, i, model) {
                bugs.push(error);
            }
        }
        let on_disk = fs::read(world.home(i)).unwrap_or_default();
        if on_disk != model.contents {
            bugs.push(format!(
                "file {i} on disk: {} bytes differ from the model's {} bytes",
                on_disk.len(),
                model.contents.len()
            ));
        }
        let template = fs::read(world.template(i)).unwrap();
        if template != format!("decoy {i} ").repeat(20).into_bytes() {
            bugs.push(format!("decoy {i} was written to"));
        }
    }
    let stats = world.pager.stats();
    let ops: u64 = statuses.iter().map(|s| s.ops.load(Ordering::Relaxed)).sum();
    let counts = &world.counts;
    eprintln!(
        "pager_stress: {ops} operations by {THREADS} threads; expected errors: {} NotFound, {} \
         Deadlock; {} nested, {} unlinked while pinned, {} renames, {} shared reads; \
         /proc/self/fd peak {peak} above baseline in {samples} samples; {stats:?}",
        counts.not_found.load(Ordering::Relaxed),
        counts.deadlock.load(Ordering::Relaxed),
        counts.nested.load(Ordering::Relaxed),
        counts.unlinked_while_pinned.load(Ordering::Relaxed),
        counts.renames.load(Ordering::Relaxed),
        counts.shared_reads.load(Ordering::Relaxed),
    );
    assert!(
        bugs.is_empty(),
        "seed {seed}: {} problem(s):\n  {}",
        bugs.len(),
        bugs.join("\n  ")
    );
    assert!(!stopped_early);
    assert!(samples > 10, "the sampler ran ({samples} samples)");
    assert!(stats.peak_resident <= MAX_BUDGET as u64, "{stats:?}");
    assert!(stats.evictions > 100, "the run paged: {stats:?}");
    let shared: Vec<_> = Arc::try_unwrap(world)
        .ok()
        .expect("threads are done")
        .shared;
    drop(shared);
    assert_eq!(open_count(), baseline, "every descriptor closed");
}
