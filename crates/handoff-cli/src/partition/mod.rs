//! `handoff partition`: one pass over the input, one file per key, any number of keys, under
//! any descriptor limit (the files are virtual files of a `handoff::pager::Pager`).
//!
//! A run is four steps: [`setup`] (checks that need no input, then OUTDIR and the inputs),
//! header negotiation ([`Feed::header`]), feeding records ([`Feed::records`]), and
//! finishing ([`finish`]: every buffer flushed, every file closed, the summary). Whatever
//! stops the feeding — the end, a signal, a bad input, a failed write — the records read
//! before it are written whole, and the summary says how many.

pub mod display;
pub mod halves;
pub mod huge_pages;
pub mod input;
pub mod job;
pub mod keyed;
pub mod layout;
pub mod names;
pub mod os;
#[cfg(unix)]
pub mod outdir;
#[cfg(windows)]
#[path = "outdir_windows.rs"]
pub mod outdir;
pub mod outputs;
pub mod phases;
pub mod records;
pub mod sizes;
pub mod writer;

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use handoff::pager::{Pager, Stats};

use crate::progress::Progress;
use display::{shown, shown_names, shown_path};
use halves::{Half, Plan, SecondHalf};
use input::{Prefetch, ReadAt};
pub use job::Job;
use job::LayoutKind;
use layout::Layout;
use outdir::{Existing, Identity, Outdir, OutdirError};
use outputs::{Header, Outputs, WriteError};
use phases::Phases;
use records::{SplitError, Splitter};

/// How a run ended, for the summary.
#[derive(Debug, Default)]
pub struct Summary {
    /// Records read and accepted (all written, unless `failure` says otherwise).
    pub records: u64,
    /// Records written to the files, whole.
    pub written: u64,
    pub malformed: u64,
    pub files: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub elapsed: Duration,
    pub pager: Stats,
    /// The signal that stopped the run early, if one did.
    pub interrupted_by: Option<usize>,
    /// What stopped the run after it began writing, if anything did.
    pub failure: Option<Failure>,
    /// The per-key bookkeeping at the end, in bytes, if it was more than `--memory`.
    pub bookkeeping_over: Option<usize>,
}

/// Why a run failed.
#[derive(Debug)]
pub enum Failure {
    /// The command line asks for something impossible, or the setup is refused (exit 2).
    Usage(String),
    /// The input or an output failed (exit 1).
    Run(String),
}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Failure::Usage(message) | Failure::Run(message) => message,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Run(_) => 1,
        }
    }
}

fn run_error(message: impl Into<String>) -> Failure {
    Failure::Run(message.into())
}

impl From<WriteError> for Failure {
    fn from(error: WriteError) -> Failure {
        if error.refused {
            Failure::Usage(format!("{error}"))
        } else {
            Failure::Run(format!("cannot write {error}"))
        }
    }
}

/// The key columns as given on the command line: COLUMN split at `,` (with a header, the
/// whole of COLUMN is one name if the header has that name: see [`Feed::header`]).
fn columns_given(job: &Job) -> Vec<String> {
    job.column.split(',').map(str::to_owned).collect()
}

/// The layout for key columns `columns` (as given), checked up front: `--filename` (one `{}`,
/// nothing that leaves OUTDIR, room for the longest name the escaping makes), or the hive
/// layout's names.
fn layout_of(job: &Job, columns: &[String]) -> Result<Layout, Failure> {
    let filename = job.filename.as_deref();
    let checked = match job.layout {
        LayoutKind::Flat => {
            Layout::flat(filename.unwrap_or("{}.csv"), columns.len()).map_err(|why| {
                format!(
                    "--filename \"{}\" {why}",
                    shown(filename.unwrap_or_default().as_bytes())
                )
            })
        }
        LayoutKind::Hive => Layout::hive(columns, filename.unwrap_or("data.csv")),
    };
    checked.map_err(Failure::Usage)
}

/// Checks the key columns as given: none empty, none twice.
fn check_columns(columns: &[String]) -> Result<(), Failure> {
    for (i, column) in columns.iter().enumerate() {
        if column.is_empty() && columns.len() > 1 {
            return Err(Failure::Usage(
                "COLUMN holds an empty name between `,` (e.g. `a,,b` or a trailing `,`)".into(),
            ));
        }
        if columns[..i].contains(column) {
            return Err(Failure::Usage(format!(
                "COLUMN names \"{}\" twice",
                shown(column.as_bytes())
            )));
        }
    }
    Ok(())
}

