//! [`DependencyTracker`]: what a transaction read and wrote.

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use arrow_array::RecordBatch;
use khonsu_core::{Key, Timestamp};

use crate::ConflictResolution;
use crate::write_set::WriteSet;

/// A write staged by a transaction, not yet committed.
#[derive(Clone, Debug, PartialEq)]
pub enum StagedWrite {
    /// The key gets this batch.
    Put(Arc<RecordBatch>),
    /// The key is deleted.
    Delete,
    /// These rows are appended, at commit, to whatever the key holds then
    /// (the key is created with them when absent). Not a read of the key:
    /// concurrent appends to one key all land, in commit order.
    Append(Arc<RecordBatch>),
}

impl StagedWrite {
    /// The value a read of the key returns inside the transaction, when
    /// the write alone decides it: `Some(value)` for a put or a delete,
    /// `None` for an append (whose value is the committed one plus the
    /// staged rows).
    #[must_use]
    pub fn value(&self) -> Option<Option<Arc<RecordBatch>>> {
        match self {
            Self::Put(b) => Some(Some(Arc::clone(b))),
            Self::Delete => Some(None),
            Self::Append(_) => None,
        }
    }

    /// The rows an append adds, if this is one.
    #[must_use]
    pub fn appended_rows(&self) -> Option<&Arc<RecordBatch>> {
        match self {
            Self::Append(rows) => Some(rows),
            Self::Put(_) | Self::Delete => None,
        }
    }
}

/// One staged write as commit sees it (after
/// [`DependencyTracker::seal`]).
#[derive(Clone, Copy, Debug)]
pub struct SealedWrite<'a> {
    /// The key.
    pub key: &'a Key,
    /// What is staged for it.
    pub write: &'a StagedWrite,
    /// The newest observation of the key made before it was first written
    /// (see [`DependencyTracker::read_base`]).
    pub read_base: Option<Timestamp>,
    /// The resolution chosen for this write, when it has its own
    /// (`Transaction::write_with`); `None` follows the transaction's.
    pub resolution: Option<ConflictResolution>,
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
    /// Position of the scan among the transaction's operations: it counts as
    /// a read only of keys first written after it.
    seq: u64,
}

impl RangeRead {
    /// Whether `key` lies in the range.
    #[must_use]
    pub fn contains(&self, key: &Key) -> bool {
        (self.start.as_ref(), self.end.as_ref()).contains(key)
    }
}

/// Whether a range contains no key at all (also true when it is inverted).
///
/// ```
/// use std::ops::Bound;
/// use khonsu_concurrency::range_is_empty;
/// use khonsu_core::Key;
///
/// let (a, b) = (Key::from("a"), Key::from("b"));
/// assert!(range_is_empty(Bound::Included(&b), Bound::Included(&a)));
/// assert!(range_is_empty(Bound::Included(&a), Bound::Excluded(&a)));
/// assert!(!range_is_empty(Bound::Included(&a), Bound::Included(&a)));
/// ```
#[must_use]
pub fn range_is_empty(start: Bound<&Key>, end: Bound<&Key>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e)) => s >= e,
        _ => false,
    }
}

/// Point reads whose array [`DependencyTracker::reset`] keeps for reuse.
const RETAINED_READS: usize = 256;

/// Range reads whose array [`DependencyTracker::reset`] keeps for reuse.
const RETAINED_RANGES: usize = 16;

/// Observed values whose array [`DependencyTracker::reset`] keeps for reuse.
const RETAINED_OBSERVED: usize = 64;

