//! The version chain: a key's committed versions, newest first, and the
//! precise pruning that keeps only the versions some snapshot can read.
//!
//! # Readers against pruning
//!
//! Readers walk the chain under an `sdd` guard and never take the key.
//! Only the holder of the key (a committer's intent, or a prune hold)
//! changes the chain: committers push on top, pruners unlink versions no
//! snapshot reads ([`Pins::keeps`]). A pruner unlinks a run of versions
//! between two kept ones, `a → x₁ → … → xₖ → c`, by pointing `a` at `c` and
//! then *every* `xᵢ` at `c` too:
//!
//! * a reader already standing on some `xᵢ` (its guard keeps the memory)
//!   steps straight to `c`, the next version it could be looking for: the
//!   version any registered snapshot reads is kept, so the reader's target
//!   is `c` or older (a snapshot past the maximum age is the exception, and
//!   its read fails afterwards);
//! * each `xᵢ` loses its last reference at once, so `sdd` retires the whole
//!   run in the same epoch (a still-threaded run would be freed one version
//!   per epoch, each release retiring the next), without a queue or a
//!   second pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::RecordBatch;
use sdd::{AtomicShared, Guard, Shared, Tag};

use super::reclaim::Tally;
use crate::{Pins, Timestamp, VersionedValue};

/// One committed version in a key's chain (newest first).
///
/// Everything but `older` is immutable. `older` only changes under the
/// key's hold, to skip versions no snapshot reads. Versions are reference
/// counted (`sdd::Shared`) and freed by `sdd`'s epoch-based collector once
/// unlinked and no reader's guard can still reach them, so readers walk the
/// chain without touching any reference count.
pub(super) struct Version {
    pub(super) ts: Timestamp,
    /// `None`: a tombstone.
    pub(super) value: Option<Arc<RecordBatch>>,
    /// Bytes the batch occupies (`RecordBatch::get_array_memory_size`), for
    /// the buffer's counters.
    pub(super) bytes: usize,
    pub(super) older: AtomicShared<Version>,
    /// `0`, or the commit timestamp of the oldest version pruned from just
    /// below this one: versions between this one and the next linked one
    /// were unlinked, and the oldest of them committed at this timestamp.
    /// Set (before the unlinking) on the kept version above a pruned run
    /// and on every unlinked version, so a validator asking which version
    /// first followed its snapshot ([`Head::first_after`]) is not misled by
    /// pruning, even one racing its walk.
    pub(super) pruned_below: AtomicU64,
}

impl Version {
    fn read(&self) -> VersionedValue {
        VersionedValue {
            commit_ts: self.ts,
            value: self.value.clone(),
        }
    }
}

/// A key's entry: its state word and its newest version.
#[derive(Default)]
pub(super) struct Head {
    pub(super) word: crate::sync::AtomicU64,
    pub(super) newest: AtomicShared<Version>,
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("word", &self.word)
            .finish_non_exhaustive()
    }
}

/// What one pruning pass over a key left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "four independent findings of one pass, each read by `revisit`"
)]
pub(super) struct Pruned {
    /// Whether the pass reached the end of the chain.
    pub(super) complete: bool,
    /// Whether the only version left is a tombstone: the key reads as
    /// absent everywhere, and its head can go once no open transaction
    /// predates the delete.
    pub(super) tombstone_only: bool,
    /// Whether a version below the newest is kept for an open snapshot's
    /// read point older than the pins' `visible` (rather than only for
    /// snapshots that may register at `visible` or later, which the key's
    /// next commit or the next sweep handles).
    pub(super) pinned: bool,
    /// Whether a version below the newest is kept only because it is newer
    /// than the pins' `visible`: the pins predate it (cached pins lag the
    /// clock by a few commits), and newer pins may free it.
    pub(super) early: bool,
}

impl Pruned {
    /// Whether a later pass may find more to reclaim: versions kept for
    /// open snapshots that will close, a tombstone whose head can go, or a
    /// chain this pass did not finish. (A key that only keeps the version
    /// visible at the pins' clock besides its newest is left to its next
    /// commit or to a sweep, so that the queue holds only keys open
    /// snapshots pin or that were pruned with pins older than their
    /// versions.)
    pub(super) fn revisit(self) -> bool {
        !self.complete || self.pinned || self.tombstone_only || self.early
    }
}

/// Unthreads a chain no reader can reach any more (a dropped head), so a
/// long chain is freed without recursing once per version.
fn cut(link: &AtomicShared<Version>) {
    let (mut tail, _) = link.swap((None, Tag::None), Ordering::AcqRel);
    while let Some(version) = tail {
        tail = if version.older.is_null(Ordering::Acquire) {
            None
        } else {
            version.older.swap((None, Tag::None), Ordering::AcqRel).0
        };
        drop(version);
    }
}

