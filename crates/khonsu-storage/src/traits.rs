//! The [`Storage`] trait and the data it exchanges with the engine.

use std::fmt::Debug;
use std::sync::Arc;

use arrow_array::RecordBatch;
use khonsu_core::{Key, Timestamp};

use crate::Result;

/// One change of a committed transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum StorageMutation {
    /// `key` now holds `batch`.
    Put {
        /// The key written.
        key: Key,
        /// Its new value.
        batch: Arc<RecordBatch>,
    },
    /// `key` was deleted.
    Delete {
        /// The key deleted.
        key: Key,
    },
}

impl StorageMutation {
    /// The key this mutation changes.
    #[must_use]
    pub fn key(&self) -> &Key {
        match self {
            Self::Put { key, .. } | Self::Delete { key } => key,
        }
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
pub struct RecoveredState {
    /// The newest commit timestamp the storage holds; the clock restarts
    /// after it.
    pub last_commit_ts: Timestamp,
    /// The latest value of every live (not deleted) key.
    pub entries: Vec<RecoveredEntry>,
}

/// Persistence for committed data.
///
/// The engine calls [`apply`](Self::apply) inside every read-write commit,
/// after validation and before the commit becomes visible, with the commit
/// timestamp and the transaction's final mutations. If `apply` returns an
/// error the transaction aborts and none of it becomes visible, so an
/// implementation must make each call atomic: all of its mutations are
/// stored, or none are.
///
/// Calls for transactions that touch different keys may run concurrently
/// and arrive out of timestamp order; calls that touch the same key arrive
/// in timestamp order (the engine holds that key's write intent during the
/// call). A storage keeps, per key, the mutation with the highest
/// timestamp, and reports the highest timestamp it has seen.
///
/// The trait has no transactional logic: conflict detection, isolation and
/// timestamps are the engine's.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use khonsu_core::Key;
/// use khonsu_storage::{MemoryStorage, Storage, StorageMutation};
///
/// let storage = MemoryStorage::new();
/// let batch = Arc::new(RecordBatch::try_from_iter([(
///     "v", Arc::new(Int64Array::from(vec![1])) as _,
/// )]).unwrap());
/// storage.apply(3, &[StorageMutation::Put { key: Key::from("k"), batch }]).unwrap();
/// let state = storage.recover().unwrap();
/// assert_eq!(state.last_commit_ts, 3);
/// assert_eq!(state.entries.len(), 1);
/// ```
pub trait Storage: Send + Sync + Debug {
    /// Persists one committed transaction's mutations atomically.
    ///
    /// # Errors
    /// Any backend failure; the engine then aborts the transaction.
    fn apply(&self, commit_ts: Timestamp, mutations: &[StorageMutation]) -> Result<()>;

    /// Loads the latest value of every live key and the newest commit
    /// timestamp, to rebuild the in-memory buffer at start-up.
    ///
    /// # Errors
    /// Backend failures, and [`Error::Corrupt`](crate::Error::Corrupt) for
    /// data that cannot be decoded.
    fn recover(&self) -> Result<RecoveredState>;
}
