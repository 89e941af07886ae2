//! Precise `Serializable` (commit-time SSI): what it commits that the conservative validation
//! aborts, what it must still abort and how the abort names the structure, read-only snapshots
//! that keep no read set, bounded tracking state, and write skew under real threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use khonsu::prelude::*;
use khonsu::{SerializableValidation, Structure};
use khonsu_tests::*;

fn ser() -> Khonsu {
    db(TransactionIsolation::Serializable, ConflictResolution::Fail)
}

fn structure_of(err: &khonsu::Error) -> (ConflictTarget, Structure) {
    let Some(c) = err.conflict() else {
        panic!("not a conflict: {err:?}")
    };
    assert_eq!(c.kind, ConflictKind::DangerousStructure, "{c:?}");
    let Some(structure) = c.structure.as_deref() else {
        panic!("a dangerous structure without its timestamps: {c:?}")
    };
    assert_eq!(c.other_commit_ts, Some(structure.out_ts), "{c:?}");
    (c.target.clone(), *structure)
}

/// T1 reads x (absent) and writes y; T2 inserts x and commits first. T1 is only ordered before
/// T2 (T1 →rw T2, nothing the other way): precise commits it, conservative aborts it.
#[test]
fn a_reader_ordered_before_an_earlier_commit_commits() {
    for validation in [
        SerializableValidation::Precise,
        SerializableValidation::Conservative,
    ] {
        let db = ok(
            Khonsu::builder()
                .serializable_validation(validation)
                .build(),
            "build",
        );
        let mut t1 = db.start_transaction();
        assert_eq!(read(&mut t1, "x"), None);
        write(&mut t1, "y", 1);
        let mut t2 = db.start_transaction();
        write(&mut t2, "x", 1);
        commit(t2);
        let r = t1.commit();
        match validation {
            SerializableValidation::Precise => {
                ok(r, "T1 serializes before T2");
                assert_eq!(committed(&db, "y"), Some(1));
            }
            SerializableValidation::Conservative => {
                let err = expect_err(r, "conservative");
                assert_conflict(&err, &ConflictKind::StaleRead, &key("x"));
            }
        }
    }
}

/// Write skew: both read a and b, T1 writes a, T2 writes b. T2 is the pivot (T1 →rw T2 →rw T1)
/// and its abort names T1's commit as both the reader and the first committer.
#[test]
fn write_skew_aborts_naming_the_structure() {
    let db = ser();
    seed_values(&db, &[("a", 1), ("b", 1)]);
    let mut t1 = db.start_transaction();
    let mut t2 = db.start_transaction();
    for t in [&mut t1, &mut t2] {
        assert_eq!((read(t, "a"), read(t, "b")), (Some(1), Some(1)));
    }
    write(&mut t1, "a", 0);
    write(&mut t2, "b", 0);
    let c1 = commit(t1).commit_ts;
    let err = expect_err(t2.commit(), "T2");
    let (target, structure) = structure_of(&err);
    assert_eq!(
        target,
        ConflictTarget::Key(key("b")),
        "T1 read b, which T2 writes"
    );
    assert_eq!(
        structure,
        Structure {
            reader_ts: Some(c1),
            pivot_ts: None,
            out_ts: c1
        }
    );
    let text = err.to_string();
    assert!(text.contains("dangerous structure"), "{text}");
    assert_eq!(db.metrics().aborts.dangerous_structure, 1);
}

/// A chain T3 →rw T2 →rw T1 with T1 committed first and T3 committing last: T3 (a writer) is
/// the one to abort, naming T2 as the pivot.
#[test]
fn the_last_of_a_chain_aborts_as_its_reader() {
    let db = ser();
    seed_values(&db, &[("x", 0), ("y", 0), ("z", 0)]);
    let mut t3 = db.start_transaction();
    let mut t2 = db.start_transaction();
    assert_eq!(read(&mut t2, "x"), Some(0)); // T2 →rw T1 (T1 writes x)
    assert_eq!(read(&mut t3, "y"), Some(0)); // T3 →rw T2 (T2 writes y)
    let mut t1 = db.start_transaction();
    write(&mut t1, "x", 1);
    let c1 = commit(t1).commit_ts;
    write(&mut t2, "y", 1);
    let c2 = commit(t2).commit_ts; // a pivot: ordered before T1
    write(&mut t3, "z", 1);
    let err = expect_err(t3.commit(), "T3");
    let (target, structure) = structure_of(&err);
    assert_eq!(target, ConflictTarget::Key(key("y")));
    assert_eq!(
        structure,
        Structure {
            reader_ts: None,
            pivot_ts: Some(c2),
            out_ts: c1
        }
    );
}

