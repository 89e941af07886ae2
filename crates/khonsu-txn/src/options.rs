//! [`TransactionOptions`]: per-transaction settings.

use khonsu_concurrency::{ConflictResolution, TransactionIsolation};

/// Settings for one transaction; anything left unset takes the database's
/// default.
///
/// ```
/// use khonsu_txn::{ConflictResolution, TransactionIsolation, TransactionOptions};
///
/// let options = TransactionOptions::new()
///     .isolation(TransactionIsolation::RepeatableRead)
///     .conflict_resolution(ConflictResolution::Append)
///     .read_only(false);
/// assert_eq!(options.get_isolation(), Some(TransactionIsolation::RepeatableRead));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransactionOptions {
    isolation: Option<TransactionIsolation>,
    resolution: Option<ConflictResolution>,
    read_only: bool,
}

impl TransactionOptions {
    /// Options that take every default of the database.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The isolation level of this transaction.
    #[must_use]
    pub fn isolation(mut self, isolation: TransactionIsolation) -> Self {
        self.isolation = Some(isolation);
        self
    }

    /// How this transaction settles write-write conflicts on blind writes.
    #[must_use]
    pub fn conflict_resolution(mut self, resolution: ConflictResolution) -> Self {
        self.resolution = Some(resolution);
        self
    }

    /// A read-only transaction refuses writes and deletes, records no read
    /// set and never aborts.
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The isolation level set, if any.
    #[must_use]
    pub fn get_isolation(&self) -> Option<TransactionIsolation> {
        self.isolation
    }

    /// The conflict resolution set, if any.
    #[must_use]
    pub fn get_conflict_resolution(&self) -> Option<ConflictResolution> {
        self.resolution
    }

    /// Whether the transaction is read-only.
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }
}
