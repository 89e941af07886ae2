//! Loom models of the commit protocol's memory-ordering contract (the
//! numbered pairs in `state.rs`), run on the real code: the state word
//! functions, [`TimestampOracle`] and [`SnapshotRegistry`] are built on
//! `crate::sync`, which is loom's atomics under `cfg(loom)`.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
//!     cargo test -p khonsu-core --release --lib -- loom_tests
//! ```
//!
//! `LOOM_MAX_PREEMPTIONS` bounds how often loom preempts a running thread
//! in one execution (2 when unset: the suite takes well under a second in
//! release; without a bound, about a minute), and `--nocapture` prints how
//! many executions each model explored. What loom does not see, and how the models stand in for
//! it:
//!
//! * **The overflow map.** `crossbeam-skiplist` is not loom-instrumented,
//!   so the overflow handshake is checked on a model of the same store,
//!   fence and load sequence, the map's accesses as `Release`/`Acquire`.
//! * **The oracle's sleeping wait.** `crate::sync::Backoff` yields to loom
//!   and never gives up, so publishers only spin.
//! * **`SeqCst` accesses.** Loom treats them as `AcqRel` plus one rule: a
//!   `SeqCst` load does not read a `SeqCst` store once a newer `SeqCst`
//!   store to the location has been made (in the order loom runs the
//!   threads). Rust's model (C++20's) rules out more: a `SeqCst` load never
//!   reads a value older, in the location's modification order, than a
//!   `SeqCst` store that precedes it in the single total order, whichever
//!   ordering wrote the older value. Loom lets a `SeqCst` load read an
//!   atomic's initial value, or a `Relaxed` or `Release` store, after a
//!   newer `SeqCst` store, and so reports pair 3's store-buffering
//!   handshake broken where it is not. The pair-3 models therefore start
//!   from `SeqCst` stores: the clock has published a commit, the registry's
//!   slots are stored again (`store_initial_values_seq_cst`), and the
//!   `ReadCommitted` model's read point comes from an `advance`. In the
//!   other direction loom's rule follows the order it runs threads in,
//!   which is stronger than the language where two `SeqCst` accesses are
//!   linked only through `Relaxed` ones, and loom does not generate
//!   load-buffering outcomes: a passing model is evidence, not a proof.
//!   Pairs 1 and 2 are message passing (release/acquire through the
//!   oracle's counters), and their models start from fresh atomics.

use std::sync::Arc;

use loom::thread;

use super::state::{self, IntentState, LOCKED, Taken};
use crate::sync::{AtomicBool, AtomicU64, Ordering, fence};
use crate::{Pins, SnapshotRegistry, Timestamp, TimestampOracle};

