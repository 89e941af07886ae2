//! The commit pipeline.
//!
//! ```text
//!  1. read-only?  ──yes──► done: serialized at the snapshot (precise
//!                           Serializable, undeclared: the reader's
//!                           dangerous-structure test first)
//!  2. take write intents, in key order          (TxnBuffer::lock)
//!  3. commit timestamp                          (TimestampOracle::allocate)
//!  4. Serializable with reads of keys it does not write: the timestamp
//!     and the dangerous-structure test in one step (SsiState, precise;
//!     or validate_serializable, conservative)
//!  5. settle each write: clean / conflict → Fail, Replace, Ignore, Append;
//!     encode what storage will persist          (in this thread)
//!  6. make it durable: join the next group write and wait for its sync
//!                                               (Durability::persist) — an error aborts here
//!  7. insert the versions
//!  8. release the intents, publish the timestamp (in order)
//!                                               — now visible, atomically
//!  9. (after the transaction released its snapshot) prune below the new
//!     versions, revisit a queued key or two     (Published::prune)
//! ```
//!
//! [`commit`] takes its parts — the shared state and a [`CommitRequest`]
//! (id, write policy, sealed footprint) — not the `Transaction`. From step 3
//! on, one guard, [`InFlight`], holds what an early return must undo, in its
//! drop order: the intents are released unchanged first (so other writers
//! are not held up), then the ticket publishes as an empty commit (so no
//! later commit waits on it). Nothing of an aborted transaction is ever
//! visible.

use std::sync::Arc;

use khonsu_concurrency::{
    Conflict, ConflictKind, DependencyTracker, Install, PureReads, ReadBase, Resolved,
    SerializableValidation, SsiDecision, SsiRegistration, StagedWrite, TransactionIsolation,
    WritePolicy, resolve_write, validate_serializable,
};
use khonsu_core::{CommitTicket, Installed, Key, KeyIntent, Pins, Timestamp};
use khonsu_storage::{CommitRecord, StorageMutation};
use smallvec::SmallVec;
use snafu::{IntoError, ResultExt};

use crate::db::Shared;
use crate::durable::PersistError;
use crate::error::{
    AbortedSnafu, ClockSnafu, InstallSnafu, Result, StorageOutcomeUnknownSnafu, StorageSnafu,
    StorageUnusableSnafu, UnstorableSnafu,
};

/// Longest wait, in steps, for another committer's intent when waiting can
/// succeed (e.g. `Replace`, `Append`): a few spins and yields, then sleeps of
/// 20 µs (about 70 µs with the kernel's timer slack) — a second or so in
/// all, long enough for a holder's storage sync under load — after which
/// the commit aborts with `ConflictKind::Busy` (retryable).
const INTENT_WAIT_BUDGET: u32 = 1 << 14;

/// Intents a commit holds without allocating (more spill to the heap).
const INLINE_INTENTS: usize = 4;

/// Deferred-reclamation keys a commit revisits on its way out.
const DEFERRED_GC_PER_COMMIT: usize = 2;

/// Keys a commit installs from which it prunes them with fresh pins (one
/// scan of the snapshot registry) rather than the cached ones.
const FRESH_PINS_KEYS: usize = 16;

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

/// What the pipeline needs of a transaction.
pub(crate) struct CommitRequest<'a, 'y> {
    /// The transaction's id, for errors.
    pub(crate) txn_id: u64,
    /// Its isolation level, conflict resolution and snapshot.
    pub(crate) policy: WritePolicy,
    /// What it read and wrote, sealed ([`DependencyTracker::seal`]).
    pub(crate) footprint: &'a DependencyTracker,
    /// Fails once the transaction's snapshot is older than the maximum
    /// age. Checked again after the decision: reclamation stops keeping
    /// what an expired snapshot read (a version, a key's head) the moment
    /// it expires, which could hide an overwrite from the decision.
    pub(crate) still_young: &'y dyn Fn() -> Result<()>,
}

