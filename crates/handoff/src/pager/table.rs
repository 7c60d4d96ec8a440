//! The pager's shared state: the entry table, the budget of real descriptors, the clock that
//! picks what to evict, and the counters.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use super::entry::{self, Entry, BUSY, ERROR, PERMANENT, PINS, REF, RESIDENT};
use super::stats::Counters;
use super::sys::{self, RawDescriptor};
use super::OpenOptions;
use crate::limits;

const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;
/// 2^14 chunks of 4096 entries: 67 million virtual files per pager.
const CHUNKS: usize = 1 << 14;

pub(super) struct Table {
    id: usize,
    chunks: Box<[OnceLock<Box<[Entry]>>]>,
    slots: Mutex<Slots>,
    /// The budget (high 32 bits) and the real descriptors held or being opened by the pager
    /// (low 32 bits), in one word so that a token is taken against the budget of that instant:
    /// a `set_budget` racing an `acquire` cannot let the count pass a shrunk budget.
    tokens: AtomicU64,
    /// Of those, the ones that can never be evicted.
    permanent: AtomicUsize,
    clock: Mutex<Clock>,
    waiters: AtomicUsize,
    wait_lock: Mutex<()>,
    wakeup: Condvar,
    /// The backing's per-table state (Unix: the paths).
    shared: sys::Shared,
    /// Errors from closing at eviction, returned by the entry's next operation.
    errors: Mutex<HashMap<u32, io::Error>>,
    pub(super) counters: Counters,
}

#[derive(Default)]
struct Slots {
    free: Vec<u32>,
    next: u32,
}

/// The resident, evictable entries in clock order, as (slot, generation): a record whose
/// generation is stale, or whose entry is no longer resident, is dropped when the hand meets it.
#[derive(Default)]
struct Clock {
    ring: Vec<(u32, u32)>,
    hand: usize,
}

thread_local! {
    /// (pager id, slot, pins) held by `with_fd` closures of this thread on files that can be
    /// paged out, to refuse a wait that only this thread could end. A slot is one descriptor
    /// however often it is pinned.
    static HELD: RefCell<Vec<(usize, u32, usize)>> = const { RefCell::new(Vec::new()) };
}

/// A test's action at a seam.
#[cfg(test)]
pub(super) type Seam = Box<dyn FnOnce(&Table)>;

#[cfg(test)]
thread_local! {
    /// A test seam: runs once in `acquire`, between its look at the budget and taking a token.
    pub(super) static BEFORE_TAKE: std::cell::Cell<Option<Seam>> =
        const { std::cell::Cell::new(None) };
}

const COUNT: u64 = u32::MAX as u64;

fn budget_of(tokens: u64) -> usize {
    (tokens >> 32) as usize
}

fn resident_of(tokens: u64) -> usize {
    (tokens & COUNT) as usize
}

