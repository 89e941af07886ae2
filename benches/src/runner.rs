//! Runs one measurement: one engine, one workload, N threads, a fixed time.
//!
//! Worker threads start together on a [`Barrier`]; the calling thread then
//! sleeps for the measurement's duration and raises a stop flag that each
//! worker checks between transactions. Each worker reads its own CPU clock
//! ([`thread_cpu_time`]) and wall clock at the start and the end; the
//! calling thread adds the CPU time of the engine's background threads
//! ([`other_threads_cpu_times`] before the start and after the join), so
//! that the CPU time is the whole process's minus the idle driver thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use snafu::ensure;

use crate::cpu::{cpu_time_since, current_thread_id, other_threads_cpu_times, thread_cpu_time};
use crate::engines::{Done, Engine};
use crate::error::{LostUpdateSnafu, Result, WorkerPanickedSnafu, WrongRowsSnafu};
use crate::rng::SplitMix64;
use crate::values::{COUNTER_KEY, Counter, ValuePool};
use crate::workloads::{HOT_KEYS, Op, SCAN_LEN, Workload, YCSB_OPS_PER_TXN, reads_in};
use crate::zipf::{YCSB_THETA, Zipfian};

/// What every measurement shares: the keyspace, the values and the skewed
/// key chooser. Build it once, before any engine.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Keys `0..keys` are loaded in every engine.
    pub keys: u64,
    /// The values.
    pub pool: ValuePool,
    /// The `rmw1` counter's schema.
    pub counter: Counter,
    /// Keys of the YCSB workloads.
    pub zipf: Zipfian,
}

impl Setup {
    /// Values in a pool of this many batches.
    pub const POOL_SIZE: usize = 64;

    /// A setup over `keys` keys (at least [`SCAN_LEN`]).
    ///
    /// # Errors
    /// [`Error::Arrow`](crate::Error::Arrow) if a value cannot be built.
    pub fn new(keys: u64) -> Result<Self> {
        let keys = keys.max(SCAN_LEN);
        Ok(Self {
            keys,
            pool: ValuePool::new(Self::POOL_SIZE)?,
            counter: Counter::new(),
            zipf: Zipfian::new(keys, YCSB_THETA),
        })
    }
}

/// One measurement's parameters.
#[derive(Clone, Copy, Debug)]
pub struct CellSpec {
    /// The workload.
    pub workload: Workload,
    /// Worker threads.
    pub threads: usize,
    /// How long the workers run.
    pub duration: Duration,
    /// Seed of the workers' key generators (each worker derives its own).
    pub seed: u64,
}

/// What one measurement observed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Measurement {
    /// Committed transactions, all workers.
    pub txns: u64,
    /// Aborted attempts (retried), all workers.
    pub aborts: u64,
    /// The longest worker's wall time from the start barrier to its stop.
    pub wall: Duration,
    /// CPU time of the workers plus the engine's background threads;
    /// `None` without thread CPU clocks.
    pub cpu: Option<Duration>,
    /// The part of `cpu` spent by the engine's background threads (from
    /// before the workers start until they are joined).
    pub background_cpu: Option<Duration>,
}

/// What one worker observed.
#[derive(Clone, Copy, Debug, Default)]
struct WorkerTotals {
    txns: u64,
    aborts: u64,
    wall: Duration,
    cpu: Option<Duration>,
}

