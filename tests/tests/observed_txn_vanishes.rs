//! OTV (observed transaction vanishes), Hermitage `otv`.
//!
//! ```text
//! T1: w(x=11) w(y=19)
//! T2: w(x=12)
//! T1: commit
//! T3: r(x) r(y) -> 11, 19
//! T2: w(y=18)
//! T3: r(x) r(y) -> 11, 19
//! T2: commit               (Fail: aborts; Replace/Ignore/Append: commits)
//! T3: r(x) r(y) -> RepeatableRead/Serializable: 11, 19
//!                  ReadCommitted: all of T2 or none of it, never a mix
//! T3: commit
//! ```
//!
//! Once T3 has observed T1, T1 never vanishes from T3's view, and T3 never sees part of T2.

use khonsu::ConflictKind;
use khonsu::prelude::*;
use khonsu_tests::*;

fn read_xy(t: &mut Transaction) -> (Option<Vec<i64>>, Option<Vec<i64>>) {
    (read_rows(t, "x"), read_rows(t, "y"))
}

fn schedule(iso: TransactionIsolation, res: ConflictResolution) {
    let ctx = format!("{iso:?}/{res:?}");
    let db = db(iso, res);
    seed_values(&db, &[("x", 10), ("y", 20)]);

    let mut t1 = db.start_transaction();
    let mut t2 = db.start_transaction();
    write(&mut t1, "x", 11);
    write(&mut t1, "y", 19);
    write(&mut t2, "x", 12);
    commit(t1);

    let mut t3 = db.start_transaction();
    let t1_state = (Some(vec![11]), Some(vec![19]));
    assert_eq!(read_xy(&mut t3), t1_state, "{ctx}");
    write(&mut t2, "y", 18);
    assert_eq!(read_xy(&mut t3), t1_state, "{ctx}");
    let r2 = t2.commit();

    // The state T2 produces if it commits, per resolution.
    let t2_state = match res {
        ConflictResolution::Fail => {
            let err = expect_err(r2, &ctx);
            assert_conflict_on_any(&err, &[&ConflictKind::WriteWrite], &[&key("x"), &key("y")]);
            t1_state.clone()
        }
        ConflictResolution::Replace => {
            ok(r2, &ctx);
            (Some(vec![12]), Some(vec![18]))
        }
        ConflictResolution::Ignore => {
            ok(r2, &ctx);
            t1_state.clone()
        }
        ConflictResolution::Append => {
            ok(r2, &ctx);
            (Some(vec![11, 12]), Some(vec![19, 18]))
        }
    };

    let seen = read_xy(&mut t3);
    if iso == TransactionIsolation::ReadCommitted {
        assert_eq!(
            seen, t2_state,
            "{ctx}: RC sees the latest committed state, atomically"
        );
    } else {
        assert_eq!(seen, t1_state, "{ctx}: snapshot must not change");
    }
    let c3 = commit(t3);
    assert!(c3.read_only, "{ctx}");
    assert_eq!(read_xy(&mut db.start_transaction()), t2_state, "{ctx}");
}

#[test]
fn otv_read_committed() {
    for res in RESOLUTIONS {
        schedule(TransactionIsolation::ReadCommitted, res);
    }
}

#[test]
fn otv_repeatable_read() {
    for res in RESOLUTIONS {
        schedule(TransactionIsolation::RepeatableRead, res);
    }
}

#[test]
fn otv_serializable() {
    for res in RESOLUTIONS {
        schedule(TransactionIsolation::Serializable, res);
    }
}
