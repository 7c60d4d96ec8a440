//! `handoff partition`: one pass over the input, one file per key, any number of keys, under
//! any descriptor limit (the files are virtual files of a `handoff::pager::Pager`).

pub mod input;
pub mod names;
pub mod outputs;
pub mod records;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use handoff::pager::{Pager, Stats};

use crate::progress::Progress;
use input::Prefetch;
use outputs::{Existing, Outputs};
use records::Splitter;

/// What `handoff partition` was asked to do.
#[derive(Clone, Debug)]
pub struct Job {
    pub column: String,
    pub outdir: PathBuf,
    /// Empty, or `-`: standard input.
    pub inputs: Vec<PathBuf>,
    pub no_headers: bool,
    pub delimiter: u8,
    pub filename: String,
    pub prefix_length: Option<usize>,
    pub max_open: Option<usize>,
    pub memory: usize,
    pub existing: Existing,
    pub skip_malformed: bool,
    pub quiet: bool,
}

/// How a run ended, for the summary.
#[derive(Debug, Default)]
pub struct Summary {
    pub records: u64,
    pub malformed: u64,
    pub keys: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub elapsed: Duration,
    pub pager: Stats,
    /// The signal that stopped the run early, if one did.
    pub interrupted_by: Option<usize>,
}

/// Why a run failed.
#[derive(Debug)]
pub enum Failure {
    /// The command line asks for something impossible (exit code 2).
    Usage(String),
    /// The input or an output failed (exit code 1).
    Run(String),
}

fn run_error(message: impl Into<String>) -> Failure {
    Failure::Run(message.into())
}

/// Checks `--filename`: exactly one `{}`, and nothing that leaves the output directory.
fn check_template(template: &str) -> Result<(), Failure> {
    if template.matches("{}").count() != 1 {
        return Err(Failure::Usage(format!(
            "--filename {template:?} must contain `{{}}` exactly once (where the key goes)"
        )));
    }
    // The escaped key is never empty, `.` or `..`, so with no separator the name stays in
    // OUTDIR.
    if template.contains(['/', '\\', '\0']) {
        return Err(Failure::Usage(format!(
            "--filename {template:?} must be a plain file name (no `/`, `\\` or NUL)"
        )));
    }
    Ok(())
}

/// Creates the output directory, or checks that it may be written into.
fn prepare_outdir(dir: &Path, existing: Existing) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| run_error(format!("cannot create {}: {e}", dir.display())))?;
    if existing != Existing::Refuse {
        return Ok(());
    }
    let held = std::fs::read_dir(dir)
        .map_err(|e| run_error(format!("cannot read {}: {e}", dir.display())))?
        .count();
    if held > 0 {
        return Err(Failure::Usage(format!(
            "{} already holds {held} entries; use --append to add records to the files there \
             (headers go only to new files), or --force to replace the files this run writes",
            dir.display()
        )));
    }
    Ok(())
}

fn open_input(path: &Path, signal: &Arc<AtomicUsize>) -> Result<Prefetch, Failure> {
    let input: Box<dyn Read + Send> = if path == Path::new("-") {
        Box::new(io::stdin())
    } else {
        Box::new(
            File::open(path)
                .map_err(|e| run_error(format!("cannot open input {}: {e}", path.display())))?,
        )
    };
    Ok(Prefetch::spawn(input, Arc::clone(signal)))
}