/// Runs `cell` against `engine`. For `rmw1` it first resets the counter
/// (outside timing) and afterwards checks that it equals the number of
/// commits, unless the engine is not transactional.
///
/// # Errors
/// The engine's failure, a transaction that saw a wrong number of rows
/// ([`Error::WrongRows`](crate::Error::WrongRows)), a lost update
/// ([`Error::LostUpdate`](crate::Error::LostUpdate)) or a panicking worker.
pub fn run_cell(engine: &dyn Engine, setup: &Setup, cell: &CellSpec) -> Result<Measurement> {
    let threads = cell.threads.max(1);
    if cell.workload == Workload::Rmw1 {
        engine.put(COUNTER_KEY, &Arc::new(setup.counter.batch(0)?))?;
    }
    // The engine's background threads (not the workers, not this one).
    let this_thread = current_thread_id();
    let background_before = other_threads_cpu_times(this_thread);
    let barrier = Barrier::new(threads + 1);
    let stop = AtomicBool::new(false);
    let results: Vec<Result<WorkerTotals>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                let (barrier, stop) = (&barrier, &stop);
                scope.spawn(move || {
                    let outcome = worker(engine, setup, cell, index, barrier, stop);
                    if outcome.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    outcome
                })
            })
            .collect();
        barrier.wait();
        thread::sleep(cell.duration);
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    WorkerPanickedSnafu {
                        engine: engine.name(),
                        workload: cell.workload.name(),
                    }
                    .fail()
                })
            })
            .collect()
    });
    // The workers have exited: what is left is this thread and the engine's.
    let background = background_before
        .zip(other_threads_cpu_times(this_thread))
        .map(|(before, after)| cpu_time_since(&before, &after));
    let mut total = Measurement {
        cpu: Some(Duration::ZERO),
        background_cpu: background,
        ..Measurement::default()
    };
    for result in results {
        let worker = result?;
        total.txns += worker.txns;
        total.aborts += worker.aborts;
        total.wall = total.wall.max(worker.wall);
        total.cpu = total.cpu.zip(worker.cpu).map(|(a, b)| a + b);
    }
    total.cpu = total.cpu.zip(background).map(|(a, b)| a + b);
    if cell.workload == Workload::Rmw1 && engine.is_transactional() {
        let found = engine.read_counter(COUNTER_KEY)?;
        ensure!(
            u64::try_from(found).ok() == Some(total.txns),
            LostUpdateSnafu {
                engine: engine.name(),
                found,
                commits: total.txns,
            }
        );
    }
    Ok(total)
}

fn worker(
    engine: &dyn Engine,
    setup: &Setup,
    cell: &CellSpec,
    index: usize,
    barrier: &Barrier,
    stop: &AtomicBool,
) -> Result<WorkerTotals> {
    let index = u64::try_from(index).unwrap_or(u64::MAX);
    let mut rng = SplitMix64::new(cell.seed ^ (index + 1).wrapping_mul(0xA076_1D64_78BD_642F));
    let mut ops: Vec<Op<'_>> = Vec::with_capacity(YCSB_OPS_PER_TXN);
    let keys = setup.keys;
    // A non-transactional engine may miss a key that is being overwritten.
    let exact = engine.is_transactional();
    let check = |done: Done, expected: u64| {
        ensure!(
            done.rows == expected || (!exact && done.rows < expected),
            WrongRowsSnafu {
                engine: engine.name(),
                workload: cell.workload.name(),
                found: done.rows,
                expected,
            }
        );
        Ok(done)
    };
    barrier.wait();
    let cpu_start = thread_cpu_time();
    let start = Instant::now();
    let (txns, aborts) = match cell.workload {
        Workload::R1 => drive(stop, || check(engine.get(rng.below(keys))?, 1)),
        Workload::W1 => drive(stop, || {
            let key = rng.below(keys);
            check(engine.put(key, setup.pool.pick(&mut rng))?, 0)
        }),
        Workload::Rmw1 => drive(stop, || {
            check(engine.increment(COUNTER_KEY, &setup.counter)?, 1)
        }),
        Workload::YcsbA | Workload::YcsbB | Workload::YcsbC => {
            let read_fraction = cell.workload.ycsb_read_fraction().unwrap_or(1.0);
            drive(stop, || {
                ops.clear();
                for _ in 0..YCSB_OPS_PER_TXN {
                    let key = setup.zipf.sample(&mut rng);
                    ops.push(if rng.unit() < read_fraction {
                        Op::Read(key)
                    } else {
                        Op::Update(key, setup.pool.pick(&mut rng))
                    });
                }
                check(engine.execute(&ops)?, reads_in(&ops))
            })
        }
        Workload::Scan100 => drive(stop, || {
            let start_key = rng.below(keys.saturating_sub(SCAN_LEN) + 1);
            check(engine.scan(start_key, SCAN_LEN)?, SCAN_LEN)
        }),
        Workload::Skew => drive(stop, || {
            let hot = HOT_KEYS.min(keys).max(2);
            let write = rng.below(hot);
            let read = (write + 1 + rng.below(hot - 1)) % hot;
            check(engine.skew(write, read, setup.pool.pick(&mut rng))?, 2)
        }),
        Workload::Matcher => drive(stop, || {
            let hot = HOT_KEYS.min(keys);
            if rng.below(2) == 0 {
                check(engine.put(rng.below(hot), setup.pool.pick(&mut rng))?, 0)
            } else {
                // Fills go above the loaded keys, one slot per worker and draw.
                let fill = keys + index * (1 << 32) + rng.below(1 << 32);
                check(
                    engine.match_order(hot, fill, setup.pool.pick(&mut rng))?,
                    hot,
                )
            }
        }),
    }?;
    let wall = start.elapsed();
    let cpu = thread_cpu_time()
        .zip(cpu_start)
        .map(|(end, begin)| end.saturating_sub(begin));
    Ok(WorkerTotals {
        txns,
        aborts,
        wall,
        cpu,
    })
}

