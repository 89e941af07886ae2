//! The [`Storage`] trait and the data it exchanges with the engine.

use std::fmt::{self, Debug};
use std::sync::Arc;

use arrow_array::RecordBatch;
use khonsu_core::{Key, Timestamp};

use crate::codec::{self, EncodedValue};
use crate::{Error, Result};

/// One change of a committed transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum StorageMutation {
    /// `key` now holds `batch`.
    Put {
        /// The key written.
        key: Key,
        /// Its new value.
        batch: Arc<RecordBatch>,
        /// `batch` encoded for disk, by the committing thread (so that the
        /// group writer only hands bytes over): store
        /// `encoded.stored(commit_ts)`. In-memory stores ignore it.
        encoded: EncodedValue,
    },
    /// `key` was deleted.
    Delete {
        /// The key deleted.
        key: Key,
    },
}

impl StorageMutation {
    /// A put of `batch` under `key`, encoding the batch.
    ///
    /// # Errors
    /// [`Error::Unencodable`](crate::Error::Unencodable) when the batch
    /// cannot be encoded.
    pub fn put(key: impl Into<Key>, batch: Arc<RecordBatch>) -> Result<Self> {
        let encoded = EncodedValue::encode(&batch)?;
        Ok(Self::Put {
            key: key.into(),
            batch,
            encoded,
        })
    }

    /// A put of `batch` under `key`, encoded with the header of the commit
    /// at `commit_ts` already in place (what the engine builds: the group
    /// writer then stores the bytes without a copy).
    ///
    /// # Errors
    /// [`Error::Unencodable`](crate::Error::Unencodable) when the batch
    /// cannot be encoded.
    pub fn put_at(
        key: impl Into<Key>,
        batch: Arc<RecordBatch>,
        commit_ts: Timestamp,
    ) -> Result<Self> {
        let encoded = EncodedValue::encode_at(&batch, commit_ts)?;
        Ok(Self::Put {
            key: key.into(),
            batch,
            encoded,
        })
    }

    /// A delete of `key`.
    pub fn delete(key: impl Into<Key>) -> Self {
        Self::Delete { key: key.into() }
    }

    /// The key this mutation changes.
    #[must_use]
    pub fn key(&self) -> &Key {
        match self {
            Self::Put { key, .. } | Self::Delete { key } => key,
        }
    }
}

/// One committed transaction as storage sees it: its commit timestamp and
/// its final mutations (one per key, after conflict resolution).
#[derive(Clone, Debug, PartialEq)]
pub struct CommitRecord {
    /// The commit timestamp.
    pub commit_ts: Timestamp,
    /// What the transaction changed, one mutation per key, in key order.
    pub mutations: Vec<StorageMutation>,
}

impl CommitRecord {
    /// Bytes this record adds to a write (encoded values and keys).
    #[must_use]
    pub fn stored_bytes(&self) -> usize {
        self.mutations
            .iter()
            .map(|m| match m {
                StorageMutation::Put { key, encoded, .. } => key.len() + encoded.stored_len(),
                StorageMutation::Delete { key } => key.len(),
            })
            .sum()
    }
}

/// The commits one storage write persists together: every commit that
/// arrived while the previous write was in flight (group commit).
///
/// Two commits of one group never touch the same key (each holds its
/// keys' write intents until its write is durable), so an adapter may
/// apply the mutations of a group in any order; they must become durable
/// together, atomically, with one sync.
///
/// The group is a type of its own, not a slice, so that distributed commit
/// can later add its records (a transaction prepared but undecided, then
/// its decision) to the same atomic write; see `docs/storage.md`.
#[derive(Clone, Copy)]
pub struct WriteGroup<'a> {
    commits: &'a [&'a CommitRecord],
}

impl Debug for WriteGroup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGroup")
            .field("commits", &self.commits.len())
            .field("last_commit_ts", &self.last_commit_ts())
            .finish()
    }
}

