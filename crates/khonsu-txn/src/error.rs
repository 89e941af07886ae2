//! Errors of `khonsu-txn`: the error type users of `khonsu` see.

use std::sync::Arc;

use khonsu_concurrency::Conflict;
use khonsu_core::Timestamp;
use snafu::{IntoError, Location, Snafu};

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
    #[snafu(display("transaction {txn_id} aborted: {source}"))]
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

    /// A key no transaction may write: empty, or longer than
    /// [`MAX_KEY_LEN`](khonsu_core::MAX_KEY_LEN) (65,535) bytes — the same
    /// contract with and without storage, on every store. Raised by the
    /// `write` or `append`; nothing was staged and the transaction goes on.
    #[snafu(display(
        "transaction {txn_id} cannot write key {key}: it is {len} bytes, and keys are 1 to {max} bytes",
        max = khonsu_core::MAX_KEY_LEN
    ))]
    InvalidKey {
        /// The transaction.
        txn_id: u64,
        /// The key, shortened for display.
        key: String,
        /// Its length in bytes.
        len: usize,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A value cannot be stored by the database's storage (it cannot be
    /// encoded as Arrow IPC or decoded again, or it is too large). Raised
    /// by the `write` or `append` that staged it; nothing was staged.
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

    /// Rows given to [`Transaction::append`](crate::Transaction::append)
    /// (or read back with rows it staged) do not fit the key's batch:
    /// another schema. Nothing was staged; the transaction stays usable.
    #[snafu(display("transaction {txn_id} cannot append to key {key}: {source}"))]
    Append {
        /// The transaction.
        txn_id: u64,
        /// The key, shortened for display.
        key: String,
        /// Why the rows do not fit.
        #[snafu(source(from(khonsu_arrow_utils::Error, Box::new)))]
        source: Box<khonsu_arrow_utils::Error>,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A batch helper of [`khonsu_arrow_utils`] failed (a missing column,
    /// a type mismatch, mismatched schemas): converted by `?` inside a
    /// transaction body. Not a conflict: `atomically` returns it at once.
    #[snafu(display("batch operation failed: {source}"))]
    Batch {
        /// The helper's error.
        #[snafu(source(from(khonsu_arrow_utils::Error, Box::new)))]
        source: Box<khonsu_arrow_utils::Error>,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// [`Khonsu::start_transaction_at`](crate::Khonsu::start_transaction_at)
    /// asked for a timestamp whose state is not retained: only the
    /// timestamps of live [`SnapshotPin`](crate::SnapshotPin)s and the
    /// newest visible one are.
    #[snafu(display(
        "no snapshot is retained at timestamp {ts} (the newest is {visible}); pin one with Khonsu::pin_snapshot to read at it later"
    ))]
    NotRetained {
        /// The timestamp asked for.
        ts: Timestamp,
        /// The newest visible timestamp.
        visible: Timestamp,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// The application gave up on the transaction (see [`Error::abort`]).
    #[snafu(display("transaction aborted by the application: {reason}"))]
    User {
        /// The application's reason (its error's message).
        reason: String,
        /// The application's error, retrievable with
        /// [`std::error::Error::source`] and `downcast_ref`.
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
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

    /// An error an `atomically` closure returns to give up without
    /// retrying: a message, or any error of the application's, kept as
    /// this error's [`source`](std::error::Error::source) (downcast it to
    /// get it back).
    ///
    /// ```
    /// use std::error::Error as _;
    /// use khonsu_txn::{Error, Khonsu};
    ///
    /// #[derive(Debug)]
    /// struct InsufficientFunds { short_by: i64 }
    /// impl std::fmt::Display for InsufficientFunds {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         write!(f, "short by {}", self.short_by)
    ///     }
    /// }
    /// impl std::error::Error for InsufficientFunds {}
    ///
    /// let db = Khonsu::builder().build()?;
    /// let result: Result<(), Error> = db.atomically(|_t| Err(Error::abort("no")));
    /// assert!(matches!(result, Err(Error::User { .. })));
    ///
    /// let err = db
    ///     .atomically(|_t| -> Result<(), Error> { Err(InsufficientFunds { short_by: 5 }).map_err(Error::abort) })
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "transaction aborted by the application: short by 5");
    /// let cause = err.source().and_then(|e| e.downcast_ref::<InsufficientFunds>());
    /// assert_eq!(cause.map(|c| c.short_by), Some(5));
    /// # Ok::<(), Error>(())
    /// ```
    #[must_use]
    #[track_caller]
    pub fn abort(reason: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        let source = reason.into();
        UserSnafu {
            reason: source.to_string(),
        }
        .into_error(source)
    }

    /// The application's error given to [`Error::abort`], if this is one
    /// and it is an `E`.
    #[must_use]
    pub fn user_error<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Self::User { source, .. } => source.downcast_ref::<E>(),
            _ => None,
        }
    }
}

impl From<khonsu_arrow_utils::Error> for Error {
    /// `?` on a batch helper inside a transaction body.
    #[track_caller]
    fn from(source: khonsu_arrow_utils::Error) -> Self {
        BatchSnafu.into_error(source)
    }
}

impl From<Box<dyn std::error::Error + Send + Sync + 'static>> for Error {
    /// An application error, as [`Error::abort`].
    #[track_caller]
    fn from(source: Box<dyn std::error::Error + Send + Sync + 'static>) -> Self {
        Self::abort(source)
    }
}

/// Result alias of `khonsu-txn` (and of the `khonsu` facade).
pub type Result<T, E = Error> = std::result::Result<T, E>;