/// One written key on its way through the pipeline.
struct Slot<'a> {
    intent: KeyIntent<'a>,
    write: &'a StagedWrite,
    /// The transaction's policy with this write's own resolution.
    policy: WritePolicy,
    /// What the transaction read of the key before writing it (a
    /// read-modify-write), and the value it saw when kept.
    read: ReadBase<'a>,
    /// What to install: `None` until settled (step 5), and again once
    /// installed (step 7).
    install: Option<Install>,
}

/// What an early return undoes, in drop order (fields drop top to bottom):
/// the intents are released unchanged, then the ticket (once taken)
/// publishes empty. Built once and filled in place: the slots are a few
/// hundred bytes inline, and moving them cost a tenth of a blind write.
struct InFlight<'a> {
    slots: SmallVec<[Slot<'a>; INLINE_INTENTS]>,
    ticket: Option<CommitTicket<'a>>,
    /// Precise `Serializable`'s registration of this commit, withdrawn if
    /// it aborts after the decision.
    ssi: Option<SsiRegistration<'a>>,
}

/// Runs steps 2 to 8 for a transaction whose footprint has writes (step 1
/// is the caller's: a transaction without writes never gets here); step 9
/// is the [`Published`] it returns.
pub(crate) fn commit<'s>(
    shared: &'s Shared,
    request: &CommitRequest<'s, '_>,
) -> Result<(CommitInfo, Published<'s>)> {
    let txn_id = request.txn_id;
    let mut flight = InFlight {
        slots: SmallVec::new(),
        ticket: None,
        ssi: None,
    };
    take_intents(shared, request, &mut flight.slots)?;

    // 3 and 4. The timestamp comes after the intents (Silo's order): a
    //    transaction that validates a key after this point either sees our
    //    intent, or takes its timestamp before ours. As always,
    //    `Serializable` orders us only against other `Serializable`
    //    transactions (docs/isolation.md).
    let policy = &request.policy;
    let serializable = policy.isolation == TransactionIsolation::Serializable;
    let reads = (serializable && shared.ssi.mode() == SerializableValidation::Precise)
        .then(|| PureReads::of(request.footprint))
        .filter(|reads| !reads.is_empty());
    let commit_ts = if let Some(reads) = reads {
        // Precise: the timestamp and the dangerous-structure test in one
        // step (khonsu_concurrency::SsiState). A transaction whose reads
        // are all of keys it writes needs neither: write-write checks
        // them, and it can be no pivot. `overwrites`: the newest
        // concurrent commit a write lands on (final under our intents), a
        // write-write edge from a concurrent transaction.
        let overwrites = flight
            .slots
            .iter()
            .map(|slot| slot.intent.latest_ts())
            .filter(|&ts| ts > policy.snapshot)
            .max()
            .unwrap_or(0);
        let decision = shared
            .ssi
            .decide_read_write(
                request.footprint,
                reads,
                &shared.buffer,
                &shared.oracle,
                &shared.snapshots,
                policy.snapshot,
                overwrites,
            )
            .context(ClockSnafu { txn_id })?;
        match decision {
            SsiDecision::Commit(ticket, registration) => {
                let ts = ticket.ts();
                flight.ticket = Some(ticket);
                flight.ssi = Some(registration);
                ts
            }
            SsiDecision::Abort(ticket, conflict) => {
                flight.ticket = Some(ticket);
                return Err(AbortedSnafu { txn_id }.into_error(conflict.into()));
            }
        }
    } else {
        let ticket = shared.oracle.allocate().context(ClockSnafu { txn_id })?;
        let commit_ts = ticket.ts();
        flight.ticket = Some(ticket);
        // Conservative: nothing read may have changed since it was read.
        // When no timestamp lies between the snapshot and ours, nothing
        // can have: every commit at or below the snapshot was visible to
        // it, and every other one gets a later timestamp and serializes
        // after us (its own validation sees our intents or versions). A
        // lone writer skips a lookup per read.
        if serializable
            && shared.ssi.mode() == SerializableValidation::Conservative
            && commit_ts > policy.snapshot + 1
        {
            validate_serializable(request.footprint, &shared.buffer, policy.snapshot)
                .map_err(|conflict| AbortedSnafu { txn_id }.into_error(conflict.into()))?;
        }
        commit_ts
    };
    // Still young after the decision, so young throughout it: nothing it
    // looked at was reclaimed under it.
    (request.still_young)()?;

    // 5. Settle every write against the newest committed version.
    let (info, mutations) = settle(shared, request, &mut flight.slots, commit_ts)?;

    // 6. Durable before anything becomes visible. A commit whose every
    //    write was ignored still persists its (empty) record: its timestamp
    //    was acknowledged, and the clock must not hand it out again after a
    //    restart.
    if let Some(durable) = &shared.durable {
        let record = CommitRecord {
            commit_ts,
            mutations,
        };
        durable.persist(record).map_err(|e| match e {
            PersistError::Failed(failure) if failure.is_outcome_unknown() => {
                StorageOutcomeUnknownSnafu { txn_id, commit_ts }.into_error(failure)
            }
            PersistError::Failed(failure) => StorageSnafu { txn_id, commit_ts }.into_error(failure),
            PersistError::Unusable(failure) => StorageUnusableSnafu { txn_id }.into_error(failure),
        })?;
    }

    // 7. Install. Versions stamped `commit_ts` are invisible until step 8.
    //    Every key is checked before any version is pushed, so a refused
    //    install cannot leave part of the commit in place (it cannot happen
    //    in practice: the timestamp was allocated after the intents).
    if let Err(err) = install(&mut flight.slots, commit_ts) {
        // Durable but not installable: memory and storage would disagree.
        if let Some(durable) = &shared.durable {
            durable.mark_unusable(format!(
                "commit {commit_ts} of transaction {txn_id} is durable but could not be installed: {err}"
            ));
        }
        return Err(InstallSnafu { txn_id }.into_error(err));
    }

    // 8. Release the intents, then publish. The intents go first: once the
    //    commit is visible, a transaction whose snapshot contains it must
    //    not find the keys locked (a validator would abort on the lock bit,
    //    a fail-fast writer on a conflict that is not one). Nothing else
    //    happens between install and publish: later commits wait for our
    //    publish (timestamp order), so this window is kept short.
    let installed = flight
        .slots
        .drain(..)
        .filter_map(|slot| slot.intent.release_installed())
        .collect();
    // Every snapshot from now on sees all of this commit.
    if let Some(ticket) = flight.ticket.take() {
        ticket.publish();
    }
    if let Some(registration) = flight.ssi.take() {
        registration.finish();
    }
    Ok((info, Published { installed }))
}