/// A staged write with what commit needs to know about it.
#[derive(Debug)]
struct Staged {
    write: StagedWrite,
    /// Position of the key's first write among the transaction's operations.
    first_seq: u64,
    /// Computed by `seal`: the newest observation of the key made before it
    /// was first written, if any (a read-modify-write).
    base: Option<Timestamp>,
    /// This write's own conflict resolution, if it has one.
    resolution: Option<ConflictResolution>,
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
/// A key counts as read when it was read with `read`, or covered by a
/// `scan` made *before* the key was first written: writing it afterwards is a
/// read-modify-write. (A scan after the write saw the transaction's own
/// write, not committed data.)
///
/// Point reads are an append-only `Vec` (no hashing on the read path);
/// [`seal`](Self::seal) sorts them and computes every written key's read
/// base once, at commit, in `O((reads + writes) log n + covered keys)`.
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
/// tracker.record_range(Bound::Unbounded, Bound::Unbounded, 9); // sees own writes only
/// tracker.seal();
/// assert_eq!(tracker.read_base(&Key::from("a")), Some(4)); // read, then written
/// assert_eq!(tracker.read_base(&Key::from("b")), None);    // blind write
/// assert_eq!(tracker.read_base(&Key::from("z")), Some(6)); // scanned, then written
/// ```
#[derive(Debug, Default)]
pub struct DependencyTracker {
    /// The first point read, kept inline: most transactions read one key or
    /// none, and then no read set is ever allocated.
    first_read: Option<(Key, Timestamp)>,
    point_reads: Vec<(Key, Timestamp)>,
    range_reads: Vec<RangeRead>,
    /// Values seen by point reads, kept only when asked
    /// ([`record_observed`](Self::record_observed)): what an `Append`
    /// read-modify-write at `ReadCommitted` extended.
    observed: Vec<(Key, Timestamp, Arc<RecordBatch>)>,
    writes: WriteSet<Staged>,
    next_seq: u64,
    sealed: bool,
}

impl DependencyTracker {
    /// An empty footprint.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Empties the footprint for reuse by another transaction, keeping its
    /// allocations when they are small (room for at most 256 point reads,
    /// 16 ranges and 32 writes: about 15 KB at most), so a
    /// thread that reuses one tracker allocates nothing per transaction.
    /// Returns `false` when it kept nothing worth reusing (drop it then).
    ///
    /// ```
    /// use khonsu_concurrency::{DependencyTracker, StagedWrite};
    /// use khonsu_core::Key;
    ///
    /// let mut tracker = DependencyTracker::new();
    /// tracker.record_read(&Key::from("a"), 3);
    /// tracker.record_write(Key::from("b"), StagedWrite::Delete);
    /// assert!(tracker.reset());
    /// assert!(tracker.is_read_only());
    /// assert!(!tracker.writes_key(&Key::from("b")));
    /// tracker.seal();
    /// assert!(tracker.point_reads().is_empty());
    /// ```
    pub fn reset(&mut self) -> bool {
        self.first_read = None;
        // The write set needs no check: its array form never holds more
        // than 32 writes, and `clear` turns a larger set back into it.
        let reusable = self.point_reads.capacity() <= RETAINED_READS
            && self.range_reads.capacity() <= RETAINED_RANGES
            && self.observed.capacity() <= RETAINED_OBSERVED;
        if reusable {
            self.point_reads.clear();
            self.range_reads.clear();
            self.observed.clear();
        } else {
            self.point_reads = Vec::new();
            self.range_reads = Vec::new();
            self.observed = Vec::new();
        }
        self.writes.clear();
        self.next_seq = 0;
        self.sealed = false;
        reusable
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.sealed = false;
        self.next_seq
    }

    /// Records that `key` was read and which version was seen (`0` when the
    /// key had no version at all).
    #[inline]
    pub fn record_read(&mut self, key: &Key, observed_ts: Timestamp) {
        if self.first_read.is_none() {
            self.first_read = Some((key.clone(), observed_ts));
        } else {
            self.point_reads.push((key.clone(), observed_ts));
        }
        self.sealed = false;
    }

    /// Keeps the value a point read of `key` saw (the version committed at
    /// `observed_ts`), beside [`record_read`](Self::record_read): at
    /// `ReadCommitted`, an `Append`-resolved write that extends it appends
    /// only the rows it added ([`observed_value`](Self::observed_value)).
    pub fn record_observed(&mut self, key: &Key, observed_ts: Timestamp, value: Arc<RecordBatch>) {
        self.observed.push((key.clone(), observed_ts, value));
    }

