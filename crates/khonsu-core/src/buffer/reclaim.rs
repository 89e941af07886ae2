//! Reclamation beyond the committer's own keys: the deferred queue that
//! later commits work through in bounded steps, the full sweep
//! ([`TxnBuffer::collect_garbage`]), and the counters behind
//! [`TxnBuffer::stats`].
//!
//! A committer prunes the keys it installed (a short walk, see
//! `KeyIntent::finish`). A key that still holds versions for open
//! snapshots, or only a tombstone, is queued (once: the `QUEUED` flag) with
//! the sequence number of the pins it was pruned with; every commit then
//! revisits a key or two from the queue with newer pins, so versions of
//! keys nobody writes again go once their snapshots close, with no thread
//! the user must start. Each step holds one key, walks at most
//! [`REVISIT_WALK_LIMIT`] versions, and frees nothing itself: unlinked
//! versions go to `sdd`'s collector.

use std::ops::{Bound, ControlFlow};
use std::sync::atomic::{AtomicI64, Ordering};

use crossbeam_epoch as epoch;
use crossbeam_queue::SegQueue;
use crossbeam_utils::CachePadded;

use super::TxnBuffer;
use super::chain::Head;
use super::intent::CountedHead;
use super::state;
use crate::{Key, Pins};

/// Versions a deferred revisit walks below a key's newest.
pub(super) const REVISIT_WALK_LIMIT: usize = 256;

/// Counter stripes (threads add to their own, stats sum them).
const STRIPES: usize = 16;

thread_local! {
    static STRIPE: usize = {
        use std::sync::atomic::AtomicUsize;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES
    };

    /// Calls of [`DeferredQueue::steal_turn`] on this thread.
    static TURNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// This thread's stripe.
fn my_stripe() -> usize {
    STRIPE.try_with(|s| *s).unwrap_or(0)
}

/// A committer revisits keys of another thread's stripe of the deferred
/// queue once in this many commits ...
const STEAL_EVERY: usize = 8;

/// ... and then up to this many of them: at most one revisit per commit on
/// average, enough to drain the stripe of a thread that stopped committing.
pub(super) const STEAL_BUDGET: usize = 8;

/// The deferred-reclamation queue: keys to revisit, each with the sequence
/// number of the pins it was last pruned with, striped by thread.
///
/// A committer queues the keys it installed on its own stripe and revisits
/// from it, so committers on different threads touch no common cache line
/// (one shared queue cost two threads of blind writes half their
/// throughput: every commit pushed or popped its head and tail). Once in
/// [`STEAL_EVERY`] commits a committer also revisits up to
/// [`STEAL_BUDGET`] keys of the next non-empty stripe of another thread, in
/// turn — whatever its own stripe holds — so keys queued by a thread that
/// stopped committing are revisited too.
#[derive(Debug)]
pub(super) struct DeferredQueue {
    stripes: [CachePadded<SegQueue<(Key, u64)>>; STRIPES],
}

impl Default for DeferredQueue {
    fn default() -> Self {
        Self {
            stripes: std::array::from_fn(|_| CachePadded::new(SegQueue::new())),
        }
    }
}

impl DeferredQueue {
    #[expect(
        clippy::indexing_slicing,
        reason = "the index is reduced modulo the array's length"
    )]
    fn stripe(&self, index: usize) -> &SegQueue<(Key, u64)> {
        &self.stripes[index % STRIPES]
    }

    /// This thread's stripe index.
    pub(super) fn own() -> usize {
        my_stripe()
    }

    /// Queues `key` on stripe `index`: this thread's ([`own`](Self::own))
    /// for a new entry, the one it came from for an entry put back.
    pub(super) fn push(&self, index: usize, key: Key, pruned_with: u64) {
        self.stripe(index).push((key, pruned_with));
    }

    /// The next entry of stripe `index`.
    pub(super) fn pop_from(&self, index: usize) -> Option<(Key, u64)> {
        self.stripe(index).pop()
    }

    /// Once in [`STEAL_EVERY`] calls on a thread: the first non-empty
    /// stripe of another thread, starting after the one it took last.
    pub(super) fn steal_turn(&self) -> Option<usize> {
        let turn = TURNS
            .try_with(|turns| {
                let n = turns.get().wrapping_add(1);
                turns.set(n);
                n
            })
            .unwrap_or(0);
        if !turn.is_multiple_of(STEAL_EVERY) {
            return None;
        }
        let own = Self::own();
        let start = turn / STEAL_EVERY;
        (0..STRIPES)
            .map(|i| (start + i) % STRIPES)
            .find(|&i| i != own && !self.stripe(i).is_empty())
    }

    /// Takes every entry queued when it is called.
    pub(super) fn drain(&self) -> Vec<Key> {
        let mut keys = Vec::new();
        for stripe in &self.stripes {
            for _ in 0..stripe.len() {
                match stripe.pop() {
                    Some((key, _)) => keys.push(key),
                    None => break,
                }
            }
        }
        keys
    }

    pub(super) fn len(&self) -> usize {
        self.stripes.iter().map(|s| s.len()).sum()
    }
}

