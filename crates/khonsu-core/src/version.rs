//! Versioned values and the composite key that orders a key's versions
//! newest-first inside the skiplist.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

use arrow_array::RecordBatch;

use crate::{Key, Timestamp};

/// A timestamp above every version's: `(key, HEAD_TS)` sorts before all of
/// `key`'s versions, so it is the start bound of the key's history.
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
/// (k, 17) (k, 9) (k, 4) (k2, 12) (k2, 3) ...
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
}

impl Ord for VersionKey {
    #[inline]
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

/// Maps user-key bounds onto version-key bounds covering every version of
/// every key in the range.
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
    }
}