impl<'a> WriteGroup<'a> {
    /// A group of `commits`.
    #[must_use]
    pub fn new(commits: &'a [&'a CommitRecord]) -> Self {
        Self { commits }
    }

    /// The commits, in the order they joined the group (not necessarily
    /// timestamp order).
    #[must_use]
    pub fn commits(&self) -> impl ExactSizeIterator<Item = &'a CommitRecord> + 'a {
        self.commits.iter().copied()
    }

    /// Checks every put's key against the key contract
    /// ([`check_key`](crate::check_key)) before anything is written: an
    /// adapter calls it first and reports a failure as
    /// [`WriteFailure::NothingWritten`]. (Deletes take any key.)
    ///
    /// # Errors
    /// [`Error::Unencodable`](crate::Error::Unencodable) for the first key
    /// that breaks it.
    pub fn check_keys(&self) -> Result<()> {
        self.mutations()
            .filter(|(_, m)| matches!(m, StorageMutation::Put { .. }))
            .try_for_each(|(_, m)| crate::check_key(m.key().as_bytes()))
    }

    /// Every mutation of every commit, each with its commit timestamp.
    pub fn mutations(&self) -> impl Iterator<Item = (Timestamp, &'a StorageMutation)> + 'a {
        self.commits
            .iter()
            .flat_map(|c| c.mutations.iter().map(|m| (c.commit_ts, m)))
    }

    /// Number of commits.
    #[must_use]
    pub fn len(&self) -> usize {
        self.commits.len()
    }

    /// Whether the group holds no commit.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.commits.is_empty()
    }

    /// The highest commit timestamp of the group (0 when empty).
    #[must_use]
    pub fn last_commit_ts(&self) -> Timestamp {
        self.commits.iter().map(|c| c.commit_ts).max().unwrap_or(0)
    }
}

/// Why a [`Storage::write`] failed, and what is known of its outcome.
#[derive(Debug)]
pub enum WriteFailure {
    /// Nothing of the group reached the store: its transactions abort and
    /// the store can take later writes.
    NothingWritten(Error),
    /// The group may or may not be durable (typically, a sync failed: the
    /// kernel may have dropped the dirty pages). The engine must not guess:
    /// it refuses further commits until the store is reopened and recovered
    /// from what is really on disk.
    OutcomeUnknown(Error),
}

impl WriteFailure {
    /// The underlying error.
    #[must_use]
    pub fn error(&self) -> &Error {
        match self {
            Self::NothingWritten(e) | Self::OutcomeUnknown(e) => e,
        }
    }

    /// Whether the outcome is unknown.
    #[must_use]
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Self::OutcomeUnknown(_))
    }
}

impl fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NothingWritten(_) => f.write_str("storage write failed; nothing was written"),
            Self::OutcomeUnknown(_) => f.write_str(
                "storage write failed and its outcome is unknown (it may or may not be durable)",
            ),
        }
    }
}

impl std::error::Error for WriteFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.error())
    }
}

/// One key's committed value as recovered from storage.
#[derive(Clone, Debug, PartialEq)]
pub struct RecoveredEntry {
    /// The key.
    pub key: Key,
    /// Timestamp of the commit that wrote this value.
    pub commit_ts: Timestamp,
    /// The value.
    pub batch: Arc<RecordBatch>,
}

/// Everything the engine needs to restart from storage.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct RecoveredState {
    /// The newest commit timestamp the storage holds; the clock restarts
    /// after it.
    pub last_commit_ts: Timestamp,
    /// The latest value of every live (not deleted) key.
    pub entries: Vec<RecoveredEntry>,
}

impl RecoveredState {
    /// A recovered state of `entries` whose newest commit is `last_commit_ts`.
    #[must_use]
    pub fn new(last_commit_ts: Timestamp, entries: Vec<RecoveredEntry>) -> Self {
        Self {
            last_commit_ts,
            entries,
        }
    }

    /// The newest timestamp of the state: `last_commit_ts`, or the newest
    /// entry if an adapter reported a lower `last_commit_ts`.
    #[must_use]
    pub fn clock(&self) -> Timestamp {
        self.entries
            .iter()
            .map(|e| e.commit_ts)
            .fold(self.last_commit_ts, Timestamp::max)
    }

