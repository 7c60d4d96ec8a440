//! What the user sees while a run goes on: a progress line on a terminal, nothing otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use handoff::pager::Stats;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A progress line on stderr if it is a terminal and `quiet` is off.
    pub fn new(quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed} {binary_bytes} read ({binary_bytes_per_sec}) {wide_msg}",
            )
            .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress { bar: Some(bar) }
    }

    pub fn update(&mut self, bytes: u64, records: u64, keys: usize, pager: &Stats) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
            let rate = records as f64 / bar.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!(
                "{records} records ({:.0}/s), {keys} keys, {} files paged in, {} out",
                rate, pager.page_ins, pager.evictions
            ));
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
