//! [`DependencyTracker`]: what a transaction read and wrote.

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use arrow_array::RecordBatch;
use khonsu_core::{Key, Timestamp};

/// A write staged by a transaction, not yet committed.
#[derive(Clone, Debug, PartialEq)]
pub enum StagedWrite {
    /// The key gets this batch.
    Put(Arc<RecordBatch>),
    /// The key is deleted.
    Delete,
}

impl StagedWrite {
    /// The value a read of the key returns inside the transaction.
    #[must_use]
    pub fn value(&self) -> Option<Arc<RecordBatch>> {
        match self {
            Self::Put(b) => Some(Arc::clone(b)),
            Self::Delete => None,
        }
    }
}

/// A range read by `scan` or `scan_prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeRead {
    /// Start bound.
    pub start: Bound<Key>,
    /// End bound.
    pub end: Bound<Key>,
    /// The timestamp the range was read at.
    pub read_ts: Timestamp,
}

impl RangeRead {
    /// Whether `key` lies in the range.
    #[must_use]
    pub fn contains(&self, key: &Key) -> bool {
        (self.start.as_ref(), self.end.as_ref()).contains(key)
    }
}

/// The footprint of one transaction: its point reads (with the version each
/// observed, including reads of absent keys), its range reads, and its
/// staged writes.
///
/// Validation ([`validate_serializable`](crate::validate_serializable)) and
/// conflict resolution ([`resolve_write`](crate::resolve_write)) work from
/// this footprint. Reads of keys the transaction already wrote are not
/// dependencies (they see the transaction's own write) and are not recorded.
///
/// A key counts as read whether it was read with `read` or seen by a
/// `scan` whose range covers it: writing it afterwards is a
/// read-modify-write.
///
/// Point reads are an append-only `Vec` (no hashing on the read path);
/// [`seal`](Self::seal) sorts and de-duplicates them once at commit.
///
/// ```
/// use std::ops::Bound;
/// use khonsu_concurrency::{DependencyTracker, StagedWrite};
/// use khonsu_core::Key;
///
/// let mut tracker = DependencyTracker::new();
/// tracker.record_read(&Key::from("a"), 4);
/// tracker.record_range(Bound::Included(Key::from("m")), Bound::Unbounded, 6);
/// for key in ["a", "b", "z"] {
///     tracker.record_write(Key::from(key), StagedWrite::Delete);
/// }
/// tracker.seal();
/// assert_eq!(tracker.read_base(&Key::from("a")), Some(4)); // read, then written
/// assert_eq!(tracker.read_base(&Key::from("b")), None);    // blind write
/// assert_eq!(tracker.read_base(&Key::from("z")), Some(6)); // scanned, then written
/// ```
#[derive(Debug, Default)]
pub struct DependencyTracker {
    point_reads: Vec<(Key, Timestamp)>,
    range_reads: Vec<RangeRead>,
    writes: BTreeMap<Key, StagedWrite>,
    sealed: bool,
}

impl DependencyTracker {
    /// An empty footprint.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `key` was read and which version was seen (`0` when the
    /// key had no version at all).
    #[inline]
    pub fn record_read(&mut self, key: &Key, observed_ts: Timestamp) {
        self.point_reads.push((key.clone(), observed_ts));
        self.sealed = false;
    }

    /// Records a range read at `read_ts`.
    pub fn record_range(&mut self, start: Bound<Key>, end: Bound<Key>, read_ts: Timestamp) {
        self.range_reads.push(RangeRead {
            start,
            end,
            read_ts,
        });
    }

    /// Stages a write (replacing an earlier staged write of the same key).
    pub fn record_write(&mut self, key: Key, write: StagedWrite) {
        self.writes.insert(key, write);
    }

    /// The staged write of `key`, if any (read-your-own-writes).
    #[must_use]
    #[inline]
    pub fn staged(&self, key: &[u8]) -> Option<&StagedWrite> {
        if self.writes.is_empty() {
            return None;
        }
        self.writes.get(key)
    }

    /// Whether `key` has a staged write.
    #[must_use]
    pub fn writes_key(&self, key: &Key) -> bool {
        self.writes.contains_key(key)
    }

    /// Staged writes in key order (the order commit takes write intents in).
    pub fn writes(&self) -> btree_map::Iter<'_, Key, StagedWrite> {
        self.writes.iter()
    }

    /// Staged writes inside a range, in key order. The caller ensures the
    /// range is not inverted.
    pub fn writes_in(
        &self,
        start: Bound<&Key>,
        end: Bound<&Key>,
    ) -> btree_map::Range<'_, Key, StagedWrite> {
        self.writes.range::<Key, _>((start, end))
    }

    /// Number of staged writes.
    #[must_use]
    pub fn write_count(&self) -> usize {
        self.writes.len()
    }

    /// Whether the transaction has written nothing.
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        self.writes.is_empty()
    }

    /// Point reads recorded so far (sorted and de-duplicated after
    /// [`seal`](Self::seal)).
    #[must_use]
    pub fn point_reads(&self) -> &[(Key, Timestamp)] {
        &self.point_reads
    }

    /// Range reads recorded so far.
    #[must_use]
    pub fn range_reads(&self) -> &[RangeRead] {
        &self.range_reads
    }

    /// Sorts point reads by key and keeps, per key, the newest version seen
    /// (at `ReadCommitted` a later read may see a newer version).
    pub fn seal(&mut self) {
        if !self.sealed {
            self.point_reads
                .sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            self.point_reads.dedup_by(|later, first| later.0 == first.0);
            self.sealed = true;
        }
    }

    /// For a written key that the transaction read before writing it (a
    /// read-modify-write), the newest observation of it: the version a
    /// point read saw, or the timestamp a covering scan read at. `None` for
    /// a blind write. Call [`seal`](Self::seal) first.
    #[must_use]
    pub fn read_base(&self, key: &Key) -> Option<Timestamp> {
        debug_assert!(self.sealed, "seal() before read_base()");
        let point = self
            .point_reads
            .binary_search_by(|(k, _)| k.cmp(key))
            .ok()
            .and_then(|i| self.point_reads.get(i))
            .map(|(_, ts)| *ts);
        self.range_reads
            .iter()
            .filter(|range| range.contains(key))
            .map(|range| range.read_ts)
            .chain(point)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_keeps_the_newest_observation_per_key() {
        let mut t = DependencyTracker::new();
        t.record_read(&Key::from("b"), 3);
        t.record_read(&Key::from("a"), 1);
        t.record_read(&Key::from("b"), 7);
        t.record_range(
            Bound::Excluded(Key::from("a")),
            Bound::Included(Key::from("c")),
            5,
        );
        t.seal();
        assert_eq!(t.point_reads(), &[(Key::from("a"), 1), (Key::from("b"), 7)]);
        assert_eq!(t.read_base(&Key::from("a")), Some(1)); // outside the range
        assert_eq!(t.read_base(&Key::from("b")), Some(7)); // newest observation wins
        assert_eq!(t.read_base(&Key::from("c")), Some(5)); // only scanned
        assert_eq!(t.read_base(&Key::from("d")), None);
    }
}
