//! G2 (anti-dependency cycles through predicates, "phantoms"), Hermitage `g2` and `g2-two-edges`,
//! with predicates expressed as `scan` / `scan_prefix`.
//!
//! ```text
//! T1: scan(row/*) -> {1, 2}
//! T2: scan(row/*) -> {1, 2}
//! T1: insert row/3
//! T2: insert row/4
//! T1: commit
//! T2: commit -> Serializable: aborts (Phantom: row/3 appeared in its scanned range)
//!               RepeatableRead, ReadCommitted: commits
//! ```
//!
//! The remaining tests pin the precision of range tracking: a change inside a scanned range
//! (insert, update, delete) aborts a Serializable writer, a change just outside (respecting
//! inclusive/exclusive bounds and prefix ends) does not, and read-only scanners never abort.

use std::ops::Bound;

use khonsu::prelude::*;
use khonsu_tests::*;

/// Scan bounds.
type Bounds = (Bound<Key>, Bound<Key>);

fn g2(iso: TransactionIsolation, prefix: bool) {
    let ctx = format!("{iso:?} prefix={prefix}");
    let db = db(iso, ConflictResolution::Fail);
    seed_values(&db, &[("row/1", 10), ("row/2", 20)]);

    let pred = |t: &mut Transaction| {
        if prefix {
            scan_prefix(t, "row/")
        } else {
            scan(t, key("row/")..key("row0"))
        }
    };
    let mut t1 = db.start_transaction();
    let mut t2 = db.start_transaction();
    let sum1: i64 = pred(&mut t1).iter().map(|(_, v)| v).sum();
    let sum2: i64 = pred(&mut t2).iter().map(|(_, v)| v).sum();
    assert_eq!((sum1, sum2), (30, 30), "{ctx}");
    write(&mut t1, "row/3", 30);
    write(&mut t2, "row/4", 42);
    // Own insert is visible to the own predicate, the other's is not.
    assert_eq!(pred(&mut t2).len(), 3, "{ctx}");
    commit(t1);
    let r2 = t2.commit();
    if iso == TransactionIsolation::Serializable {
        let err = expect_err(r2, &ctx);
        assert_phantom(&err, &key("row/3"));
        assert_eq!(committed(&db, "row/4"), None, "{ctx}");
    } else {
        ok(r2, &ctx);
        assert_eq!(committed(&db, "row/4"), Some(42), "{ctx}");
    }
    assert_eq!(committed(&db, "row/3"), Some(30), "{ctx}");
}

#[test]
fn g2_read_committed() {
    g2(TransactionIsolation::ReadCommitted, false);
    g2(TransactionIsolation::ReadCommitted, true);
}

#[test]
fn g2_repeatable_read() {
    g2(TransactionIsolation::RepeatableRead, false);
    g2(TransactionIsolation::RepeatableRead, true);
}

#[test]
fn g2_serializable() {
    g2(TransactionIsolation::Serializable, false);
    g2(TransactionIsolation::Serializable, true);
}

#[derive(Clone, Copy, Debug)]
enum Change {
    Insert,
    Update,
    Delete,
}

/// A Serializable writer T1 scans `[b, d)`, a concurrent commit changes `target`, T1 then writes
/// `z` (outside everything) and commits. Returns T1's commit result. The concurrent transaction
/// also reads `z` first, so a phantom puts T1 in a cycle (T2 →rw T1 →rw T2): precise
/// `Serializable` must abort it too, not only order T1 before T2.
fn change_during_scan(
    range: Bounds,
    target: &str,
    change: Change,
    iso: TransactionIsolation,
) -> Result<CommitInfo, khonsu::Error> {
    let db = db(iso, ConflictResolution::Fail);
    seed_values(&db, &[("a", 1), ("b", 2), ("c", 3), ("d", 4), ("p/1", 5)]);
    let mut t1 = db.start_transaction();
    ok(t1.scan(range), "scan");
    let mut t2 = db.start_transaction();
    assert_eq!(read(&mut t2, "z"), None);
    match change {
        Change::Insert | Change::Update => write(&mut t2, target, 100),
        Change::Delete => delete(&mut t2, target),
    }
    commit(t2);
    write(&mut t1, "z", 26);
    t1.commit()
}

fn half_open(a: &str, b: &str) -> Bounds {
    (Bound::Included(key(a)), Bound::Excluded(key(b)))
}

#[test]
fn serializable_insert_update_delete_in_range_abort() {
    let iso = TransactionIsolation::Serializable;
    for (target, change) in [
        ("bb", Change::Insert),
        ("b", Change::Update),
        ("c", Change::Update),
        ("b", Change::Delete),
        ("c", Change::Delete),
    ] {
        let r = change_during_scan(half_open("b", "d"), target, change, iso);
        let err = expect_err(r, &format!("{change:?} {target}"));
        assert_phantom(&err, &key(target));
    }
}

