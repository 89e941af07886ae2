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
    /// The policy of one write: its own resolution when it has one
    /// (`Transaction::write_with`), the transaction's otherwise.
    #[must_use]
    pub fn for_write(self, resolution: Option<ConflictResolution>) -> Self {
        Self {
            resolution: resolution.unwrap_or(self.resolution),
            ..self
        }
    }

    /// Whether a concurrent committed write to this key aborts the
    /// transaction no matter what, in which case there is no point waiting
    /// for another committer's intent on it.
    #[must_use]
    pub fn conflict_is_fatal(&self, read_base: Option<Timestamp>, write: &StagedWrite) -> bool {
        let read_modify_write =
            read_base.is_some() && self.isolation != TransactionIsolation::ReadCommitted;
        match write {
            // An append lands on whatever is there; only a read of the key
            // (at a snapshot level) makes a concurrent write fatal.
            StagedWrite::Append(_) => read_modify_write,
            StagedWrite::Put(_) | StagedWrite::Delete => {
                read_modify_write
                    || self.resolution == ConflictResolution::Fail
                    || (self.resolution == ConflictResolution::Append
                        && *write == StagedWrite::Delete)
            }
        }
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

/// What the transaction knew of a key it wrote: the version it read before
/// writing (`None` for a blind write) and, when kept, the value of that
/// version.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadBase<'a> {
    /// The newest observation of the key before its first write: the
    /// version a point read saw, or the timestamp a covering scan read at.
    pub ts: Option<Timestamp>,
    /// The value the read saw: `Some(None)` when the key was absent,
    /// `Some(Some(batch))` when it was kept, `None` when it is not known.
    pub value: Option<Option<&'a Arc<RecordBatch>>>,
}

/// The rows `ours` adds after `base`, when `ours` starts with exactly the
/// rows of `base` (same schema, equal values and nulls).
fn added_rows(ours: &RecordBatch, base: &RecordBatch) -> Option<RecordBatch> {
    let (n, total) = (base.num_rows(), ours.num_rows());
    if n > total {
        return None;
    }
    khonsu_arrow_utils::batches_equal(&ours.slice(0, n), base).then(|| ours.slice(n, total - n))
}

