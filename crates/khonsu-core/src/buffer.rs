//! The Transaction Buffer: every committed version of every key, in one
//! lock-free `crossbeam_skiplist::SkipMap`.

use std::ops::{Bound, ControlFlow};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::RecordBatch;
use crossbeam_queue::SegQueue;
use crossbeam_skiplist::SkipMap;
use crossbeam_skiplist::map::Entry;
use crossbeam_utils::Backoff;

use crate::error::{IntentBusySnafu, Result, TimestampOutOfRangeSnafu};
use crate::version::{HEAD_TS, VersionKey, version_range};
use crate::{Key, Pins, Timestamp, VersionedValue};

// A key's head entry carries one 64-bit state word:
//
//   bit 63  LOCKED   a committer holds the key's write intent
//   bit 62  DEAD     the head is being unlinked (key fully reclaimed); lockers retry
//   bit 61  QUEUED   the key sits in the deferred-reclamation queue
//   bit 60  PRUNING  reclamation is unlinking old versions of the key
//   0..=59           commit timestamp of the key's newest version (0: none yet)
//
// LOCKED and PRUNING exclude each other and each excludes itself. Validators
// only look at LOCKED: pruning never changes what any snapshot reads, so it
// must not look like a concurrent writer.
const LOCKED: u64 = 1 << 63;
const DEAD: u64 = 1 << 62;
const QUEUED: u64 = 1 << 61;
const PRUNING: u64 = 1 << 60;
const TS_MASK: u64 = PRUNING - 1;
const _: () = assert!(crate::MAX_TIMESTAMP == TS_MASK);

/// Consecutive skipped entries of one key after which a walk seeks past
/// them instead of stepping (a seek costs about as much as a few steps).
const SEEK_AFTER_SKIPS: u32 = 4;

/// What a [`TxnBuffer::walk`] visitor wants next.
enum Step {
    Next,
    Seek(Bound<VersionKey>),
}

/// The state of a key's write intent, as a validator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntentState {
    /// Commit timestamp of the key's newest committed version (0: none).
    pub latest_ts: Timestamp,
    /// Whether a committer holds the key's write intent right now.
    pub locked: bool,
}

impl IntentState {
    fn from_word(word: u64) -> Self {
        Self {
            latest_ts: word & TS_MASK,
            locked: word & LOCKED != 0 && word & DEAD == 0,
        }
    }
}

/// Counts of what the buffer holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// Keys the buffer tracks (each has a head entry; deleted keys count
    /// until their tombstone is reclaimed).
    pub keys: usize,
    /// Versions held, tombstones included.
    pub versions: usize,
}

/// What one reclamation pass over a key left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pruned {
    /// Whether any version of the key is left.
    any_left: bool,
    /// Whether the key should be revisited later: it still holds versions
    /// above the watermark besides its newest (an open snapshot pins them),
    /// or its newest version is a tombstone (the key itself can go once the
    /// tombstone is old enough).
    revisit: bool,
}

/// The shared multi-version store of committed data.
///
/// Two lock-free `crossbeam_skiplist::SkipMap`s:
///
/// * **versions** — every committed version, ordered by (key ascending,
///   commit timestamp descending), so a snapshot read is a single
///   `lower_bound` seek and a range scan is one ordered walk (see
///   `VersionKey`). Readers touch only this map.
/// * **heads** — one state word per key: the key's *write intent* (the
///   `LOCKED` bit), housekeeping flags, and the newest commit timestamp,
///   which is what write-write checks and `Serializable` validation read.
///
/// **What is atomic.** Each skiplist operation is linearizable. A commit
/// touching several keys is made atomic one level up: the writer takes each
/// key's write intent (in key order), installs versions stamped with its
/// commit timestamp, and only then is that timestamp published by the
/// [`TimestampOracle`](crate::TimestampOracle); snapshots never read past the
/// published timestamp, so they see all of a commit or none of it. Readers
/// never take intents: readers never block writers, writers never block
/// readers.
///
/// **How memory is reclaimed.** A version is garbage once a newer version
/// exists at or below the watermark (the oldest open snapshot, see
/// [`SnapshotRegistry`](crate::SnapshotRegistry)). The committer of a key
/// unlinks that key's garbage right after installing; keys that still hold
/// extra versions are queued (a `SegQueue`) and revisited by later commits,
/// and [`collect_garbage`](Self::collect_garbage) sweeps everything, precisely.
/// Unlinked nodes are freed by `crossbeam-epoch` once no thread can still be
/// traversing them, so memory stays bounded under endless overwrites.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use khonsu_core::{Key, TxnBuffer};
///
/// let batch = |v: i64| {
///     Arc::new(RecordBatch::try_from_iter([(
///         "v",
///         Arc::new(Int64Array::from(vec![v])) as _,
///     )]).unwrap())
/// };
/// let buffer = TxnBuffer::new();
/// let key = Key::from("k");
/// buffer.lock(&key, 0).unwrap().install(5, Some(batch(1)), 0).unwrap();
/// buffer.lock(&key, 0).unwrap().install(9, Some(batch(2)), 0).unwrap();
///
/// assert_eq!(buffer.read_at(&key, 4).commit_ts, 0);       // before the first commit
/// assert_eq!(buffer.read_at(&key, 7).commit_ts, 5);       // sees the first version
/// assert_eq!(buffer.read_at(&key, 100).commit_ts, 9);     // sees the newest
/// ```
#[derive(Debug, Default)]
pub struct TxnBuffer {
    /// Every version, ordered (key ascending, commit timestamp descending).
    versions: SkipMap<VersionKey, Option<Arc<RecordBatch>>>,
    /// One state word per key: write intent, flags, newest commit timestamp.
    heads: SkipMap<Key, AtomicU64>,
    /// Keys to revisit, each with the watermark it was last pruned at.
    deferred: SegQueue<(Key, Timestamp)>,
}