/// The inputs, in order (`-` for standard input).
fn inputs_of(job: &Job) -> Vec<PathBuf> {
    if job.inputs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        job.inputs.clone()
    }
}

fn display_name(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".to_owned()
    } else {
        shown_path(path)
    }
}

/// The inputs' total size, if every one is a regular file (for the progress bar).
fn total_size(inputs: &[PathBuf]) -> Option<u64> {
    inputs
        .iter()
        .map(|path| match os::input_metadata(path) {
            Ok(metadata) if metadata.is_file() => Some(metadata.len()),
            _ => None,
        })
        .sum()
}

/// Refuses an input that is a file inside OUTDIR (it would be read while being written).
fn refuse_inputs_inside(inside: &HashSet<Identity>, inputs: &[PathBuf]) -> Result<(), Failure> {
    for path in inputs {
        let identity = os::input_identity(path)
            .map_err(|e| run_error(format!("cannot open input {}: {e}", display_name(path))))?;
        if identity.is_some_and(|identity| inside.contains(&identity)) {
            return Err(Failure::Usage(format!(
                "input {} is a file inside OUTDIR: it would be overwritten while it is read \
                 (move it out, or choose another OUTDIR)",
                display_name(path)
            )));
        }
    }
    Ok(())
}

/// The first step: the checks that need no input, then OUTDIR (created if missing; removed
/// again if the setup is refused) and the inputs (none may be a file inside OUTDIR). Returns
/// the outputs, ready, and the identities of the files in OUTDIR.
fn setup(job: &Job, inputs: &[PathBuf]) -> Result<(Outputs, HashSet<Identity>), Failure> {
    let columns = columns_given(job);
    let layout = layout_of(job, &columns)?;
    if job.no_headers {
        check_columns(&columns)?;
        column_indexes(job)?;
    }
    let dir = Outdir::prepare(&job.outdir).map_err(|error| match error {
        OutdirError::NotADirectory(message) => Failure::Usage(message),
        OutdirError::Failed(message) => Failure::Run(message),
    })?;
    let checked = (|| {
        let existing = job.existing.mode();
        let names = dir
            .names()
            .map_err(|e| run_error(format!("cannot read {}: {e}", shown_path(dir.path()))))?;
        if existing == Existing::Refuse && !names.is_empty() {
            return Err(Failure::Usage(format!(
                "{} already holds {} entries; use --append to add records to the files there \
                 (headers go only to new files), or --force to replace the files this run \
                 writes",
                shown_path(dir.path()),
                names.len()
            )));
        }
        // As deep as the layout's paths go (its files may be an input's).
        let depth = layout.components().len().max(columns.len() + 1);
        let inside = dir
            .file_identities(depth)
            .map_err(|e| run_error(format!("cannot read {}: {e}", shown_path(dir.path()))))?;
        refuse_inputs_inside(&inside, inputs)?;
        let _ = handoff::limits::raise(); // more descriptors only help; the budget is ours
        let pager = match job.max_open {
            Some(n) => Pager::new(usize::try_from(n).unwrap_or(usize::MAX)),
            None => Pager::from_limit().map_err(|e| run_error(format!("descriptor limit: {e}")))?,
        };
        Ok((pager, inside))
    })();
    match checked {
        Ok((pager, inside)) => Ok((
            Outputs::new(
                pager,
                dir,
                layout,
                job.existing.mode(),
                job.delimiter,
                job.memory,
            ),
            inside,
        )),
        Err(failure) => {
            dir.remove_if_created();
            Err(failure)
        }
    }
}

/// The key columns as 0-based indexes (with `--no-headers`).
fn column_indexes(job: &Job) -> Result<Vec<usize>, Failure> {
    columns_given(job)
        .iter()
        .map(|column| match column.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n - 1),
            _ => Err(Failure::Usage(format!(
                "with --no-headers, COLUMN is a 1-based index (or several: `2,3`), not \"{}\"",
                shown(job.column.as_bytes())
            ))),
        })
        .collect()
}

/// Why feeding stopped early.
enum Stop {
    Signal(usize),
    Failed(Failure),
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Stop {
        Stop::Failed(failure)
    }
}