/// `Replace` lets a blind write land on a concurrent commit, which first-committer-wins would
/// refuse: T2 reads x, T3 overwrites x and commits, T1 sees T3 and writes y, T2 replaces y.
/// T2 must precede T3 (it missed x), T3 precedes T1 (T1 saw it), T1 precedes T2 (y ends as
/// T2's): a cycle through one rw-antidependency and a write-write edge, which no dangerous
/// structure shows. Precise `Serializable` aborts T2.
#[test]
fn a_replace_onto_a_concurrent_commit_closes_a_cycle() {
    let db = ser();
    seed_values(&db, &[("x", 0), ("y", 0)]);
    let mut t2 = db.start_transaction();
    assert_eq!(read(&mut t2, "x"), Some(0));
    let mut t3 = db.start_transaction();
    write(&mut t3, "x", 1);
    let c3 = commit(t3).commit_ts;
    let mut t1 = db.start_transaction();
    assert_eq!(read(&mut t1, "x"), Some(1));
    write(&mut t1, "y", 1);
    let c1 = commit(t1).commit_ts;
    ok(
        t2.write_with("y", batch(2), ConflictResolution::Replace),
        "write_with",
    );
    let err = expect_err(t2.commit(), "T2 would close T2 → T3 → T1 → T2");
    let (target, structure) = structure_of(&err);
    assert_eq!(target, ConflictTarget::Key(key("x")));
    assert_eq!(
        structure,
        Structure {
            reader_ts: Some(c1),
            pivot_ts: None,
            out_ts: c3
        }
    );
    assert_eq!(committed(&db, "y"), Some(1));
}

/// A snapshot pin or a declared read-only transaction keeps no read set: a writer that would be
/// ordered before a commit such a snapshot saw aborts instead, and the reader never does.
#[test]
fn read_only_snapshots_forbid_ordering_a_writer_before_what_they_saw() {
    for pinned in [false, true] {
        let db = ser();
        seed_values(&db, &[("checking", 0), ("savings", 0)]);
        let mut t2 = db.start_transaction();
        assert_eq!(read(&mut t2, "savings"), Some(0));
        let mut t1 = db.start_transaction();
        write(&mut t1, "savings", 20);
        commit(t1);
        let pin = db.pin_snapshot();
        let mut report = if pinned {
            pin.start_transaction()
        } else {
            db.start_transaction_with(TransactionOptions::new().read_only(true))
        };
        assert_eq!(read(&mut report, "checking"), Some(0));
        assert_eq!(read(&mut report, "savings"), Some(20));
        ok(report.commit(), "a read-only transaction never aborts");
        drop(pin);
        write(&mut t2, "checking", -11);
        let err = expect_err(t2.commit(), "T2 would be ordered before T1");
        let (_, structure) = structure_of(&err);
        assert_eq!(structure.pivot_ts, None, "T2 is the pivot");
        assert!(structure.reader_ts.is_some(), "the read-only snapshot");
    }
}

/// A transaction that read only keys it writes is never a pivot and skips the tracking.
#[test]
fn read_modify_writes_need_no_tracking() {
    let db = ser();
    seed_values(&db, &[("n", 0)]);
    for _ in 0..1_000 {
        ok(
            db.atomically(|t| {
                let n = t.read("n")?.map_or(0, |b| value(&b));
                t.write("n", batch(n + 1))
            }),
            "increment",
        );
    }
    let stats = db.stats();
    assert_eq!(
        (stats.serializable_readers, stats.serializable_pivots),
        (0, 0)
    );
}

