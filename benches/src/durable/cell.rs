//! One durable measurement: one engine, one workload, N committer threads,
//! a fixed time (the same shape as [`run_cell`](crate::run_cell)).
//!
//! Committers start together on a [`Barrier`]; the calling thread sleeps
//! for the duration and raises a stop flag each committer checks between
//! calls. A call carries [`DurableEngine::batch`] commits (one, or the
//! hand-batch). CPU time is the committers' own clocks plus the engine's
//! background threads (fjall's and canopydb's flushers), as in `compare`.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::cpu::{cpu_time_since, current_thread_id, other_threads_cpu_times, thread_cpu_time};
use crate::error::{Result, WorkerPanickedSnafu};
use crate::rng::SplitMix64;
use crate::runner::Measurement;

use super::engines::{DurableEngine, GroupCounters, Transfer};
use super::{Accounts, BLIND_BASE, DurableWorkload};

/// One durable measurement's parameters.
#[derive(Clone, Copy, Debug)]
pub struct DurableCell {
    /// The workload.
    pub workload: DurableWorkload,
    /// Committer threads.
    pub threads: usize,
    /// How long the committers run.
    pub duration: Duration,
    /// Seed of the committers' key generators.
    pub seed: u64,
    /// Accounts (and blind-write keys) the engine was loaded with.
    pub accounts: u64,
}

/// What one durable measurement observed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DurableMeasurement {
    /// Commits, aborts, wall and CPU time.
    pub measurement: Measurement,
    /// How Khonsu grouped the cell's commits (`None` for raw stores).
    pub group: Option<GroupCounters>,
}

/// Runs `cell` against `engine`.
///
/// # Errors
/// The engine's failure or a panicking committer.
pub fn run_durable_cell(
    engine: &dyn DurableEngine,
    cell: &DurableCell,
) -> Result<DurableMeasurement> {
    let threads = cell.threads.max(1);
    let this_thread = current_thread_id();
    let group_before = engine.group_counters();
    let background_before = other_threads_cpu_times(this_thread);
    let barrier = Barrier::new(threads + 1);
    let stop = AtomicBool::new(false);
    let accounts = Accounts::new();
    let results: Vec<Result<Totals>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                let (barrier, stop, accounts) = (&barrier, &stop, &accounts);
                scope.spawn(move || {
                    let outcome = committer(engine, accounts, cell, index, barrier, stop);
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
        total.txns += worker.commits;
        total.aborts += worker.aborts;
        total.wall = total.wall.max(worker.wall);
        total.cpu = total.cpu.zip(worker.cpu).map(|(a, b)| a + b);
    }
    total.cpu = total.cpu.zip(background).map(|(a, b)| a + b);
    let group = engine
        .group_counters()
        .zip(group_before)
        .map(|(after, before)| after.since(before));
    Ok(DurableMeasurement {
        measurement: total,
        group,
    })
}

#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    commits: u64,
    aborts: u64,
    wall: Duration,
    cpu: Option<Duration>,
}

fn committer(
    engine: &dyn DurableEngine,
    accounts: &Accounts,
    cell: &DurableCell,
    index: usize,
    barrier: &Barrier,
    stop: &AtomicBool,
) -> Result<Totals> {
    let index = u64::try_from(index).unwrap_or(u64::MAX);
    let mut rng = SplitMix64::new(cell.seed ^ (index + 1).wrapping_mul(0xA076_1D64_78BD_642F));
    let per_call = engine.batch().max(1);
    let keys = cell.accounts.max(2);
    let mut writes: Vec<(u64, i64)> = Vec::with_capacity(per_call);
    let mut moves: Vec<Transfer> = Vec::with_capacity(per_call);
    let (mut commits, mut aborts) = (0_u64, 0_u64);
    barrier.wait();
    let cpu_start = thread_cpu_time();
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match cell.workload {
            DurableWorkload::Blind => {
                writes.clear();
                for _ in 0..per_call {
                    let balance = i64::try_from(rng.below(1 << 40)).unwrap_or(0);
                    writes.push((BLIND_BASE + rng.below(keys), balance));
                }
                aborts += engine.blind(accounts, &writes)?;
            }
            DurableWorkload::Transfer => {
                moves.clear();
                for _ in 0..per_call {
                    let from = rng.below(keys);
                    let to = (from + 1 + rng.below(keys - 1)) % keys;
                    let amount = i64::try_from(rng.below(100) + 1).unwrap_or(1);
                    moves.push(Transfer { from, to, amount });
                }
                aborts += engine.transfer(accounts, &moves)?;
            }
        }
        commits += u64::try_from(per_call).unwrap_or(0);
    }
    let wall = start.elapsed();
    let cpu = thread_cpu_time()
        .zip(cpu_start)
        .map(|(end, begin)| end.saturating_sub(begin));
    Ok(Totals {
        commits,
        aborts,
        wall,
        cpu,
    })
}