impl TxnBuffer {
    /// An empty buffer.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The version of `key` a snapshot at `ts` sees: one seek.
    #[must_use]
    #[inline]
    pub fn read_at(&self, key: &Key, ts: Timestamp) -> VersionedValue {
        let probe = VersionKey::new(key.clone(), ts.min(HEAD_TS - 1));
        match self.versions.lower_bound(Bound::Included(&probe)) {
            Some(entry) if entry.key().key == *key => VersionedValue {
                commit_ts: entry.key().ts,
                value: entry.value().clone(),
            },
            _ => VersionedValue::default(),
        }
    }

    /// The newest committed version of `key` whatever the snapshot (used
    /// by committers holding the key's intent).
    #[must_use]
    pub fn read_latest(&self, key: &Key) -> VersionedValue {
        self.read_at(key, HEAD_TS - 1)
    }

    /// Every key in `range` with a live value at snapshot `ts`, in key order.
    ///
    /// One ordered walk: per key, the first version at or below `ts` is the
    /// visible one. When a key has a long history (an old snapshot pins it),
    /// the walk seeks past it instead of stepping through every version.
    #[must_use]
    pub fn scan_at(
        &self,
        start: Bound<&Key>,
        end: Bound<&Key>,
        ts: Timestamp,
    ) -> Vec<(Key, Arc<RecordBatch>)> {
        let mut out = Vec::new();
        let mut decided: Option<Key> = None;
        let mut skipped = 0_u32;
        self.walk(version_range(start, end), |entry| {
            let vk = entry.key();
            let done = decided.as_ref() == Some(&vk.key);
            if done || vk.ts > ts {
                skipped += 1;
                if skipped < SEEK_AFTER_SKIPS {
                    return Step::Next;
                }
                skipped = 0;
                return Step::Seek(if done {
                    // Past every version of this key: the next key's newest.
                    Bound::Excluded(VersionKey::new(vk.key.clone(), 0))
                } else {
                    // Straight to the version visible at `ts`.
                    Bound::Included(VersionKey::new(vk.key.clone(), ts))
                });
            }
            skipped = 0;
            decided = Some(vk.key.clone());
            if let Some(batch) = entry.value() {
                out.push((vk.key.clone(), Arc::clone(batch)));
            }
            Step::Next
        });
        out
    }

    /// Walks `range` of the versions in order; `visit` may jump ahead.
    fn walk(
        &self,
        range: (Bound<VersionKey>, Bound<VersionKey>),
        mut visit: impl FnMut(&Entry<'_, VersionKey, Option<Arc<RecordBatch>>>) -> Step,
    ) {
        let (mut low, high) = range;
        'seek: loop {
            for entry in self.versions.range((low.clone(), high.clone())) {
                match visit(&entry) {
                    Step::Next => {}
                    Step::Seek(to) => {
                        low = to;
                        continue 'seek;
                    }
                }
            }
            return;
        }
    }

