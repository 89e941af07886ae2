//! [`Transaction`]: reads, writes, scans, commit and rollback.

use std::cell::Cell;
use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::RecordBatch;
use khonsu_concurrency::{
    ConflictResolution, DependencyTracker, StagedWrite, TransactionIsolation, WritePolicy,
    range_is_empty,
};
use khonsu_core::{INLINE_KEY_LEN, Key, RegisteredSnapshot, Timestamp};
use snafu::{ResultExt, ensure};

use crate::commit::CommitRequest;
use crate::db::Shared;
use crate::error::{ReadOnlySnafu, Result, SnapshotTooOldSnafu, UnstorableSnafu};
use crate::{CommitInfo, TransactionOptions};

/// Transaction ids a thread takes from the process-wide counter at a time.
const ID_BLOCK: u64 = 1024;

/// The first id of the next block handed to a thread.
static NEXT_ID_BLOCK: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's block of ids: the next one and the end of the block.
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };

    /// An emptied footprint left by this thread's last transaction, for its
    /// next one: with one transaction at a time per thread, building a
    /// footprint allocates nothing (nor does growing its read set to a few
    /// hundred reads again).
    static SPARE_TRACKER: Cell<Option<Box<DependencyTracker>>> = const { Cell::new(None) };
}

/// An empty footprint: this thread's spare, or a new one.
fn take_tracker() -> Box<DependencyTracker> {
    SPARE_TRACKER
        .try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Empties `tracker` and keeps it as this thread's spare (unless it holds
/// large allocations, or the thread is exiting). A transaction finished on
/// another thread than it started on leaves its footprint to that thread.
/// A thread keeps at most one spare, about 15 KB at the largest (see
/// `DependencyTracker::reset`), until it exits.
fn recycle_tracker(mut tracker: Box<DependencyTracker>) {
    if tracker.reset() {
        // An error means the thread's locals are being destroyed: the
        // tracker is dropped instead.
        let _ = SPARE_TRACKER.try_with(|spare| spare.set(Some(tracker)));
    }
}

/// A transaction id no other transaction of this process has: from the
/// thread's block, so starting a transaction writes no shared cache line
/// (one shared increment per [`ID_BLOCK`] transactions of a thread).
fn next_txn_id() -> u64 {
    IDS.with(|ids| {
        let (mut next, mut end) = ids.get();
        if next == end {
            next = NEXT_ID_BLOCK.fetch_add(ID_BLOCK, Ordering::Relaxed);
            end = next + ID_BLOCK;
        }
        ids.set((next + 1, end));
        next
    })
}

/// One transaction: a snapshot to read from and a private set of staged
/// writes, applied atomically by [`commit`](Self::commit).
///
/// Reads see the transaction's own writes first. Nothing is visible to
/// other transactions before `commit` returns `Ok`; dropping the
/// transaction (or [`rollback`](Self::rollback)) discards everything.
/// `commit` and `rollback` take the transaction by value, so a finished
/// transaction cannot be used again:
///
/// ```compile_fail
/// let db = khonsu_txn::Khonsu::builder().build().unwrap();
/// let t = db.start_transaction();
/// t.commit().unwrap();
/// t.read("k"); // error[E0382]: borrow of moved value: `t`
/// ```
pub struct Transaction {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: u64,
    pub(crate) snapshot_ts: Timestamp,
    pub(crate) registration: Option<RegisteredSnapshot>,
    pub(crate) isolation: TransactionIsolation,
    pub(crate) resolution: ConflictResolution,
    pub(crate) read_only: bool,
    /// Whether this transaction is counted among the durable database's
    /// open writers (from its first staged write until it drops), which
    /// group commit uses to gather a group (`Durability::gather`).
    pub(crate) counted_writer: bool,
    /// What the transaction read and wrote, built on its first recorded
    /// read, scan or write: a read-only transaction never builds one, and
    /// a `Transaction` stays 64 bytes.
    pub(crate) tracker: Option<Box<DependencyTracker>>,
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("id", &self.id)
            .field("snapshot_ts", &self.snapshot_ts)
            .field("isolation", &self.isolation)
            .field("resolution", &self.resolution)
            .field("read_only", &self.read_only)
            .field(
                "writes",
                &self.tracker.as_ref().map_or(0, |t| t.write_count()),
            )
            .finish_non_exhaustive()
    }
}

