//! Buffers by size class, so that the largest can be found without sorting every key.
//!
//! A buffer of `len` bytes is in class `⌊log2 len⌋ + 1` (class 0: empty, in no list). Growing a
//! buffer by a record moves it to another class at most once per doubling, in O(1) (a
//! `swap_remove` and a `push`); the largest buffers are the ones in the highest non-empty
//! class, within a factor of two of the largest of all — close enough to choose what to
//! flush, and no record ever pays for a sort of all keys.

/// Classes: one per bit of a `usize` length, and 0 for empty.
const CLASSES: usize = usize::BITS as usize + 1;

/// Not in any class (an empty buffer).
const NONE: u8 = 0;

/// Which keys' buffers are in which size class.
#[derive(Debug)]
pub struct SizeClasses {
    /// `members[c]`: the keys in class `c` (`members[0]` stays empty).
    members: Vec<Vec<u32>>,
    /// Per key: its class and its place in that class's list.
    place: Vec<(u8, u32)>,
    /// Every class above this one is empty.
    top: usize,
}

impl Default for SizeClasses {
    fn default() -> SizeClasses {
        SizeClasses {
            members: vec![Vec::new(); CLASSES],
            place: Vec::new(),
            top: 0,
        }
    }
}

/// The class of a buffer of `len` bytes.
fn class_of(len: usize) -> usize {
    (usize::BITS - len.leading_zeros()) as usize
}

impl SizeClasses {
    /// Records that key `key`'s buffer is now `len` bytes long (0: empty, in no class).
    pub fn set(&mut self, key: u32, len: usize) {
        let at = key as usize;
        if at >= self.place.len() {
            self.place.resize(at + 1, (NONE, 0));
        }
        let class = class_of(len);
        let (old, index) = self.place[at];
        if usize::from(old) == class {
            return;
        }
        if old != NONE {
            let list = &mut self.members[usize::from(old)];
            list.swap_remove(index as usize);
            if let Some(&moved) = list.get(index as usize) {
                self.place[moved as usize].1 = index;
            }
        }
        if class == 0 {
            self.place[at] = (NONE, 0);
            return;
        }
        let list = &mut self.members[class];
        self.place[at] = (class as u8, list.len() as u32);
        list.push(key);
        self.top = self.top.max(class);
    }

    /// Key `key`'s buffer grew from `from` bytes (its length when last [`set`]) to `to`: only
    /// a change of class touches the per-key state (with many keys, a cache miss a record
    /// saved).
    ///
    /// [`set`]: SizeClasses::set
    #[inline]
    pub fn grew(&mut self, key: u32, from: usize, to: usize) {
        if class_of(from) != class_of(to) {
            self.set(key, to);
        }
    }

    /// The keys whose buffers are the largest (within a factor of two of the largest of all),
    /// most recently grown into that class last; empty if every buffer is empty.
    pub fn largest(&mut self) -> &[u32] {
        while self.top > 0 && self.members[self.top].is_empty() {
            self.top -= 1;
        }
        &self.members[self.top]
    }
}

/// A large buffer's capacity: `wanted` rounded up to whole huge pages, so that its memory is
/// covered by huge pages to its end (see [`crate::allocator::HUGE_PAGE`]) and what may become
/// resident is what `--memory` counts (Linux, where large buffers are mappings of their own).
/// A small one's, or elsewhere: `wanted`.
pub fn whole_huge_pages(wanted: usize) -> usize {
    use crate::allocator::{HUGE_PAGE, LARGE};
    if cfg!(target_os = "linux") && wanted >= LARGE {
        wanted.next_multiple_of(HUGE_PAGE)
    } else {
        wanted
    }
}

/// Appends `parts` to a key's buffer, growing it by half when it is full rather than doubling
/// it (as `Vec` would): a buffer's unused room counts against `--memory` as much as its
/// records do, and doubling leaves a third of it unused on average, a sixth this way. (A
/// large buffer grows in place or by `mremap`, with no copy; a small one's copy is cheap.)
#[inline]
pub fn append(buf: &mut Vec<u8>, parts: &[&[u8]]) {
    let needed: usize = parts.iter().map(|part| part.len()).sum();
    if buf.capacity() - buf.len() < needed {
        let wanted = buf.len() + needed.max(buf.capacity() / 2);
        buf.reserve_exact(whole_huge_pages(wanted) - buf.len());
    }
    for part in parts {
        // The BOM and the missing terminator are nearly always empty: no call for them.
        if !part.is_empty() {
            buf.extend_from_slice(part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a plain map of lengths: `largest` holds exactly the keys whose length has the
    /// highest bit length, whatever the order of updates.
    #[test]
    fn largest_matches_a_scan_of_every_length() {
        let mut classes = SizeClasses::default();
        let mut lengths = vec![0usize; 200];
        let mut seed = 7u64;
        for step in 0..20_000 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let key = (seed >> 33) as usize % lengths.len();
            let len = match (seed >> 20) % 4 {
                0 => 0,
                1 => lengths[key] + 80,
                2 => (seed >> 40) as usize % 100_000,
                _ => lengths[key] * 2 + 1,
            };
            lengths[key] = len;
            classes.set(key as u32, len);
            if step % 97 == 0 {
                let max = lengths.iter().copied().max().unwrap();
                let mut want: Vec<u32> = (0..lengths.len() as u32)
                    .filter(|&k| max > 0 && class_of(lengths[k as usize]) == class_of(max))
                    .collect();
                let mut got = classes.largest().to_vec();
                got.sort_unstable();
                want.sort_unstable();
                assert_eq!(got, want, "step {step}");
            }
        }
    }

    #[test]
    fn empty_buffers_are_in_no_class() {
        let mut classes = SizeClasses::default();
        classes.set(3, 10);
        assert_eq!(classes.largest(), &[3]);
        classes.set(3, 0);
        assert!(classes.largest().is_empty());
    }
}
