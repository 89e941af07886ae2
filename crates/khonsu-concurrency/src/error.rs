//! Errors of `khonsu-concurrency`, and the [`Conflict`] they describe.

use std::fmt;
use std::ops::Bound;

use khonsu_core::{Key, Timestamp};
use snafu::{Location, Snafu};

/// Why a transaction lost a race with another one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConflictKind {
    /// Another transaction committed a write to a key this one writes, after
    /// this one's snapshot (first committer wins), and the resolution is to
    /// fail — or the key was read first (read-modify-write), which always fails
    /// at `RepeatableRead` and `Serializable`.
    WriteWrite,
    /// A key this transaction read was overwritten, or is being overwritten,
    /// by a transaction that commits first (`Serializable`).
    StaleRead,
    /// A range this transaction scanned gained, lost or changed a key by a
    /// transaction that commits first (`Serializable`).
    Phantom,
    /// Another commit held the key's write intent longer than the wait budget.
    Busy,
    /// Committing would close a dangerous structure `T_in →rw T_pivot →rw
    /// T_out` whose `T_out` committed first (precise `Serializable`):
    /// this transaction is one of the three, and [`Conflict::structure`]
    /// names the others' timestamps.
    DangerousStructure,
}

impl fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::WriteWrite => "write-write conflict",
            Self::StaleRead => "stale read",
            Self::Phantom => "phantom in scanned range",
            Self::Busy => "write intent busy",
            Self::DangerousStructure => "dangerous structure",
        })
    }
}

/// What a conflict is about: one key, or a scanned range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConflictTarget {
    /// A single key.
    Key(Key),
    /// A range read by `scan` or `scan_prefix`.
    Range {
        /// Start bound of the range.
        start: Bound<Key>,
        /// End bound of the range.
        end: Bound<Key>,
    },
}

impl fmt::Display for ConflictTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(k) => write!(f, "key {}", k.short()),
            Self::Range { start, end } => {
                f.write_str("range ")?;
                match start {
                    Bound::Included(k) => write!(f, "[{}", k.short())?,
                    Bound::Excluded(k) => write!(f, "({}", k.short())?,
                    Bound::Unbounded => f.write_str("(-inf")?,
                }
                f.write_str(", ")?;
                match end {
                    Bound::Included(k) => write!(f, "{}]", k.short()),
                    Bound::Excluded(k) => write!(f, "{})", k.short()),
                    Bound::Unbounded => f.write_str("+inf)"),
                }
            }
        }
    }
}

/// The other two transactions of a dangerous structure `T_in →rw T_pivot
/// →rw T_out` ([`ConflictKind::DangerousStructure`]): the aborted
/// transaction is the one whose timestamp is `None` (`T_in` or the pivot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Structure {
    /// `T_in`: the commit timestamp of the transaction that read what this
    /// one writes (its snapshot, if it wrote nothing; a read-only
    /// snapshot's, when read-only transactions forbid the order); `None`
    /// when this transaction is `T_in`.
    pub reader_ts: Option<Timestamp>,
    /// The pivot's commit timestamp; `None` when this transaction is the
    /// pivot.
    pub pivot_ts: Option<Timestamp>,
    /// `T_out`'s commit timestamp (a lower bound when a held intent hides
    /// it): the earliest commit the pivot would be ordered before.
    pub out_ts: Timestamp,
}

impl fmt::Display for Structure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stamp =
            |ts: Option<Timestamp>| ts.map_or_else(|| "this".to_owned(), |ts| ts.to_string());
        write!(
            f,
            "reader {} → pivot {} → writer committed at {}",
            stamp(self.reader_ts),
            stamp(self.pivot_ts),
            self.out_ts
        )
    }
}

/// A retryable conflict: which kind, on which key or range, and (when known)
/// the commit timestamp of the transaction that won.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The kind of conflict.
    pub kind: ConflictKind,
    /// The key or range it is about.
    pub target: ConflictTarget,
    /// Commit timestamp of the conflicting transaction, when it has one
    /// (for a dangerous structure, `T_out`'s).
    pub other_commit_ts: Option<Timestamp>,
    /// For a dangerous structure, the timestamps of its transactions
    /// (boxed: conflicts travel in `Result`s on the commit path).
    pub structure: Option<Box<Structure>>,
}

impl Conflict {
    /// A conflict on one key.
    #[must_use]
    pub fn on_key(kind: ConflictKind, key: Key, other_commit_ts: Option<Timestamp>) -> Self {
        Self {
            kind,
            target: ConflictTarget::Key(key),
            other_commit_ts,
            structure: None,
        }
    }

    /// The key the conflict is about, if it is about one key.
    #[must_use]
    pub fn key(&self) -> Option<&Key> {
        match &self.target {
            ConflictTarget::Key(k) => Some(k),
            ConflictTarget::Range { .. } => None,
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.kind, self.target)?;
        if let Some(structure) = &self.structure {
            return write!(f, " ({structure})");
        }
        if let Some(ts) = self.other_commit_ts {
            write!(f, " (the other transaction committed at {ts})")?;
        }
        Ok(())
    }
}

/// Errors of validation and conflict resolution.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// The transaction lost a race; retrying it may succeed.
    #[snafu(display("{conflict}"))]
    Conflict {
        /// What the conflict is (boxed: it names keys or a range, and
        /// `Result`s on the commit path stay small).
        conflict: Box<Conflict>,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// `ConflictResolution::Append` could not append this transaction's rows
    /// to the concurrently committed batch (for example, different schemas).
    #[snafu(display("cannot append rows to key {}: {source}", key.short()))]
    Append {
        /// The key being appended to.
        key: Key,
        /// Why the batches could not be appended.
        #[snafu(source(from(khonsu_arrow_utils::Error, Box::new)))]
        source: Box<khonsu_arrow_utils::Error>,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },
}

impl Error {
    /// Whether this is a retryable conflict.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// The conflict, if this is one.
    #[must_use]
    pub fn conflict(&self) -> Option<&Conflict> {
        match self {
            Self::Conflict { conflict, .. } => Some(conflict.as_ref()),
            Self::Append { .. } => None,
        }
    }
}

impl From<Conflict> for Error {
    #[track_caller]
    fn from(conflict: Conflict) -> Self {
        ConflictSnafu {
            conflict: Box::new(conflict),
        }
        .build()
    }
}

/// Result alias of `khonsu-concurrency`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
