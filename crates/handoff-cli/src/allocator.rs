//! The process's allocator: the system's, except that a large block (2 MiB or more, page
//! aligned at most) is a mapping of its own, on transparent huge pages where the system
//! gives them, grown and shrunk by `mremap` (Linux only).
//!
//! Why: `partition` keeps up to `--memory` of records in one growing buffer per key, and the
//! first touch of each 4 KiB page of them is a page fault (53,000 in a 146 MB run, about 14 %
//! of its CPU here). glibc's own large blocks are mappings too, but 4 KiB ones, and only while
//! its heap's free top is smaller than the request: with the heap on huge pages (see
//! `partition::huge_pages`, which pads the heap's growth) a buffer would grow inside the heap
//! by copying, and leave its old copies behind as free but resident memory (up to twice the
//! buffer). Here a large buffer is mapped once, aligned to 2 MiB so that huge pages cover it
//! from its start, and grows in place or moves by `mremap`, with no copy and nothing left
//! behind; it is unmapped when freed, so its memory goes back at once. Pages are never
//! touched beyond the mapping's length (rounded to 4 KiB), so the resident memory of a buffer
//! stays within its capacity, which is what `--memory` counts.
//!
//! ```
//! let mut buffer: Vec<u8> = Vec::with_capacity(3 << 20); // a mapping of its own
//! buffer.resize(5 << 20, 7); // grown by mremap
//! assert!(buffer.iter().all(|&b| b == 7));
//! ```

use std::alloc::{GlobalAlloc, Layout, System};

/// The handoff binary's global allocator (see the module's documentation).
pub struct Allocator;

/// Blocks from this size up are mappings of their own.
pub const LARGE: usize = 2 << 20;
#[cfg(target_os = "linux")]
const PAGE: usize = 4096;
/// A transparent huge page on x86-64 and arm64 (4 KiB base pages). A block whose size is a
/// multiple of it ends on a huge page's end, so that huge pages cover it to its end: a
/// mapping ending inside a huge page's range has 4 KiB pages there, which stay when it grows.
pub const HUGE_PAGE: usize = 2 << 20;

#[cfg(target_os = "linux")]
fn is_large(layout: Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= PAGE
}

#[cfg(target_os = "linux")]
fn mapped_len(size: usize) -> usize {
    size.next_multiple_of(PAGE)
}

/// A new mapping of `len` bytes (zeroed) at an address aligned to [`HUGE_PAGE`]: `len` and a
/// huge page more are mapped, and what lies outside the aligned range unmapped again.
#[cfg(target_os = "linux")]
fn map_aligned(len: usize) -> Option<usize> {
    let reserve = len.checked_add(HUGE_PAGE)?;
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing: no existing
    // memory is affected.
    let start = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            reserve,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if start == libc::MAP_FAILED {
        return None;
    }
    let start = start as usize;
    let aligned = start.next_multiple_of(HUGE_PAGE);
    let (head, tail) = (aligned - start, reserve - len - (aligned - start));
    // SAFETY: the head and the tail are the parts of the mapping just made that lie outside
    // [aligned, aligned + len); nothing refers to them.
    unsafe {
        if head > 0 {
            libc::munmap(start as *mut libc::c_void, head);
        }
        if tail > 0 {
            libc::munmap((aligned + len) as *mut libc::c_void, tail);
        }
    }
    Some(aligned)
}

/// A new block of at least `size` bytes (zeroed): a mapping of its own, aligned to
/// [`HUGE_PAGE`] and advised onto huge pages; null if the system refuses.
#[cfg(target_os = "linux")]
fn map(size: usize) -> *mut u8 {
    let len = mapped_len(size);
    let Some(aligned) = map_aligned(len) else {
        return std::ptr::null_mut();
    };
    // SAFETY: madvise only advises, on the mapping just made.
    unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
    aligned as *mut u8
}

