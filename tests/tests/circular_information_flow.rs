//! G1c (circular information flow), Hermitage `g1c`.
//!
//! ```text
//! T1: w(x=11)
//! T2: w(y=22)
//! T1: r(y) -> 20        (T2's write is uncommitted)
//! T2: r(x) -> 10        (T1's write is uncommitted)
//! T1: commit
//! T2: commit
//! ```
//!
//! No level lets information flow in a circle: neither transaction sees the other's write.
//! The two reads form an anti-dependency cycle (T1 -rw-> T2 -rw-> T1), so `Serializable`
//! aborts the second committer (its read of `x` went stale: `StaleRead` on `x`), while
//! `ReadCommitted` and `RepeatableRead` commit both.

use khonsu::ConflictKind;
use khonsu::prelude::*;
use khonsu_tests::*;

fn schedule(iso: TransactionIsolation) {
    let db = db(iso, ConflictResolution::Fail);
    seed_values(&db, &[("x", 10), ("y", 20)]);

    let mut t1 = db.start_transaction();
    let mut t2 = db.start_transaction();
    write(&mut t1, "x", 11);
    write(&mut t2, "y", 22);
    assert_eq!(read(&mut t1, "y"), Some(20), "{iso:?}");
    assert_eq!(read(&mut t2, "x"), Some(10), "{iso:?}");
    commit(t1);
    let r2 = t2.commit();

    if iso == TransactionIsolation::Serializable {
        let err = expect_err(r2, "T2 at Serializable");
        assert_conflict(&err, &ConflictKind::StaleRead, &key("x"));
        assert_eq!(committed(&db, "x"), Some(11));
        assert_eq!(committed(&db, "y"), Some(20));
    } else {
        ok(r2, &format!("T2 at {iso:?}"));
        assert_eq!(committed(&db, "x"), Some(11), "{iso:?}");
        assert_eq!(committed(&db, "y"), Some(22), "{iso:?}");
    }
}

#[test]
fn g1c_read_committed() {
    schedule(TransactionIsolation::ReadCommitted);
}

#[test]
fn g1c_repeatable_read() {
    schedule(TransactionIsolation::RepeatableRead);
}

#[test]
fn g1c_serializable() {
    schedule(TransactionIsolation::Serializable);
}

/// Information does flow one way once the writer commits: a reader that starts after T1's commit
/// sees it, and at Serializable it can then write without aborting (a serial order exists).
#[test]
fn one_way_flow_after_commit_is_fine() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        seed_values(&db, &[("x", 10), ("y", 20)]);
        let mut t1 = db.start_transaction();
        write(&mut t1, "x", 11);
        commit(t1);
        let mut t2 = db.start_transaction();
        assert_eq!(read(&mut t2, "x"), Some(11), "{iso:?}");
        write(&mut t2, "y", 22);
        commit(t2);
        assert_eq!(
            committed_all(&db),
            vec![(key("x"), 11), (key("y"), 22)],
            "{iso:?}"
        );
    }
}
