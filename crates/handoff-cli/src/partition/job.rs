//! What `handoff partition` is asked to do: its command line (clap), checked.

use std::path::PathBuf;

use super::outdir::Existing;

/// Split CSV records into one file per key, in one pass, whatever the number of keys.
///
/// Every output file gets the header row first, then that key's records in input order,
/// byte for byte. Real descriptors in use never exceed --max-open; the files are virtual
/// files of handoff's pager, paged in and out as needed.
///
/// Exit codes: 0 done; 1 an input or output failed; 2 bad command line or refused setup;
/// 130/143 stopped by SIGINT/SIGTERM (every record read before that is written, whole).
#[derive(clap::Args, Clone, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Job {
    /// The key column: a header name, or several separated by `,` (`carrier,origin`: one file
    /// per pair); with --no-headers, 1-based indexes (`2` or `2,3`). A header name holding
    /// `,` is taken whole if the header has a column of that very name.
    pub column: String,
    /// Where the files go (created if missing).
    pub outdir: PathBuf,
    /// CSV inputs, read one after the other; standard input if none, or `-`.
    pub inputs: Vec<PathBuf>,
    /// The input has no header row; COLUMN is a 1-based index (or several: `2,3`).
    #[arg(long)]
    pub no_headers: bool,
    /// Field delimiter (one byte; `\t` or `tab` for a tab).
    #[arg(short, long, default_value = ",", value_parser = parse_delimiter)]
    pub delimiter: u8,
    /// How the files are laid out in OUTDIR: `flat`, one file per key named by --filename;
    /// `hive`, a directory `COLUMN=value` per key column, nested in column order, holding
    /// the file (what DuckDB, Spark and Arrow read as hive partitions).
    #[arg(long, value_enum, default_value_t = LayoutKind::Flat)]
    pub layout: LayoutKind,
    /// Output file name [default: `{}.csv`; `data.csv` with --layout hive]. Flat: `{}` is
    /// replaced by the escaped key (several columns: the escaped values joined by `,`), and
    /// `/` makes directories under OUTDIR (`{}/cities.csv`); no `..`, empty components or
    /// absolute paths. Hive: the plain name of the file in each directory.
    #[arg(long, value_name = "TEMPLATE")]
    pub filename: Option<String>,
    /// Partition on the first N bytes of the key (N ≥ 1; of each key column's value).
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub prefix_length: Option<u64>,
    /// The most real file descriptors to use at once [default: the soft RLIMIT_NOFILE, after
    /// raising it to the hard limit, less a reserve].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_open: Option<u64>,
    /// Bound on buffered output, in bytes (suffixes K, M, G: powers of 1024).
    #[arg(long, default_value = "256M", value_parser = parse_bytes)]
    pub memory: usize,
    #[command(flatten)]
    pub existing: ExistingFiles,
    /// Skip records whose field count differs from the header's (counted in the summary).
    #[arg(long)]
    pub skip_malformed: bool,
    /// No progress line, and no summary unless a signal or an error stops the run.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `--layout`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutKind {
    /// One file per key in OUTDIR (or where --filename puts it).
    Flat,
    /// `OUTDIR/COLUMN=value/…/data.csv`.
    Hive,
}

const EXAMPLES: &str = "\
Examples:
  # One file per carrier: out/AA.csv, out/UA.csv, ...
  handoff partition carrier out flights.csv

  # Tab-separated input (`\\t` or `tab` is a tab), read from standard input
  zcat flights.tsv.gz | handoff partition -d '\\t' carrier out

  # Several key columns: out/AA,JFK.csv, out/AA,LGA.csv, ...
  handoff partition carrier,origin out flights.csv

  # Hive layout, read back by DuckDB/Spark/Arrow: out/carrier=AA/origin=JFK/data.csv
  handoff partition --layout hive carrier,origin out flights.csv
  duckdb -c \"SELECT carrier, origin, count(*) FROM read_csv('out/*/*/data.csv', \\
    hive_partitioning = true) GROUP BY ALL\"

  # A directory per key, as xsv's `{}/cities.csv`: out/MA/cities.csv, ...
  handoff partition --filename '{}/cities.csv' state out cities.csv

  # Add a second month to the files of the first (headers must match)
  handoff partition --append carrier out flights-2013-02.csv

  # No header row: key on the 2nd and 3rd fields
  handoff partition --no-headers 2,3 out data.csv

Names: letters, digits, `-`, `_`, `.` stay; every other byte of a key becomes %XX (see the
README: \"Safe, distinct file names\").";

/// What to do with files already in OUTDIR.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct ExistingFiles {
    /// Add to existing files in OUTDIR (the header only to new or empty files; a file's
    /// header must be the input's).
    #[arg(long, conflicts_with = "force")]
    pub append: bool,
    /// Write into a non-empty OUTDIR, replacing the files this run writes.
    #[arg(long)]
    pub force: bool,
}

impl ExistingFiles {
    pub fn mode(self) -> Existing {
        if self.append {
            Existing::Append
        } else if self.force {
            Existing::Replace
        } else {
            Existing::Refuse
        }
    }
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
