//! `Khonsu::atomically`: runs the closure in a fresh transaction and commits it, retrying (with a
//! bound) on conflicts only; any other error is returned at once, without another attempt.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use khonsu::prelude::*;
use khonsu::storage::{RecoveredState, WriteFailure, WriteGroup};
use khonsu_tests::*;

/// A storage whose every write fails, writing nothing.
#[derive(Debug)]
struct BrokenStorage;

impl Storage for BrokenStorage {
    fn write(&self, _: WriteGroup<'_>) -> Result<(), WriteFailure> {
        Err(WriteFailure::NothingWritten(
            khonsu::storage::Error::backend("disk on fire"),
        ))
    }

    fn recover(&self) -> khonsu::storage::Result<RecoveredState> {
        Ok(RecoveredState::default())
    }
}

/// First attempt: a concurrent commit rewrites x between the closure's read and its commit, so
/// the commit conflicts; the second attempt succeeds and its result is returned.
#[test]
fn retries_a_conflict_and_returns_the_successful_result() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        seed_values(&db, &[("x", 0)]);
        let calls = AtomicUsize::new(0);
        let result = db.atomically(|t| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let v = t.read("x")?.map_or(0, |b| value(&b));
            if n == 0 {
                seed_values(&db, &[("x", 100)]);
            }
            t.write("x", batch(v + 1))?;
            Ok(v + 1)
        });
        let v = ok(result, &format!("{iso:?}"));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "{iso:?}: exactly one retry"
        );
        assert_eq!(v, 101, "{iso:?}: the retry saw the concurrent value");
        assert_eq!(committed(&db, "x"), Some(101), "{iso:?}");
    }
}

/// A non-conflict error from the commit (Append's schema mismatch) is returned without retry.
#[test]
fn non_conflict_commit_error_is_not_retried() {
    let db = db(
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Append,
    );
    seed_values(&db, &[("x", 0)]);
    let calls = AtomicUsize::new(0);
    let result = db.atomically(|t| {
        calls.fetch_add(1, Ordering::SeqCst);
        // A concurrent Int64 commit, then our blind Utf8 write: Append cannot merge them.
        seed_values(&db, &[("x", 1)]);
        t.write("x", utf8_batch("s"))?;
        Ok(())
    });
    let err = expect_err(result, "atomically");
    assert!(!err.is_conflict(), "{err:?}");
    assert!(is_append_error(&err), "{err:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a non-conflict error must not be retried"
    );
}

/// A storage failure at commit is returned without retry.
#[test]
fn storage_error_is_not_retried() {
    let db = ok(
        Khonsu::builder().storage(Arc::new(BrokenStorage)).build(),
        "build",
    );
    let calls = AtomicUsize::new(0);
    let result = db.atomically(|t| {
        calls.fetch_add(1, Ordering::SeqCst);
        t.write("x", batch(1))
    });
    let err = expect_err(result, "atomically on broken storage");
    assert!(!err.is_conflict(), "{err:?}");
    assert!(matches!(err, khonsu::Error::Storage { .. }), "{err:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a storage error must not be retried"
    );
    assert_eq!(committed(&db, "x"), None);
}

/// A non-conflict error returned by the closure itself (here `ReadOnly`, produced by writing
/// through a read-only transaction opened inside the closure) is returned without retry, and
/// nothing the closure wrote is committed.
#[test]
fn non_conflict_closure_error_is_not_retried() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    let calls = AtomicUsize::new(0);
    let result: Result<(), khonsu::Error> = db.atomically(|t| {
        calls.fetch_add(1, Ordering::SeqCst);
        t.write("x", batch(1))?;
        let mut ro = db.start_transaction_with(TransactionOptions::new().read_only(true));
        ro.write("y", batch(2))?;
        Ok(())
    });
    let err = expect_err(result, "atomically");
    assert!(!err.is_conflict(), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        committed(&db, "x"),
        None,
        "the failed attempt must not commit"
    );
}

/// A conflict error returned by the closure itself (from a nested transaction's commit) is
/// retried like a commit conflict.
#[test]
fn conflict_returned_by_closure_is_retried() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    let calls = AtomicUsize::new(0);
    let result = db.atomically(|t| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        if n == 0 {
            let mut a = db.start_transaction();
            let mut b = db.start_transaction();
            a.write("c", batch(1))?;
            b.write("c", batch(2))?;
            a.commit()?;
            b.commit()?; // conflicts -> returned from the closure
        }
        t.write("x", batch(int(n)))?;
        Ok(n)
    });
    assert_eq!(ok(result, "atomically"), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(committed(&db, "x"), Some(1));
}

/// Endless conflicts: atomically gives up after a bounded number of attempts and returns the
/// conflict.
#[test]
fn retries_are_bounded() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    seed_values(&db, &[("x", 0)]);
    let calls = AtomicUsize::new(0);
    let result = db.atomically(|t| {
        calls.fetch_add(1, Ordering::SeqCst);
        let v = t.read("x")?.map_or(0, |b| value(&b));
        seed_values(&db, &[("x", v + 1_000)]);
        t.write("x", batch(v + 1))?;
        Ok(())
    });
    let err = expect_err(result, "atomically under endless conflicts");
    assert!(err.is_conflict(), "{err:?}");
    let n = calls.load(Ordering::SeqCst);
    assert!(n > 1, "conflicts must be retried at least once");
    assert!(n < 10_000, "retries must be bounded, got {n}");
    eprintln!("atomically gave up after {n} attempts");
}

/// Under contention every increment eventually commits.
#[test]
fn eventually_succeeds_under_contention() {
    const THREADS: usize = 4;
    const INCREMENTS: usize = 100;
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        seed_values(&db, &[("counter", 0)]);
        let calls = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let db = db.clone();
                let calls = Arc::clone(&calls);
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    barrier.wait();
                    for _ in 0..INCREMENTS {
                        let r = db.atomically(|t| {
                            calls.fetch_add(1, Ordering::Relaxed);
                            let v = t.read("counter")?.map_or(0, |b| value(&b));
                            t.write("counter", batch(v + 1))
                        });
                        ok(r, "atomically increment");
                    }
                })
            })
            .collect();
        join_all(handles);
        let total = int(THREADS * INCREMENTS);
        assert_eq!(committed(&db, "counter"), Some(total), "{iso:?}");
        let calls = calls.load(Ordering::Relaxed);
        assert!(calls >= THREADS * INCREMENTS, "{iso:?}");
        eprintln!(
            "{iso:?}: {} increments took {calls} attempts",
            THREADS * INCREMENTS
        );
    }
}
