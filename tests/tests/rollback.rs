//! Rollback and drop-without-commit: nothing of the transaction becomes visible, and it leaves
//! nothing behind that could make later (or concurrent) transactions conflict.

use std::panic::{AssertUnwindSafe, catch_unwind};

use khonsu::prelude::*;
use khonsu_tests::*;

#[derive(Clone, Copy, Debug)]
enum End {
    Rollback,
    Drop,
    Panic,
}

const ENDS: [End; 3] = [End::Rollback, End::Drop, End::Panic];

fn end(t: Transaction, how: End) {
    match how {
        End::Rollback => t.rollback(),
        End::Drop => drop(t),
        End::Panic => {
            let r = catch_unwind(AssertUnwindSafe(move || {
                let _t = t;
                panic!("closure panicked with an open transaction (expected by the test)");
            }));
            assert!(r.is_err());
        }
    }
}

/// Writes, overwrites and deletes, then abandons the transaction.
fn abandoned_writer(db: &Khonsu, how: End) {
    let mut t = db.start_transaction();
    write(&mut t, "a", 100);
    write(&mut t, "new", 1);
    delete(&mut t, "b");
    assert_eq!(read(&mut t, "a"), Some(100));
    end(t, how);
}

#[test]
fn abandoned_transaction_leaves_nothing_visible() {
    for iso in LEVELS {
        for how in ENDS {
            let db = db(iso, ConflictResolution::Fail);
            seed_values(&db, &[("a", 1), ("b", 2)]);
            abandoned_writer(&db, how);
            assert_eq!(
                committed_all(&db),
                vec![(key("a"), 1), (key("b"), 2)],
                "{iso:?}/{how:?}"
            );
        }
    }
}

/// A later transaction writes (and read-modify-writes) the same keys with `Fail` and commits.
#[test]
fn later_transaction_writes_same_keys_without_conflict() {
    for iso in LEVELS {
        for how in ENDS {
            let db = db(iso, ConflictResolution::Fail);
            seed_values(&db, &[("a", 1), ("b", 2)]);
            abandoned_writer(&db, how);
            let mut t = db.start_transaction();
            let a = read_some(&mut t, "a");
            write(&mut t, "a", a + 1);
            write(&mut t, "new", 2);
            write(&mut t, "b", 3);
            commit(t);
            assert_eq!(
                committed_all(&db),
                vec![(key("a"), 2), (key("b"), 3), (key("new"), 2)],
                "{iso:?}/{how:?}"
            );
        }
    }
}

/// A transaction that was already running while the other one was abandoned is not affected
/// either: it never conflicted with a commit, because there was none.
#[test]
fn concurrent_transaction_unaffected_by_abandoned_one() {
    for iso in LEVELS {
        for how in ENDS {
            let db = db(iso, ConflictResolution::Fail);
            seed_values(&db, &[("a", 1), ("b", 2)]);
            let mut t = db.start_transaction();
            let a = read_some(&mut t, "a");
            // Scan the range the abandoned transaction inserts into.
            assert_eq!(scan(&mut t, ..).len(), 2);
            abandoned_writer(&db, how);
            write(&mut t, "a", a + 1);
            write(&mut t, "new", 5);
            delete(&mut t, "b");
            let c = commit(t);
            assert!(c.replaced.is_empty() && c.ignored.is_empty() && c.appended.is_empty());
            assert_eq!(
                committed_all(&db),
                vec![(key("a"), 2), (key("new"), 5)],
                "{iso:?}/{how:?}"
            );
        }
    }
}

/// Abandoned transactions do not accumulate in the buffer.
#[test]
fn many_rollbacks_leave_the_buffer_empty() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    for i in 0..1_000_u64 {
        let mut t = db.start_transaction();
        write(&mut t, i, 1);
        read(&mut t, key(i + 1));
        if i % 2 == 0 { t.rollback() } else { drop(t) }
    }
    db.collect_garbage();
    let stats = db.stats();
    assert_eq!(stats.keys, 0, "{stats:?}");
    assert_eq!(stats.versions, 0, "{stats:?}");
    assert!(committed_all(&db).is_empty());
}

/// Rolling back a read-only transaction is harmless, and a rolled-back transaction's snapshot does
/// not pin anything: the value it read can be overwritten and committed.
#[test]
fn rollback_of_reader() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        seed_values(&db, &[("a", 1)]);
        let mut r = db.start_transaction();
        assert_eq!(read(&mut r, "a"), Some(1));
        r.rollback();
        let mut w = db.start_transaction();
        write(&mut w, "a", 2);
        commit(w);
        assert_eq!(committed(&db, "a"), Some(2), "{iso:?}");
    }
}
