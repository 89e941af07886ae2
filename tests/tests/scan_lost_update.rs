//! P4 through `scan`: a key seen by a scan and then written is a read-modify-write, exactly
//! like a key read with `read`. At `RepeatableRead` and `Serializable` a concurrent commit to
//! it aborts the writer whatever the resolution; at `ReadCommitted` the conflict is relative to
//! the timestamp the scan read at.

use khonsu::prelude::*;
use khonsu_tests::*;

/// T1 scans `acct/` (sees 100), T2 read-modify-writes acct/1 to 150 and commits, T1 writes
/// 110 to acct/1 (based on what its scan saw) and commits.
fn schedule(
    iso: TransactionIsolation,
    res: ConflictResolution,
) -> (Result<CommitInfo, Error>, Khonsu) {
    let db = db(iso, res);
    seed_values(&db, &[("acct/1", 100)]);
    let mut t1 = db.start_transaction();
    assert_eq!(scan_prefix(&mut t1, "acct/"), vec![(key("acct/1"), 100)]);
    let mut t2 = db.start_transaction();
    let v = read_some(&mut t2, "acct/1");
    write(&mut t2, "acct/1", v + 50);
    commit(t2);
    write(&mut t1, "acct/1", 110);
    (t1.commit(), db)
}

#[test]
fn scanned_then_written_aborts_at_snapshot_levels_whatever_the_resolution() {
    for iso in SNAPSHOT_LEVELS {
        for res in RESOLUTIONS {
            let ctx = format!("{iso:?}/{res:?}");
            let (result, db) = schedule(iso, res);
            let err = expect_err(result, &ctx);
            assert_conflict(&err, &ConflictKind::WriteWrite, &key("acct/1"));
            assert_eq!(
                committed(&db, "acct/1"),
                Some(150),
                "{ctx}: T2's update survives"
            );
        }
    }
}

#[test]
fn read_committed_scan_then_write_follows_the_resolution() {
    let (result, db) = schedule(
        TransactionIsolation::ReadCommitted,
        ConflictResolution::Fail,
    );
    let err = expect_err(result, "RC/Fail");
    assert_conflict(&err, &ConflictKind::WriteWrite, &key("acct/1"));
    assert_eq!(committed(&db, "acct/1"), Some(150));

    let (result, db) = schedule(
        TransactionIsolation::ReadCommitted,
        ConflictResolution::Replace,
    );
    let info = ok(result, "RC/Replace");
    assert_eq!(
        info.replaced,
        vec![key("acct/1")],
        "the lost update is reported"
    );
    assert_eq!(committed(&db, "acct/1"), Some(110));
}

/// At `ReadCommitted` the base of a scanned key is the scan's own timestamp: a scan made after
/// the concurrent commit saw it, so writing the key afterwards is no conflict.
#[test]
fn read_committed_scan_after_the_concurrent_commit_is_no_conflict() {
    let db = db(
        TransactionIsolation::ReadCommitted,
        ConflictResolution::Fail,
    );
    seed_values(&db, &[("acct/1", 100)]);
    let mut t1 = db.start_transaction();
    let mut t2 = db.start_transaction();
    write(&mut t2, "acct/1", 150);
    commit(t2);
    assert_eq!(scan_prefix(&mut t1, "acct/"), vec![(key("acct/1"), 150)]);
    write(&mut t1, "acct/1", 160);
    let info = commit(t1);
    assert!(info.replaced.is_empty(), "{info:?}");
    assert_eq!(committed(&db, "acct/1"), Some(160));
}

/// A scan made *after* the transaction wrote a key saw its own write, not committed data: the
/// write stays blind, so a concurrent commit to the key is settled by the resolution (and at
/// `ReadCommitted` the conflict is not hidden by the later scan's timestamp).
#[test]
fn a_scan_after_the_write_does_not_make_it_a_read() {
    for iso in [
        TransactionIsolation::ReadCommitted,
        TransactionIsolation::RepeatableRead,
    ] {
        for res in RESOLUTIONS {
            let ctx = format!("{iso:?}/{res:?}");
            let db = db(iso, res);
            seed_values(&db, &[("acct/1", 100)]);
            let mut t1 = db.start_transaction();
            write(&mut t1, "acct/1", 1);
            let mut t2 = db.start_transaction();
            write(&mut t2, "acct/1", 2);
            commit(t2);
            assert_eq!(
                scan_prefix(&mut t1, "acct/"),
                vec![(key("acct/1"), 1)],
                "{ctx}"
            );
            let result = t1.commit();
            match res {
                ConflictResolution::Fail => {
                    let err = expect_err(result, &ctx);
                    assert_conflict(&err, &ConflictKind::WriteWrite, &key("acct/1"));
                    assert_eq!(committed(&db, "acct/1"), Some(2), "{ctx}");
                }
                ConflictResolution::Replace => {
                    assert_eq!(ok(result, &ctx).replaced, vec![key("acct/1")], "{ctx}");
                    assert_eq!(committed(&db, "acct/1"), Some(1), "{ctx}");
                }
                ConflictResolution::Ignore => {
                    assert_eq!(ok(result, &ctx).ignored, vec![key("acct/1")], "{ctx}");
                    assert_eq!(committed(&db, "acct/1"), Some(2), "{ctx}");
                }
                ConflictResolution::Append => {
                    assert_eq!(ok(result, &ctx).appended, vec![key("acct/1")], "{ctx}");
                    assert_eq!(committed_rows(&db, "acct/1"), Some(vec![2, 1]), "{ctx}");
                }
            }
        }
    }
}