impl Head {
    /// Drops the head's reference to its versions (they are reclaimed by
    /// `sdd` once no guard can reach them); the caller holds the key and is
    /// unlinking the head.
    pub(super) fn let_go_of_versions(&self) {
        drop(self.newest.swap((None, Tag::None), Ordering::AcqRel));
    }
}

impl Drop for Head {
    fn drop(&mut self) {
        // The skiplist frees a head only when no entry (hence no reader)
        // holds it any more.
        cut(&self.newest);
    }
}

/// Unlinks the run of versions hanging below `above` down to `to`
/// (exclusive; `None`: the whole rest of the chain), pointing `above` and
/// every unlinked version at `to` (module docs). First every one of them is
/// marked with the oldest unlinked timestamp ([`Version::pruned_below`]), so
/// a walker that steps over the run still learns when the first version
/// after its snapshot committed. The caller holds the key; `to` is a
/// reference to the version that follows the run.
fn unlink_run(above: &Version, to: Option<&Shared<Version>>, tally: &Tally) {
    let stop = to.map(|v| std::ptr::from_ref::<Version>(v));
    let link = &above.older;
    {
        let guard = Guard::new();
        let mut oldest = Timestamp::MAX;
        let mut cursor = link.load(Ordering::Acquire, &guard).as_ref();
        while let Some(version) = cursor {
            if stop == Some(std::ptr::from_ref::<Version>(version)) {
                break;
            }
            oldest = oldest.min(version.ts);
            match version.pruned_below.load(Ordering::Acquire) {
                0 => {}
                below => oldest = oldest.min(below),
            }
            cursor = version.older.load(Ordering::Acquire, &guard).as_ref();
        }
        if oldest == Timestamp::MAX {
            return; // nothing between `above` and `to`
        }
        mark_pruned_below(above, oldest);
        let mut cursor = link.load(Ordering::Acquire, &guard).as_ref();
        while let Some(version) = cursor {
            if stop == Some(std::ptr::from_ref::<Version>(version)) {
                break;
            }
            mark_pruned_below(version, oldest);
            cursor = version.older.load(Ordering::Acquire, &guard).as_ref();
        }
    }
    let mut taken = link.swap((to.cloned(), Tag::None), Ordering::AcqRel).0;
    while let Some(dropped) = taken {
        if stop == Some(std::ptr::from_ref::<Version>(&dropped)) {
            // That is `to` itself: the reference comes back, nothing more.
            break;
        }
        tally.version_unlinked(dropped.bytes);
        taken = dropped
            .older
            .swap((to.cloned(), Tag::None), Ordering::AcqRel)
            .0;
        // `dropped` goes here: its last reference, so `sdd` retires it.
    }
}

/// Lowers `version`'s pruned-below mark to `ts` (the key's holder is the
/// only writer; the release pairs with the walker's acquire load after the
/// `older` swap that follows).
fn mark_pruned_below(version: &Version, ts: Timestamp) {
    let current = version.pruned_below.load(Ordering::Acquire);
    if current == 0 || ts < current {
        version.pruned_below.store(ts, Ordering::Release);
    }
}

impl Head {
    /// The first version in the chain committed at or before `ts`.
    #[inline]
    pub(super) fn read_at(&self, ts: Timestamp) -> VersionedValue {
        let guard = Guard::new();
        self.chain(&guard)
            .find(|version| version.ts <= ts)
            .map_or_else(VersionedValue::default, Version::read)
    }

