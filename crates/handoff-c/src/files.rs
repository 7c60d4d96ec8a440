//! The table of a pager's open virtual descriptors, by the number C code holds: `BASE` (2^30)
//! plus an index, so that a virtual descriptor can never be mistaken for a real one (`read(2)`
//! on it fails with `EBADF`). A closed number is not handed out again before [`HELD_BACK`]
//! other numbers have been closed after it (the free list is first in, first out, and only
//! used once it is that long), so that a stale second `handoff_close` (or a read or write
//! through a number kept after its close) fails with `EBADF` instead of reaching a file
//! opened since, as the audit's quarantine does for real descriptors.

use std::collections::VecDeque;
use std::ffi::c_int;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use handoff::pager::{PinnedFile, VirtualFile};

use crate::errno::Errno;

/// The first virtual descriptor's number.
pub(crate) const BASE: c_int = 1 << 30;

/// How many numbers closed after a closed one before it may be handed out again: at most this
/// many empty slots (8 bytes each) are kept beyond the open files.
const HELD_BACK: usize = 1024;

/// One virtual descriptor.
pub(crate) enum File {
    Open(VirtualFile),
    /// Pinned by `handoff_pin`: the descriptor's offset is the cursor until `handoff_unpin`.
    Pinned(PinnedFile),
    /// Closed (a caller that looked it up before the close sees `EBADF`), or in transition.
    Closed,
}

/// A virtual descriptor's state, behind its own lock: I/O takes it shared, pin/unpin/close
/// exclusive.
pub(crate) type Slot = RwLock<File>;

#[derive(Default)]
pub(crate) struct Files {
    table: RwLock<Table>,
}

#[derive(Default)]
struct Table {
    slots: Vec<Option<Arc<Slot>>>,
    free: VecDeque<usize>,
}

fn ebadf<T>() -> Result<T, Errno> {
    Err(Errno(libc::EBADF))
}

impl Files {
    fn table(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn table_mut(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives `file` a number (`EMFILE` if all 2^30 are taken).
    pub(crate) fn insert(&self, file: VirtualFile) -> Result<c_int, Errno> {
        let mut table = self.table_mut();
        let slot = Some(Arc::new(RwLock::new(File::Open(file))));
        let fresh_left = table.slots.len() < (c_int::MAX - BASE) as usize;
        let index = if table.free.len() > HELD_BACK || !fresh_left {
            match table.free.pop_front() {
                Some(index) => {
                    table.slots[index] = slot;
                    index
                }
                None => return Err(Errno(libc::EMFILE)),
            }
        } else {
            table.slots.push(slot);
            table.slots.len() - 1
        };
        Ok(BASE + index as c_int)
    }

    fn index(vfd: c_int) -> Result<usize, Errno> {
        match vfd.checked_sub(BASE) {
            Some(index) if index >= 0 => Ok(index as usize),
            _ => ebadf(),
        }
    }

    /// The slot of `vfd` (`EBADF` if it is not open).
    pub(crate) fn get(&self, vfd: c_int) -> Result<Arc<Slot>, Errno> {
        let index = Self::index(vfd)?;
        match self.table().slots.get(index) {
            Some(Some(slot)) => Ok(Arc::clone(slot)),
            _ => ebadf(),
        }
    }

    /// Takes `vfd` out of the table, and its file out of its slot (`EBADF` if not open).
    pub(crate) fn remove(&self, vfd: c_int) -> Result<File, Errno> {
        let index = Self::index(vfd)?;
        let slot = {
            let mut table = self.table_mut();
            match table.slots.get_mut(index).and_then(Option::take) {
                Some(slot) => {
                    table.free.push_back(index);
                    slot
                }
                None => return ebadf(),
            }
        };
        // Waits for the calls on it that are running (they hold the slot shared).
        let mut file = write(&slot);
        Ok(std::mem::replace(&mut *file, File::Closed))
    }
}

/// The slot's file, shared (I/O).
pub(crate) fn read(slot: &Slot) -> RwLockReadGuard<'_, File> {
    slot.read().unwrap_or_else(PoisonError::into_inner)
}

/// The slot's file, exclusive (pin, unpin, close).
pub(crate) fn write(slot: &Slot) -> RwLockWriteGuard<'_, File> {
    slot.write().unwrap_or_else(PoisonError::into_inner)
}
