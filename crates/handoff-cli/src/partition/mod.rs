//! `handoff partition`: one pass over the input, one file per key, any number of keys, under
//! any descriptor limit (the files are virtual files of a `handoff::pager::Pager`).
//!
//! A run is four steps: [`setup`] (checks that need no input, then OUTDIR and the inputs),
//! header negotiation ([`Feed::header`]), feeding records ([`Feed::records`]), and
//! finishing ([`finish`]: every buffer flushed, every file closed, the summary). Whatever
//! stops the feeding — the end, a signal, a bad input, a failed write — the records read
//! before it are written whole, and the summary says how many.

pub mod display;
pub mod input;
pub mod job;
pub mod names;
pub mod outdir;
pub mod outputs;
pub mod records;
pub mod sizes;
pub mod writer;

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use handoff::pager::{Pager, Stats};

use crate::progress::Progress;
use display::{shown, shown_names, shown_path};
use input::Prefetch;
pub use job::Job;
use outdir::{Existing, Identity, Outdir, OutdirError};
use outputs::{Header, Outputs, WriteError};
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

/// Checks `--filename`: exactly one `{}`, nothing that leaves the output directory, and room
/// for the longest name the escaping makes.
fn check_template(template: &str) -> Result<(), Failure> {
    if template.matches("{}").count() != 1 {
        return Err(Failure::Usage(format!(
            "--filename \"{}\" must contain `{{}}` exactly once (where the key goes)",
            shown(template.as_bytes())
        )));
    }
    // The escaped key is never empty, `.` or `..`, so with no separator the name stays in
    // OUTDIR.
    if template.contains(['/', '\\', '\0']) {
        return Err(Failure::Usage(format!(
            "--filename \"{}\" must be a plain file name (no `/`, `\\` or NUL)",
            shown(template.as_bytes())
        )));
    }
    const NAME_MAX: usize = 255;
    let fixed = template.len() - 2;
    if fixed + names::LONGEST > NAME_MAX {
        return Err(Failure::Usage(format!(
            "--filename \"{}\" is too long: with the longest escaped key ({} bytes) a name \
             would be {} bytes, over the {NAME_MAX} a file name may have; keep the template's \
             other text within {} bytes",
            shown(template.as_bytes()),
            names::LONGEST,
            fixed + names::LONGEST,
            NAME_MAX - names::LONGEST
        )));
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

/// The metadata of an input: its file's (symlinks followed), or standard input's.
fn input_metadata(path: &Path) -> io::Result<std::fs::Metadata> {
    if path == Path::new("-") {
        let stdin = io::stdin();
        let fd = std::os::fd::AsFd::as_fd(&stdin).try_clone_to_owned()?;
        File::from(fd).metadata()
    } else {
        std::fs::metadata(path)
    }
}

fn identity(metadata: &std::fs::Metadata) -> Identity {
    (metadata.dev(), metadata.ino())
}

/// Refuses an input that is a file inside OUTDIR (it would be read while being written).
fn refuse_inputs_inside(inside: &HashSet<Identity>, inputs: &[PathBuf]) -> Result<(), Failure> {
    for path in inputs {
        let metadata = input_metadata(path)
            .map_err(|e| run_error(format!("cannot open input {}: {e}", display_name(path))))?;
        if metadata.is_file() && inside.contains(&identity(&metadata)) {
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
    check_template(&job.filename)?;
    if job.no_headers {
        column_index(job)?;
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
        let inside = dir
            .file_identities()
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
                &job.filename,
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

/// COLUMN as a 0-based index (with `--no-headers`).
fn column_index(job: &Job) -> Result<usize, Failure> {
    match job.column.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n - 1),
        _ => Err(Failure::Usage(format!(
            "with --no-headers, COLUMN is a 1-based index, not \"{}\"",
            shown(job.column.as_bytes())
        ))),
    }
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

/// The state carried from input to input.
struct Feed<'a> {
    job: &'a Job,
    signal: &'a Arc<AtomicUsize>,
    outputs: Outputs,
    /// Identities of the files in OUTDIR at the start: no input may be one of them.
    inside: HashSet<Identity>,
    /// The key column, once known (at once with --no-headers; from the first header).
    column: Option<usize>,
    /// The first header's field names.
    header: Option<Vec<Vec<u8>>>,
    /// Fields every record must have.
    expected: Option<usize>,
    summary: Summary,
    progress: Progress,
}

impl Feed<'_> {
    fn stopped(&self) -> Option<Stop> {
        match self.signal.load(Ordering::Relaxed) {
            0 => None,
            signal => Some(Stop::Signal(signal)),
        }
    }

    fn open(&self, path: &Path) -> Result<Splitter<Prefetch>, Failure> {
        let name = display_name(path);
        let input: Box<dyn Read + Send> = if path == Path::new("-") {
            Box::new(io::stdin())
        } else {
            let file = File::open(path)
                .map_err(|e| run_error(format!("cannot open input {name}: {e}")))?;
            // Checked again on what was opened: the path may have changed since the setup.
            let metadata = file
                .metadata()
                .map_err(|e| run_error(format!("cannot open input {name}: {e}")))?;
            if self.inside.contains(&identity(&metadata)) {
                return Err(Failure::Usage(format!(
                    "input {name} is a file inside OUTDIR"
                )));
            }
            Box::new(file)
        };
        Ok(Splitter::new(
            Prefetch::spawn(input, Arc::clone(self.signal)),
            self.job.delimiter,
            self.column.unwrap_or(0),
        ))
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
                let column = fields
                    .iter()
                    .position(|field| field == self.job.column.as_bytes())
                    .ok_or_else(|| {
                        Failure::Usage(format!(
                            "{name}: no column \"{}\" in the header (columns: {})",
                            shown(self.job.column.as_bytes()),
                            shown_names(&fields)
                        ))
                    })?;
                self.outputs.set_header(Header {
                    raw,
                    fields: fields.clone(),
                    delimiter: self.job.delimiter,
                });
                self.outputs.check_append()?;
                self.expected = Some(count);
                self.header = Some(fields);
                self.column = Some(column);
                splitter.set_column(column);
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

    /// Step three: an input's records, each to its key's file.
    fn records(&mut self, splitter: &mut Splitter<Prefetch>, name: &str) -> Result<(), Stop> {
        loop {
            let record = match splitter.next_record(false) {
                Ok(Some(record)) => record,
                Ok(None) => return Ok(()),
                Err(error) => return Err(split_failure(error, name).into()),
            };
            let expected = match self.expected {
                Some(expected) => expected,
                None => {
                    // --no-headers: the first record sets the field count.
                    let column = self.column.unwrap_or(0);
                    if record.fields <= column {
                        return Err(Failure::Usage(format!(
                            "{name}: no column {} (the first record has {} field{})",
                            column + 1,
                            record.fields,
                            if record.fields == 1 { "" } else { "s" }
                        ))
                        .into());
                    }
                    *self.expected.insert(record.fields)
                }
            };
            let key = match record.key {
                Some(key) if record.fields == expected => key,
                _ => {
                    if self.job.skip_malformed {
                        self.summary.malformed += 1;
                        continue;
                    }
                    let why = if record.key.is_none() {
                        format!(
                            "{} fields, too few for the key column {}",
                            record.fields,
                            self.column.unwrap_or(0) + 1
                        )
                    } else {
                        format!("{} fields where {expected} were expected", record.fields)
                    };
                    return Err(run_error(format!(
                        "{name}:{}: malformed record: {why} (--skip-malformed skips such records)",
                        record.line
                    ))
                    .into());
                }
            };
            let key = match self.job.prefix_length {
                Some(n) => &key[..usize::try_from(n).unwrap_or(usize::MAX).min(key.len())],
                None => key,
            };
            self.outputs
                .add(key, [record.bom, record.raw, record.missing])?;
            self.summary.records += 1;
            if let Some(warning) = self.outputs.take_warning() {
                self.progress.warn(&warning);
            }
            if self.summary.records.is_multiple_of(65_536) {
                self.progress.update(
                    splitter.bytes_read() + self.summary.bytes_read,
                    self.summary.records,
                    self.outputs.keys(),
                    &self.outputs.stats(),
                );
            }
        }
    }

    /// Steps two and three for every input, in order.
    fn all(&mut self, inputs: &[PathBuf]) -> Result<(), Stop> {
        if self.job.no_headers {
            self.column = Some(column_index(self.job)?);
        }
        for path in inputs {
            let name = display_name(path);
            let mut splitter = self.open(path)?;
            let result = (|| {
                if !self.job.no_headers {
                    self.header(&mut splitter, &name)?;
                }
                if splitter.stopped() {
                    return Ok(());
                }
                self.records(&mut splitter, &name)
            })();
            self.summary.bytes_read += splitter.bytes_read();
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
        ..
    } = feed;
    let bookkeeping = outputs.bookkeeping();
    if bookkeeping > job.memory {
        summary.bookkeeping_over = Some(bookkeeping);
    }
    let finished = outputs.finish();
    summary.files = finished.files;
    summary.written = finished.records_written;
    summary.bytes_written = finished.bytes_written;
    summary.pager = finished.pager;
    summary.elapsed = started.elapsed();
    progress.finish();
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
        column: None,
        header: None,
        expected: None,
        summary: Summary::default(),
        progress: Progress::new(job.quiet),
    };
    let stop = feed.all(&inputs).err();
    finish(feed, stop, started)
}