    /// The value the transaction saw of `key` at version `ts` (its read
    /// base): `Some(None)` when the key was absent (`ts == 0`),
    /// `Some(Some(batch))` when [`record_observed`](Self::record_observed)
    /// kept that version, `None` when it is not known.
    #[must_use]
    pub fn observed_value(&self, key: &Key, ts: Timestamp) -> Option<Option<&Arc<RecordBatch>>> {
        if ts == 0 {
            return Some(None);
        }
        self.observed
            .iter()
            .rev()
            .find(|(k, observed_ts, _)| *observed_ts == ts && k == key)
            .map(|(_, _, batch)| Some(batch))
    }

    /// Records a range read at `read_ts`.
    pub fn record_range(&mut self, start: Bound<Key>, end: Bound<Key>, read_ts: Timestamp) {
        let seq = self.seq();
        self.range_reads.push(RangeRead {
            start,
            end,
            read_ts,
            seq,
        });
    }

    /// Stages a write (replacing an earlier staged write of the same key,
    /// and its resolution) under the transaction's conflict resolution.
    pub fn record_write(&mut self, key: Key, write: StagedWrite) {
        self.record_write_with(key, write, None);
    }

    /// Stages a write with its own conflict resolution (`None`: the
    /// transaction's), replacing an earlier staged write of the same key.
    pub fn record_write_with(
        &mut self,
        key: Key,
        write: StagedWrite,
        resolution: Option<ConflictResolution>,
    ) {
        let seq = self.seq();
        match self.writes.get_mut(&key) {
            Some(staged) => {
                staged.write = write;
                staged.resolution = resolution;
            }
            None => self.writes.insert_new(
                key,
                Staged {
                    write,
                    first_seq: seq,
                    base: None,
                    resolution,
                },
            ),
        }
    }

    /// Stages `rows` to be appended to `key` at commit, after what this
    /// transaction already staged for it: rows appended to a staged put
    /// extend the put, rows appended after a staged delete replace the
    /// key, and successive appends accumulate.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use khonsu_concurrency::{DependencyTracker, StagedWrite};
    /// use khonsu_core::Key;
    ///
    /// let rows = |v: Vec<i64>| Arc::new(RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(v)) as _)]).unwrap());
    /// let mut tracker = DependencyTracker::new();
    /// tracker.record_append(Key::from("log"), &rows(vec![1]))?;
    /// tracker.record_append(Key::from("log"), &rows(vec![2, 3]))?;
    /// let staged = tracker.staged(b"log").unwrap();
    /// assert_eq!(staged.appended_rows().unwrap().num_rows(), 3);
    /// # Ok::<(), khonsu_arrow_utils::Error>(())
    /// ```
    ///
    /// # Errors
    /// The rows do not fit what is staged (another schema); nothing changes.
    pub fn record_append(
        &mut self,
        key: Key,
        rows: &Arc<RecordBatch>,
    ) -> Result<(), khonsu_arrow_utils::Error> {
        let merged = match self.writes.get(&key).map(|s| &s.write) {
            None => StagedWrite::Append(Arc::clone(rows)),
            Some(StagedWrite::Delete) => StagedWrite::Put(Arc::clone(rows)),
            Some(StagedWrite::Put(base)) => {
                StagedWrite::Put(Arc::new(khonsu_arrow_utils::append(base, rows)?))
            }
            Some(StagedWrite::Append(base)) => {
                StagedWrite::Append(Arc::new(khonsu_arrow_utils::append(base, rows)?))
            }
        };
        let seq = self.seq();
        match self.writes.get_mut(&key) {
            Some(staged) => staged.write = merged,
            None => self.writes.insert_new(
                key,
                Staged {
                    write: merged,
                    first_seq: seq,
                    base: None,
                    resolution: None,
                },
            ),
        }
        Ok(())
    }

