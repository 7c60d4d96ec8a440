//! What the user sees while a run goes on: a progress line on stderr if it is a terminal (and
//! not `--quiet`), nothing otherwise. Drawn by `indicatif`.
//!
//! - Reading: when every input is a regular file, their sizes make a total, and the line shows
//!   a bar, the share read and the time left (`ETA`); from a pipe, a spinner. Besides it, the
//!   counters — bytes read, records, records/s, keys, files paged in and out — as many as fit
//!   the terminal's width, in that order (the line never wraps: see [`counters`]).
//! - Writing: once the input is done, the last buffers are written and every file closed,
//!   which can take a while with many files: the line says so (`writing N files`).
//!
//! One unit everywhere: MiB (2^20 bytes), as `--memory` counts and as the summary prints.

use std::io::IsTerminal;
use std::time::Duration;

use handoff::pager::Stats;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What the counters show.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    pub bytes: u64,
    /// The inputs' total size, when known.
    pub total: Option<u64>,
    pub records: u64,
    /// Records a second, so far.
    pub rate: f64,
    pub keys: usize,
    pub page_ins: u64,
    pub evictions: u64,
}

/// Columns the template takes besides the message, at most: `{elapsed:>4}` (up to 5: `59m`,
/// `23h`…), the spaces, and with a total `[`, `]`, `{percent:>3}%`, ` ETA ` and `{eta}`
/// (up to 5).
const FIXED_WITH_TOTAL: usize = 5 + 1 + 1 + 2 + 2 + 4 + 5 + 5;
const FIXED_SPINNER: usize = 1 + 1 + 5 + 1;
/// The least width the bar keeps.
const BAR_MIN: usize = 6;

const WITH_TOTAL: &str = "{elapsed:>4} {msg} [{wide_bar}] {percent:>3}% ETA {eta}";
const SPINNER: &str = "{spinner} {elapsed:>4} {msg}";

/// The columns the message may take on a terminal `width` wide (one column spare: a line that
/// fills the last column wraps on some terminals).
pub fn message_width(width: usize, total_known: bool) -> usize {
    let fixed = if total_known {
        FIXED_WITH_TOTAL + BAR_MIN
    } else {
        FIXED_SPINNER
    };
    width.saturating_sub(fixed + 1)
}

/// `n` bytes in MiB.
pub fn mib(n: u64) -> String {
    format!("{:.1}", n as f64 / f64::from(1 << 20))
}

/// A count, short: `987`, `12.3k`, `4.56M`, `7.89G`.
fn short(n: f64) -> String {
    match n {
        n if n < 1e3 => format!("{n:.0}"),
        n if n < 1e6 => format!("{:.1}k", n / 1e3),
        n if n < 1e9 => format!("{:.2}M", n / 1e6),
        n => format!("{:.2}G", n / 1e9),
    }
}

/// The counters that fit in `width` columns, most important first (bytes, records, rate,
/// keys, paging); the first that does not fit ends the list, so the line keeps its shape.
pub fn counters(width: usize, s: &Snapshot) -> String {
    let read = format!("{} MiB", mib(s.bytes));
    // With a total, `read/total MiB` if it fits (the bar shows the share anyway).
    let bytes = match s.total {
        Some(total) if read.len() + 1 + mib(total).len() <= width => {
            format!("{}/{} MiB", mib(s.bytes), mib(total))
        }
        _ => read,
    };
    let items = [
        bytes,
        format!("{} records", short(s.records as f64)),
        format!("{}/s", short(s.rate)),
        format!("{} keys", short(s.keys as f64)),
        format!(
            "files paged in {}, out {}",
            short(s.page_ins as f64),
            short(s.evictions as f64)
        ),
    ];
    let mut line = String::new();
    for item in items {
        let gap = if line.is_empty() { 0 } else { 2 };
        if line.chars().count() + gap + item.chars().count() > width {
            break;
        }
        if gap > 0 {
            line.push_str(", ");
        }
        line.push_str(&item);
    }
    line
}

/// The message of the writing phase that fits in `width` columns.
pub fn writing(width: usize, files: usize) -> String {
    let files = if files == 1 {
        "1 file".to_owned()
    } else {
        format!("{files} files")
    };
    [
        format!("input done; writing {files} (their last buffers) and closing them"),
        format!("writing {files}"),
        "writing".to_owned(),
    ]
    .into_iter()
    .find(|message| message.chars().count() <= width)
    .unwrap_or_default()
}

