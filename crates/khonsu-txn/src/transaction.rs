//! [`Transaction`]: reads, writes, scans, commit and rollback.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow_array::RecordBatch;
use khonsu_concurrency::{
    ConflictResolution, DependencyTracker, Observed, StagedWrite, TransactionIsolation,
    WritePolicy, range_is_empty,
};
use khonsu_core::{Key, KeyRange, RegisteredSnapshot, Timestamp};
use snafu::{IntoError, ResultExt, ensure};

use crate::commit::CommitRequest;
use crate::db::{PinInner, Shared};
use crate::error::{
    AbortedSnafu, AppendSnafu, InvalidKeySnafu, ReadOnlySnafu, Result, SnapshotTooOldSnafu,
    UnstorableSnafu,
};
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
    /// The snapshot pin a transaction started at a past timestamp shares
    /// (then `registration` is `None`).
    pub(crate) pin: Option<Arc<PinInner>>,
    pub(crate) isolation: TransactionIsolation,
    pub(crate) resolution: ConflictResolution,
    pub(crate) read_only: bool,
    /// Whether this transaction is counted among the durable database's
    /// open writers (from its first staged write until it drops), which
    /// group commit uses to gather a group (`Durability::gather`).
    pub(crate) counted_writer: bool,
    /// What the transaction read and wrote, built on its first recorded
    /// read, scan or write: a read-only transaction never builds one, and
    /// a `Transaction` stays 88 bytes (the footprint is boxed).
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
        let (registration, snapshot_ts) =
            if options.is_read_only() && isolation == TransactionIsolation::Serializable {
                // Keeps no read set: precise `Serializable` must know it.
                shared.register_read_only()
            } else {
                shared.snapshots.register(&shared.oracle, reads_latest)
            };
        let id = next_txn_id();
        Self {
            shared,
            id,
            snapshot_ts,
            registration: Some(registration),
            pin: None,
            isolation,
            resolution,
            read_only: options.is_read_only(),
            counted_writer: false,
            tracker: None,
        }
    }

    /// A read-only transaction at a pin's timestamp, sharing its snapshot.
    pub(crate) fn begin_pinned(shared: Arc<Shared>, pin: Arc<PinInner>) -> Self {
        let resolution = shared.resolution;
        Self {
            shared,
            id: next_txn_id(),
            snapshot_ts: pin.ts,
            registration: None,
            pin: Some(pin),
            // Reads at the snapshot; read-only, so never validated.
            isolation: TransactionIsolation::RepeatableRead,
            resolution,
            read_only: true,
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
        let registration = self
            .registration
            .as_ref()
            .or_else(|| self.pin.as_ref().and_then(|pin| pin.registration.as_ref()));
        if let Some(registration) = registration
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
    /// the key is absent (never written, or deleted). A key staged with
    /// [`append`](Self::append) reads as its committed value followed by
    /// the staged rows (and counts as a read of the committed value).
    ///
    /// `key` is anything a [`Key`] is built from: `&str`, `String`,
    /// `&[u8]`, `Vec<u8>`, `u64`, a `Key` or `&Key`, a
    /// [`KeyBuilder`](khonsu_core::KeyBuilder).
    ///
    /// # Errors
    /// [`Error::SnapshotTooOld`](crate::Error::SnapshotTooOld) when the
    /// transaction is older than the database's maximum snapshot age;
    /// [`Error::Append`](crate::Error::Append) when rows staged by
    /// `append` no longer fit the committed batch (a concurrent commit
    /// changed its schema, at `ReadCommitted`).
    pub fn read(&mut self, key: impl Into<Key>) -> Result<Option<Arc<RecordBatch>>> {
        let key = key.into();
        let staged = self.tracker.as_deref().and_then(|t| t.staged_key(&key));
        let appended = match staged {
            Some(StagedWrite::Put(batch)) => return Ok(Some(Arc::clone(batch))),
            Some(StagedWrite::Delete) => return Ok(None),
            Some(StagedWrite::Append(rows)) => Some(Arc::clone(rows)),
            None => None,
        };
        let read_ts = self.read_ts();
        let version = self.shared.buffer.read_at(&key, read_ts);
        self.check_age()?;
        if !self.read_only {
            // The value itself only where a resolution can use it: an
            // `Append`-resolved rewrite at `ReadCommitted` appends only
            // the rows it added to what it read. One entry per key.
            let observed = match &version.value {
                None => Observed::Absent,
                Some(value) if self.keeps_read_values() => Observed::Value(Arc::clone(value)),
                Some(_) => Observed::Unknown,
            };
            self.tracker_mut()
                .record_observation(&key, version.commit_ts, observed);
        }
        match (appended, version.value) {
            (None, value) => Ok(value),
            (Some(rows), None) => Ok(Some(rows)),
            (Some(rows), Some(committed)) => {
                let txn_id = self.id;
                khonsu_arrow_utils::append(&committed, &rows)
                    .map(|batch| Some(Arc::new(batch)))
                    .with_context(|_| AppendSnafu {
                        txn_id,
                        key: key.short().to_string(),
                    })
            }
        }
    }

    /// Whether point reads keep the batch they saw: only at `ReadCommitted`,
    /// the one level where a resolution uses it (an `Append`-resolved
    /// rewrite, which may be any write's own: `write_with`). One batch per
    /// key at most: the newest read replaces the older.
    fn keeps_read_values(&self) -> bool {
        self.isolation == TransactionIsolation::ReadCommitted
    }

    /// Counts this transaction among the durable database's open writers
    /// (once) and, for a write of `value`, checks the key contract and that
    /// the storage can hold the value. (A delete takes any key: there is
    /// nothing to delete under a key no store can hold.)
    fn prepare_write(
        &mut self,
        operation: &'static str,
        key: &Key,
        value: Option<&RecordBatch>,
    ) -> Result<()> {
        ensure!(
            !self.read_only,
            ReadOnlySnafu {
                txn_id: self.id,
                operation
            }
        );
        if value.is_some() {
            ensure!(
                key.is_writable(),
                InvalidKeySnafu {
                    txn_id: self.id,
                    key: key.short().to_string(),
                    len: key.len(),
                }
            );
        }
        if let Some(durable) = &self.shared.durable {
            if !self.counted_writer {
                durable.writer_opened();
                self.counted_writer = true;
            }
            if let Some(batch) = value {
                let storage = durable.storage();
                storage
                    .check_key(key.as_bytes())
                    .and_then(|()| storage.check_value(batch))
                    .with_context(|_| UnstorableSnafu {
                        txn_id: self.id,
                        key: key.short().to_string(),
                    })?;
            }
        }
        Ok(())
    }

    /// Stages `batch` as the new value of `key`, under the transaction's
    /// conflict resolution.
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
    /// * [`Error::InvalidKey`](crate::Error::InvalidKey) for an empty key or
    ///   one longer than [`MAX_KEY_LEN`](khonsu_core::MAX_KEY_LEN) bytes
    ///   (with or without storage);
    /// * [`Error::Unstorable`](crate::Error::Unstorable) when the database
    ///   persists and its storage cannot store the value (Arrow IPC cannot
    ///   encode it or decode it again, it is larger than 3 GiB).
    ///
    /// Nothing is staged on error; the transaction stays usable.
    pub fn write(&mut self, key: impl Into<Key>, batch: impl Into<Arc<RecordBatch>>) -> Result<()> {
        let (key, batch) = (key.into(), batch.into());
        self.prepare_write("write", &key, Some(&batch))?;
        self.tracker_mut()
            .record_write(key, StagedWrite::Put(batch));
        Ok(())
    }

    /// [`write`](Self::write) with this write's own conflict resolution,
    /// which takes precedence over the transaction's
    /// ([`TransactionOptions::conflict_resolution`]) and the database's
    /// ([`KhonsuBuilder::conflict_resolution`](crate::KhonsuBuilder::conflict_resolution)).
    /// One transaction can so update a position that must abort on a
    /// conflict (`Fail`) and refresh a cache entry that may be dropped
    /// (`Ignore`). A later write of the same key replaces both the value
    /// and the resolution. See `docs/isolation.md` for every combination
    /// with the isolation levels.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use khonsu_txn::{ConflictResolution, Khonsu};
    ///
    /// let db = Khonsu::builder().build()?;
    /// let v = |n: i64| RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![n])) as _)]).unwrap();
    /// let mut slow = db.start_transaction();
    /// slow.write_with("cache", v(1), ConflictResolution::Ignore)?;
    /// slow.write("position", v(10))?;
    /// db.atomically(|t| t.write("cache", v(2)))?; // commits first
    /// let info = slow.commit()?;                   // the cache write is dropped
    /// assert_eq!(info.ignored.len(), 1);
    /// # Ok::<(), khonsu_txn::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`write`](Self::write).
    pub fn write_with(
        &mut self,
        key: impl Into<Key>,
        batch: impl Into<Arc<RecordBatch>>,
        resolution: ConflictResolution,
    ) -> Result<()> {
        let (key, batch) = (key.into(), batch.into());
        self.prepare_write("write", &key, Some(&batch))?;
        self.tracker_mut()
            .record_write_with(key, StagedWrite::Put(batch), Some(resolution));
        Ok(())
    }

    /// Stages `rows` to be appended to whatever `key` holds when the
    /// transaction commits (the key is created with them when absent).
    ///
    /// An append is not a read: concurrent appends to one key never
    /// conflict with each other — each lands, in commit order, whatever the
    /// isolation level or conflict resolution. A read of the key in this
    /// transaction sees the committed value followed by the staged rows
    /// (that read *is* a read, validated as any other). Appends after a
    /// staged `write` extend it; an append after a `delete` starts the key
    /// afresh; a `write` or `delete` after an append replaces it.
    ///
    /// The rows' schema must be the key's: it is checked against what the
    /// transaction sees now (error here, nothing staged) and again at
    /// commit against the value the rows land on (the commit aborts with
    /// [`Error::Aborted`](crate::Error::Aborted), nothing of it visible).
    ///
    /// An append copies the key's batch into a new one at commit (a
    /// `RecordBatch` is contiguous), so its cost grows with the key's row
    /// count: keep logs bounded, or one key per period (see
    /// [`Key::builder`](khonsu_core::Key::builder)).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use khonsu_txn::Khonsu;
    ///
    /// let db = Khonsu::builder().build()?;
    /// let trade = |qty: i64| RecordBatch::try_from_iter([("qty", Arc::new(Int64Array::from(vec![qty])) as _)]).unwrap();
    /// let mut a = db.start_transaction();
    /// let mut b = db.start_transaction();
    /// a.append("trades", trade(5))?;
    /// b.append("trades", trade(7))?;
    /// a.commit()?;
    /// b.commit()?; // no conflict: both land
    /// assert_eq!(db.start_transaction().read("trades")?.unwrap().num_rows(), 2);
    /// # Ok::<(), khonsu_txn::Error>(())
    /// ```
    ///
    /// # Errors
    /// * [`Error::Append`](crate::Error::Append): the rows' schema is not
    ///   the key's; nothing is staged;
    /// * as [`write`](Self::write).
    pub fn append(&mut self, key: impl Into<Key>, rows: impl Into<Arc<RecordBatch>>) -> Result<()> {
        let (key, rows) = (key.into(), rows.into());
        self.prepare_write("append", &key, Some(&rows))?;
        let txn_id = self.id;
        let context = |key: &Key| AppendSnafu {
            txn_id,
            key: key.short().to_string(),
        };
        let staged = self
            .tracker
            .as_deref()
            .is_some_and(|t| t.staged_key(&key).is_some());
        if !staged {
            // What is staged was checked when it was; otherwise check
            // against the committed value this transaction sees.
            let read_ts = self.read_ts();
            if let Some(committed) = self.shared.buffer.read_at(&key, read_ts).value {
                khonsu_arrow_utils::ensure_same_schema(committed.schema_ref(), rows.schema_ref())
                    .with_context(|_| context(&key))?;
            }
        }
        let tracker = self.tracker_mut();
        tracker
            .record_append(key.clone(), &rows)
            .with_context(|_| context(&key))
    }

    /// Stages the deletion of `key` (deleting an absent key is allowed, as
    /// is deleting a key no transaction may write).
    ///
    /// # Errors
    /// [`Error::ReadOnly`](crate::Error::ReadOnly) in a read-only
    /// transaction.
    pub fn delete(&mut self, key: impl Into<Key>) -> Result<()> {
        let key = key.into();
        self.prepare_write("delete", &key, None)?;
        self.tracker_mut().record_write(key, StagedWrite::Delete);
        Ok(())
    }

    /// Every live key in `range` with its value, in key order, as this
    /// transaction sees them (own writes and deletes applied). An empty or
    /// inverted range yields nothing. At `Serializable` the whole range is
    /// validated at commit, so a concurrent insert into it (a phantom)
    /// aborts a read-write transaction.
    ///
    /// `range` is any range of keys: `..`, `"a".."b"`, `10_u64..20`,
    /// `Key::from(a)..=Key::from(b)`, `(Bound<Key>, Bound<Key>)`
    /// (see [`KeyRange`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use khonsu_txn::Khonsu;
    ///
    /// let db = Khonsu::builder().build()?;
    /// let v = |n: i64| RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![n])) as _)]).unwrap();
    /// db.atomically(|t| {
    ///     for n in 0..30_u64 {
    ///         t.write(n, v(n as i64))?;
    ///     }
    ///     t.write("apple", v(1))?;
    ///     t.write("banana", v(2))
    /// })?;
    /// let mut t = db.start_transaction();
    /// assert_eq!(t.scan(10_u64..20)?.len(), 10);
    /// assert_eq!(t.scan("a".."b")?.len(), 1);
    /// assert_eq!(t.scan(..)?.len(), 32);
    /// # Ok::<(), khonsu_txn::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::SnapshotTooOld`](crate::Error::SnapshotTooOld) when the
    /// transaction is older than the database's maximum snapshot age;
    /// [`Error::Append`](crate::Error::Append) as for [`read`](Self::read).
    pub fn scan(&mut self, range: impl KeyRange) -> Result<Vec<(Key, Arc<RecordBatch>)>> {
        let (start, end) = range.into_bounds();
        self.scan_bounds(start, end)
    }

    /// A streaming scan of `range`: yields the live keys lazily, in pages
    /// read from the buffer as the iterator advances, so the first rows
    /// come without reading the rest. [`ScanIter::limit`],
    /// [`ScanIter::reverse`] and [`ScanIter::keys`] shape it.
    ///
    /// It reads at one timestamp throughout (the snapshot; at
    /// `ReadCommitted`, the newest visible when it was created) and sees
    /// the transaction's own writes, as [`scan`](Self::scan) does. It
    /// records the same read dependency as `scan`, for the part of the
    /// range it went through: all of it once it returned `None` by
    /// reaching the end, otherwise the stretches it yielded, up to the
    /// last key it yielded in each direction (a key inserted after a
    /// `limit` stopped it is not a phantom). Nothing is recorded before the
    /// first call to `next`. `limit` and `reverse` may be called on a
    /// started iterator: they shape what is still to come.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use khonsu_txn::Khonsu;
    ///
    /// let db = Khonsu::builder().build()?;
    /// let v = |n: i64| RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![n])) as _)]).unwrap();
    /// db.atomically(|t| (0..1000_u64).try_for_each(|n| t.write(n, v(n as i64))))?;
    /// let mut t = db.start_transaction();
    /// // The newest three keys, newest first, without reading the rest.
    /// let last: Vec<_> = t.scan_iter(..).reverse().limit(3).keys().collect::<Result<_, _>>()?;
    /// assert_eq!(last, [999_u64, 998, 997].map(khonsu_txn::Key::from));
    /// # Ok::<(), khonsu_txn::Error>(())
    /// ```
    pub fn scan_iter(&mut self, range: impl KeyRange) -> ScanIter<'_> {
        let (start, end) = range.into_bounds();
        ScanIter::new(self, start, end)
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
            Some(tracker) if !tracker.is_read_only() => merge_own_writes(
                self.id,
                committed,
                tracker.writes_in(start.as_ref(), end.as_ref()),
            )?,
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
            // Wrote nothing, but read without declaring itself read-only:
            // at precise `Serializable` it may close a dangerous structure
            // as its `T_in`.
            if self.isolation == TransactionIsolation::Serializable
                && let Some(tracker) = self.tracker.as_deref()
                && (tracker.point_read_count() > 0 || !tracker.range_reads().is_empty())
            {
                let shared = &self.shared;
                let decided = shared
                    .ssi
                    .commit_read_only(
                        tracker,
                        &shared.buffer,
                        &shared.oracle,
                        &shared.snapshots,
                        self.snapshot_ts,
                    )
                    .map_err(|conflict| {
                        AbortedSnafu { txn_id: self.id }.into_error((*conflict).into())
                    })
                    // Young after the decision, so nothing it looked at was
                    // reclaimed under it (an expired snapshot's key heads go).
                    .and_then(|()| self.check_age());
                if let Err(err) = decided {
                    shared.counters.aborted(&err);
                    return Err(err);
                }
            }
            self.shared.counters.committed_read_only();
            return Ok(CommitInfo {
                commit_ts: self.snapshot_ts,
                read_only: true,
                ..CommitInfo::default()
            });
        };
        let started = Instant::now();
        if let Err(err) = self.check_age() {
            self.tracker = Some(footprint);
            self.shared.counters.aborted(&err);
            return Err(err);
        }
        footprint.seal();
        let still_young = || self.check_age();
        let request = CommitRequest {
            txn_id: self.id,
            policy: WritePolicy {
                isolation: self.isolation,
                resolution: self.resolution,
                snapshot: self.snapshot_ts,
            },
            footprint: &footprint,
            still_young: &still_young,
        };
        let result = crate::commit::commit(&self.shared, &request).map(|(info, published)| {
            // Committed: the transaction reads nothing more, so its
            // snapshot goes before pruning (it would keep the versions this
            // commit just covered).
            if let Some(registration) = self.registration.take() {
                self.shared.snapshots.release(registration);
            }
            published.prune(&self.shared);
            info
        });
        self.tracker = Some(footprint);
        match &result {
            Ok(_) => self.shared.counters.committed(started.elapsed()),
            Err(err) => self.shared.counters.aborted(err),
        }
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
    txn_id: u64,
    committed: Vec<(Key, Arc<RecordBatch>)>,
    staged: impl Iterator<Item = (&'a Key, &'a StagedWrite)>,
) -> Result<Vec<(Key, Arc<RecordBatch>)>> {
    let mut staged = staged.peekable();
    if staged.peek().is_none() {
        return Ok(committed);
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
                // Shadowed by our write (or extended by our append).
                let shadowed = committed
                    .next_if(|(ck, _)| ck == key)
                    .map(|(_, batch)| batch);
                match (write, shadowed) {
                    (StagedWrite::Put(batch), _) | (StagedWrite::Append(batch), None) => {
                        out.push((key.clone(), Arc::clone(batch)));
                    }
                    (StagedWrite::Append(rows), Some(base)) => {
                        let merged =
                            khonsu_arrow_utils::append(&base, rows).with_context(|_| {
                                AppendSnafu {
                                    txn_id,
                                    key: key.short().to_string(),
                                }
                            })?;
                        out.push((key.clone(), Arc::new(merged)));
                    }
                    (StagedWrite::Delete, _) => {}
                }
            }
        } else if let Some(entry) = committed.next() {
            out.push(entry);
        }
    }
    Ok(out)
}