/// A published commit's keys, still to be pruned ([`Published::prune`]).
pub(crate) struct Published<'a> {
    installed: SmallVec<[Installed<'a>; INLINE_INTENTS]>,
}

impl Published<'_> {
    /// Step 9, after the publish (and after the transaction released its
    /// own snapshot, which would otherwise keep the versions it read):
    /// prunes below the new versions, then revisits a queued key or two
    /// (bounded reclamation work). A short walk per key, with pins taken
    /// after the publish — refreshed for a commit of many keys — so the
    /// versions this commit covered go at once unless a snapshot reads
    /// them; what is left is queued for later commits.
    pub(crate) fn prune(self, shared: &Shared) {
        if self.installed.is_empty() {
            return;
        }
        let fresh = self.installed.len() >= FRESH_PINS_KEYS;
        let prune = |pins: &Pins| {
            for key in self.installed {
                key.prune(pins);
            }
            shared.buffer.collect_deferred(pins, DEFERRED_GC_PER_COMMIT);
        };
        if fresh {
            shared.snapshots.with_fresh_pins(&shared.oracle, prune);
        } else {
            shared.snapshots.with_recent_pins(&shared.oracle, prune);
        }
    }
}

/// Step 7: pushes every version; every key is checked first, so an error
/// leaves nothing installed.
fn install(
    slots: &mut [Slot<'_>],
    commit_ts: Timestamp,
) -> std::result::Result<(), khonsu_core::Error> {
    if let Some(err) = slots
        .iter()
        .filter(|slot| matches!(slot.install, Some(Install::Put(_) | Install::Tombstone)))
        .find_map(|slot| slot.intent.check_install(commit_ts).err())
    {
        return Err(err);
    }
    for slot in slots {
        let value = match slot.install.take() {
            Some(Install::Put(batch)) => Some(batch),
            Some(Install::Tombstone) => None,
            Some(Install::Nothing) | None => continue,
        };
        slot.intent.insert_version(commit_ts, value)?;
    }
    Ok(())
}

/// Step 2: the write intents, in key order (the write set is sorted), so
/// two committers never wait on each other in a cycle.
fn take_intents<'a>(
    shared: &'a Shared,
    request: &CommitRequest<'a, '_>,
    slots: &mut SmallVec<[Slot<'a>; INLINE_INTENTS]>,
) -> Result<()> {
    let txn_id = request.txn_id;
    slots.reserve(request.footprint.write_count());
    for sealed in request.footprint.sealed_writes() {
        let (key, write) = (sealed.key, sealed.write);
        let read = sealed
            .read_base
            .map_or(ReadBase::Blind, |ts| ReadBase::Read {
                ts,
                seen: request.footprint.seen(key, ts),
            });
        let policy = request.policy.for_write(sealed.resolution);
        let fatal = policy.conflict_is_fatal(&read, write);
        let budget = if fatal { 0 } else { INTENT_WAIT_BUDGET };
        let Ok(intent) = shared.buffer.lock(key, budget) else {
            // Fatal: the holder commits a newer version, which would abort us
            // anyway. Otherwise we waited the whole budget.
            let kind = if fatal {
                ConflictKind::WriteWrite
            } else {
                ConflictKind::Busy
            };
            let conflict = Conflict::on_key(kind, key.clone(), None);
            return Err(AbortedSnafu { txn_id }.into_error(conflict.into()));
        };
        // Already doomed: abort before taking a timestamp, so that the
        // abort does not wait for earlier commits to publish.
        if policy.is_doomed(&read, write, intent.latest_ts()) {
            let conflict = Conflict::on_key(
                ConflictKind::WriteWrite,
                key.clone(),
                Some(intent.latest_ts()),
            );
            return Err(AbortedSnafu { txn_id }.into_error(conflict.into()));
        }
        slots.push(Slot {
            intent,
            write,
            policy,
            read,
            install: None,
        });
    }
    Ok(())
}

/// Step 5: settles each write (conflict resolution) and, when the database
/// persists, encodes what storage will write — here, in the committing
/// thread, so that the group writer only copies bytes.
fn settle(
    shared: &Shared,
    request: &CommitRequest<'_, '_>,
    slots: &mut [Slot<'_>],
    commit_ts: Timestamp,
) -> Result<(CommitInfo, Vec<StorageMutation>)> {
    let txn_id = request.txn_id;
    let mut info = CommitInfo {
        commit_ts,
        ..CommitInfo::default()
    };
    let persists = shared.durable.is_some();
    let mut mutations = Vec::with_capacity(if persists { slots.len() } else { 0 });
    for slot in slots {
        let key = slot.intent.key();
        let outcome = resolve_write(
            &slot.policy,
            key,
            slot.write,
            slot.read,
            slot.intent.latest_ts(),
            || slot.intent.latest(),
        )
        .map_err(|source| AbortedSnafu { txn_id }.into_error(source))?;
        match outcome.resolved {
            Resolved::Clean => {}
            Resolved::Replaced => info.replaced.push(key.clone()),
            Resolved::Appended => info.appended.push(key.clone()),
            Resolved::Ignored => info.ignored.push(key.clone()),
        }
        if persists {
            match &outcome.install {
                Install::Put(batch) => mutations.push(
                    StorageMutation::put_at(key.clone(), Arc::clone(batch), commit_ts)
                        .with_context(|_| UnstorableSnafu {
                            txn_id,
                            key: key.short().to_string(),
                        })?,
                ),
                Install::Tombstone => mutations.push(StorageMutation::delete(key.clone())),
                Install::Nothing => {}
            }
        }
        slot.install = Some(outcome.install);
    }
    Ok((info, mutations))
}
