//! Memory stays bounded under long-lived readers, and reclamation never
//! changes what a transaction sees or whether it commits (issue 10).
//!
//! * One snapshot held open while every key is overwritten thousands of
//!   times keeps its own version of each key, not the history written since
//!   it began; 100 snapshots opened at staggered times keep one version each;
//!   once they close, later commits bring every key back to one or two
//!   versions — with no call to `collect_garbage`.
//! * A long `ReadCommitted` transaction pins only what it reads now.
//! * A transaction older than `max_snapshot_age` gets `SnapshotTooOld` (not
//!   a conflict) and stops pinning memory.
//! * The regressions of issue 10: a `ReadCommitted` write after a reclaimed
//!   delete is not a conflict; a commit already in a transaction's snapshot
//!   aborts nobody.
//!
//! Every write stores a fresh batch (no shared `Arc`), as a user's would.

use std::sync::atomic::{AtomicI64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use khonsu::Error;
use khonsu::prelude::*;
use khonsu_tests::*;

const KEYS: i64 = 16;

fn fill(db: &Khonsu, v: i64) {
    let mut t = db.start_transaction();
    for k in 0..KEYS {
        write(&mut t, format!("pos{k}"), v);
    }
    ok(t.commit(), "fill");
}

/// Overwrites every key `rounds` times, one key per commit, from two threads.
fn overwrite(db: &Khonsu, rounds: i64) {
    thread::scope(|s| {
        for w in 0..2 {
            s.spawn(move || {
                for round in 0..rounds {
                    for k in (w..KEYS).step_by(2) {
                        ok(
                            db.atomically(|t| t.write(format!("pos{k}"), batch(round))),
                            "overwrite",
                        );
                    }
                }
            });
        }
    });
}

fn versions_per_key(db: &Khonsu) -> f64 {
    let stats = db.stats();
    f64::from(u32::try_from(stats.versions).unwrap_or(u32::MAX))
        / f64::from(u32::try_from(stats.keys.max(1)).unwrap_or(u32::MAX))
}

#[test]
fn one_long_snapshot_keeps_its_versions_not_the_history_after_it() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        fill(&db, -1);
        let mut snapshot = db.start_transaction_with(TransactionOptions::new().read_only(true));
        let snapshot_iso = db.start_transaction_with(
            TransactionOptions::new()
                .read_only(true)
                .isolation(TransactionIsolation::RepeatableRead),
        );
        overwrite(&db, 2_000);
        let stats = db.stats();
        // Newest, the snapshot's, and a few commits' worth not yet pruned.
        assert!(
            stats.versions <= usize::try_from(3 * KEYS).unwrap_or(0) + 8,
            "{iso:?}: {stats:?}"
        );
        assert!(
            stats.history_bytes > 0,
            "{iso:?}: the snapshot's versions count"
        );
        assert_eq!(
            stats.oldest_snapshot.map(|o| o.ts),
            Some(snapshot.snapshot_ts()),
            "{iso:?}"
        );
        if iso != TransactionIsolation::ReadCommitted {
            for k in 0..KEYS {
                assert_eq!(read(&mut snapshot, format!("pos{k}")), Some(-1), "{iso:?}");
            }
        }
        drop((snapshot, snapshot_iso));
        // Later commits prune what the snapshot held (no collect_garbage).
        overwrite(&db, 50);
        assert!(versions_per_key(&db) <= 2.0, "{iso:?}: {:?}", db.stats());
    }
}

#[test]
fn staggered_snapshots_keep_one_version_each() {
    let db = db(
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Fail,
    );
    fill(&db, -1);
    let mut held = Vec::new();
    for i in 0..100 {
        overwrite(&db, 3);
        let mut t = db.start_transaction();
        let seen = read(&mut t, "pos0");
        held.push((t, seen, i));
    }
    overwrite(&db, 20);
    let per_key = versions_per_key(&db);
    assert!(
        per_key <= 101.0 + 4.0,
        "{per_key} versions per key: {:?}",
        db.stats()
    );
    for (t, seen, i) in &mut held {
        assert_eq!(read(t, "pos0"), *seen, "snapshot {i}");
    }
    drop(held);
    overwrite(&db, 200);
    assert!(versions_per_key(&db) <= 2.0, "{:?}", db.stats());
}

