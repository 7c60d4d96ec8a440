//! A large input's second half, parsed on a thread of its own while the main thread parses the
//! first: with two cores, the parsing takes about half the time.
//!
//! Where the halves meet is a guess: the first line break after the middle. It is right if the
//! first half's parser, reading on, finds a record boundary there (the break is not inside a
//! quoted field). The main thread sees that when it gets there; if its record runs on past the
//! guess, it cancels the second half and reads on alone (nothing of the second half was
//! written). When the guess is right, the second half's records are those one parser would find:
//! a record's parse depends only on where it starts (csv-core is reset at every record), but
//! for three things the second half leaves to the main thread: the BOM (looked for only at the
//! start of an input), the line numbers (for messages) and the terminator given to a last record
//! that lacks one. So it stops before any record it cannot simply take (a malformed one without
//! `--skip-malformed`, an unterminated last one, one it fails to read), and before its buffers
//! pass its share of `--memory`; the main thread takes its keys after its own, in the order the
//! second half first saw them (as one parser would have numbered them), and reads on from where
//! it stopped with one parser, which meets whatever stopped it, with the right line.
//!
//! Until the main thread takes them, the second half's records are only in its buffers, never
//! written: a stop in the first half (a signal, a failure) leaves the files holding a prefix of
//! the input, as one parser would. Its buffers and its table of keys count against `--memory`
//! (the main thread lends it a share).

use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use super::input::ReadAt;
use super::keyed::Keyed;
use super::layout::join_key;
use super::records::{terminator_of, Splitter};
use super::BATCH;

/// Inputs with less than this left after the header are parsed by one thread (overridden by
/// `HANDOFF_PARTITION_SPLIT_MIN`, in bytes, for tests).
const SPLIT_MIN: u64 = 16 << 20;

/// A new key's buffer starts with room for this much (it grows by half: see
/// [`super::sizes::append`]).
const FIRST_CAPACITY: usize = 256;

/// The first half's share of the input, in percent: the main thread has more to do per record
/// (the writer's bookkeeping, the progress; its reading is done by a thread of its own), and
/// with halves of one size it ended 70–160 ms after the second half here (2M lines, 50,000
/// keys).
const FIRST_SHARE: u64 = 45;

/// The second half stops before a record longer than this (the main thread takes it from
/// there): the splitter's buffers, which grow to hold a record, stay within a few times this.
const LONGEST: usize = 4 << 20;

/// How far past the guess a line break is looked for.
const SEARCH: usize = 1 << 20;

/// One key's records in the second half.
pub struct Part {
    /// Its records, whole, in input order.
    pub buf: Vec<u8>,
    /// How many records `buf` holds.
    pub records: u64,
}

/// What the second half found.
pub struct Half {
    /// Its keys, numbered in the order it first saw them, with their records.
    pub keys: Keyed<Part>,
    /// Capacity of the buffers.
    pub held: usize,
    pub records: u64,
    /// Records skipped (`--skip-malformed`).
    pub malformed: u64,
    /// Where the records it did not take start (the end of the input if it took them all).
    pub resume_at: u64,
    /// Lines it took: the main thread's line count goes on from its own plus these.
    pub lines: u64,
    /// The terminator of the last record it took (`None` if it took none).
    pub last_terminator: Option<&'static [u8]>,
    /// It took every record to the end of the input.
    pub ended: bool,
}

/// What the second half's parser needs to know.
pub struct Plan {
    /// The input, shared with the main thread (each reads by positional reads).
    pub file: Arc<File>,
    pub delimiter: u8,
    /// The key columns (0-based): one, or several whose values are joined (see
    /// [`super::layout::join_key`]).
    pub columns: Vec<usize>,
    /// The number of fields every record must have.
    pub expected: usize,
    /// Malformed records are skipped and counted (else the second half stops before one).
    pub skip_malformed: bool,
    /// `--prefix-length`: the key is its first N bytes.
    pub prefix_length: Option<u64>,
    /// The memory it may hold: its buffers and what it has read and not parsed.
    pub share: usize,
    /// Set (to the signal's number) by SIGINT/SIGTERM: it stops.
    pub signal: Arc<AtomicUsize>,
}

/// The second half, being parsed.
pub struct SecondHalf {
    /// Where it starts: the guess.
    pub start: u64,
    /// When its thread was started (see [`super::phases`]).
    pub started_at: Instant,
    cancel: Arc<AtomicBool>,
    /// Bytes of the input it has parsed so far (for the progress).
    pub read: Arc<AtomicU64>,
    /// The memory it holds: its buffers, and what it has read and not yet parsed (taken off
    /// the main thread's budget meanwhile).
    pub held: Arc<AtomicUsize>,
    /// What it found, and when its parser ended (see [`super::phases`]).
    thread: JoinHandle<Option<(Half, Instant)>>,
}

