//! Where the pager keeps the paths of its files: packed into 1 MiB blocks, each path behind
//! one thin pointer (a 2-byte length, then the bytes), so that a paged-out file costs its
//! path's bytes plus 2, with no allocator overhead per path. A block is returned to the
//! allocator when its last path is freed.

use std::alloc::{self, Layout};
use std::ffi::OsStr;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Mutex;

const BLOCK: usize = 1 << 20;
const LEN: usize = std::mem::size_of::<u16>();
/// Each block starts with the count of its live paths.
const HEADER: usize = std::mem::size_of::<usize>();

fn layout() -> Layout {
    Layout::from_size_align(BLOCK, BLOCK).expect("a valid layout")
}

pub(super) struct PathArena {
    inner: Mutex<Current>,
}

/// The block being filled, and how much of it is used.
struct Current {
    block: Option<NonNull<u8>>,
    used: usize,
}

// SAFETY: the blocks are plain bytes owned by the arena; all access to the shared counts goes
// through the mutex, and a path's bytes are immutable from allocation to free.
unsafe impl Send for PathArena {}
// SAFETY: as above.
unsafe impl Sync for PathArena {}

impl Default for PathArena {
    fn default() -> PathArena {
        PathArena {
            inner: Mutex::new(Current {
                block: None,
                used: BLOCK,
            }),
        }
    }
}

/// # Safety
/// `block` must be a live block of this module.
unsafe fn live(block: NonNull<u8>) -> *mut usize {
    block.as_ptr().cast::<usize>()
}

fn block_of(path: NonNull<u8>) -> NonNull<u8> {
    // Blocks are aligned to their size: the block of a path is its address rounded down.
    path.map_addr(|addr| {
        std::num::NonZeroUsize::new(addr.get() & !(BLOCK - 1)).expect("blocks are not at 0")
    })
}

impl PathArena {
    /// Copies `path` into the arena; `None` for a path longer than 65,535 bytes (no system
    /// accepts one; such a file is simply never paged out).
    pub(super) fn alloc(&self, path: &Path) -> Option<NonNull<u8>> {
        let bytes = path.as_os_str().as_encoded_bytes();
        let len = u16::try_from(bytes.len()).ok()?;
        let need = LEN + bytes.len();
        if need > BLOCK - HEADER {
            return None;
        }
        let mut current = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if current.used + need > BLOCK {
            let fresh = NonNull::new(
                // SAFETY: the layout has a non-zero size.
                unsafe { alloc::alloc(layout()) },
            )
            .unwrap_or_else(|| alloc::handle_alloc_error(layout()));
            // SAFETY: `fresh` is a new block, aligned for usize.
            unsafe { *live(fresh) = 0 };
            if let Some(old) = current.block.replace(fresh) {
                // SAFETY: `old` is a live block; with no live path it is ours to free.
                unsafe {
                    if *live(old) == 0 {
                        alloc::dealloc(old.as_ptr(), layout());
                    }
                }
            }
            current.used = HEADER;
        }
        let block = current.block.expect("a block");
        // SAFETY: `used + need <= BLOCK`, so the path fits in the block; nothing else writes
        // there (the arena hands out each range once), and the count is guarded by the mutex.
        unsafe {
            let at = block.as_ptr().add(current.used);
            at.cast::<[u8; LEN]>().write(len.to_ne_bytes());
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), at.add(LEN), bytes.len());
            *live(block) += 1;
            current.used += need;
            Some(NonNull::new_unchecked(at))
        }
    }

    /// Frees a path; frees its block too if it was the block's last and the block is full.
    ///
    /// # Safety
    /// `path` must come from `alloc` of this arena, and nothing may use it afterwards.
    pub(super) unsafe fn free(&self, path: NonNull<u8>) {
        let current = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let block = block_of(path);
        // SAFETY: `path` lies in a live block of this arena (the caller's contract); the count
        // is guarded by the mutex held.
        unsafe {
            *live(block) -= 1;
            if *live(block) == 0 && current.block != Some(block) {
                alloc::dealloc(block.as_ptr(), layout());
            }
        }
    }
}

/// The path at `path`.
///
/// # Safety
/// `path` must come from `PathArena::alloc` and not be freed during `'a`.
pub(super) unsafe fn as_path<'a>(path: NonNull<u8>) -> &'a Path {
    // SAFETY: the arena wrote a 2-byte length then that many bytes from `as_encoded_bytes` of
    // this process (the caller's contract); `[u8; LEN]` has alignment 1.
    unsafe {
        let len = u16::from_ne_bytes(path.as_ptr().cast::<[u8; LEN]>().read()) as usize;
        let bytes = std::slice::from_raw_parts(path.as_ptr().add(LEN), len);
        Path::new(OsStr::from_encoded_bytes_unchecked(bytes))
    }
}

impl Drop for PathArena {
    fn drop(&mut self) {
        let current = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(block) = current.block.take() {
            // SAFETY: every entry freed its path before the table (and so the arena) is
            // dropped; the current block is the only one left, and nothing refers to it.
            unsafe { alloc::dealloc(block.as_ptr(), layout()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_and_blocks_are_reused_and_freed() {
        let arena = PathArena::default();
        let paths: Vec<_> = (0..10_000)
            .map(|i| format!("/some/directory/file-{i}"))
            .collect();
        let stored: Vec<_> = paths
            .iter()
            .map(|p| arena.alloc(Path::new(p)).unwrap())
            .collect();
        for (p, s) in paths.iter().zip(&stored) {
            // SAFETY: allocated above, not freed yet.
            assert_eq!(unsafe { as_path(*s) }, Path::new(p));
        }
        for s in stored {
            // SAFETY: allocated above, freed once.
            unsafe { arena.free(s) };
        }
        assert!(arena.alloc(Path::new(&"x".repeat(70_000))).is_none());
    }
}
