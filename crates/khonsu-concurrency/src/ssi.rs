//! Precise `Serializable`: commit-time serializable snapshot isolation.
//!
//! A snapshot transaction's reads are serializable unless it sits in a
//! *dangerous structure* `T_in →rw T_pivot →rw T_out` of two consecutive
//! rw-antidependencies between concurrent transactions (Fekete et al.),
//! and even then only if `T_out` committed first of the three — before
//! `T_in`'s snapshot, when `T_in` wrote nothing (Ports and Grittner,
//! `PostgreSQL`'s refinements). `T →rw U` means `T` read a version of a key
//! (or scanned a range) and `U` committed the version that followed it,
//! which `T`'s snapshot did not see.
//!
//! [`SsiState`] decides at commit, only against committed (or committing,
//! already decided) transactions, and holds what later decisions need:
//!
//! * **readers** — the pure reads (keys read and not written, scanned
//!   ranges) of committed `Serializable` transactions, stamped with their
//!   commit timestamp (their snapshot, for one that wrote nothing): filled
//!   once at commit from the footprint, never per read;
//! * **pivots** — the commit timestamp of every committed transaction that
//!   was ordered before an earlier commit (it had an rw-antidependency to a
//!   transaction that committed first), with the earliest such commit;
//! * **the newest read-only snapshot** — declared read-only transactions and
//!   snapshot pins keep no read set: a read-write transaction may be
//!   ordered before an earlier commit `W` only if no such snapshot was taken
//!   since `W` committed.
//!
//! Both maps are pruned as the oldest open snapshot moves, and capped:
//! beyond the cap the oldest entries are summarized by a timestamp below
//! which every decision is conservative (it aborts), so memory stays
//! bounded under a reader that never ends.
//!
//! A read-write transaction with pure reads decides under one mutex, and
//! takes its commit timestamp inside it: among such transactions, decision
//! order is commit order, so each sees every earlier one decided. The
//! argument that this is serializable is in `docs/commit-protocol.md`.

use std::collections::{BTreeMap, VecDeque};
use std::ops::{Bound, ControlFlow};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use khonsu_core::{
    CommitTicket, Key, Pins, SnapshotRegistry, Timestamp, TimestampOracle, TxnBuffer,
};

use smallvec::SmallVec;

use crate::{Conflict, ConflictKind, ConflictTarget, DependencyTracker};

/// How `Serializable` validates a read-write transaction's reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SerializableValidation {
    /// Commit-time serializable snapshot isolation: abort only a
    /// transaction in a dangerous structure whose last transaction
    /// committed first ([`SsiState`]).
    #[default]
    Precise,
    /// Abort any read-write transaction whose read was overwritten by a
    /// transaction that committed first ([`validate_serializable`](crate::validate_serializable)):
    /// serializable in commit order, simple, and as strict as optimistic
    /// validation gets. For comparison.
    Conservative,
}

impl SerializableValidation {
    /// The lowercase name (`precise`, `conservative`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Precise => "precise",
            Self::Conservative => "conservative",
        }
    }
}

impl std::fmt::Display for SerializableValidation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SerializableValidation {
    type Err = crate::ParseOptionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "precise" | "ssi" => Ok(Self::Precise),
            "conservative" | "occ" => Ok(Self::Conservative),
            _ => Err(crate::ParseOptionError::new("serializable validation", s)),
        }
    }
}

/// Committed readers kept before the oldest are summarized.
const MAX_READERS: usize = 1 << 16;
/// Pivots kept before the oldest are summarized.
const MAX_PIVOTS: usize = 1 << 16;
/// Registrations between two prunes by the oldest open snapshot.
const PRUNE_EVERY: u64 = 256;

/// Key hashes a reader keeps without allocating.
const INLINE_READS: usize = 6;

/// The pure reads of one committed transaction.
#[derive(Debug)]
struct Reader {
    /// Hashes of the keys read and not written ([`key_hash`]), sorted: no
    /// key is cloned, and a collision only costs an extra abort.
    keys: SmallVec<[u64; INLINE_READS]>,
    /// Scanned ranges.
    ranges: Vec<(Bound<Key>, Bound<Key>)>,
}

