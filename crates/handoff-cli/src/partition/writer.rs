//! The writer thread: it creates every output file, writes the buffers it is handed, and
//! closes the files at the end, while the main thread goes on parsing.
//!
//! The kernel's work (creating a file costs about as much as parsing its records) then
//! overlaps the parsing: a file is created as soon as its key is first seen ([`Task::Create`]),
//! not when its first buffer is written, so that with ample memory most of the creating is
//! done by the time the input ends, and only the writes are left. Within the pager's budget
//! the file is the pager's and stays open; past it, it is created outside the pager and closed
//! at once, and reopened for its writes (its identity checked). The last buffers are written
//! by two threads ([`Task::Last`]).
//!
//! Descriptors: besides the pager's, the writer holds one of its own at a time per thread (a
//! file created early, a file written once at the end, or one not yet adopted by the pager;
//! two with a directory in the name: the directory's and the file's), taken from the pager's
//! budget first ([`Writer::reserve`]), so that the outputs never hold more than `--max-open`.
//!
//! One thread takes the tasks in the order they were sent, so each key's records reach its
//! file in input order. A buffer holds whole records only, so every file ends at a record
//! boundary after every write; a write that fails (a full disk, `RLIMIT_FSIZE`) is cut back to
//! the last whole record that reached the file, that file takes no more writes, and the
//! failure goes back to the main thread ([`Back::Failed`]), which stops reading. The counts of
//! bytes and records written are the writer's: exactly what the files hold.

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, OnceLock};

use handoff::pager::{OpenOptions, Pager, VirtualFile};

use super::display::shown_path;
use super::layout::Layout;
use super::os::close;
use super::outdir::{Existing, Identity, Outdir};
use super::outputs::{check_header, whole_records, Header, WriteError};

/// A new key, whose file the writer creates (or opens, as `--force`/`--append` say).
pub struct NewKey {
    pub key: Box<[u8]>,
    /// Where the open file goes, shared so that the main thread can see whether it is
    /// resident (see `Outputs::make_room`).
    pub file: Arc<OnceLock<VirtualFile>>,
    /// Past the pager's budget, create the file at once all the same (see
    /// [`Writer::create`]): the main thread says so while the buffers have not yet reached
    /// `--memory`, that is while a new key's records are likely to be written only at the end.
    pub early: bool,
}

/// What the main thread asks of the writer.
pub enum Task {
    /// New keys, in the order they were seen (sent in batches: a message a key would wake
    /// the writer once a key).
    Create(Vec<NewKey>),
    /// Buffers to append to their keys' files, in this order.
    Write(Vec<Handed>),
    /// The last buffers, at most one per key, sent once the input is done: written by two
    /// threads at once (the main thread has nothing else to do by then), each taking the
    /// files of its half of the keys.
    Last(Vec<Handed>),
}

/// Key `at`'s records: `earlier`, then `buf` (whole records, the header first if
/// `header_in_buf`).
pub struct Handed {
    pub at: u32,
    /// Usually empty (see `Outputs::merge`).
    pub earlier: Vec<u8>,
    pub buf: Vec<u8>,
    pub records: u64,
    pub header_in_buf: bool,
}

impl Handed {
    /// The memory its buffers take.
    pub fn capacity(&self) -> usize {
        self.earlier.capacity() + self.buf.capacity()
    }

    fn len(&self) -> usize {
        self.earlier.len() + self.buf.len()
    }
}

/// What the writer tells the main thread.
pub enum Back {
    /// Buffers were written (or dropped): their capacity is free again.
    Freed(usize),
    /// An output failed: it takes no more writes.
    Failed(WriteError),
}

/// What the writer reports when every task is done and every file closed.
pub struct Done {
    pub bytes_written: u64,
    pub records_written: u64,
    /// Files opened (created or appended to).
    pub files: usize,
}

/// What the writer needs to know about the run.
pub struct Setup {
    pub pager: Pager,
    pub dir: Arc<Outdir>,
    /// Where each key's file goes (and the cut names given out so far).
    pub layout: Layout,
    pub existing: Existing,
    pub delimiter: u8,
    pub header: Option<Arc<Header>>,
}

