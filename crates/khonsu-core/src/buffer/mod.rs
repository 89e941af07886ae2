//! The Transaction Buffer: one lock-free `crossbeam_skiplist` skiplist of
//! keys, each with its write intent and its chain of committed versions.
//!
//! One file per protocol:
//!
//! * [`state`] — the state word (intent, flags, newest timestamp) and the
//!   memory-ordering contract the whole protocol rests on;
//! * [`chain`] — the version chain, readers walking it, precise pruning;
//! * [`intent`] — holding a key: write intents and prune holds;
//! * [`reclaim`] — deferred reclamation, the full sweep, the counters;
//! * [`walk`] — range walks (scans, validators' range checks).

mod chain;
mod intent;
mod reclaim;
mod state;
mod walk;

// `cfg(test)` on its own, so that clippy treats the models as tests.
#[cfg(test)]
#[cfg(loom)]
mod loom_tests;
#[cfg(test)]
mod tests;

use crossbeam_epoch as epoch;
use crossbeam_skiplist::SkipList;
use crossbeam_utils::Backoff;

use crate::error::{IntentBusySnafu, Result};
use crate::{Key, Timestamp, VersionedValue};
use chain::Head;
use intent::CountedHead;
use state::{LOCKED, Taken};

pub use intent::{Installed, KeyIntent};
pub use reclaim::BufferStats;
pub use state::IntentState;

/// How long a committer sleeps per wait on another committer's intent once
/// spinning and yielding are over (see [`TxnBuffer::lock`]).
const INTENT_SLEEP: std::time::Duration = std::time::Duration::from_micros(20);

/// A read timestamp above every version's: reads the newest version.
const LATEST: Timestamp = Timestamp::MAX;

/// The shared multi-version store of committed data.
///
/// One lock-free skiplist (`crossbeam_skiplist::SkipList`, the lock-free
/// structure under `SkipMap`) from each key to its *head*:
///
/// * a state word: the key's *write intent* (the `LOCKED` bit),
///   housekeeping flags, and the newest commit timestamp, which is what
///   write-write checks and `Serializable` validation read;
/// * the key's versions, newest first, as a chain of nodes reclaimed by
///   epoch-based reclamation (`sdd`). A snapshot read is
///   one skiplist lookup and, usually, the first version of the chain.
///
/// **What is atomic.** Each skiplist operation and each chain swap is
/// linearizable. A commit touching several keys is made atomic one level
/// up: the writer takes each key's write intent (in key order), pushes
/// versions stamped with its commit timestamp, releases the intents, and
/// only then is that timestamp published by the
/// [`TimestampOracle`](crate::TimestampOracle); snapshots never read past
/// the published timestamp, so they see all of a commit or none of it.
/// Readers never take intents: readers never block writers, writers never
/// block readers.
///
/// **How memory is reclaimed.** A version is kept only while some open
/// snapshot can read it: the newest version of each key, and for each open
/// snapshot the newest version at or below it ([`Pins`](crate::Pins)); the
/// rest is unlinked however old the oldest snapshot is (eager pruning by
/// the set of active snapshots, as in Steam and HANA's interval GC). The
/// committer of a key prunes that key before it publishes (a short walk);
/// keys that still hold versions for open snapshots are queued and
/// revisited by later commits in bounded steps, and
/// [`collect_garbage`](Self::collect_garbage) sweeps everything. Unlinked
/// versions are freed by `sdd`'s epoch-based collector once no reader's
/// guard can reach them; removed skiplist nodes by `crossbeam-epoch`.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use khonsu_core::{Key, Pins, TxnBuffer};
///
/// let batch = |v: i64| {
///     Arc::new(RecordBatch::try_from_iter([(
///         "v",
///         Arc::new(Int64Array::from(vec![v])) as _,
///     )]).unwrap())
/// };
/// let buffer = TxnBuffer::new();
/// let key = Key::from("k");
/// // A snapshot reading at 7 is open while the clock reaches 9.
/// let pins = Pins::new(9, [7]);
/// buffer.lock(&key, 0).unwrap().install(5, Some(batch(1)), &pins).unwrap();
/// buffer.lock(&key, 0).unwrap().install(6, Some(batch(2)), &pins).unwrap();
/// buffer.lock(&key, 0).unwrap().install(9, Some(batch(3)), &pins).unwrap();
///
/// assert_eq!(buffer.read_at(&key, 7).commit_ts, 6);   // the snapshot's version
/// assert_eq!(buffer.read_at(&key, 100).commit_ts, 9); // the newest
/// assert_eq!(buffer.stats().versions, 2);             // 5 went: nobody reads it
/// ```
#[derive(Debug)]
pub struct TxnBuffer {
    /// One head per key: intent word and version chain. Lookups run under
    /// an epoch guard and touch no reference count (a `SkipMap` lookup
    /// pins twice and increments and decrements the node's count); only a
    /// held intent counts a reference, since it outlives any one guard.
    heads: SkipList<Key, Head>,
    /// Keys to revisit, each with the sequence number of the pins it was
    /// last pruned with.
    deferred: reclaim::DeferredQueue,
    /// Counters behind [`stats`](Self::stats).
    tally: reclaim::Tally,
}