/// A 64-bit hash of a key's bytes (multiply-rotate over 8-byte words).
fn key_hash(key: &Key) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let bytes = key.as_bytes();
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    for chunk in bytes.chunks(8) {
        let mut word = [0_u8; 8];
        if let Some(w) = word.get_mut(..chunk.len()) {
            w.copy_from_slice(chunk);
        }
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    h ^ (h >> 29)
}

impl Reader {
    /// The first key `writes` (in key order) holds that this reader read.
    fn reads_one_of(&self, tracker: &DependencyTracker) -> Option<ConflictTarget> {
        for (key, _) in tracker.writes() {
            if self.keys.binary_search(&key_hash(key)).is_ok() {
                return Some(ConflictTarget::Key(key.clone()));
            }
        }
        for (start, end) in &self.ranges {
            if let Some((key, _)) = tracker.writes_in(start.as_ref(), end.as_ref()).next() {
                return Some(ConflictTarget::Key(key.clone()));
            }
        }
        None
    }
}

/// Where a reader is filed, to withdraw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReaderAt {
    /// Among the read-write commits, at this commit timestamp.
    ReadWrite(Timestamp),
    /// Among the transactions that wrote nothing: snapshot, sequence.
    ReadOnly(Timestamp, u64),
}

/// Committed readers by stamp: commit timestamp, or snapshot for one that
/// wrote nothing.
#[derive(Debug, Default)]
struct Readers {
    /// Read-write commits in commit order: they register under the mutex
    /// in timestamp order, so stamps increase (a withdrawn one is `None`).
    read_write: VecDeque<(Timestamp, Option<Reader>)>,
    /// Transactions that wrote nothing, by snapshot and a sequence number
    /// (snapshots are shared).
    read_only: BTreeMap<(Timestamp, u64), Reader>,
    next_seq: u64,
}

impl Readers {
    fn len(&self) -> usize {
        self.read_write.len() + self.read_only.len()
    }

    fn push(&mut self, stamp: Timestamp, read_only: bool, reader: Reader) -> ReaderAt {
        if read_only {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.read_only.insert((stamp, seq), reader);
            ReaderAt::ReadOnly(stamp, seq)
        } else {
            debug_assert!(self.read_write.back().is_none_or(|(ts, _)| *ts < stamp));
            self.read_write.push_back((stamp, Some(reader)));
            ReaderAt::ReadWrite(stamp)
        }
    }

    fn remove(&mut self, at: ReaderAt) {
        match at {
            ReaderAt::ReadOnly(stamp, seq) => {
                self.read_only.remove(&(stamp, seq));
            }
            ReaderAt::ReadWrite(stamp) => {
                let i = self.read_write.partition_point(|(ts, _)| *ts < stamp);
                if let Some((ts, reader)) = self.read_write.get_mut(i)
                    && *ts == stamp
                {
                    *reader = None;
                }
            }
        }
    }

    /// Every reader stamped at or after `from`.
    fn since(&self, from: Timestamp) -> impl Iterator<Item = (Timestamp, &Reader)> {
        let start = self.read_write.partition_point(|(ts, _)| *ts < from);
        self.read_write
            .range(start..)
            .filter_map(|(ts, reader)| reader.as_ref().map(|r| (*ts, r)))
            .chain(
                self.read_only
                    .range((from, 0)..)
                    .map(|(&(ts, _), r)| (ts, r)),
            )
    }

    /// Drops every reader stamped at or below `floor`.
    fn drop_through(&mut self, floor: Timestamp) {
        while self.read_write.front().is_some_and(|(ts, _)| *ts <= floor) {
            self.read_write.pop_front();
        }
        self.read_only = self.read_only.split_off(&(floor + 1, 0));
    }

