//! The budget of real descriptors: tokens taken and given back, the waiters for one, the pins
//! each thread's `with_fd` closures hold, and the `Deadlock` error for a wait that only the
//! waiting thread could end.
//!
//! The budget and the count of descriptors held (resident, or being opened) share one atomic
//! word, so that a token is taken against the budget of that very instant: a `set` racing an
//! `acquire` can never let the count pass a shrunk budget (the budget is a hard ceiling).
//!
//! A [`Token`] is one descriptor's share of the budget. It is given back when dropped, so an
//! error anywhere between taking it and publishing the descriptor gives it back; once the
//! descriptor is published, [`Token::keep`] hands its share to the entry, and the eviction or
//! the final close that closes the descriptor gives it back with [`Budget::release`].
//!
//! # Waiting without a lost wake-up
//!
//! A waiter registers (`waiters` + 1, `SeqCst`, then a `SeqCst` fence), reads the wake count,
//! and tries again (a token, an eviction) before it sleeps, and sleeps only if the wake count
//! has not moved. Whoever may have freed a token (a token given back, the last pin of a file
//! dropped, a larger budget) does so with a `SeqCst` read-modify-write, then reads `waiters`
//! (`SeqCst`) and, if anyone waits, bumps the wake count under the mutex and notifies. Either
//! the notifier sees the waiter (and the wake count moves, or the waiter sleeps already), or the
//! waiter's retry sees what the notifier freed: the `SeqCst` order puts one before the other.
//! (The loom tests check this with the wait's timeout removed, as loom's condvar never times
//! out; the program keeps a 5 ms timeout as a second line of defence.)

use std::cell::RefCell;
use std::io;

use super::error::{PageInError, PageInErrorKind};
use super::sync::{self, lock, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering};

const COUNT: u64 = u32::MAX as u64;

fn budget_of(tokens: u64) -> usize {
    (tokens >> 32) as usize
}

fn resident_of(tokens: u64) -> usize {
    (tokens & COUNT) as usize
}

/// A budget as the token word holds it: at least 1, at most 2^32 − 1.
fn budget_bits(budget: usize) -> u64 {
    (budget.clamp(1, COUNT as usize) as u64) << 32
}

#[cfg(not(loom))]
std::thread_local! {
    /// (pager id, slot, pins) held by this thread's `with_fd` closures on files that can be
    /// paged out: a slot is one descriptor however often it is pinned.
    static HELD: RefCell<Vec<(usize, u32, usize)>> = const { RefCell::new(Vec::new()) };
}

#[cfg(loom)]
loom::thread_local! {
    static HELD: RefCell<Vec<(usize, u32, usize)>> = RefCell::new(Vec::new());
}

pub(super) struct Budget {
    /// Tells pagers apart in the per-thread pins.
    id: usize,
    /// The budget (high 32 bits) and the descriptors held or being opened (low 32 bits).
    tokens: AtomicU64,
    /// Of those, the ones that can never be evicted.
    permanent: AtomicUsize,
    waiters: AtomicUsize,
    /// How many wake-ups found waiters (the waiters' "has anything happened" check).
    wakes: Mutex<u64>,
    wakeup: Condvar,
    /// The most descriptors held at once.
    peak: AtomicU64,
    /// How often a taker had to sleep.
    waits: AtomicU64,
    /// Pins held by [`PinnedFile`](super::PinnedFile)s, by the thread that took them.
    pub(super) long_pins: super::pinned::Ledger,
}

/// One descriptor's share of the budget, given back when dropped (unless kept).
#[must_use = "dropping a token gives it back at once"]
pub(super) struct Token<'a>(&'a Budget);

impl Drop for Token<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Token<'_> {
    /// The descriptor this token was for is published (resident): its share stays taken
    /// until the descriptor is closed ([`Budget::release`]).
    pub(super) fn keep(self) {
        std::mem::forget(self);
    }
}

impl Budget {
    pub(super) fn new(budget: usize) -> Budget {
        static IDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        Budget {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            tokens: AtomicU64::new(budget_bits(budget)),
            permanent: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            wakes: Mutex::new(0),
            wakeup: Condvar::new(),
            peak: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            long_pins: super::pinned::Ledger::default(),
        }
    }

    pub(super) fn budget(&self) -> usize {
        budget_of(self.tokens.load(Ordering::Relaxed))
    }

    pub(super) fn resident(&self) -> usize {
        resident_of(self.tokens.load(Ordering::Relaxed))
    }

    pub(super) fn permanent(&self) -> usize {
        self.permanent.load(Ordering::Relaxed)
    }

