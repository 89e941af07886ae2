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

/// What to install for one written key once it is settled.
#[derive(Clone, Debug, PartialEq)]
pub enum Install {
    /// A version holding this batch.
    Put(Arc<RecordBatch>),
    /// A tombstone (the key is deleted).
    Tombstone,
    /// Nothing: the write is dropped (`Ignore`).
    Nothing,
}

/// How one write was settled and what to install.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteOutcome {
    /// How the write was settled.
    pub resolved: Resolved,
    /// What to install.
    pub install: Install,
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
    /// transaction no matter what ([`decide`] on a conflicting version), in
    /// which case there is no point waiting for another committer's intent
    /// on it.
    #[must_use]
    pub fn conflict_is_fatal(&self, read: &ReadBase<'_>, write: &StagedWrite) -> bool {
        let newer = self.conflict_base(read.ts()).saturating_add(1);
        decide(self, write, read, newer) == Decision::Abort
    }

    /// The timestamp a write of a key conflicts above: the version the
    /// transaction read at `ReadCommitted` (a read-modify-write), else its
    /// snapshot (for snapshot reads the two are the same thing).
    #[must_use]
    pub fn conflict_base(&self, read_ts: Option<Timestamp>) -> Timestamp {
        match (self.isolation, read_ts) {
            (TransactionIsolation::ReadCommitted, Some(observed)) => observed,
            _ => self.snapshot,
        }
    }

    /// Whether this write is already sure to abort once the key's newest
    /// committed version is `latest_ts` ([`decide`] says `Abort`). The
    /// commit checks it as soon as it holds the key's intent, so a doomed
    /// transaction aborts before it takes a commit timestamp (and never
    /// waits for earlier commits' storage writes to publish its empty
    /// ticket).
    #[must_use]
    pub fn is_doomed(
        &self,
        read: &ReadBase<'_>,
        write: &StagedWrite,
        latest_ts: Timestamp,
    ) -> bool {
        decide(self, write, read, latest_ts) == Decision::Abort
    }
}

/// What a read of a key made before its first write saw, as far as the
/// footprint keeps it (see [`Observed`](crate::Observed)).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Seen<'a> {
    /// Not kept (only `ReadCommitted` point reads keep values), or read
    /// through a scan.
    #[default]
    Unknown,
    /// The key was absent.
    Absent,
    /// The key held this batch.
    Value(&'a Arc<RecordBatch>),
}

/// What the transaction knew of a key it wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum ReadBase<'a> {
    /// It wrote the key without reading it first.
    #[default]
    Blind,
    /// It read the key before writing it (a read-modify-write).
    Read {
        /// The newest observation of the key before its first write: the
        /// version a point read saw, or the timestamp a covering scan read
        /// at.
        ts: Timestamp,
        /// What that read saw.
        seen: Seen<'a>,
    },
}

impl ReadBase<'_> {
    /// The read's timestamp, if the key was read.
    #[must_use]
    pub fn ts(&self) -> Option<Timestamp> {
        match self {
            Self::Blind => None,
            Self::Read { ts, .. } => Some(*ts),
        }
    }
}

/// The one write rule: what happens to a staged write when the key's
/// newest committed version is `latest_ts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing newer than the write's base: install it as staged.
    Staged,
    /// A staged append: its rows go after whatever the key holds.
    /// `onto_concurrent`: what it holds was committed after the snapshot.
    AppendStaged {
        /// Whether the version appended to is newer than the snapshot.
        onto_concurrent: bool,
    },
    /// A conflict settled by `Replace`: install ours over it.
    Replace,
    /// A conflict settled by `Ignore`: drop ours.
    Ignore,
    /// A conflict settled by `Append`: our rows after the concurrent
    /// version's — only those a `ReadCommitted` read-modify-write added to
    /// the batch it read (`only_added`), or all of them.
    AppendOurs {
        /// Whether only the rows added to what was read go.
        only_added: bool,
    },
    /// Abort with a write-write conflict.
    Abort,
}