    /// Drops the oldest reader; returns its stamp.
    fn pop_oldest(&mut self) -> Option<Timestamp> {
        let rw = self.read_write.front().map(|(ts, _)| *ts);
        let ro = self.read_only.first_key_value().map(|(&(ts, _), _)| ts);
        match (rw, ro) {
            (Some(a), Some(b)) if b < a => self.read_only.pop_first().map(|((ts, _), _)| ts),
            (Some(_), _) => self.read_write.pop_front().map(|(ts, _)| ts),
            (None, Some(_)) => self.read_only.pop_first().map(|((ts, _), _)| ts),
            (None, None) => None,
        }
    }
}

/// The shared tracking state, under [`SsiState`]'s mutex.
#[derive(Debug, Default)]
struct Graph {
    readers: Readers,
    /// Committed pivots: commit timestamp → earliest commit it was
    /// ordered before.
    pivots: BTreeMap<Timestamp, Timestamp>,
    /// Pivots decided but not yet published: (earliest commit it is
    /// ordered before, commit timestamp).
    in_flight_pivots: Vec<(Timestamp, Timestamp)>,
    /// Readers with stamps at or below this were dropped for space.
    readers_summary: Timestamp,
    /// Pivots with commit timestamps at or below this were dropped.
    pivots_summary: Timestamp,
    registrations_since_prune: u64,
}

/// What a transaction's reads found overwritten after its snapshot.
#[derive(Debug, Default)]
struct OutEdges {
    /// The earliest commit among the transactions that overwrote a read
    /// (a lower bound where not known exactly), and what it overwrote.
    earliest: Option<(Timestamp, ConflictTarget)>,
    /// The overwrites: the first commit after the snapshot, the newest one
    /// when the first is only a lower bound, and what they overwrote.
    partners: Vec<(Timestamp, Option<Timestamp>, ConflictTarget)>,
    /// Whether a read key's intent was held by a committer whose commit
    /// timestamp is not known here.
    unknown_holder: Option<ConflictTarget>,
}

impl OutEdges {
    fn note(&mut self, first: Timestamp, target: &ConflictTarget) {
        if self.earliest.as_ref().is_none_or(|(ts, _)| first < *ts) {
            self.earliest = Some((first, target.clone()));
        }
    }

    /// Follows every pure read of `tracker` made at `snapshot`.
    fn of(tracker: &DependencyTracker, buffer: &TxnBuffer, snapshot: Timestamp) -> Self {
        let mut edges = Self::default();
        let visit = |edges: &mut Self, key: &Key, changed: khonsu_core::Overwritten| {
            let target = ConflictTarget::Key(key.clone());
            if let Some(first) = changed.first_after {
                edges.note(first, &target);
                let inexact = (!changed.exact).then_some(changed.latest_ts);
                edges.partners.push((first, inexact, target.clone()));
            }
            if changed.locked {
                // Its commit may come before ours: as early as possible.
                edges.note(snapshot + 1, &target);
                edges.unknown_holder.get_or_insert(target);
            }
        };
        for (key, _) in tracker.point_reads() {
            if tracker.writes_key(key) {
                continue; // a read-modify-write: write-write checks it
            }
            if let Some(changed) = buffer.overwritten_after(key, snapshot) {
                visit(&mut edges, key, changed);
            }
        }
        for range in tracker.range_reads() {
            let _ = buffer.for_each_overwritten(
                range.start.as_ref(),
                range.end.as_ref(),
                range.read_ts,
                |key, changed| {
                    if !tracker.writes_key(key) {
                        visit(&mut edges, key, changed);
                    }
                    ControlFlow::<()>::Continue(())
                },
            );
        }
        edges
    }
}

/// The reads of a footprint the tracking must know, taken once at commit:
/// the hashes of the keys read and not written, and whether it scanned.
#[derive(Debug)]
pub struct PureReads {
    keys: SmallVec<[u64; INLINE_READS]>,
    scanned: bool,
}

impl PureReads {
    /// The pure reads of `tracker`.
    #[must_use]
    pub fn of(tracker: &DependencyTracker) -> Self {
        let mut keys: SmallVec<[u64; INLINE_READS]> = SmallVec::new();
        for (key, _) in tracker.point_reads() {
            if !tracker.writes_key(key) {
                keys.push(key_hash(key));
            }
        }
        keys.sort_unstable();
        Self {
            keys,
            scanned: !tracker.range_reads().is_empty(),
        }
    }

