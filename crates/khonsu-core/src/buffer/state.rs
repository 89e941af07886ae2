//! The state word: one `AtomicU64` per key that carries the key's write
//! intent, its housekeeping flags and its newest commit timestamp.
//!
//! ```text
//!   bit 63  LOCKED   a committer holds the key's write intent
//!   bit 62  DEAD     the head is being unlinked (key fully reclaimed); lockers retry
//!   bit 61  QUEUED   the key sits in the deferred-reclamation queue
//!   bit 60  PRUNING  reclamation is unlinking old versions of the key
//!   0..=59           commit timestamp of the key's newest version (0: none yet)
//! ```
//!
//! `LOCKED` and `PRUNING` exclude each other and each excludes itself: the
//! holder of either is the only thread that changes the key's chain.
//! Validators only look at `LOCKED`: pruning never changes what any
//! snapshot reads, so it must not look like a concurrent writer.
//!
//! # Memory-ordering contract
//!
//! The protocol relies on these three orderings. Pairs 1 and 2 are message
//! passing (a release store or RMW read by an acquire load or RMW); pair 3
//! is a store-buffering shape, which only the single `SeqCst` order (or
//! `SeqCst` fences) rules out. The state word's accesses are `SeqCst` so
//! that they also take part in that order; loom checks all three
//! (`buffer/loom_tests.rs`), and shows pair 1 holds through the oracle's
//! counter whatever the word's own orderings:
//!
//! 1. **The intent before the timestamp.** A committer takes the intent
//!    (`SeqCst` CAS, [`take`]) and then allocates its commit timestamp
//!    (`SeqCst` RMW on the oracle's counter). A `Serializable` validator
//!    allocates its own timestamp and then loads the state word of each
//!    key it read (`SeqCst`, [`load`]). If the validator's timestamp is the
//!    later one, its allocation read the committer's (the counter's RMWs
//!    are release/acquire), so the committer's CAS happens before the
//!    validator's load: it sees `LOCKED`, or the word the committer
//!    released (its newest timestamp, newer than the validator's
//!    snapshot). Either way it aborts.
//! 2. **The release before the publish.** The committer stores the word
//!    (clearing `LOCKED`, setting the new timestamp, `SeqCst` RMW,
//!    [`release`]) before it publishes its timestamp. Later lockers read
//!    the new timestamp with the word; readers do not use the word (they
//!    find versions through the chain, ordered by the publish's
//!    release/acquire pair with their snapshot's clock load).
//! 3. **Slot registration against the pins scan**: see the snapshot
//!    registry's module documentation.
//!
//! `QUEUED` is a plain flag (`AcqRel` RMW): losing a race on it only queues
//! a key twice or revisits it later.

use crate::Timestamp;
use crate::sync::{AtomicU64, Ordering};

/// A committer holds the key's write intent.
pub(super) const LOCKED: u64 = 1 << 63;
/// The head is being unlinked; lockers look the key up again.
pub(super) const DEAD: u64 = 1 << 62;
/// The key sits in the deferred-reclamation queue.
pub(super) const QUEUED: u64 = 1 << 61;
/// Reclamation holds the key.
pub(super) const PRUNING: u64 = 1 << 60;
/// The commit timestamp bits.
pub(super) const TS_MASK: u64 = PRUNING - 1;
const _: () = assert!(crate::MAX_TIMESTAMP == TS_MASK);

/// The state of a key's write intent, as a validator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntentState {
    /// Commit timestamp of the key's newest committed version (0: none).
    pub latest_ts: Timestamp,
    /// Whether a committer holds the key's write intent right now.
    pub locked: bool,
}

impl IntentState {
    pub(super) fn from_word(word: u64) -> Self {
        Self {
            latest_ts: word & TS_MASK,
            locked: word & LOCKED != 0 && word & DEAD == 0,
        }
    }
}

/// What a holder may find when it tries to take a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Taken {
    /// Taken; the key's newest commit timestamp.
    Yes(Timestamp),
    /// A committer holds it.
    Locked,
    /// Reclamation holds it (briefly; never a conflict).
    Pruning,
    /// The head is being unlinked: look the key up again.
    Dead,
}

/// Loads the word for a decision that pair 1 of the contract covers
/// (validators, lockers).
#[inline]
pub(super) fn load(word: &AtomicU64) -> u64 {
    word.load(Ordering::SeqCst)
}

/// Tries once to set `bit` (`LOCKED` or `PRUNING`) on a word that has
/// neither, nor `DEAD`. The CAS is pair 1's store for `LOCKED`; `PRUNING`
/// takes the same path (a holder that sees it only waits).
pub(super) fn take(word: &AtomicU64, bit: u64) -> Taken {
    let mut current = load(word);
    loop {
        if current & DEAD != 0 {
            return Taken::Dead;
        }
        if current & LOCKED != 0 {
            return Taken::Locked;
        }
        if current & PRUNING != 0 {
            return Taken::Pruning;
        }
        match word.compare_exchange(current, current | bit, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return Taken::Yes(current & TS_MASK),
            // Changed under us (a flag, or another taker): look again.
            Err(now) => current = now,
        }
    }
}

/// Clears `bit` and stores `latest` as the key's newest commit timestamp,
/// keeping `QUEUED` (other threads set it while we hold the key). Pair 2's
/// store.
pub(super) fn release(word: &AtomicU64, bit: u64, latest: Timestamp) {
    let _ = word.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |current| {
        Some((current & (QUEUED | LOCKED | PRUNING) & !bit) | (latest & TS_MASK))
    });
}

/// Marks the head dead (its holder unlinks it next).
pub(super) fn mark_dead(word: &AtomicU64) {
    word.fetch_or(DEAD, Ordering::SeqCst);
}

/// Sets `QUEUED`; whether the caller should queue the key (it was not
/// queued, and the head is not dead).
pub(super) fn mark_queued(word: &AtomicU64) -> bool {
    word.fetch_or(QUEUED, Ordering::AcqRel) & (QUEUED | DEAD) == 0
}

/// Clears `QUEUED` (the key was taken off the queue).
pub(super) fn clear_queued(word: &AtomicU64) {
    word.fetch_and(!QUEUED, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_word_refuses_other_takers_until_released() {
        let word = AtomicU64::new(7);
        assert_eq!(take(&word, LOCKED), Taken::Yes(7));
        assert_eq!(take(&word, LOCKED), Taken::Locked);
        assert_eq!(take(&word, PRUNING), Taken::Locked);
        assert!(IntentState::from_word(load(&word)).locked);
        assert!(mark_queued(&word));
        assert!(!mark_queued(&word), "queued once");
        release(&word, LOCKED, 9);
        assert_eq!(load(&word), QUEUED | 9, "the flag survives the release");
        assert_eq!(take(&word, PRUNING), Taken::Yes(9));
        assert_eq!(take(&word, LOCKED), Taken::Pruning);
        assert!(
            !IntentState::from_word(load(&word)).locked,
            "pruning is not a writer"
        );
        release(&word, PRUNING, 9);
        clear_queued(&word);
        mark_dead(&word);
        assert_eq!(take(&word, LOCKED), Taken::Dead);
    }
}
