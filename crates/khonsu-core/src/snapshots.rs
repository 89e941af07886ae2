//! Active-snapshot registry: which snapshots are open and which points in
//! time they read at, so the buffer keeps exactly the versions somebody may
//! still read (see [`Pins`]).
//!
//! # The registration handshake
//!
//! A reclaimer reads the clock (`visible`), then scans the registry. A
//! snapshot the scan misses must read at `visible` or later, so that
//! keeping every version newer than `visible`, and the newest one at or
//! below it, keeps what that snapshot reads. Registration stores its
//! timestamp, then reads the clock again, and repeats until the two agree.
//! Both sides are a store followed by a load of the other side's location
//! (the store-buffering shape), which only `SeqCst` orders:
//!
//! * slots: the registration's slot store and the scan's slot load are
//!   `SeqCst` atomics, as are both clock loads. If the scan's load of the
//!   slot precedes the registration's store in the single `SeqCst` order,
//!   then the scan's clock load precedes the registration's final clock
//!   load, which therefore reads `visible` or later.
//! * overflow (a `SkipMap`, whose own loads and stores are not `SeqCst`):
//!   a `SeqCst` fence after the insert (before the registration reads the
//!   clock again) and a `SeqCst` fence after the scan's clock load (before
//!   it walks the map) give the same argument through the fence rules: if
//!   the walk misses the insert, the scan's fence precedes the
//!   registration's fence, so the registration's clock load sees at least
//!   the value the scan's clock load saw.
//!
//! A `ReadCommitted` transaction reads at a new timestamp on every read;
//! before each read it advances its slot's *read point* with the same
//! handshake ([`SnapshotRegistry::advance`]), so it pins only the version
//! each read needs, never everything since it began.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crossbeam_skiplist::SkipMap;
use crossbeam_utils::CachePadded;
use sdd::{AtomicShared, Guard, Shared, Tag};

use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use crate::timestamp::{Timestamp, TimestampOracle};

/// Slot value meaning "no snapshot registered here".
const FREE: u64 = u64::MAX;

/// Slot value while a registration fills in the slot's other fields: scans
/// skip it like a free slot (the registration reads the clock after its
/// final store, so it reads at the scan's `visible` or later).
const CLAIMING: u64 = u64::MAX - 1;

/// Flag in a slot value: a `ReadCommitted` transaction, whose read point
/// moves forward with each read.
const READS_LATEST: u64 = 1 << 62;

/// How far (in commits) the clock may move past the cached pins' `visible`
/// before a committer computes them again (see
/// [`SnapshotRegistry::with_recent_pins`]). Versions newer than the cached
/// `visible` are all kept, so this bounds how many extra versions stale pins
/// keep; a refresh costs a scan of the slots in use.
const REFRESH_LAG: Timestamp = 4;

/// How far the clock may move past the cached pins while another committer
/// refreshes them before a committer scans for itself (a refresher preempted
/// mid-scan would otherwise let every version since then pile up).
const STALE_LIMIT: Timestamp = 16 * REFRESH_LAG;

/// The points in time open snapshots read at: what reclamation must keep.
///
/// A version must be kept if it is newer than [`visible`](Self::visible),
/// or if one of the [`points`](Self::points) falls between its commit and
/// the next newer version of its key (it is the version that snapshot
/// reads). Stale pins are safe: a snapshot that closed since only keeps
/// versions longer, and one that opened since reads at `visible` or later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pins {
    /// The clock's visible timestamp, read before the registry was scanned.
    /// A snapshot the scan missed reads at this timestamp or later, so every
    /// version newer than it must be kept, and so must the newest one at or
    /// below it.
    pub visible: Timestamp,
    /// Read points of open snapshots at or below `visible`, newest first,
    /// `visible` itself included. (Points above `visible` need nothing
    /// `visible` does not already keep.)
    pub points: Vec<Timestamp>,
    /// The oldest *start* timestamp of an open transaction
    /// (`Timestamp::MAX` when there is none). A `ReadCommitted` transaction
    /// reads at later points but its blind writes still conflict with any
    /// commit after its start, so a key's head (which carries the key's
    /// newest commit timestamp) stays while a transaction predates it.
    pub floor: Timestamp,
    /// Which refresh of the registry's cached pins these are (0: computed
    /// outside the cache); deferred reclamation revisits a key only with
    /// newer pins than those it was last pruned with.
    pub seq: u64,
}

