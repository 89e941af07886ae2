//! [`Khonsu`], the database handle, and its [`KhonsuBuilder`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use khonsu_concurrency::{
    ConflictResolution, SerializableValidation, SsiState, TransactionIsolation,
};
use khonsu_core::{
    OldestSnapshot, RegisteredSnapshot, SnapshotRegistry, Timestamp, TimestampOracle, TxnBuffer,
};
use khonsu_storage::{RedbStorage, Storage, StorageStats};
use snafu::ResultExt;

use crate::durable::{Durability, GroupCommitStats};
use crate::error::{
    NotRetainedSnafu, OpenSnafu, RecoveredKeySnafu, RecoverySnafu, Result, SnapshotTooOldSnafu,
    StorageInUseSnafu,
};
use crate::metrics::{Counters, Metrics};
use crate::{CommitInfo, Transaction, TransactionOptions};

/// Default number of retries of [`Khonsu::atomically`] after the first try.
pub const DEFAULT_MAX_RETRIES: u32 = 64;

/// State shared by a database handle and its transactions.
pub(crate) struct Shared {
    pub(crate) buffer: TxnBuffer,
    pub(crate) oracle: TimestampOracle,
    pub(crate) snapshots: SnapshotRegistry,
    /// The storage and its group-commit queue; `None` without persistence.
    pub(crate) durable: Option<Durability>,
    pub(crate) isolation: TransactionIsolation,
    pub(crate) resolution: ConflictResolution,
    pub(crate) max_retries: u32,
    /// The longest `atomically` keeps retrying, by default.
    pub(crate) retry_budget: Option<Duration>,
    /// Commits, aborts, retries, latency.
    pub(crate) counters: Counters,
    /// Live snapshot pins, for `start_transaction_at`.
    pub(crate) pins: Mutex<Vec<Weak<PinInner>>>,
    /// What precise `Serializable` knows of committed transactions.
    pub(crate) ssi: SsiState,
}

impl Shared {
    /// Registers a snapshot that keeps no read set (a declared read-only
    /// `Serializable` transaction, or a pin): announced to precise
    /// `Serializable` first, and taken again after a pivot that may not
    /// have seen it publishes (`SsiState::note_read_only_snapshot`).
    pub(crate) fn register_read_only(&self) -> (RegisteredSnapshot, Timestamp) {
        loop {
            let (registration, ts) = self.snapshots.register(&self.oracle, false);
            match self.ssi.note_read_only_snapshot(ts) {
                Ok(()) => return (registration, ts),
                Err(pivot_ts) => {
                    self.snapshots.release(registration);
                    // The pivot publishes (or gives its timestamp up)
                    // after its storage write at most.
                    let mut spins = 0_u32;
                    while self.oracle.visible() < pivot_ts {
                        spins += 1;
                        if spins < 64 {
                            std::thread::yield_now();
                        } else {
                            std::thread::sleep(Duration::from_micros(50));
                        }
                    }
                }
            }
        }
    }
}

/// A retained snapshot, shared by a [`SnapshotPin`] and the transactions
/// started at it; released when the last of them drops.
pub(crate) struct PinInner {
    shared: Arc<Shared>,
    pub(crate) ts: Timestamp,
    pub(crate) registration: Option<RegisteredSnapshot>,
}

impl Drop for PinInner {
    fn drop(&mut self) {
        if let Some(registration) = self.registration.take() {
            self.shared.snapshots.release(registration);
        }
    }
}

/// Keeps the state at one timestamp readable: while it lives, reclamation
/// keeps every version visible at [`ts`](Self::ts), and
/// [`Khonsu::start_transaction_at`] (or [`start_transaction`](Self::start_transaction))
/// starts read-only transactions there, from any thread, at any time.
///
/// A pin is a snapshot like an open transaction's: it holds old versions
/// in memory (see [`Khonsu::stats`]), counts among the open transactions,
/// and expires after the database's maximum snapshot age (its transactions
/// then fail with [`Error::SnapshotTooOld`](crate::Error::SnapshotTooOld)).
/// Drop it when done.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use khonsu_txn::Khonsu;
///
/// let db = Khonsu::builder().build()?;
/// let v = |n: i64| RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![n])) as _)]).unwrap();
/// db.atomically(|t| t.write("price", v(100)))?;
/// let pin = db.pin_snapshot();
/// db.atomically(|t| t.write("price", v(101)))?;
/// // Later, anywhere: the state as of the pin.
/// let mut then = db.start_transaction_at(pin.ts())?;
/// assert_eq!(then.read("price")?.unwrap().num_rows(), 1);
/// assert_eq!(then.snapshot_ts(), pin.ts());
/// drop(pin); // `then` still holds the snapshot until it drops
/// # Ok::<(), khonsu_txn::Error>(())
/// ```
#[derive(Clone)]
pub struct SnapshotPin {
    inner: Arc<PinInner>,
}