    /// The versions linked from this head, newest first, valid while
    /// `guard` lives.
    #[inline]
    pub(super) fn chain<'g>(
        &self,
        guard: &'g Guard,
    ) -> impl Iterator<Item = &'g Version> + use<'g> {
        std::iter::successors(
            self.newest.load(Ordering::Acquire, guard).as_ref(),
            move |version| version.older.load(Ordering::Acquire, guard).as_ref(),
        )
    }

    /// When the first version committed after `ts` was committed, if any
    /// was, and whether that is exact: it is unless pruning removed
    /// versions on both sides of `ts` (then `ts + 1`, a lower bound). A `Serializable` validator's
    /// rw-antidependency: the transaction that overwrote the version a
    /// snapshot at `ts` read.
    pub(super) fn first_after(&self, ts: Timestamp) -> Option<(Timestamp, bool)> {
        let guard = Guard::new();
        let mut first: Option<Timestamp> = None;
        let mut cursor = self.newest.load(Ordering::Acquire, &guard).as_ref();
        while let Some(version) = cursor {
            if version.ts <= ts {
                break;
            }
            // The link before the mark: a pruner marks, then relinks, so a
            // walk that follows a new link sees the mark of the run it
            // skips (release/acquire).
            let older = version.older.load(Ordering::Acquire, &guard).as_ref();
            let mut earliest = version.ts;
            match version.pruned_below.load(Ordering::Acquire) {
                0 => {}
                below => earliest = earliest.min(below),
            }
            first = Some(first.map_or(earliest, |f| f.min(earliest)));
            cursor = older;
        }
        // A mark at or below `ts` comes from versions pruned on both sides
        // of it: the first one after it is not known, only that it came
        // after `ts`.
        first.map(|f| if f > ts { (f, true) } else { (ts + 1, false) })
    }

    pub(super) fn version_count(&self) -> usize {
        self.chain(&Guard::new()).count()
    }

    /// Pushes a version on top; returns the bytes of the version it covers
    /// (which only snapshots can read from now on), if there was one. The
    /// caller holds the key's intent.
    pub(super) fn push(&self, ts: Timestamp, value: Option<Arc<RecordBatch>>) -> Option<usize> {
        let guard = Guard::new();
        let below = self.newest.get_shared(Ordering::Acquire, &guard);
        let covered = below.as_ref().map(|v| v.bytes);
        let version = Version {
            ts,
            bytes: value.as_ref().map_or(0, |b| b.get_array_memory_size()),
            value,
            older: below.map_or_else(AtomicShared::null, AtomicShared::from),
            pruned_below: AtomicU64::new(0),
        };
        // Only the intent holder changes the head: a plain swap. The old
        // newest stays referenced by the new version's `older`.
        drop(
            self.newest
                .swap((Some(Shared::new(version)), Tag::None), Ordering::AcqRel),
        );
        covered
    }

    /// Unlinks every version no snapshot of `pins` reads, looking at most
    /// `walk_limit` versions below the newest, and drops trailing
    /// tombstones (with nothing older, a tombstone reads the same as no
    /// version) — except the newest: a key's last version stays while its
    /// head does, so a read of a deleted key still observes the delete's
    /// timestamp (a read-modify-write based on it must not be mistaken for
    /// one based on an older state). The caller holds the key.
    pub(super) fn prune(&self, pins: &Pins, walk_limit: usize, tally: &Tally) -> Pruned {
        let guard = Guard::new();
        let Some(newest) = self.newest.load(Ordering::Acquire, &guard).as_ref() else {
            return Pruned {
                complete: true,
                tombstone_only: false,
                pinned: false,
                early: false,
            };
        };
        // The last kept version (the run being dropped hangs from it) and
        // the last kept one holding a value.
        let mut kept_above: &Version = newest;
        let mut lowest_value = newest.value.is_some().then_some(newest);
        // The version just walked, and whether it and those after
        // `kept_above` are being dropped.
        let mut previous: &Version = newest;
        let mut dropping = false;
        let mut pinned = false;
        let mut early = false;
        let mut walked = 0_usize;
        let mut cursor = newest.older.load(Ordering::Acquire, &guard).as_ref();
        while let Some(version) = cursor {
            if walked == walk_limit {
                if dropping {
                    let to = previous.older.get_shared(Ordering::Acquire, &guard);
                    unlink_run(kept_above, to.as_ref(), tally);
                }
                return Pruned {
                    complete: false,
                    tombstone_only: false,
                    pinned,
                    early,
                };
            }
            walked += 1;
            if pins.keeps(version.ts, previous.ts) {
                if dropping {
                    let to = previous.older.get_shared(Ordering::Acquire, &guard);
                    unlink_run(kept_above, to.as_ref(), tally);
                    dropping = false;
                }
                // Kept for an open snapshot below `visible`, not only for
                // snapshots yet to register.
                pinned |= pins.held_by_snapshot(version.ts, previous.ts);
                early |= version.ts > pins.visible;
                kept_above = version;
                if version.value.is_some() {
                    lowest_value = Some(version);
                }
            } else {
                dropping = true;
            }
            previous = version;
            cursor = version.older.load(Ordering::Acquire, &guard).as_ref();
        }
        if dropping {
            unlink_run(kept_above, None, tally);
        }
        // Trailing tombstones: below the lowest kept value (or, when no
        // value is kept, below the newest).
        let last_needed = lowest_value.unwrap_or(newest);
        if !std::ptr::eq(last_needed, kept_above) {
            unlink_run(last_needed, None, tally);
        }
        // Left: the newest down to `last_needed`.
        Pruned {
            complete: true,
            tombstone_only: lowest_value.is_none(),
            pinned: pinned && !std::ptr::eq(last_needed, newest),
            early: early && !std::ptr::eq(last_needed, newest),
        }
    }
}