    pub(super) fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    pub(super) fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// Sets the budget (at least 1). The caller evicts down to a smaller one.
    pub(super) fn set(&self, budget: usize) {
        let _ = self
            .tokens
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |tokens| {
                Some(budget_bits(budget) | (tokens & COUNT))
            });
        sync::seq_cst_order_for_loom();
        self.notify();
    }

    /// One more (`true`) or one fewer resident descriptor that can never be evicted.
    pub(super) fn count_permanent(&self, more: bool) {
        if more {
            self.permanent.fetch_add(1, Ordering::Relaxed);
        } else {
            self.permanent.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A token if one is free now.
    fn try_take(&self) -> Option<Token<'_>> {
        let mut tokens = self.tokens.load(Ordering::Acquire);
        loop {
            let resident = resident_of(tokens);
            if resident >= budget_of(tokens) {
                return None;
            }
            #[cfg(all(test, not(loom)))]
            if let Some(seam) = BEFORE_TAKE.with(|seam| seam.take()) {
                seam(self);
            }
            // Fails if the budget changed too: then look again.
            match self.tokens.compare_exchange_weak(
                tokens,
                tokens + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.peak.fetch_max(resident as u64 + 1, Ordering::Relaxed);
                    return Some(Token(self));
                }
                Err(now) => tokens = now,
            }
        }
    }

    /// Takes one descriptor of the budget: calls `evict` (which closes one of the pager's
    /// descriptors, giving its token back, and says whether it did) while the budget is used
    /// up, waits while nothing is evictable, and fails with `Deadlock` if only this thread
    /// could ever free one.
    pub(super) fn acquire(&self, mut evict: impl FnMut() -> bool) -> io::Result<Token<'_>> {
        let mut registered: Option<u64> = None; // the wake count seen since registering
        let result = loop {
            if let Some(token) = self.try_take() {
                break Ok(token);
            }
            if evict() {
                continue;
            }
            if let Some(error) = self.deadlock() {
                break Err(error);
            }
            match registered {
                None => {
                    // Register, then try once more before sleeping (see the module doc).
                    self.waiters.fetch_add(1, Ordering::SeqCst);
                    sync::fence(Ordering::SeqCst);
                    registered = Some(*lock(&self.wakes));
                }
                Some(seen) => {
                    let mut wakes = lock(&self.wakes);
                    if *wakes == seen {
                        self.waits.fetch_add(1, Ordering::Relaxed);
                        wakes = self.sleep(wakes);
                    }
                    registered = Some(*wakes);
                }
            }
        };
        if registered.is_some() {
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
        result
    }

    #[cfg(not(loom))]
    fn sleep<'a>(&self, wakes: sync::MutexGuard<'a, u64>) -> sync::MutexGuard<'a, u64> {
        self.wakeup
            .wait_timeout(wakes, std::time::Duration::from_millis(5))
            .map_or_else(|poisoned| poisoned.into_inner().0, |(wakes, _)| wakes)
    }

    /// Under loom: no timeout, so that a lost wake-up is a deadlock the checker reports.
    #[cfg(loom)]
    fn sleep<'a>(&self, wakes: sync::MutexGuard<'a, u64>) -> sync::MutexGuard<'a, u64> {
        self.wakeup
            .wait(wakes)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A resident descriptor was closed (or a token was not used): its share is free again.
    pub(super) fn release(&self) {
        let before = self.tokens.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(resident_of(before) > 0, "a token given back twice");
        sync::seq_cst_order_for_loom();
        self.notify();
    }

    /// Something that may free a token happened (after a `SeqCst` read-modify-write: see the
    /// module doc): wakes the waiters, if any.
    #[inline]
    pub(super) fn notify(&self) {
        if self.waiters.load(Ordering::SeqCst) != 0 {
            self.wake();
        }
    }

    #[cold]
    fn wake(&self) {
        let mut wakes = lock(&self.wakes);
        *wakes = wakes.wrapping_add(1);
        self.wakeup.notify_all();
    }

    /// The error to return instead of waiting for a descriptor, if only this thread could ever
    /// free one: the files that cannot be paged out and this thread's own `with_fd` pins use
    /// the whole budget, and no other thread holds a token that it will give back.
    pub(super) fn deadlock(&self) -> Option<io::Error> {
        let held_here = self.held_by_this_thread();
        let permanent = self.permanent.load(Ordering::Relaxed);
        let tokens = self.tokens.load(Ordering::Acquire);
        let (budget, resident) = (budget_of(tokens), resident_of(tokens));
        (permanent + held_here >= budget && resident <= permanent + held_here).then(|| {
            let why = io::Error::new(
                io::ErrorKind::Deadlock,
                format!(
                    "no descriptor of the pager's budget ({budget}) can ever be freed: \
                     {permanent} are held by files that cannot be paged out and {held_here} are \
                     pinned by this thread (its with_fd closures and PinnedFiles)"
                ),
            );
            PageInError::new(PageInErrorKind::Deadlock, None, Some(why)).into()
        })
    }

    /// Runs `f` (a `with_fd` closure) with `slot` pinned, counting the pin as this thread's
    /// (unless the file is `permanent`: it is counted among those already).
    pub(super) fn hold<R>(&self, slot: u32, permanent: bool, f: impl FnOnce() -> R) -> R {
        struct Release(usize, u32);
        impl Drop for Release {
            fn drop(&mut self) {
                HELD.with(|held| {
                    let mut held = held.borrow_mut();
                    if let Some(i) = held
                        .iter()
                        .position(|&(id, slot, _)| (id, slot) == (self.0, self.1))
                    {
                        held[i].2 -= 1;
                        if held[i].2 == 0 {
                            held.swap_remove(i);
                        }
                    }
                });
            }
        }
        if permanent {
            return f();
        }
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            match held
                .iter_mut()
                .find(|(id, held_slot, _)| (*id, *held_slot) == (self.id, slot))
            {
                Some((_, _, count)) => *count += 1,
                None => held.push((self.id, slot, 1)),
            }
        });
        let _release = Release(self.id, slot);
        f()
    }

    /// Whether this thread's `with_fd` closures pin any of this pager's files.
    pub(super) fn holds_pins(&self) -> bool {
        self.held_by_this_thread() != 0
    }

    /// Descriptors (not pins: a slot pinned twice is one) this thread's `with_fd` closures
    /// and [`PinnedFile`](super::PinnedFile)s hold on files that can be paged out.
    fn held_by_this_thread(&self) -> usize {
        HELD.with(|held| {
            held.borrow()
                .iter()
                .filter(|&&(id, _, _)| id == self.id)
                .count()
        }) + self.long_pins.held_by_this_thread()
    }
}