impl fmt::Debug for SnapshotPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotPin")
            .field("ts", &self.inner.ts)
            .finish_non_exhaustive()
    }
}

impl SnapshotPin {
    /// The pinned timestamp.
    #[must_use]
    pub fn ts(&self) -> Timestamp {
        self.inner.ts
    }

    /// A read-only transaction at the pinned timestamp.
    #[must_use]
    pub fn start_transaction(&self) -> Transaction {
        Transaction::begin_pinned(Arc::clone(&self.inner.shared), Arc::clone(&self.inner))
    }
}

/// A Khonsu database: a shared, in-memory, multi-version store of Arrow
/// `RecordBatch`es with transactions.
///
/// Cloning is cheap (an `Arc`); clones share the same data. Start
/// transactions from any number of threads.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use khonsu_txn::{Khonsu, TransactionIsolation};
///
/// let db = Khonsu::builder().isolation(TransactionIsolation::Serializable).build().unwrap();
/// let batch = RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![1, 2])) as _)]).unwrap();
///
/// let mut t = db.start_transaction();
/// t.write("k", batch)?;
/// let info = t.commit()?;
///
/// let mut r = db.start_transaction();
/// assert_eq!(r.read("k")?.unwrap().num_rows(), 2);
/// assert!(r.snapshot_ts() >= info.commit_ts);
/// # Ok::<(), khonsu_txn::Error>(())
/// ```
#[derive(Clone)]
pub struct Khonsu {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Khonsu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Khonsu")
            .field("isolation", &self.shared.isolation)
            .field("resolution", &self.shared.resolution)
            .field("visible_ts", &self.shared.oracle.visible())
            .field("storage", &self.shared.durable)
            .finish_non_exhaustive()
    }
}

impl Khonsu {
    /// A builder with the defaults: `Serializable`, `Fail`, no storage.
    pub fn builder() -> KhonsuBuilder {
        KhonsuBuilder::default()
    }