/// Resizes the block at `ptr` (a mapping of `old_len` bytes made by [`map`]) to `new_len`:
/// in place if the addresses after it are free, else moved (its pages with it, no copy) to
/// a new range aligned to [`HUGE_PAGE`], so that huge pages still cover it from its start.
/// Null if the system refuses, the block then unchanged.
///
/// # Safety
/// `ptr` must be the start of a live mapping of exactly `old_len` bytes that this allocator
/// made, and nothing may use it after a non-null return except through the result.
#[cfg(target_os = "linux")]
unsafe fn remap(ptr: *mut u8, old_len: usize, new_len: usize) -> *mut u8 {
    // SAFETY: the caller's contract; without MREMAP_MAYMOVE the mapping stays where it is or
    // the call fails and changes nothing.
    let resized = unsafe { libc::mremap(ptr.cast(), old_len, new_len, 0) };
    if resized != libc::MAP_FAILED {
        return resized.cast();
    }
    let Some(target) = map_aligned(new_len) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the target is a mapping of new_len bytes this function just made, which
    // MREMAP_FIXED replaces; the old mapping is the caller's to give.
    let moved = unsafe {
        libc::mremap(
            ptr.cast(),
            old_len,
            new_len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            target as *mut libc::c_void,
        )
    };
    if moved == libc::MAP_FAILED {
        // The target is left mapped (address space only, never touched): the kernel may have
        // unmapped it before failing, and another thread's new mapping may be there now.
        return std::ptr::null_mut();
    }
    moved.cast()
}