struct Output {
    key: Box<[u8]>,
    name: String,
    file: Arc<OnceLock<VirtualFile>>,
    /// The file's length after the last whole write: where it is cut back to if one fails.
    len: u64,
    /// What goes before the first records (`--append`: the header for an empty file, or a
    /// terminator for a last record that lacks one).
    before: Vec<u8>,
    /// An open or a write failed: the file takes no more.
    failed: bool,
    /// Created outside the pager and closed at once: empty when its key was first seen, past
    /// the pager's budget (see [`Writer::create`]), or by its first write (`len` bytes, see
    /// [`Output::write_once`]): its device and inode, checked at every later open.
    early: Option<Identity>,
    /// `file` is set: the pager holds the file (kept here too, so that a pass over every
    /// output, as [`runs`] makes, does not load each one's shared cell: with 50,000 keys a
    /// cache miss each, 10 ms before the last writes began).
    in_pager: bool,
}

struct Writer {
    setup: Setup,
    outputs: Vec<Output>,
    back: Sender<Back>,
    counts: Counts,
    /// Descriptors taken from the pager's budget for the writer's own plain files (a file
    /// created early, the last writes), so that --max-open holds for both together.
    reserved: usize,
}

/// Bytes and records written, whole, and files created outside the pager.
#[derive(Default)]
struct Counts {
    bytes: u64,
    records: u64,
    files: usize,
}

/// Runs the writer: takes tasks until the main thread hangs up, then closes every file.
pub fn run(setup: Setup, tasks: Receiver<Task>, back: Sender<Back>) -> Done {
    let mut writer = Writer {
        setup,
        outputs: Vec::new(),
        back,
        counts: Counts::default(),
        reserved: 0,
    };
    for task in tasks {
        match task {
            Task::Create(keys) => {
                for NewKey { key, file, early } in keys {
                    writer.create(key, file, early);
                }
            }
            Task::Write(batch) => {
                // A file's first write goes outside the pager (see `Output::write_once`), on
                // a descriptor of the writer's own.
                let direct = writer.setup.existing == Existing::Refuse && writer.reserve(1);
                let mut freed = 0;
                for handed in batch {
                    let output = &mut writer.outputs[handed.at as usize];
                    let result = if direct && output.never_written() {
                        output.write_once(&writer.setup, &handed, &mut writer.counts, true)
                    } else {
                        output.write(&writer.setup, &handed, &mut writer.counts)
                    };
                    if let Err(error) = result {
                        writer.failed(error);
                    }
                    freed += handed.capacity();
                }
                let _ = writer.back.send(Back::Freed(freed));
            }
            Task::Last(last) => writer.last(last),
        }
    }
    writer.close_all()
}

impl Writer {
    fn failed(&self, error: WriteError) {
        // The main thread may be gone (it only hangs up at the end); then the error is moot.
        let _ = self.back.send(Back::Failed(error));
    }

    fn error_at(&self, at: usize, error: io::Error) -> WriteError {
        self.outputs[at].error(&self.setup.dir, error)
    }