/// How a key changed after a snapshot read it: the rw-antidependencies a
/// `Serializable` validator follows ([`TxnBuffer::overwritten_after`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overwritten {
    /// Whether a committer holds the key's write intent right now (its
    /// commit timestamp is not known here).
    pub locked: bool,
    /// When the first version committed after the snapshot was committed,
    /// if one was: exact, or a lower bound above the snapshot when pruning
    /// removed versions on both sides of it.
    pub first_after: Option<Timestamp>,
    /// Whether `first_after` is exact (not a lower bound).
    pub exact: bool,
    /// The commit timestamp of the key's newest version.
    pub latest_ts: Timestamp,
}

impl Overwritten {
    fn of(head: &Head, ts: Timestamp) -> Option<Self> {
        let word = IntentState::from_word(state::load(&head.word));
        let first = if word.latest_ts > ts {
            head.first_after(ts)
        } else {
            None
        };
        (word.locked || first.is_some()).then_some(Self {
            locked: word.locked,
            first_after: first.map(|(ts, _)| ts),
            exact: first.is_none_or(|(_, exact)| exact),
            latest_ts: word.latest_ts,
        })
    }
}

impl Default for TxnBuffer {
    fn default() -> Self {
        Self {
            // The default collector: the one `epoch::pin()` guards belong to.
            heads: SkipList::new(epoch::default_collector().clone()),
            deferred: reclaim::DeferredQueue::default(),
            tally: reclaim::Tally::default(),
        }
    }
}

impl TxnBuffer {
    /// An empty buffer.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The version of `key` a snapshot at `ts` sees: one lookup, then the
    /// key's chain from the newest version down to the first one at or
    /// below `ts` (usually the newest).
    #[must_use]
    #[inline]
    pub fn read_at(&self, key: &Key, ts: Timestamp) -> VersionedValue {
        let guard = &epoch::pin();
        match self.heads.get(key, guard) {
            Some(entry) => entry.value().read_at(ts),
            None => VersionedValue::default(),
        }
    }

    /// The newest committed version of `key` whatever the snapshot (used
    /// by committers holding the key's intent).
    #[must_use]
    pub fn read_latest(&self, key: &Key) -> VersionedValue {
        self.read_at(key, LATEST)
    }

    /// The intent state of `key`, or `None` if the buffer has never seen it
    /// (or has fully reclaimed it).
    #[must_use]
    pub fn intent_state(&self, key: &Key) -> Option<IntentState> {
        let guard = &epoch::pin();
        self.heads
            .get(key, guard)
            .map(|e| IntentState::from_word(state::load(&e.value().word)))
    }

    /// What happened to `key` after a snapshot at `ts` read it, or `None`
    /// when nothing did (no newer version, no intent held). Loads the state
    /// word first (pair 1 of its memory-ordering contract) and walks the
    /// chain only when a newer version exists.
    #[must_use]
    pub fn overwritten_after(&self, key: &Key, ts: Timestamp) -> Option<Overwritten> {
        let guard = &epoch::pin();
        let entry = self.heads.get(key, guard)?;
        Overwritten::of(entry.value(), ts)
    }

    /// Takes the write intent on `key`, creating the key's head if needed.
    ///
    /// While another committer holds the intent this waits at most
    /// `max_waits` times: spinning, then yielding, then sleeping 20 µs per
    /// wait — a holder with durable storage waits for a disk sync, and a
    /// yield loop would take the CPU that sync's writer needs. Callers that
    /// would abort anyway once the holder commits pass `0` to fail fast.
    /// Reclamation's hold is waited out (it is brief and never a conflict).
    ///
    /// # Errors
    /// [`Error::IntentBusy`](crate::Error::IntentBusy) when the wait budget
    /// runs out.
    pub fn lock(&self, key: &Key, max_waits: u32) -> Result<KeyIntent<'_>> {
        let mut waits = 0_u32;
        let backoff = Backoff::new();
        loop {
            let entry = self.counted_head(key);
            loop {
                match state::take(&entry.head().word, LOCKED) {
                    Taken::Yes(latest_ts) => {
                        return Ok(KeyIntent {
                            buffer: self,
                            entry,
                            latest_ts,
                            installed: false,
                            finished: false,
                        });
                    }
                    // Being unlinked; look it up (or create it) again.
                    Taken::Dead => break,
                    Taken::Pruning => backoff.snooze(),
                    Taken::Locked => {
                        snafu::ensure!(
                            waits < max_waits,
                            IntentBusySnafu {
                                key: key.clone(),
                                spins: waits
                            }
                        );
                        waits += 1;
                        if backoff.is_completed() {
                            std::thread::sleep(INTENT_SLEEP);
                        } else {
                            backoff.snooze();
                        }
                    }
                }
            }
            // The unlinker may be preempted between marking and removing.
            backoff.snooze();
        }
    }

    /// The head of `key` with its reference count taken (created if the
    /// key has none), so it stays valid without an epoch guard.
    fn counted_head(&self, key: &Key) -> CountedHead<'_> {
        let guard = &epoch::pin();
        let entry = match self.heads.get(key, guard).and_then(|entry| entry.pin()) {
            Some(entry) => entry,
            None => self
                .heads
                .get_or_insert(key.clone(), Head::default(), guard),
        };
        CountedHead::new(entry)
    }
}
