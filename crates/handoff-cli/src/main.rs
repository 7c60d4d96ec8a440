//! `handoff`: split a stream of records into any number of files, in one pass, under any
//! descriptor limit.
//!
//! Exit codes: 0 done; 1 an input or output failed (the message names it); 2 the command line
//! asks for something impossible; 130 / 143 stopped by SIGINT / SIGTERM (on Windows: Ctrl-C or
//! Ctrl-Break / the console closing, a logoff or a shutdown) after writing every record read so
//! far.

mod allocator;
#[cfg(target_os = "linux")]
mod audit;
mod bench;
mod partition;
mod progress;
mod stop;

use std::process::ExitCode;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use partition::{Job, Summary};

#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;

#[derive(Parser)]
#[command(name = "handoff", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Partition(Job),
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

fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `n` bytes in MiB (the one unit partition prints).
fn mib(n: u64) -> f64 {
    n as f64 / f64::from(1 << 20)
}

/// The one paragraph printed at the end.
pub fn summary_line(summary: &Summary) -> String {
    let seconds = summary.elapsed.as_secs_f64().max(1e-9);
    let mut line = format!(
        "{} into {}: {:.1} MiB read, {:.1} MiB written in {:.2} s ({:.1} MiB/s); \
         real descriptors at peak {}, files paged in {} times and out {} times",
        plural(summary.written, "record", "records"),
        plural(summary.files as u64, "file", "files"),
        mib(summary.bytes_read),
        mib(summary.bytes_written),
        seconds,
        mib(summary.bytes_read) / seconds,
        summary.pager.peak_resident,
        summary.pager.page_ins,
        summary.pager.evictions,
    );
    if summary.malformed > 0 {
        line.push_str(&format!(
            "; {} skipped",
            plural(summary.malformed, "malformed record", "malformed records")
        ));
    }
    if let Some(bytes) = summary.bookkeeping_over {
        line.push_str(&format!(
            "; the keys' bookkeeping took {:.1} MiB, more than --memory (which bounds the buffers)",
            bytes as f64 / f64::from(1 << 20)
        ));
    }
    if let Some(signal) = summary.interrupted_by {
        line.push_str(&format!(
            "; interrupted by {}: every record read before it was written \
             (the last is record {})",
            stop::describe(signal),
            summary.written
        ));
    }
    if summary.failure.is_some() && summary.records > summary.written {
        line.push_str(&format!(
            "; stopped by the error below: {} of the {} read not written",
            summary.records - summary.written,
            plural(summary.records, "record", "records"),
        ));
    }
    line
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Partition(job) => {
            partition::huge_pages::reexec_if_worth_it(job.memory);
            let signal = Arc::new(AtomicUsize::new(0));
            if let Err(error) = stop::install(&signal) {
                eprintln!("handoff: {error}");
                return ExitCode::from(1);
            }
            match partition::run(&job, &signal) {
                Ok(summary) => {
                    let quiet =
                        job.quiet && summary.interrupted_by.is_none() && summary.failure.is_none();
                    if !quiet {
                        eprintln!("handoff: {}", summary_line(&summary));
                    }
                    match (&summary.failure, summary.interrupted_by) {
                        (Some(failure), _) => {
                            eprintln!("handoff partition: {}", failure.message());
                            ExitCode::from(failure.exit_code())
                        }
                        (None, Some(signal)) => ExitCode::from(128 + signal as u8),
                        (None, None) => ExitCode::SUCCESS,
                    }
                }
                Err(failure) => {
                    eprintln!("handoff partition: {}", failure.message());
                    ExitCode::from(failure.exit_code())
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