/// Keys nobody writes again are pruned by later commits once the snapshot
/// that pinned them closes (a bounded step per commit, no `collect_garbage`).
#[test]
fn keys_not_written_again_are_reclaimed_in_the_background() {
    let db = db(
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Fail,
    );
    let cold: Vec<String> = (0..200).map(|k| format!("cold{k}")).collect();
    for v in 0..2 {
        let mut t = db.start_transaction();
        for k in &cold {
            write(&mut t, k.as_str(), v);
        }
        ok(t.commit(), "cold write");
        if v == 0 {
            // A snapshot pins the first generation of every cold key (a
            // few commits elsewhere first: committers use pins refreshed
            // every few commits, and a key is queued for revisits when they
            // show a snapshot holding it).
            let mut snapshot = db.start_transaction();
            assert_eq!(read(&mut snapshot, cold[0].as_str()), Some(0));
            for i in 0..8 {
                ok(db.atomically(|t| t.write("hot", batch(i))), "hot write");
            }
            let mut t = db.start_transaction();
            for k in &cold {
                write(&mut t, k.as_str(), 1);
            }
            ok(t.commit(), "cold overwrite");
            assert!(db.stats().history_versions >= cold.len());
            assert_eq!(read(&mut snapshot, cold[0].as_str()), Some(0));
            drop(snapshot);
        }
    }
    for i in 0..2_000 {
        ok(db.atomically(|t| t.write("hot", batch(i))), "hot write");
    }
    // Each cold key is back to its newest (and at most the one visible at
    // the pins' clock); the hot key holds a few recent versions.
    let stats = db.stats();
    assert!(stats.history_versions <= cold.len() + 6, "{stats:?}");
    assert!(stats.versions <= 2 * cold.len() + 8, "{stats:?}");
    assert_eq!(stats.keys, cold.len() + 1);
}

#[test]
fn a_long_read_committed_transaction_pins_only_what_it_reads_now() {
    let db = db(
        TransactionIsolation::ReadCommitted,
        ConflictResolution::Fail,
    );
    fill(&db, -1);
    let mut reader = db.start_transaction();
    for round in 0..200 {
        overwrite(&db, 5);
        // Each read sees the newest value and moves the reader's pin.
        assert_eq!(read(&mut reader, "pos3"), Some(4), "round {round}");
    }
    assert!(versions_per_key(&db) <= 3.0, "{:?}", db.stats());
    // Its blind writes (of keys it did not read) still conflict with
    // commits after its start (Fail).
    ok(reader.write("pos5", batch(0)), "stage");
    let err = expect_err(reader.commit(), "a blind write over later commits");
    assert!(err.is_conflict(), "{err}");
}

#[test]
fn a_snapshot_past_the_maximum_age_is_refused_and_pins_nothing() {
    let max_age = Duration::from_millis(20);
    let db = ok(
        Khonsu::builder()
            .isolation(TransactionIsolation::RepeatableRead)
            .max_snapshot_age(max_age)
            .build(),
        "build",
    );
    fill(&db, -1);
    let mut old = db.start_transaction();
    assert_eq!(read(&mut old, "pos0"), Some(-1));
    ok(old.write("pos0", batch(5)), "stage");
    let started = Instant::now();
    // Overwrite until the transaction is over age (waits for the clock; no
    // timing is asserted).
    let mut round = 0;
    while started.elapsed() <= max_age * 2 {
        overwrite(&db, 1);
        round += 1;
    }
    overwrite(&db, 20);
    // It no longer pins its versions ...
    assert!(
        versions_per_key(&db) <= 2.0,
        "after {round} rounds: {:?}",
        db.stats()
    );
    // ... and cannot read, scan or commit: a clear, non-conflict error.
    let err = expect_err(old.read("pos1"), "read of an expired snapshot");
    assert!(matches!(err, Error::SnapshotTooOld { .. }), "{err}");
    assert!(!err.is_conflict());
    assert!(err.to_string().contains("snapshot too old"), "{err}");
    let err = expect_err(old.scan(..), "scan of an expired snapshot");
    assert!(matches!(err, Error::SnapshotTooOld { .. }), "{err}");
    let err = expect_err(old.commit(), "commit of an expired snapshot");
    assert!(matches!(err, Error::SnapshotTooOld { .. }), "{err}");
    // Nothing of it became visible; young transactions are unaffected.
    let mut fresh = db.start_transaction();
    assert_ne!(read(&mut fresh, "pos0"), Some(5));
    // `atomically` does not retry it.
    let tries = AtomicI64::new(0);
    let result: Result<(), Error> = db.atomically(|t| {
        tries.fetch_add(1, Ordering::Relaxed);
        let begun = Instant::now();
        while begun.elapsed() <= max_age * 2 {
            thread::yield_now();
        }
        t.read("pos0").map(|_| ())
    });
    assert!(matches!(result, Err(Error::SnapshotTooOld { .. })));
    assert_eq!(tries.load(Ordering::Relaxed), 1);
}

