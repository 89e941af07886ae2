//! Reclamation never changes what a transaction sees or whether it commits.
//!
//! * `collect_garbage` racing with writers and open snapshots never removes a version an open
//!   snapshot reads: a writer keeps `a == b` in every commit, and readers holding snapshots
//!   across many commits must always see them equal.
//! * Reclamation is not a writer: transactions that touch disjoint keys never abort, however
//!   often garbage is collected underneath them.
//! * Aborted inserts leave no key behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use khonsu::prelude::*;
use khonsu_tests::*;

const WRITES: i64 = 3_000;
const IDLE_SNAPSHOTS: usize = 5_000;

#[test]
fn collection_never_removes_what_an_open_snapshot_reads() {
    let seed = seed("collection_never_removes_what_an_open_snapshot_reads");
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        seed_values(&db, &[("a", 0), ("b", 0), ("c", 0)]);
        // Thousands of idle snapshots fill every registry slot and spill into the overflow
        // map, so each registry scan takes long enough for commits and registrations to
        // happen during it (the race a wrong reclamation rule would lose).
        let idle: Vec<Transaction> = (0..IDLE_SNAPSHOTS)
            .map(|_| db.start_transaction())
            .collect();
        let done = AtomicBool::new(false);
        thread::scope(|s| {
            s.spawn(|| {
                for i in 1..=WRITES {
                    let mut t = db.start_transaction();
                    write(&mut t, "a", i);
                    write(&mut t, "b", i);
                    if i % 2 == 0 {
                        write(&mut t, "c", i); // a key updated less often
                    }
                    commit(t);
                }
                done.store(true, Ordering::SeqCst);
            });
            s.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    db.collect_garbage();
                }
            });
            let mut rng = Rng::new(seed ^ iso as u64);
            // Readers keep several snapshots open at once and read them in a random order,
            // long after other commits have happened.
            let mut open: Vec<Transaction> = Vec::new();
            let mut checks = 0_u64;
            while !done.load(Ordering::SeqCst) || !open.is_empty() {
                if open.len() < 8 && !done.load(Ordering::SeqCst) {
                    open.push(db.start_transaction_with(TransactionOptions::new().read_only(true)));
                }
                if open.len() >= 8 || done.load(Ordering::SeqCst) {
                    let at = rng.index(open.len());
                    let mut t = open.swap_remove(at);
                    let (a, b) = (read(&mut t, "a"), read(&mut t, "b"));
                    if iso != TransactionIsolation::ReadCommitted {
                        assert_eq!(
                            a,
                            b,
                            "{iso:?}: snapshot {} saw a half commit",
                            t.snapshot_ts()
                        );
                    }
                    assert!(a.is_some() && b.is_some(), "{iso:?}: a version vanished");
                    checks += 1;
                    commit(t);
                }
            }
            assert!(checks > 0);
        });
        drop(idle);
    }
}

#[test]
fn reclamation_causes_no_aborts_between_disjoint_transactions() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    let keys: Vec<(String, i64)> = (0..200).map(|i| (format!("pad/{i:03}"), 0)).collect();
    seed_values(&db, &keys);
    let done = AtomicBool::new(false);
    let aborts: Vec<usize> = thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                db.collect_garbage();
            }
        });
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let db = &db;
                s.spawn(move || {
                    let mut aborts = 0;
                    for i in 0..2_000 {
                        // Reads shared keys that nobody writes, writes only its own key.
                        let mut t = db.start_transaction();
                        let _ = scan_prefix(&mut t, "pad/");
                        let _ = read(&mut t, "never-written");
                        write(&mut t, format!("own/{w}"), i);
                        if let Err(err) = t.commit() {
                            assert!(err.is_conflict(), "{}", snafu::Report::from_error(err));
                            aborts += 1;
                        }
                    }
                    aborts
                })
            })
            .collect();
        let aborts = workers.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, Ordering::SeqCst);
        aborts
    });
    assert_eq!(
        aborts,
        vec![0, 0],
        "no real conflict exists, so nothing may abort"
    );
}

#[test]
fn aborted_inserts_leave_no_key_behind() {
    let db = conservative_db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    seed_values(&db, &[("x", 0)]);
    for i in 0..1_000_u64 {
        let mut stale = db.start_transaction();
        let _ = read(&mut stale, "x");
        write(&mut stale, key(1_000_000 + i), 1);
        let mut t = db.start_transaction();
        write(&mut t, "x", i.cast_signed() + 1);
        commit(t);
        let err = expect_err(stale.commit(), "stale insert");
        assert!(err.is_conflict());
    }
    assert_eq!(
        db.stats().keys,
        1,
        "only x remains; aborted inserts left no heads"
    );
}

/// `collect_garbage` may drop every version of a key that no snapshot can read, but an open
/// transaction that predates the key's last change must still see that change as a conflict.
#[test]
fn collection_keeps_conflicts_visible_to_older_transactions() {
    for iso in SNAPSHOT_LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        let mut old = db.start_transaction();
        let mut x = db.start_transaction();
        write(&mut x, "k", 1);
        commit(x);
        let mut y = db.start_transaction();
        delete(&mut y, "k");
        commit(y);
        db.collect_garbage();
        write(&mut old, "k", 7);
        let err = expect_err(old.commit(), &format!("{iso:?}"));
        assert_conflict(&err, &ConflictKind::WriteWrite, &key("k"));
        db.collect_garbage();
        assert_eq!(
            db.stats().keys,
            0,
            "{iso:?}: the key goes once nothing predates it"
        );
    }
}
