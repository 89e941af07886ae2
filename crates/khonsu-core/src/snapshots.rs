//! Active-snapshot registry: which snapshots are still open, so the buffer
//! knows which old versions somebody may still read (the GC watermark).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_skiplist::SkipMap;
use crossbeam_utils::CachePadded;

use crate::timestamp::{Timestamp, TimestampOracle};

/// Slot value meaning "no snapshot registered here".
const FREE: u64 = u64::MAX;

/// Number of cache-line-sized slots; more concurrent snapshots than this
/// spill into an ordered overflow map.
const SLOTS: usize = 128;

thread_local! {
    /// Where this thread found a free slot last time: with one transaction
    /// per thread at a time, registration is one uncontended CAS.
    static SLOT_HINT: Cell<usize> = const { Cell::new(usize::MAX) };
}

static NEXT_HINT: AtomicUsize = AtomicUsize::new(0);

/// The registry of open snapshots.
///
/// Registration is lock-free: a thread claims a cache-padded slot with one
/// compare-and-swap (its own slot from last time, normally) and stores its
/// snapshot timestamp there; when all slots are taken, snapshots spill into
/// an ordered `SkipMap`. The watermark — the oldest timestamp any open
/// snapshot may read at — is computed by scanning the slots, which only
/// garbage collection does.
///
/// ```
/// use khonsu_core::{SnapshotRegistry, TimestampOracle};
///
/// let oracle = TimestampOracle::new(5);
/// let registry = SnapshotRegistry::new();
/// let (snapshot, ts) = registry.register(&oracle);
/// assert_eq!(ts, 5);
/// oracle.allocate().unwrap().publish();
/// assert_eq!(registry.watermark(&oracle), 5); // the open snapshot pins 5
/// registry.release(snapshot);
/// assert_eq!(registry.watermark(&oracle), 6);
/// ```
#[derive(Debug)]
pub struct SnapshotRegistry {
    slots: Box<[CachePadded<AtomicU64>]>,
    overflow: SkipMap<(Timestamp, u64), ()>,
    overflow_seq: AtomicU64,
}

/// A registered snapshot; give it back with [`SnapshotRegistry::release`].
#[derive(Debug)]
#[must_use = "a registered snapshot pins old versions until it is released"]
pub struct RegisteredSnapshot(Registration);

#[derive(Debug)]
enum Registration {
    Slot(usize),
    Overflow(Timestamp, u64),
}

impl Default for SnapshotRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapshotRegistry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self {
            slots: (0..SLOTS)
                .map(|_| CachePadded::new(AtomicU64::new(FREE)))
                .collect(),
            overflow: SkipMap::new(),
            overflow_seq: AtomicU64::new(0),
        }
    }

    /// Registers a snapshot and returns it with its timestamp.
    ///
    /// The registered value is published before the snapshot timestamp is
    /// read, so a concurrent [`watermark`](Self::watermark) either sees this
    /// registration or computes a watermark no newer than the snapshot.
    pub fn register(&self, oracle: &TimestampOracle) -> (RegisteredSnapshot, Timestamp) {
        let provisional = oracle.visible();
        let registration = self.claim(provisional);
        // Re-read after publishing the registration (both SeqCst): any
        // watermark computed without seeing our slot read `visible` before
        // we stored it, so it is <= this timestamp.
        let snapshot = oracle.visible();
        (RegisteredSnapshot(registration), snapshot)
    }

    fn claim(&self, ts: Timestamp) -> Registration {
        let mut hint = SLOT_HINT.with(Cell::get);
        if hint >= self.slots.len() {
            hint = NEXT_HINT.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        }
        for offset in 0..self.slots.len() {
            let index = (hint + offset) % self.slots.len();
            if let Some(slot) = self.slots.get(index)
                && slot
                    .compare_exchange(FREE, ts, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            {
                SLOT_HINT.with(|h| h.set(index));
                return Registration::Slot(index);
            }
        }
        let seq = self.overflow_seq.fetch_add(1, Ordering::Relaxed);
        self.overflow.insert((ts, seq), ());
        Registration::Overflow(ts, seq)
    }

    /// Gives a snapshot back.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "taking the registration by value makes a double release impossible"
    )]
    pub fn release(&self, snapshot: RegisteredSnapshot) {
        match snapshot.0 {
            Registration::Slot(index) => {
                if let Some(slot) = self.slots.get(index) {
                    slot.store(FREE, Ordering::SeqCst);
                }
            }
            Registration::Overflow(ts, seq) => {
                self.overflow.remove(&(ts, seq));
            }
        }
    }

    /// The oldest timestamp an open snapshot may read at. Every version
    /// that is not the newest one at or below the watermark, and not newer
    /// than it, is unreachable and may be reclaimed.
    #[must_use]
    pub fn watermark(&self, oracle: &TimestampOracle) -> Timestamp {
        // Read the clock first: a snapshot registered after our scan of its
        // slot reads the clock after this load and so is not older.
        let mut oldest = oracle.visible();
        for slot in &*self.slots {
            oldest = oldest.min(slot.load(Ordering::SeqCst));
        }
        if let Some(entry) = self.overflow.front() {
            oldest = oldest.min(entry.key().0);
        }
        oldest
    }

    /// How many snapshots are registered right now.
    #[must_use]
    pub fn active(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.load(Ordering::SeqCst) != FREE)
            .count()
            + self.overflow.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_snapshots_count_toward_the_watermark() {
        let oracle = TimestampOracle::new(1);
        let registry = SnapshotRegistry::new();
        let mut held: Vec<_> = (0..SLOTS + 10)
            .map(|_| registry.register(&oracle).0)
            .collect();
        assert_eq!(registry.active(), SLOTS + 10);
        for _ in 0..3 {
            oracle.allocate().unwrap().publish();
        }
        assert_eq!(registry.watermark(&oracle), 1);
        let extra = registry.register(&oracle);
        assert_eq!(extra.1, 4);
        for s in held.drain(..) {
            registry.release(s);
        }
        assert_eq!(registry.watermark(&oracle), 4);
        registry.release(extra.0);
        assert_eq!(registry.active(), 0);
    }
}