    /// Whether there are none: every read was of a key also written, and
    /// nothing was scanned.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && !self.scanned
    }
}

/// The shared state of precise `Serializable` (module docs).
#[derive(Debug, Default)]
pub struct SsiState {
    mode: SerializableValidation,
    graph: Mutex<Graph>,
    /// The newest snapshot of a declared read-only `Serializable`
    /// transaction or a snapshot pin.
    read_only_max: AtomicU64,
    /// The newest commit timestamp of a pivot, raised when it decides
    /// (before it publishes; an aborted pivot leaves it raised): every
    /// pivot in flight or committed above a snapshot is above it.
    pivot_max: AtomicU64,
}

/// A decided read-write commit's place in the tracking state: keep it
/// until the commit is published ([`finish`](Self::finish)), or drop it to
/// withdraw an aborted commit's registration.
#[derive(Debug)]
#[must_use = "finish it once the commit is published"]
pub struct SsiRegistration<'a> {
    state: &'a SsiState,
    commit_ts: Timestamp,
    /// The reader entry, if one was registered.
    reader: Option<ReaderAt>,
    /// Whether the commit is an in-flight pivot.
    pivot: bool,
    finished: bool,
}

impl SsiRegistration<'_> {
    /// The commit is published: it leaves the in-flight pivots (if it was
    /// one) and stays registered.
    pub fn finish(mut self) {
        self.finished = true;
        if self.pivot {
            self.state.leave_in_flight(self.commit_ts);
        }
    }
}

impl Drop for SsiRegistration<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Aborted after the decision (storage, settle): withdraw it.
        let mut graph = self.state.lock();
        if let Some(reader) = self.reader {
            graph.readers.remove(reader);
        }
        if self.pivot {
            graph.pivots.remove(&self.commit_ts);
            drop(graph);
            self.state.leave_in_flight(self.commit_ts);
        }
    }
}

/// Where a read-write `Serializable` commit stands after
/// [`SsiState::decide_read_write`].
#[derive(Debug)]
pub enum SsiDecision<'a, 't> {
    /// Commit: the timestamp, and the registration to finish after the
    /// publish.
    Commit(CommitTicket<'t>, SsiRegistration<'a>),
    /// Abort: the timestamp taken (drop it after the intents, outside any
    /// lock: an unpublished ticket publishes empty) and why.
    Abort(CommitTicket<'t>, Conflict),
}

impl SsiState {
    /// Tracking state for `mode`.
    #[must_use]
    pub fn new(mode: SerializableValidation) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }

    /// The validation in force.
    #[must_use]
    pub fn mode(&self) -> SerializableValidation {
        self.mode
    }

    fn lock(&self) -> MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn leave_in_flight(&self, commit_ts: Timestamp) {
        self.lock()
            .in_flight_pivots
            .retain(|&(_, ts)| ts != commit_ts);
    }

    /// Registers a read-only snapshot at `snapshot` (a declared read-only
    /// `Serializable` transaction, or a snapshot pin), which keeps no read
    /// set: from now on a read-write transaction is not ordered before a
    /// commit at or below `snapshot`. Returns `Err(ts)` when a pivot that
    /// may not have seen this snapshot is committing at `ts` and the
    /// snapshot lies below it: wait until `ts` is visible and take the
    /// snapshot again.
    ///
    /// # Errors
    /// The commit timestamp to wait for, as above.
    pub fn note_read_only_snapshot(&self, snapshot: Timestamp) -> Result<(), Timestamp> {
        if self.mode == SerializableValidation::Conservative {
            return Ok(());
        }
        // Against the pivot's store of `pivot_max` then load of the
        // maximum (all SeqCst): either it sees this snapshot and aborts, or
        // this sees its commit timestamp above the snapshot — in flight, or
        // already published (the snapshot was taken before this store, so
        // a pivot may have decided and published in between).
        if self.read_only_max.load(Ordering::SeqCst) < snapshot {
            self.read_only_max.fetch_max(snapshot, Ordering::SeqCst);
        }
        if self.pivot_max.load(Ordering::SeqCst) <= snapshot {
            return Ok(());
        }
        let graph = self.lock();
        let in_flight = graph
            .in_flight_pivots
            .iter()
            .map(|&(earliest, ts)| (ts, earliest));
        let committed = graph
            .pivots
            .range(snapshot + 1..)
            .map(|(&ts, &earliest)| (ts, earliest));
        match in_flight
            .chain(committed)
            .find(|&(ts, earliest)| earliest <= snapshot && snapshot < ts)
        {
            Some((ts, _)) => Err(ts),
            None => Ok(()),
        }
    }