fn display_name(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Runs a partition job. `signal` is set (to the signal's number) by SIGINT/SIGTERM: the run
/// then stops reading, writes every complete record read so far, and returns with
/// `interrupted_by`.
pub fn run(job: &Job, signal: &Arc<AtomicUsize>) -> Result<Summary, Failure> {
    let started = Instant::now();
    check_template(&job.filename)?;
    prepare_outdir(&job.outdir, job.existing)?;
    let _ = handoff::limits::raise(); // more descriptors only help; the budget is ours anyway
    let pager = match job.max_open {
        Some(0) => return Err(Failure::Usage("--max-open must be at least 1".into())),
        Some(n) => Pager::new(n),
        None => Pager::from_limit().map_err(|e| run_error(format!("descriptor limit: {e}")))?,
    };
    let mut outputs = Outputs::new(pager, &job.outdir, &job.filename, job.existing, job.memory);
    // With headers, known once the first header is read; the later inputs' must equal it.
    let mut column_index = if job.no_headers {
        match job.column.parse::<usize>() {
            Ok(n) if n >= 1 => Some(n - 1),
            _ => {
                return Err(Failure::Usage(format!(
                    "with --no-headers, COLUMN is a 1-based index, not {:?}",
                    job.column
                )))
            }
        }
    } else {
        None
    };

    let inputs = if job.inputs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        job.inputs.clone()
    };
    let mut summary = Summary::default();
    let mut progress = Progress::new(job.quiet);
    let mut header_fields: Option<Vec<Vec<u8>>> = None;
    let mut expected_fields: Option<usize> = None;

    'inputs: for path in &inputs {
        let name = display_name(path);
        let mut splitter = Splitter::new(
            open_input(path, signal)?,
            job.delimiter,
            column_index.unwrap_or(0),
        );
        if !job.no_headers {
            let header = splitter
                .next_record(true)
                .map_err(|e| run_error(format!("{name}: {e}")))?;
            let Some(header) = header else {
                if splitter.stopped() {
                    summary.interrupted_by = Some(signal.load(Ordering::Relaxed));
                    break 'inputs;
                }
                continue; // an empty input
            };
            let (raw, count, terminated) =
                (header.raw.to_vec(), header.fields, header.terminated());
            let fields = splitter.fields(count);
            match &header_fields {
                None => {
                    let column = fields
                        .iter()
                        .position(|field| field == job.column.as_bytes())
                        .ok_or_else(|| {
                            let names: Vec<_> =
                                fields.iter().map(|f| String::from_utf8_lossy(f)).collect();
                            Failure::Usage(format!(
                                "{name}: no column {:?} in the header (columns: {})",
                                job.column,
                                names.join(", ")
                            ))
                        })?;
                    let mut raw = raw;
                    if !terminated {
                        raw.push(b'\n');
                    }
                    outputs.set_header(raw);
                    expected_fields = Some(count);
                    header_fields = Some(fields);
                    column_index = Some(column);
                    splitter.set_column(column);
                }
                // The splitter was made with the first header's column already.
                Some(first) if *first == fields => {}
                Some(_) => {
                    return Err(run_error(format!(
                        "{name}: its header differs from the first input's"
                    )))
                }
            }
        }
        loop {
            let record = splitter
                .next_record(false)
                .map_err(|e| run_error(format!("{name}: read failed: {e}")))?;
            let Some(record) = record else { break };
            let expected = *expected_fields.get_or_insert(record.fields);
            let key = match record.key {
                Some(key) if record.fields == expected => key,
                _ => {
                    if job.skip_malformed {
                        summary.malformed += 1;
                        continue;
                    }
                    return Err(run_error(format!(
                        "{name}:{}: malformed record: {} fields where {expected} were expected \
                         (--skip-malformed skips such records)",
                        record.line, record.fields
                    )));
                }
            };
            let key = match job.prefix_length {
                Some(n) => &key[..n.min(key.len())],
                None => key,
            };
            let terminated = record.terminated();
            outputs.add(key, record.raw, terminated).map_err(|e| {
                run_error(format!(
                    "stopped at {name}:{}: cannot write {e}",
                    record.line
                ))
            })?;
            summary.records += 1;
            if summary.records % 65_536 == 0 {
                progress.update(
                    splitter.bytes_read() + summary.bytes_read,
                    summary.records,
                    outputs.keys(),
                    &outputs.stats(),
                );
            }
        }
        summary.bytes_read += splitter.bytes_read();
        if splitter.stopped() || signal.load(Ordering::Relaxed) != 0 {
            summary.interrupted_by = Some(signal.load(Ordering::Relaxed));
            break 'inputs;
        }
    }
    summary.keys = outputs.keys();
    let (bytes_written, pager) = outputs
        .finish()
        .map_err(|e| run_error(format!("cannot write {e}")))?;
    summary.bytes_written = bytes_written;
    summary.pager = pager;
    summary.elapsed = started.elapsed();
    progress.finish();
    Ok(summary)
}
