//! G0 (dirty write / write cycles), Hermitage `g0`.
//!
//! Two transactions blindly write the same two keys, interleaved:
//!
//! ```text
//! T1: w(x=11)
//! T2: w(x=12)
//! T1: w(y=21)
//! T1: commit
//! T2: w(y=22)
//! T2: commit
//! ```
//!
//! Every level prevents G0: the final state is either all of T1 or all of T2 (or, for
//! `Append`, both rows in the same order on both keys), never a mix such as `x=11, y=22`.
//! The writes are blind, so `ConflictResolution` decides T2's fate at every level.

use khonsu::ConflictKind;
use khonsu::prelude::*;
use khonsu_tests::*;

fn schedule(iso: TransactionIsolation, res: ConflictResolution) {
    let db = db(iso, res);
    seed_values(&db, &[("x", 10), ("y", 20)]);

    let mut t1 = db.start_transaction();
    let mut t2 = db.start_transaction();
    write(&mut t1, "x", 11);
    write(&mut t2, "x", 12);
    write(&mut t1, "y", 21);
    // Nobody sees T1's uncommitted writes (T2 must not read: that would make its writes
    // read-modify-writes, which is a different schedule).
    let mut observer = db.start_transaction();
    assert_eq!(
        read(&mut observer, "y"),
        Some(20),
        "{iso:?}/{res:?}: uncommitted y visible"
    );
    observer.rollback();
    let c1 = commit(t1);
    write(&mut t2, "y", 22);
    let r2 = t2.commit();

    let x = committed_rows(&db, "x");
    let y = committed_rows(&db, "y");
    let ctx = format!("{iso:?}/{res:?}");
    match res {
        ConflictResolution::Fail => {
            let err = expect_err(r2, &ctx);
            assert_conflict_on_any(&err, &[&ConflictKind::WriteWrite], &[&key("x"), &key("y")]);
            if let Some(ts) = err.conflict().and_then(|c| c.other_commit_ts) {
                assert_eq!(
                    ts, c1.commit_ts,
                    "{ctx}: other_commit_ts should name T1's commit"
                );
            }
            assert_eq!((x, y), (Some(vec![11]), Some(vec![21])), "{ctx}");
        }
        ConflictResolution::Replace => {
            let c2 = ok(r2, &ctx);
            assert!(
                c2.commit_ts > c1.commit_ts,
                "{ctx}: commit ts must increase"
            );
            assert_same_keys(&c2.replaced, &[key("x"), key("y")], &ctx);
            assert!(
                c2.ignored.is_empty() && c2.appended.is_empty(),
                "{ctx}: {c2:?}"
            );
            assert_eq!((x, y), (Some(vec![12]), Some(vec![22])), "{ctx}");
        }
        ConflictResolution::Ignore => {
            let c2 = ok(r2, &ctx);
            assert_same_keys(&c2.ignored, &[key("x"), key("y")], &ctx);
            assert!(
                c2.replaced.is_empty() && c2.appended.is_empty(),
                "{ctx}: {c2:?}"
            );
            assert_eq!((x, y), (Some(vec![11]), Some(vec![21])), "{ctx}");
        }
        ConflictResolution::Append => {
            let c2 = ok(r2, &ctx);
            assert_same_keys(&c2.appended, &[key("x"), key("y")], &ctx);
            assert!(
                c2.replaced.is_empty() && c2.ignored.is_empty(),
                "{ctx}: {c2:?}"
            );
            assert_eq!((x, y), (Some(vec![11, 12]), Some(vec![21, 22])), "{ctx}");
        }
    }
}

#[test]
fn g0_read_committed() {
    for res in RESOLUTIONS {
        schedule(TransactionIsolation::ReadCommitted, res);
    }
}

#[test]
fn g0_repeatable_read() {
    for res in RESOLUTIONS {
        schedule(TransactionIsolation::RepeatableRead, res);
    }
}

#[test]
fn g0_serializable() {
    for res in RESOLUTIONS {
        schedule(TransactionIsolation::Serializable, res);
    }
}

/// The same schedule in the other commit order: T2 commits first, T1 second; the loser is
/// always the second committer, whichever transaction started first.
#[test]
fn g0_second_committer_loses_with_fail() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        seed_values(&db, &[("x", 10), ("y", 20)]);
        let mut t1 = db.start_transaction();
        let mut t2 = db.start_transaction();
        write(&mut t1, "x", 11);
        write(&mut t2, "x", 12);
        write(&mut t1, "y", 21);
        write(&mut t2, "y", 22);
        commit(t2);
        let err = expect_err(t1.commit(), &format!("{iso:?}"));
        assert_conflict_on_any(&err, &[&ConflictKind::WriteWrite], &[&key("x"), &key("y")]);
        assert_eq!(committed(&db, "x"), Some(12), "{iso:?}");
        assert_eq!(committed(&db, "y"), Some(22), "{iso:?}");
    }
}

/// Disjoint blind writes never conflict, at any level and with any resolution.
#[test]
fn disjoint_blind_writes_both_commit() {
    for iso in LEVELS {
        for res in RESOLUTIONS {
            let db = db(iso, res);
            let mut t1 = db.start_transaction();
            let mut t2 = db.start_transaction();
            write(&mut t1, "x", 1);
            write(&mut t2, "y", 2);
            let c1 = commit(t1);
            let c2 = commit(t2);
            for c in [&c1, &c2] {
                assert!(
                    c.ignored.is_empty() && c.appended.is_empty() && c.replaced.is_empty(),
                    "{iso:?}/{res:?}: {c:?}"
                );
            }
            assert_eq!(committed(&db, "x"), Some(1));
            assert_eq!(committed(&db, "y"), Some(2));
        }
    }
}
