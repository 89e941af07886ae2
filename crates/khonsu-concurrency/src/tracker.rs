//! [`DependencyTracker`]: what a transaction read and wrote.

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use arrow_array::RecordBatch;
use khonsu_core::{Key, Timestamp};

use crate::key_map::KeyMap;
use crate::{ConflictResolution, Seen};

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
    /// Whether the write alone decides what a read of the key returns
    /// inside the transaction (a put or a delete; an append's value is the
    /// committed one plus the staged rows).
    #[must_use]
    pub fn replaces_committed(&self) -> bool {
        !matches!(self, Self::Append(_))
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
    /// a read of a written key only if it came before the key's staged value
    /// stopped depending on committed data (see `DependencyTracker`).
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

/// Range reads whose array [`DependencyTracker::reset`] keeps for reuse.
const RETAINED_RANGES: usize = 16;

/// What a point read saw of a key, as far as the footprint keeps it.
///
/// Only the `ReadCommitted` `Append` resolution uses the value itself (to
/// append only the rows a read-modify-write added to what it read), so a
/// transaction keeps a batch only where that resolution can apply
/// ([`Observed::Value`]); absence costs nothing to keep and is always kept.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Observed {
    /// The value is not kept.
    #[default]
    Unknown,
    /// The key was absent (never written, or deleted).
    Absent,
    /// The key held this batch.
    Value(Arc<RecordBatch>),
}

/// The newest point read of one key.
#[derive(Debug)]
struct PointRead {
    /// The version seen (`0`: the key had none).
    ts: Timestamp,
    observed: Observed,
}

