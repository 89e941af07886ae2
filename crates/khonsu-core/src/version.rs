//! Versioned values and the composite key that orders a key's versions
//! newest-first inside the skiplist.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow_array::RecordBatch;

use crate::{Key, Timestamp};

/// Timestamp of a key's head entry, which sorts before all of its versions.
pub(crate) const HEAD_TS: Timestamp = u64::MAX;

/// One committed version of a key as a reader sees it.
///
/// `value` is `None` for a tombstone (the key was deleted at `commit_ts`),
/// and for a key that has no version visible to the reader, in which case
/// `commit_ts` is `0`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VersionedValue {
    /// Commit timestamp of the version read (`0`: no version at all).
    pub commit_ts: Timestamp,
    /// The batch, or `None` when the key is absent at that snapshot.
    pub value: Option<Arc<RecordBatch>>,
}

/// Skiplist key: the user key ascending, then the timestamp descending.
///
/// For key `k` the entries are laid out as
///
/// ```text
/// (k, HEAD) (k, 17) (k, 9) (k, 4) (k2, HEAD) (k2, 12) ...
/// ```
///
/// so the version a snapshot at `ts` sees is the first entry at or after
/// `(k, ts)`: a single `lower_bound` seek. Reading at `ts = 10` seeks to
/// `(k, 10)`, lands on `(k, 9)`, checks the user key matches, done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VersionKey {
    pub(crate) key: Key,
    pub(crate) ts: Timestamp,
}

impl VersionKey {
    pub(crate) fn new(key: Key, ts: Timestamp) -> Self {
        Self { key, ts }
    }

    pub(crate) fn is_head(&self) -> bool {
        self.ts == HEAD_TS
    }
}

impl Ord for VersionKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .cmp(&other.key)
            .then_with(|| other.ts.cmp(&self.ts))
    }
}

impl PartialOrd for VersionKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Skiplist value. A head entry uses `state` (intent lock, flags and the
/// newest commit timestamp, see `buffer.rs`); a version entry uses `value`.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) state: AtomicU64,
    pub(crate) value: Option<Arc<RecordBatch>>,
}

impl Slot {
    pub(crate) fn head() -> Self {
        Self {
            state: AtomicU64::new(0),
            value: None,
        }
    }

    pub(crate) fn version(value: Option<Arc<RecordBatch>>) -> Self {
        Self {
            state: AtomicU64::new(0),
            value,
        }
    }
}

/// Maps user-key bounds onto version-key bounds covering every entry
/// (head and versions) of every key in the range.
pub(crate) fn version_range(
    start: Bound<&Key>,
    end: Bound<&Key>,
) -> (Bound<VersionKey>, Bound<VersionKey>) {
    let start = match start {
        Bound::Included(k) => Bound::Included(VersionKey::new(k.clone(), HEAD_TS)),
        Bound::Excluded(k) => Bound::Excluded(VersionKey::new(k.clone(), 0)),
        Bound::Unbounded => Bound::Unbounded,
    };
    let end = match end {
        Bound::Included(k) => Bound::Included(VersionKey::new(k.clone(), 0)),
        Bound::Excluded(k) => Bound::Excluded(VersionKey::new(k.clone(), HEAD_TS)),
        Bound::Unbounded => Bound::Unbounded,
    };
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_newest_first_after_the_head() {
        let k = Key::from("k");
        let mut keys = [
            VersionKey::new(Key::from("k2"), HEAD_TS),
            VersionKey::new(k.clone(), 4),
            VersionKey::new(k.clone(), HEAD_TS),
            VersionKey::new(k.clone(), 17),
        ];
        keys.sort();
        let ts: Vec<_> = keys.iter().map(|v| v.ts).collect();
        assert_eq!(ts, vec![HEAD_TS, 17, 4, HEAD_TS]);
        assert!(keys[0].is_head());
    }
}
