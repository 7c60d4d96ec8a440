//! One output file per key, with records coalesced per key in memory under a bound, and
//! written by a thread of their own (see [`super::writer`]).
//!
//! Buffering is what makes the writes fast: every key collects its records in its own buffer,
//! and a file takes a whole buffer in one write. `--memory` bounds the buffers: the buffers
//! held here and those handed to the writer and not yet written. When they would pass it,
//! the largest buffers are handed to the writer (found by size class, no sort: see
//! [`SizeClasses`]; among the largest, a file that is resident first, since writing it costs
//! no page-in) until half of the bound is held here, and the parsing waits only while the
//! writer is more than the other half behind. At the end, everything is handed over and the
//! writer closes every file, so that an error from any close is reported.
//!
//! The per-key bookkeeping (the maps, the file's entry and name) is not a buffer: it stays for
//! the whole run, and counting it against the bound would leave no room for buffers once
//! there are many keys (every record would then cause a flush). It is taken off the bound as
//! long as that leaves the buffers [`FLOOR`] (or the whole bound, if smaller); past that the
//! buffers keep the floor, the run goes over `--memory`, and it says so once (see
//! [`Outputs::take_warning`]).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use handoff::pager::{Pager, Stats, VirtualFile};

use super::display::{shown, shown_names, shown_path};
use super::halves::{Half, Part};
use super::input::ReadAt;
use super::keyed::Keyed;
use super::layout::Layout;
use super::outdir::{Existing, Outdir};
use super::records::Splitter;
use super::sizes::SizeClasses;
use super::writer::{self, Back, Done, Handed, NewKey, Setup, Task};
use super::BATCH;

/// Memory each key takes besides its buffer, for as long as the run lasts: the index entry
/// and the key, the buffer's slot, the shared file cell, the writer's entry and the file name,
/// the pager's entry and path (measured: see the README); plus twice the key's length.
pub const PER_KEY: usize = 480;

/// The least the buffers get, when the bookkeeping leaves less of the bound (or the whole
/// bound, if it is smaller).
pub const FLOOR: usize = 8 << 20;

/// The allocator's share: 1/`HOLES` of what the bookkeeping leaves of the bound is left out of
/// the buffers' budget (which keeps at least [`FLOOR`]). Buffers freed by the writer leave
/// holes in the heap that later, larger
/// buffers do not fit, and the heap grows past the buffers it holds: on a 2 GB input with
/// 50,000 Zipf keys and the default 256M, the heap's free part grew from 4 MiB to 35–47 MiB
/// (`mallinfo2`) while the buffers stayed at their budget, and RSS reached 297–315 MiB, past
/// the promised `--memory` + 32 MiB.
const HOLES: usize = 8;

/// The least share of the bookkeeping the buffers are given (see [`budget`]).
const SHARE_MIN: usize = 256 << 10;

/// A new key's buffer starts with room for the header and this many records of its first
/// record's length (up to [`FIRST_CAPACITY`], or a 64th of the buffers' budget): most keys of
/// a skewed input hold a few records, and a buffer grown from nothing by doubling costs a
/// `realloc` (and a copy) at each step; a key of one record wastes little.
const FIRST_RECORDS: usize = 4;
const FIRST_CAPACITY: usize = 1024;

/// New keys are sent to the writer this many at a time (or sooner, before any other task).
const CREATE_BATCH: usize = 64;

/// Buffers are handed to the writer this many at a time (or fewer, the last of a round), and
/// come back freed as many at a time: a message a buffer made the two threads wake each other
/// once a buffer (313,678 `futex` calls for 200,000 records of 126,000 keys under `--memory
/// 1M`).
const WRITE_BATCH: usize = 256;

/// The run's header: its bytes as written (a BOM, the terminator) and its field names.
pub struct Header {
    pub raw: Vec<u8>,
    pub fields: Vec<Vec<u8>>,
    pub delimiter: u8,
}

