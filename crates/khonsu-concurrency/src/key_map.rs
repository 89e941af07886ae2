//! [`KeyMap`]: a transaction's staged writes or point reads, in key order,
//! one entry per key, without an allocation per key for the common small
//! transaction.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::ops::Bound;

use khonsu_core::Key;
use smallvec::SmallVec;

/// Entries kept in a sorted array up to this many keys; beyond it, in a
/// `BTreeMap` (sorted insertion into an array moves `O(n)` entries).
const SMALL_KEYS: usize = 32;

/// Capacity allocated for a second key (one allocation for the typical
/// transaction of a few reads or writes; a single one allocates nothing).
const FIRST_CAPACITY: usize = 8;

/// The small representation: one entry inline, then a sorted heap array.
type Small<V> = SmallVec<[(Key, V); 1]>;

/// Key-ordered map of a transaction's writes (or of its point reads).
///
/// Small sets are one sorted array (binary search): the first entry is
/// stored inline, up to [`FIRST_CAPACITY`] keys take one allocation, and
/// an empty set costs nothing to build or drop. Larger sets move to a
/// `BTreeMap` once, so a transaction staging a million keys in random order
/// stays `O(n log n)`.
#[derive(Debug)]
pub(crate) enum KeyMap<V> {
    Small(Small<V>),
    Large(BTreeMap<Key, V>),
}

impl<V> Default for KeyMap<V> {
    fn default() -> Self {
        Self::Small(SmallVec::new())
    }
}

/// The index range of `entries` (sorted by key) inside the bounds.
fn small_range<V>(entries: &[(Key, V)], start: Bound<&Key>, end: Bound<&Key>) -> (usize, usize) {
    let from = match start {
        Bound::Included(s) => entries.partition_point(|(k, _)| k < s),
        Bound::Excluded(s) => entries.partition_point(|(k, _)| k <= s),
        Bound::Unbounded => 0,
    };
    let to = match end {
        Bound::Included(e) => entries.partition_point(|(k, _)| k <= e),
        Bound::Excluded(e) => entries.partition_point(|(k, _)| k < e),
        Bound::Unbounded => entries.len(),
    };
    (from, to.max(from))
}

