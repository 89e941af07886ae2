//! The commit pipeline.
//!
//! ```text
//!  1. read-only?  ──yes──► done: serialized at the snapshot, never aborts
//!  2. take write intents, in key order          (TxnBuffer::lock)
//!  3. commit timestamp                          (TimestampOracle::allocate)
//!  4. Serializable: validate reads and ranges   (validate_serializable)
//!  5. settle each write: clean / conflict → Fail, Replace, Ignore, Append
//!  6. Storage::apply(commit_ts, mutations)      — an error aborts here
//!  7. insert the versions
//!  8. publish the timestamp (in order)          — now visible, atomically;
//!     then reclaim garbage and release the intents
//! ```
//!
//! Any early return drops the held intents (released unchanged) and the
//! commit ticket (published as an empty commit), so nothing of an aborted
//! transaction is ever visible and no later commit waits on it.

use std::sync::Arc;

use arrow_array::RecordBatch;

use khonsu_concurrency::{
    Conflict, ConflictKind, DependencyTracker, Resolved, TransactionIsolation, WritePolicy,
    resolve_write, validate_serializable,
};
use khonsu_core::{Key, KeyIntent, Timestamp};
use khonsu_storage::StorageMutation;
use smallvec::SmallVec;
use snafu::{IntoError, ResultExt};

use crate::Transaction;
use crate::error::{AbortedSnafu, ClockSnafu, Result, StorageSnafu};

/// Longest wait, in backoff steps, for another committer's intent when
/// waiting can succeed (e.g. `Replace`, `Append`). Each step spins or yields.
const INTENT_WAIT_BUDGET: u32 = 1 << 16;

/// Intents a commit holds without allocating (more spill to the heap).
const INLINE_INTENTS: usize = 4;

/// Deferred-reclamation keys a commit revisits on its way out.
const DEFERRED_GC_PER_COMMIT: usize = 1;

/// What a successful commit did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitInfo {
    /// The commit timestamp; for a transaction that wrote nothing, its
    /// snapshot timestamp (where it serializes).
    pub commit_ts: Timestamp,
    /// Whether the transaction wrote nothing.
    pub read_only: bool,
    /// Keys whose write was dropped by `ConflictResolution::Ignore`.
    pub ignored: Vec<Key>,
    /// Keys where `ConflictResolution::Append` appended this transaction's
    /// rows to a concurrently committed batch.
    pub appended: Vec<Key>,
    /// Keys where `ConflictResolution::Replace` overwrote a concurrently
    /// committed write.
    pub replaced: Vec<Key>,
}

pub(crate) fn commit(txn: &mut Transaction) -> Result<CommitInfo> {
    // The footprint is lent to the pipeline and put back afterwards, so
    // the transaction's drop recycles it whatever the outcome.
    let Some(mut tracker) = txn.tracker.take_if(|t| !t.is_read_only()) else {
        return Ok(CommitInfo {
            commit_ts: txn.snapshot_ts,
            read_only: true,
            ..CommitInfo::default()
        });
    };
    tracker.seal();
    let result = commit_writes(txn, &tracker);
    txn.tracker = Some(tracker);
    result
}