impl From<WriteError> for Stop {
    fn from(error: WriteError) -> Stop {
        Stop::Failed(error.into())
    }
}

/// Plain records found before their keys are looked up, together (see
/// [`Splitter::next_plain`]).
const BATCH: usize = 32;

/// An input being read: its splitter, and the file (shared with a second half's parser) and
/// its length if it is a regular file.
struct Opened {
    splitter: Splitter<Prefetch>,
    file: Option<(Arc<File>, u64)>,
}

/// Where [`Feed::records`] stopped.
enum Reached {
    /// The end of the input (or a signal: see [`Splitter::stopped`]).
    End,
    /// The start of the second half, at a record boundary.
    SecondHalf,
    /// A record ran on past where the second half begins: the guess was wrong.
    WrongGuess,
    /// The second half holds more than the buffers' budget, shrunk by the keys' bookkeeping
    /// (see [`Outputs::lent_past_budget`]).
    PastBudget,
    /// (`--no-headers`) The first record has set the field count, which a second half needs.
    FieldCount,
}

/// Where [`Feed::records`] stops, besides the input's end.
#[derive(Clone, Copy)]
enum Until<'h> {
    /// Only there.
    End,
    /// Where this second half begins (or past it: see [`Reached`]).
    SecondHalf(&'h SecondHalf),
    /// Once the field count is known: after the first record, with `--no-headers`.
    FieldCount,
}

/// The state carried from input to input.
struct Feed<'a> {
    job: &'a Job,
    signal: &'a Arc<AtomicUsize>,
    outputs: Outputs,
    /// Identities of the files in OUTDIR at the start: no input may be one of them.
    inside: HashSet<Identity>,
    /// The key columns, once known (at once with --no-headers; from the first header).
    columns: Vec<usize>,
    /// A key of several columns, joined (see [`layout::join_key`]).
    key: Vec<u8>,
    /// A record's bytes, copied out of the splitter (several key columns).
    raw: Vec<u8>,
    /// The first header's field names.
    header: Option<Vec<Vec<u8>>>,
    /// Fields every record must have.
    expected: Option<usize>,
    summary: Summary,
    progress: Progress,
    /// Bytes of the current input parsed by others: before a resumed splitter's start, and
    /// by a second half still running (for the progress).
    read_elsewhere: u64,
    second_read: Option<Arc<AtomicU64>>,
    /// When each phase ended (see [`phases`]).
    phases: Phases,
}