    /// The last buffers, written by two threads (one for a few buffers, or when the pager's
    /// budget cannot spare each thread its own descriptors): the keys are cut into runs
    /// ([`RUNS`]), and each thread takes the next run left until none is, the costliest
    /// first, so that both end at about the same time (halves fixed in advance left one
    /// thread working alone for a while: the first keys seen, in the first half, are the
    /// largest). Each run is written in two rounds: the files that are resident first, then
    /// the others once no run is left for the first round.
    fn last(&mut self, mut last: Vec<Handed>) {
        /// Below this, a second thread costs more than it saves.
        const PARALLEL: usize = 256;
        last.sort_unstable_by_key(|handed| handed.at);
        // Each writing thread holds descriptors of its own beside the pager's (one, two with
        // a directory in the name), taken from the pager's budget first: two threads only if
        // it can spare theirs, else one (whose opens make room in the pager, one at a time).
        let per_thread = if self.outputs.iter().any(|output| output.name.contains('/')) {
            2
        } else {
            1
        };
        let two = last.len() >= PARALLEL && self.reserve(2 * per_thread);
        let own = two || self.reserve(per_thread);
        // A new file that the pager never held takes its only write outside the pager, as a
        // plain create (or reopen), write and close, on the thread's own descriptor.
        let direct = own && self.setup.existing == Existing::Refuse;
        let runs = runs(&mut self.outputs, last, if two { RUNS } else { 1 });
        let (setup, back) = (&self.setup, &self.back);
        // Each round's runs: the first's sorted by cost, the costliest at the end (taken
        // first); the costliest of the second's is looked for (a few dozen runs).
        let first_round = std::sync::Mutex::new(runs);
        let second_round = std::sync::Mutex::new(Vec::new());
        let work = || {
            let mut counts = Counts::default();
            loop {
                let next = lock(&first_round).pop();
                let Some(mut run) = next else { break };
                let now = std::mem::take(&mut run.now);
                counts.add(&write_run(run.outputs, run.base, now, setup, back, direct));
                lock(&second_round).push(run);
            }
            loop {
                let next = {
                    let mut runs = lock(&second_round);
                    let costliest = (0..runs.len()).max_by_key(|&at| cost(&runs[at].later));
                    costliest.map(|at| runs.swap_remove(at))
                };
                let Some(run) = next else { break };
                counts.add(&write_run(
                    run.outputs,
                    run.base,
                    run.later,
                    setup,
                    back,
                    direct,
                ));
            }
            counts
        };
        let counts = std::thread::scope(|scope| {
            let other = two.then(|| {
                std::thread::Builder::new()
                    .name("writer 2".into())
                    .spawn_scoped(scope, work)
            });
            // (Without a second thread to be had, this one takes every run.)
            let mut counts = work();
            if let Some(Ok(thread)) = other {
                match thread.join() {
                    Ok(more) => counts.add(&more),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            counts
        });
        self.counts.add(&counts);
        self.give_back();
    }

    /// A new key's file: created (or opened) in the pager while its budget allows, else
    /// created early outside it (`early`), else left for its first write.
    fn create(&mut self, key: Box<[u8]>, file: Arc<OnceLock<VirtualFile>>, early: bool) {
        let name = match self.setup.layout.path(&key) {
            Ok(name) => name,
            Err(message) => {
                let error = WriteError {
                    file: shown_path(self.setup.dir.path()),
                    key: Some(key.to_vec()),
                    error: io::Error::other(message),
                    refused: false,
                };
                self.outputs.push(Output {
                    key,
                    name: String::new(),
                    file,
                    len: 0,
                    before: Vec::new(),
                    failed: true,
                    early: None,
                    in_pager: false,
                });
                self.failed(error);
                return;
            }
        };
        let at = self.outputs.len();
        let early = early
            && self.setup.existing == Existing::Refuse
            && !name.contains('/')
            && self.setup.dir.through_fd(&name).is_some();
        self.outputs.push(Output {
            key,
            name,
            file,
            len: 0,
            before: Vec::new(),
            failed: false,
            early: None,
            in_pager: false,
        });
        // While the descriptors allow it, the file is created in the pager and stays open.
        // Past that, a new file is created now all the same, outside the pager, and closed at
        // once: the kernel's work of creating it then overlaps the parsing, and what is left
        // for its first write is an open of an existing file (see `Output::create_early`).
        let pager = &self.setup.pager;
        let result = if pager.resident() < pager.budget() {
            self.outputs[at].open(&self.setup)
        } else if early && self.reserve(1) {
            self.outputs[at].create_early(&self.setup, &mut self.counts)
        } else {
            Ok(())
        };
        if let Err(error) = result {
            self.outputs[at].failed = true;
            self.failed(error);
        }
    }

    /// Takes descriptors from the pager's budget until `n` are the writer's own; `false` if
    /// that would leave the pager fewer than 3.
    fn reserve(&mut self, n: usize) -> bool {
        if self.reserved >= n {
            return true;
        }
        let pager = &self.setup.pager;
        let more = n - self.reserved;
        let budget = pager.budget();
        if budget < more + 3 {
            return false;
        }
        pager.set_budget(budget - more);
        self.reserved = n;
        true
    }

    /// Gives the pager its budget back.
    fn give_back(&mut self) {
        if self.reserved > 0 {
            let pager = &self.setup.pager;
            pager.set_budget(pager.budget() + self.reserved);
            self.reserved = 0;
        }
    }

    /// Closes every file; an error from any close goes back to the main thread.
    fn close_all(mut self) -> Done {
        let mut files = 0;
        for at in 0..self.outputs.len() {
            // The main thread has dropped its handles before hanging up, so this is the last.
            let shared = Arc::get_mut(&mut self.outputs[at].file);
            let Some(file) = shared.and_then(OnceLock::take) else {
                continue;
            };
            // (A file created early was counted then.)
            files += usize::from(self.outputs[at].early.is_none());
            if let Err(error) = file.close() {
                let error = self.error_at(at, error);
                self.failed(error);
            }
        }
        // Freeing a name, a key and a cell for every key one by one takes a while (~50 ms
        // for 50,000 keys), on the run's last thread: a thread of its own does it, which the
        // process ending may cut short (or it is done here, if there is no thread to be had).
        let outputs = std::mem::take(&mut self.outputs);
        let _ = std::thread::Builder::new()
            .name("writer drop".into())
            .spawn(move || drop(outputs));
        Done {
            bytes_written: self.counts.bytes,
            records_written: self.counts.records,
            files: files + self.counts.files,
        }
    }
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.bytes += other.bytes;
        self.records += other.records;
        self.files += other.files;
    }
}

/// The last buffers are written in this many runs of keys (see [`Writer::last`]).
const RUNS: usize = 64;

/// A run of keys for the last writes: the outputs of keys `base..`, and their buffers, split
/// into the files that are resident (`now`) and the others.
struct Run<'o> {
    base: usize,
    outputs: &'o mut [Output],
    now: Vec<Handed>,
    later: Vec<Handed>,
}