/// A budget as the token word holds it: at least 1, at most 2^32 - 1.
fn budget_bits(budget: usize) -> u64 {
    (budget.clamp(1, COUNT as usize) as u64) << 32
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Table {
    pub(super) fn new(budget: usize) -> Table {
        static IDS: AtomicUsize = AtomicUsize::new(0);
        Table {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
            slots: Mutex::default(),
            tokens: AtomicU64::new(budget_bits(budget)),
            permanent: AtomicUsize::new(0),
            clock: Mutex::default(),
            waiters: AtomicUsize::new(0),
            wait_lock: Mutex::new(()),
            wakeup: Condvar::new(),
            shared: sys::Shared::default(),
            errors: Mutex::default(),
            counters: Counters::default(),
        }
    }

    #[inline]
    pub(super) fn entry(&self, slot: u32) -> &Entry {
        let chunk = self.chunks[(slot >> CHUNK_BITS) as usize]
            .get()
            .expect("slot of an allocated chunk");
        // Slots opened one after another (often used by different threads) are spread over
        // four quarters of the chunk, so that they do not share a cache line: entries are
        // 48 bytes, and two threads pinning neighbours would otherwise fight over one line.
        let index = slot as usize & (CHUNK - 1);
        &chunk[((index & 3) << (CHUNK_BITS - 2)) | (index >> 2)]
    }

    pub(super) fn budget(&self) -> usize {
        budget_of(self.tokens.load(Ordering::Relaxed))
    }

    pub(super) fn resident(&self) -> usize {
        resident_of(self.tokens.load(Ordering::Relaxed))
    }

    /// Sets the budget; a smaller one evicts until it is met or nothing more is evictable.
    pub(super) fn set_budget(&self, budget: usize) {
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |tokens| {
                Some(budget_bits(budget) | (tokens & COUNT))
            });
        while self.resident() > self.budget() && self.evict_one() {}
        self.wake();
    }

    // ----- slots -------------------------------------------------------------------------

    /// A free slot and its generation.
    pub(super) fn allocate(&self) -> io::Result<(u32, u32)> {
        let mut slots = lock(&self.slots);
        let slot = match slots.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = slots.next;
                if slot as usize >= CHUNK * CHUNKS {
                    return Err(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        "the pager's table is full (67,108,864 virtual files)",
                    ));
                }
                self.chunks[(slot >> CHUNK_BITS) as usize]
                    .get_or_init(|| (0..CHUNK).map(|_| Entry::default()).collect());
                slots.next += 1;
                slot
            }
        };
        Ok((slot, self.entry(slot).generation.load(Ordering::Relaxed)))
    }

    /// Publishes a freshly opened file in `slot`: its resident descriptor (whose budget token
    /// is taken already), if the first open left one, and how to page it in again.
    pub(super) fn install(
        &self,
        slot: u32,
        fd: Option<RawDescriptor>,
        reopen: Option<sys::Reopen>,
        options: &OpenOptions,
    ) {
        let entry = self.entry(slot);
        if entry.install(&self.shared, fd, reopen, options) {
            self.permanent.fetch_add(1, Ordering::Relaxed);
        } else if fd.is_some() {
            self.enlist(slot, entry);
        }
    }

    fn enlist(&self, slot: u32, entry: &Entry) {
        let generation = entry.generation.load(Ordering::Relaxed);
        let mut clock = lock(&self.clock);
        // Closed files leave stale records that only the hand removes; when nothing is ever
        // evicted the hand never moves, so sweep them here once they outnumber the budget.
        if clock.ring.len() >= 2 * self.budget() + 64 {
            clock
                .ring
                .retain(|&(slot, generation)| self.is_enlisted(slot, generation));
            clock.hand = 0;
        }
        clock.ring.push((slot, generation));
    }

    /// How many records the clock holds (live or stale), for the (Unix) unit tests.
    #[cfg(all(test, unix))]
    pub(super) fn clock_len(&self) -> usize {
        lock(&self.clock).ring.len()
    }

    /// Whether a clock record still stands for a resident, evictable file.
    fn is_enlisted(&self, slot: u32, generation: u32) -> bool {
        let entry = self.entry(slot);
        entry.generation.load(Ordering::Relaxed) == generation
            && entry.state.load(Ordering::Relaxed) & (RESIDENT | PERMANENT) == RESIDENT
    }

    /// Closes the entry's descriptor if it has one, frees the slot, and returns the first
    /// error: one kept from an eviction, or this close's.
    pub(super) fn release(&self, slot: u32) -> io::Result<()> {
        let entry = self.entry(slot);
        let locked = entry.lock();
        // Claiming waits for an evictor that is closing the descriptor right now, so the error
        // of that close, if any, is kept by the time it is taken below.
        let mut closed = Ok(());
        if let Some(state) = entry.claim_for_close() {
            closed = sys::close(entry::descriptor_of(state));
            if state & PERMANENT != 0 {
                self.permanent.fetch_sub(1, Ordering::Relaxed);
            }
            self.tokens.fetch_sub(1, Ordering::Release);
        }
        let kept = self.take_kept_error(slot);
        self.counters
            .hits
            .fetch_add(entry.take_hits(), Ordering::Relaxed);
        entry.free(&self.shared, &locked);
        drop(locked);
        lock(&self.slots).free.push(slot);
        self.counters.closes.fetch_add(1, Ordering::Relaxed);
        self.wake();
        match kept {
            Some(error) => Err(error),
            None => closed,
        }
    }

    // ----- the slow path -----------------------------------------------------------------

    /// Pins `slot`, paging it in if it is not resident. Returns its entry and descriptor.
    #[inline]
    pub(super) fn pin(&self, slot: u32) -> io::Result<(&Entry, RawDescriptor)> {
        let entry = self.entry(slot);
        if let Some(fd) = entry.try_pin() {
            if let Some(hits) = entry.count_hit() {
                self.counters.hits.fetch_add(hits, Ordering::Relaxed);
            }
            return Ok((entry, fd));
        }
        Ok((entry, self.page_in(slot, entry)?))
    }

    #[cold]
    fn page_in(&self, slot: u32, entry: &Entry) -> io::Result<RawDescriptor> {
        // One page-in of an entry at a time (and never during its final close). The thread
        // that holds the lock may be waiting for a descriptor that only this thread's pins
        // could free: then waiting for it is a deadlock, reported as one.
        let _locked = loop {
            if let Some(locked) = entry.try_lock() {
                break locked;
            }
            if let Some(fd) = entry.try_pin() {
                return Ok(fd); // paged in by the holder: counted as its page-in
            }
            if let Some(error) = self.deadlock() {
                return Err(error);
            }
            std::thread::yield_now();
        };
        loop {
            // Paged in by another thread meanwhile, or kept resident (PERMANENT) by an
            // eviction that found the file unlinked: a hit.
            if let Some(fd) = entry.try_pin() {
                return Ok(fd);
            }
            let state = entry.state.load(Ordering::Acquire);
            if state & BUSY != 0 {
                // An evictor is closing it, or keeping it; done in a moment.
                std::thread::yield_now();
                continue;
            }
            if state & ERROR != 0 {
                // The eviction's close failed: its error comes first.
                if let Some(error) = self.take_kept_error(slot) {
                    return Err(error);
                }
                continue;
            }
            if state & RESIDENT != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!(
                        "the virtual file is pinned {PINS} times at once, the most a pager \
                         entry counts"
                    ),
                ));
            }
            break; // paged out: ours to page in
        }
        let options = entry.options();
        self.acquire()?;
        let opened = self.retry_evicting(
            || entry.backing.page_in(&self.shared, &options),
            |failure| limits::is_out_of_descriptors(&failure.error),
        );
        let fd = match opened {
            Ok(fd) => fd,
            Err(failure) => {
                self.give_back();
                if failure.identity {
                    self.counters
                        .identity_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
                return Err(failure.error);
            }
        };
        entry.page_in(fd);
        self.enlist(slot, entry);
        self.counters.page_ins.fetch_add(1, Ordering::Relaxed);
        Ok(fd)
    }

    /// Takes the error kept for `slot` from a failed close at eviction, if there is one.
    pub(super) fn take_kept_error(&self, slot: u32) -> Option<io::Error> {
        if self.entry(slot).take_error_flag() {
            lock(&self.errors).remove(&slot)
        } else {
            None
        }
    }

    /// Runs `attempt`; while it fails for want of descriptors (EMFILE/ENFILE: other code in
    /// the process holds descriptors too), evicts one of ours and tries again, until it works
    /// or nothing is evictable.
    pub(super) fn retry_evicting<T, E>(
        &self,
        attempt: impl Fn() -> Result<T, E>,
        out_of_descriptors: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        loop {
            match attempt() {
                Err(error) if out_of_descriptors(&error) && self.evict_one() => {
                    self.counters.emfile_retries.fetch_add(1, Ordering::Relaxed);
                }
                result => return result,
            }
        }
    }

    /// Unpins `entry` (one of this table's); wakes a waiting page-in if this was the last pin.
    #[inline]
    pub(super) fn unpin(&self, entry: &Entry) {
        if entry.unpin() && self.waiters.load(Ordering::Relaxed) != 0 {
            self.wake();
        }
    }

    // ----- the budget --------------------------------------------------------------------

    /// Takes one descriptor of the budget: evicts if the budget is used up, waits if everything
    /// resident is pinned, and fails if only this thread could ever release one.
    pub(super) fn acquire(&self) -> io::Result<()> {
        loop {
            let tokens = self.tokens.load(Ordering::Acquire);
            let resident = resident_of(tokens);
            if resident < budget_of(tokens) {
                #[cfg(test)]
                if let Some(hook) = BEFORE_TAKE.with(|hook| hook.take()) {
                    hook(self);
                }
                // Fails if the budget changed too: then look again.
                if self
                    .tokens
                    .compare_exchange_weak(tokens, tokens + 1, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    self.counters
                        .peak_resident
                        .fetch_max(resident as u64 + 1, Ordering::Relaxed);
                    return Ok(());
                }
                continue;
            }
            if self.evict_one() {
                continue;
            }
            if let Some(error) = self.deadlock() {
                return Err(error);
            }
            self.wait();
        }
    }

    /// The error to return instead of waiting for a descriptor, if only this thread could
    /// ever free one: files that cannot be paged out and this thread's own `with_fd` pins use
    /// the whole budget, and no other thread holds a token that it will give back.
    fn deadlock(&self) -> Option<io::Error> {
        let held_here = self.held_by_this_thread();
        let permanent = self.permanent.load(Ordering::Relaxed);
        let tokens = self.tokens.load(Ordering::Acquire);
        let (budget, resident) = (budget_of(tokens), resident_of(tokens));
        (permanent + held_here >= budget && resident <= permanent + held_here).then(|| {
            io::Error::new(
                io::ErrorKind::Deadlock,
                format!(
                    "no descriptor of the pager's budget ({budget}) can ever be freed: \
                     {permanent} are held by files that cannot be paged out and {held_here} are \
                     pinned by this thread's own with_fd closures"
                ),
            )
        })
    }

    /// Returns a budget descriptor that was taken but not used.
    pub(super) fn give_back(&self) {
        self.tokens.fetch_sub(1, Ordering::Release);
        self.wake();
    }

    fn wait(&self) {
        let guard = lock(&self.wait_lock);
        self.waiters.fetch_add(1, Ordering::SeqCst);
        self.counters.waits.fetch_add(1, Ordering::Relaxed);
        // A timeout bounds the cost of a wake-up that raced with going to sleep.
        let _ = self
            .wakeup
            .wait_timeout(guard, Duration::from_millis(5))
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    fn wake(&self) {
        if self.waiters.load(Ordering::SeqCst) != 0 {
            let _guard = lock(&self.wait_lock);
            self.wakeup.notify_all();
        }
    }

    /// Runs `f` (a `with_fd` closure) with `slot` pinned, counting the pin as this thread's.
    /// A permanent file is not counted: it is counted among the permanent ones already.
    pub(super) fn hold<R>(&self, slot: u32, f: impl FnOnce() -> R) -> R {
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
        if self.entry(slot).state.load(Ordering::Relaxed) & PERMANENT != 0 {
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

    /// Descriptors (not pins: a slot pinned twice is one) this thread's `with_fd` closures
    /// hold on files that can be paged out.
    fn held_by_this_thread(&self) -> usize {
        HELD.with(|held| {
            held.borrow()
                .iter()
                .filter(|&&(id, _, _)| id == self.id)
                .count()
        })
    }

    // ----- eviction ----------------------------------------------------------------------

    /// Closes one unpinned resident descriptor, chosen by the clock (second chance). Returns
    /// whether one was closed.
    pub(super) fn evict_one(&self) -> bool {
        let mut clock = lock(&self.clock);
        let mut budget = 2 * clock.ring.len() + 2;
        while !clock.ring.is_empty() && budget > 0 {
            budget -= 1;
            if clock.hand >= clock.ring.len() {
                clock.hand = 0;
            }
            let hand = clock.hand;
            let (slot, generation) = clock.ring[hand];
            if !self.is_enlisted(slot, generation) {
                clock.ring.swap_remove(hand); // stale record
                continue;
            }
            let entry = self.entry(slot);
            let state = entry.state.load(Ordering::Acquire);
            if state & (PINS | BUSY) != 0 {
                clock.hand += 1;
                continue;
            }
            if state & REF != 0 {
                entry.state.fetch_and(!REF, Ordering::Relaxed);
                clock.hand += 1;
                continue;
            }
            if !entry.try_claim(state) {
                continue; // it changed under us; look again
            }
            clock.ring.swap_remove(hand);
            drop(clock);
            if self.finish_eviction(slot, entry, state) {
                return true;
            }
            clock = lock(&self.clock);
        }
        false
    }

    /// Closes a claimed entry's descriptor. An unlinked file cannot be reopened: it becomes
    /// permanent instead, and `false` is returned.
    pub(super) fn finish_eviction(&self, slot: u32, entry: &Entry, state: u64) -> bool {
        let fd = entry::descriptor_of(state);
        if sys::keep_at_eviction(fd) {
            self.permanent.fetch_add(1, Ordering::Relaxed);
            entry.make_permanent();
            return false;
        }
        if let Err(error) = sys::close(fd) {
            lock(&self.errors).insert(slot, error);
            entry.closed(true);
        } else {
            entry.closed(false);
        }
        self.tokens.fetch_sub(1, Ordering::Release);
        self.counters.evictions.fetch_add(1, Ordering::Relaxed);
        self.wake();
        true
    }

    pub(super) fn permanent(&self) -> usize {
        self.permanent.load(Ordering::Relaxed)
    }

    /// Hits: the folded total plus what every entry holds now (a scan of every slot).
    pub(super) fn hits(&self) -> u64 {
        let slots = lock(&self.slots).next as usize;
        let live: u64 = (0..slots)
            .map(|slot| u64::from(self.entry(slot as u32).hits.load(Ordering::Relaxed)))
            .sum();
        self.counters.hits.load(Ordering::Relaxed) + live
    }
}