/// Settles one staged write against the key's newest committed version.
///
/// `read` says what the transaction read of the key before writing it (a
/// read-modify-write) — nothing for a blind write; `latest_ts` is the
/// newest commit timestamp of the key, read while holding its write intent;
/// `latest` fetches that version's value (appends need it).
///
/// A write conflicts when a version newer than its base exists — the
/// version read, or the snapshot for a blind write. A conflicting
/// read-modify-write at `RepeatableRead`/`Serializable` always aborts; every
/// other conflicting write follows the resolution of `policy` (already the
/// write's own, see [`WritePolicy::for_write`]):
///
/// * `Append` of a blind write appends all its rows to the concurrent
///   version; of a `ReadCommitted` read-modify-write that extends the
///   batch it read, only the rows it added (appending all of it would
///   duplicate what it read); of one that rewrote what it read, all of it;
///   of one whose read value is unknown (a key read through a scan), it
///   fails with a conflict.
///
/// A staged append ([`StagedWrite::Append`]) is not a conflict at all: its
/// rows go after whatever the key holds, conflicting or not (unless the
/// key was also read at a snapshot level and changed since).
///
/// # Errors
/// A [`Conflict`](crate::Error::Conflict) of kind
/// [`ConflictKind::WriteWrite`], or [`Append`](crate::Error::Append) when
/// appended batches do not fit together.
pub fn resolve_write(
    policy: &WritePolicy,
    key: &Key,
    write: &StagedWrite,
    read: ReadBase<'_>,
    latest_ts: Timestamp,
    latest: impl FnOnce() -> VersionedValue,
) -> Result<WriteOutcome> {
    let read_base = read.ts;
    // At ReadCommitted a read-modify-write conflicts with anything newer
    // than the version it read; everything else with anything newer than
    // the snapshot.
    let conflicting = latest_ts > policy.conflict_base(read_base);
    let conflict = || Conflict::on_key(ConflictKind::WriteWrite, key.clone(), Some(latest_ts));
    let fatal_read = read_base.is_some() && policy.isolation != TransactionIsolation::ReadCommitted;
    let append_onto =
        |rows: &Arc<RecordBatch>, latest: VersionedValue| -> Result<Arc<RecordBatch>> {
            Ok(match latest.value {
                Some(theirs) => Arc::new(
                    khonsu_arrow_utils::append(&theirs, rows)
                        .context(AppendSnafu { key: key.clone() })?,
                ),
                None => Arc::clone(rows),
            })
        };
    if let StagedWrite::Append(rows) = write {
        if conflicting && fatal_read {
            return Err(conflict().into());
        }
        let resolved = if latest_ts > policy.snapshot {
            Resolved::Appended
        } else {
            Resolved::Clean
        };
        return Ok(WriteOutcome {
            resolved,
            install: Some(Some(append_onto(rows, latest())?)),
        });
    }
    if !conflicting {
        return Ok(WriteOutcome {
            resolved: Resolved::Clean,
            install: write.value(),
        });
    }
    if fatal_read {
        return Err(conflict().into());
    }
    match (policy.resolution, write) {
        (ConflictResolution::Fail, _) | (ConflictResolution::Append, StagedWrite::Delete) => {
            Err(conflict().into())
        }
        (ConflictResolution::Replace, _) => Ok(WriteOutcome {
            resolved: Resolved::Replaced,
            install: write.value(),
        }),
        (ConflictResolution::Ignore, _) => Ok(WriteOutcome {
            resolved: Resolved::Ignored,
            install: None,
        }),
        // (A staged append was settled above; it would land here as a put
        // of its rows.)
        (ConflictResolution::Append, StagedWrite::Put(ours) | StagedWrite::Append(ours)) => {
            // Only what this transaction added goes onto the concurrent
            // version: all of a blind write, the new rows of a
            // read-modify-write that extended what it read (all of one
            // that rewrote it: it replaced those rows, as a blind write
            // would have).
            let delta = match (read_base, read.value) {
                (None, _) | (Some(_), Some(None)) => Arc::clone(ours),
                (Some(_), Some(Some(base))) => {
                    added_rows(ours, base).map_or_else(|| Arc::clone(ours), Arc::new)
                }
                // Read through a scan: whether it extended what it read is
                // not known, and appending all of it could duplicate rows.
                (Some(_), None) => return Err(conflict().into()),
            };
            Ok(WriteOutcome {
                resolved: Resolved::Appended,
                install: Some(Some(append_onto(&delta, latest())?)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;

    fn rows(v: &[i64]) -> Arc<RecordBatch> {
        Arc::new(
            RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(v.to_vec())) as _)])
                .unwrap(),
        )
    }

    fn values(b: &RecordBatch) -> Vec<i64> {
        b.column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec()
    }

    fn policy(isolation: TransactionIsolation, resolution: ConflictResolution) -> WritePolicy {
        WritePolicy {
            isolation,
            resolution,
            snapshot: 10,
        }
    }

    fn installed(outcome: &WriteOutcome) -> Vec<i64> {
        values(outcome.install.clone().unwrap().unwrap().as_ref())
    }

    fn theirs(v: &[i64]) -> impl FnOnce() -> VersionedValue {
        let batch = rows(v);
        move || VersionedValue {
            commit_ts: 12,
            value: Some(batch),
        }
    }

    #[test]
    fn append_resolution_appends_only_the_rows_a_read_committed_rmw_added() {
        // Read [1] at version 5, wrote [1, 2]; [1, 3] committed at 12.
        let p = policy(
            TransactionIsolation::ReadCommitted,
            ConflictResolution::Append,
        );
        let base = rows(&[1]);
        let read = ReadBase {
            ts: Some(5),
            value: Some(Some(&base)),
        };
        let key = Key::from("log");
        let out = resolve_write(
            &p,
            &key,
            &StagedWrite::Put(rows(&[1, 2])),
            read,
            12,
            theirs(&[1, 3]),
        )
        .unwrap();
        assert_eq!(out.resolved, Resolved::Appended);
        assert_eq!(installed(&out), vec![1, 3, 2]);
        // A rewrite that does not extend what it read appends all of it.
        let out = resolve_write(
            &p,
            &key,
            &StagedWrite::Put(rows(&[9])),
            read,
            12,
            theirs(&[1, 3]),
        )
        .unwrap();
        assert_eq!(installed(&out), vec![1, 3, 9]);
        // One whose read value is unknown cannot merge.
        let unknown = ReadBase {
            ts: Some(5),
            value: None,
        };
        let err = resolve_write(
            &p,
            &key,
            &StagedWrite::Put(rows(&[1, 2])),
            unknown,
            12,
            theirs(&[1, 3]),
        )
        .unwrap_err();
        assert!(err.is_conflict());
    }

    #[test]
    fn staged_appends_never_conflict_unless_read_at_a_snapshot() {
        let key = Key::from("log");
        for isolation in TransactionIsolation::ALL {
            for resolution in ConflictResolution::ALL {
                let p = policy(isolation, resolution);
                let out = resolve_write(
                    &p,
                    &key,
                    &StagedWrite::Append(rows(&[7])),
                    ReadBase::default(),
                    12,
                    theirs(&[1, 3]),
                )
                .unwrap();
                assert_eq!(installed(&out), vec![1, 3, 7], "{isolation} {resolution}");
                assert!(!p.conflict_is_fatal(None, &StagedWrite::Append(rows(&[7]))));
            }
        }
        // Read first at a snapshot level: the read is stale, so it aborts.
        let p = policy(
            TransactionIsolation::RepeatableRead,
            ConflictResolution::Append,
        );
        let read = ReadBase {
            ts: Some(10),
            value: None,
        };
        assert!(
            resolve_write(
                &p,
                &key,
                &StagedWrite::Append(rows(&[7])),
                read,
                12,
                theirs(&[1])
            )
            .unwrap_err()
            .is_conflict()
        );
        // An append onto an absent key creates it; a schema mismatch is an
        // `Append` error, not a conflict.
        let out = resolve_write(
            &p,
            &key,
            &StagedWrite::Append(rows(&[7])),
            ReadBase::default(),
            0,
            VersionedValue::default,
        )
        .unwrap();
        assert_eq!(installed(&out), vec![7]);
        let other = Arc::new(
            RecordBatch::try_from_iter([("w", Arc::new(Int64Array::from(vec![1])) as _)]).unwrap(),
        );
        let err = resolve_write(
            &p,
            &key,
            &StagedWrite::Append(other),
            ReadBase::default(),
            12,
            theirs(&[1]),
        )
        .unwrap_err();
        assert!(!err.is_conflict());
    }

    #[test]
    fn a_write_policy_follows_its_own_resolution() {
        let p = policy(TransactionIsolation::Serializable, ConflictResolution::Fail);
        assert_eq!(
            p.for_write(Some(ConflictResolution::Ignore)).resolution,
            ConflictResolution::Ignore
        );
        assert_eq!(p.for_write(None).resolution, ConflictResolution::Fail);
    }
}
