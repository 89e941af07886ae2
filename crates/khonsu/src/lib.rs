//! # Khonsu
//!
//! A software transactional memory for Rust whose values are Apache Arrow
//! [`RecordBatch`](arrow_array::RecordBatch)es. Many threads run
//! transactions over one shared, in-memory, multi-version buffer with real
//! isolation levels; commits are made durable on an embedded database
//! (redb by default) before they become visible.
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
//! ## What is atomic
//!
//! A transaction's writes become visible all at once, at its commit
//! timestamp: a reader at any isolation level sees all of a committed
//! transaction or none of it, never a half-applied transfer, and never a
//! write of a transaction that aborted or has not committed. A thread that
//! returns from `commit` sees its own writes in its next transaction.
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{Array, Int64Array, RecordBatch};
//! use khonsu::prelude::*;
//!
//! let db = Khonsu::builder().build()?;
//! let v = |n: i64| RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![n])) as _)]).unwrap();
//! let get = |b: &RecordBatch| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
//! db.atomically(|t| { t.write("a", v(50))?; t.write("b", v(50)) })?;
//! std::thread::scope(|s| {
//!     s.spawn(|| for i in 0..200 {
//!         db.atomically(|t| { t.write("a", v(50 - i % 10))?; t.write("b", v(50 + i % 10)) }).unwrap();
//!     });
//!     s.spawn(|| for _ in 0..200 {
//!         let mut r = db.start_transaction_with(TransactionOptions::new().read_only(true));
//!         let (a, b) = (r.read("a").unwrap().unwrap(), r.read("b").unwrap().unwrap());
//!         assert_eq!(get(&a) + get(&b), 100); // never half of a transfer
//!     });
//! });
//! # Ok::<(), khonsu::Error>(())
//! ```
//!
//! What is *not* atomic: a transaction is not visible to itself in other
//! transactions before it commits; `atomically` may run its closure several
//! times (keep side effects out of it); and a transaction only orders itself
//! against other transactions of the same database.
//!
//! ## Persistence and recovery
//!
//! [`Khonsu::open`] opens (or creates) a durable database in a directory,
//! on the embedded default store, redb ([`RedbStorage`]); `FjallStorage`
//! (cargo feature `fjall`) is the alternative, and
//! [`KhonsuBuilder::storage`] takes any [`Storage`]. Opening recovers every
//! committed key and the clock; the first new commit gets a timestamp above
//! every recovered one.
//!
//! * `commit` returns only after the storage write carrying it is synced to
//!   disk, and nothing is visible before that: a crash (of the process or
//!   the machine) never loses an acknowledged commit, and no reader ever saw
//!   a commit a crash could lose.
//! * Concurrent committers share one storage write and one sync (group
//!   commit). [`Khonsu::durability_stats`] counts writes, syncs, commits.
//! * A failed storage write aborts exactly its transactions
//!   ([`Error::Storage`]). A write whose outcome is unknown (a failed
//!   `fsync`) makes the database refuse commits until it is reopened.
//! * A directory is opened by one process at a time; damaged, truncated or
//!   foreign files are clear errors naming the file, never a panic or
//!   silently empty data. `khonsu inspect DIR` verifies a store.
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{Int64Array, RecordBatch};
//! use khonsu::prelude::*;
//!
//! let dir = tempfile::tempdir()?;
//! let batch = RecordBatch::try_from_iter([("qty", Arc::new(Int64Array::from(vec![10])) as _)])?;
//! {
//!     let db = Khonsu::open(dir.path())?;
//!     db.atomically(|t| t.write("position/ACME", batch.clone()))?; // synced when it returns
//!     assert!(Khonsu::open(dir.path()).is_err()); // one open at a time
//! }
//! let db = Khonsu::open(dir.path())?; // a restart: recovered
//! assert_eq!(*db.start_transaction().read("position/ACME")?.unwrap(), batch);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The format, group commit and the failure semantics: `docs/storage.md`.
//!
//! ## Memory
//!
//! The whole data set lives in memory, one multi-version chain per key.
//! Of each chain only the versions some open snapshot can read are kept:
//! the newest, and for each open snapshot the one it reads — however long
//! a snapshot stays open, it costs one version per key it can see, not the
//! history written since it began. Each commit prunes the keys it wrote and
//! revisits a key or two queued earlier, so keys nobody writes again shrink
//! once their readers close; [`Khonsu::collect_garbage`] is a full sweep.
//! [`Khonsu::stats`] is cheap (counters) and names the oldest snapshot;
//! [`KhonsuBuilder::max_snapshot_age`] bounds what a forgotten reader holds:
//!
//! ```
//! use std::time::Duration;
//! # use std::sync::Arc;
//! # use khonsu::arrow::array::{Int64Array, RecordBatch};
//! let db = khonsu::Khonsu::builder().max_snapshot_age(Duration::from_secs(60)).build()?;
//! # let v = |n: i64| RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![n])) as _)]).unwrap();
//! db.atomically(|t| t.write("k", v(0)))?;
//! let mut report = db.start_transaction(); // a long reader
//! assert!(report.read("k")?.is_some());
//! for n in 1..1_000 {
//!     db.atomically(|t| t.write("k", v(n)))?;
//! }
//! let stats = db.stats();
//! assert!(stats.versions <= 6, "the reader's version and a few recent ones: {stats:?}");
//! assert_eq!(stats.oldest_snapshot.map(|o| o.ts), Some(report.snapshot_ts()));
//! # Ok::<(), khonsu::Error>(())
//! ```
//!
//! Storage holds one copy of each live key's newest value.
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
//! * [`storage`] (`khonsu-storage`) — the `Storage` trait, `RedbStorage`,
//!   `FjallStorage` (feature `fjall`), `MemoryStorage`, the value codec,
//!   `inspect`, the adapter `conformance` checks.
//! * [`txn`] (`khonsu-txn`) — `Khonsu`, `Transaction`, the commit pipeline,
//!   group commit, recovery.
//!
//! ## Safety
//!
//! No `unsafe` code anywhere in the workspace (`unsafe_code = "forbid"`);
//! memory is reclaimed by `crossbeam-epoch` and `sdd`, both epoch-based
//! with safe APIs. No panic is reachable from the public API on user input:
//! bad input, storage faults and damaged files are errors.

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
    DurabilityStats, Error, GroupCommitStats, Key, Khonsu, KhonsuBuilder, OldestSnapshot, Result,
    Stats, Timestamp, Transaction, TransactionIsolation, TransactionOptions,
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