/// `handed` (sorted by key) cut into about `count` runs of as many buffers each, with their
/// outputs, sorted by [`cost`], the costliest last.
fn runs(outputs: &mut [Output], handed: Vec<Handed>, count: usize) -> Vec<Run<'_>> {
    let per_run = handed.len().div_ceil(count.max(1)).max(1);
    let mut runs = Vec::with_capacity(count);
    let (mut rest, mut base) = (outputs, 0);
    let mut handed = handed.into_iter().peekable();
    while handed.peek().is_some() {
        let run: Vec<Handed> = handed.by_ref().take(per_run).collect();
        let end = handed
            .peek()
            .map_or(base + rest.len(), |next| next.at as usize);
        let (outputs, tail) = std::mem::take(&mut rest).split_at_mut(end - base);
        let (now, later) = run.into_iter().partition(|handed| {
            let output = &outputs[handed.at as usize - base];
            output.in_pager && output.file.get().is_some_and(VirtualFile::is_resident)
        });
        runs.push(Run {
            base,
            outputs,
            now,
            later,
        });
        (rest, base) = (tail, end);
    }
    runs.sort_by_cached_key(|run| cost(&run.now) + cost(&run.later));
    runs
}

/// What writing `handed` costs, about: a file costs as much as 16 KiB written.
fn cost(handed: &[Handed]) -> usize {
    handed.iter().map(|handed| handed.len() + (16 << 10)).sum()
}

