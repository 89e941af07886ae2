//! Write-write conflict detection and [`ConflictResolution`].

use std::sync::Arc;

use arrow_array::RecordBatch;
use khonsu_core::{Key, Timestamp, VersionedValue};
use snafu::ResultExt;

use crate::error::{AppendSnafu, Result};
use crate::{Conflict, ConflictKind, ConflictResolution, StagedWrite, TransactionIsolation};

/// How a write conflict was settled, for `CommitInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// No concurrent write: installed as staged.
    Clean,
    /// Installed over a concurrent write (`Replace`, or `ReadCommitted`
    /// read-modify-writes under `Replace`).
    Replaced,
    /// Our rows appended to the concurrent version (`Append`).
    Appended,
    /// Our write dropped (`Ignore`).
    Ignored,
}

/// What to install for one written key.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteOutcome {
    /// How the write was settled.
    pub resolved: Resolved,
    /// `Some(value)` to install (`Some(None)` is a tombstone); `None` when
    /// the write is dropped.
    pub install: Option<Option<Arc<RecordBatch>>>,
}

/// The policy under which one transaction's writes are settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WritePolicy {
    /// The transaction's isolation level.
    pub isolation: TransactionIsolation,
    /// Its conflict resolution.
    pub resolution: ConflictResolution,
    /// Its snapshot timestamp.
    pub snapshot: Timestamp,
}

impl WritePolicy {
    /// Whether a concurrent committed write to this key aborts the
    /// transaction no matter what, in which case there is no point waiting
    /// for another committer's intent on it.
    #[must_use]
    pub fn conflict_is_fatal(&self, read_base: Option<Timestamp>, write: &StagedWrite) -> bool {
        let read_modify_write =
            read_base.is_some() && self.isolation != TransactionIsolation::ReadCommitted;
        read_modify_write
            || self.resolution == ConflictResolution::Fail
            || (self.resolution == ConflictResolution::Append && *write == StagedWrite::Delete)
    }

    /// The timestamp a write of a key conflicts above: the version the
    /// transaction read at `ReadCommitted` (a read-modify-write), else its
    /// snapshot (for snapshot reads the two are the same thing).
    #[must_use]
    pub fn conflict_base(&self, read_base: Option<Timestamp>) -> Timestamp {
        match (self.isolation, read_base) {
            (TransactionIsolation::ReadCommitted, Some(observed)) => observed,
            _ => self.snapshot,
        }
    }

    /// Whether this write is already sure to abort once the key's newest
    /// committed version is `latest_ts`: it conflicts and the conflict is
    /// fatal. The commit checks it as soon as it holds the key's intent, so
    /// a doomed transaction aborts before it takes a commit timestamp (and
    /// never waits for earlier commits' storage writes to publish its
    /// empty ticket).
    #[must_use]
    pub fn is_doomed(
        &self,
        read_base: Option<Timestamp>,
        write: &StagedWrite,
        latest_ts: Timestamp,
    ) -> bool {
        latest_ts > self.conflict_base(read_base) && self.conflict_is_fatal(read_base, write)
    }
}

/// Settles one staged write against the key's newest committed version.
///
/// `read_base` is the version the transaction read before writing the key
/// (a read-modify-write) or `None` (a blind write); `latest_ts` is the
/// newest commit timestamp of the key, read while holding its write intent;
/// `latest` fetches that version's value (only `Append` needs it).
///
/// A write conflicts when a version newer than its base exists — the
/// version read, or the snapshot for a blind write. A conflicting
/// read-modify-write at `RepeatableRead`/`Serializable` always aborts; every
/// other conflicting write follows the resolution.
///
/// # Errors
/// A [`Conflict`](crate::Error::Conflict) of kind
/// [`ConflictKind::WriteWrite`], or [`Append`](crate::Error::Append) when
/// appended batches do not fit together.
pub fn resolve_write(
    policy: &WritePolicy,
    key: &Key,
    write: &StagedWrite,
    read_base: Option<Timestamp>,
    latest_ts: Timestamp,
    latest: impl FnOnce() -> VersionedValue,
) -> Result<WriteOutcome> {
    // At ReadCommitted a read-modify-write conflicts with anything newer
    // than the version it read; everything else with anything newer than
    // the snapshot.
    if latest_ts <= policy.conflict_base(read_base) {
        return Ok(WriteOutcome {
            resolved: Resolved::Clean,
            install: Some(write.value()),
        });
    }
    let conflict = || Conflict::on_key(ConflictKind::WriteWrite, key.clone(), Some(latest_ts));
    if read_base.is_some() && policy.isolation != TransactionIsolation::ReadCommitted {
        return Err(conflict().into());
    }
    match (policy.resolution, write) {
        (ConflictResolution::Fail, _) | (ConflictResolution::Append, StagedWrite::Delete) => {
            Err(conflict().into())
        }
        (ConflictResolution::Replace, _) => Ok(WriteOutcome {
            resolved: Resolved::Replaced,
            install: Some(write.value()),
        }),
        (ConflictResolution::Ignore, _) => Ok(WriteOutcome {
            resolved: Resolved::Ignored,
            install: None,
        }),
        (ConflictResolution::Append, StagedWrite::Put(ours)) => {
            let value = match latest().value {
                Some(theirs) => Arc::new(
                    khonsu_arrow_utils::append(&theirs, ours)
                        .context(AppendSnafu { key: key.clone() })?,
                ),
                None => Arc::clone(ours),
            };
            Ok(WriteOutcome {
                resolved: Resolved::Appended,
                install: Some(Some(value)),
            })
        }
    }
}