    /// The staged write of `key`, if any (read-your-own-writes).
    #[must_use]
    #[inline]
    pub fn staged(&self, key: &[u8]) -> Option<&StagedWrite> {
        if self.writes.is_empty() {
            return None;
        }
        self.writes.get(key).map(|s| &s.write)
    }

    /// The staged write of `key`, if any, compared as a [`Key`] (cheaper
    /// than [`staged`](Self::staged) when the caller has built one).
    #[must_use]
    #[inline]
    pub fn staged_key(&self, key: &Key) -> Option<&StagedWrite> {
        if self.writes.is_empty() {
            return None;
        }
        self.writes.get(key).map(|s| &s.write)
    }

    /// Whether `key` has a staged write.
    #[must_use]
    pub fn writes_key(&self, key: &Key) -> bool {
        self.writes.get(key).is_some()
    }

    /// Staged writes in key order (the order commit takes write intents in).
    pub fn writes(&self) -> impl Iterator<Item = (&Key, &StagedWrite)> {
        self.writes.iter().map(|(k, s)| (k, &s.write))
    }

    /// Staged writes inside a range, in key order (nothing for an empty or
    /// inverted range).
    pub fn writes_in(
        &self,
        start: Bound<&Key>,
        end: Bound<&Key>,
    ) -> impl Iterator<Item = (&Key, &StagedWrite)> {
        let range = (!range_is_empty(start, end)).then(|| self.writes.range(start, end));
        range.into_iter().flatten().map(|(k, s)| (k, &s.write))
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

    /// Point reads, sorted by key and de-duplicated. Complete only after
    /// [`seal`](Self::seal).
    #[must_use]
    pub fn point_reads(&self) -> &[(Key, Timestamp)] {
        debug_assert!(self.sealed, "seal() before point_reads()");
        &self.point_reads
    }

    /// Range reads recorded so far.
    #[must_use]
    pub fn range_reads(&self) -> &[RangeRead] {
        &self.range_reads
    }

    /// Prepares the footprint for commit: sorts point reads by key (keeping,
    /// per key, the newest version seen: at `ReadCommitted` a later read may
    /// see a newer version) and computes every written key's read base.
    pub fn seal(&mut self) {
        if self.sealed {
            return;
        }
        if self.first_read.is_none() && self.point_reads.is_empty() && self.range_reads.is_empty() {
            // No read recorded since `reset`: every read base is still `None`.
            self.sealed = true;
            return;
        }
        if let Some(first) = self.first_read.take() {
            self.point_reads.push(first);
        }
        self.point_reads
            .sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        self.point_reads.dedup_by(|later, first| later.0 == first.0);
        for (key, staged) in self.writes.iter_mut() {
            // Point reads of a key are only recorded before its first write
            // (afterwards `read` returns the staged value).
            staged.base = self
                .point_reads
                .binary_search_by(|(k, _)| k.cmp(key))
                .ok()
                .and_then(|i| self.point_reads.get(i))
                .map(|(_, ts)| *ts);
        }
        for range in &self.range_reads {
            let (start, end) = (range.start.as_ref(), range.end.as_ref());
            if range_is_empty(start, end) {
                continue;
            }
            for (_, staged) in self.writes.range_mut(start, end) {
                if range.seq < staged.first_seq {
                    staged.base = staged.base.max(Some(range.read_ts));
                }
            }
        }
        self.sealed = true;
    }

    /// Staged writes in key order, each with its read base (see
    /// [`read_base`](Self::read_base)), without a lookup per key. Call
    /// [`seal`](Self::seal) first.
    pub fn sealed_writes(&self) -> impl Iterator<Item = SealedWrite<'_>> {
        debug_assert!(self.sealed, "seal() before sealed_writes()");
        self.writes.iter().map(|(key, s)| SealedWrite {
            key,
            write: &s.write,
            read_base: s.base,
            resolution: s.resolution,
        })
    }