/// The lock's guard, poisoned or not (a thread that panicked is resumed after the join).
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes `handed` (sorted by key) to `outputs`, the outputs of keys `base..`; with `direct`,
/// a file never opened is created, written and closed outside the pager
/// ([`Output::write_once`]). Failures go back to the main thread. Each buffer is freed once
/// written, by the thread that wrote it (freed all at once at the end, they kept one thread
/// busy alone for a while: glibc's `free` and the `munmap`s).
fn write_run(
    outputs: &mut [Output],
    base: usize,
    handed: Vec<Handed>,
    setup: &Setup,
    back: &Sender<Back>,
    direct: bool,
) -> Counts {
    let mut counts = Counts::default();
    for handed in handed {
        let output = &mut outputs[handed.at as usize - base];
        // A name in a directory of OUTDIR (hive, `{}/x.csv`) takes the pager's road, whose
        // open walks the directories without following a link; `create_new` does not.
        let result = if direct && !output.in_pager && !output.name.contains('/') {
            output.write_once(setup, &handed, &mut counts, false)
        } else {
            output.write(setup, &handed, &mut counts)
        };
        if let Err(error) = result {
            let _ = back.send(Back::Failed(error));
        }
    }
    counts
}

impl Output {
    /// Opens a key's file: a new file, or (with `--force`/`--append`) the existing one, whose
    /// header is checked (`--append`), noting what goes before the records.
    fn open(&mut self, setup: &Setup) -> Result<(), WriteError> {
        let name = &self.name;
        // (A name with `/` takes the road below: its directories are made and opened one by
        // one, none followed.)
        if setup.existing == Existing::Refuse && !name.contains('/') && self.early.is_none() {
            // A new file, by a path through OUTDIR's descriptor, with O_EXCL: the cheapest
            // way that is as safe as openat + O_NOFOLLOW (see `Outdir::through_fd`).
            if let Some(path) = setup.dir.through_fd(name) {
                let mut options = OpenOptions::new();
                options.write(true).create_new(true);
                let file = setup
                    .pager
                    .open(path, &options)
                    .map_err(|error| self.error(&setup.dir, error))?;
                let _ = self.file.set(file);
                self.in_pager = true;
                return Ok(());
            }
        }
        let pager = &setup.pager;
        // The fd opened here (and a directory's, with a `/` in the name) is the pager's once
        // adopted: make room for it first, so that the real descriptors of the outputs never
        // exceed the budget, even for a moment. (At the end, where two threads may open at
        // once, each has its own descriptors reserved besides: see `Writer::last`.)
        let needed = if name.contains('/') { 2 } else { 1 };
        while pager.resident() + needed > pager.budget() && pager.release_one() {}
        let mut fd = match self.early {
            Some(identity) => self.reopen_created(setup, identity).map(Into::into),
            None => setup
                .dir
                .open_output(name.as_bytes(), setup.existing, || pager.release_one()),
        }
        .map_err(|error| self.error(&setup.dir, error))?;
        let mut before = Vec::new();
        let mut len = self.len;
        if setup.existing == Existing::Append {
            let file = std::fs::File::from(fd);
            len = file
                .metadata()
                .map_err(|e| self.error(&setup.dir, e))?
                .len();
            if let Some(header) = &setup.header {
                if len == 0 {
                    before.extend_from_slice(&header.raw);
                } else {
                    self.check_header(setup, &file, header)?;
                }
            }
            if len > 0 {
                let mut last = [0];
                super::os::read_exact_at(&file, &mut last, len - 1)
                    .map_err(|e| self.error(&setup.dir, e))?;
                if !matches!(last[0], b'\n' | b'\r') {
                    // The file's last record has no terminator: give it the header's.
                    let raw = setup.header.as_ref().map_or(&b"\n"[..], |h| &h.raw[..]);
                    let term = [&b"\r\n"[..], b"\n", b"\r"]
                        .into_iter()
                        .find(|t| raw.ends_with(t))
                        .unwrap_or(b"\n");
                    before.extend_from_slice(term);
                }
            }
            fd = file.into();
        }
        let file = pager
            .adopt(fd)
            .map_err(|error| self.error(&setup.dir, error))?;
        self.len = len;
        self.before = before;
        let _ = self.file.set(file);
        self.in_pager = true;
        Ok(())
    }