    /// The intent state of `key`, or `None` if the buffer has never seen it
    /// (or has fully reclaimed it).
    #[must_use]
    pub fn intent_state(&self, key: &Key) -> Option<IntentState> {
        self.heads
            .get(key.as_bytes())
            .map(|e| IntentState::from_word(e.value().load(Ordering::SeqCst)))
    }

    /// Visits the intent state of every key in a range, in key order, until
    /// `visit` breaks.
    pub fn for_each_intent<B>(
        &self,
        start: Bound<&Key>,
        end: Bound<&Key>,
        mut visit: impl FnMut(&Key, IntentState) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        let range = (start.map(Key::as_bytes), end.map(Key::as_bytes));
        for entry in self.heads.range::<[u8], _>(range) {
            visit(
                entry.key(),
                IntentState::from_word(entry.value().load(Ordering::SeqCst)),
            )?;
        }
        ControlFlow::Continue(())
    }

    /// Takes the write intent on `key`, creating the key's head if needed.
    ///
    /// While another committer holds the intent this waits (spinning, then
    /// yielding) at most `max_waits` times; callers that would abort anyway
    /// once the holder commits pass `0` to fail fast.
    ///
    /// # Errors
    /// [`Error::IntentBusy`](crate::Error::IntentBusy) when the wait budget
    /// runs out.
    pub fn lock(&self, key: &Key, max_waits: u32) -> Result<KeyIntent<'_>> {
        let mut waits = 0_u32;
        let backoff = Backoff::new();
        loop {
            let entry = self.heads.get_or_insert(key.clone(), AtomicU64::new(0));
            let state = entry.value();
            loop {
                let word = state.load(Ordering::SeqCst);
                if word & DEAD != 0 {
                    // The head is being unlinked; look it up (or create it) again.
                    break;
                }
                if word & PRUNING != 0 {
                    // Reclamation holds the key briefly; it is never a conflict.
                    backoff.snooze();
                    continue;
                }
                if word & LOCKED != 0 {
                    snafu::ensure!(
                        waits < max_waits,
                        IntentBusySnafu {
                            key: key.clone(),
                            spins: waits
                        }
                    );
                    waits += 1;
                    backoff.snooze();
                    continue;
                }
                if state
                    .compare_exchange_weak(word, word | LOCKED, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    return Ok(KeyIntent {
                        buffer: self,
                        entry,
                        latest_ts: word & TS_MASK,
                        bit: LOCKED,
                        newest: None,
                        finished: false,
                    });
                }
            }
            // The unlinker may be preempted between marking and removing.
            backoff.snooze();
        }
    }

    /// Takes the key for reclamation (the `PRUNING` bit) if neither a
    /// committer nor another reclaimer holds it right now.
    fn try_prune_lock(&self, key: &Key) -> Option<KeyIntent<'_>> {
        let entry = self.heads.get(key.as_bytes())?;
        let word = entry.value().load(Ordering::SeqCst);
        if word & (LOCKED | DEAD | PRUNING) != 0 {
            return None;
        }
        entry
            .value()
            .compare_exchange(word, word | PRUNING, Ordering::SeqCst, Ordering::SeqCst)
            .ok()?;
        Some(KeyIntent {
            buffer: self,
            entry,
            latest_ts: word & TS_MASK,
            bit: PRUNING,
            newest: None,
            finished: false,
        })
    }

    /// Unlinks the versions of `key` that no snapshot at or after
    /// `watermark` can see: everything older than the newest version at or
    /// below the watermark (the *floor*), and the floor itself if it is a
    /// tombstone with nothing older. The caller holds the key's intent.
    ///
    /// A few seeks, however long the key's history: the floor is found with
    /// one `lower_bound`, and only the (usually zero or one) versions below
    /// it are visited.
    fn prune_below(&self, key: &Key, watermark: Timestamp) -> Pruned {
        let floor_probe = VersionKey::new(key.clone(), watermark.min(HEAD_TS - 1));
        if let Some(floor) = self.versions.lower_bound(Bound::Included(&floor_probe))
            && floor.key().key == *key
        {
            Self::drop_below_floor(&floor);
        }
        let Some(newest) = self.newest_version(key) else {
            return Pruned {
                any_left: false,
                revisit: false,
            };
        };
        let second_above_watermark = newest
            .next()
            .is_some_and(|e| e.key().key == *key && e.key().ts > watermark);
        Pruned {
            any_left: true,
            revisit: second_above_watermark || newest.value().is_none(),
        }
    }

    /// Unlinks every version of the floor's key older than the floor — the
    /// floor shadows them for every snapshot — and the floor itself if it is
    /// a tombstone (with nothing older it reads the same as no version). The
    /// caller holds the key.
    fn drop_below_floor(floor: &Entry<'_, VersionKey, Option<Arc<RecordBatch>>>) {
        let key = &floor.key().key;
        let mut older = floor.next();
        while let Some(entry) = older {
            if entry.key().key != *key {
                break;
            }
            older = entry.next();
            entry.remove();
        }
        if floor.value().is_none() {
            floor.remove();
        }
    }

    /// The newest version of `key`, if it has any.
    fn newest_version(&self, key: &Key) -> Option<Entry<'_, VersionKey, Option<Arc<RecordBatch>>>> {
        // (key, HEAD_TS) sorts before every version of `key`.
        let first = VersionKey::new(key.clone(), HEAD_TS);
        self.versions
            .lower_bound(Bound::Included(&first))
            .filter(|e| e.key().key == *key)
    }

    /// [`prune_below`](Self::prune_below) for the committer that just
    /// installed `newest`: it walks from the new version to the next ones
    /// (usually the previous version, then the next key) instead of seeking,
    /// and seeks only past a long pinned history. The caller holds the intent.
    fn prune_after_install(
        &self,
        newest: &Entry<'_, VersionKey, Option<Arc<RecordBatch>>>,
        watermark: Timestamp,
    ) -> Pruned {
        let key = &newest.key().key;
        let mut revisit = newest.value().is_none();
        let mut cursor = newest.next();
        let mut steps = 0_u32;
        let floor = loop {
            let Some(entry) = cursor else {
                return Pruned {
                    any_left: true,
                    revisit,
                };
            };
            if entry.key().key != *key {
                return Pruned {
                    any_left: true,
                    revisit,
                };
            }
            if entry.key().ts <= watermark {
                break entry;
            }
            // A version above the watermark besides the newest: an open
            // snapshot may read it; look again later.
            revisit = true;
            steps += 1;
            cursor = if steps < SEEK_AFTER_SKIPS {
                entry.next()
            } else {
                let probe = VersionKey::new(key.clone(), watermark.min(HEAD_TS - 1));
                self.versions.lower_bound(Bound::Included(&probe))
            };
        };
        Self::drop_below_floor(&floor);
        Pruned {
            any_left: true,
            revisit,
        }
    }

    /// Precise reclamation of `key`: keeps a version only if some pinned
    /// point in time falls between its commit and the next newer version
    /// (or it is newer than every pin), then drops trailing tombstones.
    /// Returns how many versions are left. The caller holds the intent.
    fn prune_pinned(&self, key: &Key, pins: &Pins) -> usize {
        let mut kept: Vec<Entry<'_, VersionKey, Option<Arc<RecordBatch>>>> = Vec::new();
        let mut newer_ts = HEAD_TS;
        let mut next_pin = pins.points.iter().copied().peekable();
        for entry in self
            .versions
            .range(version_range(Bound::Included(key), Bound::Included(key)))
        {
            let ts = entry.key().ts;
            // Pins at or after `newer_ts` see a newer version, not this one.
            while next_pin.next_if(|p| *p >= newer_ts).is_some() {}
            let pinned = next_pin.peek().is_some_and(|p| *p >= ts);
            let keep = ts > pins.visible || pinned || newer_ts > pins.from;
            if keep {
                kept.push(entry);
            } else {
                entry.remove();
            }
            newer_ts = ts;
        }
        // Oldest first: a tombstone with nothing older reads as no version.
        while kept.last().is_some_and(|e| e.value().is_none()) {
            if let Some(tombstone) = kept.pop() {
                tombstone.remove();
            }
        }
        kept.len()
    }

    /// Revisits up to `budget` keys queued for deferred reclamation,
    /// reclaiming below `watermark`. Called by committers; cheap when the
    /// queue is empty.
    pub fn collect_deferred(&self, watermark: Timestamp, budget: usize) {
        for _ in 0..budget {
            let Some((key, pruned_at)) = self.deferred.pop() else {
                return;
            };
            if watermark <= pruned_at {
                // Nothing new is reclaimable until the watermark moves (and
                // the queue is in that order): keep it queued, stop here.
                self.deferred.push((key, pruned_at));
                return;
            }
            if let Some(entry) = self.heads.get(key.as_bytes()) {
                entry.value().fetch_and(!QUEUED, Ordering::SeqCst);
            }
            let Some(intent) = self.try_prune_lock(&key) else {
                // A committer holds it and reclaims it itself; it may also
                // have been dropped entirely.
                self.enqueue(&key, pruned_at);
                continue;
            };
            let pruned = self.prune_below(&key, watermark);
            if !pruned.any_left && intent.latest_ts() <= watermark {
                intent.unlink_head();
                continue;
            }
            if pruned.revisit || !pruned.any_left {
                self.enqueue(&key, watermark);
            }
            intent.release();
        }
    }

    /// Reclaims every version that no open snapshot can see, across all
    /// keys — including versions between two open snapshots — and drops keys
    /// whose last version is a reclaimed tombstone. Keys whose intent is held
    /// right now are skipped (their committer reclaims them).
    pub fn collect_garbage(&self, pins: &Pins) {
        let keys: Vec<Key> = self.heads.iter().map(|e| e.key().clone()).collect();
        for key in &keys {
            let Some(intent) = self.try_prune_lock(key) else {
                continue;
            };
            // The head also carries the key's newest commit timestamp, which
            // write-write checks of open transactions compare with their
            // snapshots: drop it only when no open snapshot predates it.
            if self.prune_pinned(key, pins) == 0 && intent.latest_ts() <= pins.oldest() {
                intent.unlink_head();
            } else {
                if self.deferred_worthy(key) {
                    self.enqueue(key, 0);
                }
                intent.release();
            }
        }
        // Hand this thread's deferred frees to the global epoch collector.
        crossbeam_epoch::pin().flush();
    }

    /// Whether `key` has no versions left (only a head, waiting for the
    /// snapshots that predate its last change to close).
    fn deferred_worthy(&self, key: &Key) -> bool {
        self.newest_version(key).is_none()
    }

    /// Queues `key` for deferred reclamation (once: the `QUEUED` flag),
    /// noting the watermark its versions were last pruned at.
    fn enqueue(&self, key: &Key, pruned_at: Timestamp) {
        if let Some(entry) = self.heads.get(key.as_bytes()) {
            self.enqueue_head(&entry, pruned_at);
        }
    }

    fn enqueue_head(&self, head: &Entry<'_, Key, AtomicU64>, pruned_at: Timestamp) {
        let before = head.value().fetch_or(QUEUED, Ordering::SeqCst);
        if before & (QUEUED | DEAD) == 0 {
            self.deferred.push((head.key().clone(), pruned_at));
        }
    }

    /// How many keys and versions the buffer holds (approximate while
    /// commits run concurrently).
    #[must_use]
    pub fn stats(&self) -> BufferStats {
        BufferStats {
            keys: self.heads.len(),
            versions: self.versions.len(),
        }
    }

    /// Keys queued for deferred reclamation.
    #[must_use]
    pub fn deferred_len(&self) -> usize {
        self.deferred.len()
    }
}