/// A failure to write an output, naming the file and the key.
#[derive(Debug)]
pub struct WriteError {
    /// The file, as shown to the user.
    pub file: String,
    /// The key whose records it holds, if the failure concerns one.
    pub key: Option<Vec<u8>>,
    pub error: io::Error,
    /// Refused before anything was written to it (`--append` onto another header): exit 2.
    pub refused: bool,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{} (key \"{}\"): {}", self.file, shown(key), self.error),
            None => write!(f, "{}: {}", self.file, self.error),
        }
    }
}

/// What `finish` reports.
pub struct Finished {
    pub bytes_written: u64,
    pub records_written: u64,
    pub files: usize,
    pub pager: Stats,
    /// The first failure, if any (the other files were still flushed and closed).
    pub error: Option<WriteError>,
    pub dir: Arc<Outdir>,
}

/// The field names of the first record of a file (a BOM left out), `None` if it is empty.
pub fn first_record(file: &std::fs::File, delimiter: u8) -> io::Result<Option<Vec<Vec<u8>>>> {
    let mut splitter = Splitter::with_buffer(ReadAt::new(file, 0), delimiter, 0, 4096);
    let count = match splitter.next_record(true) {
        Ok(Some(record)) => record.fields,
        Ok(None) => return Ok(None),
        Err(super::records::SplitError::Io(error)) => return Err(error),
        Err(super::records::SplitError::UnterminatedQuote { line }) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("its header has a quote left open on line {line}"),
            ))
        }
    };
    Ok(Some(splitter.fields(count)))
}

/// How much of `buf` (whole records, as buffered) lies within its first `reached` bytes:
/// the end of the last whole record there, and how many records end by it.
pub fn whole_records(buf: &[u8], reached: u64, delimiter: u8) -> (usize, u64) {
    let mut splitter = Splitter::with_buffer(buf, delimiter, 0, buf.len());
    let (mut end, mut count, mut at) = (0, 0, 0u64);
    while let Ok(Some(record)) = splitter.next_record(false) {
        at += (record.bom.len() + record.raw.len() + record.missing.len()) as u64;
        if at > reached {
            break;
        }
        end = at as usize;
        count += 1;
    }
    (end, count)
}

/// Key `at`'s records, waiting for the writer: `earlier`, then `buf`.
struct Slot {
    /// Records that go before `buf`'s (those of the first half, when the second half's are
    /// taken: see [`Outputs::merge`]); usually empty.
    earlier: Vec<u8>,
    buf: Vec<u8>,
    /// Records in `earlier` and `buf`.
    pending: u64,
    /// `earlier` (or `buf`, if `earlier` is empty) starts with the header (a new file not
    /// written yet).
    header_in_buf: bool,
    /// The file, once the writer has opened it (shared to see whether it is resident).
    file: Arc<OnceLock<VirtualFile>>,
}

/// The writer thread and its two channels.
struct Running {
    tasks: Sender<Task>,
    back: Receiver<Back>,
    thread: JoinHandle<Done>,
}

pub struct Outputs {
    pager: Pager,
    dir: Arc<Outdir>,
    layout: Layout,
    existing: Existing,
    delimiter: u8,
    header: Option<Arc<Header>>,
    /// Each key's slot, by number (see [`Keyed`]).
    slots: Keyed<Slot>,
    sizes: SizeClasses,
    /// New keys not yet sent to the writer (see [`CREATE_BATCH`]).
    new_keys: Vec<NewKey>,
    /// The buffers have reached the bound at least once (see [`NewKey::early`]).
    pressed: bool,
    /// Files are created at their first write, not when their key is first seen (see
    /// [`Outputs::create_files_late`]).
    late: bool,
    /// What the second half's buffers hold, while it runs (see [`Outputs::lend`]).
    lent: Option<Arc<AtomicUsize>>,
    /// The budget when the share was lent.
    lent_from: usize,
    /// Capacity of the buffers held here.
    held: usize,
    /// Capacity of the buffers handed to the writer and not yet written.
    in_flight: usize,
    /// Per-key bookkeeping, in bytes (see [`PER_KEY`]).
    bookkeeping: usize,
    memory: usize,
    /// What the buffers may hold: the bound less the bookkeeping, or the floor.
    budget: usize,
    /// A warning to show, once (the bookkeeping passed the bound).
    warning: Option<String>,
    warned: bool,
    writer: Option<Running>,
}

