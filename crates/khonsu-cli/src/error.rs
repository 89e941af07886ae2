//! Errors of the `khonsu` binary, and which exit code each one means.

use std::path::PathBuf;

use arrow_schema::ArrowError;
use snafu::{Location, Snafu};

use crate::stats::AbortKind;

/// Everything that can stop a `khonsu` command. A retryable engine conflict is
/// an [`Error`] too while it travels up from one attempt; [`Error::conflict`]
/// tells.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub(crate) enum Error {
    /// `--storage fjall` in a binary built without the `fjall` feature.
    #[cfg(not(feature = "fjall"))]
    #[snafu(display(
        "--storage fjall needs a khonsu binary built with the fjall adapter; rebuild with \
         `--features fjall`, e.g. `cargo run --release -p khonsu-cli --features fjall -- \
         demo --storage fjall`"
    ))]
    FjallNotBuilt {
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// `--data-dir` with `--storage memory`: the directory would stay empty.
    #[snafu(display(
        "--data-dir {} has no effect with --storage memory, which keeps nothing; \
         drop one of them",
        dir.display()
    ))]
    DataDirWithoutPersistence {
        /// The directory given.
        dir: PathBuf,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// The store of a data directory could not be opened (held by another
    /// process, damaged, foreign, or of another adapter).
    #[snafu(display("failed to open the {adapter} store in {}", dir.display()))]
    OpenStore {
        /// The adapter.
        adapter: &'static str,
        /// The data directory.
        dir: PathBuf,
        /// The storage's error, naming the path.
        #[snafu(source(from(khonsu::storage::Error, Box::new)))]
        source: Box<khonsu::storage::Error>,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// Building the database (recovering it from its store) failed.
    #[snafu(display("failed to open the database ({store})"))]
    Open {
        /// Where it lives, e.g. `redb in khonsu-data`.
        store: String,
        /// The engine's error (boxed: it carries the conflicting key or range).
        #[snafu(source(from(khonsu::Error, Box::new)))]
        source: Box<khonsu::Error>,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// The transaction creating or resuming the bank failed.
    #[snafu(display("failed to {step} the bank ({store})"))]
    OpenBank {
        /// Where it lives.
        store: String,
        /// The failed operation (`read the record of`, `scan`, `write`, `commit`).
        step: &'static str,
        /// The engine's error (boxed: it carries the conflicting key or range).
        #[snafu(source(from(khonsu::Error, Box::new)))]
        source: Box<khonsu::Error>,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// The store holds keys but no bank record: it belongs to something else.
    #[snafu(display(
        "the store ({store}) does not hold a khonsu demo bank: it has {keys} keys but no \
         {meta_key} record (its first key is {first_key}); give another --data-dir, or \
         an empty or new one"
    ))]
    NotABank {
        /// Where it lives.
        store: String,
        /// How many keys it holds.
        keys: usize,
        /// The bank record's key, for display.
        meta_key: String,
        /// Its first key, for display.
        first_key: String,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// The store holds a bank record, but the bank does not match it.
    #[snafu(display("the demo bank ({store}) is damaged: {reason}"))]
    DamagedBank {
        /// Where it lives.
        store: String,
        /// What does not match.
        reason: String,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// The total of a new bank would not fit an `i64` (the flags' ranges prevent it).
    #[snafu(display("a bank of {accounts} accounts holding {initial_balance} each is too large"))]
    BankTooLarge {
        /// Number of accounts.
        accounts: u64,
        /// Starting balance of each.
        initial_balance: i64,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// Arrow refused to build the bank record's batch.
    #[snafu(display("failed to build the bank's record"))]
    BuildMeta {
        /// Arrow's error.
        #[snafu(source)]
        error: ArrowError,
        /// Where it happened.
        #[snafu(implicit)]
        location: Location,
    },

    /// `khonsu inspect` could not open or read the store.
    #[snafu(display("failed to inspect {}", dir.display()))]
    Inspect {
        /// The data directory.
        dir: PathBuf,
        /// The storage's error, naming the path.
        #[snafu(source(from(khonsu::storage::Error, Box::new)))]
        source: Box<khonsu::storage::Error>,
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
            | Self::OpenBank { source, .. }
            | Self::Transfer { source, .. }
            | Self::Audit { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether this is a usage error: a combination of flags this binary cannot run
    /// (exit code 2, like clap's own usage errors).
    pub(crate) fn is_usage(&self) -> bool {
        match self {
            #[cfg(not(feature = "fjall"))]
            Self::FjallNotBuilt { .. } => true,
            Self::DataDirWithoutPersistence { .. } => true,
            _ => false,
        }
    }

    /// Whether this says a store is damaged: `khonsu inspect` found a file too
    /// damaged to open (exit code 4, like damaged values).
    pub(crate) fn is_damaged_store(&self) -> bool {
        matches!(
            self,
            Self::Inspect { source, .. } if matches!(**source, khonsu::storage::Error::Corrupt { .. })
        )
    }

    /// `Some(kind)` when this is an engine conflict that the caller should retry.
    pub(crate) fn conflict(&self) -> Option<AbortKind> {
        let engine = self.engine()?;
        engine
            .is_conflict()
            .then(|| AbortKind::of(engine.conflict().map(|c| &c.kind)))
    }
}