    /// Decides the commit of a read-write `Serializable` transaction with
    /// pure reads ([`PureReads`]) that holds the intents of every key
    /// it writes: takes the commit timestamp (inside the decision, so that
    /// decisions follow commit order), follows its reads' rw-antidependencies,
    /// and aborts it if it would close a dangerous structure. Otherwise it
    /// registers its reads (and, if it is a pivot, itself).
    ///
    /// `overwrites` is the newest commit, after the snapshot, that one of
    /// its writes lands on (a blind write resolved by `Replace` or `Ignore`,
    /// or an append merged onto it; `0`: none): a write-write (or
    /// merge) dependency on a concurrent transaction, which first-committer-
    /// wins would have ruled out, and which closes a cycle through an
    /// rw-antidependency as an rw in-edge would.
    ///
    /// # Errors
    /// The clock's error (nothing was decided).
    #[expect(
        clippy::too_many_arguments,
        reason = "the engine's parts the decision reads, kept apart as the pipeline keeps them"
    )]
    pub fn decide_read_write<'a, 't>(
        &'a self,
        tracker: &DependencyTracker,
        reads: PureReads,
        buffer: &TxnBuffer,
        oracle: &'t TimestampOracle,
        snapshots: &SnapshotRegistry,
        snapshot: Timestamp,
        overwrites: Timestamp,
    ) -> khonsu_core::Result<SsiDecision<'a, 't>> {
        let mut graph = self.lock();
        let ticket = oracle.allocate()?;
        let commit_ts = ticket.ts();
        // Nothing committed between the snapshot and us: nothing overwrote
        // a read (a held intent belongs to a later commit).
        let edges = if commit_ts > snapshot + 1 {
            OutEdges::of(tracker, buffer, snapshot)
        } else {
            OutEdges::default()
        };
        if let Some(conflict) = Self::check_read_write(&graph, tracker, &edges, overwrites) {
            return Ok(SsiDecision::Abort(ticket, conflict));
        }
        let mut registration = SsiRegistration {
            state: self,
            commit_ts,
            reader: None,
            pivot: false,
            finished: false,
        };
        if let Some((earliest, target)) = &edges.earliest {
            // A pivot: against read-only snapshots first (the stores, then
            // the load; see `note_read_only_snapshot`). `pivot_max` may stay
            // raised by a pivot that aborts: read-only snapshots then only
            // look at the pivots once more.
            self.pivot_max.fetch_max(commit_ts, Ordering::SeqCst);
            graph.in_flight_pivots.push((*earliest, commit_ts));
            registration.pivot = true;
            let read_only = self.read_only_max.load(Ordering::SeqCst);
            if read_only >= *earliest {
                drop(graph);
                drop(registration);
                return Ok(SsiDecision::Abort(
                    ticket,
                    dangerous(target.clone(), Some(read_only), None, *earliest),
                ));
            }
            graph.pivots.insert(commit_ts, *earliest);
        }
        registration.reader = Some(Self::register(
            &mut graph, tracker, reads, commit_ts, false, snapshots, oracle,
        ));
        Ok(SsiDecision::Commit(ticket, registration))
    }

    /// The dangerous structures a read-write transaction would close.
    fn check_read_write(
        graph: &Graph,
        tracker: &DependencyTracker,
        edges: &OutEdges,
        overwrites: Timestamp,
    ) -> Option<Conflict> {
        let (earliest, target) = edges.earliest.as_ref()?;
        // Ordered before `T_out` yet after a concurrent commit it overwrote
        // that committed at or after `T_out`: a cycle.
        if overwrites >= *earliest {
            return Some(dangerous(target.clone(), Some(overwrites), None, *earliest));
        }
        // As `T_in`: a transaction that overwrote our read is a pivot; its
        // `T_out` committed before it, hence first of the three.
        for (first, inexact, target) in &edges.partners {
            if let Some(conflict) = graph.pivot_among(*first, *inexact, target, None) {
                return Some(conflict);
            }
        }
        if let Some(target) = &edges.unknown_holder
            && let Some(&(out, ts)) = graph.in_flight_pivots.first()
        {
            // (Every pivot in flight decided before us, so commits before
            // us; any of them may hold the intent.)
            // A held intent may be an undecided-here pivot's.
            return Some(dangerous(target.clone(), None, Some(ts), out));
        }
        // As the pivot: a committed transaction read what we write, and
        // committed (or, if it wrote nothing, took its snapshot) at or
        // after our `T_out`'s commit.
        if *earliest <= graph.readers_summary {
            return Some(dangerous(
                target.clone(),
                Some(graph.readers_summary),
                None,
                *earliest,
            ));
        }
        for (stamp, reader) in graph.readers.since(*earliest) {
            if let Some(read) = reader.reads_one_of(tracker) {
                return Some(dangerous(read, Some(stamp), None, *earliest));
            }
        }
        None
    }

    /// Files a committed transaction's pure reads under `stamp`, pruning
    /// the state now and then.
    fn register(
        graph: &mut Graph,
        tracker: &DependencyTracker,
        reads: PureReads,
        stamp: Timestamp,
        read_only: bool,
        snapshots: &SnapshotRegistry,
        oracle: &TimestampOracle,
    ) -> ReaderAt {
        let ranges = tracker
            .range_reads()
            .iter()
            .map(|range| (range.start.clone(), range.end.clone()))
            .collect();
        let at = graph.readers.push(
            stamp,
            read_only,
            Reader {
                keys: reads.keys,
                ranges,
            },
        );
        graph.registrations_since_prune += 1;
        if graph.registrations_since_prune >= PRUNE_EVERY
            || graph.readers.len() > MAX_READERS
            || graph.pivots.len() > MAX_PIVOTS
        {
            graph.prune(snapshots, oracle);
        }
        at
    }

    /// The commit of a `Serializable` transaction that wrote nothing but
    /// read: it aborts if a transaction that overwrote one of its reads is
    /// a pivot whose `T_out` committed at or before its snapshot, and
    /// registers its reads if a read-write transaction that started before
    /// its snapshot may still commit.
    ///
    /// # Errors
    /// The dangerous structure.
    pub fn commit_read_only(
        &self,
        tracker: &DependencyTracker,
        buffer: &TxnBuffer,
        oracle: &TimestampOracle,
        snapshots: &SnapshotRegistry,
        snapshot: Timestamp,
    ) -> Result<(), Box<Conflict>> {
        if self.mode == SerializableValidation::Conservative {
            return Ok(());
        }
        // The oldest open snapshot first, then the pivots: a pivot that
        // could use our reads is open (and older than our snapshot) when
        // the oldest is taken, or it had already decided — and raised
        // `pivot_max` before releasing its snapshot.
        // (Cached pins leave out expired snapshots, whose transactions may
        // still be deciding: with a maximum age, look at every slot.)
        let oldest = if snapshots.max_age().is_some() {
            snapshots.oldest().map_or(snapshot, |o| o.ts)
        } else {
            snapshots.with_recent_pins(oracle, Pins::oldest)
        };
        let may_be_read = oldest < snapshot;
        // (A pivot in flight commits above any published snapshot.)
        let may_be_in = self.pivot_max.load(Ordering::SeqCst) > snapshot;
        if !may_be_in && !may_be_read {
            return Ok(());
        }
        let mut graph = self.lock();
        if may_be_in || self.pivot_max.load(Ordering::SeqCst) > snapshot {
            let edges = OutEdges::of(tracker, buffer, snapshot);
            for (first, inexact, target) in &edges.partners {
                if let Some(conflict) = graph.pivot_among(*first, *inexact, target, Some(snapshot))
                {
                    return Err(Box::new(conflict));
                }
            }
            if let Some(target) = &edges.unknown_holder
                && let Some(&(out, ts)) = graph
                    .in_flight_pivots
                    .iter()
                    .find(|&&(out, ts)| out <= snapshot && ts > snapshot)
            {
                return Err(Box::new(dangerous(target.clone(), None, Some(ts), out)));
            }
        }
        let reads = PureReads::of(tracker);
        let _ = Self::register(
            &mut graph, tracker, reads, snapshot, true, snapshots, oracle,
        );
        Ok(())
    }

    /// How much tracking state is held: (committed readers, pivots).
    #[must_use]
    pub fn tracked(&self) -> (usize, usize) {
        let graph = self.lock();
        (graph.readers.len(), graph.pivots.len())
    }

    /// Prunes the tracking state by the oldest open snapshot now (tests and
    /// `collect_garbage`).
    pub fn prune(&self, snapshots: &SnapshotRegistry, oracle: &TimestampOracle) {
        self.lock().prune(snapshots, oracle);
    }
}

