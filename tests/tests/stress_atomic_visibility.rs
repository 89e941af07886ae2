//! Atomic visibility under concurrency: writers store the same counter value into 4 keys in one
//! transaction; readers must never see the 4 keys disagree (never a half-applied commit).
//!
//! * `RepeatableRead` / Serializable: 4 point reads in one transaction (random order) are equal,
//!   and so is one scan.
//! * `ReadCommitted`: one scan is atomic, so its 4 values are equal; point reads are each the
//!   latest committed value, so read in key order they never decrease.
//! * Every level: the value a reader sees never goes backwards across its transactions.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use khonsu::prelude::*;
use khonsu_tests::*;

const KEYS: usize = 4;
const WRITERS: usize = 2;
const WRITES_PER_WRITER: usize = 2_000;
const READERS: usize = 2;
const READS_PER_READER: usize = 3_000;

fn k(i: usize) -> Key {
    key(format!("cell/{i}"))
}

/// The value all 4 cells hold if they agree; panics with `what` if they do not.
fn agreed(seen: &[i64], what: &str) -> i64 {
    match seen.split_first() {
        Some((first, rest)) if seen.len() == KEYS && rest.iter().all(|v| v == first) => *first,
        _ => panic!("{what}: saw a half-applied commit: {seen:?}"),
    }
}

/// One reader transaction; `last` is the value this reader saw before. Returns the newest value
/// it saw.
fn reader_round(db: &Khonsu, rng: &mut Rng, iso: TransactionIsolation, i: usize, last: i64) -> i64 {
    let mut t = db.start_transaction();
    let use_scan = iso == TransactionIsolation::ReadCommitted || i.is_multiple_of(3);
    let seen: Vec<i64> = if use_scan {
        scan_prefix(&mut t, "cell/")
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    } else {
        // Point reads in a random rotation, put back in key order.
        let start = rng.index(KEYS);
        let mut vals: Vec<(usize, i64)> = (0..KEYS)
            .map(|j| (start + j) % KEYS)
            .map(|idx| (idx, read_some(&mut t, k(idx))))
            .collect();
        vals.sort_unstable();
        vals.into_iter().map(|(_, v)| v).collect()
    };
    let v = agreed(&seen, &format!("{iso:?} round {i} (scan={use_scan})"));
    assert!(v >= last, "{iso:?}: went back in time {last} -> {v}");
    let mut newest = v;
    if iso == TransactionIsolation::ReadCommitted {
        // Point reads in key order are each the latest value: never decreasing.
        let vals: Vec<i64> = (0..KEYS).map(|j| read_some(&mut t, k(j))).collect();
        assert!(
            vals.windows(2).all(|w| w.first() <= w.last()) && vals.iter().all(|x| *x >= v),
            "{iso:?}: RC point reads went backwards: {vals:?} after {v}"
        );
        newest = vals.last().copied().unwrap_or(v);
    } else {
        // A second look inside the same transaction is unchanged.
        let again: Vec<i64> = scan(&mut t, ..).into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            again, seen,
            "{iso:?}: snapshot changed inside a transaction"
        );
    }
    let info = ok(t.commit(), "reader commit (read-only, must not abort)");
    assert!(info.read_only);
    newest
}

fn run(test: &str, iso: TransactionIsolation) {
    let seed = seed(test);
    let db = db(iso, ConflictResolution::Fail);
    let init: Vec<(Key, i64)> = (0..KEYS).map(|i| (k(i), 0)).collect();
    seed_values(&db, &init);
    let committed_writes = Arc::new(AtomicI64::new(0));
    let barrier = Arc::new(Barrier::new(WRITERS + READERS));
    let mut handles = Vec::new();

    for _ in 0..WRITERS {
        let (db, barrier, n) = (
            db.clone(),
            Arc::clone(&barrier),
            Arc::clone(&committed_writes),
        );
        handles.push(thread::spawn(move || {
            barrier.wait();
            for _ in 0..WRITES_PER_WRITER {
                let r = db.atomically(|t| {
                    let v = t.read(k(0))?.map_or(0, |b| value(&b));
                    for i in 0..KEYS {
                        t.write(k(i), batch(v + 1))?;
                    }
                    Ok(())
                });
                match r {
                    Ok(()) => {
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if e.is_conflict() => {}
                    Err(e) => fail("writer", e),
                }
            }
        }));
    }

    for r in 0..READERS {
        let (db, barrier) = (db.clone(), Arc::clone(&barrier));
        handles.push(thread::spawn(move || {
            let mut rng = Rng::new(seed.wrapping_add(r as u64));
            barrier.wait();
            let mut last = 0_i64;
            for i in 0..READS_PER_READER {
                last = reader_round(&db, &mut rng, iso, i, last);
            }
        }));
    }
    join_all(handles);
    let n = committed_writes.load(Ordering::Relaxed);
    assert!(n > 0, "{iso:?}: no writer committed");
    let all = committed_all(&db);
    assert_eq!(all.len(), KEYS);
    assert!(
        all.iter().all(|(_, v)| *v == n),
        "{iso:?}: final {all:?} != {n} commits"
    );
    eprintln!("{test}: {n} writes committed");
}

#[test]
fn atomic_visibility_read_committed_scan() {
    run(
        "atomic_visibility_read_committed_scan",
        TransactionIsolation::ReadCommitted,
    );
}

#[test]
fn atomic_visibility_repeatable_read() {
    run(
        "atomic_visibility_repeatable_read",
        TransactionIsolation::RepeatableRead,
    );
}

#[test]
fn atomic_visibility_serializable() {
    run(
        "atomic_visibility_serializable",
        TransactionIsolation::Serializable,
    );
}
