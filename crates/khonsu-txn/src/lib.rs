//! Khonsu transactions: the database handle, transactions, the commit
//! pipeline and recovery.
//!
//! * [`Khonsu`] / [`KhonsuBuilder`] — open a database (recovering from a
//!   [`Storage`](khonsu_storage::Storage) if given), start transactions, run
//!   [`Khonsu::atomically`].
//! * [`Transaction`] — `read`, `write`, `delete`, `scan`, `scan_prefix`,
//!   `commit`, `rollback`.
//! * [`TransactionOptions`] — per-transaction isolation, resolution and
//!   read-only flag.
//! * [`CommitInfo`] — what a commit did; [`Error`] — why it did not.
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
    Conflict, ConflictKind, ConflictResolution, ConflictTarget, TransactionIsolation,
};
pub use khonsu_core::{BufferStats, Key, KeyRange, MAX_KEY_LEN, OldestSnapshot, Timestamp};
pub use metrics::{Aborts, LATENCY_BUCKETS, LatencyHistogram, Metrics};
pub use options::TransactionOptions;
pub use transaction::{ScanIter, Transaction};