    /// Opens the durable database in the directory `dir` — the embedded
    /// default store, redb, with every default — creating it if the
    /// directory is new or empty, and recovering every committed key and
    /// the clock if it holds a store.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use khonsu_txn::Khonsu;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let batch = RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![7])) as _)])?;
    /// {
    ///     let db = Khonsu::open(dir.path())?;
    ///     let mut t = db.start_transaction();
    ///     t.write("k", batch)?;
    ///     t.commit()?; // durable: synced to disk before it returns
    /// }
    /// let db = Khonsu::open(dir.path())?; // a restart
    /// assert_eq!(db.start_transaction().read("k")?.unwrap().num_rows(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Open`](crate::Error::Open) when the store cannot be opened
    /// (another process has it open, it is damaged, or the directory holds
    /// something else; the error names the path), and the errors of
    /// [`KhonsuBuilder::build`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::builder().data_dir(dir).build()
    }

    /// A database over `storage` with the given defaults, recovered from
    /// it: shorthand for `Khonsu::builder().storage(storage)
    /// .isolation(isolation).conflict_resolution(resolution).build()`.
    ///
    /// # Errors
    /// As for [`KhonsuBuilder::build`].
    pub fn new(
        storage: Arc<dyn Storage>,
        isolation: TransactionIsolation,
        resolution: ConflictResolution,
    ) -> Result<Self> {
        Self::builder()
            .storage(storage)
            .isolation(isolation)
            .conflict_resolution(resolution)
            .build()
    }

    fn from_parts(
        durable: Option<Durability>,
        settings: &KhonsuBuilder,
        start_ts: Timestamp,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                buffer: TxnBuffer::new(),
                oracle: TimestampOracle::new(start_ts),
                snapshots: SnapshotRegistry::with_max_age(settings.max_snapshot_age),
                durable,
                isolation: settings.isolation,
                resolution: settings.resolution,
                max_retries: settings.max_retries,
                retry_budget: settings.retry_budget,
                counters: Counters::new(),
                pins: Mutex::new(Vec::new()),
                ssi: SsiState::new(settings.validation),
            }),
        }
    }

    /// Starts a transaction with the database's default settings.
    #[must_use]
    #[inline]
    pub fn start_transaction(&self) -> Transaction {
        Transaction::begin(Arc::clone(&self.shared), TransactionOptions::new())
    }

    /// Starts a transaction with its own settings.
    #[must_use]
    #[inline]
    pub fn start_transaction_with(&self, options: TransactionOptions) -> Transaction {
        Transaction::begin(Arc::clone(&self.shared), options)
    }

    /// Pins the newest visible state, so that transactions can read at its
    /// timestamp later ([`start_transaction_at`](Self::start_transaction_at)).
    #[must_use]
    pub fn pin_snapshot(&self) -> SnapshotPin {
        let shared = &self.shared;
        let (registration, ts) = shared.register_read_only();
        let inner = Arc::new(PinInner {
            shared: Arc::clone(shared),
            ts,
            registration: Some(registration),
        });
        let mut pins = shared.pins.lock().unwrap_or_else(PoisonError::into_inner);
        pins.retain(|pin| pin.strong_count() > 0);
        pins.push(Arc::downgrade(&inner));
        SnapshotPin { inner }
    }

    /// A read-only transaction at the past timestamp `ts`: it sees exactly
    /// the commits at or below `ts` (its [`snapshot_ts`](Transaction::snapshot_ts)
    /// is `ts`), like a transaction that started then.
    ///
    /// Reclamation keeps only what open snapshots can see, so a past state
    /// is readable only while something retains it: `ts` must be the
    /// timestamp of a live [`SnapshotPin`] ([`pin_snapshot`](Self::pin_snapshot)),
    /// or the newest visible timestamp (nothing committed since). The
    /// transaction holds the pin's snapshot until it drops, even if the
    /// pin is dropped first. An open transaction's snapshot does not count:
    /// it is released whenever that transaction ends.
    ///
    /// # Errors
    /// [`Error::NotRetained`](crate::Error::NotRetained) for any other `ts`
    /// (older and unpinned, or in the future);
    /// [`Error::SnapshotTooOld`](crate::Error::SnapshotTooOld) when the only
    /// pin at `ts` is older than the maximum snapshot age (its versions may
    /// be gone; the newest timestamp is always readable).
    pub fn start_transaction_at(&self, ts: Timestamp) -> Result<Transaction> {
        // The newest state needs no pin (and an old pin at the same
        // timestamp may have expired: a fresh snapshot reads it as well).
        let txn = self.start_transaction_with(TransactionOptions::new().read_only(true));
        if txn.snapshot_ts() == ts {
            return Ok(txn);
        }
        let (visible, txn_id) = (txn.snapshot_ts(), txn.id());
        drop(txn);
        let at_ts: Vec<Arc<PinInner>> = {
            let mut pins = self
                .shared
                .pins
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            pins.retain(|pin| pin.strong_count() > 0);
            pins.iter()
                .filter_map(Weak::upgrade)
                .filter(|pin| pin.ts == ts)
                .collect()
        };
        // A pin past the maximum snapshot age no longer retains anything:
        // take a live one if there is one.
        let expired = |pin: &Arc<PinInner>| {
            pin.registration
                .as_ref()
                .and_then(|registration| self.shared.snapshots.expired(registration))
        };
        if let Some(pin) = at_ts.iter().find(|pin| expired(pin).is_none()) {
            return Ok(Transaction::begin_pinned(
                Arc::clone(&self.shared),
                Arc::clone(pin),
            ));
        }
        match at_ts.iter().find_map(expired) {
            Some(age) => SnapshotTooOldSnafu {
                txn_id,
                snapshot_ts: ts,
                age,
                max_age: self.shared.snapshots.max_age().unwrap_or_default(),
            }
            .fail(),
            None => NotRetainedSnafu { ts, visible }.fail(),
        }
    }

    /// Runs `body` in a transaction and commits it, retrying from scratch
    /// when the commit (or the body) fails with a conflict.
    ///
    /// Retries are bounded by a count ([`KhonsuBuilder::max_retries`],
    /// default [`DEFAULT_MAX_RETRIES`]) and optionally by time
    /// ([`KhonsuBuilder::retry_budget`]; both per call with
    /// [`TransactionOptions::max_retries`] and
    /// [`TransactionOptions::retry_budget`]), with exponential backoff and
    /// jitter; when either runs out the last conflict is returned. Any other
    /// error (including [`Error::abort`](crate::Error::abort) from the
    /// body, or a batch helper's error through `?`) rolls back and returns
    /// at once. The body may run several times: keep side effects out of
    /// it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use khonsu_txn::Khonsu;
    ///
    /// let db = Khonsu::builder().build().unwrap();
    /// let one = RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![1])) as _)]).unwrap();
    /// let rows = db.atomically(|t| {
    ///     t.write("counter", one.clone())?;
    ///     Ok(t.read("counter")?.map_or(0, |b| b.num_rows()))
    /// })?;
    /// assert_eq!(rows, 1);
    /// # Ok::<(), khonsu_txn::Error>(())
    /// ```
    ///
    /// # Errors
    /// The body's non-conflict error, a non-conflict commit error, or the
    /// last conflict once retries are exhausted.
    pub fn atomically<T>(&self, body: impl FnMut(&mut Transaction) -> Result<T>) -> Result<T> {
        self.atomically_with(TransactionOptions::new(), body)
    }

    /// [`atomically`](Self::atomically) with per-transaction options.
    ///
    /// # Errors
    /// As for [`atomically`](Self::atomically).
    pub fn atomically_with<T>(
        &self,
        options: TransactionOptions,
        body: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<T> {
        self.run_atomically(options, body).map(|(value, _)| value)
    }

    /// [`atomically`](Self::atomically), returning the commit's
    /// [`CommitInfo`] beside the body's value: its timestamp, and which
    /// writes `Ignore` dropped, `Append` merged or `Replace` overwrote.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use khonsu_txn::Khonsu;
    ///
    /// let db = Khonsu::builder().build()?;
    /// let v = RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![1])) as _)]).unwrap();
    /// let ((), info) = db.atomically_with_info(|t| t.write("k", v.clone()))?;
    /// assert!(info.commit_ts > 0 && info.ignored.is_empty());
    /// # Ok::<(), khonsu_txn::Error>(())
    /// ```
    ///
    /// # Errors
    /// As for [`atomically`](Self::atomically).
    pub fn atomically_with_info<T>(
        &self,
        body: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<(T, CommitInfo)> {
        self.run_atomically(TransactionOptions::new(), body)
    }

    /// [`atomically_with_info`](Self::atomically_with_info) with
    /// per-transaction options.
    ///
    /// # Errors
    /// As for [`atomically`](Self::atomically).
    pub fn atomically_with_options_info<T>(
        &self,
        options: TransactionOptions,
        body: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<(T, CommitInfo)> {
        self.run_atomically(options, body)
    }

    fn run_atomically<T>(
        &self,
        options: TransactionOptions,
        mut body: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<(T, CommitInfo)> {
        let max_retries = options.get_max_retries().unwrap_or(self.shared.max_retries);
        let budget = options.get_retry_budget().or(self.shared.retry_budget);
        let started = budget.map(|_| Instant::now());
        let counters = &self.shared.counters;
        let mut attempt = 0_u32;
        loop {
            let mut txn = self.start_transaction_with(options);
            let seed = txn.id();
            let outcome = match body(&mut txn) {
                Ok(value) => txn.commit().map(|info| (value, info)),
                Err(err) => {
                    counters.aborted(&err);
                    Err(err)
                }
            };
            match outcome {
                Err(err) if err.is_conflict() => {
                    let in_time = match (budget, started) {
                        (Some(budget), Some(started)) => started.elapsed() < budget,
                        _ => true,
                    };
                    if attempt >= max_retries || !in_time {
                        counters.exhausted();
                        return Err(err);
                    }
                    counters.retried();
                    backoff(attempt, seed);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// What the database has done since it was built: commits, aborts by
    /// kind, `atomically` retries, a commit latency histogram, and the
    /// transactions open now. Cheap (a sum over 16 striped counter sets):
    /// call it as often as a metrics scrape does.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use khonsu_txn::Khonsu;
    ///
    /// let db = Khonsu::builder().build()?;
    /// let v = RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![1])) as _)]).unwrap();
    /// db.atomically(|t| t.write("k", v.clone()))?;
    /// let m = db.metrics();
    /// assert_eq!(m.commits, 1);
    /// assert_eq!(m.aborts.total(), 0);
    /// println!("{m}"); // commits 1 (read-only 0), aborts 0 (conflicts 0), retries 0, commit p50 <= ...
    /// println!("p99 commit: {:?}", m.commit_latency.quantile(0.99));
    /// # Ok::<(), khonsu_txn::Error>(())
    /// ```
    #[must_use]
    pub fn metrics(&self) -> Metrics {
        self.shared
            .counters
            .snapshot(self.shared.snapshots.active())
    }

    /// What the database holds in memory and who pins it: keys, versions,
    /// the versions and bytes only open snapshots still need, and the
    /// oldest open snapshot. O(1) in the data (counters kept as commits and
    /// reclamation go, plus a scan of the snapshot slots in use): cheap
    /// enough to call every second. Exact when no commit runs, approximate
    /// while commits do.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use khonsu_txn::{Khonsu, TransactionOptions};
    ///
    /// let db = Khonsu::builder().build()?;
    /// let value = |v: i64| RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![v])) as _)]).unwrap();
    /// db.atomically(|t| t.write("k", value(1)))?;
    /// let reader = db.start_transaction_with(TransactionOptions::new().read_only(true));
    /// for v in 2..100 {
    ///     db.atomically(|t| t.write("k", value(v)))?;
    /// }
    /// // The reader pins its own version of "k", not the 98 written since:
    /// // commits keep a few recent ones besides (see `collect_garbage`) ...
    /// let stats = db.stats();
    /// assert!(stats.versions <= 6, "{stats:?}");
    /// assert_eq!(stats.oldest_snapshot.map(|s| s.ts), Some(reader.snapshot_ts()));
    /// // ... and a sweep keeps exactly the reader's and the newest.
    /// db.collect_garbage();
    /// assert_eq!(db.stats().versions, 2);
    /// drop(reader);
    /// db.collect_garbage();
    /// assert_eq!(db.stats().versions, 1);
    /// # Ok::<(), khonsu_txn::Error>(())
    /// ```
    #[must_use]
    pub fn stats(&self) -> Stats {
        let buffer = self.shared.buffer.stats();
        let (serializable_readers, serializable_pivots) = self.shared.ssi.tracked();
        Stats {
            keys: buffer.keys,
            versions: buffer.versions,
            history_versions: buffer.history_versions,
            history_bytes: buffer.history_bytes,
            deferred_keys: self.shared.buffer.deferred_len(),
            open_transactions: self.shared.snapshots.active(),
            oldest_snapshot: self.shared.snapshots.oldest(),
            serializable_readers,
            serializable_pivots,
        }
    }

    /// Reclaims every version no open snapshot can see — including versions
    /// committed between two open snapshots — and forgets keys whose deletion
    /// no open transaction predates. Commits already do this for the keys
    /// they write and, a step at a time, for keys queued earlier; call this
    /// to return everything at once (after a burst of writes, or after
    /// long-lived snapshots close); it also drops what precise
    /// `Serializable` kept for transactions that are all closed now. It walks every key, so its cost follows
    /// the buffer's size, but it holds one key at a time: a commit waits at
    /// most for the pruning of one key's chain.
    pub fn collect_garbage(&self) {
        let pins = self.shared.snapshots.pins(&self.shared.oracle);
        self.shared.buffer.collect_garbage(&pins);
        self.shared
            .ssi
            .prune(&self.shared.snapshots, &self.shared.oracle);
    }

    /// What the storage has written so far, and how group commit grouped
    /// it; `None` without persistence.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = khonsu_txn::Khonsu::open(dir.path()).unwrap();
    /// let stats = db.durability_stats().unwrap();
    /// assert_eq!(stats.adapter, "redb");
    /// assert_eq!(stats.storage.writes, 0);
    /// ```
    #[must_use]
    pub fn durability_stats(&self) -> Option<DurabilityStats> {
        self.shared.durable.as_ref().map(|durable| {
            let (group, storage) = durable.stats();
            DurabilityStats {
                adapter: durable.storage().name(),
                group_commit: durable.group_commit(),
                group,
                storage,
                unusable: durable.unusable().is_some(),
            }
        })
    }

    /// The newest timestamp visible to a transaction starting now.
    #[must_use]
    pub fn visible_ts(&self) -> Timestamp {
        self.shared.oracle.visible()
    }

    /// How `Serializable` validates reads
    /// ([`KhonsuBuilder::serializable_validation`]).
    #[must_use]
    pub fn serializable_validation(&self) -> SerializableValidation {
        self.shared.ssi.mode()
    }

    /// The database's default isolation level.
    #[must_use]
    pub fn isolation(&self) -> TransactionIsolation {
        self.shared.isolation
    }

    /// The database's default conflict resolution.
    #[must_use]
    pub fn conflict_resolution(&self) -> ConflictResolution {
        self.shared.resolution
    }

    /// Number of transactions currently open.
    #[must_use]
    pub fn active_transactions(&self) -> usize {
        self.shared.snapshots.active()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, RecordBatch};
    use khonsu_storage::MemoryStorage;

    fn open_writers(db: &Khonsu) -> usize {
        db.shared
            .durable
            .as_ref()
            .map_or(0, Durability::open_writers)
    }

    #[test]
    fn a_transaction_stays_small() {
        // The footprint is boxed so that starting a transaction moves little: 88 bytes (the
        // snapshot registration is 40, the pin of a past read 8).
        assert!(
            std::mem::size_of::<Transaction>() <= 88,
            "{}",
            std::mem::size_of::<Transaction>()
        );
    }

    /// Group commit gathers for the open write transactions: each counts from
    /// its first staged write until it is dropped, whatever its end.
    #[test]
    fn open_write_transactions_are_counted_exactly() {
        let db = Khonsu::builder()
            .storage(Arc::new(MemoryStorage::new()))
            .build()
            .unwrap();
        let batch =
            RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![1])) as _)]).unwrap();
        let mut reader = db.start_transaction();
        reader.read("k").unwrap();
        assert_eq!(open_writers(&db), 0, "a reader is not a writer");
        let mut a = db.start_transaction();
        a.write("k", batch.clone()).unwrap();
        a.write("l", batch.clone()).unwrap();
        let mut b = db.start_transaction();
        b.delete("m").unwrap();
        assert_eq!(open_writers(&db), 2);
        a.commit().unwrap();
        assert_eq!(open_writers(&db), 1);
        b.rollback();
        let mut c = db.start_transaction();
        c.write("k", batch).unwrap();
        drop(c);
        drop(reader);
        assert_eq!(open_writers(&db), 0);
    }
}

/// Exponential backoff with jitter between `atomically` attempts: spin for
/// the first few, then yield, then sleep up to about a millisecond.
fn backoff(attempt: u32, seed: u64) {
    // splitmix64 step for jitter, seeded by the transaction id.
    let mut z = seed.wrapping_add(u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    match attempt {
        0..=2 => {
            for _ in 0..(1_u64 << (attempt + 4)) + (z & 31) {
                std::hint::spin_loop();
            }
        }
        3..=5 => std::thread::yield_now(),
        _ => {
            let cap = 1_u64 << attempt.min(10);
            std::thread::sleep(Duration::from_micros(z % cap + 1));
        }
    }
}

/// Builds a [`Khonsu`], recovering committed state from its storage.
///
/// ```
/// use std::sync::Arc;
/// use khonsu_txn::{ConflictResolution, Khonsu, TransactionIsolation};
/// use khonsu_storage::MemoryStorage;
///
/// let db = Khonsu::builder()
///     .isolation(TransactionIsolation::RepeatableRead)
///     .conflict_resolution(ConflictResolution::Replace)
///     .storage(Arc::new(MemoryStorage::new()))
///     .build()
///     .unwrap();
/// assert_eq!(db.isolation(), TransactionIsolation::RepeatableRead);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct KhonsuBuilder {
    isolation: TransactionIsolation,
    resolution: ConflictResolution,
    storage: StorageChoice,
    group_commit: bool,
    gather: bool,
    max_retries: u32,
    retry_budget: Option<Duration>,
    max_snapshot_age: Option<Duration>,
    validation: SerializableValidation,
}

/// Where a built database persists.
#[derive(Debug, Clone)]
enum StorageChoice {
    None,
    Given(Arc<dyn Storage>),
    Dir(PathBuf),
}

impl Default for KhonsuBuilder {
    fn default() -> Self {
        Self {
            isolation: TransactionIsolation::default(),
            resolution: ConflictResolution::default(),
            storage: StorageChoice::None,
            group_commit: true,
            gather: true,
            max_retries: DEFAULT_MAX_RETRIES,
            retry_budget: None,
            max_snapshot_age: None,
            validation: SerializableValidation::default(),
        }
    }
}

/// What [`Khonsu::durability_stats`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DurabilityStats {
    /// The storage adapter (`"redb"`, `"fjall"`, `"memory"`, ...).
    pub adapter: &'static str,
    /// Whether concurrent commits share storage writes.
    pub group_commit: bool,
    /// How commits were grouped into storage writes.
    pub group: GroupCommitStats,
    /// The adapter's own counters (writes, commits, syncs, bytes).
    pub storage: StorageStats,
    /// Whether a write's outcome became unknown, so that the database
    /// refuses commits until it is reopened.
    pub unusable: bool,
}

/// What [`Khonsu::stats`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Keys held in memory (deleted keys count until their tombstone is
    /// reclaimed).
    pub keys: usize,
    /// Versions held, tombstones included: one per key, plus those open
    /// snapshots still read.
    pub versions: usize,
    /// Versions that are not their key's newest: only open snapshots read
    /// them.
    pub history_versions: usize,
    /// Bytes of the batches of those versions (Arrow's
    /// `get_array_memory_size`; a batch shared by several versions counts
    /// once per version).
    pub history_bytes: usize,
    /// Keys queued for reclamation by later commits.
    pub deferred_keys: usize,
    /// Transactions open right now (each holds a snapshot).
    pub open_transactions: usize,
    /// The open transaction that started first: its snapshot timestamp and
    /// age.
    pub oldest_snapshot: Option<OldestSnapshot>,
    /// Committed `Serializable` transactions whose reads precise
    /// `Serializable` still keeps (while a transaction concurrent with them
    /// is open; capped).
    pub serializable_readers: usize,
    /// Committed `Serializable` transactions it keeps as pivots (ordered
    /// before an earlier commit).
    pub serializable_pivots: usize,
}