/// Issue 10, finding 1: with a snapshot older than a delete open, sweeping
/// reclaimed the key's tombstone but kept its head; a `ReadCommitted` read
/// then observed "never written", and its write was judged to conflict with
/// the delete that committed before the read (`Fail` aborted forever,
/// `Ignore` silently dropped the write, `Replace`/`Append` reported a
/// resolution that never happened).
#[test]
fn read_committed_writes_after_a_reclaimed_delete_do_not_conflict() {
    for resolution in RESOLUTIONS {
        let db = db(TransactionIsolation::RepeatableRead, resolution);
        seed_values(&db, &[("k", 1)]);
        let old = db.start_transaction(); // predates the delete
        let mut t = db.start_transaction();
        ok(t.delete("k"), "delete");
        ok(t.commit(), "delete commit");
        db.collect_garbage();
        let rc = TransactionOptions::new().isolation(TransactionIsolation::ReadCommitted);
        for attempt in 0..3 {
            let mut t = db.start_transaction_with(rc);
            assert_eq!(read(&mut t, "k"), None);
            write(&mut t, "k", 10 + attempt);
            let info = ok(t.commit(), "RC write after the delete");
            assert!(
                info.ignored.is_empty() && info.replaced.is_empty() && info.appended.is_empty(),
                "{resolution:?}: no concurrent commit happened: {info:?}"
            );
            let mut check = db.start_transaction();
            assert_eq!(read(&mut check, "k"), Some(10 + attempt), "{resolution:?}");
            let mut t = db.start_transaction_with(rc);
            ok(t.delete("k"), "delete again");
            ok(t.commit(), "delete again");
            db.collect_garbage();
        }
        drop(old);
    }
}

/// Issue 10, finding 2: a commit published its timestamp and only then
/// pruned and released its intents, so a transaction that began after the
/// publish (and read the newest version) aborted on the lock: a
/// write-write abort without a winner on a read-modify-write, or a
/// `Serializable` validation abort. Here a reader waits until its snapshot
/// contains the writer's newest commit, then read-modify-writes the key
/// (`RepeatableRead`) or reads it and writes another key (`Serializable`);
/// the writer does not commit again until the reader is done, so no commit
/// outside the reader's snapshot exists and it must never abort.
#[test]
fn a_commit_already_in_the_snapshot_aborts_nobody() {
    const ROUNDS: i64 = 1_000;
    for iso in SNAPSHOT_LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        seed_values(&db, &[("k", -1)]);
        let done_round = AtomicI64::new(-1);
        let deadline = Instant::now() + Duration::from_secs(60);
        thread::scope(|s| {
            s.spawn(|| {
                for round in 0..ROUNDS {
                    let mut t = db.start_transaction();
                    write(&mut t, "k", round);
                    ok(t.commit(), "writer");
                    while done_round.load(Ordering::Acquire) < round {
                        assert!(Instant::now() < deadline, "the reader stalled");
                        thread::yield_now();
                    }
                }
            });
            s.spawn(|| {
                for round in 0..ROUNDS {
                    let mut t = loop {
                        let mut t = db.start_transaction();
                        if read(&mut t, "k") == Some(round) {
                            break t;
                        }
                        assert!(Instant::now() < deadline, "the writer stalled");
                    };
                    if iso == TransactionIsolation::Serializable {
                        write(&mut t, "other", round);
                    } else {
                        write(&mut t, "k", round);
                    }
                    if let Err(err) = t.commit() {
                        let kind = err.conflict().map(|c| c.kind);
                        panic!(
                            "{iso:?} round {round}: aborted by a commit its snapshot contains \
                             ({kind:?}): {}",
                            snafu::Report::from_error(err)
                        );
                    }
                    done_round.store(round, Ordering::Release);
                }
            });
        });
        let mut check = db.start_transaction();
        assert_eq!(read(&mut check, "k"), Some(ROUNDS - 1), "{iso:?}");
    }
}

/// A fresh batch of about 8 KB (1,000 `i64`s), as a user's overwrite would store.
fn big_batch(v: i64) -> RecordBatch {
    batch_of(&vec![v; 1_000])
}