impl Outputs {
    pub fn new(
        pager: Pager,
        dir: Outdir,
        layout: Layout,
        existing: Existing,
        delimiter: u8,
        memory: usize,
    ) -> Outputs {
        Outputs {
            pager,
            dir: Arc::new(dir),
            layout,
            existing,
            delimiter,
            header: None,
            slots: Keyed::default(),
            sizes: SizeClasses::default(),
            new_keys: Vec::new(),
            pressed: false,
            late: false,
            lent: None,
            lent_from: 0,
            held: 0,
            in_flight: 0,
            bookkeeping: 0,
            memory,
            budget: budget(memory, 0),
            warning: None,
            warned: false,
            writer: None,
        }
    }

    /// The layout, once the key columns are known (before the first key).
    pub fn set_layout(&mut self, layout: Layout) {
        self.layout = layout;
    }

    pub fn set_header(&mut self, header: Header) {
        self.header = Some(Arc::new(header));
    }

    pub fn keys(&self) -> usize {
        self.slots.len()
    }

    pub fn stats(&self) -> Stats {
        self.pager.stats()
    }

    /// What the buffers may hold now.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// While the second half of an input runs (see [`super::halves`]), what its buffers
    /// hold (`held`) is taken off the buffers' budget here; `None` once it is merged or
    /// dropped.
    pub fn lend(&mut self, held: Option<Arc<AtomicUsize>>) {
        self.lent = held;
        self.lent_from = self.budget;
    }

    /// Whether the second half holds more than the buffers' budget, which the keys'
    /// bookkeeping has shrunk since its share was lent: it must then be dropped (its records
    /// cannot be written before the main thread reaches them), or the buffers pass the bound
    /// that one parser keeps. (A budget that has not shrunk was at least twice its share:
    /// it holds more only by its last buffer's growth, as one parser's buffers may.)
    pub fn lent_past_budget(&self) -> bool {
        self.lent.as_ref().is_some_and(|held| {
            self.budget < self.lent_from && held.load(Ordering::Relaxed) > self.budget
        })
    }

    /// What the buffers here may hold now: the budget, less what the second half holds.
    #[inline]
    fn room(&self) -> usize {
        let lent = self
            .lent
            .as_ref()
            .map_or(0, |held| held.load(Ordering::Relaxed));
        self.budget.saturating_sub(lent)
    }

    /// From now on, a new key's file is created at its first write (usually at the end), not
    /// early by the writer: while two threads parse, the writer's early creating would take
    /// a core from them, and a file created early costs a second open (and a `statx`) at
    /// its write.
    pub fn create_files_late(&mut self) {
        self.late = true;
    }

    /// Takes the second half's records, after every record added so far: its keys in the
    /// order it first saw them (those new here numbered after the keys seen here, as one
    /// parser would have numbered them), and the share of the bound it was lent back.
    pub fn merge(&mut self, half: Half) -> Result<(), WriteError> {
        self.lent = None;
        // Looked up a batch at a time, as records are (see `Outputs::find_all`): one after
        // the other, the lookups took 12 ms of a 40 ms merge (50,000 keys), in which the
        // writer had nothing to do.
        let mut entries = half.keys.into_ordered();
        let (mut batch, mut found) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
        loop {
            batch.extend(entries.by_ref().take(BATCH));
            if batch.is_empty() {
                break;
            }
            self.slots.find_all(
                batch.iter().map(|(key, _)| key.as_ref()),
                &mut found,
                |_| {},
            );
            for ((key, part), &found) in batch.drain(..).zip(&found) {
                self.merge_part(key.as_ref(), found, part)?;
            }
        }
        if self.held + self.in_flight > self.budget {
            self.make_room()?;
        }
        Ok(())
    }