impl KhonsuBuilder {
    /// Default isolation level of new transactions (default `Serializable`).
    pub fn isolation(mut self, isolation: TransactionIsolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// How `Serializable` validates reads (default
    /// [`SerializableValidation::Precise`]: commit-time serializable
    /// snapshot isolation, which aborts a transaction only if it would
    /// close a dangerous structure; `Conservative` aborts any read-write
    /// transaction whose read was overwritten, as optimistic validation
    /// does). Both are serializable; see `docs/isolation.md`.
    ///
    /// ```
    /// use khonsu_txn::{Khonsu, SerializableValidation};
    ///
    /// let db = Khonsu::builder()
    ///     .serializable_validation(SerializableValidation::Conservative)
    ///     .build()?;
    /// assert_eq!(db.serializable_validation(), SerializableValidation::Conservative);
    /// # Ok::<(), khonsu_txn::Error>(())
    /// ```
    pub fn serializable_validation(mut self, validation: SerializableValidation) -> Self {
        self.validation = validation;
        self
    }

    /// Default conflict resolution of new transactions (default `Fail`).
    pub fn conflict_resolution(mut self, resolution: ConflictResolution) -> Self {
        self.resolution = resolution;
        self
    }

    /// Persist commits to `storage`, and recover from it in
    /// [`build`](Self::build). Default: no persistence. Replaces an earlier
    /// [`data_dir`](Self::data_dir).
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = StorageChoice::Given(storage);
        self
    }

