//! P4 (lost update), Hermitage `p4`.
//!
//! ```text
//! T1: r(x) -> 10
//! T2: r(x) -> 10
//! T1: w(x = 10 + 1)
//! T2: w(x = 10 + 2)
//! T1: commit
//! T2: commit
//! ```
//!
//! Both transactions read-modify-write `x`. At `RepeatableRead` and `Serializable` T2 always
//! aborts with `WriteWrite` on `x` (first committer wins), whatever the conflict resolution. At
//! `ReadCommitted` the write is handled by the resolution: `Fail` aborts (no lost update),
//! `Replace` loses T1's update, `Ignore` drops T2's, `Append` keeps both rows.

use khonsu::ConflictKind;
use khonsu::prelude::*;
use khonsu_tests::*;

fn schedule(iso: TransactionIsolation, res: ConflictResolution) {
    let ctx = format!("{iso:?}/{res:?}");
    let db = db(iso, res);
    seed_values(&db, &[("x", 10)]);

    let mut t1 = db.start_transaction();
    let mut t2 = db.start_transaction();
    let v1 = read_some(&mut t1, "x");
    let v2 = read_some(&mut t2, "x");
    assert_eq!((v1, v2), (10, 10), "{ctx}");
    write(&mut t1, "x", v1 + 1);
    write(&mut t2, "x", v2 + 2);
    let c1 = commit(t1);
    let r2 = t2.commit();

    let final_rows = committed_rows(&db, "x");
    if iso == TransactionIsolation::ReadCommitted {
        match res {
            ConflictResolution::Fail => {
                let err = expect_err(r2, &ctx);
                assert_conflict(&err, &ConflictKind::WriteWrite, &key("x"));
                if let Some(ts) = err.conflict().and_then(|c| c.other_commit_ts) {
                    assert_eq!(ts, c1.commit_ts, "{ctx}");
                }
                assert_eq!(final_rows, Some(vec![11]), "{ctx}");
            }
            ConflictResolution::Replace => {
                let c2 = ok(r2, &ctx);
                assert_eq!(c2.replaced, vec![key("x")], "{ctx}");
                assert_eq!(final_rows, Some(vec![12]), "{ctx}");
            }
            ConflictResolution::Ignore => {
                let c2 = ok(r2, &ctx);
                assert_eq!(c2.ignored, vec![key("x")], "{ctx}");
                assert_eq!(final_rows, Some(vec![11]), "{ctx}");
            }
            ConflictResolution::Append => {
                let c2 = ok(r2, &ctx);
                assert_eq!(c2.appended, vec![key("x")], "{ctx}");
                assert_eq!(final_rows, Some(vec![11, 12]), "{ctx}");
            }
        }
    } else {
        let err = expect_err(r2, &ctx);
        assert_conflict(&err, &ConflictKind::WriteWrite, &key("x"));
        assert_eq!(
            final_rows,
            Some(vec![11]),
            "{ctx}: the first committer wins"
        );
    }
}

#[test]
fn p4_read_committed() {
    for res in RESOLUTIONS {
        schedule(TransactionIsolation::ReadCommitted, res);
    }
}

#[test]
fn p4_repeatable_read() {
    for res in RESOLUTIONS {
        schedule(TransactionIsolation::RepeatableRead, res);
    }
}

#[test]
fn p4_serializable() {
    for res in RESOLUTIONS {
        schedule(TransactionIsolation::Serializable, res);
    }
}

/// The read-modify-write rule also holds when the value was read through a point read of an
/// absent key (an insert race): both read "no x", both insert; the second committer aborts at
/// `RepeatableRead`/Serializable.
#[test]
fn p4_insert_race_snapshot_levels() {
    for iso in SNAPSHOT_LEVELS {
        for res in RESOLUTIONS {
            let ctx = format!("{iso:?}/{res:?}");
            let db = db(iso, res);
            let mut t1 = db.start_transaction();
            let mut t2 = db.start_transaction();
            assert_eq!(read(&mut t1, "x"), None);
            assert_eq!(read(&mut t2, "x"), None);
            write(&mut t1, "x", 1);
            write(&mut t2, "x", 2);
            commit(t1);
            let err = expect_err(t2.commit(), &ctx);
            assert_conflict(&err, &ConflictKind::WriteWrite, &key("x"));
            assert_eq!(committed(&db, "x"), Some(1), "{ctx}");
        }
    }
}

/// At `ReadCommitted`, a write conflicts only with versions committed after the version the
/// transaction read: T2 started before T1 committed but read x afterwards, so its increment
/// is based on T1's value and commits under `Fail`.
#[test]
fn read_committed_conflict_is_relative_to_the_version_read() {
    let db = db(
        TransactionIsolation::ReadCommitted,
        ConflictResolution::Fail,
    );
    seed_values(&db, &[("x", 10)]);
    let mut t2 = db.start_transaction();
    let mut t1 = db.start_transaction();
    let v1 = read_some(&mut t1, "x");
    write(&mut t1, "x", v1 + 1);
    commit(t1);
    let v2 = read_some(&mut t2, "x");
    assert_eq!(v2, 11, "RC reads the latest committed value");
    write(&mut t2, "x", v2 + 1);
    commit(t2);
    assert_eq!(committed(&db, "x"), Some(12), "no update lost");
}

/// The same late read at `RepeatableRead` still reads the snapshot (10) and must abort.
#[test]
fn repeatable_read_late_read_still_conflicts() {
    for iso in SNAPSHOT_LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        seed_values(&db, &[("x", 10)]);
        let mut t2 = db.start_transaction();
        let mut t1 = db.start_transaction();
        let v1 = read_some(&mut t1, "x");
        write(&mut t1, "x", v1 + 1);
        commit(t1);
        let v2 = read_some(&mut t2, "x");
        assert_eq!(v2, 10, "{iso:?}: snapshot read");
        write(&mut t2, "x", v2 + 1);
        let err = expect_err(t2.commit(), &format!("{iso:?}"));
        assert_conflict(&err, &ConflictKind::WriteWrite, &key("x"));
        assert_eq!(committed(&db, "x"), Some(11), "{iso:?}");
    }
}

/// Sequential increments by transactions that do not overlap never conflict.
#[test]
fn sequential_increments_all_commit() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        seed_values(&db, &[("x", 0)]);
        for _ in 0..100 {
            let mut t = db.start_transaction();
            let v = read_some(&mut t, "x");
            write(&mut t, "x", v + 1);
            commit(t);
        }
        assert_eq!(committed(&db, "x"), Some(100), "{iso:?}");
    }
}
