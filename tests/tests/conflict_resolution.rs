//! `ConflictResolution` for blind write-write conflicts: `Fail`, `Replace`, `Ignore`, `Append`,
//! chosen per instance (builder) or per transaction (`TransactionOptions`), what `CommitInfo`
//! reports, and the read-modify-write rule (RR/Serializable abort whatever the resolution).

use khonsu::ConflictKind;
use khonsu::prelude::*;
use khonsu_tests::*;

/// T2 starts, T1 commits `x`, then T2 blindly writes `x` (and `w`, a key nobody else touches)
/// with `res` set either on the instance or on the transaction. Returns (db, T1's commit, T2's
/// result).
fn blind_race(
    iso: TransactionIsolation,
    res: ConflictResolution,
    per_txn: bool,
    t1_rows: &[i64],
    t2_rows: &[i64],
) -> (Khonsu, CommitInfo, Result<CommitInfo, khonsu::Error>) {
    // When the resolution is per transaction, the instance default is deliberately different.
    let instance = if per_txn {
        if res == ConflictResolution::Fail {
            ConflictResolution::Replace
        } else {
            ConflictResolution::Fail
        }
    } else {
        res
    };
    let db = db(iso, instance);
    seed_values(&db, &[("x", 1)]);
    let mut t2 = if per_txn {
        db.start_transaction_with(TransactionOptions::new().conflict_resolution(res))
    } else {
        db.start_transaction()
    };
    let mut t1 = db.start_transaction();
    ok(t1.write("x", batch_of(t1_rows)), "t1 write");
    let c1 = commit(t1);
    ok(t2.write("x", batch_of(t2_rows)), "t2 write");
    write(&mut t2, "w", 42);
    let r2 = t2.commit();
    (db, c1, r2)
}

fn check_resolution(iso: TransactionIsolation, res: ConflictResolution, per_txn: bool) {
    let ctx = format!("{iso:?}/{res:?} per_txn={per_txn}");
    let (db, c1, r2) = blind_race(iso, res, per_txn, &[10, 11], &[20, 21, 22]);
    match res {
        ConflictResolution::Fail => {
            let err = expect_err(r2, &ctx);
            assert_conflict(&err, &ConflictKind::WriteWrite, &key("x"));
            if let Some(ts) = err.conflict().and_then(|c| c.other_commit_ts) {
                assert_eq!(ts, c1.commit_ts, "{ctx}");
            }
            assert_eq!(committed_rows(&db, "x"), Some(vec![10, 11]), "{ctx}");
            assert_eq!(
                committed(&db, "w"),
                None,
                "{ctx}: aborted txn left w behind"
            );
        }
        ConflictResolution::Replace => {
            let c2 = ok(r2, &ctx);
            assert!(c2.commit_ts > c1.commit_ts, "{ctx}");
            assert!(!c2.read_only, "{ctx}");
            assert_eq!(c2.replaced, vec![key("x")], "{ctx}");
            assert!(
                c2.ignored.is_empty() && c2.appended.is_empty(),
                "{ctx}: {c2:?}"
            );
            assert_eq!(committed_rows(&db, "x"), Some(vec![20, 21, 22]), "{ctx}");
            assert_eq!(committed(&db, "w"), Some(42), "{ctx}");
        }
        ConflictResolution::Ignore => {
            let c2 = ok(r2, &ctx);
            assert_eq!(c2.ignored, vec![key("x")], "{ctx}");
            assert!(
                c2.replaced.is_empty() && c2.appended.is_empty(),
                "{ctx}: {c2:?}"
            );
            assert_eq!(committed_rows(&db, "x"), Some(vec![10, 11]), "{ctx}");
            assert_eq!(committed(&db, "w"), Some(42), "{ctx}: the rest commits");
        }
        ConflictResolution::Append => {
            let c2 = ok(r2, &ctx);
            assert_eq!(c2.appended, vec![key("x")], "{ctx}");
            assert!(
                c2.replaced.is_empty() && c2.ignored.is_empty(),
                "{ctx}: {c2:?}"
            );
            assert_eq!(
                committed_rows(&db, "x"),
                Some(vec![10, 11, 20, 21, 22]),
                "{ctx}: concurrent rows first, then ours"
            );
            assert_eq!(committed(&db, "w"), Some(42), "{ctx}");
        }
    }
}

#[test]
fn per_instance_resolution_all_levels() {
    for iso in LEVELS {
        for res in RESOLUTIONS {
            check_resolution(iso, res, false);
        }
    }
}

