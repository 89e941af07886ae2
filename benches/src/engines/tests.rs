//! Every engine is correct before it is fast: smoke tests run on all of
//! them.

use std::sync::{Arc, Barrier};

use snafu::Report;

use super::EngineKind;
use crate::error::Error;
use crate::values::{Counter, ValuePool};
use crate::workloads::Op;

const KEYS: u64 = 500;

#[test]
fn write_then_read_returns_the_value() -> Report<Error> {
    Report::capture(write_then_read)
}

fn write_then_read() -> Result<(), Error> {
    let pool = ValuePool::new(8)?;
    let counter = Counter::new();
    for kind in EngineKind::ALL {
        let engine = kind.build(KEYS, &pool)?;
        assert_eq!(engine.name(), kind.name());
        assert_eq!(engine.get(3)?.rows, 1, "{kind}: loaded key");
        assert_eq!(engine.get(KEYS + 1)?.rows, 0, "{kind}: key never loaded");

        engine.put(7, &Arc::new(counter.batch(42)?))?;
        assert_eq!(engine.read_counter(7)?, 42, "{kind}: put then read");

        // Read-your-writes inside one transaction, then the commit is visible.
        let nine = Arc::new(counter.batch(9)?);
        let done = engine.execute(&[Op::Update(8, &nine), Op::Read(8), Op::Read(9)])?;
        assert_eq!(done.rows, 2, "{kind}: reads in a writing transaction");
        assert_eq!(engine.read_counter(8)?, 9, "{kind}: committed update");

        let done = engine.execute(&[Op::Read(1), Op::Read(2)])?;
        assert_eq!(done.rows, 2, "{kind}: read-only transaction");

        assert_eq!(engine.scan(100, 100)?.rows, 100, "{kind}: scan");
        assert_eq!(
            engine.scan(KEYS - 10, 100)?.rows,
            10,
            "{kind}: scan past the end"
        );

        assert!(
            engine.read_counter(3).is_err(),
            "{kind}: a value is no counter"
        );
        assert!(
            engine.increment(3, &counter).is_err(),
            "{kind}: increment a value"
        );
        engine.maintain();
        assert_eq!(engine.read_counter(8)?, 9, "{kind}: maintenance keeps data");
    }
    Ok(())
}

#[test]
fn concurrent_increments_are_not_lost() -> Report<Error> {
    Report::capture(concurrent_increments)
}

fn concurrent_increments() -> Result<(), Error> {
    const PER_THREAD: u64 = 500;
    const THREADS: u64 = 2;
    let pool = ValuePool::new(8)?;
    let counter = Counter::new();
    for kind in EngineKind::ALL {
        let engine = kind.build(KEYS, &pool)?;
        engine.put(0, &Arc::new(counter.batch(0)?))?;
        let barrier = Barrier::new(2);
        let aborts = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    scope.spawn(|| -> Result<u64, Error> {
                        barrier.wait();
                        let mut aborts = 0;
                        for _ in 0..PER_THREAD {
                            aborts += engine.increment(0, &counter)?.aborts;
                        }
                        Ok(aborts)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().unwrap_or_else(|_| Ok(u64::MAX)))
                .collect::<Result<Vec<u64>, Error>>()
        })?;
        assert!(
            aborts.iter().all(|a| *a != u64::MAX),
            "{kind}: worker panicked"
        );
        let found = engine.read_counter(0)?;
        if engine.is_transactional() {
            assert_eq!(
                u64::try_from(found).ok(),
                Some(PER_THREAD * THREADS),
                "{kind}: lost updates (aborts {aborts:?})"
            );
        } else {
            // The floor is not atomic: it may lose updates, never invent them.
            assert!(found > 0 && u64::try_from(found).unwrap_or(u64::MAX) <= PER_THREAD * THREADS);
        }
    }
    Ok(())
}

#[test]
fn names_round_trip() {
    for kind in EngineKind::ALL {
        assert_eq!(EngineKind::parse(kind.name()), Some(kind));
    }
    assert_eq!(EngineKind::parse("nope"), None);
    assert!(EngineKind::ALL.contains(&EngineKind::REFERENCE));
}