    /// One key's records from the second half, after those held here (`found`: where the key
    /// was when looked up, as [`Outputs::find_all`] gives it; a key not found then is new
    /// still, the second half's keys being distinct).
    fn merge_part(&mut self, key: &[u8], found: Option<u32>, part: Part) -> Result<(), WriteError> {
        let at = match found {
            Some(at) => at,
            None => self.new_output(key, 0)?,
        };
        let slot = &mut self.slots[at];
        let before = slot.earlier.capacity() + slot.buf.capacity();
        if slot.buf.is_empty() && slot.earlier.is_empty() {
            slot.buf = part.buf; // (handed to the writer since, or never filled)
        } else if slot.earlier.is_empty() {
            slot.earlier = std::mem::replace(&mut slot.buf, part.buf);
        } else {
            // (A third part: the earlier two are made one, which seldom happens: two
            // inputs split, with a key held over from the first.)
            slot.earlier.extend_from_slice(&slot.buf);
            slot.buf = part.buf;
        }
        slot.pending += part.records;
        let len = slot.earlier.len() + slot.buf.len();
        self.held = self.held - before + slot.earlier.capacity() + slot.buf.capacity();
        self.sizes.set(at, len);
        Ok(())
    }

    /// The per-key bookkeeping so far, in bytes (an estimate: [`PER_KEY`] a key, and twice
    /// its length).
    pub fn bookkeeping(&self) -> usize {
        self.bookkeeping
    }