/// Runs `model` under loom, with at most two preemptions per execution
/// unless `LOOM_MAX_PREEMPTIONS` says otherwise, and prints how many
/// executions loom explored (`--nocapture` shows it).
fn check(model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    // Every atomic access counts, and `store_initial_values_seq_cst` makes
    // a few hundred before the threads start.
    builder.max_branches = 10_000;
    let executions = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = executions.clone();
    builder.check(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        model();
    });
    println!(
        "{}: {} executions",
        std::thread::current().name().unwrap_or("loom model"),
        executions.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// Takes `word`'s write intent, waiting (yielding to loom) while another
/// committer holds it; the key's newest commit timestamp.
fn take_intent(word: &AtomicU64) -> Timestamp {
    loop {
        match state::take(word, LOCKED) {
            Taken::Yes(latest) => return latest,
            Taken::Locked => thread::yield_now(),
            other => panic!("no pruner or unlinker in this model: {other:?}"),
        }
    }
}

/// Pairs 1 and 2, and the oracle's in-order publication.
///
/// Two committers of one key each take the key's intent, allocate a ticket,
/// mark the ticket's versions installed (`Relaxed`: only the publish orders
/// them), release the intent with the ticket's timestamp and publish; a
/// reader takes two snapshots. Tickets are distinct; the intent's later
/// holder reads the earlier one's timestamp in the word (pair 2) and
/// commits above it; a snapshot sees every ticket up to its timestamp
/// installed, never a later one first; `visible` only moves forward and
/// ends at the last ticket.
#[test]
fn committers_of_one_key_publish_in_timestamp_order() {
    check(|| {
        let oracle = Arc::new(TimestampOracle::new(0));
        let word = Arc::new(AtomicU64::new(0));
        // `installed[ts]`: ticket `ts`'s versions are in place.
        let installed: Arc<[AtomicBool; 3]> =
            Arc::new(std::array::from_fn(|_| AtomicBool::new(false)));

        let committer = || {
            let (oracle, word, installed) = (oracle.clone(), word.clone(), installed.clone());
            thread::spawn(move || {
                let latest = take_intent(&word);
                let ticket = oracle.allocate().unwrap();
                let ts = ticket.ts();
                assert!(
                    ts > latest,
                    "commit {ts} under the intent is not above the key's newest {latest}"
                );
                installed[usize::try_from(ts).unwrap()].store(true, Ordering::Relaxed);
                state::release(&word, LOCKED, ts);
                ticket.publish();
                (latest, ts)
            })
        };
        let reader = {
            let (oracle, installed) = (oracle.clone(), installed.clone());
            thread::spawn(move || {
                let mut last = 0;
                for _ in 0..2 {
                    let visible = oracle.visible();
                    assert!(
                        visible >= last,
                        "visible went back from {last} to {visible}"
                    );
                    for ts in 1..=visible {
                        assert!(
                            installed[usize::try_from(ts).unwrap()].load(Ordering::Relaxed),
                            "snapshot at {visible} misses commit {ts}"
                        );
                    }
                    last = visible;
                }
            })
        };
        let (first, second) = (committer(), committer());
        let mut runs = [first.join().unwrap(), second.join().unwrap()];
        reader.join().unwrap();

        runs.sort_unstable_by_key(|(_, ts)| *ts);
        assert_eq!(
            runs,
            [(0, 1), (1, 2)],
            "distinct tickets, each holder after the other"
        );
        assert_eq!(oracle.visible(), 2);
        let end = IntentState::from_word(state::load(&word));
        assert_eq!((end.locked, end.latest_ts), (false, 2));
    });
}

/// Pair 1: the intent before the timestamp.
///
/// Committer C takes the key's intent (`take`), allocates `ts_C`, releases
/// the word with `ts_C` and publishes. Validator V, whose snapshot is 0,
/// allocates `ts_V` and then loads the word (`load`), as a `Serializable`
/// commit checks a key it read. When `ts_V > ts_C`, C's commit is
/// serialized before V's, so V must see it: the word is `LOCKED` or carries
/// `ts_C`, and V aborts.
///
/// What the pair rests on is the allocation: V's read-modify-write of the
/// oracle's counter reads C's (or a later one), and both are at least
/// release and acquire, so C's `take` happens before V's `load` — message
/// passing, which holds whatever the orderings of the word's own accesses.
/// With the allocation `Relaxed`, loom finds V reading the word from before
/// C's intent.
#[test]
fn a_validator_with_the_later_timestamp_sees_the_intent_or_the_commit() {
    check(|| {
        let oracle = Arc::new(TimestampOracle::new(0));
        let word = Arc::new(AtomicU64::new(0));
        let committer = {
            let (oracle, word) = (oracle.clone(), word.clone());
            thread::spawn(move || {
                assert_eq!(state::take(&word, LOCKED), Taken::Yes(0));
                let ticket = oracle.allocate().unwrap();
                let ts = ticket.ts();
                state::release(&word, LOCKED, ts);
                ticket.publish();
                ts
            })
        };
        let validator = {
            let (oracle, word) = (oracle.clone(), word.clone());
            thread::spawn(move || {
                let ticket = oracle.allocate().unwrap();
                let seen = IntentState::from_word(state::load(&word));
                (ticket.ts(), seen)
                // The ticket publishes as it drops.
            })
        };
        let ts_c = committer.join().unwrap();
        let (ts_v, seen) = validator.join().unwrap();
        let snapshot = 0;
        if ts_v > ts_c {
            assert!(
                seen.locked || seen.latest_ts == ts_c,
                "validator at {ts_v} saw {seen:?}, missing the commit at {ts_c}"
            );
            assert!(
                seen.locked || seen.latest_ts > snapshot,
                "the validator would not abort"
            );
        }
    });
}

/// The version committed at `ts` of a key with a version at every
/// timestamp from 1 to 3 is kept by `pins`.
fn keeps_version(pins: &Pins, ts: Timestamp) -> bool {
    let newer = if ts == 3 { Timestamp::MAX } else { ts + 1 };
    pins.keeps(ts, newer)
}

/// A clock that has published one commit, at 1: its latest stores are
/// `SeqCst` ones, which loom's `SeqCst` rule covers (module docs).
fn clock_at_one() -> TimestampOracle {
    let oracle = TimestampOracle::new(0);
    oracle.allocate().unwrap().publish();
    oracle
}

/// A registry whose slots' latest stores are `SeqCst` ones (module docs).
fn registry() -> SnapshotRegistry {
    let registry = SnapshotRegistry::new();
    registry.store_initial_values_seq_cst();
    registry
}

/// Two commits (at 2 and 3, on top of the one at 1): the prune decision a
/// committer takes after publishing, from fresh pins.
fn commit_twice_then_scan(oracle: &TimestampOracle, registry: &SnapshotRegistry) -> Pins {
    oracle.allocate().unwrap().publish();
    oracle.allocate().unwrap().publish();
    registry.pins(oracle)
}

/// Pair 3, slots: a registering snapshot against a committer's pins scan.
///
/// A key has versions at 1, 2 and 3; the clock starts at 1 and a
/// committer publishes 2 and 3, then scans the registry (`pins`) and
/// decides which of the old versions it may unlink (`Pins::keeps`), while a
/// snapshot registers (`register`). Whatever the interleaving, the version
/// the snapshot reads (the one committed at its timestamp) is kept: the
/// registration stores its slot, then reads the clock again until the two
/// agree, against the scan's clock load then slot load.
#[test]
fn pruning_keeps_what_a_registering_snapshot_reads() {
    check(|| {
        let oracle = Arc::new(clock_at_one());
        let registry = Arc::new(registry());
        let reader = {
            let (oracle, registry) = (oracle.clone(), registry.clone());
            thread::spawn(move || registry.register(&oracle, false))
        };
        let pins = {
            let (oracle, registry) = (oracle.clone(), registry.clone());
            thread::spawn(move || commit_twice_then_scan(&oracle, &registry))
        };
        let (snapshot, ts) = reader.join().unwrap();
        let pins = pins.join().unwrap();
        assert!(
            keeps_version(&pins, ts),
            "snapshot at {ts} lost its version to {pins:?}"
        );
        registry.release(snapshot);
    });
}

/// Pair 3, slots: a `ReadCommitted` transaction moving its read point
/// (`advance`) against a committer's pins scan.
///
/// The transaction registered at 0 and has read at 1 (a read point
/// stored by `advance`); the committer publishes 2 and 3 and scans as above
/// while the transaction advances again. The version at the point it reads
/// next is kept. (The scan may see the old point and the new clock: then
/// the advance's second clock load must see the new clock too, or the
/// version at the point it stored would be unlinked.)
///
/// The first read point is an `advance`'s, not the registration's: the
/// registration stores the point `Relaxed` (its `SeqCst` store of the start
/// publishes it), and from there loom reports an execution the language
/// rules out (module docs).
#[test]
fn pruning_keeps_what_a_read_committed_read_reads() {
    check(|| {
        let oracle = Arc::new(TimestampOracle::new(0));
        let registry = Arc::new(registry());
        let (mut snapshot, start) = registry.register(&oracle, true);
        assert_eq!(start, 0);
        oracle.allocate().unwrap().publish();
        assert_eq!(registry.advance(&mut snapshot, &oracle), 1);
        let reader = {
            let (oracle, registry) = (oracle.clone(), registry.clone());
            thread::spawn(move || {
                let ts = registry.advance(&mut snapshot, &oracle);
                (snapshot, ts)
            })
        };
        let pins = {
            let (oracle, registry) = (oracle.clone(), registry.clone());
            thread::spawn(move || commit_twice_then_scan(&oracle, &registry))
        };
        let (snapshot, ts) = reader.join().unwrap();
        let pins = pins.join().unwrap();
        assert!(
            keeps_version(&pins, ts),
            "read at {ts} lost its version to {pins:?}"
        );
        registry.release(snapshot);
    });
}

/// What a walk of the overflow map finds when it misses the registration.
const ABSENT: u64 = u64::MAX;

/// The overflow handshake (pair 3 for snapshots past the slots), on a
/// model: `SnapshotRegistry`'s overflow is a `crossbeam-skiplist` map,
/// which loom cannot see into. One cell stands for the registration's entry
/// in the map: an insert is a `Release` store, a walk an `Acquire` load (no
/// stronger than the map's own: its level-0 link is a `SeqCst` CAS, its
/// searches load `Acquire`); reading an older value is the walk missing the
/// newest insert. The sequence around it is the registry's:
/// registration inserts, `SeqCst` fence, reads the clock (`SeqCst`), and
/// repeats until the clock agrees; the scan reads the clock, `SeqCst`
/// fence, walks. With `fences`, the version the registration reads is kept;
/// without, loom finds the execution that loses it (the test below), so the
/// model is not vacuous.
fn overflow_handshake(fences: bool) {
    check(move || {
        let oracle = Arc::new(clock_at_one());
        let entry = Arc::new(AtomicU64::new(ABSENT));
        let reader = {
            let (oracle, entry) = (oracle.clone(), entry.clone());
            thread::spawn(move || {
                let mut ts = oracle.visible();
                loop {
                    entry.store(ts, Ordering::Release);
                    if fences {
                        fence(Ordering::SeqCst);
                    }
                    let now = oracle.visible();
                    if now == ts {
                        return ts;
                    }
                    ts = now;
                }
            })
        };
        let pins = {
            let (oracle, entry) = (oracle.clone(), entry.clone());
            thread::spawn(move || {
                oracle.allocate().unwrap().publish();
                oracle.allocate().unwrap().publish();
                let visible = oracle.visible();
                if fences {
                    fence(Ordering::SeqCst);
                }
                let seen = entry.load(Ordering::Acquire);
                Pins::new(visible, (seen != ABSENT).then_some(seen))
            })
        };
        let ts = reader.join().unwrap();
        let pins = pins.join().unwrap();
        let note = if fences { "" } else { " (no fences: expected)" };
        assert!(
            keeps_version(&pins, ts),
            "overflow snapshot at {ts} lost its version to {pins:?}{note}"
        );
    });
}

/// The overflow handshake keeps what its snapshot reads.
#[test]
fn pruning_keeps_what_an_overflow_snapshot_reads() {
    overflow_handshake(true);
}

/// Without its fences the overflow handshake loses a version: loom finds
/// the store-buffering execution.
#[test]
#[should_panic(expected = "lost its version")]
fn the_overflow_handshake_needs_its_fences() {
    overflow_handshake(false);
}
