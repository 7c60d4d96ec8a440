//! The eviction policy: CLOCK (second chance) over the resident, evictable files, as
//! (slot, generation) records in a ring with a hand. Pure policy: what a record stands for now
//! (stale, pinned, recently used, a victim) is asked of the caller, so that the ring and the
//! hand are tested alone.

/// What the caller says of the record under the hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Look {
    /// The record no longer stands for a resident, evictable file (closed, paged out, made
    /// permanent, or the slot recycled): dropped from the ring.
    Stale,
    /// Pinned or being closed now, or used since the hand last passed (the caller cleared its
    /// mark: the second chance): the hand moves on.
    Pass,
    /// It changed under the caller: look at the same record again.
    Again,
    /// Claimed for eviction: removed from the ring and returned.
    Take,
}

/// The ring of records and the hand.
#[derive(Default)]
pub(super) struct Clock {
    ring: Vec<(u32, u32)>,
    hand: usize,
}

impl Clock {
    /// Records a file that just became resident.
    pub(super) fn push(&mut self, slot: u32, generation: u32) {
        self.ring.push((slot, generation));
    }

    /// Records held, live or stale.
    pub(super) fn len(&self) -> usize {
        self.ring.len()
    }

    /// Drops every record that `live` says is stale (closed files leave records that only the
    /// hand would remove, and the hand moves only when something is evicted).
    pub(super) fn sweep(&mut self, mut live: impl FnMut(u32, u32) -> bool) {
        self.ring
            .retain(|&(slot, generation)| live(slot, generation));
        self.hand = 0;
    }

    /// Moves the hand until `look` takes a record, for at most two turns of the ring (the
    /// first may only clear marks); `None` if nothing was taken.
    pub(super) fn next(&mut self, mut look: impl FnMut(u32, u32) -> Look) -> Option<(u32, u32)> {
        let mut steps = 2 * self.ring.len() + 2;
        while !self.ring.is_empty() && steps > 0 {
            steps -= 1;
            if self.hand >= self.ring.len() {
                self.hand = 0;
            }
            let (slot, generation) = self.ring[self.hand];
            match look(slot, generation) {
                Look::Stale => {
                    self.ring.swap_remove(self.hand);
                }
                Look::Pass => self.hand += 1,
                Look::Again => {}
                Look::Take => {
                    self.ring.swap_remove(self.hand);
                    return Some((slot, generation));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{Clock, Look};
    use std::collections::HashMap;

    /// An independent model of second chance: each file has a "used" mark and a "pinned" flag.
    struct Files {
        used: HashMap<u32, bool>,
        pinned: HashMap<u32, bool>,
    }

    impl Files {
        fn look(&mut self, slot: u32) -> Look {
            // A pinned file keeps its mark; an unpinned one loses it (its second chance).
            let pinned = self.pinned[&slot];
            if pinned || std::mem::replace(self.used.get_mut(&slot).unwrap(), false) {
                Look::Pass
            } else {
                Look::Take
            }
        }
    }

    #[test]
    fn the_first_unused_unpinned_record_after_the_hand_is_taken() {
        let mut clock = Clock::default();
        for slot in 0..4 {
            clock.push(slot, 0);
        }
        let mut files = Files {
            used: [(0, true), (1, false), (2, true), (3, false)].into(),
            pinned: [(0, false), (1, true), (2, false), (3, false)].into(),
        };
        // 0 used (cleared), 1 pinned, 2 used (cleared), 3 taken.
        assert_eq!(clock.next(|slot, _| files.look(slot)), Some((3, 0)));
        // The hand is past 3 (at the end): wraps to 0, now unused.
        assert_eq!(clock.next(|slot, _| files.look(slot)), Some((0, 0)));
        assert_eq!(clock.len(), 2);
    }

    #[test]
    fn two_turns_at_most_and_nothing_taken_when_all_are_pinned() {
        let mut clock = Clock::default();
        for slot in 0..5 {
            clock.push(slot, 0);
        }
        let mut looks = 0;
        let taken = clock.next(|_, _| {
            looks += 1;
            Look::Pass
        });
        assert_eq!((taken, looks), (None, 12));
        assert_eq!(clock.len(), 5);
    }

    #[test]
    fn stale_records_are_dropped_by_the_hand_and_by_a_sweep() {
        let mut clock = Clock::default();
        for slot in 0..6 {
            clock.push(slot, slot % 2);
        }
        // Records of generation 1 are stale.
        let taken = clock.next(|_, generation| {
            if generation == 1 {
                Look::Stale
            } else {
                Look::Pass
            }
        });
        assert_eq!(taken, None);
        assert_eq!(clock.len(), 3);
        clock.sweep(|slot, _| slot != 0);
        assert_eq!(clock.len(), 2);
        assert_eq!(clock.next(|_, _| Look::Take), Some((4, 0)));
    }

    #[test]
    fn again_looks_at_the_same_record() {
        let mut clock = Clock::default();
        clock.push(9, 0);
        let mut first = true;
        let taken = clock.next(|_, _| {
            if std::mem::take(&mut first) {
                Look::Again
            } else {
                Look::Take
            }
        });
        assert_eq!(taken, Some((9, 0)));
    }
}