    /// The warning to show, once, when the bookkeeping passed `--memory`.
    pub fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }

    fn refused(&self, name: &[u8], message: String) -> WriteError {
        WriteError {
            file: shown_path(&self.dir.path().join(super::os::name_of(name))),
            key: None,
            error: io::Error::new(io::ErrorKind::InvalidData, message),
            refused: true,
        }
    }

    /// With `--append`: every existing, non-empty file under OUTDIR that this run could write
    /// (its path fits the layout) must start with the run's header (a BOM aside). Checked
    /// before anything is written.
    pub fn check_append(&self) -> Result<(), WriteError> {
        let Some(header) = &self.header else {
            return Ok(());
        };
        if self.existing != Existing::Append {
            return Ok(());
        }
        let components = self.layout.components();
        let files = self
            .dir
            .files(components.len())
            .map_err(|error| WriteError {
                file: shown_path(self.dir.path()),
                key: None,
                error,
                refused: false,
            })?;
        for (path, _) in files {
            let parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
            let fits = parts.len() == components.len()
                && parts.iter().zip(&components).all(|(part, c)| c.fits(part));
            if !fits {
                continue;
            }
            let Ok(file) = self.dir.open_existing(&path) else {
                continue; // not a regular file: refused when (if) it is opened
            };
            check_header(&file, header).map_err(|message| self.refused(&path, message))?;
        }
        Ok(())
    }

    /// Adds a record to its key's buffer: `parts` are its bytes (a BOM, the record, a
    /// terminator it lacked). Fails with the writer's first failure, once it has one.
    pub fn add(&mut self, key: &[u8], parts: [&[u8]; 3]) -> Result<(), WriteError> {
        let found = self.slots.find(key);
        self.add_found(found, key, parts)
    }

    /// Where each of `keys` is, as [`Outputs::add_found`] takes it: looked up one after the
    /// other with nothing in between, so that the lookups' cache misses overlap.
    pub fn find_all<'k>(&self, keys: impl Iterator<Item = &'k [u8]>, found: &mut Vec<Option<u32>>) {
        // The end of each buffer is where its record goes: read it now, so that these
        // misses overlap too.
        self.slots.find_all(keys, found, |slot| {
            std::hint::black_box(slot.buf.last().copied());
        });
    }

    /// [`Outputs::add`] for a key looked up already (by [`Outputs::find_all`]: `None` if it
    /// was new then; it may have been added since).
    pub fn add_found(
        &mut self,
        found: Option<u32>,
        key: &[u8],
        parts: [&[u8]; 3],
    ) -> Result<(), WriteError> {
        let at = match found.or_else(|| self.slots.find(key)) {
            Some(at) => at,
            None => self.new_output(key, parts.iter().map(|part| part.len()).sum())?,
        };
        let slot = &mut self.slots[at];
        let (before, len) = (slot.buf.capacity(), slot.earlier.len() + slot.buf.len());
        super::sizes::append(&mut slot.buf, &parts);
        slot.pending += 1;
        self.held += slot.buf.capacity() - before;
        self.sizes
            .grew(at, len, slot.earlier.len() + slot.buf.len());
        if self.held + self.in_flight > self.room() {
            self.make_room()?;
        }
        Ok(())
    }

    /// The writer, started with the first key (the header is known by then).
    fn writer(&mut self) -> &Running {
        self.writer.get_or_insert_with(|| {
            let (tasks, receiver) = mpsc::channel();
            let (sender, back) = mpsc::channel();
            let setup = Setup {
                pager: self.pager.clone(),
                dir: Arc::clone(&self.dir),
                layout: self.layout.clone(),
                existing: self.existing,
                delimiter: self.delimiter,
                header: self.header.clone(),
            };
            let thread = std::thread::Builder::new()
                .name("writer".into())
                .spawn(move || writer::run(setup, receiver, sender))
                .expect("a thread for the writer");
            Running {
                tasks,
                back,
                thread,
            }
        })
    }

    /// Sends `task`, after the new keys not sent yet (a key's file is created before any of
    /// its buffers is written).
    fn send(&mut self, task: Task) -> Result<(), WriteError> {
        self.send_new_keys()?;
        self.writer()
            .tasks
            .send(task)
            .map_err(|_| self.writer_gone())
    }

    fn send_new_keys(&mut self) -> Result<(), WriteError> {
        if self.new_keys.is_empty() {
            return Ok(());
        }
        let keys = std::mem::take(&mut self.new_keys);
        self.writer()
            .tasks
            .send(Task::Create(keys))
            .map_err(|_| self.writer_gone())
    }

    fn writer_gone(&self) -> WriteError {
        WriteError {
            file: shown_path(self.dir.path()),
            key: None,
            error: io::Error::other("the writing thread ended early"),
            refused: false,
        }
    }

    fn new_output(&mut self, key: &[u8], record_len: usize) -> Result<u32, WriteError> {
        let at = u32::try_from(self.slots.len()).map_err(|_| WriteError {
            file: shown_path(self.dir.path()),
            key: Some(key.to_vec()),
            error: io::Error::other("more than 4,294,967,295 keys"),
            refused: false,
        })?;
        let file = Arc::new(OnceLock::new());
        self.new_keys.push(NewKey {
            key: key.into(),
            file: Arc::clone(&file),
            // Once the bound has been reached, a new key's buffer is likely to be written
            // mid-run: its file is then best created by the pager at that first write (a
            // file created early would need a slower open by the pager then).
            early: !self.pressed && !self.late,
        });
        if self.new_keys.len() >= CREATE_BATCH {
            self.send_new_keys()?;
        }
        // A new file starts with the header: in the buffer, so that it goes out in the same
        // write as the first records. (Appending, the header depends on the file: the writer
        // sees to it.)
        let header_len = self.header.as_ref().map_or(0, |header| header.raw.len());
        let first = header_len + FIRST_RECORDS * record_len;
        let mut buf = Vec::with_capacity(first.min(FIRST_CAPACITY).min(self.budget / 64));
        if let (Some(header), false) = (&self.header, self.existing == Existing::Append) {
            buf.extend_from_slice(&header.raw);
        }
        self.held += buf.capacity();
        let header_in_buf = !buf.is_empty();
        let slot = Slot {
            earlier: Vec::new(),
            buf,
            pending: 0,
            header_in_buf,
            file,
        };
        let len = slot.buf.len();
        let pushed = self.slots.push(key, slot);
        debug_assert_eq!(pushed, Some(at), "numbered as counted above");
        self.sizes.set(at, len);
        self.bookkeeping += PER_KEY + 2 * key.len();
        self.budget = budget(self.memory, self.bookkeeping);
        if self.bookkeeping > self.memory && !self.warned {
            self.warned = true;
            self.warning = Some(format!(
                "--memory {} is less than the bookkeeping of the {} keys seen so far ({}, about \
                 {PER_KEY} bytes a key and twice its length), which stays to the end: the \
                 buffers keep {} besides it, over the bound (--memory {} or more would hold \
                 these keys and {} of buffers)",
                mib(self.memory),
                self.slots.len(),
                mib(self.bookkeeping),
                mib(self.budget),
                mib_arg(self.bookkeeping + FLOOR),
                mib(FLOOR)
            ));
        }
        Ok(at)
    }

    /// Takes what the writer sent back; with `wait`, waits for at least one message first.
    /// The writer's first failure is returned (the run stops).
    fn collect(&mut self, mut wait: bool) -> Result<(), WriteError> {
        let Some(running) = &self.writer else {
            return Ok(());
        };
        loop {
            let message = if wait {
                wait = false;
                running.back.recv().map_err(|_| ())
            } else {
                match running.back.try_recv() {
                    Ok(message) => Ok(message),
                    Err(TryRecvError::Empty) => return Ok(()),
                    Err(TryRecvError::Disconnected) => Err(()),
                }
            };
            match message {
                Ok(Back::Freed(bytes)) => self.in_flight -= bytes,
                Ok(Back::Failed(error)) => return Err(error),
                Err(()) => return Err(self.writer_gone()),
            }
        }
    }

    /// Hands the largest buffers to the writer until half of the budget is held here, then
    /// waits while the writer is behind by more than the other half.
    fn make_room(&mut self) -> Result<(), WriteError> {
        self.collect(false)?;
        let room = self.room();
        if self.held + self.in_flight <= room {
            return Ok(());
        }
        self.pressed = true;
        let mut batch = Vec::new();
        while self.held > room / 2 {
            let largest = self.sizes.largest();
            let Some(&last) = largest.last() else {
                break;
            };
            // Among the largest, a file that is resident costs no page-in to write.
            let slots = &self.slots;
            let at = largest
                .iter()
                .rev()
                .take(16)
                .copied()
                .find(|&at| slots[at].file.get().is_some_and(VirtualFile::is_resident))
                .unwrap_or(last);
            batch.push(self.take(at));
            if batch.len() == WRITE_BATCH {
                self.hand_over(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            self.hand_over(batch)?;
        }
        while self.held + self.in_flight > room {
            self.collect(true)?;
        }
        Ok(())
    }

    /// Takes key `at`'s buffer out, for the writer.
    fn take(&mut self, at: u32) -> Handed {
        self.sizes.set(at, 0);
        self.take_last(at)
    }

    /// [`Outputs::take`] once no more records come: the size classes are left as they were
    /// (with 50,000 keys, keeping them up to date cost a few ms with the writer waiting for
    /// the last buffers).
    fn take_last(&mut self, at: u32) -> Handed {
        let slot = &mut self.slots[at];
        let handed = Handed {
            at,
            earlier: std::mem::take(&mut slot.earlier),
            buf: std::mem::take(&mut slot.buf),
            records: std::mem::take(&mut slot.pending),
            header_in_buf: std::mem::take(&mut slot.header_in_buf),
        };
        self.held -= handed.capacity();
        handed
    }

    /// Gives buffers taken out to the writer.
    fn hand_over(&mut self, batch: Vec<Handed>) -> Result<(), WriteError> {
        self.in_flight += batch.iter().map(Handed::capacity).sum::<usize>();
        self.send(Task::Write(batch))
    }

    /// Hands every buffer to the writer (as one last task, written by two threads), waits
    /// for it to write them and close every file, and reports. The first error not yet
    /// returned by [`add`] is reported, after all the rest is done.
    ///
    /// [`add`]: Outputs::add
    pub fn finish(mut self) -> Finished {
        let mut first: Option<WriteError> = None;
        let full: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&at| !self.slots[at].buf.is_empty() || !self.slots[at].earlier.is_empty())
            .collect();
        let last: Vec<Handed> = full.into_iter().map(|at| self.take_last(at)).collect();
        if let Err(error) = self.send_new_keys() {
            first.get_or_insert(error);
        }
        if !last.is_empty() {
            if let Err(error) = self.send(Task::Last(last)) {
                first.get_or_insert(error);
            }
        }
        // The writer closes the files: it must hold the last handle on each.
        self.slots.clear();
        let mut done = Done {
            bytes_written: 0,
            records_written: 0,
            files: 0,
        };
        if let Some(Running {
            tasks,
            back,
            thread,
        }) = self.writer.take()
        {
            drop(tasks);
            match thread.join() {
                Ok(finished) => done = finished,
                Err(_) => {
                    first.get_or_insert(self.writer_gone());
                }
            }
            for message in back.try_iter() {
                if let Back::Failed(error) = message {
                    first.get_or_insert(error);
                }
            }
        }
        let finished = Finished {
            bytes_written: done.bytes_written,
            records_written: done.records_written,
            files: done.files,
            pager: self.pager.stats(),
            error: first,
            dir: Arc::clone(&self.dir),
        };
        // What is left (the pager's table of every file, the names given out, the size
        // classes) is freed by a thread of its own, as the writer's outputs are (see
        // `writer::Writer::close_all`): freed here, it kept the run's last thread busy alone
        // for 10-25 ms (50,000 keys), `malloc_consolidate` mostly. No descriptor goes with it:
        // the writer has closed every file, and OUTDIR's (`dir`) stays on this thread, closed
        // when `finished` is dropped (that thread may never get to the end of its work before
        // the process exits: `handoff audit --leaks` found OUTDIR's descriptor open at exit).
        let rest = (self.pager, self.layout, self.sizes);
        let _ = std::thread::Builder::new()
            .name("outputs drop".into())
            .spawn(move || drop(rest));
        finished
    }
}