/// Whether an input of `len` bytes, `from` of which are parsed, is worth splitting.
pub fn worth_splitting(from: u64, len: u64) -> bool {
    let least = std::env::var("HANDOFF_PARTITION_SPLIT_MIN")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(SPLIT_MIN);
    len.saturating_sub(from) >= least.max(1)
}

/// Starts parsing the part of `plan.file` (`len` bytes) after the first line break past the
/// middle of `from..len`; `None` if there is no such break near the middle, or no thread.
pub fn start(plan: Plan, from: u64, len: u64) -> Option<SecondHalf> {
    let first = u128::from(len - from) * u128::from(FIRST_SHARE) / 100;
    let middle = from + u64::try_from(first).ok()?;
    let mut window = vec![0; SEARCH.min(usize::try_from(len - middle).ok()?)];
    let mut got = 0;
    while got < window.len() {
        match super::os::read_at(&plan.file, &mut window[got..], middle + got as u64) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got += n,
        }
    }
    let at = memchr::memchr(b'\n', &window)?;
    let start = middle + at as u64 + 1;
    if start >= len {
        return None;
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let read = Arc::new(AtomicU64::new(0));
    let held = Arc::new(AtomicUsize::new(0));
    let shared = Shared {
        cancel: Arc::clone(&cancel),
        read: Arc::clone(&read),
        held: Arc::clone(&held),
    };
    let started_at = Instant::now();
    let thread = std::thread::Builder::new()
        .name("second half".into())
        .spawn(move || {
            super::huge_pages::grow_this_threads_heap();
            let half = parse(&plan, start, &shared);
            let parsed_at = Instant::now();
            // Cancelled: its records will not be taken, its memory is freed now.
            (!shared.cancel.load(Ordering::Relaxed)).then_some((half, parsed_at))
        })
        .ok()?;
    Some(SecondHalf {
        start,
        started_at,
        cancel,
        read,
        held,
        thread,
    })
}

impl SecondHalf {
    /// Tells it to stop at once: its records will not be taken.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// What it found and when its parser ended (`None` if it was cancelled, or its thread
    /// failed); with `cancel`, it is told to stop first.
    pub fn join(self, cancel: bool) -> Option<(Half, Instant)> {
        if cancel {
            self.cancel();
        }
        self.thread.join().ok().flatten()
    }
}

/// The second half's input: positional reads from its start, which fail (`Interrupted`, which
/// the splitter takes for a stop) once it is cancelled, or once what it has read and not yet
/// parsed passes [`LONGEST`] or its share of `--memory` less its buffers (a guess inside a
/// quoted field may make the rest of the input look like one record: the splitter's buffers
/// would grow to hold it all, twice: as read and as decoded).
struct Watched {
    input: ReadAt<Arc<File>>,
    read: u64,
    cancel: Arc<AtomicBool>,
    parsed: Arc<AtomicU64>,
    /// The buffers' memory (and what was unparsed when it was counted).
    held: Arc<AtomicUsize>,
    share: usize,
}

impl Read for Watched {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let unparsed = self.read - self.parsed.load(Ordering::Relaxed);
        let room = self.share - self.held.load(Ordering::Relaxed).min(self.share);
        if self.cancel.load(Ordering::Relaxed) || unparsed > room.min(LONGEST) as u64 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = self.input.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// What the second half's parser shares with the main thread.
struct Shared {
    cancel: Arc<AtomicBool>,
    read: Arc<AtomicU64>,
    held: Arc<AtomicUsize>,
}

/// What to do with a record.
enum Verdict {
    Take,
    Skip,
    Stop,
}

impl Half {
    fn verdict(&mut self, plan: &Plan, fields: usize, has_key: bool) -> Verdict {
        if has_key && fields == plan.expected {
            Verdict::Take
        } else if plan.skip_malformed {
            self.malformed += 1;
            Verdict::Skip
        } else {
            Verdict::Stop
        }
    }

    /// Adds a record to its key's buffer; `false` if it cannot (past `u32::MAX` keys: the
    /// main thread meets that itself).
    fn add(&mut self, found: Option<u32>, key: &[u8], raw: &[u8]) -> bool {
        let at = match found.or_else(|| self.keys.find(key)) {
            Some(at) => at,
            None => {
                let part = Part {
                    buf: Vec::with_capacity(FIRST_CAPACITY.max(raw.len())),
                    records: 0,
                };
                // (Its table counts against the share too, as the main thread's keys'
                // bookkeeping does against the bound.)
                self.held += part.buf.capacity() + Keyed::<Part>::memory_per_key(key.len());
                match self.keys.push(key, part) {
                    Some(at) => at,
                    None => return false,
                }
            }
        };
        let part = &mut self.keys[at];
        let before = part.buf.capacity();
        super::sizes::append(&mut part.buf, &[raw]);
        part.records += 1;
        self.held += part.buf.capacity() - before;
        self.records += 1;
        true
    }