/// Runs transactions until `stop` is raised; returns (commits, aborts).
fn drive(stop: &AtomicBool, mut transaction: impl FnMut() -> Result<Done>) -> Result<(u64, u64)> {
    let (mut txns, mut aborts) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let done = transaction()?;
        txns += 1;
        aborts += done.aborts;
    }
    Ok((txns, aborts))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::sync::Arc;

    use arrow_array::RecordBatch;

    use super::{CellSpec, Setup, run_cell};
    use crate::engines::{Done, Engine, EngineKind, SkipMapEngine};
    use crate::values::Counter;
    use crate::workloads::{Op, Workload};

    /// An engine that claims to be transactional but counts twice.
    struct DoubleCounting(SkipMapEngine);

    impl Engine for DoubleCounting {
        fn name(&self) -> &'static str {
            "double-counting"
        }
        fn get(&self, key: u64) -> crate::Result<Done> {
            self.0.get(key)
        }
        fn put(&self, key: u64, value: &Arc<RecordBatch>) -> crate::Result<Done> {
            self.0.put(key, value)
        }
        fn increment(&self, key: u64, counter: &Counter) -> crate::Result<Done> {
            self.0.increment(key, counter)?;
            self.0.increment(key, counter)
        }
        fn execute(&self, ops: &[Op<'_>]) -> crate::Result<Done> {
            self.0.execute(ops)
        }
        fn scan(&self, start: u64, len: u64) -> crate::Result<Done> {
            self.0.scan(start, len)
        }
        fn read_counter(&self, key: u64) -> crate::Result<i64> {
            self.0.read_counter(key)
        }
    }

    #[test]
    fn a_wrong_counter_fails_the_measurement() -> snafu::Report<crate::Error> {
        snafu::Report::capture(|| {
            let setup = Setup::new(1_000)?;
            let engine = DoubleCounting(SkipMapEngine::new(setup.keys, &setup.pool));
            let cell = CellSpec {
                workload: Workload::Rmw1,
                threads: 1,
                duration: Duration::from_millis(5),
                seed: 1,
            };
            let outcome = run_cell(&engine, &setup, &cell);
            assert!(
                matches!(outcome, Err(crate::Error::LostUpdate { found, commits, .. }) if found == 2 * i64::try_from(commits).unwrap_or(0)),
                "{outcome:?}"
            );
            Ok(())
        })
    }

    /// Every workload runs on every engine, with the checks of `run_cell`
    /// (rows seen, `rmw1` counter) passing.
    #[test]
    fn every_workload_runs_on_every_engine() -> snafu::Report<crate::Error> {
        snafu::Report::capture(every_workload)
    }

    fn every_workload() -> Result<(), crate::Error> {
        let setup = Setup::new(2_000)?;
        for kind in EngineKind::ALL {
            let engine = kind.build(setup.keys, &setup.pool)?;
            for workload in Workload::ALL {
                if !engine.supports(workload) {
                    continue;
                }
                let cell = CellSpec {
                    workload,
                    threads: 2,
                    duration: Duration::from_millis(20),
                    seed: 7,
                };
                let measured = run_cell(engine.as_ref(), &setup, &cell)?;
                assert!(measured.txns > 0, "{kind} {workload}: no transaction ran");
                assert!(
                    measured.wall >= Duration::from_millis(10),
                    "{kind} {workload}"
                );
            }
            engine.maintain();
        }
        Ok(())
    }
}
