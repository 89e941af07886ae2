//! PMP (predicate-many-preceders), Hermitage `pmp` and `pmp-write`, with the predicate expressed
//! as a `scan` over a key range or a `scan_prefix`.
//!
//! Read predicate:
//!
//! ```text
//! T1: scan(row/*) -> {1: 10, 2: 20}
//! T2: w(row/3 = 30)
//! T2: commit
//! T1: scan(row/*) -> ReadCommitted: {1, 2, 3}; RepeatableRead/Serializable: {1, 2}
//! T1: commit                 (read-only: never aborts)
//! ```
//!
//! Write predicate ("delete where value = 20" after "update set value = value + 10"):
//!
//! ```text
//! T1: scan(row/*), w(row/1 = 20), w(row/2 = 30)
//! T2: scan(row/*) -> {10, 20}, delete(row/2)
//! T1: commit
//! T2: commit -> aborts at every level (row/2 was rewritten after T2 saw it)
//! ```

use std::ops::Bound;

use khonsu::ConflictKind;
use khonsu::prelude::*;
use khonsu_tests::*;

#[derive(Clone, Copy, Debug)]
enum Predicate {
    Prefix,
    Range,
    RangeInclusive,
}

fn predicate_scan(t: &mut Transaction, p: Predicate) -> Vec<(Key, i64)> {
    match p {
        Predicate::Prefix => scan_prefix(t, "row/"),
        Predicate::Range => scan(t, key("row/")..key("row0")),
        Predicate::RangeInclusive => scan(
            t,
            (Bound::Excluded(key("row")), Bound::Included(key("row/9"))),
        ),
    }
}

const PREDICATES: [Predicate; 3] = [
    Predicate::Prefix,
    Predicate::Range,
    Predicate::RangeInclusive,
];

fn setup(iso: TransactionIsolation) -> Khonsu {
    let db = db(iso, ConflictResolution::Fail);
    // Keys around the predicate that must never match it.
    seed_values(
        &db,
        &[("row", -1), ("row/1", 10), ("row/2", 20), ("row0", -2)],
    );
    db
}

fn read_predicate(iso: TransactionIsolation, p: Predicate) {
    let ctx = format!("{iso:?}/{p:?}");
    let db = setup(iso);
    let mut t1 = db.start_transaction();
    let before = vec![(key("row/1"), 10), (key("row/2"), 20)];
    assert_eq!(predicate_scan(&mut t1, p), before, "{ctx}");

    let mut t2 = db.start_transaction();
    write(&mut t2, "row/3", 30);
    commit(t2);

    let after = predicate_scan(&mut t1, p);
    if iso == TransactionIsolation::ReadCommitted {
        let mut expected = before.clone();
        expected.push((key("row/3"), 30));
        assert_eq!(after, expected, "{ctx}: RC sees the newly committed row");
    } else {
        assert_eq!(after, before, "{ctx}: snapshot must not grow");
    }
    let c1 = commit(t1);
    assert!(c1.read_only, "{ctx}");
}

#[test]
fn pmp_read_predicate_read_committed() {
    for p in PREDICATES {
        read_predicate(TransactionIsolation::ReadCommitted, p);
    }
}

#[test]
fn pmp_read_predicate_repeatable_read() {
    for p in PREDICATES {
        read_predicate(TransactionIsolation::RepeatableRead, p);
    }
}

#[test]
fn pmp_read_predicate_serializable() {
    for p in PREDICATES {
        read_predicate(TransactionIsolation::Serializable, p);
    }
}

fn write_predicate(iso: TransactionIsolation, p: Predicate) {
    let ctx = format!("{iso:?}/{p:?}");
    let db = setup(iso);
    let mut t1 = db.start_transaction();
    let mut t2 = db.start_transaction();

    // T1: update set value = value + 10 where <predicate>
    for (k, v) in predicate_scan(&mut t1, p) {
        write(&mut t1, k, v + 10);
    }
    // T2: delete where <predicate> and value = 20
    let seen = predicate_scan(&mut t2, p);
    assert_eq!(seen, vec![(key("row/1"), 10), (key("row/2"), 20)], "{ctx}");
    for (k, v) in seen {
        if v == 20 {
            delete(&mut t2, k);
        }
    }
    commit(t1);
    let err = expect_err(t2.commit(), &ctx);
    if iso == TransactionIsolation::Serializable {
        // Two equally valid reasons: the deleted key was rewritten, and the scanned range changed.
        assert_conflict_on_any(
            &err,
            &[&ConflictKind::WriteWrite, &ConflictKind::Phantom],
            &[&key("row/2")],
        );
    } else {
        assert_conflict(&err, &ConflictKind::WriteWrite, &key("row/2"));
    }
    assert_eq!(
        committed_all(&db),
        vec![
            (key("row"), -1),
            (key("row/1"), 20),
            (key("row/2"), 30),
            (key("row0"), -2)
        ],
        "{ctx}"
    );
}

#[test]
fn pmp_write_predicate_read_committed() {
    for p in PREDICATES {
        write_predicate(TransactionIsolation::ReadCommitted, p);
    }
}

#[test]
fn pmp_write_predicate_repeatable_read() {
    for p in PREDICATES {
        write_predicate(TransactionIsolation::RepeatableRead, p);
    }
}

#[test]
fn pmp_write_predicate_serializable() {
    for p in PREDICATES {
        write_predicate(TransactionIsolation::Serializable, p);
    }
}

/// At `ReadCommitted` the write predicate is evaluated on the latest committed state: a T2 that
/// scans after T1's commit sees 20 -> 30 on row/2, so "delete where value = 20" deletes row/1
/// (now 20) and commits: the version it read is the latest, so there is no write-write conflict.
#[test]
fn pmp_write_predicate_read_committed_rescans_latest() {
    for p in PREDICATES {
        let db = setup(TransactionIsolation::ReadCommitted);
        let mut t1 = db.start_transaction();
        let mut t2 = db.start_transaction();
        for (k, v) in predicate_scan(&mut t1, p) {
            write(&mut t1, k, v + 10);
        }
        commit(t1);
        for (k, v) in predicate_scan(&mut t2, p) {
            // Re-read the matching row by key, so the delete is a read-modify-write of the
            // version T2 saw (no conflict at RC), whatever a scan counts as.
            if v == 20 && read(&mut t2, &k) == Some(20) {
                delete(&mut t2, k);
            }
        }
        commit(t2);
        assert_eq!(
            committed_all(&db),
            vec![(key("row"), -1), (key("row/2"), 30), (key("row0"), -2)],
            "{p:?}"
        );
    }
}
