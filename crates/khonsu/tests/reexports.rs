//! One tiny test per re-exported path, so the facade cannot silently lose one.

use std::sync::Arc;

#[test]
fn prelude_paths() {
    use khonsu::prelude::*;
    let _: fn() -> KhonsuBuilder = Khonsu::builder;
    let _ = TransactionOptions::new();
    let _ = Key::from(1_u64);
    let _: Timestamp = 0;
    let _: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    assert_eq!(
        TransactionIsolation::default(),
        TransactionIsolation::Serializable
    );
    assert_eq!(ConflictResolution::default(), ConflictResolution::Fail);
    let _: Option<CommitInfo> = None;
    let _: Option<Conflict> = None;
    let _: Option<ConflictKind> = None;
    let _: Option<ConflictTarget> = None;
    let _: Option<StorageMutation> = None;
    let _ = |p: &std::path::Path| -> khonsu::storage::Result<RedbStorage> { RedbStorage::open(p) };
    let _: Result<()> = Err(Error::abort("x"));
    let _: Option<Transaction> = None;
}

#[test]
fn crate_paths() {
    let _ = khonsu::engine::buffer::TxnBuffer::new();
    let _ = khonsu::engine::concurrency::DependencyTracker::new();
    let _ = khonsu::storage::MemoryStorage::new();
    let _ = khonsu::engine::txn::Khonsu::builder();
    let _: Option<khonsu::Metrics> = None;
    let _: Option<khonsu::SnapshotPin> = None;
    let _: Option<khonsu::ScanIter<'_>> = None;
    let _ = khonsu::Key::builder();
    assert_eq!(khonsu::MAX_KEY_LEN, 65_535);
    let _: fn(&arrow_array::RecordBatch, &str, usize) -> khonsu::arrow_utils::Result<i64> =
        khonsu::arrow_utils::value::<i64>;
    let _: fn(&arrow_array::RecordBatch) -> usize = khonsu::arrow_utils::byte_size;
    let _: Option<khonsu::arrow::array::RecordBatch> = None;
    let _: Option<khonsu::arrow::schema::Schema> = None;
    let _: Option<khonsu::engine::buffer::BufferStats> = None;
    let _: Option<khonsu::DurabilityStats> = None;
    let _: Option<khonsu::GroupCommitStats> = None;
    let _: Option<khonsu::StorageStats> = None;
    let _: Option<khonsu::CommitRecord> = None;
    let _: Option<khonsu::WriteFailure> = None;
    let _: Option<khonsu::WriteGroup<'_>> = None;
    let _ = |p: &std::path::Path| khonsu::storage::inspect(p);
    let _ = |p: &std::path::Path| -> khonsu::Result<khonsu::Khonsu> { khonsu::Khonsu::open(p) };
    assert!(khonsu::Khonsu::builder().build().is_ok());
}

#[cfg(feature = "fjall")]
#[test]
fn fjall_paths() {
    let _ = |p: &std::path::Path| -> khonsu::storage::Result<khonsu::FjallStorage> {
        khonsu::FjallStorage::open(p)
    };
    let _ = |p: &std::path::Path| -> khonsu::storage::Result<khonsu::prelude::FjallStorage> {
        khonsu::prelude::FjallStorage::open(p)
    };
}

/// `use khonsu::*;` must not shadow `core` (or anything else of the standard prelude).
mod glob_import {
    #[allow(unused_imports, clippy::wildcard_imports)]
    use khonsu::*;

    #[test]
    fn the_glob_import_leaves_core_alone() {
        assert_eq!(core::mem::size_of::<u8>(), 1);
        let _: Option<Key> = None;
    }
}