    /// `--append`, when the file is opened: its header must still be the run's.
    fn check_header(
        &self,
        setup: &Setup,
        file: &std::fs::File,
        header: &Header,
    ) -> Result<(), WriteError> {
        check_header(file, header).map_err(|message| WriteError {
            refused: true,
            ..self.error(
                &setup.dir,
                io::Error::new(io::ErrorKind::InvalidData, message),
            )
        })
    }

    fn error(&self, dir: &Outdir, error: io::Error) -> WriteError {
        WriteError {
            file: shown_path(&dir.path().join(&self.name)),
            key: Some(self.key.to_vec()),
            error,
            refused: false,
        }
    }

    /// Appends one buffer to the file. A failed write is cut back: the file ends with its
    /// last whole record, and takes no more.
    fn write(
        &mut self,
        setup: &Setup,
        handed: &Handed,
        counts: &mut Counts,
    ) -> Result<(), WriteError> {
        if self.failed {
            return Ok(());
        }
        if self.file.get().is_none() {
            if let Err(error) = self.open(setup) {
                self.failed = true;
                return Err(error);
            }
        }
        let shared = Arc::clone(&self.file);
        let Some(file) = shared.get() else {
            self.failed = true;
            let error = io::Error::other("the file was not opened");
            return Err(self.error(&setup.dir, error));
        };
        self.write_to(file, setup, handed, counts)
    }

    /// Whether nothing was ever written to the file, nor was it opened, and its first write
    /// may go outside the pager (a name in a directory of OUTDIR takes the pager's road,
    /// whose open walks the directories without following a link; `create_new` does not).
    fn never_written(&self) -> bool {
        !self.in_pager && self.early.is_none() && !self.name.contains('/')
    }

    /// Opens again the file this run created outside the pager (its identity checked), at the
    /// end of what was written to it (a plain file's writes, and the pager's once it adopts
    /// the descriptor, go where its offset is).
    fn reopen_created(&self, setup: &Setup, identity: Identity) -> io::Result<File> {
        let file = setup
            .dir
            .reopen_created(self.name.as_bytes(), identity, || setup.pager.release_one())
            .map(File::from)?;
        if self.len > 0 {
            io::Seek::seek(&mut &file, io::SeekFrom::Start(self.len))?;
        }
        Ok(file)
    }

    /// Creates the key's file, empty, outside the pager, and closes it: the kernel's work of
    /// creating it is done now, while the main thread parses, instead of at its first write.
    /// Its identity is kept, and checked when it is opened again.
    fn create_early(&mut self, setup: &Setup, counts: &mut Counts) -> Result<(), WriteError> {
        let file = self
            .create_plain(setup)
            .map_err(|error| self.error(&setup.dir, error))?;
        counts.files += 1; // on disk now, whatever happens next
        self.early = super::os::identity(&file).map_err(|error| self.error(&setup.dir, error))?;
        close(file).map_err(|error| self.error(&setup.dir, error))
    }