/// A held write intent on one key.
///
/// While it is held no other committer can install a version of the key.
/// Finish it with [`install`](Self::install) or [`release`](Self::release);
/// dropping it releases it unchanged.
#[derive(Debug)]
#[must_use = "an intent blocks other writers of the key until released"]
pub struct KeyIntent<'a> {
    buffer: &'a TxnBuffer,
    entry: Entry<'a, Key, AtomicU64>,
    latest_ts: Timestamp,
    /// `LOCKED` for a committer's intent, `PRUNING` for reclamation.
    bit: u64,
    /// The version this intent inserted, until `finish` reclaims below it.
    newest: Option<Entry<'a, VersionKey, Option<Arc<RecordBatch>>>>,
    finished: bool,
}

impl KeyIntent<'_> {
    /// The key this intent is on.
    #[must_use]
    pub fn key(&self) -> &Key {
        self.entry.key()
    }

    /// Commit timestamp of the key's newest committed version (stable while
    /// the intent is held; `0` if the key has none).
    #[must_use]
    pub fn latest_ts(&self) -> Timestamp {
        self.latest_ts
    }

    /// The key's newest committed version.
    #[must_use]
    pub fn latest(&self) -> VersionedValue {
        self.buffer.read_latest(self.key())
    }

    /// Installs a version committed at `ts` (`None`: a tombstone), reclaims
    /// what `watermark` allows, and releases the intent:
    /// [`insert_version`](Self::insert_version) then [`finish`](Self::finish).
    ///
    /// # Errors
    /// [`Error::TimestampOutOfRange`](crate::Error::TimestampOutOfRange) when
    /// `ts` is 0 or above [`MAX_TIMESTAMP`](crate::MAX_TIMESTAMP); nothing
    /// is installed and the intent is released.
    pub fn install(
        mut self,
        ts: Timestamp,
        value: Option<Arc<RecordBatch>>,
        watermark: Timestamp,
    ) -> Result<()> {
        self.insert_version(ts, value)?;
        self.finish(watermark);
        Ok(())
    }

    /// Inserts a version committed at `ts` (`None`: a tombstone) and keeps
    /// the intent, so a committer can publish its timestamp first and
    /// reclaim afterwards (shortening the window later commits wait on).
    ///
    /// # Errors
    /// [`Error::TimestampOutOfRange`](crate::Error::TimestampOutOfRange) when
    /// `ts` is 0 or above [`MAX_TIMESTAMP`](crate::MAX_TIMESTAMP); nothing is
    /// inserted.
    pub fn insert_version(&mut self, ts: Timestamp, value: Option<Arc<RecordBatch>>) -> Result<()> {
        snafu::ensure!(
            (1..=crate::MAX_TIMESTAMP).contains(&ts),
            TimestampOutOfRangeSnafu { ts }
        );
        let key = self.key().clone();
        self.newest = Some(self.buffer.versions.insert(VersionKey::new(key, ts), value));
        // From here on the key has a version: never treat it as an aborted
        // insert (even if something below unwinds).
        self.latest_ts = self.latest_ts.max(ts);
        Ok(())
    }

    /// Reclaims what `watermark` allows below the version inserted by
    /// [`insert_version`](Self::insert_version) (if any) and releases the intent.
    pub fn finish(mut self, watermark: Timestamp) {
        if let Some(newest) = self.newest.take() {
            let buffer = self.buffer;
            let pruned = buffer.prune_after_install(&newest, watermark);
            if pruned.revisit {
                // An open snapshot pins older versions, or the key is deleted
                // and its head can go once the tombstone is old: look again later.
                buffer.enqueue_head(&self.entry, watermark);
            }
        }
        self.finish_without_install();
    }

    /// Releases the intent without installing anything. A head this intent
    /// created for a key that never had a version is unlinked again, so
    /// aborted inserts leave nothing behind.
    pub fn release(mut self) {
        self.finish_without_install();
    }

    fn finish_without_install(&mut self) {
        if self.bit == LOCKED && self.latest_ts == 0 {
            self.unlink_head_inner();
        } else {
            self.release_inner();
        }
        self.finished = true;
    }

    fn release_inner(&self) {
        let latest = self.latest_ts & TS_MASK;
        let bit = self.bit;
        // Keep the QUEUED flag, which other threads may set while we hold the
        // intent; clear our bit and store the newest commit timestamp.
        let _ = self
            .entry
            .value()
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |word| {
                Some((word & QUEUED) | (word & (LOCKED | PRUNING) & !bit) | latest)
            });
    }

    /// Marks the head dead and unlinks it (the key has no versions left).
    fn unlink_head(mut self) {
        self.unlink_head_inner();
        self.finished = true;
    }

    fn unlink_head_inner(&self) {
        // DEAD is set while we hold the key, so no committer can be between
        // taking it and installing; lockers that meet DEAD look the key up again.
        self.entry.value().fetch_or(DEAD, Ordering::SeqCst);
        self.entry.remove();
    }
}