impl Transaction {
    #[inline]
    pub(crate) fn begin(shared: Arc<Shared>, options: TransactionOptions) -> Self {
        let isolation = options.get_isolation().unwrap_or(shared.isolation);
        let resolution = options
            .get_conflict_resolution()
            .unwrap_or(shared.resolution);
        let reads_latest = !isolation.reads_snapshot();
        let (registration, snapshot_ts) = shared.snapshots.register(&shared.oracle, reads_latest);
        let id = next_txn_id();
        Self {
            shared,
            id,
            snapshot_ts,
            registration: Some(registration),
            isolation,
            resolution,
            read_only: options.is_read_only(),
            counted_writer: false,
            tracker: None,
        }
    }

    /// The footprint, built on first use.
    fn tracker_mut(&mut self) -> &mut DependencyTracker {
        self.tracker.get_or_insert_with(take_tracker)
    }

    /// This transaction's id, unique within the process (hence within its
    /// database handle). Ids are handed to threads in blocks of 1,024: a
    /// thread's ids grow, ids of different threads do not follow start
    /// order, and the values are sparse (a new database does not start at
    /// 1; a thread that exits leaves the rest of its block unused).
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The snapshot timestamp taken at start. `RepeatableRead` and
    /// `Serializable` read at it; `ReadCommitted` reads the latest state.
    #[must_use]
    pub fn snapshot_ts(&self) -> Timestamp {
        self.snapshot_ts
    }

    /// The isolation level in force.
    #[must_use]
    pub fn isolation(&self) -> TransactionIsolation {
        self.isolation
    }

    /// The conflict resolution in force.
    #[must_use]
    pub fn conflict_resolution(&self) -> ConflictResolution {
        self.resolution
    }

    /// Whether the transaction was started read-only.
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The timestamp the next read reads at: the snapshot, or for
    /// `ReadCommitted` the newest visible one — announced in the registry
    /// first, so the transaction pins only what it reads now, not everything
    /// since it began.
    fn read_ts(&mut self) -> Timestamp {
        if self.isolation.reads_snapshot() {
            return self.snapshot_ts;
        }
        match self.registration.as_mut() {
            Some(registration) => self
                .shared
                .snapshots
                .advance(registration, &self.shared.oracle),
            None => self.shared.oracle.visible(),
        }
    }

    /// Fails once the transaction is older than the maximum snapshot age:
    /// called *after* each read of committed data, so a read that raced the
    /// reclamation of what it read is refused rather than returned.
    fn check_age(&self) -> Result<()> {
        if let Some(registration) = &self.registration
            && let Some(age) = self.shared.snapshots.expired(registration)
        {
            return SnapshotTooOldSnafu {
                txn_id: self.id,
                snapshot_ts: self.snapshot_ts,
                age,
                max_age: self.shared.snapshots.max_age().unwrap_or_default(),
            }
            .fail();
        }
        Ok(())
    }

    /// Reads `key`: this transaction's own write if it made one, otherwise
    /// the committed value visible at its isolation level. `Ok(None)` when
    /// the key is absent (never written, or deleted).
    ///
    /// # Errors
    /// [`Error::SnapshotTooOld`](crate::Error::SnapshotTooOld) when the
    /// transaction is older than the database's maximum snapshot age.
    pub fn read(&mut self, key: impl AsRef<[u8]>) -> Result<Option<Arc<RecordBatch>>> {
        let bytes = key.as_ref();
        // Own writes first. A short key is built inline (no allocation) and
        // compared as a key; a long one is looked up by its bytes, so it is
        // allocated only when the transaction did not write it.
        let tracker = self.tracker.as_deref();
        let key = if bytes.len() > INLINE_KEY_LEN {
            if let Some(staged) = tracker.and_then(|t| t.staged(bytes)) {
                return Ok(staged.value());
            }
            Key::from(bytes)
        } else {
            let key = Key::from(bytes);
            if let Some(staged) = tracker.and_then(|t| t.staged_key(&key)) {
                return Ok(staged.value());
            }
            key
        };
        let read_ts = self.read_ts();
        let version = self.shared.buffer.read_at(&key, read_ts);
        self.check_age()?;
        if !self.read_only {
            self.tracker_mut().record_read(&key, version.commit_ts);
        }
        Ok(version.value)
    }

