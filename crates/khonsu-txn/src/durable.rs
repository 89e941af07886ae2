//! Group commit: concurrent committers share one durable storage write.
//!
//! A committer whose transaction is validated and settled hands its
//! [`CommitRecord`] to [`Durability::persist`] and waits there until the
//! record is durable; only then does it install and publish its versions
//! (so nothing is visible before it is durable).
//!
//! ```text
//!  committer                         queue (SegQueue)        leader flag
//!  ─────────                         ────────────────        ───────────
//!  push(record) ───────────────────► [r1 r2 r3 …]
//!  fence(SeqCst)
//!  loop:
//!    record done?  → return its outcome
//!    promoted?     → lead
//!    CAS flag false→true? → lead     (one leader at a time)
//!    park()                          (woken when done or promoted)
//!
//!  lead:  pop up to MAX_GROUP_COMMITS records (all that arrived while the
//!         previous write was in flight) → Storage::write(group): one write,
//!         one sync → hand off: pop one waiting record and promote it (the
//!         flag stays held and passes to that committer), or, if none waits,
//!         clear the flag, fence(SeqCst), and look again → mark each record
//!         of the group done and unpark its committer.
//! ```
//!
//! **No lost wake-up.** A committer pushes, fences, then tries the flag; the
//! leader clears the flag, fences, then looks at the queue. With both fences
//! in the single `SeqCst` order, either the committer's CAS sees the cleared
//! flag (or a later value: then a later leader is on its way, and the same
//! argument applies to it), or the leader's look sees the pushed record (it
//! takes the flag back and promotes someone). So a queued record always has
//! a leader coming. A committer promoted or completed just before it parks
//! does not sleep: the unpark is kept as the thread's park token.
//!
//! **Fairness.** A leader writes one group and hands off: under constant
//! load no thread leads forever while its own commit waits to return.
//!
//! **Gathering.** Left alone, busy committers settle into two cohorts that
//! take turns: a group carries the commits that arrived during the previous
//! write, about half of them. So a leader first waits briefly for the write
//! transactions still in flight (counted from their first staged write until
//! they drop) to queue: while fewer commits are queued than such
//! transactions are open and commits keep arriving, it yields — for at most
//! half the last write's duration and 300 µs, and no longer than 40 µs
//! after the last arrival. A lone writer never waits. This is `PostgreSQL`'s
//! `commit_delay` with `commit_siblings`, made adaptive;
//! `KhonsuBuilder::group_commit_gather(false)` turns it off.
//!
//! **Failures.** A write that fails with
//! [`WriteFailure::NothingWritten`] fails exactly the commits of its group.
//! One whose outcome is unknown (a failed sync), or an adapter that
//! panicked, fails them too and marks the storage *unusable*: every later
//! commit is refused until the database is reopened and recovered from what
//! is really on disk, as `PostgreSQL` does after an `fsync` failure. Nothing
//! is retried or guessed.
//!
//! The in-memory path (no storage) never comes here: it has no queue, no
//! flag and no wait.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crossbeam_queue::SegQueue;
use crossbeam_utils::CachePadded;
use khonsu_storage::{CommitRecord, Storage, StorageStats, WriteFailure, WriteGroup};

/// Most commits one storage write carries.
const MAX_GROUP_COMMITS: usize = 1024;

/// Most bytes (keys and encoded values) one storage write carries, unless
/// its first commit alone is larger.
const MAX_GROUP_BYTES: usize = 64 << 20;

/// The storages attached to a live database, by address. Two databases on
/// one storage would each run their own clock and lose each other's
/// commits at the next recovery, so a storage is attached once at a time.
/// Touched only when a database is built or dropped.
static ATTACHED: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

/// Longest a leader waits for open writers to join its group.
const MAX_GATHER: Duration = Duration::from_micros(300);

/// A leader stops waiting once no commit arrived for this long.
const QUIET_GATHER: Duration = Duration::from_micros(40);

/// A record waiting in the queue.
const QUEUED: u8 = 0;
/// The record's committer must lead the next write (the flag is its).
const PROMOTED: u8 = 1;
/// The record's write is over; its outcome is set.
const DONE: u8 = 2;

/// Why a commit's record did not become durable.
#[derive(Clone, Debug)]
pub(crate) enum PersistError {
    /// The write of its group failed (see the failure for what is known).
    Failed(Arc<WriteFailure>),
    /// An earlier write's outcome is unknown: the storage takes no more
    /// commits until the database is reopened.
    Unusable(Arc<WriteFailure>),
}

/// One commit waiting for its group's write.
struct Pending {
    record: CommitRecord,
    bytes: usize,
    committer: Thread,
    state: AtomicU8,
    outcome: OnceLock<Result<(), PersistError>>,
}

/// Counters of the group-commit path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupCommitStats {
    /// Storage writes issued (successful or not).
    pub groups: u64,
    /// Commits those writes carried.
    pub commits: u64,
    /// The most commits one write carried.
    pub largest_group: u64,
    /// Commits queued for the next write right now.
    pub waiting: u64,
}