/// A test's action at a seam.
#[cfg(all(test, not(loom)))]
pub(super) type Seam = Box<dyn FnOnce(&Budget)>;

#[cfg(all(test, not(loom)))]
std::thread_local! {
    /// A test seam: runs once in `acquire`, between its look at the budget and taking a token.
    pub(super) static BEFORE_TAKE: std::cell::Cell<Option<Seam>> = const { std::cell::Cell::new(None) };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Budget;

    #[test]
    fn a_dropped_token_is_given_back_and_a_kept_one_is_not() {
        let budget = Budget::new(2);
        let token = budget.acquire(|| false).unwrap();
        assert_eq!(budget.resident(), 1);
        drop(token);
        assert_eq!(budget.resident(), 0);
        budget.acquire(|| false).unwrap().keep();
        assert_eq!(budget.resident(), 1);
        budget.release();
        assert_eq!((budget.resident(), budget.peak()), (0, 1));
    }

    #[test]
    fn a_budget_used_up_by_this_threads_pins_is_a_deadlock() {
        let budget = Budget::new(1);
        budget.acquire(|| false).unwrap().keep();
        let error = budget
            .hold(7, false, || budget.acquire(|| false).map(Token::keep))
            .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::Deadlock, "{error}");
        // The same slot pinned twice is still one descriptor: with a budget of 2, waiting is
        // right (another thread's token may come back), not an error.
        budget.set(2);
        assert!(budget
            .hold(7, false, || budget.hold(7, false, || budget.deadlock()))
            .is_none());
        budget.release();
    }

    use super::Token;

    /// Bug 4 of issue 8: `set` shrinking the budget between `acquire`'s look at it and its
    /// taking a token let the pager hold more than the (new) budget. The seam runs `set(1)`
    /// at exactly that point; the token must then wait for one to be given back.
    #[test]
    fn a_budget_shrunk_during_acquire_is_never_exceeded() {
        let budget = Budget::new(2);
        let first = budget.acquire(|| false).unwrap();
        super::BEFORE_TAKE.with(|seam| seam.set(Some(Box::new(|budget| budget.set(1)))));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                drop(first);
            });
            let second = budget.acquire(|| false).unwrap();
            assert_eq!(budget.budget(), 1);
            assert!(budget.resident() <= 1, "{} resident", budget.resident());
            drop(second);
        });
    }
}
