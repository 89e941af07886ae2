//! # Khonsu
//!
//! A software transactional memory for Rust whose values are Apache Arrow
//! [`RecordBatch`](arrow_array::RecordBatch)es. Many threads run
//! transactions over one shared, in-memory, multi-version buffer with real
//! isolation levels; committed changes can be persisted through a
//! [`Storage`].
//!
//! This crate is a facade: it re-exports the layered crates below and holds
//! no logic of its own.
//!
//! ## A transaction
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{Int64Array, RecordBatch};
//! use khonsu::prelude::*;
//!
//! let db = Khonsu::builder()
//!     .isolation(TransactionIsolation::Serializable) // the default
//!     .conflict_resolution(ConflictResolution::Fail)  // the default
//!     .storage(Arc::new(MemoryStorage::new()))
//!     .build()?;
//!
//! let balance = |v: i64| {
//!     RecordBatch::try_from_iter([("balance", Arc::new(Int64Array::from(vec![v])) as _)]).unwrap()
//! };
//! let mut t = db.start_transaction();
//! t.write("acct/1", balance(100))?;
//! t.write("acct/2", balance(0))?;
//! let info = t.commit()?;
//! assert!(info.commit_ts > 0);
//!
//! let mut r = db.start_transaction();
//! assert_eq!(r.scan_prefix("acct/")?.len(), 2);
//! # Ok::<(), khonsu::Error>(())
//! ```
//!
//! ## Retrying conflicts
//!
//! Optimistic transactions abort when they lose a race. [`Khonsu::atomically`]
//! retries the whole closure with backoff; [`Error::is_conflict`] tells a
//! retryable conflict from a real failure, and [`Error::conflict`] says
//! which key or range and which kind.
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{Array, Int64Array, RecordBatch};
//! use khonsu::prelude::*;
//!
//! let db = Khonsu::builder().build()?;
//! let counter = |v: i64| {
//!     RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![v])) as _)]).unwrap()
//! };
//! std::thread::scope(|s| {
//!     for _ in 0..2 {
//!         s.spawn(|| {
//!             for _ in 0..100 {
//!                 db.atomically(|t| {
//!                     let n = t.read("n")?.map_or(0, |b| {
//!                         b.column(0).as_any().downcast_ref::<Int64Array>().map_or(0, |a| a.value(0))
//!                     });
//!                     t.write("n", counter(n + 1))
//!                 })
//!                 .unwrap();
//!             }
//!         });
//!     }
//! });
//! let mut t = db.start_transaction();
//! let n = t.read("n")?.unwrap();
//! assert_eq!(n.column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0), 200);
//! # Ok::<(), khonsu::Error>(())
//! ```
//!
//! ## Isolation levels
//!
//! | level | reads see | prevents | allowed |
//! |---|---|---|---|
//! | `ReadCommitted` | latest committed value at each read | G0, G1a, G1b, G1c | non-repeatable read, lost update unless `Fail`, read skew, write skew |
//! | `RepeatableRead` (snapshot isolation) | the snapshot at start; own writes | + OTV, PMP, P4, G-single | write skew |
//! | `Serializable` | the snapshot at start; own writes | every cycle, phantoms through `scan`, the read-only anomaly | nothing |
//!
//! Read-only transactions never abort, at any level.
//!
//! ## Crate topology
//!
//! * [`arrow_utils`] (`khonsu-arrow-utils`) — `RecordBatch` helpers.
//! * [`core`] (`khonsu-core`) — `Key`, timestamps, the `TxnBuffer`.
//! * [`concurrency`] (`khonsu-concurrency`) — dependency tracking, validation, conflict resolution.
//! * [`storage`] (`khonsu-storage`) — the `Storage` trait and `MemoryStorage`.
//! * [`txn`] (`khonsu-txn`) — `Khonsu`, `Transaction`, the commit pipeline, recovery.

#[doc(inline)]
pub use khonsu_arrow_utils as arrow_utils;
#[doc(inline)]
pub use khonsu_concurrency as concurrency;
#[doc(inline)]
pub use khonsu_core as core;
#[doc(inline)]
pub use khonsu_storage as storage;
#[doc(inline)]
pub use khonsu_txn as txn;

#[doc(inline)]
pub use khonsu_txn::{
    BufferStats, CommitInfo, Conflict, ConflictKind, ConflictResolution, ConflictTarget,
    DurabilityStats, Error, GroupCommitStats, Key, Khonsu, KhonsuBuilder, Result, Timestamp,
    Transaction, TransactionIsolation, TransactionOptions,
};

#[doc(inline)]
#[cfg(feature = "fjall")]
pub use khonsu_storage::FjallStorage;
#[doc(inline)]
pub use khonsu_storage::{
    CommitRecord, MemoryStorage, RedbStorage, Storage, StorageMutation, StorageStats, WriteFailure,
    WriteGroup,
};

/// Re-exported Arrow crates, so users need no separate version pin.
pub mod arrow {
    #[doc(inline)]
    pub use arrow_array as array;
    #[doc(inline)]
    pub use arrow_schema as schema;
}

/// Everything a typical user needs: `use khonsu::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "fjall")]
    pub use khonsu_storage::FjallStorage;
    pub use khonsu_storage::{MemoryStorage, RedbStorage, Storage, StorageMutation};
    pub use khonsu_txn::{
        CommitInfo, Conflict, ConflictKind, ConflictResolution, ConflictTarget, Error, Key, Khonsu,
        KhonsuBuilder, Result, Timestamp, Transaction, TransactionIsolation, TransactionOptions,
    };
}

/// The README's example, compiled and run as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