/// Issue 16, item 6: a long `ReadCommitted` read-write transaction polling an overwritten key
/// kept every batch it had read (2,000 polls held 1,999 old 8 KB batches after reclamation,
/// while `stats()` said no history was held). It keeps at most one per key: the newest, which
/// an `Append`-resolved rewrite of the key (the transaction's or the write's own) would use.
#[test]
fn a_polling_read_committed_writer_holds_at_most_one_old_batch() {
    for (resolution, kept) in [
        (ConflictResolution::Fail, 1),
        (ConflictResolution::Append, 1),
    ] {
        let db = db(TransactionIsolation::ReadCommitted, resolution);
        let mut written = Vec::new();
        let mut poller = db.start_transaction();
        write(&mut poller, "unrelated", 0); // a read-write transaction
        for round in 0..2_000 {
            let value = std::sync::Arc::new(big_batch(round));
            written.push(std::sync::Arc::downgrade(&value));
            ok(
                db.atomically(|t| t.write("hot", std::sync::Arc::clone(&value))),
                "overwrite",
            );
            let seen = ok(poller.read("hot"), "poll");
            assert_eq!(seen.map(|b| values(&b)[0]), Some(round));
        }
        // Unlinked versions are freed by the epoch collector a few epochs
        // later: collect until it has caught up (bounded).
        let alive = || written.iter().filter(|w| w.strong_count() > 0).count();
        for _ in 0..1_000 {
            db.collect_garbage();
            if alive() <= 1 + kept {
                break;
            }
        }
        let alive = alive();
        // The newest is the key's value; anything beyond is held by the poller.
        assert!(
            alive <= 1 + kept,
            "{resolution}: {alive} of 2,000 batches alive, {:?}",
            db.stats()
        );
        assert_eq!(db.stats().history_versions, 0, "{resolution}");
        commit(poller);
    }
}

/// Issue 16, item 7: versions a committer kept only because its cached pins predated them
/// were never revisited — with no snapshot open, 200 keys written four times in a row kept four
/// versions each until rewritten or swept. They are queued and go as later commits revisit
/// them with newer pins.
#[test]
fn versions_kept_for_stale_pins_are_reclaimed_by_later_commits() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    for k in 0..200 {
        for round in 0..4 {
            ok(
                db.atomically(|t| t.write(format!("k{k}"), batch(round))),
                "write",
            );
        }
    }
    // Unrelated commits revisit queued keys, a couple each.
    for round in 0..400 {
        ok(db.atomically(|t| t.write("other", batch(round))), "other");
    }
    let stats = db.stats();
    assert!(
        stats.history_versions <= 4,
        "old versions of keys written in a row are still held: {stats:?}"
    );
}

/// Issue 16, item 7: a full `collect_garbage` left the deferred queue as it was, so
/// `Stats::deferred_keys` still counted 1,000 keys it had just reclaimed.
#[test]
fn a_full_collection_empties_the_deferred_queue() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    ok(
        db.atomically(|t| (0..1_000).try_for_each(|k| t.write(format!("k{k}"), batch(0)))),
        "fill",
    );
    let reader = db.start_transaction();
    for k in 0..1_000 {
        ok(
            db.atomically(|t| t.write(format!("k{k}"), batch(1))),
            "overwrite",
        );
    }
    assert!(db.stats().deferred_keys > 0, "{:?}", db.stats());
    drop(reader);
    db.collect_garbage();
    let stats = db.stats();
    assert_eq!(stats.deferred_keys, 0, "{stats:?}");
    assert_eq!(stats.history_versions, 0, "{stats:?}");
}

/// Found by review of the striped deferred queue: keys queued by a thread that then stopped
/// committing (a loader) sat in its stripe while another thread committed steadily — 40,000
/// commits revisited a third of them. Committers take turns at other threads' stripes.
#[test]
fn keys_queued_by_a_thread_that_stopped_committing_are_reclaimed() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    ok(
        db.atomically(|t| (0..500).try_for_each(|k| t.write(format!("k{k}"), batch(0)))),
        "fill",
    );
    let reader = db.start_transaction();
    thread::scope(|s| {
        s.spawn(|| {
            for round in 1..4 {
                for k in 0..500 {
                    ok(
                        db.atomically(|t| t.write(format!("k{k}"), batch(round))),
                        "load",
                    );
                }
            }
        });
    });
    drop(reader);
    assert!(db.stats().deferred_keys >= 400, "{:?}", db.stats());
    for round in 0..4_000 {
        ok(db.atomically(|t| t.write("other", batch(round))), "other");
    }
    let stats = db.stats();
    assert!(
        stats.history_versions <= 4,
        "old versions still held: {stats:?}"
    );
    assert!(stats.deferred_keys <= 4, "still queued: {stats:?}");
}
