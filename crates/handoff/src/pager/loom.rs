//! Model checking of the pager's state machine with loom: every interleaving (up to the
//! preemption bound) of the entry's transitions and the budget's token protocol, with loom's
//! own atomics, mutex and condvar (see `sync.rs`), so that the code checked is the code that
//! runs. Descriptors here are plain numbers: these tests check who may use, close or publish
//! one, which is all in `entry.rs` and `budget.rs`; opening and closing real files is tested
//! against the OS elsewhere.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p handoff --release --lib loom
//! ```
//!
//! Loom's condvar never times out, so a lost wake-up in the budget shows as a deadlock.

use std::io;
use std::sync::atomic::AtomicUsize as Count;

use loom::sync::atomic::AtomicBool;
use loom::sync::Arc;
use loom::thread;

use super::budget::Budget;
use super::entry::{Entry, PageIn};
use super::sync::Ordering;

/// Explores `f` (bounded by `LOOM_MAX_PREEMPTIONS`, else by `PREEMPTIONS`) and prints how
/// many interleavings it ran.
fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    const PREEMPTIONS: usize = 8;
    let runs = std::sync::Arc::new(Count::new(0));
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(PREEMPTIONS);
    }
    let bound = builder.preemption_bound;
    let counted = runs.clone();
    builder.check(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        f();
    });
    eprintln!(
        "loom: {name}: {} interleavings (preemption bound {bound:?})",
        runs.load(Ordering::Relaxed)
    );
}

fn no_deadlock() -> Option<io::Error> {
    None
}

fn no_error() -> Option<io::Error> {
    None
}

/// A pin and an eviction: the descriptor is never closed while pinned, and a pin never
/// succeeds on a claimed (BUSY) or closed entry.
#[test]
fn loom_pin_and_unpin_against_an_eviction() {
    model("pin/unpin vs claim/closed", || {
        let entry = Arc::new(Entry::model(Some(7)));
        let closed = Arc::new(AtomicBool::new(false));
        let pinner = {
            let (entry, closed) = (entry.clone(), closed.clone());
            thread::spawn(move || {
                if let Some(fd) = entry.pin() {
                    assert_eq!(fd, 7);
                    assert!(!closed.load(Ordering::Relaxed), "used after close");
                    let state = entry.snapshot();
                    assert!(state.is_resident() && !state.is_busy(), "{state:?}");
                    entry.unpin();
                }
            })
        };
        let state = entry.snapshot();
        if let Some(claim) = entry.try_claim(state) {
            assert_eq!(claim.claimed().pins(), 0);
            closed.store(true, Ordering::Relaxed);
            claim.closed(false);
        }
        pinner.join().unwrap();
        let state = entry.snapshot();
        assert_eq!(state.pins(), 0);
        assert_eq!(state.is_resident(), !closed.load(Ordering::Relaxed));
    });
}

/// Bug 1 of issue 8: an eviction that finds the file unlinked keeps it resident (`keep`:
/// PERMANENT) while a reader's pin fails on BUSY. The reader must then pin it, never page it
/// in (a second descriptor, a reopen of an unlinked path).
#[test]
fn loom_a_reader_behind_an_eviction_that_keeps_the_file_pins_it() {
    model("pin/begin_page_in vs claim/keep", || {
        let entry = Arc::new(Entry::model(Some(7)));
        let reader = {
            let entry = entry.clone();
            thread::spawn(move || {
                let fd = match entry.pin() {
                    Some(fd) => fd,
                    None => match entry.begin_page_in(no_deadlock, no_error).unwrap() {
                        PageIn::Hit(fd) => fd,
                        PageIn::Locked(_) => panic!("a resident file taken for paged out"),
                    },
                };
                assert_eq!(fd, 7);
                entry.unpin();
            })
        };
        if let Some(claim) = entry.try_claim(entry.snapshot()) {
            claim.keep(); // unlinked: resident for life
        }
        reader.join().unwrap();
        let state = entry.snapshot();
        assert!(state.is_resident() && state.pins() == 0, "{state:?}");
    });
}

/// Two page-ins of one paged-out file: one takes LOCKED and publishes a descriptor, the other
/// pins that one; never two descriptors.
#[test]
fn loom_two_page_ins_publish_one_descriptor() {
    model("begin_page_in/page_in x2", || {
        let budget = Arc::new(Budget::new(2));
        let entry = Arc::new(Entry::model(None));
        let page_in = |entry: &Entry, budget: &Budget, fd| {
            let fd = match entry.begin_page_in(|| budget.deadlock(), no_error).unwrap() {
                PageIn::Hit(fd) => fd,
                PageIn::Locked(locked) => {
                    let token = budget.acquire(|| false).unwrap();
                    entry.page_in(&locked, fd);
                    token.keep();
                    fd
                }
            };
            entry.unpin();
            fd
        };
        let other = {
            let (entry, budget) = (entry.clone(), budget.clone());
            thread::spawn(move || page_in(&entry, &budget, 8))
        };
        let here = page_in(&entry, &budget, 9);
        let there = other.join().unwrap();
        assert_eq!(here, there, "one descriptor");
        assert_eq!(budget.resident(), 1);
        let state = entry.snapshot();
        assert_eq!((state.descriptor(), state.pins()), (Some(here), 0));
    });
}