    /// For a written key that the transaction read before first writing it
    /// (a read-modify-write), the newest such observation: the version a
    /// point read saw, or the timestamp a covering scan read at. `None` for a
    /// blind write. Call [`seal`](Self::seal) first.
    #[must_use]
    pub fn read_base(&self, key: &Key) -> Option<Timestamp> {
        debug_assert!(self.sealed, "seal() before read_base()");
        self.writes.get(key).and_then(|s| s.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_empties_and_drops_large_allocations() {
        let mut t = DependencyTracker::new();
        for k in 0..1_000_u64 {
            t.record_read(&Key::from(k), k);
            t.record_write(Key::from(k), StagedWrite::Delete);
        }
        t.record_range(Bound::Unbounded, Bound::Unbounded, 3);
        assert!(!t.reset(), "a thousand reads are not worth keeping");
        assert_eq!(t.point_reads.capacity(), 0);
        assert!(t.is_read_only());
        assert!(t.range_reads().is_empty());
        // An emptied footprint behaves as a new one.
        t.record_read(&Key::from("a"), 1);
        t.record_write(Key::from("a"), StagedWrite::Delete);
        t.record_write(Key::from("b"), StagedWrite::Delete);
        t.seal();
        assert_eq!(t.read_base(&Key::from("a")), Some(1));
        assert_eq!(t.read_base(&Key::from("b")), None);
        assert_eq!(t.write_count(), 2);
        assert!(t.reset(), "a small footprint is kept");
        assert_eq!(t.write_count(), 0);
    }

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
        for k in ["a", "b", "c", "d"] {
            t.record_write(Key::from(k), StagedWrite::Delete);
        }
        t.seal();
        assert_eq!(t.point_reads(), &[(Key::from("a"), 1), (Key::from("b"), 7)]);
        assert_eq!(t.read_base(&Key::from("a")), Some(1)); // outside the range
        assert_eq!(t.read_base(&Key::from("b")), Some(7)); // newest observation wins
        assert_eq!(t.read_base(&Key::from("c")), Some(5)); // only scanned
        assert_eq!(t.read_base(&Key::from("d")), None);
    }

    #[test]
    fn a_scan_counts_as_a_read_only_of_keys_written_after_it() {
        let mut t = DependencyTracker::new();
        t.record_write(Key::from("early"), StagedWrite::Delete);
        t.record_range(Bound::Unbounded, Bound::Unbounded, 5);
        t.record_write(Key::from("late"), StagedWrite::Delete);
        // Rewriting a key keeps the position of its first write.
        t.record_write(Key::from("early"), StagedWrite::Delete);
        t.record_range(Bound::Unbounded, Bound::Unbounded, 8);
        t.seal();
        assert_eq!(
            t.read_base(&Key::from("early")),
            None,
            "scan saw our own write"
        );
        assert_eq!(
            t.read_base(&Key::from("late")),
            Some(5),
            "only the scan before the write"
        );
    }

    #[test]
    fn empty_and_inverted_ranges() {
        let (a, b) = (Key::from("a"), Key::from("b"));
        let e = range_is_empty;
        assert!(e(Bound::Included(&b), Bound::Included(&a)));
        assert!(e(Bound::Included(&a), Bound::Excluded(&a)));
        assert!(e(Bound::Excluded(&a), Bound::Included(&a)));
        assert!(e(Bound::Excluded(&a), Bound::Excluded(&a)));
        assert!(!e(Bound::Included(&a), Bound::Included(&a)));
        assert!(!e(Bound::Unbounded, Bound::Excluded(&a)));
        assert!(!e(Bound::Excluded(&b), Bound::Unbounded));
        // The tracker never panics on such ranges.
        let mut t = DependencyTracker::new();
        t.record_write(Key::from("a"), StagedWrite::Delete);
        t.record_range(Bound::Included(b.clone()), Bound::Included(a.clone()), 1);
        t.seal();
        assert_eq!(
            t.writes_in(Bound::Included(&b), Bound::Excluded(&a))
                .count(),
            0
        );
        assert_eq!(t.read_base(&a), None);
    }
}