/// Counts of what the buffer holds, kept as commits and reclamation go
/// (no walk): exact once quiescent, approximate while commits run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BufferStats {
    /// Keys the buffer tracks (each has a head entry; deleted keys count
    /// until their tombstone is reclaimed).
    pub keys: usize,
    /// Versions held, tombstones included.
    pub versions: usize,
    /// Versions that are not their key's newest: only open snapshots can
    /// read them.
    pub history_versions: usize,
    /// Bytes of the batches of those versions (Arrow's
    /// `get_array_memory_size`; a batch shared by several versions counts
    /// once per version).
    pub history_bytes: usize,
}

#[derive(Debug, Default)]
struct Stripe {
    keys: AtomicI64,
    versions: AtomicI64,
    history: AtomicI64,
    history_bytes: AtomicI64,
}

/// The buffer's counters, striped so committers on different threads do
/// not share a cache line.
#[derive(Debug)]
pub(super) struct Tally {
    stripes: [CachePadded<Stripe>; STRIPES],
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            stripes: std::array::from_fn(|_| CachePadded::default()),
        }
    }
}

fn signed(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Tally {
    #[expect(
        clippy::indexing_slicing,
        reason = "the index is reduced modulo the array's length"
    )]
    fn stripe(&self) -> &Stripe {
        &self.stripes[my_stripe() % STRIPES]
    }

    /// A version was pushed on top of one of `covered` bytes (`None`: the
    /// key had no version; `new_key`: nor a head that counted).
    pub(super) fn version_pushed(&self, covered: Option<usize>, new_key: bool) {
        let s = self.stripe();
        s.versions.fetch_add(1, Ordering::Relaxed);
        if new_key {
            s.keys.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(bytes) = covered {
            s.history.fetch_add(1, Ordering::Relaxed);
            s.history_bytes.fetch_add(signed(bytes), Ordering::Relaxed);
        }
    }

    /// A version below its key's newest was unlinked.
    pub(super) fn version_unlinked(&self, bytes: usize) {
        let s = self.stripe();
        s.versions.fetch_sub(1, Ordering::Relaxed);
        s.history.fetch_sub(1, Ordering::Relaxed);
        s.history_bytes.fetch_sub(signed(bytes), Ordering::Relaxed);
    }

    /// A key's head went, with its last `versions` (newest ones).
    pub(super) fn key_unlinked(&self, versions: usize) {
        let s = self.stripe();
        s.keys.fetch_sub(1, Ordering::Relaxed);
        s.versions.fetch_sub(signed(versions), Ordering::Relaxed);
    }

    pub(super) fn sum(&self) -> BufferStats {
        let total = |field: fn(&Stripe) -> &AtomicI64| {
            let sum: i64 = self
                .stripes
                .iter()
                .map(|s| field(s).load(Ordering::Relaxed))
                .sum();
            usize::try_from(sum).unwrap_or(0)
        };
        BufferStats {
            keys: total(|s| &s.keys),
            versions: total(|s| &s.versions),
            history_versions: total(|s| &s.history),
            history_bytes: total(|s| &s.history_bytes),
        }
    }
}