/// What the buffers may hold, with `bookkeeping` bytes of it taken by the keys: the rest of
/// the bound less an eighth of it ([`HOLES`]), but at least [`FLOOR`] (or the whole bound, if
/// smaller). Once the bookkeeping is many times the bound (the run is far over it anyway, and
/// has warned), an eighth of the bookkeeping, up to the floor: with many keys, buffers of a
/// tiny bound's size would hold less than a record a key, and every flush would page in a
/// file per record (`--memory 1M`, 126,000 keys: 2.1x the time of an ample bound; with 7 MiB
/// of buffers, 1.25x). A share below [`SHARE_MIN`] is not taken, so that a tiny bound with a
/// few keys (tests) still means tiny buffers.
fn budget(memory: usize, bookkeeping: usize) -> usize {
    let share = (bookkeeping / 8).min(FLOOR);
    let share = if share >= SHARE_MIN { share } else { 0 };
    let rest = memory.saturating_sub(bookkeeping);
    (rest - rest / HOLES).max(memory.min(FLOOR)).max(share)
}

/// `n` bytes in MiB, for messages.
fn mib(n: usize) -> String {
    format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
}

/// `n` bytes as a `--memory` argument, rounded up to whole MiB.
fn mib_arg(n: usize) -> String {
    format!("{}M", n.div_ceil(1 << 20))
}

