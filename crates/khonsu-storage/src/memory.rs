//! [`MemoryStorage`]: the in-memory reference implementation of [`Storage`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::RecordBatch;
use crossbeam_skiplist::SkipMap;
use khonsu_core::{Key, Timestamp};

use crate::{
    RecoveredEntry, RecoveredState, Result, Storage, StorageMutation, StorageStats, WriteFailure,
    WriteGroup,
};

/// A `Storage` that keeps the latest committed value of every key in a
/// lock-free `SkipMap`.
///
/// It survives as long as the `Arc` holding it: hand the same instance to a
/// new `Khonsu` to "restart" from it. It is the test double and the
/// reference behaviour durable adapters are checked against; it is **not
/// durable**, and it keeps the batches themselves (it ignores their
/// encoding, so a restart from it does not exercise the codec).
#[derive(Debug, Default)]
pub struct MemoryStorage {
    // value: (commit ts, batch or tombstone)
    data: SkipMap<Key, (Timestamp, Option<Arc<RecordBatch>>)>,
    last_commit_ts: AtomicU64,
    writes: AtomicU64,
    commits: AtomicU64,
}

impl MemoryStorage {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of live (not deleted) keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.data.iter().filter(|e| e.value().1.is_some()).count()
    }

    /// Whether no key is live.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stored value of `key` and the timestamp of the commit that
    /// wrote it, or `None` if it is absent or deleted.
    #[must_use]
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<(Timestamp, Arc<RecordBatch>)> {
        let entry = self.data.get(key.as_ref())?;
        let (ts, batch) = entry.value();
        batch.as_ref().map(|b| (*ts, Arc::clone(b)))
    }

    /// The newest commit timestamp applied.
    #[must_use]
    pub fn last_commit_ts(&self) -> Timestamp {
        self.last_commit_ts.load(Ordering::SeqCst)
    }
}

impl Storage for MemoryStorage {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn write(&self, group: WriteGroup<'_>) -> Result<(), WriteFailure> {
        group.check_keys().map_err(WriteFailure::NothingWritten)?;
        for (commit_ts, mutation) in group.mutations() {
            let value = match mutation {
                StorageMutation::Put { batch, .. } => Some(Arc::clone(batch)),
                StorageMutation::Delete { .. } => None,
            };
            // Same-key writes arrive in timestamp order, but keep the newest
            // anyway: never let an older commit overwrite a newer one.
            self.data
                .compare_insert(mutation.key().clone(), (commit_ts, value), |old| {
                    old.0 <= commit_ts
                });
        }
        self.last_commit_ts
            .fetch_max(group.last_commit_ts(), Ordering::SeqCst);
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.commits
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn stats(&self) -> StorageStats {
        StorageStats {
            writes: self.writes.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            ..StorageStats::default()
        }
    }

    fn recover(&self) -> Result<RecoveredState> {
        let entries = self
            .data
            .iter()
            .filter_map(|e| {
                let (ts, batch) = e.value();
                batch.as_ref().map(|b| RecoveredEntry {
                    key: e.key().clone(),
                    commit_ts: *ts,
                    batch: Arc::clone(b),
                })
            })
            .collect();
        Ok(RecoveredState::new(self.last_commit_ts(), entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;

    fn batch(v: i64) -> Arc<RecordBatch> {
        Arc::new(
            RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![v])) as _)]).unwrap(),
        )
    }

    fn apply(s: &MemoryStorage, commit_ts: Timestamp, mutations: Vec<StorageMutation>) {
        let record = crate::CommitRecord {
            commit_ts,
            mutations,
        };
        s.write(WriteGroup::new(&[&record])).unwrap();
    }

    #[test]
    fn keeps_the_newest_value_per_key_and_drops_deletes() {
        let s = MemoryStorage::new();
        let put = |k: &str, v| StorageMutation::put(k, batch(v)).unwrap();
        apply(&s, 2, vec![put("a", 2), put("b", 2)]);
        apply(&s, 1, vec![put("a", 1)]); // late, older: ignored
        apply(&s, 3, vec![StorageMutation::delete("b")]);
        assert_eq!(s.get("a").map(|(ts, _)| ts), Some(2));
        assert!(s.get("b").is_none());
        let state = s.recover().unwrap();
        assert_eq!(state.last_commit_ts, 3);
        assert_eq!(state.entries.len(), 1);
        assert_eq!(s.len(), 1);
        assert_eq!(s.stats().writes, 3);
    }
}
