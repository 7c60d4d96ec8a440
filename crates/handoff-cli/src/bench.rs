//! `handoff bench partition`: generated input, seeded, so that anyone can reproduce a figure.
//!
//! Rows are `key,value,payload` (about 80 bytes), keys drawn from K keys by a Zipf or uniform
//! distribution. The input is read once first (the floor: what reading alone costs), then
//! partitioned, and both are reported.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use rand::{RngExt, SeedableRng};

use crate::partition::job::ExistingFiles;
use crate::partition::{self, Job};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Generate a seeded input and partition it; report records/s and MiB/s.
    Partition(BenchPartition),
    /// Time an open/read/close loop natively and under `handoff audit` (Linux).
    #[cfg(target_os = "linux")]
    Audit(crate::audit::bench::BenchAudit),
}

#[derive(clap::Args)]
pub struct BenchPartition {
    /// Lines of input (besides the header).
    #[arg(long, default_value_t = 2_000_000)]
    lines: u64,
    /// Distinct keys (at least 1).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,
    /// `zipf` or `uniform`.
    #[arg(long, default_value = "zipf", value_parser = ["zipf", "uniform"])]
    distribution: String,
    /// The Zipf exponent (above 0).
    #[arg(long, default_value_t = 1.1, value_parser = parse_skew)]
    skew: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Real descriptors for the partition run [default: from the limit].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_open: Option<u64>,
    /// Bound on buffered output.
    #[arg(long, default_value = "256M", value_parser = crate::partition::job::parse_bytes)]
    memory: usize,
    /// Work here (input.csv, out/) instead of a temporary directory, and keep it.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Only write the input (to DIR/input.csv, or the temporary directory, which is then kept).
    #[arg(long)]
    generate_only: bool,
}

fn parse_skew(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(skew) if skew > 0.0 && skew.is_finite() => Ok(skew),
        _ => Err(format!("the Zipf exponent is a number above 0, not {s:?}")),
    }
}

fn generate(spec: &BenchPartition, path: &std::path::Path) -> Result<u64, String> {
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut rng = rand::rngs::StdRng::seed_from_u64(spec.seed);
    let zipf = rand_distr::Zipf::new(spec.keys as f64, spec.skew).map_err(|e| e.to_string())?;
    let uniform = match spec.distribution.as_str() {
        "zipf" => false,
        "uniform" => true,
        other => return Err(format!("--distribution is zipf or uniform, not {other:?}")),
    };
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut line = Vec::with_capacity(128);
    let write = |out: &mut BufWriter<File>, bytes: &[u8]| {
        out.write_all(bytes)
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    write(&mut out, b"key,value,payload\n")?;
    for _ in 0..spec.lines {
        let key = if uniform {
            rng.random_range(0..spec.keys)
        } else {
            rng.sample(zipf) as u64 - 1
        };
        line.clear();
        write!(line, "k{key},{},", rng.random_range(0..1_000_000u32)).expect("to memory");
        let payload = 55 + rng.random_range(0..20);
        line.extend((0..payload).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())]));
        line.push(b'\n');
        write(&mut out, &line)?;
    }
    out.flush()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(std::fs::metadata(path).map_err(|e| e.to_string())?.len())
}

pub fn run(command: BenchCommand) -> Result<(), String> {
    let spec = match command {
        BenchCommand::Partition(spec) => spec,
        #[cfg(target_os = "linux")]
        BenchCommand::Audit(spec) => return crate::audit::bench::run(&spec),
    };
    if !spec.generate_only {
        // As `handoff partition` runs (the same seed gives the same input again).
        partition::huge_pages::reexec_if_worth_it(spec.memory);
    }
    let temp;
    let dir = match &spec.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().map_err(|e| e.to_string())?;
            if spec.generate_only {
                temp.keep()
            } else {
                temp.path().to_path_buf()
            }
        }
    };
    let input = dir.join("input.csv");
    let started = Instant::now();
    let size = generate(&spec, &input)?;
    eprintln!(
        "generated {} lines, {} keys ({} {}), {:.1} MiB in {:.1} s: {}",
        spec.lines,
        spec.keys,
        spec.distribution,
        spec.skew,
        size as f64 / f64::from(1 << 20),
        started.elapsed().as_secs_f64(),
        input.display()
    );
    if spec.generate_only {
        return Ok(());
    }

    // The floor: reading the input and nothing else (it is in the page cache now).
    let started = Instant::now();
    let mut file = File::open(&input).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1 << 20];
    while file.read(&mut buf).map_err(|e| e.to_string())? > 0 {}
    let read_only = started.elapsed();

    let outdir = dir.join("out");
    if outdir.exists() {
        std::fs::remove_dir_all(&outdir).map_err(|e| e.to_string())?;
    }
    let job = Job {
        column: "key".into(),
        outdir,
        inputs: vec![input],
        no_headers: false,
        delimiter: b',',
        layout: partition::job::LayoutKind::Flat,
        filename: None,
        prefix_length: None,
        max_open: spec.max_open,
        memory: spec.memory,
        existing: ExistingFiles::default(),
        skip_malformed: false,
        quiet: true,
    };
    let summary = partition::run(&job, &Arc::new(AtomicUsize::new(0)))
        .map_err(|failure| failure.message().to_owned())?;
    if let Some(failure) = &summary.failure {
        return Err(failure.message().to_owned());
    }
    let seconds = summary.elapsed.as_secs_f64();
    // MiB, as the summary line above it.
    const MIB: f64 = (1 << 20) as f64;
    println!("{}", crate::summary_line(&summary));
    println!(
        "partition: {:.0} records/s, {:.1} MiB/s; reading alone: {:.1} MiB/s ({:.2} s); \
         partition / read = {:.1}x",
        summary.records as f64 / seconds,
        size as f64 / MIB / seconds,
        size as f64 / MIB / read_only.as_secs_f64(),
        read_only.as_secs_f64(),
        seconds / read_only.as_secs_f64()
    );
    Ok(())
}