impl Pins {
    /// Pins with no open snapshot besides readers at `visible` or later,
    /// plus snapshots reading at `points` (any order).
    #[must_use]
    pub fn new(visible: Timestamp, points: impl IntoIterator<Item = Timestamp>) -> Self {
        let mut points: Vec<Timestamp> = points.into_iter().filter(|p| *p <= visible).collect();
        points.push(visible);
        points.sort_unstable_by(|a, b| b.cmp(a));
        points.dedup();
        let floor = points.last().copied().unwrap_or(visible);
        Self {
            visible,
            points,
            floor,
            seq: 0,
        }
    }

    /// The oldest point in time an open transaction depends on: no read
    /// point and no transaction start is older.
    #[must_use]
    pub fn oldest(&self) -> Timestamp {
        self.points
            .iter()
            .copied()
            .fold(self.visible.min(self.floor), Timestamp::min)
    }

    /// Whether an open snapshot reading below `visible` reads the version
    /// committed at `ts` whose next newer version was committed at
    /// `newer_ts` (it stays until that snapshot closes; a version kept only
    /// for snapshots that may register at `visible` or later goes with the
    /// key's next commit).
    #[must_use]
    pub fn held_by_snapshot(&self, ts: Timestamp, newer_ts: Timestamp) -> bool {
        self.point_in(ts, newer_ts.min(self.visible))
    }

    /// Whether some point lies in `[ts, end)` (points are newest first: the
    /// first one below `end` is the only candidate).
    fn point_in(&self, ts: Timestamp, end: Timestamp) -> bool {
        let below = self.points.partition_point(|p| *p >= end);
        self.points.get(below).is_some_and(|p| *p >= ts)
    }