impl Graph {
    /// A pivot among the commits that overwrote a read: the one at `first`
    /// when that is exact, or, when `first` is only a lower bound, any in
    /// `first..=latest`. With `read_only`, only a pivot whose `T_out`
    /// committed at or before that snapshot counts.
    fn pivot_among(
        &self,
        first: Timestamp,
        inexact: Option<Timestamp>,
        target: &ConflictTarget,
        read_only: Option<Timestamp>,
    ) -> Option<Conflict> {
        let counts = |out: Timestamp| read_only.is_none_or(|snapshot| out <= snapshot);
        if first <= self.pivots_summary {
            // Dropped for space: assume the worst.
            return Some(dangerous(target.clone(), None, Some(first), first));
        }
        let hit = match inexact {
            None => self.pivots.get(&first).map(|&out| (first, out)),
            Some(latest) => self
                .pivots
                .range(first..=latest)
                .find(|&(_, &out)| counts(out))
                .map(|(&ts, &out)| (ts, out)),
        };
        match hit {
            Some((ts, out)) if counts(out) => Some(dangerous(target.clone(), None, Some(ts), out)),
            _ => None,
        }
    }

    /// Drops what no open transaction can need (stamps at or below the
    /// oldest open snapshot), then, beyond the caps, the oldest entries
    /// into the summaries.
    fn prune(&mut self, snapshots: &SnapshotRegistry, oracle: &TimestampOracle) {
        self.registrations_since_prune = 0;
        // The clock before the scan: a snapshot registering meanwhile is at
        // least this.
        let visible = oracle.visible();
        let floor = snapshots.oldest().map_or(visible, |o| o.ts.min(visible));
        self.readers.drop_through(floor);
        self.pivots = self.pivots.split_off(&(floor + 1));
        while self.readers.len() > MAX_READERS {
            if let Some(stamp) = self.readers.pop_oldest() {
                self.readers_summary = self.readers_summary.max(stamp);
            }
        }
        while self.pivots.len() > MAX_PIVOTS {
            if let Some((ts, _)) = self.pivots.pop_first() {
                self.pivots_summary = self.pivots_summary.max(ts);
            }
        }
    }
}

fn dangerous(
    target: ConflictTarget,
    reader_ts: Option<Timestamp>,
    pivot_ts: Option<Timestamp>,
    out_ts: Timestamp,
) -> Conflict {
    Conflict {
        kind: ConflictKind::DangerousStructure,
        target,
        other_commit_ts: Some(out_ts),
        structure: Some(Box::new(crate::Structure {
            reader_ts,
            pivot_ts,
            out_ts,
        })),
    }
}
