//! Errors of the benchmark library and the comparison driver.

use std::convert::Infallible;
use std::path::PathBuf;

use snafu::{Location, Snafu};

/// Everything a benchmark run can fail with. A benchmark that breaks an
/// invariant (a lost update, a missing key) fails loudly instead of
/// reporting a number.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// A Khonsu operation failed with something other than a retried
    /// conflict.
    #[snafu(display("{engine}: Khonsu {operation} failed"))]
    Khonsu {
        /// The engine's name.
        engine: &'static str,
        /// The failed operation.
        operation: &'static str,
        /// Khonsu's error (boxed: it is large).
        #[snafu(source(from(khonsu::Error, Box::new)))]
        source: Box<khonsu::Error>,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A skipdb operation failed with something other than a retried
    /// conflict.
    #[snafu(display("{engine}: skipdb {operation} failed"))]
    Skipdb {
        /// The engine's name.
        engine: &'static str,
        /// The failed operation.
        operation: &'static str,
        /// skipdb's error.
        #[snafu(source)]
        error: txn::error::TransactionError<Infallible, Infallible>,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// Building a value batch failed.
    #[snafu(display("building a {what} batch failed"))]
    Arrow {
        /// Which batch.
        what: &'static str,
        /// Arrow's error.
        #[snafu(source)]
        error: arrow_schema::ArrowError,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A key that the load step stored was not found.
    #[snafu(display("{engine}: key {key} is missing"))]
    MissingKey {
        /// The engine's name.
        engine: &'static str,
        /// The key.
        key: u64,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A lock of a lock-based engine was poisoned by a panicking thread.
    #[snafu(display("{engine}: lock poisoned"))]
    Poisoned {
        /// The engine's name.
        engine: &'static str,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// The counter key holds something other than a one-row `Int64` batch.
    #[snafu(display("{engine}: key {key} does not hold a 1-row Int64 counter"))]
    NotACounter {
        /// The engine's name.
        engine: &'static str,
        /// The key.
        key: u64,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// `rmw1` lost (or invented) updates: the counter does not equal the
    /// number of commits.
    #[snafu(display("{engine}: counter is {found} after {commits} committed increments"))]
    LostUpdate {
        /// The engine's name.
        engine: &'static str,
        /// The counter's final value.
        found: i64,
        /// Committed increments.
        commits: u64,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A transaction saw a different number of rows than the workload
    /// implies (every key is loaded and holds a one-row batch).
    #[snafu(display("{engine}/{workload}: a transaction read {found} rows, expected {expected}"))]
    WrongRows {
        /// The engine's name.
        engine: &'static str,
        /// The workload's name.
        workload: &'static str,
        /// Rows seen.
        found: u64,
        /// Rows expected.
        expected: u64,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A worker thread panicked.
    #[snafu(display("{engine}/{workload}: a worker thread panicked"))]
    WorkerPanicked {
        /// The engine's name.
        engine: &'static str,
        /// The workload's name.
        workload: &'static str,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A durable store (Khonsu's storage, redb, fjall, canopydb) failed.
    #[snafu(display("{engine}: {operation} failed: {message}"))]
    Backend {
        /// The engine's name.
        engine: &'static str,
        /// The failed operation.
        operation: &'static str,
        /// The store's error with its sources, as text (the stores' error
        /// types differ and some are not `'static`).
        message: String,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A file or directory operation of the benchmark itself failed.
    #[snafu(display("{what} failed"))]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The I/O error.
        #[snafu(source)]
        error: std::io::Error,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A durable benchmark broke an invariant (money created or destroyed
    /// by transfers, a key missing after recovery, a child process that
    /// misbehaved).
    #[snafu(display("{engine}: {message}"))]
    Invariant {
        /// The engine (or phase) name.
        engine: &'static str,
        /// What went wrong.
        message: String,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// Writing the JSON report failed.
    #[snafu(display("writing {} failed", path.display()))]
    WriteReport {
        /// The output file.
        path: PathBuf,
        /// The I/O error.
        #[snafu(source)]
        error: std::io::Error,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// The engine does not run this workload.
    #[snafu(display("{engine} does not run {workload}"))]
    Unsupported {
        /// The engine.
        engine: &'static str,
        /// The workload.
        workload: &'static str,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A bad command-line argument.
    #[snafu(display("{message}"))]
    Usage {
        /// What is wrong and what is accepted.
        message: String,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },
}

/// The benchmark library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
