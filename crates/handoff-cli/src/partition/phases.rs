//! Where a run's time goes, told on standard error when `HANDOFF_PARTITION_PHASES` is set (to
//! anything but `0`): the time since the run began at which each phase ended, so that the
//! figures of issue #12's notes can be taken again without a profiler.
//!
//! ```text
//! handoff partition phases (ms since the run began): 2.4 split; 399.1 second half parsed;
//! 446.7 first half parsed; 463.1 merged; 472.7 writing; 921.9 written
//! ```
//!
//! `split`: a second half's parser started (see [`super::halves`]); `second half parsed`: its
//! thread ended; `first half parsed`: the main thread reached where it begins; `merged`: its
//! records were taken; `writing`: every input was read (the rest of the time is the writing of
//! what the buffers hold at the end); `written`: every file was closed. A run that does not split
//! has only the last two. The clock starts after the start-up (arguments, the re-execution
//! that sets the allocator's tunables: see [`super::huge_pages`]).

use std::fmt::Write as _;
use std::time::Instant;

/// The environment variable that turns the report on.
pub const VARIABLE: &str = "HANDOFF_PARTITION_PHASES";

/// The phases seen so far (kept only when the report is on).
pub struct Phases {
    started: Instant,
    on: bool,
    ended: Vec<(&'static str, Instant)>,
}

impl Phases {
    /// Phases from `started`, kept if [`VARIABLE`] is set.
    pub fn from_env(started: Instant) -> Phases {
        let on = std::env::var_os(VARIABLE).is_some_and(|value| value != "0");
        Phases {
            started,
            on,
            ended: Vec::new(),
        }
    }

    /// `phase` ended now.
    pub fn ended(&mut self, phase: &'static str) {
        self.ended_at(phase, Instant::now());
    }

    /// `phase` ended `at` (on another thread, say).
    pub fn ended_at(&mut self, phase: &'static str, at: Instant) {
        if self.on {
            self.ended.push((phase, at));
        }
    }

    /// The report's line, if it is on.
    pub fn report(&self) -> Option<String> {
        if !self.on {
            return None;
        }
        let mut ended = self.ended.clone();
        // (In the order they ended: a second half's end is known only once it is joined.)
        ended.sort_by_key(|&(_, when)| when);
        let mut line = String::from("handoff partition phases (ms since the run began):");
        for (at, (phase, when)) in ended.iter().enumerate() {
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
    fn phases_are_told_in_the_order_they_ended() {
        let started = Instant::now();
        let mut phases = Phases {
            started,
            on: true,
            ended: Vec::new(),
        };
        phases.ended_at("split", started + Duration::from_micros(2_400));
        phases.ended_at("first half parsed", started + Duration::from_millis(446));
        phases.ended_at("second half parsed", started + Duration::from_millis(399));
        phases.ended_at("written", started + Duration::from_millis(920));
        assert_eq!(
            phases.report().as_deref(),
            Some(
                "handoff partition phases (ms since the run began): 2.4 split; 399.0 second \
                 half parsed; 446.0 first half parsed; 920.0 written"
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
