//! G1b (intermediate reads), Hermitage `g1b`: a transaction never sees a value that another
//! transaction overwrote before committing; only final committed values are visible.
//!
//! ```text
//! T1: w(x=101)
//! T2: r(x) -> 10
//! T1: w(x=11)
//! T1: commit
//! T2: r(x) -> 11 at ReadCommitted, 10 at RepeatableRead/Serializable (never 101)
//! T2: commit
//! ```

use khonsu::prelude::*;
use khonsu_tests::*;

fn schedule(iso: TransactionIsolation, use_scan: bool) {
    let db = db(iso, ConflictResolution::Fail);
    seed_values(&db, &[("x", 10), ("y", 20)]);

    let mut t1 = db.start_transaction();
    let mut t2 = db.start_transaction();
    write(&mut t1, "x", 101);
    let read_x = |t: &mut Transaction| {
        if use_scan {
            scan_prefix(t, "x").first().map(|(_, v)| *v)
        } else {
            read(t, "x")
        }
    };
    assert_eq!(read_x(&mut t2), Some(10), "{iso:?}");
    write(&mut t1, "x", 11);
    // T1 sees its own latest write, not the intermediate one.
    assert_eq!(read(&mut t1, "x"), Some(11), "{iso:?}");
    commit(t1);

    let expected = if iso == TransactionIsolation::ReadCommitted {
        11
    } else {
        10
    };
    assert_eq!(
        read_x(&mut t2),
        Some(expected),
        "{iso:?} (scan: {use_scan})"
    );
    commit(t2);
    assert_eq!(committed(&db, "x"), Some(11), "{iso:?}");
}

#[test]
fn g1b_read_committed() {
    schedule(TransactionIsolation::ReadCommitted, false);
    schedule(TransactionIsolation::ReadCommitted, true);
}

#[test]
fn g1b_repeatable_read() {
    schedule(TransactionIsolation::RepeatableRead, false);
    schedule(TransactionIsolation::RepeatableRead, true);
}

#[test]
fn g1b_serializable() {
    schedule(TransactionIsolation::Serializable, false);
    schedule(TransactionIsolation::Serializable, true);
}

/// Many intermediate values written inside one transaction: readers of the committed state see
/// only the last one.
#[test]
fn g1b_only_final_value_of_many_overwrites_is_committed() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        let mut t1 = db.start_transaction();
        for v in 0..50 {
            write(&mut t1, "x", v);
        }
        let mut t2 = db.start_transaction();
        assert_eq!(read(&mut t2, "x"), None, "{iso:?}");
        commit(t1);
        let mut t3 = db.start_transaction();
        assert_eq!(read(&mut t3, "x"), Some(49), "{iso:?}");
        assert_eq!(scan(&mut t3, ..), vec![(key("x"), 49)], "{iso:?}");
        t3.rollback();
        t2.rollback();
    }
}