/// The terminal's width in columns (80 if unknown).
fn terminal_width() -> usize {
    console::Term::stderr()
        .size_checked()
        .map_or(80, |(_, columns)| usize::from(columns))
}

pub struct Progress {
    bar: Option<ProgressBar>,
    total: Option<u64>,
}

impl Progress {
    /// A progress line on stderr if it is a terminal and `quiet` is off; with a bar if the
    /// inputs' `total` size is known.
    pub fn new(quiet: bool, total: Option<u64>) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress { bar: None, total };
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr_with_hz(4));
        let template = if total.is_some() { WITH_TOTAL } else { SPINNER };
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_message(counters(
            message_width(terminal_width(), total.is_some()),
            &Snapshot {
                total,
                ..Snapshot::default()
            },
        ));
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress {
            bar: Some(bar),
            total,
        }
    }

    pub fn update(&mut self, bytes: u64, records: u64, keys: usize, pager: &Stats) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
            let snapshot = Snapshot {
                bytes,
                total: self.total,
                records,
                rate: records as f64 / bar.elapsed().as_secs_f64().max(1e-3),
                keys,
                page_ins: pager.page_ins,
                evictions: pager.evictions,
            };
            // The width is read each time: the terminal may have been resized.
            let width = message_width(terminal_width(), self.total.is_some());
            bar.set_message(counters(width, &snapshot));
        }
    }

    /// The input is done: the last buffers of `files` files are written and every file
    /// closed (shown at once, with a spinner).
    pub fn writing(&mut self, files: usize) {
        if let Some(bar) = &self.bar {
            if let Some(total) = self.total {
                bar.set_position(total);
            }
            bar.set_style(ProgressStyle::with_template(SPINNER).expect("a valid template"));
            bar.set_message(writing(message_width(terminal_width(), false), files));
            // Drawn now, not at the next tick (a suspension redraws when it ends).
            bar.suspend(|| ());
        }
    }

    /// Shows a warning on stderr (above the progress line, if there is one), even with
    /// `--quiet`.
    pub fn warn(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("handoff partition: warning: {message}")),
            None => eprintln!("handoff partition: warning: {message}"),
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big() -> Snapshot {
        Snapshot {
            bytes: 123_456_789_012,
            total: Some(987_654_321_098),
            records: 9_876_543_210,
            rate: 12_345_678.9,
            keys: 4_000_000,
            page_ins: 123_456_789,
            evictions: 987_654_321,
        }
    }

    #[test]
    fn the_line_fits_widths_of_40_80_and_200() {
        for total in [true, false] {
            let mut s = big();
            if !total {
                s.total = None;
            }
            let fixed = if total {
                FIXED_WITH_TOTAL + BAR_MIN
            } else {
                FIXED_SPINNER
            };
            for width in [40, 80, 200] {
                let line = counters(message_width(width, total), &s);
                assert!(fixed + line.chars().count() < width, "{width}: {line}");
                let writing = writing(message_width(width, false), 4_000_000);
                assert!(FIXED_SPINNER + writing.chars().count() < width, "{writing}");
                assert!(writing.starts_with("writing") || writing.starts_with("input done"));
            }
        }
        // Wider terminals show more: all of it at 200 columns, the bytes at least at 80.
        let wide = counters(message_width(200, true), &big());
        assert!(
            wide.contains("files paged in") && wide.contains("keys"),
            "{wide}"
        );
        let narrow = counters(message_width(80, true), &big());
        assert!(narrow.starts_with("117737.6/941900.6 MiB"), "{narrow}");
        assert!(counters(message_width(40, false), &big()).contains("MiB"));
        let small = Snapshot {
            bytes: 5 << 20,
            total: Some(200 << 20),
            ..Snapshot::default()
        };
        assert_eq!(counters(message_width(40, true), &small), "5.0 MiB");
        assert!(writing(message_width(40, false), 12).contains("12 files"));
    }

    #[test]
    fn counts_are_short_and_units_are_mib() {
        assert_eq!(short(999.0), "999");
        assert_eq!(short(12_345.0), "12.3k");
        assert_eq!(short(4_560_000.0), "4.56M");
        assert_eq!(mib(3 << 20), "3.0");
        let line = counters(200, &big());
        assert!(!line.contains(" MB") && !line.contains("GiB"), "{line}");
    }
}