/// Steps 2 to 8 for a transaction that wrote something.
fn commit_writes(txn: &Transaction, tracker: &DependencyTracker) -> Result<CommitInfo> {
    let shared = &txn.shared;
    let buffer = &shared.buffer;
    let txn_id = txn.id;
    let abort = |source: khonsu_concurrency::Error| AbortedSnafu { txn_id }.into_error(source);
    let policy = WritePolicy {
        isolation: txn.isolation,
        resolution: txn.resolution,
        snapshot: txn.snapshot_ts,
    };

    // 2. Intents in key order (the write set is sorted): two committers
    //    never wait on each other in a cycle. Each intent travels with the
    //    value decided for it in step 5 (`None`: the write is dropped).
    let mut intents: SmallVec<[Decided<'_>; INLINE_INTENTS]> =
        SmallVec::with_capacity(tracker.write_count());
    for (key, write, read_base) in tracker.sealed_writes() {
        let fatal = policy.conflict_is_fatal(read_base, write);
        let budget = if fatal { 0 } else { INTENT_WAIT_BUDGET };
        let Ok(intent) = buffer.lock(key, budget) else {
            // Fatal: the holder commits a newer version, which would abort us
            // anyway. Otherwise we waited the whole budget.
            let kind = if fatal {
                ConflictKind::WriteWrite
            } else {
                ConflictKind::Busy
            };
            return Err(abort(Conflict::on_key(kind, key.clone(), None).into()));
        };
        intents.push((intent, None));
    }

    // 3. The timestamp comes after the intents (Silo's order): a
    //    transaction that validates a key after this point either sees our
    //    intent, or takes its timestamp before ours.
    let ticket = shared.oracle.allocate().context(ClockSnafu { txn_id })?;
    let commit_ts = ticket.ts();

    // 4-6. Validate, settle every write, persist. On failure, release the
    //      intents before the ticket publishes (publishing may wait for
    //      earlier commits), so other writers are not held up.
    let info = match settle_and_persist(txn, tracker, &policy, &mut intents, commit_ts) {
        Ok(info) => info,
        Err(err) => {
            drop(intents);
            drop(ticket);
            return Err(err);
        }
    };

    // 7. Install. Versions stamped `commit_ts` are invisible until step 8.
    //    Every key is checked before any version is pushed, so a refused
    //    install cannot leave part of the commit in place (it cannot happen
    //    in practice: the timestamp was allocated after the intents).
    if let Some(err) = intents
        .iter()
        .filter(|(_, decision)| decision.is_some())
        .find_map(|(intent, _)| intent.check_install(commit_ts).err())
    {
        drop(intents);
        drop(ticket);
        return Err(ClockSnafu { txn_id }.into_error(err));
    }
    for (intent, decision) in &mut intents {
        if let Some(value) = decision.take()
            && let Err(err) = intent.insert_version(commit_ts, value)
        {
            drop(intents);
            drop(ticket);
            return Err(ClockSnafu { txn_id }.into_error(err));
        }
    }

    // 8. Publish: every snapshot from now on sees all of this commit. Old
    //    versions are reclaimed afterwards, still under the intents, so later
    //    commits waiting to publish do not wait for our reclamation.
    ticket.publish();
    let watermark = shared.watermark_for_commit(commit_ts);
    for (intent, _) in intents.drain(..) {
        intent.finish(watermark);
    }
    buffer.collect_deferred(watermark, DEFERRED_GC_PER_COMMIT);
    Ok(info)
}

/// An intent with the value decided for it (`None`: the write is dropped).
type Decided<'a> = (KeyIntent<'a>, Option<Option<Arc<RecordBatch>>>);

/// Steps 4 to 6 of the pipeline, with the intents held and the commit
/// timestamp allocated: validation, conflict resolution, storage.
fn settle_and_persist(
    txn: &Transaction,
    tracker: &DependencyTracker,
    policy: &WritePolicy,
    intents: &mut [Decided<'_>],
    commit_ts: Timestamp,
) -> Result<CommitInfo> {
    let shared = &txn.shared;
    let txn_id = txn.id;
    let abort = |source: khonsu_concurrency::Error| AbortedSnafu { txn_id }.into_error(source);
    // 4. Serializable: nothing read may have changed since it was read.
    //    When no timestamp lies between the snapshot and ours, nothing
    //    can have: every commit at or below the snapshot was visible to it,
    //    and every other one gets a later timestamp and serializes after us
    //    (its own validation sees our intents or versions). A lone writer
    //    skips a lookup per read. As always, this orders us only against
    //    other Serializable transactions (docs/isolation.md).
    if txn.isolation == TransactionIsolation::Serializable && commit_ts > txn.snapshot_ts + 1 {
        validate_serializable(tracker, &shared.buffer, txn.snapshot_ts)
            .map_err(|conflict| abort(conflict.into()))?;
    }

    // 5. Settle every write against the newest committed version.
    let mut info = CommitInfo {
        commit_ts,
        ..CommitInfo::default()
    };
    let mut mutations = Vec::with_capacity(if shared.storage.is_some() {
        intents.len()
    } else {
        0
    });
    for ((intent, decision), (key, write, read_base)) in
        intents.iter_mut().zip(tracker.sealed_writes())
    {
        let outcome = resolve_write(policy, key, write, read_base, intent.latest_ts(), || {
            intent.latest()
        })
        .map_err(abort)?;
        match outcome.resolved {
            Resolved::Clean => {}
            Resolved::Replaced => info.replaced.push(key.clone()),
            Resolved::Appended => info.appended.push(key.clone()),
            Resolved::Ignored => info.ignored.push(key.clone()),
        }
        if shared.storage.is_some()
            && let Some(value) = &outcome.install
        {
            mutations.push(match value {
                Some(batch) => StorageMutation::Put {
                    key: key.clone(),
                    batch: Arc::clone(batch),
                },
                None => StorageMutation::Delete { key: key.clone() },
            });
        }
        *decision = outcome.install;
    }

    // 6. Persist before anything becomes visible.
    if let Some(storage) = &shared.storage
        && !mutations.is_empty()
    {
        storage
            .apply(commit_ts, &mutations)
            .context(StorageSnafu { txn_id, commit_ts })?;
    }

    Ok(info)
}