impl TxnBuffer {
    /// The key's head, counted, if the key is there.
    fn counted(&self, key: &Key) -> Option<CountedHead<'_>> {
        let guard = &epoch::pin();
        Some(CountedHead::new(self.heads.get(key, guard)?.pin()?))
    }

    /// Takes the key for reclamation if neither a committer nor another
    /// reclaimer holds it right now.
    #[cfg(test)]
    pub(super) fn try_prune_hold(&self, key: &Key) -> Option<super::intent::PruneHold<'_>> {
        let entry = self.counted(key)?;
        match state::take(&entry.head().word, state::PRUNING) {
            state::Taken::Yes(latest_ts) => Some(super::intent::PruneHold::new(entry, latest_ts)),
            _ => None,
        }
    }

    /// Revisits up to `budget` keys queued on this thread's stripe of the
    /// deferred queue with `pins`, and once in eight calls up to eight keys
    /// of another thread's stripe (so a thread that stopped committing does
    /// not leave its keys behind). Called
    /// by committers after they publish; cheap when the stripe is empty,
    /// and it stops at keys last pruned with these very pins (nothing new
    /// to find).
    pub fn collect_deferred(&self, pins: &Pins, budget: usize) {
        self.collect_stripe(DeferredQueue::own(), pins, budget);
        if let Some(other) = self.deferred.steal_turn() {
            self.collect_stripe(other, pins, STEAL_BUDGET);
        }
    }

    fn collect_stripe(&self, stripe: usize, pins: &Pins, budget: usize) {
        for _ in 0..budget {
            let Some((key, pruned_with)) = self.deferred.pop_from(stripe) else {
                return;
            };
            if pins.seq != 0 && pins.seq <= pruned_with {
                // Queued with these pins (and a stripe is roughly in that
                // order): keep it queued, stop here.
                self.deferred.push(stripe, key, pruned_with);
                return;
            }
            let Some(entry) = self.counted(&key) else {
                continue; // gone
            };
            state::clear_queued(&entry.head().word);
            self.revisit(entry, pins, REVISIT_WALK_LIMIT, pruned_with);
        }
    }

    /// One reclamation step on a key: prune, and drop the head if only a
    /// tombstone no open transaction predates is left; queue it again if
    /// more may come free later.
    fn revisit(&self, entry: CountedHead<'_>, pins: &Pins, walk_limit: usize, queued_with: u64) {
        let state::Taken::Yes(latest_ts) = state::take(&entry.head().word, state::PRUNING) else {
            // A committer holds it (and prunes it itself), or the key is
            // going. Keep it queued unless it is going.
            self.enqueue_head(&entry, queued_with);
            return;
        };
        let hold = super::intent::PruneHold::new(entry, latest_ts);
        let pruned = hold.prune(pins, walk_limit, self);
        // The head carries the key's newest commit timestamp, which
        // write-write checks of open transactions compare with their
        // snapshots: drop it only when no open transaction predates it.
        if pruned.tombstone_only && hold.latest_ts <= pins.oldest() {
            hold.unlink_head(self);
            return;
        }
        if pruned.revisit() {
            self.enqueue_head(&hold.entry, pins.seq);
        }
    }

    /// Reclaims every version that no open snapshot can see, across all
    /// keys — including versions between two open snapshots — and drops keys
    /// whose last version is a tombstone no open transaction predates. Keys
    /// held right now are skipped (their holder prunes them). Each key is
    /// held only while its own chain is pruned, so a concurrent commit
    /// waits at most for one chain, never for the sweep.
    pub fn collect_garbage(&self, pins: &Pins) {
        // The sweep visits every key, so the queue starts afresh: what
        // still needs a later pass is queued again by the sweep (a key
        // left queued would be counted, and revisited, for nothing).
        for key in self.deferred.drain() {
            if let Some(entry) = self.heads.get(&key, &epoch::pin()) {
                state::clear_queued(&entry.value().word);
            }
        }
        let mut keys: Vec<Key> = Vec::new();
        let _ = self.walk_heads::<()>(Bound::Unbounded, Bound::Unbounded, |key, _| {
            keys.push(key.clone());
            ControlFlow::Continue(())
        });
        for key in &keys {
            if let Some(entry) = self.counted(key) {
                self.revisit(entry, pins, usize::MAX, pins.seq);
            }
        }
        // Hand this thread's deferred frees to the epoch collectors: the
        // skiplist's (crossbeam-epoch) and the versions' (sdd).
        crossbeam_epoch::pin().flush();
        sdd::Guard::new().accelerate();
    }

    /// Queues a key for deferred reclamation (once: the `QUEUED` flag),
    /// noting the pins it was last pruned with.
    pub(super) fn enqueue_head(&self, head: &CountedHead<'_>, pruned_with: u64) {
        if state::mark_queued(&head.head().word) {
            self.deferred
                .push(DeferredQueue::own(), head.key().clone(), pruned_with);
        }
    }

    /// Counts of keys and versions, from counters kept as commits and
    /// reclamation go: O(1), cheap enough to call often.
    #[must_use]
    pub fn stats(&self) -> BufferStats {
        self.tally.sum()
    }

    /// Keys and versions counted by walking every chain (O(keys +
    /// versions)), for tests and for checking the counters.
    #[must_use]
    pub fn count_versions(&self) -> (usize, usize) {
        let (mut keys, mut versions) = (0, 0);
        let _ = self.walk_heads::<()>(Bound::Unbounded, Bound::Unbounded, |_, head: &Head| {
            let n = head.version_count();
            if n > 0 || state::load(&head.word) & state::TS_MASK != 0 {
                keys += 1;
            }
            versions += n;
            ControlFlow::Continue(())
        });
        (keys, versions)
    }

    /// Keys queued for deferred reclamation.
    #[must_use]
    pub fn deferred_len(&self) -> usize {
        self.deferred.len()
    }
}
