//! G-single (read skew / single anti-dependency cycles), Hermitage `g-single`,
//! `g-single-dependencies` and `g-single-write-1`.
//!
//! ```text
//! T1: r(x) -> 10
//! T2: r(x) r(y); w(x=12) w(y=18); commit      (moves 2 from y to x)
//! T1: r(y) -> ReadCommitted: 18 (skew: 10 + 18 != 30); RepeatableRead/Serializable: 20
//! T1: commit (read-only, never aborts)
//! ```

use khonsu::ConflictKind;
use khonsu::prelude::*;
use khonsu_tests::*;

fn transfer_commit(db: &Khonsu) {
    let mut t2 = db.start_transaction();
    let x = read_some(&mut t2, "x");
    let y = read_some(&mut t2, "y");
    write(&mut t2, "x", x + 2);
    write(&mut t2, "y", y - 2);
    commit(t2);
}

fn schedule(iso: TransactionIsolation, use_scan: bool) {
    let ctx = format!("{iso:?} scan={use_scan}");
    let db = db(iso, ConflictResolution::Fail);
    seed_values(&db, &[("x", 10), ("y", 20)]);

    let mut t1 = db.start_transaction();
    assert_eq!(read(&mut t1, "x"), Some(10), "{ctx}");
    transfer_commit(&db);
    let y = if use_scan {
        scan(&mut t1, key("y")..).first().map(|(_, v)| *v)
    } else {
        read(&mut t1, "y")
    };
    if iso == TransactionIsolation::ReadCommitted {
        assert_eq!(y, Some(18), "{ctx}: RC reads the latest committed y");
    } else {
        assert_eq!(y, Some(20), "{ctx}: snapshot read, x + y == 30");
        // And a full re-read is still the consistent snapshot.
        assert_eq!(
            scan(&mut t1, ..),
            vec![(key("x"), 10), (key("y"), 20)],
            "{ctx}"
        );
    }
    let c1 = commit(t1);
    assert!(c1.read_only, "{ctx}");
    assert_eq!(
        committed_all(&db),
        vec![(key("x"), 12), (key("y"), 18)],
        "{ctx}"
    );
}

#[test]
fn g_single_read_committed_allows_read_skew() {
    schedule(TransactionIsolation::ReadCommitted, false);
    schedule(TransactionIsolation::ReadCommitted, true);
}

#[test]
fn g_single_repeatable_read() {
    schedule(TransactionIsolation::RepeatableRead, false);
    schedule(TransactionIsolation::RepeatableRead, true);
}

#[test]
fn g_single_serializable() {
    schedule(TransactionIsolation::Serializable, false);
    schedule(TransactionIsolation::Serializable, true);
}

/// `g-single-write-1`: after T2's transfer commits, T1 evaluates "delete where value = 20" with
/// a scan. At `ReadCommitted` T1 sees y = 18 and deletes nothing; at `RepeatableRead` and
/// Serializable it sees the snapshot y = 20, deletes y, and must abort because y was rewritten.
fn write_after_skew(iso: TransactionIsolation) {
    let ctx = format!("{iso:?}");
    let db = db(iso, ConflictResolution::Fail);
    seed_values(&db, &[("x", 10), ("y", 20)]);

    let mut t1 = db.start_transaction();
    assert_eq!(read(&mut t1, "x"), Some(10), "{ctx}");
    transfer_commit(&db);
    // "delete from test where value = 20"
    for (k, v) in scan(&mut t1, ..) {
        if v == 20 {
            delete(&mut t1, k);
        }
    }
    let r1 = t1.commit();
    match iso {
        TransactionIsolation::ReadCommitted => {
            let c1 = ok(r1, &ctx);
            assert!(c1.read_only, "{ctx}: nothing matched, nothing written");
        }
        TransactionIsolation::RepeatableRead => {
            let err = expect_err(r1, &ctx);
            assert_conflict(&err, &ConflictKind::WriteWrite, &key("y"));
        }
        TransactionIsolation::Serializable => {
            let err = expect_err(r1, &ctx);
            // Stale point read of x, rewritten scanned range, rewritten deleted key: all valid.
            assert_conflict_on_any(
                &err,
                &[
                    &ConflictKind::WriteWrite,
                    &ConflictKind::StaleRead,
                    &ConflictKind::Phantom,
                ],
                &[&key("x"), &key("y")],
            );
        }
    }
    assert_eq!(
        committed_all(&db),
        vec![(key("x"), 12), (key("y"), 18)],
        "{ctx}"
    );
}

#[test]
fn g_single_write_read_committed() {
    write_after_skew(TransactionIsolation::ReadCommitted);
}

#[test]
fn g_single_write_repeatable_read() {
    write_after_skew(TransactionIsolation::RepeatableRead);
}

#[test]
fn g_single_write_serializable() {
    write_after_skew(TransactionIsolation::Serializable);
}

/// Serializable: a writer whose point read went stale aborts with `StaleRead` even though it
/// writes an unrelated key (conservative validation, serial order = commit order).
#[test]
fn serializable_writer_with_stale_read_aborts() {
    let db = conservative_db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    seed_values(&db, &[("x", 10), ("y", 20)]);
    let mut t1 = db.start_transaction();
    assert_eq!(read(&mut t1, "x"), Some(10));
    transfer_commit(&db);
    write(&mut t1, "z", 30);
    let err = expect_err(t1.commit(), "stale writer");
    assert_conflict_on_any(&err, &[&ConflictKind::StaleRead], &[&key("x")]);
    assert_eq!(committed(&db, "z"), None);
}

/// ... while at `RepeatableRead` the same writer commits (no write-write conflict on z).
#[test]
fn repeatable_read_writer_with_stale_read_commits() {
    let db = db(
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Fail,
    );
    seed_values(&db, &[("x", 10), ("y", 20)]);
    let mut t1 = db.start_transaction();
    assert_eq!(read(&mut t1, "x"), Some(10));
    transfer_commit(&db);
    write(&mut t1, "z", 30);
    commit(t1);
    assert_eq!(committed(&db, "z"), Some(30));
}
