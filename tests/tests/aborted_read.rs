//! G1a (aborted reads), Hermitage `g1a`: a transaction never sees a value written by a
//! transaction that aborts, at any level — neither before the abort nor after it, neither by a
//! point read nor by a scan. Aborts by `rollback`, by drop, and by a failed commit (conflict) are
//! all covered: a commit that fails validation must not leave any of its other writes behind.

use khonsu::ConflictKind;
use khonsu::prelude::*;
use khonsu_tests::*;

/// ```text
/// T1: w(x=101)
/// T2: r(x) -> 10
/// T1: abort
/// T2: r(x) -> 10
/// T2: commit
/// ```
fn schedule(iso: TransactionIsolation, abort_by_drop: bool) {
    let db = db(iso, ConflictResolution::Fail);
    seed_values(&db, &[("x", 10), ("y", 20)]);

    let mut t1 = db.start_transaction();
    let mut t2 = db.start_transaction();
    write(&mut t1, "x", 101);
    write(&mut t1, "z", 301);
    assert_eq!(
        read(&mut t2, "x"),
        Some(10),
        "{iso:?}: uncommitted write visible"
    );
    assert_eq!(
        read(&mut t2, "z"),
        None,
        "{iso:?}: uncommitted insert visible"
    );
    if abort_by_drop {
        drop(t1);
    } else {
        t1.rollback();
    }
    assert_eq!(
        read(&mut t2, "x"),
        Some(10),
        "{iso:?}: aborted write visible"
    );
    assert_eq!(
        scan(&mut t2, ..),
        vec![(key("x"), 10), (key("y"), 20)],
        "{iso:?}: aborted write visible to scan"
    );
    let c2 = commit(t2);
    assert!(c2.read_only, "{iso:?}: T2 only read");

    assert_eq!(
        committed_all(&db),
        vec![(key("x"), 10), (key("y"), 20)],
        "{iso:?}"
    );
}

#[test]
fn g1a_rollback_read_committed() {
    schedule(TransactionIsolation::ReadCommitted, false);
}

#[test]
fn g1a_rollback_repeatable_read() {
    schedule(TransactionIsolation::RepeatableRead, false);
}

#[test]
fn g1a_rollback_serializable() {
    schedule(TransactionIsolation::Serializable, false);
}

#[test]
fn g1a_drop_all_levels() {
    for iso in LEVELS {
        schedule(iso, true);
    }
}

/// T1 writes `a` and `z`; a concurrent commit to `z` makes T1's commit fail. T1's write to `a`
/// (which sorts before `z` and may be handled first by the commit) must not become visible.
#[test]
fn g1a_conflict_abort_leaves_nothing_behind() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        seed_values(&db, &[("a", 1), ("z", 26)]);
        let mut reader = db.start_transaction();
        let mut t1 = db.start_transaction();
        write(&mut t1, "a", 100);
        write(&mut t1, "m", 130);
        write(&mut t1, "z", 260);
        let mut other = db.start_transaction();
        write(&mut other, "z", 999);
        commit(other);

        let err = expect_err(t1.commit(), &format!("{iso:?}"));
        assert_conflict(&err, &ConflictKind::WriteWrite, &key("z"));

        assert_eq!(read(&mut reader, "a"), Some(1), "{iso:?}");
        assert_eq!(read(&mut reader, "m"), None, "{iso:?}");
        assert_eq!(
            committed_all(&db),
            vec![(key("a"), 1), (key("z"), 999)],
            "{iso:?}: nothing of the aborted transaction may be visible"
        );
        reader.rollback();
    }
}

/// Aborted deletes are not visible either.
#[test]
fn g1a_aborted_delete_is_not_visible() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        seed_values(&db, &[("x", 10)]);
        let mut t1 = db.start_transaction();
        let mut t2 = db.start_transaction();
        delete(&mut t1, "x");
        assert_eq!(read(&mut t2, "x"), Some(10), "{iso:?}");
        t1.rollback();
        assert_eq!(read(&mut t2, "x"), Some(10), "{iso:?}");
        commit(t2);
        assert_eq!(committed(&db, "x"), Some(10), "{iso:?}");
    }
}