/// Keys a streaming scan reads from the buffer per page.
const SCAN_PAGE: usize = 128;

/// Where a streaming scan is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The buffer may hold more of the range.
    Reading,
    /// The buffer has nothing more; the page may still hold entries.
    Drained,
    /// `next` returned `None` at the end of the range.
    Exhausted,
    /// `next` returned `None` at the limit, or an error: nothing more.
    Stopped,
}

/// A streaming scan ([`Transaction::scan_iter`]): yields
/// `Result<(Key, Arc<RecordBatch>)>` in key order (descending after
/// [`reverse`](Self::reverse)), reading the buffer a page at a time.
///
/// After an error (the snapshot grew too old) it yields nothing more.
/// Dropping it records what it went through as read: the whole range once
/// it returned `None` at the end, otherwise exactly the stretches it
/// yielded — from the start of the range up to the last key yielded going
/// forward, and from the last key yielded going backward to the end.
pub struct ScanIter<'t> {
    txn: &'t mut Transaction,
    /// The range as asked for (what is recorded once it is exhausted).
    start: Bound<Key>,
    end: Bound<Key>,
    /// What is left of it to read from the buffer.
    lo: Bound<Key>,
    hi: Bound<Key>,
    read_ts: Option<Timestamp>,
    page: VecDeque<(Key, Arc<RecordBatch>)>,
    phase: Phase,
    remaining: Option<usize>,
    reverse: bool,
    /// The last key yielded in ascending order: `start..=front` was read.
    front: Option<Key>,
    /// The last key yielded in descending order: `back..=end` was read.
    back: Option<Key>,
}