/// The final close against an eviction whose close failed: the close waits for the evictor
/// (BUSY), finds the entry paged out, and the error is kept (ERROR), not lost.
#[test]
fn loom_the_final_close_waits_for_an_evictor_and_keeps_its_error() {
    model("claim_for_close vs claim/closed(failed)", || {
        let entry = Arc::new(Entry::model(Some(7)));
        let evictor = {
            let entry = entry.clone();
            thread::spawn(move || match entry.try_claim(entry.snapshot()) {
                Some(claim) => {
                    claim.closed(true);
                    true
                }
                None => false,
            })
        };
        let locked = entry.lock();
        let closed_here = match entry.claim_for_close(&locked) {
            Some(claim) => {
                claim.closed(false);
                true
            }
            None => false,
        };
        let evicted = evictor.join().unwrap();
        assert!(closed_here != evicted, "closed exactly once");
        assert_eq!(
            entry.take_error_flag(),
            evicted,
            "the eviction's error is kept"
        );
        drop(locked);
    });
}

/// The budget: a taker that finds the budget used up sleeps, and the token given back wakes
/// it (no lost wake-up: loom's condvar never times out).
#[test]
fn loom_a_token_given_back_wakes_a_waiting_taker() {
    model("acquire/wait vs drop token", || {
        let budget = Arc::new(Budget::new(1));
        let held = budget.acquire(|| false).unwrap();
        let taker = {
            let budget = budget.clone();
            thread::spawn(move || {
                let token = budget.acquire(|| false).unwrap();
                assert!(budget.resident() <= budget.budget());
                drop(token);
            })
        };
        drop(held);
        taker.join().unwrap();
        assert_eq!(budget.resident(), 0);
    });
}

/// The budget and the entry: a taker waits while the only resident file is pinned; the
/// pinner's last unpin wakes it, and it evicts that file (no lost wake-up on the unpin path).
#[test]
fn loom_the_last_unpin_wakes_a_taker_that_evicts() {
    model("acquire/evict/wait vs unpin", || {
        let budget = Arc::new(Budget::new(1));
        let entry = Arc::new(Entry::model(Some(7)));
        budget.acquire(|| false).unwrap().keep(); // the token of entry's descriptor
        assert_eq!(entry.pin(), Some(7));
        let taker = {
            let (budget, entry) = (budget.clone(), entry.clone());
            thread::spawn(move || {
                let evict = || match entry.try_claim(entry.snapshot()) {
                    Some(claim) => {
                        claim.closed(false);
                        budget.release();
                        true
                    }
                    None => false,
                };
                budget.acquire(evict).unwrap().keep();
            })
        };
        // What `Table::unpin` does.
        if entry.unpin() {
            super::sync::seq_cst_order_for_loom();
            budget.notify();
        }
        taker.join().unwrap();
        assert!(!entry.snapshot().is_resident());
        assert_eq!(budget.resident(), 1);
    });
}

/// Bug 2 of issue 8: budget 1; thread A pins y (as a `with_fd` closure does) and reads x;
/// thread B pages x in, holding x's LOCKED while it waits for the budget that A's pin holds.
/// A must get `Deadlock` (not spin on LOCKED for ever), and B then pages x in once A is done.
#[test]
fn loom_a_self_wait_behind_another_page_in_is_a_deadlock_error() {
    model("hold/begin_page_in vs begin_page_in/acquire/wait", || {
        let budget = Arc::new(Budget::new(1));
        let x = Arc::new(Entry::model(None));
        let y = Arc::new(Entry::model(Some(7)));
        budget.acquire(|| false).unwrap().keep(); // y's descriptor
        assert_eq!(y.pin(), Some(7)); // before the other thread can evict it
        let other = {
            let (budget, x, y) = (budget.clone(), x.clone(), y.clone());
            thread::spawn(move || {
                let fd = match x.begin_page_in(|| budget.deadlock(), no_error) {
                    Ok(PageIn::Locked(locked)) => {
                        let evict = || match y.try_claim(y.snapshot()) {
                            Some(claim) => {
                                claim.closed(false);
                                budget.release();
                                true
                            }
                            None => false,
                        };
                        let token = budget.acquire(evict).unwrap();
                        x.page_in(&locked, 8);
                        token.keep();
                        8
                    }
                    Ok(PageIn::Hit(fd)) => fd,
                    Err(error) => panic!("{error}"),
                };
                x.unpin();
                fd
            })
        };
        let inner = budget.hold(1, false, || {
            match x.begin_page_in(|| budget.deadlock(), no_error) {
                Err(error) => Err(error.kind()),
                Ok(PageIn::Hit(fd)) => {
                    x.unpin();
                    Ok(fd)
                }
                Ok(PageIn::Locked(_locked)) => {
                    // This thread got x's LOCKED first: its own acquire sees the deadlock.
                    budget.acquire(|| false).map(|_| 0).map_err(|e| e.kind())
                }
            }
        });
        if y.unpin() {
            super::sync::seq_cst_order_for_loom();
            budget.notify();
        }
        assert_eq!(inner, Err(io::ErrorKind::Deadlock));
        assert_eq!(other.join().unwrap(), 8);
        assert_eq!(budget.resident(), 1);
    });
}
