//! Khonsu transactions: the database handle, transactions, the commit
//! pipeline and recovery.
//!
//! * [`Khonsu`] / [`KhonsuBuilder`] — open a database ([`Khonsu::open`]
//!   on a data directory, or the builder: in memory unless given a data
//!   directory or a [`Storage`](khonsu_storage::Storage), recovering from
//!   it), start transactions, run [`Khonsu::atomically`] (retries conflicts
//!   with backoff, bounded by [`KhonsuBuilder::max_retries`] and
//!   [`KhonsuBuilder::retry_budget`], per call by
//!   [`TransactionOptions::max_retries`] and
//!   [`TransactionOptions::retry_budget`];
//!   [`Khonsu::atomically_with_info`] also returns the [`CommitInfo`]),
//!   pin a snapshot and read at it later ([`Khonsu::pin_snapshot`],
//!   [`Khonsu::start_transaction_at`]), and look at [`Khonsu::metrics`],
//!   [`Khonsu::stats`], [`Khonsu::durability_stats`].
//! * [`Transaction`] — `read`, `write`, `write_with` (a write with its own
//!   conflict resolution), `append` (rows added at commit, never a
//!   conflict), `delete`, `scan`, `scan_prefix`, `scan_iter` (a lazy
//!   [`ScanIter`]: `limit`, `reverse`, `keys`), `commit`, `rollback`.
//! * [`TransactionOptions`] — per-transaction isolation, resolution,
//!   read-only flag and retry limits.
//! * [`CommitInfo`] — what a commit did; [`Error`] — why it did not.
//! * Keys are 1 to [`MAX_KEY_LEN`] bytes when written, with or without
//!   storage.
//!
//! The commit protocol is described in the `commit` module and in
//! `docs/commit-protocol.md`.

mod commit;
mod db;
mod durable;
mod error;
mod metrics;
mod options;
mod transaction;

pub use commit::CommitInfo;
pub use db::{DEFAULT_MAX_RETRIES, DurabilityStats, Khonsu, KhonsuBuilder, SnapshotPin, Stats};
pub use durable::GroupCommitStats;
pub use error::{Error, Result};
pub use khonsu_concurrency::{
    Conflict, ConflictKind, ConflictResolution, ConflictTarget, SerializableValidation, Structure,
    TransactionIsolation,
};
pub use khonsu_core::{BufferStats, Key, KeyRange, MAX_KEY_LEN, OldestSnapshot, Timestamp};
pub use metrics::{Aborts, LATENCY_BUCKETS, LatencyHistogram, Metrics};
pub use options::TransactionOptions;
pub use transaction::{ScanIter, Transaction};