#[test]
fn repeatable_read_and_read_committed_ignore_phantoms() {
    for iso in [
        TransactionIsolation::ReadCommitted,
        TransactionIsolation::RepeatableRead,
    ] {
        for (target, change) in [
            ("bb", Change::Insert),
            ("b", Change::Update),
            ("c", Change::Delete),
        ] {
            let r = change_during_scan(half_open("b", "d"), target, change, iso);
            ok(r, &format!("{iso:?} {change:?} {target}"));
        }
    }
}

/// Changes just outside the scanned range are not phantoms (no false aborts).
#[test]
fn serializable_changes_outside_range_do_not_abort() {
    let iso = TransactionIsolation::Serializable;
    let cases: Vec<(Bounds, &str, Change)> = vec![
        (half_open("b", "d"), "d", Change::Update), // excluded end
        (half_open("b", "d"), "a", Change::Update), // before start
        (half_open("b", "d"), "dd", Change::Insert), // after end
        (half_open("b", "d"), "d", Change::Delete),
        (
            (Bound::Excluded(key("b")), Bound::Included(key("c"))),
            "b",
            Change::Update,
        ), // excluded start
        (
            (Bound::Excluded(key("b")), Bound::Included(key("c"))),
            "ca",
            Change::Insert,
        ),
        (
            (Bound::Unbounded, Bound::Excluded(key("b"))),
            "c",
            Change::Update,
        ),
        (
            (Bound::Included(key("c")), Bound::Unbounded),
            "bz",
            Change::Insert,
        ),
    ];
    for (range, target, change) in cases {
        let what = format!("{range:?} {change:?} {target}");
        ok(change_during_scan(range, target, change, iso), &what);
    }
}

/// Changes exactly on an included bound are phantoms.
#[test]
fn serializable_changes_on_included_bounds_abort() {
    let iso = TransactionIsolation::Serializable;
    let cases: Vec<(Bounds, &str, Change)> = vec![
        (
            (Bound::Included(key("b")), Bound::Included(key("d"))),
            "d",
            Change::Update,
        ),
        (
            (Bound::Included(key("b")), Bound::Included(key("d"))),
            "b",
            Change::Delete,
        ),
        (
            (Bound::Unbounded, Bound::Excluded(key("b"))),
            "a",
            Change::Update,
        ),
        (
            (Bound::Included(key("c")), Bound::Unbounded),
            "zz",
            Change::Insert,
        ),
        ((Bound::Unbounded, Bound::Unbounded), "0", Change::Insert),
    ];
    for (range, target, change) in cases {
        let what = format!("{range:?} {change:?} {target}");
        let err = expect_err(change_during_scan(range, target, change, iso), &what);
        assert_phantom(&err, &key(target));
    }
}

/// `scan_prefix("p/")`: keys `p`, `p0` and `o/` are outside the prefix, `p/` and `p/\xff` inside.
#[test]
fn serializable_scan_prefix_precision() {
    for (target, expect_abort) in [
        ("p", false),
        ("p0", false),
        ("o/", false),
        ("p/", true),
        ("p/2", true),
        ("p/\u{7f}", true),
    ] {
        let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
        seed_values(&db, &[("p/1", 1)]);
        let mut t1 = db.start_transaction();
        assert_eq!(scan_prefix(&mut t1, "p/"), vec![(key("p/1"), 1)]);
        let mut t2 = db.start_transaction();
        // T2 reads what T1 writes: a phantom closes the cycle T1 →rw T2 →rw T1.
        assert_eq!(read(&mut t2, "z"), None);
        write(&mut t2, target, 2);
        commit(t2);
        write(&mut t1, "z", 1);
        let r = t1.commit();
        if expect_abort {
            assert_phantom(&expect_err(r, target), &key(target));
        } else {
            ok(r, target);
        }
    }
}

/// An empty scan result is still a predicate read: inserting into the empty range is a phantom.
#[test]
fn serializable_empty_scan_result_is_tracked() {
    let db = conservative_db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    seed_values(&db, &[("a", 1)]);
    let mut t1 = db.start_transaction();
    assert!(scan(&mut t1, key("m")..key("n")).is_empty());
    assert!(scan_prefix(&mut t1, "q/").is_empty());
    let mut t2 = db.start_transaction();
    write(&mut t2, "m1", 1);
    commit(t2);
    write(&mut t1, "z", 1);
    assert_phantom(&expect_err(t1.commit(), "T1"), &key("m1"));
}

/// Read-only scanners never abort, however much their ranges changed.
#[test]
fn read_only_scanner_never_aborts() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        seed_values(&db, &[("b", 2)]);
        let mut t1 = db.start_transaction();
        let first = scan(&mut t1, ..);
        let mut t2 = db.start_transaction();
        write(&mut t2, "a", 1);
        delete(&mut t2, "b");
        commit(t2);
        let second = scan(&mut t1, ..);
        if iso == TransactionIsolation::ReadCommitted {
            assert_eq!(second, vec![(key("a"), 1)], "{iso:?}");
        } else {
            assert_eq!(
                second, first,
                "{iso:?}: RR/Serializable scans are repeatable"
            );
        }
        let c = commit(t1);
        assert!(c.read_only, "{iso:?}");
    }
}
