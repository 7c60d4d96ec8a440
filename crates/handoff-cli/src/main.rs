//! `handoff`: split a stream of records into any number of files, in one pass, under any
//! descriptor limit.
//!
//! Exit codes: 0 done; 1 an input or output failed (the message names it); 2 the command line
//! asks for something impossible; 130 / 143 stopped by SIGINT / SIGTERM after writing every
//! record read so far.

#[cfg(target_os = "linux")]
mod audit;
mod bench;
mod partition;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use partition::outputs::Existing;
use partition::{Failure, Job, Summary};

#[derive(Parser)]
#[command(name = "handoff", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Split CSV records into one file per key, in one pass, whatever the number of keys.
    ///
    /// Every output file gets the header row first, then that key's records in input order,
    /// byte for byte. Real descriptors in use never exceed --max-open; the files are virtual
    /// files of handoff's pager, paged in and out as needed.
    ///
    /// Exit codes: 0 done; 1 an input or output failed; 2 bad command line; 130/143 stopped by
    /// SIGINT/SIGTERM (every record read before that is written).
    Partition(PartitionArgs),
    /// Run a program and report its descriptor ownership bugs (double close, close of a
    /// FILE*'s descriptor, use after close, leaks), quarantining closed numbers meanwhile.
    ///
    /// Exit status: the program's own, or --error-exitcode N when anything was found.
    #[cfg(target_os = "linux")]
    Audit(audit::AuditArgs),
    /// Measure handoff on generated input.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(clap::Args)]
struct PartitionArgs {
    /// The key column: a header name, or a 1-based index with --no-headers.
    column: String,
    /// Where the files go (created if missing).
    outdir: PathBuf,
    /// CSV inputs, read one after the other; standard input if none, or `-`.
    inputs: Vec<PathBuf>,
    /// The input has no header row; COLUMN is a 1-based index.
    #[arg(long)]
    no_headers: bool,
    /// Field delimiter (one byte).
    #[arg(short, long, default_value = ",", value_parser = parse_delimiter)]
    delimiter: u8,
    /// Output file name; `{}` is replaced by the escaped key.
    #[arg(long, default_value = "{}.csv")]
    filename: String,
    /// Partition on the first N bytes of the key.
    #[arg(short, long, value_name = "N")]
    prefix_length: Option<usize>,
    /// The most real file descriptors to use at once [default: the soft RLIMIT_NOFILE, after
    /// raising it to the hard limit, less a reserve].
    #[arg(long, value_name = "N")]
    max_open: Option<usize>,
    /// Bound on buffered output, in bytes (suffixes K, M, G: powers of 1024).
    #[arg(long, default_value = "256M", value_parser = parse_bytes)]
    memory: usize,
    /// Add to existing files in OUTDIR (the header only to new or empty files).
    #[arg(long, conflicts_with = "force")]
    append: bool,
    /// Write into a non-empty OUTDIR, replacing the files this run writes.
    #[arg(long)]
    force: bool,
    /// Skip records whose field count differs from the header's (counted in the summary).
    #[arg(long)]
    skip_malformed: bool,
    /// No progress line, no summary.
    #[arg(short, long)]
    quiet: bool,
}

fn parse_delimiter(s: &str) -> Result<u8, String> {
    match s.as_bytes() {
        [byte] => Ok(*byte),
        _ if s == "\\t" || s == "tab" => Ok(b'\t'),
        _ => Err(format!("the delimiter must be one byte, not {s:?}")),
    }
}

/// `256M`, `1G`, `4096`...
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let (digits, scale) = match s.char_indices().last() {
        Some((at, 'K' | 'k')) => (&s[..at], 1 << 10),
        Some((at, 'M' | 'm')) => (&s[..at], 1 << 20),
        Some((at, 'G' | 'g')) => (&s[..at], 1 << 30),
        _ => (s, 1),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("not a size: {s:?} (e.g. 4096, 64K, 256M, 2G)"))
}

impl PartitionArgs {
    fn job(&self) -> Job {
        Job {
            column: self.column.clone(),
            outdir: self.outdir.clone(),
            inputs: self.inputs.clone(),
            no_headers: self.no_headers,
            delimiter: self.delimiter,
            filename: self.filename.clone(),
            prefix_length: self.prefix_length,
            max_open: self.max_open,
            memory: self.memory,
            existing: if self.append {
                Existing::Append
            } else if self.force {
                Existing::Replace
            } else {
                Existing::Refuse
            },
            skip_malformed: self.skip_malformed,
            quiet: self.quiet,
        }
    }
}

/// The one paragraph printed at the end.
pub fn summary_line(summary: &Summary) -> String {
    let seconds = summary.elapsed.as_secs_f64().max(1e-9);
    let mut line = format!(
        "{} records into {} files: {:.1} MB read, {:.1} MB written in {:.2} s ({:.1} MB/s); \
         real descriptors at peak {}, files paged in {} times and out {} times",
        summary.records,
        summary.keys,
        summary.bytes_read as f64 / 1e6,
        summary.bytes_written as f64 / 1e6,
        seconds,
        summary.bytes_read as f64 / 1e6 / seconds,
        summary.pager.peak_resident,
        summary.pager.page_ins,
        summary.pager.evictions,
    );
    if summary.malformed > 0 {
        line.push_str(&format!(
            "; {} malformed records skipped",
            summary.malformed
        ));
    }
    if let Some(signal) = summary.interrupted_by {
        line.push_str(&format!(
            "; interrupted by signal {signal}: every record read before it was written \
             (the last is record {})",
            summary.records
        ));
    }
    line
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Partition(args) => {
            let signal = Arc::new(AtomicUsize::new(0));
            for number in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                if let Err(error) =
                    signal_hook::flag::register_usize(number, Arc::clone(&signal), number as usize)
                {
                    eprintln!("handoff: cannot handle signal {number}: {error}");
                    return ExitCode::from(1);
                }
            }
            let job = args.job();
            match partition::run(&job, &signal) {
                Ok(summary) => {
                    if !job.quiet || summary.interrupted_by.is_some() {
                        eprintln!("handoff: {}", summary_line(&summary));
                    }
                    match summary.interrupted_by {
                        Some(signal) => ExitCode::from(128 + signal as u8),
                        None => ExitCode::SUCCESS,
                    }
                }
                Err(Failure::Usage(message)) => {
                    eprintln!("handoff partition: {message}");
                    ExitCode::from(2)
                }
                Err(Failure::Run(message)) => {
                    eprintln!("handoff partition: {message}");
                    ExitCode::from(1)
                }
            }
        }
        #[cfg(target_os = "linux")]
        Command::Audit(args) => audit::run(args).unwrap_or_else(|message| {
            eprintln!("handoff audit: {message}");
            ExitCode::from(1)
        }),
        Command::Bench(command) => match bench::run(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("handoff bench: {message}");
                ExitCode::from(1)
            }
        },
    }
}
