//! G2-item (write skew), Hermitage `g2-item`.
//!
//! ```text
//! T1: r(x) r(y) -> 10, 20
//! T2: r(x) r(y) -> 10, 20
//! T2: w(x = 11)
//! T1: w(y = 21)
//! T1: commit
//! T2: commit -> Serializable: aborts (StaleRead on y, which T1 wrote after T2's snapshot)
//!               RepeatableRead, ReadCommitted: commits (write skew)
//! ```
//!
//! Also the classic "doctors on call" form: each doctor goes off call if the other is still on
//! call; at Serializable at least one doctor stays on call.

use khonsu::ConflictKind;
use khonsu::prelude::*;
use khonsu_tests::*;

fn schedule(iso: TransactionIsolation, res: ConflictResolution) {
    let ctx = format!("{iso:?}/{res:?}");
    let db = db(iso, res);
    seed_values(&db, &[("x", 10), ("y", 20)]);

    let mut t1 = db.start_transaction();
    let mut t2 = db.start_transaction();
    assert_eq!(
        (read(&mut t1, "x"), read(&mut t1, "y")),
        (Some(10), Some(20))
    );
    assert_eq!(
        (read(&mut t2, "x"), read(&mut t2, "y")),
        (Some(10), Some(20))
    );
    write(&mut t2, "x", 11);
    write(&mut t1, "y", 21);
    commit(t1);
    let r2 = t2.commit();
    if iso == TransactionIsolation::Serializable {
        let err = expect_err(r2, &ctx);
        assert_conflict(&err, &ConflictKind::StaleRead, &key("y"));
        assert_eq!(
            committed_all(&db),
            vec![(key("x"), 10), (key("y"), 21)],
            "{ctx}"
        );
    } else {
        let c2 = ok(r2, &ctx);
        assert!(
            c2.replaced.is_empty() && c2.ignored.is_empty() && c2.appended.is_empty(),
            "{ctx}: no write-write conflict here: {c2:?}"
        );
        assert_eq!(
            committed_all(&db),
            vec![(key("x"), 11), (key("y"), 21)],
            "{ctx}"
        );
    }
}

#[test]
fn g2_item_read_committed() {
    for res in RESOLUTIONS {
        schedule(TransactionIsolation::ReadCommitted, res);
    }
}

#[test]
fn g2_item_repeatable_read() {
    for res in RESOLUTIONS {
        schedule(TransactionIsolation::RepeatableRead, res);
    }
}

#[test]
fn g2_item_serializable() {
    for res in RESOLUTIONS {
        schedule(TransactionIsolation::Serializable, res);
    }
}

/// Doctors on call: both alice and bob are on call (1). Each transaction checks that the number
/// of doctors on call is at least 2 and takes one doctor off call. Serializable keeps the
/// invariant "at least one on call"; the weaker levels break it.
fn doctors(iso: TransactionIsolation) -> i64 {
    let db = db(iso, ConflictResolution::Fail);
    seed_values(&db, &[("doctor/alice", 1), ("doctor/bob", 1)]);
    let mut t1 = db.start_transaction();
    let mut t2 = db.start_transaction();
    let on_call =
        |t: &mut Transaction| -> i64 { scan_prefix(t, "doctor/").iter().map(|(_, v)| v).sum() };
    assert_eq!(on_call(&mut t1), 2);
    assert_eq!(on_call(&mut t2), 2);
    write(&mut t1, "doctor/alice", 0);
    write(&mut t2, "doctor/bob", 0);
    commit(t1);
    let r2 = t2.commit();
    if iso == TransactionIsolation::Serializable {
        let err = expect_err(r2, "bob at Serializable");
        // The scanned range changed (Phantom); a key-level StaleRead on alice is also accurate.
        assert_conflict_on_any(
            &err,
            &[&ConflictKind::Phantom, &ConflictKind::StaleRead],
            &[&key("doctor/alice")],
        );
    } else {
        ok(r2, &format!("bob at {iso:?}"));
    }
    let mut t = db.start_transaction();
    on_call(&mut t)
}

#[test]
fn doctors_on_call_read_committed_breaks_invariant() {
    assert_eq!(doctors(TransactionIsolation::ReadCommitted), 0);
}

#[test]
fn doctors_on_call_repeatable_read_breaks_invariant() {
    assert_eq!(doctors(TransactionIsolation::RepeatableRead), 0);
}

#[test]
fn doctors_on_call_serializable_keeps_invariant() {
    assert_eq!(doctors(TransactionIsolation::Serializable), 1);
}

/// No false abort at Serializable: T2 read only keys nobody else wrote.
#[test]
fn serializable_disjoint_read_sets_both_commit() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    seed_values(&db, &[("x", 10), ("y", 20), ("z", 30)]);
    let mut t1 = db.start_transaction();
    let mut t2 = db.start_transaction();
    assert_eq!(read(&mut t1, "x"), Some(10));
    assert_eq!(read(&mut t2, "z"), Some(30));
    write(&mut t1, "y", 21);
    write(&mut t2, "x", 11);
    // Serial order t1, t2 exists: t1's read of x is still current when t1 commits (t2 has not
    // committed yet), and t2 read only z, which nobody wrote.
    commit(t1);
    commit(t2);
    assert_eq!(
        committed_all(&db),
        vec![(key("x"), 11), (key("y"), 21), (key("z"), 30)]
    );
}

/// Serializable: an absent key read counts too. T1 reads "no x" and writes y; T2 inserts x and
/// commits first; T1 must abort with `StaleRead` on x.
#[test]
fn serializable_absent_read_goes_stale() {
    let db = conservative_db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    let mut t1 = db.start_transaction();
    assert_eq!(read(&mut t1, "x"), None);
    write(&mut t1, "y", 1);
    let mut t2 = db.start_transaction();
    write(&mut t2, "x", 1);
    commit(t2);
    let err = expect_err(t1.commit(), "T1");
    assert_conflict(&err, &ConflictKind::StaleRead, &key("x"));
    assert_eq!(committed(&db, "y"), None);
}