impl Feed<'_> {
    fn stopped(&self) -> Option<Stop> {
        match self.signal.load(Ordering::Relaxed) {
            0 => None,
            signal => Some(Stop::Signal(signal)),
        }
    }

    fn open(&self, path: &Path) -> Result<Opened, Failure> {
        let name = display_name(path);
        let mut shared = None;
        let input: Box<dyn Read + Send> = if path == Path::new("-") {
            Box::new(io::stdin())
        } else {
            let file = File::open(path)
                .map_err(|e| run_error(format!("cannot open input {name}: {e}")))?;
            // Checked again on what was opened: the path may have changed since the setup.
            let identity = os::identity(&file)
                .map_err(|e| run_error(format!("cannot open input {name}: {e}")))?;
            if identity.is_some_and(|identity| self.inside.contains(&identity)) {
                return Err(Failure::Usage(format!(
                    "input {name} is a file inside OUTDIR"
                )));
            }
            match file.metadata() {
                Ok(metadata) if metadata.is_file() => {
                    let file = Arc::new(file);
                    shared = Some((Arc::clone(&file), metadata.len()));
                    // By positional reads, from an offset of its own: a second half's parser
                    // shares the file, and on Windows its positional reads (`seek_read`) move
                    // the file's cursor.
                    Box::new(ReadAt::new(file, 0))
                }
                _ => Box::new(file),
            }
        };
        Ok(Opened {
            splitter: self.splitter(input, None),
            file: shared,
        })
    }

    /// A splitter over `input` read ahead; `resumed`: from a record boundary in the middle of
    /// an input, on this line, after this terminator.
    fn splitter(
        &self,
        input: Box<dyn Read + Send>,
        resumed: Option<(u64, &'static [u8])>,
    ) -> Splitter<Prefetch> {
        let input = Prefetch::spawn(input, Arc::clone(self.signal));
        let (delimiter, column) = (
            self.job.delimiter,
            self.columns.first().copied().unwrap_or(0),
        );
        match resumed {
            None => Splitter::new(input, delimiter, column),
            Some((line, terminator)) => {
                Splitter::resume(input, delimiter, column, line, terminator)
            }
        }
    }

    /// Step two: an input's header. The first one names the key column and becomes every
    /// file's first record; the others must have the same names.
    fn header(&mut self, splitter: &mut Splitter<Prefetch>, name: &str) -> Result<(), Stop> {
        let record = match splitter.next_record(true) {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(()), // empty, or stopped (seen by the caller)
            Err(error) => return Err(split_failure(error, name).into()),
        };
        let raw = [record.bom, record.raw, record.missing].concat();
        let count = record.fields;
        let fields = splitter.fields(count);
        match &self.header {
            None => {
                let whole = &self.job.column;
                let given = if whole.contains(',') && fields.iter().any(|f| f == whole.as_bytes()) {
                    vec![whole.clone()] // a header name holding `,`
                } else {
                    columns_given(self.job)
                };
                check_columns(&given)?;
                let mut columns = Vec::new();
                for column in &given {
                    let at = fields
                        .iter()
                        .position(|field| field == column.as_bytes())
                        .ok_or_else(|| {
                            Failure::Usage(format!(
                                "{name}: no column \"{}\" in the header (columns: {})",
                                shown(column.as_bytes()),
                                shown_names(&fields)
                            ))
                        })?;
                    columns.push(at);
                }
                self.outputs.set_layout(layout_of(self.job, &given)?);
                self.outputs.set_header(Header {
                    raw,
                    fields: fields.clone(),
                    delimiter: self.job.delimiter,
                });
                self.outputs.check_append()?;
                self.expected = Some(count);
                self.header = Some(fields);
                splitter.set_column(columns[0]);
                self.columns = columns;
            }
            // The splitter was made with the first header's column already.
            Some(first) if *first == fields => {}
            Some(first) => {
                return Err(run_error(format!(
                    "{name}: its header differs from the first input's: ({}), not ({})",
                    shown_names(&fields),
                    shown_names(first)
                ))
                .into());
            }
        }
        Ok(())
    }

    /// Whether a record of `fields` fields (`has_key`: it reaches every key column), on
    /// `line`, is written: the first record sets the field count with --no-headers; a
    /// malformed record is skipped (and counted) with --skip-malformed, else an error.
    fn accept(
        &mut self,
        fields: usize,
        has_key: bool,
        line: u64,
        name: &str,
    ) -> Result<bool, Stop> {
        let expected = match self.expected {
            Some(expected) => expected,
            None => {
                // --no-headers: the first record sets the field count.
                if let Some(&column) = self.columns.iter().find(|&&column| fields <= column) {
                    return Err(Failure::Usage(format!(
                        "{name}: no column {} (the first record has {} field{})",
                        column + 1,
                        fields,
                        if fields == 1 { "" } else { "s" }
                    ))
                    .into());
                }
                *self.expected.insert(fields)
            }
        };
        if has_key && fields == expected {
            return Ok(true);
        }
        if self.job.skip_malformed {
            self.summary.malformed += 1;
            return Ok(false);
        }
        let why = if has_key {
            format!("{fields} fields where {expected} were expected")
        } else {
            let column = self.columns.iter().copied().max().unwrap_or(0);
            format!("{fields} fields, too few for the key column {}", column + 1)
        };
        Err(run_error(format!(
            "{name}:{line}: malformed record: {why} (--skip-malformed skips such records)"
        ))
        .into())
    }

    /// Step three for one input: its records, by two threads if it is large enough (see
    /// [`halves`]). Once done, `splitter` is the last one used (a second half may have been
    /// taken, and the rest read by another), and `read_elsewhere` what it did not read.
    fn body(
        &mut self,
        splitter: &mut Splitter<Prefetch>,
        file: Option<(Arc<File>, u64)>,
        name: &str,
    ) -> Result<(), Stop> {
        let Some((file, len)) = file else {
            return self.records(splitter, name, Until::End).map(drop);
        };
        if self.expected.is_none() {
            // --no-headers: a second half takes only records with the field count, which the
            // first record sets.
            if !matches!(
                self.records(splitter, name, Until::FieldCount)?,
                Reached::FieldCount
            ) {
                return Ok(()); // the end (or a signal)
            }
        }
        let Some(half) = self.second_half(splitter, &file, len) else {
            return self.records(splitter, name, Until::End).map(drop);
        };
        self.phases.ended_at("split", half.started_at);
        self.second_read = Some(Arc::clone(&half.read));
        let reached = self.records(splitter, name, Until::SecondHalf(&half));
        self.second_read = None;
        let taken = match reached {
            Ok(Reached::SecondHalf) => {
                self.phases.ended("first half parsed");
                half.join(false)
            }
            Ok(Reached::WrongGuess | Reached::PastBudget) => {
                // Stopped and dropped now: what it holds is freed (it may have stopped
                // already, its buffers kept in its thread's result until joined), before
                // its share is given back to this thread, which reads on alone.
                self.phases.ended("second half dropped");
                self.drop_second_half(half);
                os::return_freed_memory();
                return self.records(splitter, name, Until::End).map(drop);
            }
            other => {
                // The end or a stop: the second half is dropped.
                self.phases.ended("second half dropped");
                self.drop_second_half(half);
                return other.map(drop);
            }
        };
        let Some((taken, parsed_at)) = taken else {
            // Its thread failed: this one reads on from where the second half began.
            self.phases.ended("second half failed");
            self.outputs.lend(None);
            return self.records(splitter, name, Until::End).map(drop);
        };
        self.phases.ended_at("second half parsed", parsed_at);
        let ended = taken.ended;
        self.take_second_half(splitter, taken, &file, len)?;
        self.phases.ended("merged");
        let rest = self.records(splitter, name, Until::End).map(drop);
        if !ended && rest.is_ok() {
            self.phases.ended("rest parsed");
        }
        rest
    }

    /// Stops `half` and frees what it holds (its records are not taken), then gives its share
    /// of the bound back to this thread.
    fn drop_second_half(&mut self, half: SecondHalf) {
        half.join(true);
        self.outputs.lend(None);
    }

    /// Starts a second half's parser for the rest of `file` (`len` bytes), if the input is
    /// large enough and the bound lets its share hold about half of it.
    fn second_half(
        &mut self,
        splitter: &Splitter<Prefetch>,
        file: &Arc<File>,
        len: u64,
    ) -> Option<SecondHalf> {
        let expected = self.expected?;
        let from = splitter.consumed();
        if !halves::worth_splitting(from, len) {
            return None;
        }
        let share = self.outputs.budget() / 2;
        if (share as u64) < len.saturating_sub(from) / 2 {
            return None; // it would stop early, for want of memory
        }
        let plan = Plan {
            file: Arc::clone(file),
            delimiter: self.job.delimiter,
            columns: self.columns.clone(),
            expected,
            skip_malformed: self.job.skip_malformed,
            prefix_length: self.job.prefix_length,
            share,
            signal: Arc::clone(self.signal),
        };
        let half = halves::start(plan, from, len)?;
        self.outputs.lend(Some(Arc::clone(&half.held)));
        self.outputs.create_files_late();
        Some(half)
    }

    /// Takes what the second half found, once the first half's parser (`splitter`) stopped
    /// where it begins; `splitter` becomes one for what it left: nothing if it reached the
    /// end, else the rest from where it stopped (which a signal stops at once).
    fn take_second_half(
        &mut self,
        splitter: &mut Splitter<Prefetch>,
        taken: Half,
        file: &Arc<File>,
        len: u64,
    ) -> Result<(), Stop> {
        let line = splitter.line() + taken.lines;
        let terminator = taken
            .last_terminator
            .unwrap_or_else(|| splitter.last_terminator());
        let (resume_at, ended) = (taken.resume_at, taken.ended);
        self.summary.records += taken.records;
        self.summary.malformed += taken.malformed;
        let merged = self.outputs.merge(taken);
        // Its keys may have passed the bound: said now, as one parser would have when it met
        // them (no record may be added after these).
        if let Some(warning) = self.outputs.take_warning() {
            self.progress.warn(&warning);
        }
        merged?;
        let rest: Box<dyn Read + Send> = if ended {
            self.read_elsewhere = len;
            Box::new(io::empty())
        } else {
            self.read_elsewhere = resume_at;
            Box::new(ReadAt::new(Arc::clone(file), resume_at))
        };
        *splitter = self.splitter(rest, Some((line, terminator)));
        Ok(())
    }

    /// Step three: an input's records, each to its key's file, to its end or `until`: with a
    /// second half running, up to where it begins if a record ends there, else (the guess was
    /// wrong: see [`halves`]) through the first record that runs on past it, or until the
    /// second half holds more than the budget left by the keys' bookkeeping.
    fn records(
        &mut self,
        splitter: &mut Splitter<Prefetch>,
        name: &str,
        until: Until<'_>,
    ) -> Result<Reached, Stop> {
        let second = match until {
            Until::SecondHalf(half) => Some(half),
            Until::End | Until::FieldCount => None,
        };
        let field_count = matches!(until, Until::FieldCount);
        // Several key columns: every field is decoded (the CSV path), then the key joined.
        let several = self.columns.len() > 1;
        let last = self.columns.iter().copied().max().unwrap_or(0);
        let prefix_length = self.job.prefix_length;
        let prefix = |key: &[u8]| -> usize {
            prefix_length.map_or(key.len(), |n| {
                usize::try_from(n).unwrap_or(usize::MAX).min(key.len())
            })
        };
        let (mut spans, mut found) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
        loop {
            if field_count && self.expected.is_some() {
                return Ok(Reached::FieldCount);
            }
            if let Some(half) = second {
                match splitter.consumed().cmp(&half.start) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => return Ok(Reached::SecondHalf),
                    // A record ran on past the guess: the second half is wrong, and is
                    // stopped and dropped now (it would parse on to the end, holding memory
                    // lent to it).
                    std::cmp::Ordering::Greater => return Ok(Reached::WrongGuess),
                }
                if self.outputs.lent_past_budget() {
                    return Ok(Reached::PastBudget);
                }
            }
            let limit = second.map(|half| half.start);
            if !several {
                // Plain lines, a run at a time: their keys are looked up together first.
                spans.clear();
                // (One record only, where it sets the field count: a second half then
                // starts at once.)
                let batch = if field_count { 1 } else { BATCH };
                while spans.len() < batch {
                    match splitter.next_plain() {
                        Some(span) => {
                            let at_limit = limit.is_some_and(|at| splitter.end_of(&span) >= at);
                            spans.push(span);
                            if at_limit {
                                break; // at the second half (or past it)
                            }
                        }
                        None => break,
                    }
                }
                if !spans.is_empty() {
                    let keys = spans.iter().map(|span| {
                        let key = splitter.span(span).1.unwrap_or_default();
                        &key[..prefix(key)]
                    });
                    self.outputs.find_all(keys, &mut found);
                    for (span, &found) in spans.iter().zip(&found) {
                        let (raw, key) = splitter.span(span);
                        if !self.accept(span.fields, key.is_some(), span.line, name)? {
                            continue;
                        }
                        let key = key.unwrap_or_default();
                        let key = &key[..prefix(key)];
                        self.outputs.add_found(found, key, [b"", raw, b""])?;
                        self.record_added(splitter.bytes_read());
                    }
                    continue;
                }
            }
            let record = match splitter.next_record(several) {
                Ok(Some(record)) => record,
                Ok(None) => return Ok(Reached::End),
                Err(error) => return Err(split_failure(error, name).into()),
            };
            let has_key = if several {
                record.fields > last
            } else {
                record.key.is_some()
            };
            if !self.accept(record.fields, has_key, record.line, name)? {
                continue;
            }
            if several {
                let (bom, missing, count) = (record.bom, record.missing, record.fields);
                self.raw.clear();
                self.raw.extend_from_slice(record.raw);
                let fields = splitter.fields(count);
                self.key.clear();
                layout::join_key(
                    self.columns
                        .iter()
                        .map(|&at| &fields[at][..prefix(&fields[at])]),
                    &mut self.key,
                );
                self.outputs.add(&self.key, [bom, &self.raw, missing])?;
            } else {
                let key = record.key.unwrap_or_default();
                let key = &key[..prefix(key)];
                self.outputs
                    .add(key, [record.bom, record.raw, record.missing])?;
            }
            self.record_added(splitter.bytes_read());
        }
    }

    /// Counts a record added, shows a warning the outputs have, and the progress now and then.
    fn record_added(&mut self, bytes_read: u64) {
        self.summary.records += 1;
        if let Some(warning) = self.outputs.take_warning() {
            self.progress.warn(&warning);
        }
        if self.summary.records.is_multiple_of(65_536) {
            let elsewhere = self.read_elsewhere
                + self
                    .second_read
                    .as_ref()
                    .map_or(0, |read| read.load(Ordering::Relaxed));
            self.progress.update(
                bytes_read + elsewhere + self.summary.bytes_read,
                self.summary.records,
                self.outputs.keys(),
                &self.outputs.stats(),
            );
        }
    }

    /// Steps two and three for every input, in order.
    fn all(&mut self, inputs: &[PathBuf]) -> Result<(), Stop> {
        if self.job.no_headers {
            self.columns = column_indexes(self.job)?;
        }
        for (number, path) in inputs.iter().enumerate() {
            if inputs.len() > 1 {
                self.phases.set_input(Some(number + 1));
            }
            let name = display_name(path);
            let Opened { mut splitter, file } = self.open(path)?;
            self.read_elsewhere = 0;
            let result = (|| {
                if !self.job.no_headers {
                    self.header(&mut splitter, &name)?;
                }
                if splitter.stopped() {
                    return Ok(());
                }
                self.body(&mut splitter, file, &name)
            })();
            self.summary.bytes_read += self.read_elsewhere + splitter.bytes_read();
            result?;
            if splitter.stopped() {
                return Err(self.stopped().unwrap_or(Stop::Signal(0)));
            }
            if let Some(stop) = self.stopped() {
                return Err(stop);
            }
        }
        Ok(())
    }
}