/// A database's storage, with the group-commit machinery in front of it.
pub(crate) struct Durability {
    storage: Arc<dyn Storage>,
    group_commit: bool,
    queue: SegQueue<Arc<Pending>>,
    /// Held by the committer writing a group (see the module docs).
    leader: CachePadded<AtomicBool>,
    /// Set once a write's outcome is unknown: every later commit fails.
    unusable: OnceLock<Arc<WriteFailure>>,
    /// Transactions with staged writes, not yet dropped.
    open_writers: CachePadded<AtomicUsize>,
    /// Duration of the last storage write, in nanoseconds.
    last_write_nanos: AtomicU64,
    gather: bool,
    groups: AtomicU64,
    commits: AtomicU64,
    largest_group: AtomicU64,
}

impl Durability {
    /// Attaches `storage` to a new database.
    ///
    /// # Errors
    /// The storage's name when another live database has it attached.
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        group_commit: bool,
        gather: bool,
    ) -> Result<Self, &'static str> {
        let address = storage_address(&storage);
        let newly = ATTACHED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(HashSet::new)
            .insert(address);
        if !newly {
            return Err(storage.name());
        }
        Ok(Self {
            storage,
            group_commit,
            queue: SegQueue::new(),
            leader: CachePadded::new(AtomicBool::new(false)),
            unusable: OnceLock::new(),
            open_writers: CachePadded::new(AtomicUsize::new(0)),
            last_write_nanos: AtomicU64::new(0),
            gather,
            groups: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            largest_group: AtomicU64::new(0),
        })
    }

    pub(crate) fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub(crate) fn group_commit(&self) -> bool {
        self.group_commit
    }

    /// A transaction staged its first write.
    pub(crate) fn writer_opened(&self) {
        self.open_writers.fetch_add(1, Ordering::Relaxed);
    }

    /// A transaction that had staged writes is gone.
    pub(crate) fn writer_closed(&self) {
        self.open_writers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Transactions with staged writes right now.
    #[cfg(test)]
    pub(crate) fn open_writers(&self) -> usize {
        self.open_writers.load(Ordering::Relaxed)
    }

    /// Why the storage takes no more commits, if it does not.
    pub(crate) fn unusable(&self) -> Option<&Arc<WriteFailure>> {
        self.unusable.get()
    }

    /// Refuses every later commit: memory and storage may disagree (a
    /// durable commit could not be installed).
    pub(crate) fn mark_unusable(&self, why: String) {
        let _ = self.unusable.set(Arc::new(WriteFailure::OutcomeUnknown(
            khonsu_storage::Error::backend(why),
        )));
    }

    pub(crate) fn stats(&self) -> (GroupCommitStats, StorageStats) {
        let group = GroupCommitStats {
            groups: self.groups.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            largest_group: self.largest_group.load(Ordering::Relaxed),
            waiting: self.queue.len() as u64,
        };
        (group, self.storage.stats())
    }

    /// Makes `record` durable, alone or with the commits that arrive while
    /// another write is in flight. Returns once it is durable, or failed.
    pub(crate) fn persist(&self, record: CommitRecord) -> Result<(), PersistError> {
        if let Some(failure) = self.unusable.get() {
            return Err(PersistError::Unusable(Arc::clone(failure)));
        }
        if !self.group_commit {
            let outcome = self.write(&[&record]);
            return outcome;
        }
        let pending = Arc::new(Pending {
            bytes: record.stored_bytes(),
            record,
            committer: thread::current(),
            state: AtomicU8::new(QUEUED),
            outcome: OnceLock::new(),
        });
        self.queue.push(Arc::clone(&pending));
        // Pairs with the leader's fence after it clears the flag (module
        // docs, "No lost wake-up").
        fence(Ordering::SeqCst);
        loop {
            match pending.state.load(Ordering::Acquire) {
                DONE => {
                    return pending
                        .outcome
                        .get()
                        .cloned()
                        .unwrap_or_else(|| Err(self.internal_failure()));
                }
                PROMOTED => self.lead(Some(Arc::clone(&pending))),
                _ => {
                    if self
                        .leader
                        .compare_exchange(false, true, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
                    {
                        self.lead(None);
                    } else {
                        thread::park();
                    }
                }
            }
        }
    }

    /// Writes groups while holding the leader flag, then hands it off.
    /// `first` is the record this leader was promoted for.
    fn lead(&self, first: Option<Arc<Pending>>) {
        self.gather(usize::from(first.is_some()));
        let mut group: Vec<Arc<Pending>> = Vec::new();
        let mut bytes = 0;
        if let Some(first) = first {
            bytes += first.bytes;
            group.push(first);
        }
        while group.len() < MAX_GROUP_COMMITS && (group.is_empty() || bytes < MAX_GROUP_BYTES) {
            let Some(next) = self.queue.pop() else { break };
            bytes += next.bytes;
            group.push(next);
        }
        let outcome = if group.is_empty() {
            None
        } else {
            let records: Vec<&CommitRecord> = group.iter().map(|p| &p.record).collect();
            Some(self.write(&records))
        };
        // Hand off before waking the group, so the next write starts without
        // waiting for a wake-up per committer of this one.
        self.hand_off();
        if let Some(outcome) = outcome {
            for pending in group {
                let _ = pending.outcome.set(outcome.clone());
                pending.state.store(DONE, Ordering::Release);
                pending.committer.unpark();
            }
        }
    }

    /// Waits briefly for the writers that are still on their way to join
    /// the group (module docs, "Gathering"): while fewer commits are queued
    /// (plus `held`, the leader's own record if it holds it) than there are
    /// open write transactions, and commits keep arriving, yield — for at
    /// most half the last write's duration and [`MAX_GATHER`], and at most
    /// [`QUIET_GATHER`] after the last arrival.
    fn gather(&self, held: usize) {
        if !self.gather {
            return;
        }
        let queued = || self.queue.len() + held;
        if queued() >= self.open_writers.load(Ordering::Relaxed) {
            return;
        }
        let budget =
            Duration::from_nanos(self.last_write_nanos.load(Ordering::Relaxed) / 2).min(MAX_GATHER);
        let start = Instant::now();
        let (mut seen, mut last_arrival) = (queued(), start);
        loop {
            thread::yield_now();
            let now = Instant::now();
            let count = queued();
            if count >= self.open_writers.load(Ordering::Relaxed)
                || now.duration_since(start) >= budget
            {
                return;
            }
            if count > seen {
                (seen, last_arrival) = (count, now);
            } else if now.duration_since(last_arrival) >= QUIET_GATHER {
                return;
            }
        }
    }

    /// Passes the leader flag to a waiting committer, or clears it.
    fn hand_off(&self) {
        loop {
            if let Some(next) = self.queue.pop() {
                // The flag stays set: it now belongs to `next`'s committer.
                next.state.store(PROMOTED, Ordering::Release);
                next.committer.unpark();
                // `next` is handed over by value: its committer holds its own
                // `Arc` and leads with it.
                drop(next);
                return;
            }
            self.leader.store(false, Ordering::SeqCst);
            // Pairs with the committers' fence after their push.
            fence(Ordering::SeqCst);
            if self.queue.is_empty()
                || self
                    .leader
                    .compare_exchange(false, true, Ordering::SeqCst, Ordering::Relaxed)
                    .is_err()
            {
                return;
            }
        }
    }

    /// One storage write of `records`, and what it means for them.
    fn write(&self, records: &[&CommitRecord]) -> Result<(), PersistError> {
        if let Some(failure) = self.unusable.get() {
            return Err(PersistError::Unusable(Arc::clone(failure)));
        }
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.commits
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        self.largest_group
            .fetch_max(records.len() as u64, Ordering::Relaxed);
        let started = Instant::now();
        let written = catch_unwind(AssertUnwindSafe(|| {
            self.storage.write(WriteGroup::new(records))
        }));
        self.last_write_nanos.store(
            u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let written = written.unwrap_or_else(|_| {
            Err(WriteFailure::OutcomeUnknown(
                khonsu_storage::Error::backend(format!(
                    "the {} storage adapter panicked in write",
                    self.storage.name()
                )),
            ))
        });
        match written {
            Ok(()) => Ok(()),
            Err(failure) => {
                let failure = Arc::new(failure);
                if failure.is_outcome_unknown() {
                    let _ = self.unusable.set(Arc::clone(&failure));
                }
                Err(PersistError::Failed(failure))
            }
        }
    }

    /// A record marked done without an outcome: cannot happen (the
    /// outcome is set before the state), reported rather than trusted.
    fn internal_failure(&self) -> PersistError {
        PersistError::Failed(Arc::new(WriteFailure::OutcomeUnknown(
            khonsu_storage::Error::backend(format!(
                "group commit lost the outcome of a {} write",
                self.storage.name()
            )),
        )))
    }
}

fn storage_address(storage: &Arc<dyn Storage>) -> usize {
    Arc::as_ptr(storage).cast::<()>() as usize
}

impl Drop for Durability {
    fn drop(&mut self) {
        if let Some(attached) = ATTACHED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            attached.remove(&storage_address(&self.storage));
        }
    }
}

impl std::fmt::Debug for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durability")
            .field("storage", &self.storage)
            .field("group_commit", &self.group_commit)
            .field("unusable", &self.unusable.get().is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use khonsu_storage::MemoryStorage;

    #[test]
    fn a_storage_is_attached_once_and_released_on_drop() {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let first = Durability::new(Arc::clone(&storage), true, true).unwrap();
        assert_eq!(
            Durability::new(Arc::clone(&storage), true, true).err(),
            Some("memory")
        );
        drop(first);
        assert!(Durability::new(storage, true, true).is_ok());
    }
}