/// 100k transactions with reads of keys they do not write: the tracking state stays small
/// (pruned as snapshots move), grows only while a transaction that started early is open
/// (capped), and drops once it ends.
#[test]
fn tracking_state_is_bounded_and_released_after_a_long_reader() {
    const N: u64 = 100_000;
    let db = ser();
    seed_values(&db, &[(0_u64, 0), (1_u64, 0)]);
    let step = |i: u64| {
        let mut t = db.start_transaction();
        read(&mut t, i % 1_000);
        write(&mut t, 1_000 + i % 1_000, 1);
        commit(t);
    };
    let mut most = 0;
    for i in 0..N {
        step(i);
        most = most.max(db.stats().serializable_readers);
    }
    assert!(most <= 512, "without long transactions at most {most} kept");

    let mut long = db.start_transaction();
    assert_eq!(read(&mut long, 0_u64), Some(0));
    for i in 0..N {
        step(i);
    }
    let held = db.stats().serializable_readers;
    assert!(
        (60_000..=65_536).contains(&held),
        "a long transaction keeps what it may need, up to the cap: {held}"
    );
    write(&mut long, 5_000_u64, 1);
    // It read key 0 at its snapshot; key 0 was not rewritten, so it commits.
    commit(long);
    for i in 0..300 {
        step(i);
    }
    let after = db.stats().serializable_readers;
    assert!(
        after <= 512,
        "released once the long transaction ended: {after}"
    );
    db.collect_garbage();
    assert!(db.stats().serializable_readers <= 1);
}

/// Doctors on call under threads: each pair must keep one doctor on call. Workers take a doctor
/// off call if the other is on (write skew if two commit concurrently), or put one back;
/// declared read-only auditors check every pair they see. Bounded by count and time.
#[test]
fn write_skew_under_threads_keeps_every_pair_on_call() {
    const PAIRS: u64 = 4;
    const WORKERS: u64 = 3;
    const TXNS: u64 = 3_000;
    let seed = seed("write_skew_under_threads_keeps_every_pair_on_call");
    let db = ser();
    let doctor = |p: u64, d: u64| format!("pair/{p}/doctor/{d}");
    for p in 0..PAIRS {
        seed_values(&db, &[(doctor(p, 0), 1), (doctor(p, 1), 1)]);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let audits = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    thread::scope(|s| {
        for w in 0..WORKERS {
            let (db, done) = (db.clone(), Arc::clone(&done));
            s.spawn(move || {
                let mut rng = Rng::new(seed ^ (w + 1));
                for _ in 0..TXNS {
                    if Instant::now() > deadline {
                        break;
                    }
                    let p = rng.below(PAIRS);
                    let me = rng.below(2);
                    let off = rng.below(3) != 0;
                    let r = db.atomically(|t| {
                        let mine = t.read(doctor(p, me))?.map_or(0, |b| value(&b));
                        let other = t.read(doctor(p, 1 - me))?.map_or(0, |b| value(&b));
                        if off && mine == 1 && other == 1 {
                            t.write(doctor(p, me), batch(0))?;
                        } else if !off && mine == 0 {
                            t.write(doctor(p, me), batch(1))?;
                        }
                        Ok(())
                    });
                    if let Err(e) = r {
                        assert!(e.is_conflict(), "{e}");
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        {
            let (db, stop, audits) = (db.clone(), Arc::clone(&stop), Arc::clone(&audits));
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut t =
                        db.start_transaction_with(TransactionOptions::new().read_only(true));
                    for p in 0..PAIRS {
                        let on = read(&mut t, doctor(p, 0)).unwrap_or(0)
                            + read(&mut t, doctor(p, 1)).unwrap_or(0);
                        assert!(on >= 1, "seed {seed}: pair {p} has nobody on call");
                    }
                    commit(t);
                    audits.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        while done.load(Ordering::SeqCst) < WORKERS {
            thread::yield_now();
        }
        stop.store(true, Ordering::Relaxed);
    });
    for p in 0..PAIRS {
        let on =
            committed(&db, doctor(p, 0)).unwrap_or(0) + committed(&db, doctor(p, 1)).unwrap_or(0);
        assert!(on >= 1, "seed {seed}: pair {p} ends with nobody on call");
    }
    assert!(audits.load(Ordering::Relaxed) > 0);
    assert!(db.metrics().commits > 0);
}
