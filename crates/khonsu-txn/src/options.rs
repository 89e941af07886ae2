//! [`TransactionOptions`]: per-transaction settings.

use std::time::Duration;

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
    max_retries: Option<u32>,
    retry_budget: Option<Duration>,
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

    /// How many times [`Khonsu::atomically_with`](crate::Khonsu::atomically_with)
    /// retries this body after a conflict (default: the database's
    /// [`max_retries`](crate::KhonsuBuilder::max_retries)).
    #[must_use]
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = Some(retries);
        self
    }

    /// The longest [`Khonsu::atomically_with`](crate::Khonsu::atomically_with)
    /// keeps retrying this body (default: the database's
    /// [`retry_budget`](crate::KhonsuBuilder::retry_budget)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use khonsu_txn::TransactionOptions;
    ///
    /// let options = TransactionOptions::new().max_retries(1_000).retry_budget(Duration::from_millis(50));
    /// assert_eq!(options.get_retry_budget(), Some(Duration::from_millis(50)));
    /// ```
    #[must_use]
    pub fn retry_budget(mut self, budget: Duration) -> Self {
        self.retry_budget = Some(budget);
        self
    }

    /// The retry count set, if any.
    #[must_use]
    pub fn get_max_retries(&self) -> Option<u32> {
        self.max_retries
    }

    /// The retry time budget set, if any.
    #[must_use]
    pub fn get_retry_budget(&self) -> Option<Duration> {
        self.retry_budget
    }
}
