//! The keys seen so far, numbered in order of first sight, each with its value (the key's
//! output slot).
//!
//! Finding a record's key is the one step every record takes, and with tens of thousands of
//! keys each lookup misses the cache: a `HashMap<Box<[u8]>, u32>` touches its control bytes,
//! its bucket (the key's pointer and length), the key's bytes on the heap, and then the slot
//! the number leads to. Here the table holds only the 4-byte numbers
//! (`hashbrown::HashTable`: a quarter of the buckets' size), and a key's bytes live with its
//! value, inline when short ([`INLINE`] bytes: most keys), so that a lookup touches the
//! control bytes, one number, and the entry it needs anyway.
//!
//! The hash is `foldhash::fast`, seeded per process: fast, and only "minimally" resistant to
//! keys crafted to collide (std's SipHash resists more); an input built that way slows a run
//! down (each lookup walks a longer probe), it cannot make it wrong.

use std::hash::BuildHasher;
use std::ops::{Index, IndexMut};

use hashbrown::HashTable;

/// Keys up to this many bytes are kept in the entry itself.
const INLINE: usize = 22;

/// A key's bytes: inline when short, else on the heap.
enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Key {
    fn new(key: &[u8]) -> Key {
        if key.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..key.len()].copy_from_slice(key);
            Key::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(key.into())
        }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(bytes) => bytes,
        }
    }
}

/// Keys numbered `0..len()` in order of first sight, each with a `V`.
pub struct Keyed<V> {
    table: HashTable<u32>,
    entries: Vec<(Key, V)>,
    hasher: foldhash::fast::RandomState,
}

impl<V> Default for Keyed<V> {
    fn default() -> Self {
        Keyed {
            table: HashTable::new(),
            entries: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl<V> Keyed<V> {
    /// The number of `key`, if it was seen.
    #[inline]
    pub fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        let entries = &self.entries;
        self.table
            .find(hash, |&at| entries[at as usize].0.as_bytes() == key)
            .copied()
    }

    /// The numbers of `keys`, looked up one after the other with nothing in between, so that
    /// the lookups' cache misses overlap; then `touch` is given each found key's value (to
    /// read now what the caller will write next, for the same reason).
    #[inline]
    pub fn find_all<'k>(
        &self,
        keys: impl Iterator<Item = &'k [u8]>,
        found: &mut Vec<Option<u32>>,
        touch: impl Fn(&V),
    ) {
        found.clear();
        found.extend(keys.map(|key| self.find(key)));
        for &at in found.iter().flatten() {
            touch(&self[at]);
        }
    }

    /// Adds `key` (not seen before: see [`Keyed::find`]) with `value`, and returns its number;
    /// `None` (nothing added) past `u32::MAX` keys.
    pub fn push(&mut self, key: &[u8], value: V) -> Option<u32> {
        let at = u32::try_from(self.entries.len()).ok()?;
        let hash = self.hasher.hash_one(key);
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.table.insert_unique(hash, at, |&other| {
            hasher.hash_one(entries[other as usize].0.as_bytes())
        });
        self.entries.push((Key::new(key), value));
        Some(at)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// About what a key of `len` bytes takes in the table: its entry and index slot, twice
    /// over (both grow by doubling), and its bytes if they are not kept inline.
    pub const fn memory_per_key(len: usize) -> usize {
        let entry = std::mem::size_of::<(Key, V)>() + std::mem::size_of::<u32>() + 1;
        2 * entry + if len > INLINE { len } else { 0 }
    }

    /// Every key and its value, in the order of their numbers.
    pub fn into_ordered(self) -> impl Iterator<Item = (impl AsRef<[u8]>, V)> {
        self.entries.into_iter()
    }

    /// Forgets every key (and drops every value).
    pub fn clear(&mut self) {
        self.table = HashTable::new();
        self.entries = Vec::new();
    }
}

impl<V> Index<u32> for Keyed<V> {
    type Output = V;

    #[inline]
    fn index(&self, at: u32) -> &V {
        &self.entries[at as usize].1
    }
}

impl<V> IndexMut<u32> for Keyed<V> {
    #[inline]
    fn index_mut(&mut self, at: u32) -> &mut V {
        &mut self.entries[at as usize].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Against std's `HashMap` (the oracle): keys of every length around the inline limit,
    /// empty, with NULs and invalid UTF-8, found again by their bytes with the values given.
    #[test]
    fn finds_what_a_hash_map_finds() {
        let mut keyed = Keyed::default();
        let mut oracle: HashMap<Vec<u8>, (u32, usize)> = HashMap::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..20_000usize {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let key: Vec<u8> = (0..len).map(|i| (seed >> (i % 8 * 8)) as u8 % 7).collect();
            match (keyed.find(&key), oracle.get(&key)) {
                (Some(at), Some(&(expected, value))) => {
                    assert_eq!(at, expected, "{key:?}");
                    assert_eq!(keyed[at], value);
                    keyed[at] = step;
                    oracle.insert(key, (at, step));
                }
                (None, None) => {
                    let at = keyed.push(&key, step).unwrap();
                    assert_eq!(at as usize, oracle.len());
                    oracle.insert(key, (at, step));
                }
                (found, expected) => panic!("{key:?}: {found:?} vs {expected:?}"),
            }
        }
        assert_eq!(keyed.len(), oracle.len());
        assert!(oracle.len() > 1_000, "the test met too few keys");
        for (key, &(at, value)) in &oracle {
            assert_eq!(keyed.find(key), Some(at));
            assert_eq!(keyed[at], value);
        }
        keyed.clear();
        assert_eq!(keyed.len(), 0);
        assert_eq!(keyed.find(b""), None);
    }
}
