//! Fekete, O'Neil, O'Neil: "A Read-Only Transaction Anomaly Under Snapshot Isolation" (2004).
//!
//! Checking `c` and savings `s` both start at 0.
//!
//! ```text
//! T2 (withdraw 10):  r(c)=0 r(s)=0                          ... w(c = 0 - 10 - 1 overdraft fee)
//! T1 (deposit 20):                 r(s)=0 w(s=20) commit
//! T3 (report):                                        r(c)=0 r(s)=20 commit
//! T2:                                                                  commit
//! ```
//!
//! Under snapshot isolation all three commit, yet T3's report (c=0, s=20) is impossible in any
//! serial order consistent with the final state c=-11, s=20: the report says the deposit came
//! first, but then the withdrawal would not have charged the fee. At Serializable one of them
//! aborts with a dangerous structure: the writer T2 when the report committed first or is
//! declared read-only (which never aborts), the report when T2 committed first and the report
//! did not declare itself read-only.

use khonsu::ConflictKind;
use khonsu::prelude::*;
use khonsu_tests::*;

/// Runs the schedule; `report_first` decides whether T3 commits before or after T2's commit
/// attempt, `explicit_read_only` whether T3 is opened with `read_only(true)`.
fn schedule(iso: TransactionIsolation, report_first: bool, explicit_read_only: bool) {
    let ctx = format!("{iso:?} report_first={report_first} explicit={explicit_read_only}");
    let db = db(iso, ConflictResolution::Fail);
    seed_values(&db, &[("checking", 0), ("savings", 0)]);

    let mut t2 = db.start_transaction();
    let c = read_some(&mut t2, "checking");
    let s = read_some(&mut t2, "savings");

    let mut t1 = db.start_transaction();
    let s1 = read_some(&mut t1, "savings");
    write(&mut t1, "savings", s1 + 20);
    commit(t1);

    let mut t3 = if explicit_read_only {
        db.start_transaction_with(TransactionOptions::new().read_only(true))
    } else {
        db.start_transaction()
    };
    let report = (read(&mut t3, "checking"), read(&mut t3, "savings"));
    assert_eq!(report, (Some(0), Some(20)), "{ctx}");

    let fee = i64::from(c + s < 10);
    write(&mut t2, "checking", c - 10 - fee);

    let (r2, c3) = if report_first {
        let c3 = t3.commit();
        (t2.commit(), c3)
    } else {
        let r2 = t2.commit();
        (r2, t3.commit())
    };
    let final_state = (committed(&db, "checking"), committed(&db, "savings"));
    if iso == TransactionIsolation::Serializable && !report_first && !explicit_read_only {
        // Precise `Serializable`: T2 commits (ordered before T1: it did not see the deposit);
        // the report, which did see it and read checking before T2's write, would close the
        // structure T3 →rw T2 →rw T1 with T1 committed before its snapshot. Not declared
        // read-only, it is the one to abort, as PostgreSQL aborts it.
        ok(r2, &ctx);
        let err = expect_err(c3, &ctx);
        let Some(c) = err.conflict() else {
            panic!("{ctx}: not a conflict: {err:?}")
        };
        assert_eq!(c.kind, ConflictKind::DangerousStructure, "{ctx}: {c:?}");
        let Some(structure) = c.structure.as_deref() else {
            panic!("{ctx}: a dangerous structure without its timestamps: {c:?}")
        };
        assert_eq!(structure.reader_ts, None, "{ctx}: the report is the reader");
        assert!(structure.pivot_ts.is_some(), "{ctx}: T2 is the pivot");
        assert_eq!(final_state, (Some(-11), Some(20)), "{ctx}");
        return;
    }
    let c3 = ok(c3, &format!("{ctx}: the read-only report must not abort"));
    assert!(c3.read_only, "{ctx}");

    if iso == TransactionIsolation::Serializable {
        // The report committed (or is declared read-only, which keeps no read set: then no
        // writer may be ordered before a commit its snapshot saw), so the writer T2 aborts.
        let err = expect_err(r2, &ctx);
        assert_conflict(&err, &ConflictKind::StaleRead, &key("savings"));
        assert_eq!(
            err.conflict().map(|c| c.kind),
            Some(ConflictKind::DangerousStructure),
            "{ctx}"
        );
        assert_eq!(final_state, (Some(0), Some(20)), "{ctx}");
        // Retried after the deposit, the withdrawal sees the money and pays no fee.
        let mut t2 = db.start_transaction();
        let c = read_some(&mut t2, "checking");
        let s = read_some(&mut t2, "savings");
        let fee = i64::from(c + s < 10);
        write(&mut t2, "checking", c - 10 - fee);
        commit(t2);
        assert_eq!(committed(&db, "checking"), Some(-10), "{ctx}");
    } else {
        ok(r2, &ctx);
        assert_eq!(
            final_state,
            (Some(-11), Some(20)),
            "{ctx}: the anomaly is allowed"
        );
    }
}

#[test]
fn read_only_anomaly_read_committed() {
    for report_first in [false, true] {
        schedule(TransactionIsolation::ReadCommitted, report_first, false);
    }
}

#[test]
fn read_only_anomaly_repeatable_read() {
    for report_first in [false, true] {
        schedule(TransactionIsolation::RepeatableRead, report_first, false);
    }
}

#[test]
fn read_only_anomaly_serializable_aborts_the_writer() {
    for report_first in [false, true] {
        for explicit in [false, true] {
            schedule(TransactionIsolation::Serializable, report_first, explicit);
        }
    }
}

/// A read-only transaction at Serializable whose every read went stale still commits, and so
/// does a transaction opened with `read_only(true)` that scans.
#[test]
fn read_only_transactions_never_abort() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        seed_values(&db, &[("a", 1), ("b", 2)]);
        let mut r1 = db.start_transaction();
        let mut r2 = db.start_transaction_with(TransactionOptions::new().read_only(true));
        assert_eq!(read(&mut r1, "a"), Some(1));
        assert_eq!(read(&mut r1, "missing"), None);
        assert_eq!(scan(&mut r2, ..).len(), 2);
        let mut w = db.start_transaction();
        write(&mut w, "a", 10);
        write(&mut w, "missing", 5);
        delete(&mut w, "b");
        let cw = commit(w);
        let c1 = commit(r1);
        let c2 = commit(r2);
        for c in [&c1, &c2] {
            assert!(c.read_only, "{iso:?}");
            assert!(
                c.commit_ts < cw.commit_ts,
                "{iso:?}: a read-only commit_ts is its snapshot"
            );
        }
    }
}

/// A snapshot is the latest committed timestamp when the transaction starts, commit timestamps
/// strictly increase, and a read-only transaction reports its snapshot as its `commit_ts`.
#[test]
fn snapshot_is_latest_commit_and_commit_ts_increase() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        let mut last = 0;
        for i in 0..20 {
            let mut t = db.start_transaction();
            assert_eq!(t.snapshot_ts(), last, "{iso:?}: snapshot of txn {i}");
            let info = if i % 3 == 0 {
                read(&mut t, "x");
                let info = commit(t);
                assert!(
                    info.read_only && info.commit_ts == last,
                    "{iso:?}: {info:?}"
                );
                info
            } else {
                write(&mut t, "x", i);
                let info = commit(t);
                assert!(info.commit_ts > last, "{iso:?}: {info:?} after {last}");
                info
            };
            last = info.commit_ts;
        }
    }
}
