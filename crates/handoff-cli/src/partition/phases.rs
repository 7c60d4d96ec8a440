//! Where a run's time goes, told on standard error when `HANDOFF_PARTITION_PHASES` is set (to
//! anything but `0`, even empty), once the run is over, whether it succeeded, failed or was
//! stopped: the time since the run began at which each phase ended, in the order they ended, so
//! that the figures of issue #12's notes can be taken again without a profiler.
//!
//! ```text
//! handoff partition phases (ms since the run began): 2.4 split; 399.1 second half parsed;
//! 446.7 first half parsed; 463.1 merged; 472.7 writing; 921.9 written
//! ```
//!
//! - `split`: a second half's parser was started (see [`super::halves`]);
//! - `second half parsed`: its thread ended; `first half parsed`: the main thread reached
//!   where it begins; `merged`: its records were taken; `rest parsed`: the second half had
//!   stopped early (its share of memory was used, or a record it cannot take: see
//!   [`super::halves`]), and the main thread read the rest of the input from there;
//! - or, instead of those, `second half dropped` (the main thread's record ran on past where
//!   it begins, or its memory was needed: the main thread reads on alone; or the run stopped
//!   first, a signal or an error) or `second half failed` (its thread did: the main thread
//!   reads on alone);
//! - `writing`: reading ended: every input was read, or a signal or an error stopped it; the
//!   rest of the time is the writing of what the buffers hold then;
//! - `written`: every file was closed.
//!
//! A run that does not split has only the last two. With several inputs, an input's phases name
//! it by its number (`split (input 2)`); an input that does not split has none. The clock
//! starts after the start-up (arguments, the re-execution that sets the allocator's tunables:
//! see [`super::huge_pages`]).

use std::fmt::Write as _;
use std::time::Instant;

/// The environment variable that turns the report on.
pub const VARIABLE: &str = "HANDOFF_PARTITION_PHASES";

/// The phases seen so far (kept only when the report is on).
pub struct Phases {
    started: Instant,
    on: bool,
    /// The number of the input being read, if there are several.
    input: Option<usize>,
    ended: Vec<(String, Instant)>,
}

impl Phases {
    /// Phases from `started`, kept if [`VARIABLE`] is set.
    pub fn from_env(started: Instant) -> Phases {
        let on = std::env::var_os(VARIABLE).is_some_and(|value| value != "0");
        Phases {
            started,
            on,
            input: None,
            ended: Vec::new(),
        }
    }

    /// The phases that end from now on are input `number`'s (`None`: the run's).
    pub fn set_input(&mut self, number: Option<usize>) {
        self.input = number;
    }

    /// `phase` ended now.
    pub fn ended(&mut self, phase: &'static str) {
        self.ended_at(phase, Instant::now());
    }

    /// `phase` ended `at` (on another thread, say).
    pub fn ended_at(&mut self, phase: &'static str, at: Instant) {
        if !self.on {
            return;
        }
        let name = match self.input {
            Some(number) => format!("{phase} (input {number})"),
            None => phase.to_owned(),
        };
        self.ended.push((name, at));
    }

    /// The report's line, if it is on.
    pub fn report(&self) -> Option<String> {
        if !self.on {
            return None;
        }
        let mut ended: Vec<&(String, Instant)> = self.ended.iter().collect();
        // (In the order they ended: a second half's end is known only once it is joined.)
        ended.sort_by_key(|&&(_, when)| when);
        let mut line = String::from("handoff partition phases (ms since the run began):");
        for (at, (phase, when)) in ended.into_iter().enumerate() {
            let ms = when.saturating_duration_since(self.started).as_secs_f64() * 1e3;
            let separator = if at == 0 { "" } else { ";" };
            let _ = write!(line, "{separator} {ms:.1} {phase}");
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn phases_are_told_in_the_order_they_ended_with_their_input() {
        let started = Instant::now();
        let mut phases = Phases {
            started,
            on: true,
            input: None,
            ended: Vec::new(),
        };
        let ms = |ms: u64| started + Duration::from_millis(ms);
        phases.set_input(Some(2));
        phases.ended_at("split", started + Duration::from_micros(2_400));
        phases.ended_at("first half parsed", ms(446));
        phases.ended_at("second half parsed", ms(399));
        phases.set_input(None);
        phases.ended_at("written", ms(920));
        assert_eq!(
            phases.report().as_deref(),
            Some(
                "handoff partition phases (ms since the run began): 2.4 split (input 2); 399.0 \
                 second half parsed (input 2); 446.0 first half parsed (input 2); 920.0 written"
            )
        );
        let mut off = Phases {
            on: false,
            ..phases
        };
        off.ended("merged");
        assert_eq!(off.report(), None);
    }
}