    /// The key's file, new (`Outdir::create_new`), outside the pager.
    fn create_plain(&self, setup: &Setup) -> io::Result<File> {
        loop {
            match setup.dir.create_new(self.name.as_bytes()) {
                Ok(file) => return Ok(file),
                // Descriptors are short (another process, or --max-open above the limit):
                // the pager gives one up, as it would for its own open.
                Err(error)
                    if handoff::limits::is_out_of_descriptors(&error)
                        && setup.pager.release_one() => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// A write to a new file that the pager does not hold: created now (`O_EXCL`, never
    /// through a symlink) or reopened if this run created it before (its identity checked),
    /// written and closed at once, outside the pager, as the file-creation floor does it:
    /// three or four system calls, where the pager's open would add a path walk through
    /// `/proc/self/fd`, a `statx` for the identity it keeps, and an `fstat` at the eviction.
    /// The last write of a file at the end, and the first of one mid-run (`keep`: its identity
    /// is kept for its later writes, most keys of a run under a small `--memory` have one).
    fn write_once(
        &mut self,
        setup: &Setup,
        handed: &Handed,
        counts: &mut Counts,
        keep: bool,
    ) -> Result<(), WriteError> {
        if self.failed {
            return Ok(());
        }
        let opened = match self.early {
            Some(identity) => self.reopen_created(setup, identity),
            None => self.create_plain(setup),
        };
        let file = match opened {
            Ok(file) => file,
            Err(error) => {
                self.failed = true;
                return Err(self.error(&setup.dir, error));
            }
        };
        if self.early.is_none() {
            counts.files += 1;
            if keep {
                match super::os::identity(&file) {
                    Ok(identity) => self.early = identity,
                    Err(error) => {
                        self.failed = true;
                        let _ = close(file);
                        return Err(self.error(&setup.dir, error));
                    }
                }
            }
        }
        let written = self.write_to(&file, setup, handed, counts);
        let closed = close(file);
        written?;
        closed.map_err(|error| {
            self.failed = true;
            self.error(&setup.dir, error)
        })
    }

    /// Appends one buffer to `file`, the key's file. A failed write is cut back: the file ends
    /// with its last whole record, and takes no more.
    fn write_to<S: Sink + ?Sized>(
        &mut self,
        file: &S,
        setup: &Setup,
        handed: &Handed,
        counts: &mut Counts,
    ) -> Result<(), WriteError> {
        let before = std::mem::take(&mut self.before);
        let result = file.write_parts([&before, &handed.earlier, &handed.buf]);
        if let Err(error) = result {
            self.failed = true;
            let joined;
            let buf = if handed.earlier.is_empty() {
                &handed.buf
            } else {
                joined = [&handed.earlier[..], &handed.buf].concat();
                &joined
            };
            // Keep the records that reached the file whole; cut off the rest.
            let on_disk = file.len().unwrap_or(self.len);
            let start = self.len + before.len() as u64;
            let (kept, whole) = match on_disk.checked_sub(start) {
                Some(reached) => whole_records(buf, reached, setup.delimiter),
                None => (0, 0),
            };
            let (keep, whole) = if kept > 0 {
                (start + kept as u64, whole - u64::from(handed.header_in_buf))
            } else {
                (self.len, 0)
            };
            let error = match file.set_len(keep) {
                Ok(()) => {
                    counts.bytes += keep - self.len;
                    counts.records += whole;
                    error
                }
                Err(cut) => io::Error::new(
                    error.kind(),
                    format!("{error}; and cutting it back to its last whole record failed: {cut}"),
                ),
            };
            return Err(self.error(&setup.dir, error));
        }
        let wrote = (before.len() + handed.len()) as u64;
        self.len += wrote;
        counts.bytes += wrote;
        counts.records += handed.records;
        Ok(())
    }
}

/// Where a buffer is written: the key's virtual file, or a plain file (see
/// [`Output::write_once`]).
trait Sink {
    /// Writes all of `parts`, in order.
    fn write_parts(&self, parts: [&[u8]; 3]) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn set_len(&self, len: u64) -> io::Result<()>;
}

impl Sink for VirtualFile {
    fn write_parts(&self, parts: [&[u8]; 3]) -> io::Result<()> {
        write_all_vectored(&mut &*self, parts)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        VirtualFile::set_len(self, len)
    }
}

impl Sink for File {
    fn write_parts(&self, parts: [&[u8]; 3]) -> io::Result<()> {
        write_all_vectored(&mut &*self, parts)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}

/// Writes all of `parts`, in order, in as few calls as `out` allows: one `writev` for a plain
/// file (a key whose records are in two parts would otherwise cost two writes), a write per
/// part for a virtual file. (`Write::write_all_vectored` is not stable yet.)
fn write_all_vectored(out: &mut impl Write, parts: [&[u8]; 3]) -> io::Result<()> {
    let mut slices = parts.map(IoSlice::new);
    let mut slices = &mut slices[..];
    IoSlice::advance_slices(&mut slices, 0); // (skips empty parts at the front)
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