    /// Whether the storage holds nothing: no key and no commit.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.last_commit_ts == 0
    }
}

/// The live-key count, digest and newest commit timestamp of the entries an
/// adapter's scan went through, counted as it decodes them: what the scan
/// compares with the count and digest the store keeps beside its data.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ScanTally {
    pub(crate) count: u64,
    pub(crate) digest: u64,
    pub(crate) newest: Timestamp,
}

impl ScanTally {
    /// Counts the stored value of `key` that decoded as `outcome` (an
    /// intact value that does not decode counts too: its header holds its
    /// commit timestamp) and turns it into the entry to visit, or the error
    /// naming `path` and the key.
    pub(crate) fn entry(
        &mut self,
        path: &std::path::Path,
        key: &Key,
        outcome: std::result::Result<(Timestamp, RecordBatch), crate::codec::DecodeError>,
    ) -> Result<RecoveredEntry> {
        use crate::codec::DecodeError;
        let intact_ts = match &outcome {
            Ok((commit_ts, _)) | Err(DecodeError::Undecodable { commit_ts, .. }) => {
                Some(*commit_ts)
            }
            Err(DecodeError::Damaged(_)) => None,
        };
        if let Some(commit_ts) = intact_ts {
            self.count += 1;
            self.digest ^= crate::codec::entry_digest(key.as_bytes(), commit_ts);
            self.newest = self.newest.max(commit_ts);
        }
        outcome
            .map(|(commit_ts, batch)| RecoveredEntry {
                key: key.clone(),
                commit_ts,
                batch: Arc::new(batch),
            })
            .map_err(|e| crate::Error::of_stored_value(path, key.as_bytes(), e))
    }
}

/// What an adapter's scan of its whole store found besides the entries it
/// visited (`RedbStorage::scan`, `FjallStorage::scan`).
#[derive(Debug)]
#[non_exhaustive]
pub struct Scanned {
    /// The stored newest commit timestamp.
    pub last_commit_ts: Timestamp,
    /// Whether the visited entries match the key count and digest kept
    /// beside them (always `Ok` when the visit stopped early).
    pub integrity: Result<()>,
}

impl Scanned {
    /// Recovery from a scan: every entry, stopping at the first that does
    /// not decode, then the integrity check.
    ///
    /// # Errors
    /// The scan's error, the first damaged entry, or the failed integrity
    /// check.
    pub(crate) fn recover(
        scan: impl FnOnce(&mut dyn FnMut(Key, Result<RecoveredEntry>) -> bool) -> Result<Self>,
    ) -> Result<RecoveredState> {
        let mut entries = Vec::new();
        let mut damage = None;
        let scanned = scan(&mut |_, entry| match entry {
            Ok(entry) => {
                entries.push(entry);
                true
            }
            Err(e) => {
                damage = Some(e);
                false
            }
        })?;
        if let Some(e) = damage {
            return Err(e);
        }
        scanned.integrity?;
        Ok(RecoveredState::new(scanned.last_commit_ts, entries))
    }
}

/// Counters of a storage's writes, for operators and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StorageStats {
    /// Calls of [`Storage::write`] that succeeded.
    pub writes: u64,
    /// Commits those writes carried.
    pub commits: u64,
    /// Syncs to stable storage those writes issued (`fsync`/`fdatasync`;
    /// `0` for a store that does not sync).
    pub syncs: u64,
    /// Bytes of keys and encoded values written.
    pub bytes: u64,
}

