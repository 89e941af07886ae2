//! What a reader gets back: a versioned value.

use std::sync::Arc;

use arrow_array::RecordBatch;

use crate::Timestamp;

/// One committed version of a key as a reader sees it.
///
/// `value` is `None` for a tombstone (the key was deleted at `commit_ts`),
/// and for a key that has no version visible to the reader, in which case
/// `commit_ts` is `0`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VersionedValue {
    /// Commit timestamp of the version read (`0`: no version at all).
    pub commit_ts: Timestamp,
    /// The batch, or `None` when the key is absent at that snapshot.
    pub value: Option<Arc<RecordBatch>>,
}
