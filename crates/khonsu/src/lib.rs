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
//! Transactions declared read-only (`TransactionOptions::read_only(true)`,
//! snapshot pins) never abort, at any level. `Serializable` is precise
//! (commit-time serializable snapshot isolation): a transaction aborts only
//! if committing would close a dangerous structure
//! ([`ConflictKind::DangerousStructure`]); one that only read without
//! declaring it may be such a structure's reader.
//!
//! ## Appends that never conflict
//!
//! [`Transaction::append`] stages rows to be appended to whatever the key
//! holds at commit: concurrent appends to one key all land, in commit
//! order, and never abort each other (an append is not a read). A trade log
//! or an event stream is one key:
//!
//! ```
//! use khonsu::prelude::*;
//! use khonsu::arrow_utils::{Scalar, one_row};
//!
//! let db = Khonsu::builder().build()?;
//! let trade = |qty: i64| one_row([("sym", Scalar::from("ACME")), ("qty", Scalar::from(qty))]);
//! std::thread::scope(|s| {
//!     for _ in 0..2 {
//!         s.spawn(|| for qty in 1..=50 {
//!             db.atomically(|t| t.append("trades", trade(qty)?)).unwrap();
//!         });
//!     }
//! });
//! let log = db.start_transaction().read("trades")?.unwrap();
//! assert_eq!(log.num_rows(), 100);
//! assert_eq!(db.metrics().aborts.total(), 0); // no retries either
//! # Ok::<(), khonsu::Error>(())
//! ```
//!
//! `ConflictResolution::Append` is the other tool: when a *blind* write
//! races another commit it appends its rows instead of failing; when a
//! `ReadCommitted` read-modify-write races, only the rows it added to what
//! it read are appended (never a duplicate).
//!
//! ## Per-write resolution
//!
//! [`Transaction::write_with`] gives one write its own
//! [`ConflictResolution`], ahead of the transaction's
//! ([`TransactionOptions::conflict_resolution`]) and the database's
//! ([`KhonsuBuilder::conflict_resolution`]): a position update that must
//! abort on a conflict and a cache refresh that may be dropped share one
//! transaction. Every combination with the isolation levels is in
//! `docs/isolation.md`.
//!
//! ```
//! use khonsu::prelude::*;
//! use khonsu::arrow_utils::{Scalar, one_row};
//!
//! let db = Khonsu::builder().build()?; // Serializable, Fail
//! let v = |n: i64| one_row([("v", Scalar::from(n))]);
//! let mut t = db.start_transaction();
//! t.write("position/ACME", v(10)?)?;
//! t.write_with("quote-cache/ACME", v(99)?, ConflictResolution::Ignore)?;
//! db.atomically(|o| o.write("quote-cache/ACME", v(100)?))?; // a race on the cache only
//! let info = t.commit()?;
//! assert_eq!(info.ignored, [Key::from("quote-cache/ACME")]);
//! # Ok::<(), khonsu::Error>(())
//! ```
//!
//! ## Errors that say why
//!
//! A batch helper's error converts with `?` inside a transaction body
//! ([`Error::Batch`]); [`Error::abort`] takes a message or any error of
//! yours, kept as the source ([`Error::user_error`] downcasts it). An abort
//! says in one line what lost, where, and to which commit:
//! `transaction 7 aborted: write-write conflict on key acct/1 (the other
//! transaction committed at 41)`. [`Khonsu::atomically_with_info`] returns
//! the [`CommitInfo`] beside the value; retries are bounded by a count and,
//! with [`KhonsuBuilder::retry_budget`] or
//! [`TransactionOptions::retry_budget`], by time.
//!
//! ```
//! use std::time::Duration;
//! use khonsu::prelude::*;
//! use khonsu::arrow_utils::{self, Scalar, one_row};
//!
//! #[derive(Debug)]
//! struct Insufficient(i64);
//! impl std::fmt::Display for Insufficient {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "balance {}", self.0) }
//! }
//! impl std::error::Error for Insufficient {}
//!
//! let db = Khonsu::builder().retry_budget(Duration::from_secs(1)).build()?;
//! db.atomically(|t| t.write("acct/1", one_row([("balance", Scalar::from(5_i64))])?))?;
//! let err = db
//!     .atomically(|t| {
//!         let acct = t.read("acct/1")?.ok_or_else(|| Error::abort("no account"))?;
//!         let balance: i64 = arrow_utils::value(&acct, "balance", 0)?; // type-checked, `?` converts
//!         if balance < 10 {
//!             return Err(Error::abort(Insufficient(balance)));
//!         }
//!         t.write("acct/1", one_row([("balance", Scalar::from(balance - 10))])?)
//!     })
//!     .unwrap_err();
//! assert_eq!(err.user_error::<Insufficient>().map(|e| e.0), Some(5));
//! let ((), info) = db.atomically_with_info(|t| t.delete("acct/1"))?;
//! assert!(info.commit_ts > 0);
//! # Ok::<(), khonsu::Error>(())
//! ```
//!
//! ## Keys and scans
//!
//! `read`, `write`, `delete` and `append` take `&str`, `String`, `&[u8]`,
//! `Vec<u8>`, `u64` (big-endian: numeric order) or a [`Key`]; `scan` takes
//! a range of any of them ([`KeyRange`]); [`Key::builder`] builds
//! order-preserving composite keys; a [`Key`] displays as text, or hex when
//! it is not printable. [`Transaction::scan_iter`] streams a range lazily,
//! with a limit, in reverse, or keys only.
//!
//! ```
//! use khonsu::prelude::*;
//! use khonsu::arrow_utils::{Scalar, one_row};
//!
//! let db = Khonsu::builder().build()?;
//! let v = |n: u64| one_row([("v", Scalar::from(n))]);
//! db.atomically(|t| {
//!     for user in 1..=3_u64 {
//!         t.write(Key::builder().str("user").u64(user).str("features").build(), v(user)?)?;
//!     }
//!     (0..100_u64).try_for_each(|n| t.write(n, v(n)?))
//! })?;
//! let mut t = db.start_transaction();
//! assert_eq!(t.scan(10_u64..20)?.len(), 10);
//! let user2 = Key::builder().str("user").u64(2).build();
//! assert_eq!(t.scan_prefix(&user2)?.len(), 1);
//! assert_eq!(Key::from("acct/1").to_string(), "acct/1");
//! assert_eq!(Key::from(1_u64).to_string(), "0x0000000000000001");
//! let newest: Vec<Key> = t.scan_iter(..100_u64).reverse().limit(2).keys().collect::<Result<_>>()?;
//! assert_eq!(newest, [Key::from(99_u64), Key::from(98_u64)]);
//! # Ok::<(), khonsu::Error>(())
//! ```
//!
//! ## Typed access to batches
//!
//! [`arrow_utils`] reads a scalar by column name with its type checked,
//! finds rows by a key column, and builds a one-row batch from typed
//! values — errors, never panics:
//!
//! ```
//! use khonsu::arrow_utils::{self, Scalar, one_row};
//!
//! let row = one_row([("sym", Scalar::from("ACME")), ("qty", Scalar::from(10_i64))])?;
//! let book = arrow_utils::append(&row, &one_row([("sym", Scalar::from("INIT")), ("qty", Scalar::from(3_i64))])?)?;
//! assert_eq!(arrow_utils::value::<i64>(&book, "qty", 1)?, 3);
//! assert_eq!(arrow_utils::find_row(&book, "sym", "INIT")?, Some(1));
//! assert!(arrow_utils::value::<String>(&book, "qty", 0).is_err()); // wrong type: an error
//! # Ok::<(), arrow_utils::Error>(())
//! ```
//!
//! ## Reads at a past timestamp
//!
//! Reclamation keeps only what open snapshots can see, so a past state is
//! readable while something retains it: [`Khonsu::pin_snapshot`] retains
//! the current one, and [`Khonsu::start_transaction_at`] starts a read-only
//! transaction at a pinned (or the newest) timestamp.
//!
//! ```
//! use khonsu::prelude::*;
//! use khonsu::arrow_utils::{Scalar, one_row};
//!
//! let db = Khonsu::builder().build()?;
//! db.atomically(|t| t.write("price", one_row([("v", Scalar::from(100_i64))])?))?;
//! let close = db.pin_snapshot();
//! db.atomically(|t| t.write("price", one_row([("v", Scalar::from(101_i64))])?))?;
//! let mut then = db.start_transaction_at(close.ts())?;
//! let price = then.read("price")?.unwrap();
//! assert_eq!(khonsu::arrow_utils::value::<i64>(&price, "v", 0)?, 100);
//! # Ok::<(), khonsu::Error>(())
//! ```
//!
//! ## Metrics
//!
//! [`Khonsu::metrics`] counts commits, aborts by kind, `atomically`
//! retries and commit latency (a histogram), cheaply enough to scrape
//! every second; [`Khonsu::stats`] says what memory holds.
//!
//! ```
//! # let db = khonsu::Khonsu::builder().build()?;
//! let m = db.metrics();
//! println!("{m}"); // commits 0 (read-only 0), aborts 0 (conflicts 0), retries 0, ...
//! println!("p99 {:?}, stale reads {}", m.commit_latency.quantile(0.99), m.aborts.stale_read);
//! # Ok::<(), khonsu::Error>(())
//! ```
//!
//! ## Crate topology
//!
//! The crate root and [`prelude`] hold the user's API. Beside them:
//!
//! * [`arrow_utils`] (`khonsu-arrow-utils`) — `RecordBatch` helpers and
//!   typed access.
//! * [`storage`] (`khonsu-storage`) — the `Storage` trait, `RedbStorage`,
//!   `FjallStorage` (feature `fjall`), `MemoryStorage`, the value codec,
//!   `inspect`, the adapter `conformance` checks.
//! * [`engine`] — the internals, for tools and tests that need them:
//!   [`engine::buffer`] (`khonsu-core`: keys, timestamps, the `TxnBuffer`,
//!   snapshots), [`engine::concurrency`] (`khonsu-concurrency`: dependency
//!   tracking, validation, conflict resolution), [`engine::txn`]
//!   (`khonsu-txn`: the commit pipeline, group commit, recovery).
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
pub use khonsu_storage as storage;