// SAFETY: each block is either the system allocator's (small or over-aligned layouts, the
// same layout predicate at every call) or a mapping of its own whose length follows from its
// layout's size alone (`mapped_len`), so dealloc and realloc always find what alloc made.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        #[cfg(target_os = "linux")]
        if is_large(layout) {
            return map(layout.size());
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        #[cfg(target_os = "linux")]
        if is_large(layout) {
            return map(layout.size()); // anonymous mappings are zeroed
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        #[cfg(target_os = "linux")]
        if is_large(layout) {
            // SAFETY: `ptr` was returned by `map` or `mremap` for this layout's size (the
            // caller's contract), so the mapping is exactly mapped_len(size) long.
            unsafe { libc::munmap(ptr.cast(), mapped_len(layout.size())) };
            return;
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: the caller guarantees new_size, rounded up to the alignment, fits isize.
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            match (is_large(layout), is_large(new_layout)) {
                (false, false) => {}
                (true, true) => {
                    let (old_len, new_len) = (mapped_len(layout.size()), mapped_len(new_size));
                    if old_len == new_len {
                        return ptr;
                    }
                    // SAFETY: [ptr, ptr + old_len) is this block's whole mapping (see
                    // dealloc), which the caller gives up to realloc.
                    return unsafe { remap(ptr, old_len, new_len) };
                }
                _ => {
                    // Across the threshold: a new block of the other kind, and a copy.
                    // SAFETY: new_layout has a non-zero size (it is at least LARGE, or the
                    // old one was) and the alignment of a valid layout.
                    let new = unsafe { self.alloc(new_layout) };
                    if !new.is_null() {
                        // SAFETY: both blocks are live, distinct and at least this long.
                        unsafe {
                            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                            self.dealloc(ptr, layout);
                        }
                    }
                    return new;
                }
            }
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The mapping holding `address` in this process's memory map: its start, its end, and
    /// whether it is advised onto huge pages, from `/proc/self/smaps`.
    fn mapping_of(address: usize) -> (usize, usize, bool) {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut found = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((start, end)) = range.split_once('-') {
                    if let (Ok(start), Ok(end)) = (
                        usize::from_str_radix(start, 16),
                        usize::from_str_radix(end, 16),
                    ) {
                        found = (start <= address && address < end).then_some((start, end, false));
                        if found.is_some() {
                            continue;
                        }
                    }
                }
            }
            if let (Some((start, end, _)), Some(flags)) = (found, line.strip_prefix("VmFlags:")) {
                return (
                    start,
                    end,
                    flags.split_whitespace().any(|flag| flag == "hg"),
                );
            }
        }
        panic!("{address:#x} is in no mapping");
    }

    /// Blocks across the threshold, both ways, keep their bytes (checked against a copy kept
    /// by the system allocator's small blocks), and a large one is mapped on a 2 MiB boundary
    /// and advised onto huge pages.
    #[test]
    fn blocks_keep_their_bytes_across_the_threshold_and_large_ones_are_their_own_mappings() {
        let allocator = Allocator;
        let pattern = |i: usize| (i.wrapping_mul(2_654_435_761) >> 7) as u8;
        let sizes = [
            100,
            LARGE - 1,
            LARGE,
            LARGE + 1,
            3 * LARGE + 12_345,
            7 * LARGE,
            1000,
            LARGE,
        ];
        let mut layout = Layout::from_size_align(sizes[0], 1).unwrap();
        // SAFETY: a non-zero size; the pointer is used within its current size below.
        let mut ptr = unsafe { allocator.alloc(layout) };
        assert!(!ptr.is_null());
        // SAFETY: ptr holds layout.size() bytes.
        unsafe { (0..layout.size()).for_each(|i| *ptr.add(i) = pattern(i)) };
        for &size in &sizes[1..] {
            // SAFETY: ptr was allocated with `layout` by this allocator; size is non-zero.
            ptr = unsafe { allocator.realloc(ptr, layout, size) };
            assert!(!ptr.is_null());
            let kept = layout.size().min(size);
            // SAFETY: the block holds `size` bytes, of which `kept` were written before.
            let bytes = unsafe { std::slice::from_raw_parts(ptr, kept) };
            assert!(
                bytes.iter().enumerate().all(|(i, &b)| b == pattern(i)),
                "to {size}"
            );
            // SAFETY: the block holds `size` bytes.
            unsafe { (kept..size).for_each(|i| *ptr.add(i) = pattern(i)) };
            layout = Layout::from_size_align(size, 1).unwrap();
            if size >= LARGE {
                let (start, end, huge) = mapping_of(ptr as usize);
                // (Another test's mapping may lie next to it and share the kernel's record.)
                assert!(start <= ptr as usize && ptr as usize + size <= end);
                assert_eq!(ptr as usize % HUGE_PAGE, 0);
                assert!(huge, "advised onto huge pages");
            }
        }
        // SAFETY: allocated with `layout` by this allocator.
        unsafe { allocator.dealloc(ptr, layout) };
    }

    /// Many large blocks side by side, grown and shrunk at random (in place where the kernel
    /// can, else moved, or across the threshold): no block's bytes are lost or overwritten by
    /// another's growth (a word naming the block at every 64 KiB, checked after every step).
    #[test]
    fn neighbouring_blocks_survive_each_others_growth() {
        let allocator = Allocator;
        const STRIDE: usize = 64 << 10;
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        let fill = |ptr: *mut u8, from: usize, to: usize, id: usize| {
            for offset in (from.next_multiple_of(STRIDE)..to).step_by(STRIDE) {
                // SAFETY: offset < to, within the block's size.
                unsafe { ptr.add(offset).cast::<usize>().write_unaligned(id) };
            }
        };
        let check = |ptr: *mut u8, size: usize, id: usize| {
            for offset in (0..size).step_by(STRIDE) {
                // SAFETY: offset < size, within the block.
                let word = unsafe { ptr.add(offset).cast::<usize>().read_unaligned() };
                assert_eq!(word, id, "block {id} at {offset} of {size}");
            }
        };
        let mut blocks: Vec<(*mut u8, usize)> = (0..12)
            .map(|id| {
                let size = LARGE + next(2 * LARGE);
                // SAFETY: a non-zero size.
                let ptr = unsafe { allocator.alloc(Layout::from_size_align(size, 8).unwrap()) };
                assert!(!ptr.is_null());
                fill(ptr, 0, size, id);
                (ptr, size)
            })
            .collect();
        for _ in 0..300 {
            let id = next(blocks.len());
            let (ptr, size) = blocks[id];
            let new_size = match next(4) {
                0 => LARGE / 2 + next(LARGE),
                1 => size + 1 + next(LARGE),
                2 => LARGE + next(3 * LARGE),
                _ => (size / 2).max(1),
            };
            let layout = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: allocated with `layout` by this allocator; new_size is non-zero.
            let new = unsafe { allocator.realloc(ptr, layout, new_size) };
            assert!(!new.is_null());
            fill(new, size.min(new_size), new_size, id);
            blocks[id] = (new, new_size);
            for (other, &(ptr, size)) in blocks.iter().enumerate() {
                check(ptr, size, other);
            }
        }
        for (ptr, size) in blocks {
            // SAFETY: allocated with this layout by this allocator.
            unsafe { allocator.dealloc(ptr, Layout::from_size_align(size, 8).unwrap()) };
        }
    }

    #[test]
    fn a_zeroed_large_block_is_zero() {
        let layout = Layout::from_size_align(LARGE + 5, 8).unwrap();
        // SAFETY: a non-zero size; read within it, then freed with the same layout.
        unsafe {
            let ptr = Allocator.alloc_zeroed(layout);
            assert!(std::slice::from_raw_parts(ptr, layout.size())
                .iter()
                .all(|&b| b == 0));
            Allocator.dealloc(ptr, layout);
        }
    }
}
