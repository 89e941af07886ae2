//! Khonsu concurrency control: the policy layer over `khonsu-core`.
//!
//! * [`TransactionIsolation`] and [`ConflictResolution`] — the two knobs.
//! * [`DependencyTracker`] — a transaction's point reads (with the version
//!   each saw), range reads and staged writes.
//! * [`validate_serializable`] — commit-time validation of reads and scanned
//!   ranges for `Serializable`.
//! * [`SsiState`] — precise `Serializable`: commit-time serializable
//!   snapshot isolation (dangerous structures, `PostgreSQL`'s refinements).
//! * [`resolve_write`] — write-write conflict detection and resolution
//!   (`Fail`, `Replace`, `Ignore`, `Append`).
//! * [`Conflict`] / [`Error`] — what lost, where, and why.
//!
//! This crate decides; it performs no I/O and starts no threads. The commit
//! pipeline that calls it lives in `khonsu-txn`.

mod error;
mod key_map;
mod options;
mod resolve;
mod ssi;
mod tracker;
mod validate;

pub use error::{Conflict, ConflictKind, ConflictTarget, Error, Result, Structure};
pub use options::{ConflictResolution, ParseOptionError, TransactionIsolation};
pub use resolve::{
    Decision, Install, ReadBase, Resolved, Seen, WriteOutcome, WritePolicy, decide, resolve_write,
};
pub use ssi::{PureReads, SerializableValidation, SsiDecision, SsiRegistration, SsiState};
pub use tracker::{
    DependencyTracker, Observed, RangeRead, SealedWrite, StagedWrite, range_is_empty,
};
pub use validate::validate_serializable;