impl Drop for KeyIntent<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.finish_without_install();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int64Array};

    fn batch(v: i64) -> Arc<RecordBatch> {
        Arc::new(
            RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![v])) as _)]).unwrap(),
        )
    }

    fn write(buffer: &TxnBuffer, key: &str, ts: Timestamp, v: Option<i64>, watermark: Timestamp) {
        buffer
            .lock(&Key::from(key), 0)
            .unwrap()
            .install(ts, v.map(batch), watermark)
            .unwrap();
    }

    #[test]
    fn overwrites_are_reclaimed_below_the_watermark() {
        let buffer = TxnBuffer::new();
        for ts in 1..=1000 {
            write(&buffer, "k", ts, Some(ts.cast_signed()), ts - 1);
        }
        // Newest plus at most the one visible at the watermark.
        assert!(buffer.stats().versions <= 2, "{:?}", buffer.stats());
        assert_eq!(buffer.read_at(&Key::from("k"), 1000).commit_ts, 1000);
    }

    #[test]
    fn an_old_watermark_keeps_old_versions_readable() {
        let buffer = TxnBuffer::new();
        write(&buffer, "k", 1, Some(1), 0);
        for ts in 2..=50 {
            write(&buffer, "k", ts, Some(2), 1);
        }
        assert_eq!(buffer.read_at(&Key::from("k"), 1).commit_ts, 1);
        assert!(buffer.deferred_len() >= 1);
        buffer.collect_deferred(50, 8);
        assert!(buffer.stats().versions <= 1);
    }

    #[test]
    fn deleted_keys_disappear_after_collection() {
        let buffer = TxnBuffer::new();
        write(&buffer, "a", 1, Some(1), 0);
        write(&buffer, "a", 2, None, 1);
        assert_eq!(buffer.stats().keys, 1);
        assert_eq!(buffer.read_at(&Key::from("a"), 2).value, None);
        buffer.collect_garbage(&Pins {
            visible: 2,
            points: vec![2],
            from: Timestamp::MAX,
        });
        assert_eq!(buffer.stats(), BufferStats::default());
        // The key can be written again afterwards.
        write(&buffer, "a", 3, Some(3), 2);
        assert_eq!(buffer.read_at(&Key::from("a"), 3).commit_ts, 3);
    }

    #[test]
    fn precise_collection_keeps_exactly_the_pinned_versions() {
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        for ts in 1..=10 {
            write(&buffer, "k", ts, Some(ts.cast_signed()), 0);
        }
        assert_eq!(buffer.stats().versions, 10);
        // Snapshots at 3 and 7 (and the clock at 10): versions 3, 7, 10 stay.
        let pins = Pins {
            visible: 10,
            points: vec![10, 7, 3],
            from: Timestamp::MAX,
        };
        buffer.collect_garbage(&pins);
        assert_eq!(buffer.stats().versions, 3);
        for (at, seen) in [(3, 3), (5, 3), (7, 7), (9, 7), (10, 10)] {
            assert_eq!(buffer.read_at(&key, at).commit_ts, seen, "read at {at}");
        }
        // A read-latest pin from 7 keeps everything visible at 7 or later.
        for ts in 11..=14 {
            write(&buffer, "k", ts, Some(1), 0);
        }
        buffer.collect_garbage(&Pins {
            visible: 14,
            points: vec![14],
            from: 12,
        });
        let left: Vec<_> = (0..=14)
            .map(|at| buffer.read_at(&key, at).commit_ts)
            .collect();
        assert_eq!(buffer.stats().versions, 3, "{left:?}"); // 12, 13, 14
        assert_eq!(buffer.read_at(&key, 12).commit_ts, 12);
    }

    #[test]
    fn versions_newer_than_the_scanned_clock_survive_precise_collection() {
        // The registry scan read the clock at 10, then snapshots at 11 and 12
        // registered unseen: everything above 10 must stay.
        let buffer = TxnBuffer::new();
        let key = Key::from("a");
        for ts in [10, 11, 12] {
            write(&buffer, "a", ts, Some(1), 0);
        }
        // Even if the points carry a snapshot newer than the clock reading
        // (registered during the scan), the clock reading decides.
        buffer.collect_garbage(&Pins {
            visible: 10,
            points: vec![12, 10],
            from: Timestamp::MAX,
        });
        assert_eq!(buffer.read_at(&key, 11).commit_ts, 11);
        assert_eq!(buffer.read_at(&key, 10).commit_ts, 10);
    }

    #[test]
    fn a_head_outlives_deletes_that_open_snapshots_predate() {
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        write(&buffer, "k", 1, Some(1), 0);
        write(&buffer, "k", 2, None, 0);
        // A snapshot at 0 is open: its write-write checks need "k changed at 2".
        let pins = Pins {
            visible: 2,
            points: vec![2, 0],
            from: Timestamp::MAX,
        };
        buffer.collect_garbage(&pins);
        assert_eq!(
            buffer.stats().versions,
            0,
            "nothing is readable, nothing kept"
        );
        assert_eq!(buffer.intent_state(&key).unwrap().latest_ts, 2);
        buffer.collect_deferred(0, 4);
        assert_eq!(buffer.intent_state(&key).unwrap().latest_ts, 2);
        // Once no snapshot predates the delete, the key goes.
        buffer.collect_deferred(2, 4);
        assert!(buffer.intent_state(&key).is_none());
    }

    #[test]
    fn reclamation_is_not_a_writer() {
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        write(&buffer, "k", 1, Some(1), 0);
        let pruning = buffer.try_prune_lock(&key).unwrap();
        // Validators do not see a pruner as a concurrent writer ...
        assert!(!buffer.intent_state(&key).unwrap().locked);
        // ... and a committer cannot take the key until it is done.
        assert!(buffer.try_prune_lock(&key).is_none());
        pruning.release();
        let intent = buffer.lock(&key, 0).unwrap();
        assert!(buffer.try_prune_lock(&key).is_none());
        assert!(buffer.intent_state(&key).unwrap().locked);
        intent.release();
        assert_eq!(buffer.intent_state(&key).unwrap().latest_ts, 1);
    }

    #[test]
    fn aborted_inserts_leave_no_head_behind() {
        let buffer = TxnBuffer::new();
        for i in 0..100_u64 {
            drop(buffer.lock(&Key::from(i), 0).unwrap());
        }
        buffer.lock(&Key::from("x"), 0).unwrap().release();
        assert_eq!(buffer.stats(), BufferStats::default());
    }

    #[test]
    fn out_of_range_timestamps_are_refused() {
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        for ts in [0, crate::MAX_TIMESTAMP + 1, u64::MAX] {
            let result = buffer.lock(&key, 0).unwrap().install(ts, None, 0);
            assert!(matches!(
                result,
                Err(crate::Error::TimestampOutOfRange { .. })
            ));
        }
        // The key is still usable.
        write(&buffer, "k", 3, Some(3), 0);
        assert_eq!(buffer.read_at(&key, 3).commit_ts, 3);
    }

    #[test]
    fn scans_skip_long_histories() {
        let buffer = TxnBuffer::new();
        write(&buffer, "a", 1, Some(1), 0);
        for ts in 2..=100 {
            write(&buffer, "b", ts, Some(ts.cast_signed()), 0);
        }
        write(&buffer, "c", 101, Some(101), 0);
        let at = |ts| {
            buffer
                .scan_at(Bound::Unbounded, Bound::Unbounded, ts)
                .into_iter()
                .map(|(k, b)| {
                    let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                    (k, col.value(0))
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(at(1), vec![(Key::from("a"), 1)]);
        assert_eq!(at(50), vec![(Key::from("a"), 1), (Key::from("b"), 50)]);
        assert_eq!(
            at(101),
            vec![
                (Key::from("a"), 1),
                (Key::from("b"), 100),
                (Key::from("c"), 101)
            ]
        );
        let mut heads = Vec::new();
        let _ = buffer.for_each_intent::<()>(Bound::Unbounded, Bound::Unbounded, |k, state| {
            heads.push((k.clone(), state.latest_ts));
            ControlFlow::Continue(())
        });
        assert_eq!(
            heads,
            vec![
                (Key::from("a"), 1),
                (Key::from("b"), 100),
                (Key::from("c"), 101)
            ]
        );
        let stopped = buffer.for_each_intent(Bound::Unbounded, Bound::Unbounded, |k, _| {
            if *k == Key::from("b") {
                ControlFlow::Break(k.clone())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(stopped, ControlFlow::Break(Key::from("b")));
    }

    #[test]
    fn scan_returns_the_visible_version_per_key() {
        let buffer = TxnBuffer::new();
        write(&buffer, "a", 1, Some(1), 0);
        write(&buffer, "b", 2, Some(2), 0);
        write(&buffer, "a", 3, None, 0);
        write(&buffer, "c", 4, Some(4), 0);
        let keys = |ts| -> Vec<Key> {
            buffer
                .scan_at(Bound::Unbounded, Bound::Unbounded, ts)
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(keys(2), vec![Key::from("a"), Key::from("b")]);
        assert_eq!(keys(4), vec![Key::from("b"), Key::from("c")]);
        let (a, c) = (Key::from("a"), Key::from("c"));
        let bounded = buffer.scan_at(Bound::Excluded(&a), Bound::Excluded(&c), 4);
        assert_eq!(bounded.len(), 1);
    }

    #[test]
    fn intents_exclude_each_other() {
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        let held = buffer.lock(&key, 0).unwrap();
        assert!(matches!(
            buffer.lock(&key, 3),
            Err(crate::Error::IntentBusy { spins: 3, .. })
        ));
        assert!(buffer.intent_state(&key).unwrap().locked);
        held.install(7, Some(batch(1)), 0).unwrap();
        let state = buffer.intent_state(&key).unwrap();
        assert_eq!(
            state,
            IntentState {
                latest_ts: 7,
                locked: false
            }
        );
        drop(buffer.lock(&key, 0).unwrap());
        assert!(!buffer.intent_state(&key).unwrap().locked);
    }
}