/// Whether `file` starts with the run's header (a BOM aside): the message saying why not.
pub fn check_header(file: &std::fs::File, header: &Header) -> Result<(), String> {
    match first_record(file, header.delimiter) {
        Err(error) => Err(format!("cannot read its header: {error}")),
        Ok(Some(fields)) if fields != header.fields => Err(format!(
            "--append: its header ({}) is not the input's ({}); nothing was written to it",
            shown_names(&fields),
            shown_names(&header.fields)
        )),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_bound_less_the_bookkeeping_or_the_floor() {
        // Ample: the bound less the bookkeeping, less an eighth of what is left for the
        // allocator's holes.
        assert_eq!(budget(256 * MIB, 10 * MIB), 246 * MIB / 8 * 7);
        assert_eq!(budget(256 * MIB, 0), 224 * MIB);
        // Just above the floor: the floor.
        assert_eq!(budget(9 * MIB, 0), FLOOR);
        // The bookkeeping nearly fills the bound: the floor (RSS stays within bound + floor).
        assert_eq!(budget(64 * MIB, 60 * MIB), FLOOR);
        // A bound below the floor: the whole bound, besides the bookkeeping.
        assert_eq!(budget(6 * MIB, 9 * MIB), 6 * MIB);
        // Tiny bounds with a few keys stay tiny.
        assert_eq!(budget(64, 5 * PER_KEY), 64);
        assert_eq!(budget(1024, 3 * PER_KEY), 1024);
        // Far over the bound: an eighth of the bookkeeping, up to the floor.
        assert_eq!(budget(MIB, 59 * MIB), 59 * MIB / 8);
        assert_eq!(budget(MIB, 200 * MIB), FLOOR);
    }
}