/// Persistence for committed data.
///
/// # The contract
///
/// * **When [`write`](Self::write) returns `Ok`, every commit of the group
///   is durable**: it survives a crash of the process and of the machine
///   (the adapter has synced it), and [`recover`](Self::recover) returns it.
///   The engine makes a commit visible, and returns from `commit`, only
///   after that.
/// * **A group is atomic**: after a crash, recovery sees all of a group or
///   none of it — never part of a transaction.
/// * **Failures say what is known**: [`WriteFailure::NothingWritten`] when
///   the store is unchanged, [`WriteFailure::OutcomeUnknown`] when it may
///   have changed (a failed sync).
/// * **Per key, the newest timestamp wins**: writes of one key arrive in
///   timestamp order (the engine holds the key's intent until its write is
///   durable); groups may otherwise arrive out of timestamp order, so the
///   stored "last commit timestamp" is the maximum ever written.
/// * **Values are checked at write time**: the engine calls
///   [`check_value`](Self::check_value) when a transaction writes a value,
///   so a value the adapter cannot store is refused then, not at commit.
///
/// The trait holds no transaction logic (conflicts, isolation and
/// timestamps are the engine's) and no backend types; it is called with
/// groups of whole commits, never from a read.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use khonsu_core::Key;
/// use khonsu_storage::{CommitRecord, MemoryStorage, Storage, StorageMutation, WriteGroup};
///
/// let storage = MemoryStorage::new();
/// let batch = Arc::new(RecordBatch::try_from_iter([(
///     "v", Arc::new(Int64Array::from(vec![1])) as _,
/// )])?);
/// let commit = CommitRecord { commit_ts: 3, mutations: vec![StorageMutation::put("k", batch)?] };
/// storage.write(WriteGroup::new(&[&commit]))?;
/// let state = storage.recover()?;
/// assert_eq!(state.last_commit_ts, 3);
/// assert_eq!(state.entries.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Storage: Send + Sync + Debug {
    /// A short name of the adapter (`"redb"`, `"fjall"`, `"memory"`).
    fn name(&self) -> &'static str {
        "custom"
    }

    /// Checks, when a transaction writes `batch`, that it can be stored.
    /// The default refuses what the Arrow IPC encoding cannot carry
    /// ([`codec::check_encodable`]).
    ///
    /// # Errors
    /// [`Error::Unencodable`](crate::Error::Unencodable), saying why.
    fn check_value(&self, batch: &RecordBatch) -> Result<()> {
        codec::check_encodable(batch)
    }

    /// Checks, when a transaction writes `key`, that the adapter can store
    /// it. The default is the key contract every store keeps
    /// ([`check_key`](crate::check_key): 1 to 65,535 bytes); an adapter
    /// may only refuse more (say why). Whatever it accepts here, its
    /// [`write`](Self::write) must store; a delete of any key must succeed
    /// (nothing can be stored under a key the adapter refuses).
    ///
    /// # Errors
    /// [`Error::Unencodable`](crate::Error::Unencodable), saying why.
    fn check_key(&self, key: &[u8]) -> Result<()> {
        crate::check_key(key)
    }

    /// Persists a group of commits atomically and durably (see the
    /// contract above).
    ///
    /// # Errors
    /// A [`WriteFailure`] saying whether anything may have been written.
    fn write(&self, group: WriteGroup<'_>) -> Result<(), WriteFailure>;

    /// Loads the latest value of every live key and the newest commit
    /// timestamp, to rebuild the in-memory buffer at start-up.
    ///
    /// # Errors
    /// Backend failures, and [`Error::Corrupt`](crate::Error::Corrupt) for
    /// data that cannot be decoded (naming the file and the key).
    fn recover(&self) -> Result<RecoveredState>;

    /// Counters of the writes so far (zero for adapters that keep none).
    fn stats(&self) -> StorageStats {
        StorageStats::default()
    }
}

/// A shared storage is a storage (the engine holds an `Arc<dyn Storage>`).
impl<S: Storage + ?Sized> Storage for Arc<S> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn check_value(&self, batch: &RecordBatch) -> Result<()> {
        (**self).check_value(batch)
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        (**self).check_key(key)
    }

    fn write(&self, group: WriteGroup<'_>) -> Result<(), WriteFailure> {
        (**self).write(group)
    }

    fn recover(&self) -> Result<RecoveredState> {
        (**self).recover()
    }

    fn stats(&self) -> StorageStats {
        (**self).stats()
    }
}