/// The engine's internals, named for what they are: the multi-version
/// buffer, concurrency control and the transaction pipeline. Users need
/// none of it (everything a program uses is at the crate root); tools,
/// benchmarks and tests of the engine do.
pub mod engine {
    #[doc(inline)]
    pub use khonsu_concurrency as concurrency;
    #[doc(inline)]
    pub use khonsu_core as buffer;
    #[doc(inline)]
    pub use khonsu_txn as txn;
}

#[doc(inline)]
pub use khonsu_core::KeyBuilder;
#[doc(inline)]
pub use khonsu_txn::{
    Aborts, CommitInfo, Conflict, ConflictKind, ConflictResolution, ConflictTarget,
    DEFAULT_MAX_RETRIES, DurabilityStats, Error, GroupCommitStats, Key, KeyRange, Khonsu,
    KhonsuBuilder, LatencyHistogram, MAX_KEY_LEN, Metrics, OldestSnapshot, Result, ScanIter,
    SerializableValidation, SnapshotPin, Stats, Structure, Timestamp, Transaction,
    TransactionIsolation, TransactionOptions,
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

/// Everything a typical user needs: `use khonsu::prelude::*;`. Nothing in
/// it shadows a standard crate or prelude name.
pub mod prelude {
    pub use arrow_array::RecordBatch;
    #[cfg(feature = "fjall")]
    pub use khonsu_storage::FjallStorage;
    pub use khonsu_storage::{MemoryStorage, RedbStorage, Storage, StorageMutation};
    pub use khonsu_txn::{
        CommitInfo, Conflict, ConflictKind, ConflictResolution, ConflictTarget, Error, Key,
        KeyRange, Khonsu, KhonsuBuilder, Result, SnapshotPin, Timestamp, Transaction,
        TransactionIsolation, TransactionOptions,
    };
}

/// The README's example, compiled and run as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