    /// Whether a version committed at `ts`, whose next newer version of the
    /// same key was committed at `newer_ts` ([`Timestamp::MAX`] for the
    /// newest), can still be read by some snapshot.
    #[must_use]
    #[inline]
    pub fn keeps(&self, ts: Timestamp, newer_ts: Timestamp) -> bool {
        ts > self.visible || newer_ts == Timestamp::MAX || self.point_in(ts, newer_ts)
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

/// One registration slot, on its own cache line.
#[derive(Debug)]
struct Slot {
    /// The snapshot's start timestamp (with `READS_LATEST` for a
    /// `ReadCommitted` transaction), [`FREE`] or [`CLAIMING`].
    ts: AtomicU64,
    /// The timestamp the transaction reads at now: its start for snapshot
    /// levels, its latest read for `ReadCommitted`.
    point: AtomicU64,
    /// When it registered, in nanoseconds since the registry was created.
    started: AtomicU64,
}

/// A snapshot registered in the overflow map (the map's key holds its start
/// timestamp and a sequence number).
#[derive(Debug)]
struct Overflow {
    point: AtomicU64,
    started: u64,
}

/// The newest registration seen for a snapshot, as a scan reads it.
#[derive(Clone, Copy, Debug)]
struct Seen {
    start: Timestamp,
    point: Timestamp,
    started: u64,
}

/// The open snapshot with the oldest start, as [`SnapshotRegistry::oldest`]
/// reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OldestSnapshot {
    /// Its start timestamp.
    pub ts: Timestamp,
    /// How long ago it registered.
    pub age: Duration,
}

/// The registry of open snapshots.
///
/// Registration is lock-free: a thread claims a cache-padded slot with one
/// compare-and-swap (its own slot from last time, normally) and stores its
/// snapshot timestamp there; when all slots are taken, snapshots spill into
/// an ordered `SkipMap`. Scans ([`pins`](Self::pins)) read the slots up to
/// the highest one ever claimed, so their cost follows the number of
/// threads, not `SLOTS`. Committers use recent pins from a cache
/// ([`with_recent_pins`](Self::with_recent_pins)) refreshed every few
/// commits.
///
/// ```
/// use khonsu_core::{SnapshotRegistry, TimestampOracle};
///
/// let oracle = TimestampOracle::new(5);
/// let registry = SnapshotRegistry::new();
/// let (snapshot, ts) = registry.register(&oracle, false);
/// assert_eq!(ts, 5);
/// oracle.allocate().unwrap().publish();
/// assert_eq!(registry.pins(&oracle).points, vec![6, 5]); // the open snapshot pins 5
/// registry.release(snapshot);
/// assert_eq!(registry.pins(&oracle).points, vec![6]);
/// ```
#[derive(Debug)]
pub struct SnapshotRegistry {
    slots: Box<[CachePadded<Slot>]>,
    /// One past the highest slot index ever claimed.
    high_water: CachePadded<AtomicUsize>,
    overflow: SkipMap<(Timestamp, u64), Overflow>,
    overflow_seq: AtomicU64,
    /// Origin of the `started` times.
    created: Instant,
    /// Snapshots older than this stop pinning versions (and fail their next
    /// read, see [`expired`](Self::expired)).
    max_age: Option<Duration>,
    /// Recent pins for committers, on a cache line of their own: every
    /// commit reads it, and a refresh writes it, which must not make every
    /// `register` (reading the fields above) miss its cache.
    pins_cache: CachePadded<PinsCache>,
}

/// The cached pins, and whether one committer is computing new ones.
#[derive(Debug)]
struct PinsCache {
    cache: AtomicShared<Pins>,
    refreshing: AtomicBool,
    refreshes: AtomicU64,
}

/// A registered snapshot; give it back with [`SnapshotRegistry::release`].
#[derive(Debug)]
#[must_use = "a registered snapshot pins old versions until it is released"]
pub struct RegisteredSnapshot {
    registration: Registration,
    /// When it registered (nanoseconds since the registry was created).
    started: u64,
    /// The read point stored last (`ReadCommitted` advances it).
    point: Timestamp,
}

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
    /// An empty registry whose snapshots never expire.
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_age(None)
    }

    /// An empty registry. With `max_age`, a snapshot older than it no
    /// longer pins versions: reclamation may free what it reads, and its
    /// transaction must check [`expired`](Self::expired) after every read
    /// and fail instead of returning what it read.
    #[must_use]
    pub fn with_max_age(max_age: Option<Duration>) -> Self {
        Self {
            slots: (0..SLOTS)
                .map(|_| {
                    CachePadded::new(Slot {
                        ts: AtomicU64::new(FREE),
                        point: AtomicU64::new(0),
                        started: AtomicU64::new(0),
                    })
                })
                .collect(),
            high_water: CachePadded::new(AtomicUsize::new(0)),
            overflow: SkipMap::new(),
            overflow_seq: AtomicU64::new(0),
            created: Instant::now(),
            max_age,
            pins_cache: CachePadded::new(PinsCache {
                cache: AtomicShared::null(),
                refreshing: AtomicBool::new(false),
                refreshes: AtomicU64::new(0),
            }),
        }
    }

    /// The maximum snapshot age this registry was built with.
    #[must_use]
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.created.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Registers a snapshot and returns it with its timestamp.
    ///
    /// `reads_latest` marks a `ReadCommitted` transaction: it reads at later
    /// timestamps than its start, each announced with
    /// [`advance`](Self::advance).
    ///
    /// The slot holds exactly the returned timestamp. It is stored before the
    /// clock is read again, and re-stored until the two agree (see the
    /// module documentation for why that suffices).
    pub fn register(
        &self,
        oracle: &TimestampOracle,
        reads_latest: bool,
    ) -> (RegisteredSnapshot, Timestamp) {
        let flag = if reads_latest { READS_LATEST } else { 0 };
        let started = self.now_nanos();
        let mut ts = oracle.visible();
        let mut registration = self.claim(ts, flag, started);
        loop {
            let now = oracle.visible();
            if now == ts {
                break;
            }
            ts = now;
            registration = self.update(registration, ts, flag, started);
        }
        let snapshot = RegisteredSnapshot {
            registration,
            started,
            point: ts,
        };
        (snapshot, ts)
    }

    fn update(
        &self,
        registration: Registration,
        ts: Timestamp,
        flag: u64,
        started: u64,
    ) -> Registration {
        match registration {
            Registration::Slot(index) => {
                if let Some(slot) = self.slots.get(index) {
                    // Point first: a scan that sees the new start (SeqCst,
                    // after this store) sees this point or a later one.
                    slot.point.store(ts, Ordering::SeqCst);
                    slot.ts.store(ts | flag, Ordering::SeqCst);
                }
                Registration::Slot(index)
            }
            Registration::Overflow(old, seq) => {
                // Insert the new value before removing the old one, so the
                // registration is never absent.
                self.insert_overflow(ts | flag, seq, ts, started);
                self.overflow.remove(&(old, seq));
                Registration::Overflow(ts | flag, seq)
            }
        }
    }

    fn insert_overflow(&self, value: u64, seq: u64, point: Timestamp, started: u64) {
        self.overflow.insert(
            (value, seq),
            Overflow {
                point: AtomicU64::new(point),
                started,
            },
        );
        // Part of the handshake (module docs): orders the insert before the
        // registration's next clock load, against the scan's fence.
        fence(Ordering::SeqCst);
    }

    fn claim(&self, ts: Timestamp, flag: u64, started: u64) -> Registration {
        let hint = SLOT_HINT.with(Cell::get);
        // A thread's own slot from last time first; a new thread takes the
        // lowest free slot, so the slots in use stay dense and scans short.
        let candidates = std::iter::once(hint)
            .filter(|h| *h < self.slots.len())
            .chain(0..self.slots.len());
        for index in candidates {
            let Some(slot) = self.slots.get(index) else {
                continue;
            };
            if slot.ts.load(Ordering::Relaxed) != FREE
                || slot
                    .ts
                    .compare_exchange(FREE, CLAIMING, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            // Only the claimer writes these while the slot reads CLAIMING;
            // the SeqCst store below publishes them (a scan that loads the
            // start loads them afterwards).
            slot.started.store(started, Ordering::Relaxed);
            slot.point.store(ts, Ordering::Relaxed);
            slot.ts.store(ts | flag, Ordering::SeqCst);
            // `SeqCst` (a plain load on x86): a raise by another thread that
            // this load sees must also be ordered before our clock load,
            // against a scan's `SeqCst` load of `high_water`.
            if index >= self.high_water.load(Ordering::SeqCst) {
                // Before the caller's next clock load (SeqCst RMW): a scan
                // that misses this raise also missed the slot store above,
                // and the handshake covers that case.
                self.high_water.fetch_max(index + 1, Ordering::SeqCst);
            }
            SLOT_HINT.with(|h| h.set(index));
            return Registration::Slot(index);
        }
        let seq = self.overflow_seq.fetch_add(1, Ordering::Relaxed);
        self.insert_overflow(ts | flag, seq, ts, started);
        Registration::Overflow(ts | flag, seq)
    }

    /// Moves a `ReadCommitted` snapshot's read point to the clock's visible
    /// timestamp and returns it: the transaction reads at exactly that
    /// timestamp next, and pins nothing older than it (but its start, for
    /// the heads its blind writes are checked against: [`Pins::floor`]).
    pub fn advance(
        &self,
        snapshot: &mut RegisteredSnapshot,
        oracle: &TimestampOracle,
    ) -> Timestamp {
        let mut ts = oracle.visible();
        while ts != snapshot.point {
            // Store, then read the clock again (the handshake of the module
            // docs): a scan that missed this store reads `visible` no newer
            // than what this transaction reads at.
            match snapshot.registration {
                Registration::Slot(index) => {
                    if let Some(slot) = self.slots.get(index) {
                        slot.point.store(ts, Ordering::SeqCst);
                    }
                }
                Registration::Overflow(value, seq) => {
                    if let Some(entry) = self.overflow.get(&(value, seq)) {
                        entry.value().point.store(ts, Ordering::SeqCst);
                    }
                }
            }
            snapshot.point = ts;
            ts = oracle.visible();
        }
        ts
    }

    /// Gives a snapshot back.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "taking the registration by value makes a double release impossible"
    )]
    pub fn release(&self, snapshot: RegisteredSnapshot) {
        match snapshot.registration {
            Registration::Slot(index) => {
                if let Some(slot) = self.slots.get(index) {
                    // `Release`, not `SeqCst` (a plain store on x86, where
                    // `SeqCst` is a locked exchange): no handshake needs it.
                    // A scan that still sees the old value keeps what the
                    // snapshot pinned a little longer, which is always
                    // safe; the next claimer's `Acquire` CAS pairs with it.
                    slot.ts.store(FREE, Ordering::Release);
                }
            }
            Registration::Overflow(ts, seq) => {
                self.overflow.remove(&(ts, seq));
            }
        }
    }

    /// How long ago `snapshot` registered, if that is longer than the
    /// registry's maximum age: reclamation may have freed what it reads.
    /// Check it *after* a read (a read that raced reclamation is caught:
    /// reclamation decided at a time when the snapshot was already too old).
    #[must_use]
    pub fn expired(&self, snapshot: &RegisteredSnapshot) -> Option<Duration> {
        let max = self.max_age?;
        let age = Duration::from_nanos(self.now_nanos().saturating_sub(snapshot.started));
        (age > max).then_some(age)
    }

    /// The oldest timestamp an open snapshot reads at or depends on:
    /// [`Pins::oldest`] of fresh pins.
    #[must_use]
    pub fn watermark(&self, oracle: &TimestampOracle) -> Timestamp {
        self.pins(oracle).oldest()
    }

    /// The exact set of points in time open snapshots read at (see
    /// [`Pins`]), scanned now. Snapshots older than the maximum age are left
    /// out.
    #[must_use]
    pub fn pins(&self, oracle: &TimestampOracle) -> Pins {
        // The clock before the scan (module docs).
        let visible = oracle.visible();
        let cutoff = self.max_age.map(|max| {
            let max = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
            self.now_nanos().saturating_sub(max)
        });
        let mut points = vec![visible];
        let mut floor = Timestamp::MAX;
        self.for_each(|seen| {
            if cutoff.is_some_and(|cutoff| seen.started < cutoff) {
                return;
            }
            floor = floor.min(seen.start);
            if seen.point <= visible {
                points.push(seen.point);
            }
        });
        points.sort_unstable_by(|a, b| b.cmp(a));
        points.dedup();
        Pins {
            visible,
            points,
            floor,
            seq: 0,
        }
    }

    /// Runs `f` with recent pins: the cached ones while the clock has moved
    /// less than `REFRESH_LAG` commits past them, else fresh ones (which
    /// replace the cache). Stale pins are safe (see [`Pins`]); they keep a
    /// few more versions. One committer refreshes at a time; the others use
    /// the cache meanwhile.
    pub fn with_recent_pins<R>(&self, oracle: &TimestampOracle, f: impl FnOnce(&Pins) -> R) -> R {
        self.with_pins_within(oracle, REFRESH_LAG, f)
    }

    /// Like [`with_recent_pins`](Self::with_recent_pins), but refreshes
    /// the cache whenever the clock moved since it was filled (unless
    /// another committer is refreshing it right now): for a commit that
    /// prunes many keys, where one scan of the registry is cheap beside the
    /// versions stale pins would keep.
    pub fn with_fresh_pins<R>(&self, oracle: &TimestampOracle, f: impl FnOnce(&Pins) -> R) -> R {
        self.with_pins_within(oracle, 1, f)
    }

    fn with_pins_within<R>(
        &self,
        oracle: &TimestampOracle,
        lag: Timestamp,
        f: impl FnOnce(&Pins) -> R,
    ) -> R {
        let guard = Guard::new();
        let visible = oracle.visible();
        let cached = self
            .pins_cache
            .cache
            .load(Ordering::Acquire, &guard)
            .as_ref();
        if let Some(pins) = cached
            && visible.saturating_sub(pins.visible) < lag
        {
            return f(pins);
        }
        if self.pins_cache.refreshing.swap(true, Ordering::Acquire) {
            // Another committer is refreshing. Its pins come soon, unless it
            // was preempted: far behind the clock, scan for ourselves
            // rather than keep every version since the cached `visible`.
            return match cached {
                Some(pins) if visible.saturating_sub(pins.visible) < STALE_LIMIT => f(pins),
                _ => f(&self.pins(oracle)),
            };
        }
        let mut fresh = self.pins(oracle);
        fresh.seq = self.pins_cache.refreshes.fetch_add(1, Ordering::Relaxed) + 1;
        let fresh = Shared::new(fresh);
        let old = self
            .pins_cache
            .cache
            .swap((Some(fresh.clone()), Tag::None), Ordering::AcqRel);
        self.pins_cache.refreshing.store(false, Ordering::Release);
        drop(old);
        f(&fresh)
    }

    fn for_each(&self, mut visit: impl FnMut(Seen)) {
        let high = self.high_water.load(Ordering::SeqCst).min(self.slots.len());
        for slot in self.slots.iter().take(high) {
            let value = slot.ts.load(Ordering::SeqCst);
            if value == FREE || value == CLAIMING {
                continue;
            }
            let start = value & !READS_LATEST;
            // Loaded after the start (SeqCst): this registration's values
            // or a later one's. A later registration's read point is newer
            // and its start later, which only keeps more; for the start
            // time, see `expired`.
            let point = slot.point.load(Ordering::SeqCst).max(start);
            let started = slot.started.load(Ordering::Relaxed);
            visit(Seen {
                start,
                point,
                started,
            });
        }
        // Part of the handshake (module docs): orders the caller's clock
        // load before the walk of the map, against the inserter's fence.
        fence(Ordering::SeqCst);
        for entry in &self.overflow {
            let start = entry.key().0 & !READS_LATEST;
            visit(Seen {
                start,
                point: entry.value().point.load(Ordering::SeqCst).max(start),
                started: entry.value().started,
            });
        }
    }

    /// The open snapshot with the oldest start, if any (a scan of the slots
    /// in use: cheap enough for monitoring).
    #[must_use]
    pub fn oldest(&self) -> Option<OldestSnapshot> {
        let mut oldest: Option<Seen> = None;
        self.for_each(|seen| {
            if oldest.is_none_or(|o| seen.start < o.start) {
                oldest = Some(seen);
            }
        });
        let now = self.now_nanos();
        oldest.map(|seen| OldestSnapshot {
            ts: seen.start,
            age: Duration::from_nanos(now.saturating_sub(seen.started)),
        })
    }

    /// How many snapshots are registered right now.
    #[must_use]
    pub fn active(&self) -> usize {
        let mut count = 0;
        self.for_each(|_| count += 1);
        count
    }
}

