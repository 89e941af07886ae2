//! Counter stress test: N threads x M increments of one shared counter through
//! `Khonsu::atomically`, at every level (`ReadCommitted` with `Fail`, so no update is lost). The
//! final counter equals the number of successful commits; each thread also increments its own
//! key in the same transaction, so a half-applied commit would show up as a mismatch.

use std::sync::{Arc, Barrier};
use std::thread;

use khonsu::prelude::*;
use khonsu_tests::*;

const THREADS: usize = 4;
const INCREMENTS: usize = 1_500;

fn run(test: &str, iso: TransactionIsolation) {
    let seed = seed(test);
    let db = db(iso, ConflictResolution::Fail);
    seed_values(&db, &[("counter", 0)]);
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|th| {
            let (db, barrier) = (db.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                let mut rng = Rng::new(seed.wrapping_add(th as u64));
                let mine = key(format!("thread/{th}"));
                let mut successes = 0_i64;
                barrier.wait();
                for _ in 0..INCREMENTS {
                    // Touch a random unrelated key sometimes, to vary the read sets.
                    let noise = key(format!("noise/{}", rng.below(4)));
                    let r = db.atomically(|t| {
                        let c = t.read("counter")?.map_or(0, |b| value(&b));
                        let m = t.read(&mine)?.map_or(0, |b| value(&b));
                        let _ = t.read(&noise)?;
                        t.write("counter", batch(c + 1))?;
                        t.write(mine.clone(), batch(m + 1))
                    });
                    match r {
                        Ok(()) => successes += 1,
                        Err(e) if e.is_conflict() => {} // retries exhausted: allowed, not counted
                        Err(e) => fail("increment", e),
                    }
                }
                successes
            })
        })
        .collect();
    let per_thread: Vec<i64> = join_all(handles);
    let total: i64 = per_thread.iter().sum();

    assert_eq!(
        committed(&db, "counter"),
        Some(total),
        "{iso:?}: counter != successful commits"
    );
    for (th, n) in per_thread.iter().enumerate() {
        assert_eq!(
            committed(&db, format!("thread/{th}")),
            if *n == 0 { None } else { Some(*n) },
            "{iso:?}: thread {th}"
        );
    }
    assert!(total > 0, "{iso:?}: nothing committed");
    eprintln!(
        "{test}: {total} of {} increments committed",
        THREADS * INCREMENTS
    );
}

#[test]
fn counter_read_committed_fail() {
    run(
        "counter_read_committed_fail",
        TransactionIsolation::ReadCommitted,
    );
}

#[test]
fn counter_repeatable_read() {
    run(
        "counter_repeatable_read",
        TransactionIsolation::RepeatableRead,
    );
}

#[test]
fn counter_serializable() {
    run("counter_serializable", TransactionIsolation::Serializable);
}
