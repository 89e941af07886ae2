//! Running a demo: the transfer and auditor threads over an open [`Bank`], the
//! coordinator that starts them, stops them and refreshes the progress line,
//! and the [`Summary`] it returns.
//!
//! A retryable conflict never ends the run; any other engine error does, and is
//! returned after every thread has stopped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, ScopedJoinHandle};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use snafu::ResultExt;

use crate::args::StopAfter;
use crate::bank::{Bank, BankState};
use crate::config::{DemoConfig, Workload};
use crate::error::{Result, SpawnSnafu, ThreadPanickedSnafu};
use crate::report::{Holdings, Summary};
use crate::stats::{AbortCounts, DurableCounters, LatencyHistogram};

/// How often the coordinator refreshes the progress line and checks the clock.
const TICK: Duration = Duration::from_millis(50);

/// State shared by the coordinator and the threads; all counters are relaxed and
/// only feed the progress line (the summary merges per-thread results).
#[derive(Debug, Default)]
struct Control {
    /// Set when the run is over (time up, workers done, or an error).
    stop: AtomicBool,
    /// Transfers handed out so far (in `--transfers` mode).
    claimed: AtomicU64,
    /// Committed transfers so far.
    committed: AtomicU64,
    /// Aborted attempts so far.
    aborted: AtomicU64,
}

impl Control {
    /// Whether the run is over.
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Ends the run for every thread.
    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Claims the next transfer; `false` when the worker should finish.
    fn claim(&self, stop: StopAfter) -> bool {
        if self.stopped() {
            return false;
        }
        match stop {
            StopAfter::Transfers(total) => self.claimed.fetch_add(1, Ordering::Relaxed) < total,
            StopAfter::Elapsed(_) => true,
        }
    }
}

/// What one transfer thread did.
#[derive(Debug)]
struct WorkerStats {
    /// Committed transfers.
    committed: u64,
    /// Aborted attempts, by kind.
    aborts: AbortCounts,
    /// Duration of each successful `commit` call.
    commit_latency: LatencyHistogram,
    /// Duration of each committed transfer from its first attempt, retries included.
    transfer_latency: LatencyHistogram,
    /// When the thread finished its last transfer.
    finished: Instant,
}

/// What one auditor thread did.
#[derive(Debug, Default)]
struct AuditorStats {
    /// Completed audits.
    audits: u64,
    /// Audits whose account count or total differed from the initial state.
    inconsistent: u64,
    /// Read-only transactions that failed with a conflict (the engine promises none).
    read_only_aborts: u64,
}

