//! Commit-time validation of a transaction's reads (`Serializable`).

use std::ops::{Bound, ControlFlow};

use khonsu_core::{Key, Timestamp, TxnBuffer};

use crate::{Conflict, ConflictKind, ConflictTarget, DependencyTracker};

/// Checks that nothing this transaction read has changed since it read it.
///
/// Called by a read-write `Serializable` transaction after it holds the
/// write intents of every key it writes and has its commit timestamp, and
/// before it installs anything. It fails when
///
/// * a point-read key (present or absent when read) has a committed version
///   newer than the one read, or another transaction holds its write intent
///   (it is committing right now, with an earlier timestamp) —
///   [`ConflictKind::StaleRead`];
/// * a scanned range contains a key with a version committed after the
///   snapshot, or a key whose intent another transaction holds (an insert,
///   update or delete in the range) — [`ConflictKind::Phantom`].
///
/// Keys the transaction itself writes are skipped here: they are
/// read-modify-writes (or blind writes) and conflict resolution checks them
/// while holding their intents, reporting a [`ConflictKind::WriteWrite`].
///
/// If it passes, every read still returns what it returned, at the commit
/// timestamp: the transaction is equivalent to running all of it at that
/// instant, so committed read-write transactions are serializable in
/// commit-timestamp order (Silo's argument: intents are taken before the
/// timestamp, and both are sequentially consistent). Read-only transactions
/// skip this and serialize at their snapshot; they never abort.
///
/// This is conservative: it aborts on any overwritten read, even where
/// `PostgreSQL`'s SSI would find no dangerous structure.
///
/// # Errors
/// The first conflict found.
pub fn validate_serializable(
    tracker: &DependencyTracker,
    buffer: &TxnBuffer,
    snapshot: Timestamp,
) -> Result<(), Conflict> {
    // Reads were made at `snapshot`, so "changed since it was read" is
    // "has a version newer than the snapshot".
    for (key, _observed) in tracker.point_reads() {
        if tracker.writes_key(key) {
            // A read-modify-write: conflict resolution checks it (and
            // reports it as the write-write conflict it is).
            continue;
        }
        let Some(state) = buffer.intent_state(key) else {
            continue;
        };
        if state.locked && !tracker.writes_key(key) {
            return Err(Conflict::on_key(ConflictKind::StaleRead, key.clone(), None));
        }
        if state.latest_ts > snapshot {
            return Err(Conflict::on_key(
                ConflictKind::StaleRead,
                key.clone(),
                Some(state.latest_ts),
            ));
        }
    }
    for range in tracker.range_reads() {
        let found = buffer.for_each_intent(
            as_ref_bound(&range.start),
            as_ref_bound(&range.end),
            |key: &Key, state| {
                // Written keys in the range are read-modify-writes, checked by
                // conflict resolution (our own intent is on them).
                if tracker.writes_key(key) {
                    return ControlFlow::Continue(());
                }
                if state.locked || state.latest_ts > snapshot {
                    ControlFlow::Break((state.latest_ts > snapshot).then_some(state.latest_ts))
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        if let ControlFlow::Break(other_commit_ts) = found {
            return Err(Conflict {
                kind: ConflictKind::Phantom,
                target: ConflictTarget::Range {
                    start: range.start.clone(),
                    end: range.end.clone(),
                },
                other_commit_ts,
                structure: None,
            });
        }
    }
    Ok(())
}

fn as_ref_bound(bound: &Bound<Key>) -> Bound<&Key> {
    match bound {
        Bound::Included(k) => Bound::Included(k),
        Bound::Excluded(k) => Bound::Excluded(k),
        Bound::Unbounded => Bound::Unbounded,
    }
}