    /// Records taken up to `end` (relative to the half's start), the next line `line`.
    fn took(&mut self, start: u64, end: u64, line: u64, terminator: &'static [u8]) {
        self.resume_at = start + end;
        self.lines = line - 1;
        self.last_terminator = Some(terminator);
    }
}

/// The second half's parser: from `start` on, until the end, a record it cannot take, its
/// share of memory is used, or it is cancelled (or a signal came).
fn parse(plan: &Plan, start: u64, shared: &Shared) -> Half {
    let input = Watched {
        input: ReadAt::new(Arc::clone(&plan.file), start),
        read: 0,
        cancel: Arc::clone(&shared.cancel),
        parsed: Arc::clone(&shared.read),
        held: Arc::clone(&shared.held),
        share: plan.share,
    };
    // (The terminator given is never used: a record that lacks one is left to the main thread.)
    let mut splitter = Splitter::resume(input, plan.delimiter, plan.columns[0], 1, b"\n");
    // Several key columns: every field is decoded (the CSV path), and the key joined, as the
    // main thread does.
    let several = plan.columns.len() > 1;
    let last = plan.columns.iter().copied().max().unwrap_or(0);
    let (mut raw, mut key) = (Vec::new(), Vec::new());
    let mut half = Half {
        keys: Keyed::default(),
        held: 0,
        records: 0,
        malformed: 0,
        resume_at: start,
        lines: 0,
        last_terminator: None,
        ended: false,
    };
    let prefix = |key: &[u8]| -> usize {
        plan.prefix_length.map_or(key.len(), |n| {
            usize::try_from(n).unwrap_or(usize::MAX).min(key.len())
        })
    };
    let (mut spans, mut found) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
    loop {
        if shared.cancel.load(Ordering::Relaxed) || plan.signal.load(Ordering::Relaxed) != 0 {
            return half;
        }
        shared.read.store(splitter.consumed(), Ordering::Relaxed);
        // Its memory: the buffers, and what it has read and not yet parsed.
        let unparsed = usize::try_from(splitter.bytes_read() - splitter.consumed());
        let memory = half.held + unparsed.unwrap_or(usize::MAX);
        if shared.held.load(Ordering::Relaxed) != memory {
            // (Seldom: the main thread reads it at every record.)
            shared.held.store(memory, Ordering::Relaxed);
        }
        spans.clear();
        while spans.len() < BATCH && !several {
            match splitter.next_plain() {
                Some(span) => spans.push(span),
                None => break,
            }
        }
        if !spans.is_empty() {
            let keys = spans.iter().map(|span| {
                let key = splitter.span(span).1.unwrap_or_default();
                &key[..prefix(key)]
            });
            // (The buffers' ends read ahead too, as `Outputs::find_all` does.)
            half.keys.find_all(keys, &mut found, |part| {
                std::hint::black_box(part.buf.last().copied());
            });
            for (span, &found) in spans.iter().zip(&found) {
                let (raw, key) = splitter.span(span);
                match half.verdict(plan, span.fields, key.is_some()) {
                    Verdict::Stop => return half,
                    Verdict::Skip => {}
                    Verdict::Take => {
                        let key = key.unwrap_or_default();
                        if !half.add(found, &key[..prefix(key)], raw) {
                            return half;
                        }
                    }
                }
                let terminator = terminator_of(raw).unwrap_or(b"\n");
                half.took(start, splitter.end_of(span), span.line + 1, terminator);
                if half.held > plan.share {
                    return half;
                }
            }
            continue;
        }
        let record = match splitter.next_record(several) {
            Ok(Some(record)) => record,
            Ok(None) => {
                // (Stopped only by an interrupted read, which a positional read of a regular
                // file is not; looked at all the same.)
                half.ended = !splitter.stopped();
                return half;
            }
            Err(_) => return half,
        };
        if !record.missing.is_empty() || !record.bom.is_empty() {
            return half;
        }
        let has_key = if several {
            record.fields > last
        } else {
            record.key.is_some()
        };
        match half.verdict(plan, record.fields, has_key) {
            Verdict::Stop => return half,
            Verdict::Skip => {}
            Verdict::Take if several => {
                let count = record.fields;
                raw.clear();
                raw.extend_from_slice(record.raw);
                let fields = splitter.fields(count);
                key.clear();
                join_key(
                    plan.columns
                        .iter()
                        .map(|&at| &fields[at][..prefix(&fields[at])]),
                    &mut key,
                );
                if !half.add(None, &key, &raw) {
                    return half;
                }
            }
            Verdict::Take => {
                let key = record.key.unwrap_or_default();
                if !half.add(None, &key[..prefix(key)], record.raw) {
                    return half;
                }
            }
        }
        let (end, line) = (splitter.consumed(), splitter.line());
        half.took(start, end, line, splitter.last_terminator());
        if half.held > plan.share {
            return half;
        }
    }
}