    /// Persist commits to the embedded default store (redb) in the
    /// directory `dir`, opened (or created) by [`build`](Self::build).
    /// Replaces an earlier [`storage`](Self::storage).
    pub fn data_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.storage = StorageChoice::Dir(dir.as_ref().to_path_buf());
        self
    }

    /// Whether concurrent commits share one storage write and one sync
    /// (default `true`). Without it each commit writes and syncs on its
    /// own, and the adapter serializes the writes (redb's single writer,
    /// the fjall adapter's lock around its synced batch).
    pub fn group_commit(mut self, enabled: bool) -> Self {
        self.group_commit = enabled;
        self
    }

    /// Whether a group-commit leader waits briefly for the write
    /// transactions still in flight to join its group (default `true`): at
    /// most half the last storage write's duration and 300 µs, and only
    /// while commits keep arriving; never for a lone writer. Busy
    /// committers then share writes as one cohort instead of two taking
    /// turns (`PostgreSQL`'s `commit_delay`, made adaptive). Turn it off to
    /// trade throughput under concurrency for the last microseconds of
    /// latency.
    pub fn group_commit_gather(mut self, enabled: bool) -> Self {
        self.gather = enabled;
        self
    }

    /// The longest a transaction's snapshot pins old versions (default:
    /// no limit). A transaction older than `age` stops counting for
    /// reclamation, and its next read, scan or commit fails with
    /// [`Error::SnapshotTooOld`](crate::Error::SnapshotTooOld) — not a
    /// conflict, so [`Khonsu::atomically`] does not retry it — instead of
    /// returning what reclamation may have freed (Oracle's "snapshot too
    /// old", `PostgreSQL`'s `old_snapshot_threshold`). It bounds the memory a
    /// forgotten or slow reader can hold; reads of a transaction younger
    /// than `age` are never affected.
    ///
    /// ```
    /// use std::time::Duration;
    /// let db = khonsu_txn::Khonsu::builder()
    ///     .max_snapshot_age(Duration::from_secs(30))
    ///     .build()
    ///     .unwrap();
    /// # drop(db);
    /// ```
    pub fn max_snapshot_age(mut self, age: Duration) -> Self {
        self.max_snapshot_age = Some(age);
        self
    }

    /// How many times [`Khonsu::atomically`] retries after a conflict
    /// (default [`DEFAULT_MAX_RETRIES`]).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The longest [`Khonsu::atomically`] keeps retrying after conflicts
    /// (default: no time limit, only [`max_retries`](Self::max_retries)):
    /// once `budget` has passed since the first attempt, the next conflict
    /// is returned instead of retried. An attempt already running is never
    /// interrupted.
    pub fn retry_budget(mut self, budget: Duration) -> Self {
        self.retry_budget = Some(budget);
        self
    }

    /// Builds the database, first loading every committed key from the
    /// storage (if any) and restarting the clock after its newest commit:
    /// the first commit gets a timestamp above every recovered one.
    ///
    /// A storage serves one live database at a time (two would lose each
    /// other's commits): hand the same storage to a new database after the
    /// old one and all its transactions are dropped.
    ///
    /// # Errors
    /// [`Error::StorageInUse`](crate::Error::StorageInUse) when another live
    /// database has this storage;
    /// [`Error::Open`](crate::Error::Open) when the data directory cannot be
    /// opened, [`Error::Recovery`](crate::Error::Recovery) when the storage
    /// cannot be read (damaged data names the file and the key).
    pub fn build(self) -> Result<Khonsu> {
        let storage: Option<Arc<dyn Storage>> = match &self.storage {
            StorageChoice::None => None,
            StorageChoice::Given(storage) => Some(Arc::clone(storage)),
            StorageChoice::Dir(dir) => Some(Arc::new(RedbStorage::open(dir).context(OpenSnafu)?)),
        };
        // Attach first: a storage another live database serves is not even read.
        let durable = match storage {
            Some(storage) => Some(
                Durability::new(storage, self.group_commit, self.gather)
                    .map_err(|adapter| StorageInUseSnafu { adapter }.build())?,
            ),
            None => None,
        };
        let recovered = match &durable {
            Some(durable) => Some(durable.storage().recover().context(RecoverySnafu)?),
            None => None,
        };
        let start_ts = recovered.as_ref().map_or(0, |state| {
            state
                .clock()
                .max(Timestamp::from(!state.entries.is_empty()))
                .min(khonsu_core::MAX_TIMESTAMP)
        });
        let db = Khonsu::from_parts(durable, &self, start_ts);
        if let Some(state) = recovered {
            // One version per key: nothing to prune.
            let keep_all = khonsu_core::Pins::new(0, []);
            for entry in state.entries {
                // Nothing else can hold an intent yet, so this cannot wait.
                // Versions are stamped >= 1 so that 0 keeps meaning "none".
                let ts = entry.commit_ts.clamp(1, start_ts.max(1));
                let installed = db
                    .shared
                    .buffer
                    .lock(&entry.key, 0)
                    .and_then(|intent| intent.install(ts, Some(entry.batch), &keep_all));
                installed.context(RecoveredKeySnafu { key: entry.key })?;
            }
        }
        Ok(db)
    }
}
