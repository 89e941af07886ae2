//! Errors of the `khonsu` binary.

use arrow_schema::ArrowError;
use snafu::{Location, Snafu};

use crate::stats::AbortKind;

/// Everything that can stop a demo run. A retryable engine conflict is an
/// [`Error`] too while it travels up from one attempt; [`Error::conflict`] tells.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub(crate) enum Error {
    /// Building the database failed.
    #[snafu(display("failed to open the database"))]
    Open {
        /// The engine's error (boxed: it carries the conflicting key or range).
        #[snafu(source(from(khonsu::Error, Box::new)))]
        source: Box<khonsu::Error>,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// The transaction creating the accounts failed.
    #[snafu(display("failed to create {accounts} accounts"))]
    CreateAccounts {
        /// Number of accounts.
        accounts: u64,
        /// The engine's error (boxed: it carries the conflicting key or range).
        #[snafu(source(from(khonsu::Error, Box::new)))]
        source: Box<khonsu::Error>,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// A read, write or commit of a transfer failed.
    #[snafu(display("transfer from account {from} to account {to} failed to {step}"))]
    Transfer {
        /// Paying account.
        from: u64,
        /// Receiving account.
        to: u64,
        /// The failed operation (`read`, `write`, `commit`).
        step: &'static str,
        /// The engine's error (boxed: it carries the conflicting key or range).
        #[snafu(source(from(khonsu::Error, Box::new)))]
        source: Box<khonsu::Error>,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// A scan or commit of an audit failed.
    #[snafu(display("audit failed to {step}"))]
    Audit {
        /// The failed operation (`scan`, `commit`).
        step: &'static str,
        /// The engine's error (boxed: it carries the conflicting key or range).
        #[snafu(source(from(khonsu::Error, Box::new)))]
        source: Box<khonsu::Error>,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// Arrow refused to build an account's batch.
    #[snafu(display("failed to build the batch of account {account}"))]
    BuildBatch {
        /// The account.
        account: u64,
        /// Arrow's error.
        #[snafu(source)]
        error: ArrowError,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// An account that was created is not visible any more.
    #[snafu(display("account {account} is missing"))]
    MissingAccount {
        /// The account.
        account: u64,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// An account's batch does not have the shape the demo wrote.
    #[snafu(display("account {account} holds a malformed batch: {reason}"))]
    MalformedAccount {
        /// The account.
        account: u64,
        /// What is wrong.
        reason: String,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// A key that is not an 8-byte account id showed up in a scan.
    #[snafu(display("unexpected key {key:?} in the accounts table"))]
    UnexpectedKey {
        /// The key's bytes.
        key: Vec<u8>,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// A balance left the `i64` range (only possible when lost updates inflate it).
    #[snafu(display("the balance of account {account} overflowed"))]
    BalanceOverflow {
        /// The account.
        account: u64,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// The operating system refused to start a thread.
    #[snafu(display("failed to start a worker thread"))]
    Spawn {
        /// The OS error.
        #[snafu(source)]
        error: std::io::Error,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// A worker or auditor thread panicked (a bug in this binary or the engine).
    #[snafu(display("{thread} panicked: {message}"))]
    ThreadPanicked {
        /// Which thread.
        thread: String,
        /// The panic payload, if it was a string.
        message: String,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },
}

/// Result with this binary's [`Error`].
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The engine error this error wraps, if any.
    fn engine(&self) -> Option<&khonsu::Error> {
        match self {
            Self::Open { source, .. }
            | Self::CreateAccounts { source, .. }
            | Self::Transfer { source, .. }
            | Self::Audit { source, .. } => Some(source),
            _ => None,
        }
    }

    /// `Some(kind)` when this is an engine conflict that the caller should retry.
    pub(crate) fn conflict(&self) -> Option<AbortKind> {
        let engine = self.engine()?;
        engine
            .is_conflict()
            .then(|| AbortKind::of(engine.conflict().map(|c| &c.kind)))
    }
}
