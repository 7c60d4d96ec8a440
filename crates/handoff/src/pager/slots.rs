//! The table's slots: a slab of entries in chunks allocated on first use (never moved, so an
//! entry is reached without a lock), a free list, and the generations that make a [`Vfd`]
//! from a closed file an error rather than another file.

use std::fmt;
use std::io;
use std::sync::{Mutex, OnceLock};

use super::entry::Entry;
use super::sync::lock_std as lock;

const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;
/// 2^14 chunks of 4096 entries: 67 million virtual files per pager.
const CHUNKS: usize = 1 << 14;

/// The id of a virtual descriptor: a slot and the slot's generation, so that a recycled slot
/// is never mistaken for the file that had it before.
///
/// ```
/// # use handoff::pager::{OpenOptions, Pager};
/// # let dir = tempfile::tempdir()?;
/// let pager = Pager::new(4);
/// let mut options = OpenOptions::new();
/// options.write(true).create(true);
/// let first = pager.open(dir.path().join("a"), &options)?.id(); // closed at once
/// let second = pager.open(dir.path().join("b"), &options)?.id(); // same slot, next generation
/// assert_ne!(first, second);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Vfd {
    pub(super) slot: u32,
    pub(super) generation: u32,
}

impl fmt::Display for Vfd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vfd {}.{}", self.slot, self.generation)
    }
}

pub(super) struct Slots {
    chunks: Box<[OnceLock<Box<[Entry]>>]>,
    free: Mutex<Free>,
}

#[derive(Default)]
struct Free {
    list: Vec<u32>,
    /// Slots below this were handed out at least once.
    next: u32,
}

impl Slots {
    pub(super) fn new() -> Slots {
        Slots {
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
            free: Mutex::default(),
        }
    }

    /// The entry of a slot that was handed out.
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

    /// A free slot and its generation.
    pub(super) fn allocate(&self) -> io::Result<Vfd> {
        let mut free = lock(&self.free);
        let slot = match free.list.pop() {
            Some(slot) => slot,
            None => {
                let slot = free.next;
                if slot as usize >= CHUNK * CHUNKS {
                    return Err(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        "the pager's table is full (67,108,864 virtual files)",
                    ));
                }
                self.chunks[(slot >> CHUNK_BITS) as usize]
                    .get_or_init(|| (0..CHUNK).map(|_| Entry::default()).collect());
                free.next += 1;
                slot
            }
        };
        Ok(Vfd {
            slot,
            generation: self.entry(slot).generation(),
        })
    }

    /// Puts a slot whose entry was freed back on the list.
    pub(super) fn free(&self, slot: u32) {
        lock(&self.free).list.push(slot);
    }

    /// How many slots were ever handed out (every entry below is allocated).
    pub(super) fn high_water(&self) -> u32 {
        lock(&self.free).next
    }
}