impl<V> KeyMap<V> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Small(entries) => entries.len(),
            Self::Large(map) => map.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every entry. A small set keeps its array for reuse; a large
    /// one goes back to the empty small form.
    pub(crate) fn clear(&mut self) {
        match self {
            Self::Small(entries) => entries.clear(),
            Self::Large(_) => *self = Self::default(),
        }
    }

    /// The entry of `key`, given as a `Key` (integer-head
    /// comparison) or as bytes (a long key, not built yet).
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        Key: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self {
            Self::Small(entries) => entries
                .binary_search_by(|(k, _)| k.borrow().cmp(key))
                .ok()
                .and_then(|i| entries.get(i))
                .map(|(_, v)| v),
            Self::Large(map) => map.get(key),
        }
    }

    /// The entry of `key`, mutably.
    pub(crate) fn get_mut(&mut self, key: &Key) -> Option<&mut V> {
        match self {
            Self::Small(entries) => match entries.binary_search_by(|(k, _)| k.cmp(key)) {
                Ok(i) => entries.get_mut(i).map(|(_, v)| v),
                Err(_) => None,
            },
            Self::Large(map) => map.get_mut(key),
        }
    }

    /// Adds `value` for `key`, which must not have an entry yet (check with
    /// [`get_mut`](Self::get_mut)).
    pub(crate) fn insert_new(&mut self, key: Key, value: V) {
        match self {
            Self::Small(entries) => {
                let at = entries.partition_point(|(k, _)| *k < key);
                if entries.len() < SMALL_KEYS {
                    if !entries.spilled() && entries.len() == entries.capacity() {
                        entries.reserve_exact(FIRST_CAPACITY - entries.len());
                    }
                    entries.insert(at, (key, value));
                } else {
                    let mut map: BTreeMap<Key, V> = std::mem::take(entries).into_iter().collect();
                    map.insert(key, value);
                    *self = Self::Large(map);
                }
            }
            Self::Large(map) => {
                map.insert(key, value);
            }
        }
    }

    /// Every entry in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, &V)> {
        let (small, large) = match self {
            Self::Small(entries) => (Some(entries.iter()), None),
            Self::Large(map) => (None, Some(map.iter())),
        };
        small
            .into_iter()
            .flatten()
            .map(|(k, v)| (k, v))
            .chain(large.into_iter().flatten())
    }

    /// Entries inside the bounds, in key order. The range must not be
    /// empty or inverted (a `BTreeMap` panics on those).
    pub(crate) fn range(
        &self,
        start: Bound<&Key>,
        end: Bound<&Key>,
    ) -> impl Iterator<Item = (&Key, &V)> {
        let (small, large) = match self {
            Self::Small(entries) => {
                let (from, to) = small_range(entries, start, end);
                (entries.get(from..to), None)
            }
            Self::Large(map) => (None, Some(map.range::<Key, _>((start, end)))),
        };
        small
            .into_iter()
            .flatten()
            .map(|(k, v)| (k, v))
            .chain(large.into_iter().flatten())
    }

    /// Entries inside the bounds, mutably, in key order. The range
    /// must not be empty or inverted.
    pub(crate) fn range_mut(
        &mut self,
        start: Bound<&Key>,
        end: Bound<&Key>,
    ) -> impl Iterator<Item = (&Key, &mut V)> {
        let (small, large) = match self {
            Self::Small(entries) => {
                let (from, to) = small_range(entries, start, end);
                (entries.get_mut(from..to), None)
            }
            Self::Large(map) => (None, Some(map.range_mut::<Key, _>((start, end)))),
        };
        small
            .into_iter()
            .flatten()
            .map(|(k, v)| (&*k, v))
            .chain(large.into_iter().flatten())
    }

    /// Every entry, mutably, in key order.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&Key, &mut V)> {
        self.range_mut(Bound::Unbounded, Bound::Unbounded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> Key {
        Key::from(n)
    }

    /// Inserts `keys` in the given order and checks the set against a
    /// `BTreeMap` after each one: lookups, order, ranges.
    fn check_against_btree(keys: &[u64]) {
        let mut set: KeyMap<u64> = KeyMap::default();
        let mut model: BTreeMap<Key, u64> = BTreeMap::new();
        for (i, &k) in keys.iter().enumerate() {
            let value = i as u64;
            match set.get_mut(&key(k)) {
                Some(v) => *v = value,
                None => set.insert_new(key(k), value),
            }
            model.insert(key(k), value);
            assert_eq!(set.len(), model.len());
        }
        assert_eq!(
            set.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>(),
            model
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect::<Vec<_>>()
        );
        for probe in 0..120 {
            assert_eq!(set.get(key(probe).as_bytes()), model.get(&key(probe)));
            assert_eq!(set.get(&key(probe)), model.get(&key(probe)));
        }
        let bounds = [
            Bound::Unbounded,
            Bound::Included(key(10)),
            Bound::Excluded(key(10)),
            Bound::Included(key(55)),
            Bound::Excluded(key(90)),
        ];
        for start in &bounds {
            for end in &bounds {
                let (s, e) = (start.as_ref(), end.as_ref());
                if crate::range_is_empty(s, e) {
                    continue;
                }
                let got: Vec<_> = set.range(s, e).map(|(k, _)| k.clone()).collect();
                let want: Vec<_> = model
                    .range::<Key, _>((s, e))
                    .map(|(k, _)| k.clone())
                    .collect();
                assert_eq!(got, want, "{start:?}..{end:?}");
            }
        }
        for (_, v) in set.range_mut(Bound::Included(&key(20)), Bound::Excluded(&key(40))) {
            *v = 1000;
        }
        for (k, v) in set.iter() {
            let inside = (key(20)..key(40)).contains(k);
            assert_eq!(*v == 1000, inside, "{k:?}");
        }
    }

    #[test]
    fn small_sets_behave_like_a_btree_map() {
        check_against_btree(&[5, 3, 9, 3, 1, 100, 7]);
    }

    #[test]
    fn large_sets_switch_representation_and_keep_everything() {
        // Pseudo-random order, with repeats, past the small limit.
        let keys: Vec<u64> = (0..200_u64).map(|i| (i * 37 + 11) % 110).collect();
        check_against_btree(&keys);
        let mut set: KeyMap<()> = KeyMap::default();
        for k in 0..=SMALL_KEYS as u64 {
            set.insert_new(key(k), ());
        }
        assert!(matches!(set, KeyMap::Large(_)));
    }
}