    /// Stages `batch` as the new value of `key`.
    ///
    /// `batch` is a `RecordBatch` or an `Arc<RecordBatch>`: passing an
    /// `Arc` stores that very allocation (no copy, no new `Arc`), so a batch
    /// shared by many keys or transactions is held once.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use khonsu_txn::Khonsu;
    ///
    /// let db = Khonsu::builder().build()?;
    /// let batch = RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![7])) as _)]).unwrap();
    /// let shared = Arc::new(batch.clone());
    /// let mut t = db.start_transaction();
    /// t.write("by-value", batch)?;
    /// t.write("shared", Arc::clone(&shared))?;
    /// t.commit()?;
    /// let stored = db.start_transaction().read("shared")?.unwrap();
    /// assert!(Arc::ptr_eq(&stored, &shared));
    /// # Ok::<(), khonsu_txn::Error>(())
    /// ```
    ///
    /// # Errors
    /// * [`Error::ReadOnly`](crate::Error::ReadOnly) in a read-only transaction;
    /// * [`Error::Unstorable`](crate::Error::Unstorable) when the database
    ///   persists and its storage cannot store the value (Arrow IPC cannot
    ///   encode it, it is larger than 3 GiB) or the key. Nothing is staged;
    ///   the transaction stays usable.
    pub fn write(&mut self, key: impl Into<Key>, batch: impl Into<Arc<RecordBatch>>) -> Result<()> {
        ensure!(
            !self.read_only,
            ReadOnlySnafu {
                txn_id: self.id,
                operation: "write"
            }
        );
        let (key, batch) = (key.into(), batch.into());
        if let Some(durable) = &self.shared.durable {
            if !self.counted_writer {
                durable.writer_opened();
                self.counted_writer = true;
            }
            let storage = durable.storage();
            storage
                .check_key(key.as_bytes())
                .and_then(|()| storage.check_value(&batch))
                .with_context(|_| UnstorableSnafu {
                    txn_id: self.id,
                    key: key.to_string(),
                })?;
        }
        self.tracker_mut()
            .record_write(key, StagedWrite::Put(batch));
        Ok(())
    }

    /// Stages the deletion of `key` (deleting an absent key is allowed).
    ///
    /// # Errors
    /// [`Error::ReadOnly`](crate::Error::ReadOnly) in a read-only
    /// transaction; [`Error::Unstorable`](crate::Error::Unstorable) for a
    /// key the storage cannot hold.
    pub fn delete(&mut self, key: impl Into<Key>) -> Result<()> {
        ensure!(
            !self.read_only,
            ReadOnlySnafu {
                txn_id: self.id,
                operation: "delete"
            }
        );
        let key = key.into();
        if let Some(durable) = &self.shared.durable {
            if !self.counted_writer {
                durable.writer_opened();
                self.counted_writer = true;
            }
            durable
                .storage()
                .check_key(key.as_bytes())
                .with_context(|_| UnstorableSnafu {
                    txn_id: self.id,
                    key: key.to_string(),
                })?;
        }
        self.tracker_mut().record_write(key, StagedWrite::Delete);
        Ok(())
    }

    /// Every live key in `range` with its value, in key order, as this
    /// transaction sees them (own writes and deletes applied). An empty or
    /// inverted range yields nothing. At `Serializable` the whole range is
    /// validated at commit, so a concurrent insert into it (a phantom)
    /// aborts a read-write transaction.
    ///
    /// # Errors
    /// [`Error::SnapshotTooOld`](crate::Error::SnapshotTooOld) when the
    /// transaction is older than the database's maximum snapshot age.
    pub fn scan(&mut self, range: impl RangeBounds<Key>) -> Result<Vec<(Key, Arc<RecordBatch>)>> {
        let start = range.start_bound().cloned();
        let end = range.end_bound().cloned();
        self.scan_bounds(start, end)
    }

    /// Every live key starting with `prefix`, in key order (see
    /// [`scan`](Self::scan)).
    ///
    /// # Errors
    /// As [`scan`](Self::scan).
    pub fn scan_prefix(
        &mut self,
        prefix: impl AsRef<[u8]>,
    ) -> Result<Vec<(Key, Arc<RecordBatch>)>> {
        let start = Key::from(prefix.as_ref());
        let end = start
            .prefix_successor()
            .map_or(Bound::Unbounded, Bound::Excluded);
        self.scan_bounds(Bound::Included(start), end)
    }

