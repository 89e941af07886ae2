//! A thread hands the emptied footprint of its last transaction (the `DependencyTracker`: staged
//! writes, point reads, scanned ranges) to its next one, and takes transaction ids from a
//! per-thread block. Nothing of a finished transaction may reach the next one on the same thread:
//! not its staged writes, not the reads `Serializable` validates, not its scanned ranges; and ids
//! stay unique across threads.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::thread;

use khonsu::prelude::*;
use khonsu_tests::*;

#[test]
fn staged_writes_do_not_reach_the_next_transaction() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        seed_values(&db, &[("a", 1), ("p/1", 11)]);

        // Rolled back: its writes, deletes and scan are gone with it.
        let mut t = db.start_transaction();
        write(&mut t, "b", 200);
        delete(&mut t, "a");
        write(&mut t, "p/2", 12);
        assert_eq!(scan_prefix(&mut t, "p/").len(), 2, "{iso:?}");
        t.rollback();

        let mut next = db.start_transaction();
        assert_eq!(read(&mut next, "a"), Some(1), "{iso:?}: the delete leaked");
        assert_eq!(read(&mut next, "b"), None, "{iso:?}: the write leaked");
        assert_eq!(
            scan_prefix(&mut next, "p/"),
            vec![(key("p/1"), 11)],
            "{iso:?}: a staged write leaked into a scan"
        );
        let info = commit(next);
        assert!(
            info.read_only,
            "{iso:?}: the next transaction staged nothing"
        );

        // Committed: the next transaction sees the data, not a staged copy.
        let mut t = db.start_transaction();
        write(&mut t, "c", 3);
        commit(t);
        let mut next = db.start_transaction();
        assert_eq!(read(&mut next, "c"), Some(3), "{iso:?}");
        write(&mut next, "d", 4);
        let info = commit(next);
        assert!(!info.read_only, "{iso:?}");
        assert_eq!(committed(&db, "c"), Some(3), "{iso:?}");
        assert_eq!(committed(&db, "d"), Some(4), "{iso:?}");
    }
}

#[test]
fn reads_of_a_finished_transaction_are_not_validated_in_the_next() {
    let db = conservative_db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    seed_values(&db, &[("x", 1), ("p/1", 1), ("y", 0)]);

    // Reads `x` and scans `p/`, then rolls back.
    let mut reader = db.start_transaction();
    assert_eq!(read(&mut reader, "x"), Some(1));
    assert_eq!(scan_prefix(&mut reader, "p/").len(), 1);
    reader.rollback();

    // The next transaction on this thread writes `y` blind while `x` and
    // `p/` change under it: it depends on neither and must commit.
    let mut blind = db.start_transaction();
    write(&mut blind, "y", 1);
    let mut other = db.start_transaction();
    write(&mut other, "x", 2);
    write(&mut other, "p/2", 2);
    commit(other);
    commit(blind);
    assert_eq!(committed(&db, "y"), Some(1));

    // Validation still works on the reused footprint: a read overwritten
    // before commit aborts.
    let mut rw = db.start_transaction();
    assert_eq!(read(&mut rw, "x"), Some(2));
    write(&mut rw, "y", 2);
    let mut other = db.start_transaction();
    write(&mut other, "x", 3);
    commit(other);
    let err = expect_err(rw.commit(), "commit after its read was overwritten");
    assert!(err.is_conflict(), "{err}");
    assert_eq!(committed(&db, "y"), Some(1));
}

#[test]
fn a_failed_commit_leaves_nothing_behind() {
    for iso in SNAPSHOT_LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        seed_values(&db, &[("k", 1)]);
        let mut loser = db.start_transaction();
        assert_eq!(read(&mut loser, "k"), Some(1));
        write(&mut loser, "k", 10);
        write(&mut loser, "extra", 10);
        let mut winner = db.start_transaction();
        write(&mut winner, "k", 2);
        commit(winner);
        let err = expect_err(loser.commit(), "lost update");
        assert!(err.is_conflict(), "{iso:?}: {err}");

        let mut next = db.start_transaction();
        assert_eq!(read(&mut next, "extra"), None, "{iso:?}");
        write(&mut next, "k", 3);
        commit(next);
        assert_eq!(committed(&db, "k"), Some(3), "{iso:?}");
        assert_eq!(committed(&db, "extra"), None, "{iso:?}");
    }
}

#[test]
fn a_large_transaction_is_followed_by_a_clean_one() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    let keys: Vec<u64> = (0..2_000).collect();
    let mut big = db.start_transaction();
    for &k in &keys {
        assert_eq!(read(&mut big, k.to_be_bytes()), None);
        write(&mut big, k, i64::try_from(k).unwrap_or(i64::MAX));
    }
    commit(big);
    let mut next = db.start_transaction();
    write(&mut next, 5_000_u64, 1);
    let info = commit(next);
    assert!(!info.read_only);
    let mut check = db.start_transaction();
    assert_eq!(scan(&mut check, ..).len(), keys.len() + 1);
    commit(check);
}

#[test]
fn transaction_ids_are_unique_across_threads() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 3_000; // more than one block of ids per thread
    let db = Arc::new(db(
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Fail,
    ));
    let start = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let db = Arc::clone(&db);
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                (0..PER_THREAD)
                    .map(|_| db.start_transaction().id())
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for worker in workers {
        let ids = worker.join().expect("a worker panicked");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "a thread's ids grow");
        for id in ids {
            assert!(seen.insert(id), "id {id} handed out twice");
        }
    }
    assert_eq!(seen.len(), THREADS * PER_THREAD);
}

#[test]
fn a_transaction_may_finish_on_another_thread() {
    let db = Arc::new(db(
        TransactionIsolation::Serializable,
        ConflictResolution::Fail,
    ));
    seed_values(&db, &[("a", 1)]);
    let mut t = db.start_transaction();
    assert_eq!(read(&mut t, "a"), Some(1));
    write(&mut t, "b", 2);
    let moved = thread::spawn(move || {
        write(&mut t, "c", 3);
        commit(t)
    });
    let info = moved.join().expect("the committing thread panicked");
    assert!(!info.read_only);
    // Both threads go on with clean footprints.
    let mut here = db.start_transaction();
    assert_eq!(read(&mut here, "b"), Some(2));
    write(&mut here, "d", 4);
    commit(here);
    let db2 = Arc::clone(&db);
    let there = thread::spawn(move || {
        let mut t = db2.start_transaction();
        let seen = (read(&mut t, "c"), read(&mut t, "d"));
        let info = commit(t);
        (seen, info.read_only)
    });
    let (seen, read_only) = there.join().expect("the reading thread panicked");
    assert_eq!(seen, (Some(3), Some(4)));
    assert!(read_only);
}
