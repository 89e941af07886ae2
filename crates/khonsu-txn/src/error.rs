//! Errors of `khonsu-txn`: the error type users of `khonsu` see.

use std::sync::Arc;

use khonsu_concurrency::Conflict;
use khonsu_core::Timestamp;
use snafu::{Location, Snafu};

/// Everything a transaction or the database handle can fail with.
///
/// [`is_conflict`](Self::is_conflict) is true exactly for retryable
/// conflicts; [`Khonsu::atomically`](crate::Khonsu::atomically) retries
/// those and returns every other error at once.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// Commit of transaction `txn_id` was refused by validation or conflict
    /// resolution; nothing of it became visible.
    #[snafu(display("transaction {txn_id} aborted"))]
    Aborted {
        /// The transaction.
        txn_id: u64,
        /// Why: a conflict, or an `Append` that could not merge.
        source: khonsu_concurrency::Error,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A write or delete in a transaction started with `read_only(true)`.
    #[snafu(display("transaction {txn_id} is read-only and cannot {operation}"))]
    ReadOnly {
        /// The transaction.
        txn_id: u64,
        /// The refused operation.
        operation: &'static str,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// The storage write carrying transaction `txn_id` failed and wrote
    /// nothing: the transaction aborted, nothing of it is visible or
    /// stored, and the database takes later commits.
    #[snafu(display(
        "transaction {txn_id} aborted: the storage write of commit {commit_ts} failed and wrote nothing"
    ))]
    Storage {
        /// The transaction.
        txn_id: u64,
        /// The commit timestamp it would have had.
        commit_ts: Timestamp,
        /// The storage's failure (shared by every commit of the write).
        source: Arc<khonsu_storage::WriteFailure>,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// The storage write carrying transaction `txn_id` failed in a way that
    /// leaves its outcome unknown (typically a failed `fsync`): the
    /// transaction is not visible now, and it may or may not be there once
    /// the database is reopened. The database refuses further commits until
    /// then ([`Error::StorageUnusable`]).
    #[snafu(display(
        "transaction {txn_id} at {commit_ts}: the storage write's outcome is unknown; it is not \
         visible, and may or may not be durable (reopen the database to find out)"
    ))]
    StorageOutcomeUnknown {
        /// The transaction.
        txn_id: u64,
        /// The commit timestamp it would have had.
        commit_ts: Timestamp,
        /// The storage's failure.
        source: Arc<khonsu_storage::WriteFailure>,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// An earlier storage write's outcome is unknown, so the database
    /// refuses every commit until it is reopened and recovered from what is
    /// really on disk (as `PostgreSQL` does after an `fsync` failure).
    /// Reads keep working; transaction `txn_id` aborted.
    #[snafu(display(
        "transaction {txn_id} refused: an earlier storage write's outcome is unknown, so the \
         database takes no commits until it is reopened"
    ))]
    StorageUnusable {
        /// The refused transaction.
        txn_id: u64,
        /// The failure that made the storage unusable.
        source: Arc<khonsu_storage::WriteFailure>,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A value or key cannot be stored by the database's storage (it cannot
    /// be encoded as Arrow IPC, is too large, or the key is too long for
    /// the adapter). Raised by the `write` or `delete` that staged it;
    /// nothing was staged.
    #[snafu(display("transaction {txn_id} cannot stage key {key}: storage would refuse it"))]
    Unstorable {
        /// The transaction.
        txn_id: u64,
        /// The key, shortened for display.
        key: String,
        /// Why.
        #[snafu(source(from(khonsu_storage::Error, Box::new)))]
        source: Box<khonsu_storage::Error>,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// Opening the database's storage failed (a lock held by another
    /// process, a damaged or foreign file); the error names the path.
    #[snafu(display("could not open the database's storage"))]
    Open {
        /// The storage's error.
        #[snafu(source(from(khonsu_storage::Error, Box::new)))]
        source: Box<khonsu_storage::Error>,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// The storage handed to the builder already serves a live database.
    /// Two databases on one storage would each run their own clock and lose
    /// each other's commits at the next recovery; drop the other database
    /// (and its transactions) first.
    #[snafu(display(
        "this {adapter} storage already serves a live database; drop that database first"
    ))]
    StorageInUse {
        /// The storage adapter's name.
        adapter: &'static str,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// Recovering committed state from storage failed while building a
    /// `Khonsu`.
    #[snafu(display("recovery from storage failed"))]
    Recovery {
        /// The storage's error.
        #[snafu(source(from(khonsu_storage::Error, Box::new)))]
        source: Box<khonsu_storage::Error>,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A key recovered from storage could not be installed in the buffer.
    #[snafu(display("recovery could not install key {key:?}"))]
    RecoveredKey {
        /// The key.
        key: khonsu_core::Key,
        /// The buffer's error.
        source: khonsu_core::Error,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// The buffer refused to install a version of transaction `txn_id`
    /// (an engine invariant failed; nothing of it became visible).
    #[snafu(display("transaction {txn_id} could not install its versions"))]
    Install {
        /// The transaction.
        txn_id: u64,
        /// The buffer's error.
        source: khonsu_core::Error,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// The clock could not hand out a commit timestamp.
    #[snafu(display("transaction {txn_id} could not get a commit timestamp"))]
    Clock {
        /// The transaction.
        txn_id: u64,
        /// The clock's error.
        source: khonsu_core::Error,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// Transaction `txn_id` is older than the database's maximum snapshot
    /// age ([`KhonsuBuilder::max_snapshot_age`](crate::KhonsuBuilder::max_snapshot_age)):
    /// its snapshot no longer pins old versions, so it cannot read or
    /// commit. Not a conflict: start a new transaction (and keep it
    /// shorter). Nothing of it became visible.
    #[snafu(display(
        "transaction {txn_id}: snapshot too old ({age:?}, the maximum is {max_age:?}); start a new transaction"
    ))]
    SnapshotTooOld {
        /// The transaction.
        txn_id: u64,
        /// Its snapshot timestamp.
        snapshot_ts: Timestamp,
        /// How old it was when refused.
        age: std::time::Duration,
        /// The database's maximum snapshot age.
        max_age: std::time::Duration,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// The application gave up on the transaction (see [`Error::abort`]).
    #[snafu(display("transaction aborted by the application: {reason}"))]
    User {
        /// The application's reason.
        reason: String,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },
}

impl Error {
    /// Whether this is a retryable conflict (write-write, stale read,
    /// phantom, busy intent). Storage failures, schema mismatches in
    /// `Append`, read-only violations and application aborts are not.
    ///
    /// ```
    /// # use khonsu_txn::Error;
    /// assert!(!Error::abort("no").is_conflict());
    /// ```
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        self.conflict().is_some()
    }

    /// The conflict, if this error is one: its kind, its key or range, and
    /// the winner's commit timestamp when known.
    #[must_use]
    pub fn conflict(&self) -> Option<&Conflict> {
        match self {
            Self::Aborted { source, .. } => source.conflict(),
            _ => None,
        }
    }

    /// An error an `atomically` closure returns to give up without retrying.
    ///
    /// ```
    /// # use khonsu_txn::{Error, Khonsu};
    /// let db = Khonsu::builder().build().unwrap();
    /// let result: Result<(), Error> = db.atomically(|_t| Err(Error::abort("insufficient funds")));
    /// assert!(matches!(result, Err(Error::User { .. })));
    /// ```
    #[must_use]
    #[track_caller]
    pub fn abort(reason: impl Into<String>) -> Self {
        UserSnafu {
            reason: reason.into(),
        }
        .build()
    }
}

/// Result alias of `khonsu-txn` (and of the `khonsu` facade).
pub type Result<T, E = Error> = std::result::Result<T, E>;
