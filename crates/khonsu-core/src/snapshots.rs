//! Active-snapshot registry: which snapshots are still open, so the buffer
//! knows which old versions somebody may still read (the GC watermark).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_skiplist::SkipMap;
use crossbeam_utils::CachePadded;

use crate::timestamp::{Timestamp, TimestampOracle};

/// Slot value meaning "no snapshot registered here".
const FREE: u64 = u64::MAX;

/// Flag in a slot value: a `ReadCommitted` transaction, which reads at its
/// snapshot or any later timestamp.
const READS_LATEST: u64 = 1 << 62;

/// The points in time open snapshots read at (see [`SnapshotRegistry::pins`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pins {
    /// The clock's visible timestamp, read before the registry was scanned.
    /// A snapshot the scan missed reads at this timestamp or later, so every
    /// version newer than it must be kept, and so must the newest one at or
    /// below it.
    pub visible: Timestamp,
    /// Exact read timestamps of open snapshots, at most `visible`, newest
    /// first. (Snapshots newer than `visible` need nothing `visible` does
    /// not already keep.)
    pub points: Vec<Timestamp>,
    /// Every timestamp at or after this one is pinned (`ReadCommitted`
    /// transactions); `Timestamp::MAX` when there is none.
    pub from: Timestamp,
}

impl Pins {
    /// The oldest pinned point in time (the watermark these pins imply).
    #[must_use]
    pub fn oldest(&self) -> Timestamp {
        self.points
            .iter()
            .copied()
            .fold(self.visible.min(self.from), Timestamp::min)
    }
}

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
/// let (snapshot, ts) = registry.register(&oracle, false);
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

#[derive(Clone, Copy, Debug)]
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
    /// `reads_latest` marks a `ReadCommitted` transaction: it reads at later
    /// timestamps than its snapshot, so it pins every version visible at or
    /// after it rather than one point in time.
    ///
    /// The slot holds exactly the returned timestamp. It is stored before the
    /// clock is read again, and re-stored until the two agree, so a
    /// concurrent [`pins`](Self::pins) scan either sees the final value or
    /// read the clock before it was stored (and keeps what that clock value
    /// sees, which is what this snapshot sees).
    pub fn register(
        &self,
        oracle: &TimestampOracle,
        reads_latest: bool,
    ) -> (RegisteredSnapshot, Timestamp) {
        let flag = if reads_latest { READS_LATEST } else { 0 };
        let mut ts = oracle.visible();
        let mut registration = self.claim(ts | flag);
        loop {
            let now = oracle.visible();
            if now == ts {
                break;
            }
            ts = now;
            registration = self.update(registration, ts | flag);
        }
        (RegisteredSnapshot(registration), ts)
    }

    fn update(&self, registration: Registration, value: u64) -> Registration {
        match registration {
            Registration::Slot(index) => {
                if let Some(slot) = self.slots.get(index) {
                    slot.store(value, Ordering::SeqCst);
                }
                Registration::Slot(index)
            }
            Registration::Overflow(old, seq) => {
                // Insert the new value before removing the old one, so the
                // registration is never absent.
                self.overflow.insert((value, seq), ());
                self.overflow.remove(&(old, seq));
                Registration::Overflow(value, seq)
            }
        }
    }

    fn claim(&self, value: u64) -> Registration {
        let mut hint = SLOT_HINT.with(Cell::get);
        if hint >= self.slots.len() {
            hint = NEXT_HINT.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        }
        for offset in 0..self.slots.len() {
            let index = (hint + offset) % self.slots.len();
            if let Some(slot) = self.slots.get(index)
                && slot
                    .compare_exchange(FREE, value, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            {
                SLOT_HINT.with(|h| h.set(index));
                return Registration::Slot(index);
            }
        }
        let seq = self.overflow_seq.fetch_add(1, Ordering::Relaxed);
        self.overflow.insert((value, seq), ());
        Registration::Overflow(value, seq)
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
                    // `Release` (a plain store on x86, where `SeqCst` is a
                    // locked exchange): a scan that still sees the old
                    // value keeps what the snapshot pinned a little longer,
                    // which is always safe.
                    slot.store(FREE, Ordering::Release);
                }
            }
            Registration::Overflow(ts, seq) => {
                self.overflow.remove(&(ts, seq));
            }
        }
    }

    /// The oldest timestamp an open snapshot may read at. Every version
    /// that is neither newer than the watermark nor the newest one at or
    /// below it is unreachable and may be reclaimed.
    #[must_use]
    pub fn watermark(&self, oracle: &TimestampOracle) -> Timestamp {
        // Read the clock first: a snapshot registered after our scan of its
        // slot reads the clock after this load and so is not older.
        let mut oldest = oracle.visible();
        self.for_each(|ts, _| oldest = oldest.min(ts));
        oldest
    }

    /// The exact set of points in time open snapshots read at, for precise
    /// reclamation: a version must be kept if it is newer than
    /// [`Pins::visible`], or if one of the points (or a timestamp at or after
    /// [`Pins::from`]) falls between its commit and the next newer version of
    /// its key.
    #[must_use]
    pub fn pins(&self, oracle: &TimestampOracle) -> Pins {
        // Read the clock before scanning: a snapshot the scan misses
        // registered after this load and reads at `visible` or later.
        let visible = oracle.visible();
        let mut points = vec![visible];
        let mut from = Timestamp::MAX;
        self.for_each(|ts, reads_latest| {
            if reads_latest {
                from = from.min(ts);
            } else if ts <= visible {
                points.push(ts);
            }
        });
        points.sort_unstable_by(|a, b| b.cmp(a));
        points.dedup();
        Pins {
            visible,
            points,
            from,
        }
    }

    fn for_each(&self, mut visit: impl FnMut(Timestamp, bool)) {
        for slot in &*self.slots {
            let value = slot.load(Ordering::SeqCst);
            if value != FREE {
                visit(value & !READS_LATEST, value & READS_LATEST != 0);
            }
        }
        for entry in &self.overflow {
            let value = entry.key().0;
            visit(value & !READS_LATEST, value & READS_LATEST != 0);
        }
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
            .map(|_| registry.register(&oracle, false).0)
            .collect();
        assert_eq!(registry.active(), SLOTS + 10);
        for _ in 0..3 {
            oracle.allocate().unwrap().publish();
        }
        assert_eq!(registry.watermark(&oracle), 1);
        assert_eq!(registry.pins(&oracle).points, vec![4, 1]);
        assert_eq!(registry.pins(&oracle).visible, 4);
        let extra = registry.register(&oracle, true);
        assert_eq!(extra.1, 4);
        for s in held.drain(..) {
            registry.release(s);
        }
        assert_eq!(registry.watermark(&oracle), 4);
        assert_eq!(registry.pins(&oracle).from, 4);
        registry.release(extra.0);
        assert_eq!(registry.active(), 0);
    }
}