fn split_failure(error: SplitError, name: &str) -> Failure {
    match error {
        SplitError::Io(error) => run_error(format!("{name}: read failed: {error}")),
        SplitError::UnterminatedQuote { line } => run_error(format!(
            "{name}:{line}: the input ends inside a quoted field (the quote opened on this line \
             is never closed)"
        )),
    }
}

/// Step four: flush and close everything, and say what was written.
fn finish(feed: Feed<'_>, stop: Option<Stop>, started: Instant) -> Result<Summary, Failure> {
    let Feed {
        job,
        outputs,
        mut summary,
        mut progress,
        mut phases,
        ..
    } = feed;
    let bookkeeping = outputs.bookkeeping();
    if bookkeeping > job.memory {
        summary.bookkeeping_over = Some(bookkeeping);
    }
    phases.set_input(None);
    phases.ended("writing");
    progress.writing(outputs.keys());
    let finished = outputs.finish();
    phases.ended("written");
    summary.files = finished.files;
    summary.written = finished.records_written;
    summary.bytes_written = finished.bytes_written;
    summary.pager = finished.pager;
    summary.elapsed = started.elapsed();
    progress.finish();
    // (After the progress line is gone, so as not to be drawn over.)
    if let Some(report) = phases.report() {
        eprintln!("{report}");
    }
    let mut failure = match stop {
        None => None,
        Some(Stop::Signal(signal)) => {
            summary.interrupted_by = Some(signal);
            None
        }
        Some(Stop::Failed(failure)) => Some(failure),
    };
    if failure.is_none() {
        failure = finished.error.map(Failure::from);
    }
    if failure.is_some() && summary.files == 0 {
        // Refused, or failed before any file was written: leave OUTDIR as it was.
        finished.dir.remove_if_created();
        if let Some(failure) = failure {
            return Err(failure);
        }
    }
    summary.failure = failure;
    Ok(summary)
}

/// Runs a partition job. `signal` is set (to the signal's number) by SIGINT/SIGTERM: the run
/// then stops reading, writes every complete record read so far, and returns with
/// `interrupted_by`. An error before anything was written is an `Err`; one after it is in the
/// summary's `failure`, with what was written.
pub fn run(job: &Job, signal: &Arc<AtomicUsize>) -> Result<Summary, Failure> {
    let started = Instant::now();
    let inputs = inputs_of(job);
    let (outputs, inside) = setup(job, &inputs)?;
    let mut feed = Feed {
        job,
        signal,
        outputs,
        inside,
        columns: Vec::new(),
        key: Vec::new(),
        raw: Vec::new(),
        header: None,
        expected: None,
        summary: Summary::default(),
        progress: Progress::new(job.quiet, total_size(&inputs)),
        read_elsewhere: 0,
        second_read: None,
        phases: Phases::from_env(started),
    };
    let stop = feed.all(&inputs).err();
    finish(feed, stop, started)
}