/// A staged write with what commit needs to know about it.
#[derive(Debug)]
struct Staged {
    write: StagedWrite,
    /// Position, among the transaction's operations, from which the staged
    /// value no longer depends on committed data: its first `Put` or
    /// `Delete` (`u64::MAX` while only appends are staged: a read of the
    /// key then returns the committed rows too). A scan before it read the
    /// key's committed state.
    own_since: u64,
    /// Computed by `seal`: the newest observation of the key's committed
    /// state, if any (a read-modify-write).
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
/// dependencies (they see the transaction's own write) and are not recorded
/// — except reads of a key it only appended to, which see the committed
/// rows too.
///
/// A key counts as read when it was read with `read`, or covered by a
/// `scan` made while a read of it still returned committed data: before the
/// key was first written, or while only appends were staged for it.
/// Writing it is then a read-modify-write. (A scan after a `write` or
/// `delete` saw the transaction's own value, not committed data.)
///
/// Point reads keep one entry per key (the newest observation, in a
/// key-ordered map: the first inline, a few in one sorted array, many in a
/// `BTreeMap`), so a transaction polling one key holds one entry, not one
/// per read. [`seal`](Self::seal) computes every written key's read base
/// once, at commit, in `O((reads + writes) log n + covered keys)`.
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
    /// The newest point read of each key.
    reads: KeyMap<PointRead>,
    range_reads: Vec<RangeRead>,
    writes: KeyMap<Staged>,
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
    /// allocations when they are small (room for 32 point reads, 16 ranges
    /// and 32 writes: a few KB), so a thread that reuses one tracker
    /// allocates nothing per transaction. Returns `false` when it kept
    /// nothing worth reusing (drop it then).
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
    /// assert_eq!(tracker.point_reads().count(), 0);
    /// ```
    pub fn reset(&mut self) -> bool {
        // The maps need no check: their array form never holds more than
        // 32 entries, and `clear` turns a larger map back into it.
        let reusable = self.range_reads.capacity() <= RETAINED_RANGES;
        if reusable {
            self.range_reads.clear();
        } else {
            self.range_reads = Vec::new();
        }
        self.reads.clear();
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
    /// key had no version at all), without its value.
    #[inline]
    pub fn record_read(&mut self, key: &Key, observed_ts: Timestamp) {
        let observed = if observed_ts == 0 {
            Observed::Absent
        } else {
            Observed::Unknown
        };
        self.record_observation(key, observed_ts, observed);
    }

    /// Records that `key` was read, the version seen (`0`: none) and what
    /// of it to keep. One entry per key: the newest observation replaces an
    /// older one (at `ReadCommitted` a later read may see a newer version),
    /// and at equal versions the one that keeps more wins.
    #[inline]
    pub fn record_observation(&mut self, key: &Key, observed_ts: Timestamp, observed: Observed) {
        self.sealed = false;
        match self.reads.get_mut(key) {
            None => self.reads.insert_new(
                key.clone(),
                PointRead {
                    ts: observed_ts,
                    observed,
                },
            ),
            Some(read) => {
                let newer = observed_ts > read.ts;
                let as_new_and_known =
                    observed_ts == read.ts && matches!(read.observed, Observed::Unknown);
                if newer || as_new_and_known {
                    *read = PointRead {
                        ts: observed_ts,
                        observed,
                    };
                }
            }
        }
    }

    /// What the transaction saw of `key` at version `ts` (its read base):
    /// absent, the batch a point read kept, or unknown (not kept, or the
    /// base came from a scan).
    #[must_use]
    pub fn seen(&self, key: &Key, ts: Timestamp) -> Seen<'_> {
        if ts == 0 {
            return Seen::Absent;
        }
        match self.reads.get(key) {
            Some(read) if read.ts == ts => match &read.observed {
                Observed::Unknown => Seen::Unknown,
                Observed::Absent => Seen::Absent,
                Observed::Value(batch) => Seen::Value(batch),
            },
            _ => Seen::Unknown,
        }
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
        let own = if write.replaces_committed() {
            seq
        } else {
            u64::MAX
        };
        match self.writes.get_mut(&key) {
            Some(staged) => {
                staged.write = write;
                staged.resolution = resolution;
                staged.own_since = staged.own_since.min(own);
            }
            None => self.writes.insert_new(
                key,
                Staged {
                    write,
                    own_since: own,
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
        self.seq();
        match self.writes.get_mut(&key) {
            // A put or delete staged before keeps its `own_since`; appends
            // onto appends still read the committed rows.
            Some(staged) => staged.write = merged,
            None => self.writes.insert_new(
                key,
                Staged {
                    write: merged,
                    own_since: u64::MAX,
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

    /// Point reads in key order, one per key: the key and the newest
    /// version read of it.
    pub fn point_reads(&self) -> impl Iterator<Item = (&Key, Timestamp)> {
        self.reads.iter().map(|(key, read)| (key, read.ts))
    }

    /// Number of keys read with point reads (one entry per key, however
    /// often it was read).
    #[must_use]
    pub fn point_read_count(&self) -> usize {
        self.reads.len()
    }

    /// Range reads recorded so far.
    #[must_use]
    pub fn range_reads(&self) -> &[RangeRead] {
        &self.range_reads
    }

    /// Prepares the footprint for commit: computes every written key's read
    /// base (the newest observation of its committed state).
    pub fn seal(&mut self) {
        if self.sealed {
            return;
        }
        if self.reads.is_empty() && self.range_reads.is_empty() {
            // No read recorded since `reset`: every read base is still `None`.
            self.sealed = true;
            return;
        }
        for (key, staged) in self.writes.iter_mut() {
            // Point reads of a key are recorded only while they return
            // committed data (before its first write, or onto appends).
            staged.base = self.reads.get(key).map(|read| read.ts);
        }
        for range in &self.range_reads {
            let (start, end) = (range.start.as_ref(), range.end.as_ref());
            if range_is_empty(start, end) {
                continue;
            }
            for (_, staged) in self.writes.range_mut(start, end) {
                if range.seq < staged.own_since {
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

    /// For a written key whose committed state the transaction read (a
    /// read-modify-write), the newest such observation: the version a
    /// point read saw, or the timestamp a covering scan read at. `None` for
    /// a blind write. Call [`seal`](Self::seal) first.
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
        for n in 0..100 {
            t.record_range(Bound::Unbounded, Bound::Unbounded, n);
        }
        assert!(!t.reset(), "a hundred ranges are not worth keeping");
        assert_eq!(t.range_reads.capacity(), 0);
        assert_eq!(t.point_read_count(), 0);
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
        assert_eq!(
            t.point_reads().collect::<Vec<_>>(),
            [(&Key::from("a"), 1), (&Key::from("b"), 7)]
        );
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

    fn rows(v: &[i64]) -> Arc<RecordBatch> {
        Arc::new(
            RecordBatch::try_from_iter([(
                "v",
                Arc::new(arrow_array::Int64Array::from(v.to_vec())) as _,
            )])
            .unwrap(),
        )
    }

    #[test]
    fn a_scan_over_a_staged_append_reads_the_committed_rows() {
        // append; scan (sees committed ++ staged rows); then the key is
        // read: its committed state is part of what the scan returned.
        let mut t = DependencyTracker::new();
        t.record_append(Key::from("log"), &rows(&[9])).unwrap();
        t.record_range(Bound::Unbounded, Bound::Unbounded, 5);
        t.seal();
        assert_eq!(t.read_base(&Key::from("log")), Some(5));
        // Still so once the appended key is rewritten from what was scanned.
        t.record_write(Key::from("log"), StagedWrite::Put(rows(&[1, 9])));
        t.record_range(Bound::Unbounded, Bound::Unbounded, 8); // sees own put
        t.seal();
        assert_eq!(t.read_base(&Key::from("log")), Some(5));
        // Appends onto a put or a delete read nothing committed.
        let mut t = DependencyTracker::new();
        t.record_write(Key::from("a"), StagedWrite::Put(rows(&[1])));
        t.record_append(Key::from("a"), &rows(&[2])).unwrap();
        t.record_write(Key::from("d"), StagedWrite::Delete);
        t.record_append(Key::from("d"), &rows(&[2])).unwrap();
        t.record_range(Bound::Unbounded, Bound::Unbounded, 5);
        t.seal();
        assert_eq!(t.read_base(&Key::from("a")), None);
        assert_eq!(t.read_base(&Key::from("d")), None);
    }

    #[test]
    fn polling_a_key_keeps_one_observation() {
        let mut t = DependencyTracker::new();
        for ts in 1..=2_000 {
            t.record_observation(&Key::from("k"), ts, Observed::Value(rows(&[1])));
            t.record_read(&Key::from("other"), 3);
        }
        assert_eq!(t.point_read_count(), 2);
        t.record_write(Key::from("k"), StagedWrite::Put(rows(&[1, 2])));
        t.seal();
        assert_eq!(t.read_base(&Key::from("k")), Some(2_000));
        assert!(matches!(t.seen(&Key::from("k"), 2_000), Seen::Value(_)));
        // An older observation arriving later does not replace the newest.
        t.record_read(&Key::from("k"), 5);
        t.seal();
        assert_eq!(t.read_base(&Key::from("k")), Some(2_000));
    }

    #[test]
    fn absence_is_kept_whatever_the_version() {
        // A read of a deleted key (a tombstone at 7) or of a key whose
        // tombstone is gone (version 0) both saw "absent".
        let mut t = DependencyTracker::new();
        t.record_observation(&Key::from("gone"), 7, Observed::Absent);
        t.record_read(&Key::from("never"), 0);
        t.record_read(&Key::from("unknown"), 4);
        assert_eq!(t.seen(&Key::from("gone"), 7), Seen::Absent);
        assert_eq!(t.seen(&Key::from("never"), 0), Seen::Absent);
        assert_eq!(t.seen(&Key::from("unknown"), 4), Seen::Unknown);
        assert_eq!(t.seen(&Key::from("gone"), 9), Seen::Unknown);
    }
}
