//! Errors of `khonsu-core`.

use snafu::{Location, Snafu};

use crate::Key;

/// What can go wrong inside the transaction buffer and the clock.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// The timestamp oracle has handed out every timestamp it can represent.
    #[snafu(display("timestamp oracle exhausted: cannot allocate a timestamp after {last}"))]
    TimestampExhausted {
        /// The last timestamp handed out.
        last: u64,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A version was to be installed at a timestamp the buffer cannot
    /// represent (0, or above `MAX_TIMESTAMP`).
    #[snafu(display("commit timestamp {ts} is out of range (1..={max})", max = crate::MAX_TIMESTAMP))]
    TimestampOutOfRange {
        /// The refused timestamp.
        ts: u64,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A version was to be installed at a timestamp not above the key's
    /// newest version: a key's versions are installed in timestamp order.
    #[snafu(display("install of {key:?} at {ts} is not above its newest version ({latest})"))]
    StaleInstall {
        /// The key.
        key: Key,
        /// The refused timestamp.
        ts: u64,
        /// Commit timestamp of the key's newest version.
        latest: u64,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// Another commit held the write intent on `key` for longer than the wait budget.
    #[snafu(display(
        "write intent on {key:?} is held by another commit (gave up after {spins} waits)"
    ))]
    IntentBusy {
        /// The contended key.
        key: Key,
        /// How many times the lock was retried before giving up.
        spins: u32,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },
}

/// Result alias of `khonsu-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