#[test]
fn per_transaction_resolution_overrides_instance() {
    for iso in LEVELS {
        for res in RESOLUTIONS {
            check_resolution(iso, res, true);
        }
    }
}

/// Per-transaction isolation override: an instance at Serializable, a transaction at
/// `RepeatableRead` commits write skew; one at Serializable on a `RepeatableRead` instance aborts.
#[test]
fn per_transaction_isolation_overrides_instance() {
    for (instance, txn, expect_abort) in [
        (
            TransactionIsolation::Serializable,
            TransactionIsolation::RepeatableRead,
            false,
        ),
        (
            TransactionIsolation::RepeatableRead,
            TransactionIsolation::Serializable,
            true,
        ),
    ] {
        let db = db(instance, ConflictResolution::Fail);
        seed_values(&db, &[("x", 1), ("y", 1)]);
        let mut t1 = db.start_transaction_with(TransactionOptions::new().isolation(txn));
        let mut t2 = db.start_transaction_with(TransactionOptions::new().isolation(txn));
        for t in [&mut t1, &mut t2] {
            read(t, "x");
            read(t, "y");
        }
        write(&mut t1, "x", 0);
        write(&mut t2, "y", 0);
        commit(t1);
        let r2 = t2.commit();
        if expect_abort {
            assert_conflict(&expect_err(r2, "t2"), &ConflictKind::StaleRead, &key("x"));
        } else {
            ok(r2, "t2");
        }
    }
}

/// Schemas must be equal for Append: a mismatch is `Error::Append`, not a conflict, and the
/// whole transaction aborts (its other key is absent too).
#[test]
fn append_schema_mismatch_is_an_error_not_a_conflict() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Append);
        seed_values(&db, &[("x", 1)]);
        let mut t2 = db.start_transaction();
        let mut t1 = db.start_transaction();
        write(&mut t1, "x", 10);
        commit(t1);
        ok(t2.write("x", utf8_batch("not an int")), "t2 write");
        write(&mut t2, "w", 42);
        let err = expect_err(t2.commit(), &format!("{iso:?}"));
        assert!(
            !err.is_conflict(),
            "{iso:?}: schema mismatch must not be retryable: {err:?}"
        );
        assert!(err.conflict().is_none(), "{iso:?}");
        assert!(is_append_error(&err), "{iso:?}: {err:?}");
        assert_eq!(committed_rows(&db, "x"), Some(vec![10]), "{iso:?}");
        assert_eq!(
            committed(&db, "w"),
            None,
            "{iso:?}: nothing of the txn is visible"
        );
        // The db keeps working and the key is not left locked.
        let mut t3 = db.start_transaction();
        write(&mut t3, "x", 11);
        commit(t3);
        assert_eq!(committed(&db, "x"), Some(11), "{iso:?}");
    }
}

/// Without a concurrent commit, Append is a plain write, whatever the schema.
#[test]
fn append_without_conflict_is_a_plain_write() {
    let db = db(
        TransactionIsolation::Serializable,
        ConflictResolution::Append,
    );
    seed_values(&db, &[("x", 1)]);
    let mut t = db.start_transaction();
    ok(t.write("x", utf8_batch("s")), "write");
    let c = commit(t);
    assert!(c.appended.is_empty(), "{c:?}");
    let mut t = db.start_transaction();
    let b = ok(t.read("x"), "read").unwrap();
    assert_eq!(b.num_rows(), 1);
    assert_eq!(
        b.schema().field(0).data_type(),
        &arrow_schema::DataType::Utf8
    );
}

/// Append onto a key that the concurrent commit deleted installs our batch alone.
#[test]
fn append_onto_concurrently_deleted_key() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Append);
        seed_values(&db, &[("x", 1)]);
        let mut t2 = db.start_transaction();
        let mut t1 = db.start_transaction();
        delete(&mut t1, "x");
        commit(t1);
        ok(t2.write("x", batch_of(&[20, 21])), "t2 write");
        ok(t2.commit(), &format!("{iso:?}"));
        assert_eq!(committed_rows(&db, "x"), Some(vec![20, 21]), "{iso:?}");
    }
}

/// Several concurrent commits: Append goes after the latest committed batch.
#[test]
fn append_after_latest_of_several_concurrent_commits() {
    let db = db(
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Append,
    );
    seed_values(&db, &[("x", 1)]);
    let mut t = db.start_transaction();
    seed_values(&db, &[("x", 2)]);
    seed_values(&db, &[("x", 3)]);
    ok(t.write("x", batch_of(&[4, 5])), "write");
    let c = commit(t);
    assert_eq!(c.appended, vec![key("x")]);
    assert_eq!(committed_rows(&db, "x"), Some(vec![3, 4, 5]));
}