/// Seed of worker `index`: distinct, well-mixed streams from one user seed.
fn worker_seed(seed: u64, index: u32) -> u64 {
    seed ^ (u64::from(index) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Backs off after the `attempt`-th consecutive conflict: a short spin first, then
/// yielding the processor so the winner can finish.
fn back_off(attempt: u32) {
    if attempt < 6 {
        for _ in 0..(1_u32 << attempt) {
            std::hint::spin_loop();
        }
    } else {
        thread::yield_now();
    }
}

/// A transfer thread: claims transfers until told to stop, retrying each on conflict.
fn transfer_worker(
    bank: &Bank,
    shared: &Control,
    config: &Workload,
    index: u32,
) -> Result<WorkerStats> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(worker_seed(config.seed, index));
    let mut stats = WorkerStats {
        committed: 0,
        aborts: AbortCounts::default(),
        commit_latency: LatencyHistogram::default(),
        transfer_latency: LatencyHistogram::default(),
        finished: Instant::now(),
    };
    'transfers: while shared.claim(config.stop) {
        let from = rng.random_range(0..bank.accounts());
        let mut to = rng.random_range(0..bank.accounts() - 1);
        if to >= from {
            to += 1;
        }
        let wanted = rng.random_range(1..=config.max_amount);
        let started = Instant::now();
        let mut attempt = 0_u32;
        loop {
            match bank.transfer_once(from, to, wanted) {
                Ok(commit_latency) => {
                    stats.commit_latency.record(commit_latency);
                    stats.transfer_latency.record(started.elapsed());
                    stats.committed += 1;
                    shared.committed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(error) => {
                    let Some(kind) = error.conflict() else {
                        shared.stop();
                        return Err(error);
                    };
                    stats.aborts.count(kind);
                    shared.aborted.fetch_add(1, Ordering::Relaxed);
                    if shared.stopped() {
                        break 'transfers;
                    }
                    back_off(attempt);
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }
    stats.finished = Instant::now();
    Ok(stats)
}

/// An auditor thread: audits until the run is over (at least once), comparing each
/// audit with `expected`.
fn auditor(bank: &Bank, shared: &Control, expected: Holdings) -> Result<AuditorStats> {
    let mut stats = AuditorStats::default();
    loop {
        match bank.audit() {
            Ok(seen) => {
                stats.audits += 1;
                if seen != expected {
                    stats.inconsistent += 1;
                }
            }
            Err(error) => {
                if error.conflict().is_none() {
                    shared.stop();
                    return Err(error);
                }
                stats.read_only_aborts += 1;
            }
        }
        if shared.stopped() {
            return Ok(stats);
        }
    }
}

/// Joins a thread, turning a panic into an error.
fn join<T>(handle: ScopedJoinHandle<'_, Result<T>>, thread: &str) -> Result<T> {
    handle.join().unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        ThreadPanickedSnafu { thread, message }.fail()
    })
}

/// Refreshes the progress line.
fn show_progress(progress: &ProgressBar, stop: StopAfter, shared: &Control, started: Instant) {
    let elapsed = started.elapsed();
    let committed = shared.committed.load(Ordering::Relaxed);
    let aborted = shared.aborted.load(Ordering::Relaxed);
    let position = match stop {
        StopAfter::Transfers(_) => committed,
        StopAfter::Elapsed(_) => u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
    };
    progress.set_position(position);
    progress.set_message(format!(
        "committed {committed}  aborted {aborted}  {:.0} tx/s",
        crate::report::per_second(committed, elapsed)
    ));
}

/// Waits until every transfer thread has finished, stopping them when the time is
/// up, and refreshes the progress line meanwhile.
fn wait_for_workers<T>(
    workers: &[ScopedJoinHandle<'_, T>],
    shared: &Control,
    config: &Workload,
    progress: &ProgressBar,
    started: Instant,
) {
    let deadline = match config.stop {
        StopAfter::Elapsed(limit) => started.checked_add(limit),
        StopAfter::Transfers(_) => None,
    };
    while !workers.iter().all(ScopedJoinHandle::is_finished) {
        let now = Instant::now();
        if deadline.is_some_and(|deadline| now >= deadline) {
            shared.stop();
        }
        show_progress(progress, config.stop, shared, started);
        let nap = deadline.map_or(TICK, |deadline| {
            deadline
                .saturating_duration_since(now)
                .clamp(Duration::from_millis(1), TICK)
        });
        thread::sleep(nap);
    }
    show_progress(progress, config.stop, shared, started);
}

/// Per-thread results of a run.
type ThreadResults = (Vec<WorkerStats>, Vec<AuditorStats>);

/// Starts the transfer and auditor threads, waits for the stop condition and joins
/// them all. The first error (including a failure to start a thread) wins, after
/// every started thread has stopped.
fn run_threads(
    bank: &Bank,
    config: &Workload,
    initial: Holdings,
    progress: &ProgressBar,
    started: Instant,
) -> Result<ThreadResults> {
    let shared = Control::default();
    thread::scope(|scope| {
        let shared = &shared;
        let mut workers = Vec::new();
        let mut auditors = Vec::new();
        let mut spawned = Ok(());
        for index in 0..config.threads {
            match thread::Builder::new()
                .name(format!("transfer-{index}"))
                .spawn_scoped(scope, move || transfer_worker(bank, shared, config, index))
            {
                Ok(handle) => workers.push(handle),
                Err(error) => {
                    spawned = Err(error);
                    break;
                }
            }
        }
        for index in 0..config.auditors {
            if spawned.is_err() {
                break;
            }
            match thread::Builder::new()
                .name(format!("auditor-{index}"))
                .spawn_scoped(scope, move || auditor(bank, shared, initial))
            {
                Ok(handle) => auditors.push(handle),
                Err(error) => spawned = Err(error),
            }
        }
        if spawned.is_err() {
            shared.stop();
        }
        wait_for_workers(&workers, shared, config, progress, started);
        shared.stop(); // the auditors run until the workers are done

        let workers: Vec<_> = workers
            .into_iter()
            .enumerate()
            .map(|(i, handle)| join(handle, &format!("transfer thread {i}")))
            .collect();
        let auditors: Vec<_> = auditors
            .into_iter()
            .enumerate()
            .map(|(i, handle)| join(handle, &format!("auditor thread {i}")))
            .collect();
        spawned.context(SpawnSnafu)?;
        Ok((
            workers.into_iter().collect::<Result<_>>()?,
            auditors.into_iter().collect::<Result<_>>()?,
        ))
    })
}

/// Runs the workload on `bank` (opened by [`Bank::open`], which found `state`):
/// runs the transfer and auditor threads until the stop condition, audits the
/// final state and summarises. Auditors compare each audit with `state.start`;
/// the summary checks the final state against the bank as it was created.
pub(crate) fn run(
    bank: &Bank,
    config: &DemoConfig,
    state: BankState,
    progress: &ProgressBar,
) -> Result<Summary> {
    let workload = &config.workload;
    let durable_before = bank.db().durability_stats();
    let started = Instant::now();
    let (workers, auditors) = run_threads(bank, workload, state.start, progress, started)?;
    let finished = workers.iter().map(|w| w.finished).max().unwrap_or(started);
    let final_state = bank.audit()?;
    let buffer = bank.db().stats();
    let durable = durable_before
        .zip(bank.db().durability_stats())
        .map(|(before, after)| DurableCounters::between(&before, &after));

    let mut summary = Summary {
        workload: workload.clone(),
        storage: config.storage.clone(),
        bank: state,
        elapsed: finished.saturating_duration_since(started),
        committed: 0,
        aborts: AbortCounts::default(),
        commit_latency: LatencyHistogram::default(),
        transfer_latency: LatencyHistogram::default(),
        audits: 0,
        inconsistent_audits: 0,
        read_only_aborts: 0,
        final_state,
        buffer_keys: buffer.keys,
        buffer_versions: buffer.versions,
        durable,
    };
    for worker in &workers {
        summary.committed += worker.committed;
        summary.aborts.merge(&worker.aborts);
        summary.commit_latency.merge(&worker.commit_latency);
        summary.transfer_latency.merge(&worker.transfer_latency);
    }
    for auditor in &auditors {
        summary.audits += auditor.audits;
        summary.inconsistent_audits += auditor.inconsistent;
        summary.read_only_aborts += auditor.read_only_aborts;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Isolation, Resolution};
    use crate::config::{Adapter, NewBank, StorageChoice};

    fn config(isolation: Isolation, resolution: Resolution, transfers: u64) -> DemoConfig {
        DemoConfig {
            workload: Workload {
                isolation,
                resolution,
                threads: 2,
                auditors: 1,
                max_amount: 100,
                stop: StopAfter::Transfers(transfers),
                seed: 7,
            },
            new_bank: NewBank {
                asked_accounts: Some(50),
                asked_balance: Some(1000),
            },
            storage: StorageChoice::Memory,
        }
    }

    /// Opens `config`'s database and bank and runs the workload.
    fn run_config(config: &DemoConfig) -> Summary {
        let result = crate::store::open(&config.storage, &config.workload)
            .and_then(|db| Bank::open(db, config.new_bank, &config.storage))
            .and_then(|(bank, state)| run(&bank, config, state, &ProgressBar::hidden()));
        result.unwrap_or_else(|e| panic!("{}", snafu::Report::from_error(e)))
    }

    #[test]
    fn total_is_conserved_at_every_level_with_fail() {
        for isolation in [
            Isolation::ReadCommitted,
            Isolation::RepeatableRead,
            Isolation::Serializable,
        ] {
            let summary = run_config(&config(isolation, Resolution::Fail, 2000));
            assert_eq!(summary.committed, 2000, "{isolation}");
            assert!(summary.conserved(), "{isolation}:\n{summary}");
            assert_eq!(summary.bank.meta.initial_total, 50 * 1000);
            assert_eq!(summary.final_state.accounts, 50);
            assert_eq!(summary.read_only_aborts, 0, "{isolation}");
            assert!(summary.audits >= 1, "{isolation}");
            assert!(summary.passed(), "{isolation}:\n{summary}");
            assert_eq!(summary.commit_latency.len(), 2000);
            assert_eq!(summary.durable, None);
        }
    }

    #[test]
    fn read_modify_write_is_safe_whatever_the_resolution_above_read_committed() {
        for isolation in [Isolation::RepeatableRead, Isolation::Serializable] {
            for resolution in [Resolution::Replace, Resolution::Ignore, Resolution::Append] {
                let summary = run_config(&config(isolation, resolution, 500));
                assert!(summary.passed(), "{isolation}/{resolution}:\n{summary}");
                assert_eq!(summary.inconsistent_audits, 0, "{isolation}/{resolution}");
            }
        }
    }

    #[test]
    fn lossy_resolutions_at_read_committed_run_to_completion() {
        // The total may or may not drift (it depends on interleavings); the run must
        // finish without an engine error and report the outcome consistently.
        for resolution in [Resolution::Replace, Resolution::Ignore, Resolution::Append] {
            let summary = run_config(&config(Isolation::ReadCommitted, resolution, 500));
            assert_eq!(summary.committed, 500);
            assert_eq!(summary.passed(), summary.conserved(), "{resolution}");
            assert_eq!(summary.final_state.accounts, 50);
        }
    }

    #[test]
    fn a_durable_run_counts_its_writes_and_a_second_run_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(Isolation::Serializable, Resolution::Fail, 300);
        cfg.storage = StorageChoice::Durable {
            adapter: Adapter::Redb,
            dir: dir.path().to_path_buf(),
        };
        let first = run_config(&cfg);
        assert!(first.passed(), "{first}");
        assert!(!first.bank.resumed());
        let durable = first.durable.unwrap();
        assert_eq!(durable.adapter, "redb");
        // Only the transfers are counted, not the bank's creation.
        assert_eq!(durable.commits, 300);
        assert!(durable.writes >= 1 && durable.writes <= 300, "{durable:?}");
        assert!(durable.syncs >= durable.writes, "{durable:?}");

        cfg.new_bank.asked_accounts = Some(10); // ignored: the bank exists
        let second = run_config(&cfg);
        assert!(second.bank.resumed());
        assert_eq!(second.bank.runs_before, 1);
        assert_eq!(second.bank.start, first.final_state);
        assert_eq!(second.bank.meta.accounts, 50);
        assert!(second.conserved(), "{second}");
        assert!(second.to_string().contains("resumed after 1 earlier run"));
    }

    #[test]
    fn timed_run_stops() {
        let mut cfg = config(Isolation::Serializable, Resolution::Fail, 0);
        cfg.workload.stop = StopAfter::Elapsed(Duration::from_millis(200));
        let started = Instant::now();
        let summary = run_config(&cfg);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(summary.committed > 0);
        assert!(summary.passed(), "{summary}");
    }

    #[test]
    fn one_thread_without_auditors() {
        let mut cfg = config(Isolation::Serializable, Resolution::Fail, 300);
        cfg.workload.threads = 1;
        cfg.workload.auditors = 0;
        cfg.new_bank.asked_accounts = Some(2);
        let summary = run_config(&cfg);
        assert_eq!(summary.committed, 300);
        assert_eq!(summary.aborts.total(), 0);
        assert_eq!(summary.audits, 0);
        assert!(summary.passed(), "{summary}");
    }

    #[test]
    fn worker_seeds_differ() {
        assert_ne!(worker_seed(1, 0), worker_seed(1, 1));
        assert_ne!(worker_seed(1, 0), worker_seed(2, 0));
    }
}
