//! Errors of `khonsu-storage`.

use snafu::{Location, Snafu};

/// What a storage backend can report.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// The backend failed; `message` says how. Adapters and test doubles
    /// build it with [`Error::backend`].
    #[snafu(display("storage backend failed: {message}"))]
    Backend {
        /// What went wrong.
        message: String,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// Stored data could not be decoded during recovery.
    #[snafu(display("stored data for key {key:?} is corrupt: {message}"))]
    Corrupt {
        /// The key whose data is corrupt (lossy text form).
        key: String,
        /// What is wrong with it.
        message: String,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },
}

impl Error {
    /// A backend failure with a message, for adapters outside this crate
    /// (and test doubles that inject faults).
    ///
    /// ```
    /// let err = khonsu_storage::Error::backend("disk full");
    /// assert!(err.to_string().contains("disk full"));
    /// ```
    #[must_use]
    #[track_caller]
    pub fn backend(message: impl Into<String>) -> Self {
        BackendSnafu {
            message: message.into(),
        }
        .build()
    }
}

/// Result alias of `khonsu-storage`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