/// A delete under Append conflicts like Fail.
#[test]
fn delete_under_append_conflicts_like_fail() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Append);
        seed_values(&db, &[("x", 1)]);
        let mut t2 = db.start_transaction();
        seed_values(&db, &[("x", 2)]);
        delete(&mut t2, "x");
        write(&mut t2, "w", 42);
        let err = expect_err(t2.commit(), &format!("{iso:?}"));
        assert_conflict(&err, &ConflictKind::WriteWrite, &key("x"));
        assert_eq!(committed(&db, "x"), Some(2), "{iso:?}");
        assert_eq!(committed(&db, "w"), None, "{iso:?}");
    }
}

/// A blind delete under Replace deletes the concurrently written key; under Ignore it is dropped.
#[test]
fn blind_delete_under_replace_and_ignore() {
    for iso in LEVELS {
        for (res, expected) in [
            (ConflictResolution::Replace, None),
            (ConflictResolution::Ignore, Some(2)),
        ] {
            let db = db(iso, res);
            seed_values(&db, &[("x", 1)]);
            let mut t2 = db.start_transaction();
            seed_values(&db, &[("x", 2)]);
            delete(&mut t2, "x");
            let c = ok(t2.commit(), &format!("{iso:?}/{res:?}"));
            assert_eq!(committed(&db, "x"), expected, "{iso:?}/{res:?}");
            match res {
                ConflictResolution::Replace => assert_eq!(c.replaced, vec![key("x")]),
                _ => assert_eq!(c.ignored, vec![key("x")]),
            }
        }
    }
}

/// Ignore when every write is ignored: the commit still succeeds and changes nothing.
#[test]
fn ignore_all_writes_commits_nothing() {
    let db = db(
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Ignore,
    );
    seed_values(&db, &[("x", 1), ("y", 1)]);
    let mut t = db.start_transaction();
    seed_values(&db, &[("x", 2), ("y", 2)]);
    write(&mut t, "x", 3);
    write(&mut t, "y", 3);
    let c = commit(t);
    assert_same_keys(&c.ignored, &[key("x"), key("y")], "ignored");
    assert_eq!(committed_all(&db), vec![(key("x"), 2), (key("y"), 2)]);
}

/// Read-modify-write at `RepeatableRead`/Serializable aborts whatever the resolution.
#[test]
fn rmw_aborts_whatever_the_resolution() {
    for iso in SNAPSHOT_LEVELS {
        for res in RESOLUTIONS {
            for per_txn in [false, true] {
                let ctx = format!("{iso:?}/{res:?} per_txn={per_txn}");
                let db = db(
                    iso,
                    if per_txn {
                        ConflictResolution::Fail
                    } else {
                        res
                    },
                );
                seed_values(&db, &[("x", 1)]);
                let mut t2 = if per_txn {
                    db.start_transaction_with(TransactionOptions::new().conflict_resolution(res))
                } else {
                    db.start_transaction()
                };
                let v = read_some(&mut t2, "x");
                seed_values(&db, &[("x", 5)]);
                write(&mut t2, "x", v + 1);
                write(&mut t2, "w", 42);
                let err = expect_err(t2.commit(), &ctx);
                eprintln!("{ctx}");
                assert_conflict(&err, &ConflictKind::WriteWrite, &key("x"));
                assert_eq!(committed(&db, "x"), Some(5), "{ctx}");
                assert_eq!(committed(&db, "w"), None, "{ctx}");
            }
        }
    }
}

/// A read-modify-write of one key and a blind write of another in the same transaction: the
/// blind one follows the resolution, the read one does not need to (no concurrent write to it).
#[test]
fn blind_key_resolved_while_read_key_untouched() {
    for iso in SNAPSHOT_LEVELS {
        let db = db(iso, ConflictResolution::Replace);
        seed_values(&db, &[("x", 1), ("y", 1)]);
        let mut t = db.start_transaction();
        let v = read_some(&mut t, "x");
        seed_values(&db, &[("y", 2)]);
        write(&mut t, "x", v + 1);
        write(&mut t, "y", 3);
        let c = commit(t);
        assert_eq!(c.replaced, vec![key("y")], "{iso:?}");
        assert_eq!(
            committed_all(&db),
            vec![(key("x"), 2), (key("y"), 3)],
            "{iso:?}"
        );
    }
}