impl fmt::Debug for ScanIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScanIter")
            .field("txn_id", &self.txn.id)
            .field("start", &self.start)
            .field("end", &self.end)
            .field("reverse", &self.reverse)
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl<'t> ScanIter<'t> {
    fn new(txn: &'t mut Transaction, start: Bound<Key>, end: Bound<Key>) -> Self {
        let empty = range_is_empty(start.as_ref(), end.as_ref());
        Self {
            txn,
            lo: start.clone(),
            hi: end.clone(),
            start,
            end,
            read_ts: None,
            page: VecDeque::new(),
            phase: if empty {
                Phase::Drained
            } else {
                Phase::Reading
            },
            remaining: None,
            reverse: false,
            front: None,
            back: None,
        }
    }

    /// Yields at most `n` more keys (counted from when it is called, so on
    /// a started iterator it limits what is still to come).
    #[must_use]
    pub fn limit(mut self, n: usize) -> Self {
        self.remaining = Some(n);
        self
    }

    /// Yields the keys in descending order, from the end of the range. On
    /// an iterator that already yielded keys in ascending order, it yields
    /// the keys it has not yielded yet, from the end of the range down to
    /// just after the last one it yielded (like `DoubleEndedIterator`'s
    /// `next_back`). Calling it again changes nothing.
    #[must_use]
    pub fn reverse(mut self) -> Self {
        if self.reverse {
            return self;
        }
        self.reverse = true;
        if self.read_ts.is_some() && matches!(self.phase, Phase::Reading | Phase::Drained) {
            // Started ascending: what is left lies after the last key
            // yielded. The page read ahead is dropped and read again from
            // the other end, at the same timestamp.
            self.page.clear();
            self.lo = self
                .front
                .clone()
                .map_or_else(|| self.start.clone(), Bound::Excluded);
            self.phase = if range_is_empty(self.lo.as_ref(), self.hi.as_ref()) {
                Phase::Drained
            } else {
                Phase::Reading
            };
        }
        self
    }

    /// Yields only the keys.
    pub fn keys(self) -> impl Iterator<Item = Result<Key>> + 't {
        self.map(|entry| entry.map(|(key, _)| key))
    }

    /// Reads the next page from the buffer and overlays the transaction's
    /// own writes on the stretch of the range it covers.
    fn fill(&mut self) -> Result<()> {
        let read_ts = if let Some(ts) = self.read_ts {
            ts
        } else {
            let ts = self.txn.read_ts();
            self.read_ts = Some(ts);
            ts
        };
        let committed = self.txn.shared.buffer.scan_page_at(
            self.lo.as_ref(),
            self.hi.as_ref(),
            read_ts,
            SCAN_PAGE,
            self.reverse,
        );
        self.txn.check_age()?;
        // The stretch this page covers: up to its last key when it is full,
        // else all that is left.
        let full = committed.len() == SCAN_PAGE;
        let last = committed
            .last()
            .map(|(key, _)| key.clone())
            .filter(|_| full);
        let (from, to) = match (&last, self.reverse) {
            (None, _) => (self.lo.clone(), self.hi.clone()),
            (Some(last), false) => (self.lo.clone(), Bound::Included(last.clone())),
            (Some(last), true) => (Bound::Included(last.clone()), self.hi.clone()),
        };
        let mut committed = committed;
        if self.reverse {
            committed.reverse();
        }
        let merged = match self.txn.tracker.as_deref() {
            Some(tracker) if !tracker.is_read_only() => merge_own_writes(
                self.txn.id,
                committed,
                tracker.writes_in(from.as_ref(), to.as_ref()),
            )?,
            _ => committed,
        };
        self.page = merged.into();
        if self.reverse {
            self.page.make_contiguous().reverse();
        }
        match last {
            Some(last) if self.reverse => self.hi = Bound::Excluded(last),
            Some(last) => self.lo = Bound::Excluded(last),
            None => self.phase = Phase::Drained,
        }
        Ok(())
    }
}