#[cfg(all(test, loom))]
impl SnapshotRegistry {
    /// Stores the slots' initial values (and `high_water`'s) once more,
    /// `SeqCst`, so that loom's `SeqCst` rule covers them (see
    /// `buffer/loom_tests.rs`).
    pub(crate) fn store_initial_values_seq_cst(&self) {
        for slot in &*self.slots {
            slot.ts.store(FREE, Ordering::SeqCst);
            slot.point.store(0, Ordering::SeqCst);
        }
        self.high_water.store(0, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_snapshots_pin_their_versions() {
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
        let mut extra = registry.register(&oracle, true);
        assert_eq!(extra.1, 4);
        for s in held.drain(..) {
            registry.release(s);
        }
        assert_eq!(registry.watermark(&oracle), 4);
        assert_eq!(registry.pins(&oracle).floor, 4);
        oracle.allocate().unwrap().publish();
        assert_eq!(registry.advance(&mut extra.0, &oracle), 5);
        assert_eq!(registry.pins(&oracle).points, vec![5]);
        registry.release(extra.0);
        assert_eq!(registry.active(), 0);
    }

    #[test]
    fn read_committed_pins_only_its_latest_read_point() {
        let oracle = TimestampOracle::new(0);
        let registry = SnapshotRegistry::new();
        let (mut rc, start) = registry.register(&oracle, true);
        for _ in 0..10 {
            oracle.allocate().unwrap().publish();
        }
        // Before its next read it still pins its start ...
        assert_eq!(registry.pins(&oracle).points, vec![10, start]);
        // ... afterwards only the point it reads at, and its start as the
        // floor for heads.
        assert_eq!(registry.advance(&mut rc, &oracle), 10);
        for _ in 0..5 {
            oracle.allocate().unwrap().publish();
        }
        let pins = registry.pins(&oracle);
        assert_eq!(pins.points, vec![15, 10]);
        assert_eq!(pins.floor, start);
        assert_eq!(pins.oldest(), start);
        registry.release(rc);
    }

    #[test]
    fn snapshots_past_the_maximum_age_stop_pinning() {
        let oracle = TimestampOracle::new(0);
        let registry = SnapshotRegistry::with_max_age(Some(Duration::from_millis(1)));
        let (old, _) = registry.register(&oracle, false);
        for _ in 0..3 {
            oracle.allocate().unwrap().publish();
        }
        // Waits for the clock, not for another thread: no timing assertion.
        while registry.expired(&old).is_none() {
            std::thread::yield_now();
        }
        assert_eq!(registry.pins(&oracle).points, vec![3]);
        assert!(
            registry.oldest().is_some(),
            "still registered, just expired"
        );
        registry.release(old);
        assert_eq!(registry.oldest(), None);
    }

    #[test]
    fn cached_pins_refresh_as_the_clock_moves() {
        let oracle = TimestampOracle::new(0);
        let registry = SnapshotRegistry::new();
        let (held, _) = registry.register(&oracle, false);
        let first = registry.with_recent_pins(&oracle, Clone::clone);
        assert_eq!(first.points, vec![0]);
        for _ in 0..REFRESH_LAG {
            oracle.allocate().unwrap().publish();
        }
        let second = registry.with_recent_pins(&oracle, Clone::clone);
        assert!(second.seq > first.seq);
        assert_eq!(second.points, vec![REFRESH_LAG, 0]);
        // Within the lag, the same pins come back.
        oracle.allocate().unwrap().publish();
        assert_eq!(registry.with_recent_pins(&oracle, |p| p.seq), second.seq);
        registry.release(held);
    }

    #[test]
    fn pins_keep_exactly_what_some_snapshot_reads() {
        let pins = Pins::new(10, [3, 7]);
        assert_eq!(pins.points, vec![10, 7, 3]);
        // The newest is always kept, and so is anything above `visible`.
        assert!(pins.keeps(10, Timestamp::MAX));
        assert!(pins.keeps(11, 12));
        // Versions whose lifetime [ts, newer) holds a point.
        assert!(pins.keeps(3, 4));
        assert!(pins.keeps(2, 7));
        assert!(!pins.keeps(4, 7));
        assert!(!pins.keeps(8, 10));
        assert!(pins.keeps(8, 11));
    }
}