/// Decides a staged write against the key's newest committed version.
///
/// * A write conflicts when a version newer than its base exists: the
///   version read at `ReadCommitted` (a read-modify-write), the snapshot
///   otherwise.
/// * A staged append never conflicts as such: its rows go after whatever
///   the key holds — unless the key was also read at a snapshot level and
///   changed since (then it aborts).
/// * A conflicting read-modify-write at `RepeatableRead` or `Serializable`
///   aborts, whatever the resolution.
/// * Any other conflicting write follows the resolution: `Fail` aborts,
///   `Replace` installs ours, `Ignore` drops ours, `Append` appends ours
///   (all of a blind write, only the added rows of a `ReadCommitted`
///   read-modify-write that kept the batch it read; a delete, or one whose
///   read value is not known, aborts: appending all of it could duplicate
///   rows).
#[must_use]
pub fn decide(
    policy: &WritePolicy,
    write: &StagedWrite,
    read: &ReadBase<'_>,
    latest_ts: Timestamp,
) -> Decision {
    let conflicting = latest_ts > policy.conflict_base(read.ts());
    let read_at_snapshot =
        read.ts().is_some() && policy.isolation != TransactionIsolation::ReadCommitted;
    if let StagedWrite::Append(_) = write {
        return if conflicting && read_at_snapshot {
            Decision::Abort
        } else {
            Decision::AppendStaged {
                onto_concurrent: latest_ts > policy.snapshot,
            }
        };
    }
    if !conflicting {
        return Decision::Staged;
    }
    if read_at_snapshot {
        return Decision::Abort;
    }
    match (policy.resolution, write, read) {
        (ConflictResolution::Fail, _, _)
        | (ConflictResolution::Append, StagedWrite::Delete, _)
        | (
            ConflictResolution::Append,
            _,
            ReadBase::Read {
                seen: Seen::Unknown,
                ..
            },
        ) => Decision::Abort,
        (ConflictResolution::Replace, _, _) => Decision::Replace,
        (ConflictResolution::Ignore, _, _) => Decision::Ignore,
        (ConflictResolution::Append, _, ReadBase::Read { seen, .. }) => Decision::AppendOurs {
            only_added: matches!(seen, Seen::Value(_)),
        },
        (ConflictResolution::Append, _, ReadBase::Blind) => {
            Decision::AppendOurs { only_added: false }
        }
    }
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

/// Settles one staged write against the key's newest committed version:
/// [`decide`], then builds what to install.
///
/// `read` says what the transaction read of the key before writing it;
/// `latest_ts` is the newest commit timestamp of the key, read while
/// holding its write intent; `latest` fetches that version's value
/// (appends need it).
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
    let append_onto = |rows: &Arc<RecordBatch>| -> Result<Install> {
        Ok(Install::Put(match latest().value {
            Some(theirs) => Arc::new(
                khonsu_arrow_utils::append(&theirs, rows)
                    .context(AppendSnafu { key: key.clone() })?,
            ),
            None => Arc::clone(rows),
        }))
    };
    let staged = || match write {
        StagedWrite::Put(batch) | StagedWrite::Append(batch) => Install::Put(Arc::clone(batch)),
        StagedWrite::Delete => Install::Tombstone,
    };
    let (resolved, install) = match decide(policy, write, &read, latest_ts) {
        Decision::Abort => {
            return Err(
                Conflict::on_key(ConflictKind::WriteWrite, key.clone(), Some(latest_ts)).into(),
            );
        }
        Decision::Staged => (Resolved::Clean, staged()),
        Decision::Replace => (Resolved::Replaced, staged()),
        Decision::Ignore => (Resolved::Ignored, Install::Nothing),
        Decision::AppendStaged { onto_concurrent } => {
            let resolved = if onto_concurrent {
                Resolved::Appended
            } else {
                Resolved::Clean
            };
            let rows = write
                .appended_rows()
                .map_or_else(|| Ok(staged()), append_onto)?;
            (resolved, rows)
        }
        Decision::AppendOurs { only_added } => {
            let ours = match write {
                StagedWrite::Put(batch) | StagedWrite::Append(batch) => batch,
                StagedWrite::Delete => {
                    return Err(Conflict::on_key(
                        ConflictKind::WriteWrite,
                        key.clone(),
                        Some(latest_ts),
                    )
                    .into());
                }
            };
            // Only what this transaction added goes onto the concurrent
            // version: all of a blind write, the new rows of a
            // read-modify-write that extended what it read (all of one
            // that rewrote it: it replaced those rows, as a blind write
            // would have).
            let delta = match (only_added, read) {
                (
                    true,
                    ReadBase::Read {
                        seen: Seen::Value(base),
                        ..
                    },
                ) => added_rows(ours, base).map_or_else(|| Arc::clone(ours), Arc::new),
                _ => Arc::clone(ours),
            };
            (Resolved::Appended, append_onto(&delta)?)
        }
    };
    Ok(WriteOutcome { resolved, install })
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
        match &outcome.install {
            Install::Put(batch) => values(batch),
            other => panic!("not a put: {other:?}"),
        }
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
        let read = ReadBase::Read {
            ts: 5,
            seen: Seen::Value(&base),
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
        let unknown = ReadBase::Read {
            ts: 5,
            seen: Seen::Unknown,
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
                assert!(!p.conflict_is_fatal(&ReadBase::Blind, &StagedWrite::Append(rows(&[7]))));
            }
        }
        // Read first at a snapshot level: the read is stale, so it aborts.
        let p = policy(
            TransactionIsolation::RepeatableRead,
            ConflictResolution::Append,
        );
        let read = ReadBase::Read {
            ts: 10,
            seen: Seen::Unknown,
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

    /// The rule as the documentation states it, written out separately.
    fn documented_rule(
        p: &WritePolicy,
        write: &StagedWrite,
        read: &ReadBase<'_>,
        latest_ts: Timestamp,
    ) -> Decision {
        let conflicting = latest_ts > p.conflict_base(read.ts());
        let rmw_at_snapshot =
            *read != ReadBase::Blind && p.isolation != TransactionIsolation::ReadCommitted;
        match write {
            StagedWrite::Append(_) if conflicting && rmw_at_snapshot => Decision::Abort,
            StagedWrite::Append(_) => Decision::AppendStaged {
                onto_concurrent: latest_ts > p.snapshot,
            },
            _ if !conflicting => Decision::Staged,
            _ if rmw_at_snapshot => Decision::Abort,
            _ => match (p.resolution, write, read) {
                (ConflictResolution::Fail, ..)
                | (ConflictResolution::Append, StagedWrite::Delete, _)
                | (
                    ConflictResolution::Append,
                    _,
                    ReadBase::Read {
                        seen: Seen::Unknown,
                        ..
                    },
                ) => Decision::Abort,
                (ConflictResolution::Replace, ..) => Decision::Replace,
                (ConflictResolution::Ignore, ..) => Decision::Ignore,
                (
                    ConflictResolution::Append,
                    _,
                    ReadBase::Read {
                        seen: Seen::Value(_),
                        ..
                    },
                ) => Decision::AppendOurs { only_added: true },
                (ConflictResolution::Append, ..) => Decision::AppendOurs { only_added: false },
            },
        }
    }

    /// `resolve_write` did what `decision` says (the newest version holds
    /// `[7]`; appends add `[2]`, a put is `[1, 2]` over a read of `[1]`).
    fn check_outcome(
        decision: Decision,
        outcome: Result<WriteOutcome>,
        write: &StagedWrite,
        what: &str,
    ) {
        match (decision, outcome) {
            (Decision::Abort, Err(e)) => assert!(e.is_conflict(), "{what}"),
            (Decision::Staged, Ok(o)) => {
                assert_eq!(o.resolved, Resolved::Clean, "{what}");
                assert!(
                    matches!(
                        (&o.install, write),
                        (Install::Put(_), StagedWrite::Put(_))
                            | (Install::Tombstone, StagedWrite::Delete)
                    ),
                    "{what}"
                );
            }
            (Decision::Replace, Ok(o)) => {
                assert_eq!(o.resolved, Resolved::Replaced, "{what}");
            }
            (Decision::Ignore, Ok(o)) => {
                assert_eq!(
                    (o.resolved, o.install),
                    (Resolved::Ignored, Install::Nothing),
                    "{what}"
                );
            }
            (Decision::AppendStaged { .. }, Ok(o)) => {
                assert_eq!(installed(&o), vec![7, 2], "{what}");
            }
            (Decision::AppendOurs { only_added }, Ok(o)) => {
                assert_eq!(o.resolved, Resolved::Appended, "{what}");
                let expect = if only_added {
                    vec![7, 2]
                } else {
                    vec![7, 1, 2]
                };
                assert_eq!(installed(&o), expect, "{what}");
            }
            (d, o) => panic!("{what}: decided {d:?}, resolved {o:?}"),
        }
    }

    /// Every level × resolution × put/delete/append × read base ×
    /// conflicting or not: `decide` follows the documented rule, and
    /// `is_doomed`, `conflict_is_fatal` and `resolve_write` agree with it.
    #[test]
    fn one_rule_for_every_level_resolution_write_and_read() {
        let kept = rows(&[1]);
        let key = Key::from("k");
        let writes = [
            StagedWrite::Put(rows(&[1, 2])),
            StagedWrite::Delete,
            StagedWrite::Append(rows(&[2])),
        ];
        let reads = [
            ReadBase::Blind,
            ReadBase::Read {
                ts: 8,
                seen: Seen::Absent,
            },
            ReadBase::Read {
                ts: 8,
                seen: Seen::Value(&kept),
            },
            ReadBase::Read {
                ts: 8,
                seen: Seen::Unknown,
            },
        ];
        let mut cases = 0;
        for isolation in TransactionIsolation::ALL {
            for resolution in ConflictResolution::ALL {
                let p = policy(isolation, resolution);
                for write in &writes {
                    for read in &reads {
                        for conflicting in [false, true] {
                            let base = p.conflict_base(read.ts());
                            let latest_ts = base + u64::from(conflicting);
                            let decision = decide(&p, write, read, latest_ts);
                            let expected = documented_rule(&p, write, read, latest_ts);
                            let what = format!(
                                "{isolation} {resolution} {write:?} {read:?} conflicting={conflicting}"
                            );
                            assert_eq!(decision, expected, "{what}");
                            assert_eq!(
                                p.is_doomed(read, write, latest_ts),
                                decision == Decision::Abort,
                                "{what}"
                            );
                            assert_eq!(
                                p.conflict_is_fatal(read, write),
                                decide(&p, write, read, base + 1) == Decision::Abort,
                                "{what}"
                            );
                            let outcome =
                                resolve_write(&p, &key, write, *read, latest_ts, theirs(&[7]));
                            check_outcome(decision, outcome, write, &what);
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 3 * 4 * 3 * 4 * 2);
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