impl Iterator for ScanIter<'_> {
    type Item = Result<(Key, Arc<RecordBatch>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if matches!(self.phase, Phase::Exhausted | Phase::Stopped) {
            return None;
        }
        if self.remaining == Some(0) {
            self.phase = Phase::Stopped;
            return None;
        }
        loop {
            if let Some((key, batch)) = self.page.pop_front() {
                if let Some(n) = self.remaining.as_mut() {
                    *n -= 1;
                }
                let last = if self.reverse {
                    &mut self.back
                } else {
                    &mut self.front
                };
                *last = Some(key.clone());
                return Some(Ok((key, batch)));
            }
            if self.phase == Phase::Drained {
                self.phase = Phase::Exhausted;
                // A scan that saw nothing still read the range.
                self.read_ts.get_or_insert_with(|| self.txn.read_ts());
                return None;
            }
            if let Err(err) = self.fill() {
                self.phase = Phase::Stopped;
                return Some(Err(err));
            }
        }
    }
}

impl Drop for ScanIter<'_> {
    fn drop(&mut self) {
        let Some(read_ts) = self.read_ts else {
            return; // never read anything
        };
        if self.txn.read_only {
            return;
        }
        if self.phase == Phase::Exhausted {
            let (start, end) = (self.start.clone(), self.end.clone());
            self.txn.tracker_mut().record_range(start, end, read_ts);
            return;
        }
        if let Some(front) = self.front.take() {
            let start = self.start.clone();
            self.txn
                .tracker_mut()
                .record_range(start, Bound::Included(front), read_ts);
        }
        if let Some(back) = self.back.take() {
            let end = self.end.clone();
            self.txn
                .tracker_mut()
                .record_range(Bound::Included(back), end, read_ts);
        }
    }
}