    fn scan_bounds(
        &mut self,
        start: Bound<Key>,
        end: Bound<Key>,
    ) -> Result<Vec<(Key, Arc<RecordBatch>)>> {
        if range_is_empty(start.as_ref(), end.as_ref()) {
            return Ok(Vec::new());
        }
        let read_ts = self.read_ts();
        let committed = self
            .shared
            .buffer
            .scan_at(start.as_ref(), end.as_ref(), read_ts);
        self.check_age()?;
        let merged = match self.tracker.as_deref() {
            Some(tracker) if !tracker.is_read_only() => {
                merge_own_writes(committed, tracker.writes_in(start.as_ref(), end.as_ref()))
            }
            _ => committed,
        };
        if !self.read_only {
            // Every level records it: writing a scanned key later is a
            // read-modify-write; Serializable also validates the whole range.
            self.tracker_mut().record_range(start, end, read_ts);
        }
        Ok(merged)
    }

    /// Commits: validates, settles conflicts, makes the commit durable (when
    /// the database persists: `commit` returns only after the storage write
    /// carrying it is synced), and makes every staged write visible at once.
    /// See `docs/commit-protocol.md` and `docs/storage.md`.
    ///
    /// # Errors
    /// * a conflict ([`Error::is_conflict`](crate::Error::is_conflict)):
    ///   nothing became visible; retrying may succeed;
    /// * [`Error::Aborted`](crate::Error::Aborted) with an `Append` error
    ///   (mismatched schemas): nothing became visible;
    /// * [`Error::Storage`](crate::Error::Storage): the storage write
    ///   failed and wrote nothing; nothing became visible;
    /// * [`Error::StorageOutcomeUnknown`](crate::Error::StorageOutcomeUnknown):
    ///   the write may or may not be durable; nothing is visible, and the
    ///   database refuses commits until reopened;
    /// * [`Error::StorageUnusable`](crate::Error::StorageUnusable): an
    ///   earlier write's outcome is unknown; reopen the database;
    /// * [`Error::SnapshotTooOld`](crate::Error::SnapshotTooOld): the
    ///   transaction wrote but is older than the maximum snapshot age.
    pub fn commit(mut self) -> Result<CommitInfo> {
        // The footprint is lent to the pipeline and put back afterwards, so
        // the transaction's drop recycles it whatever the outcome.
        let Some(mut footprint) = self.tracker.take_if(|t| !t.is_read_only()) else {
            return Ok(CommitInfo {
                commit_ts: self.snapshot_ts,
                read_only: true,
                ..CommitInfo::default()
            });
        };
        if let Err(err) = self.check_age() {
            self.tracker = Some(footprint);
            return Err(err);
        }
        footprint.seal();
        let request = CommitRequest {
            txn_id: self.id,
            policy: WritePolicy {
                isolation: self.isolation,
                resolution: self.resolution,
                snapshot: self.snapshot_ts,
            },
            footprint: &footprint,
        };
        let result = crate::commit::commit(&self.shared, &request);
        self.tracker = Some(footprint);
        result
    }

    /// Discards every staged write. Same as dropping the transaction.
    pub fn rollback(self) {
        drop(self);
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.counted_writer
            && let Some(durable) = &self.shared.durable
        {
            durable.writer_closed();
        }
        if let Some(registration) = self.registration.take() {
            self.shared.snapshots.release(registration);
        }
        if let Some(tracker) = self.tracker.take() {
            recycle_tracker(tracker);
        }
    }
}

/// Overlays this transaction's staged writes (both inputs in key order).
fn merge_own_writes<'a>(
    committed: Vec<(Key, Arc<RecordBatch>)>,
    staged: impl Iterator<Item = (&'a Key, &'a StagedWrite)>,
) -> Vec<(Key, Arc<RecordBatch>)> {
    let mut staged = staged.peekable();
    if staged.peek().is_none() {
        return committed;
    }
    let mut out = Vec::with_capacity(committed.len());
    let mut committed = committed.into_iter().peekable();
    loop {
        let take_staged = match (committed.peek(), staged.peek()) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some((ck, _)), Some((sk, _))) => *sk <= ck,
        };
        if take_staged {
            if let Some((key, write)) = staged.next() {
                if committed.peek().is_some_and(|(ck, _)| ck == key) {
                    committed.next(); // shadowed by our write
                }
                if let StagedWrite::Put(batch) = write {
                    out.push((key.clone(), Arc::clone(batch)));
                }
            }
        } else if let Some(entry) = committed.next() {
            out.push(entry);
        }
    }
    out
}
