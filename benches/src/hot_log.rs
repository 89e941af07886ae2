//! The hot-log benchmark of `compare`: threads appending to one log key,
//! with [`Transaction::append`](khonsu::Transaction::append) against the
//! read-modify-write log a user writes without it (read the log, append a
//! row, write it back, in `atomically`).
//!
//! Every cell runs on a fresh `Serializable` database whose log holds
//! `preload` rows at the start; each write appends one fresh one-row batch
//! (built per write, as a user's code does). Rows: committed appends per
//! second, aborted attempts, and the log's length at the end, which must be
//! the preload plus every committed append (checked: a lost or duplicated
//! row fails the run).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow_array::{Int64Array, RecordBatch};
use khonsu::{Khonsu, TransactionIsolation};
use snafu::ResultExt;

use crate::Result;
use crate::error::{ArrowSnafu, InvariantSnafu, KhonsuSnafu};

/// The log's key.
const LOG: &str = "trades";

/// How a cell appends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogMode {
    /// `Transaction::append`: no read, never a conflict.
    Append,
    /// Read the log, `arrow_utils::append` a row, write it back.
    ReadModifyWrite,
}

impl LogMode {
    /// Both modes, in report order.
    pub const ALL: [Self; 2] = [Self::Append, Self::ReadModifyWrite];

    /// The row name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Append => "khonsu append",
            Self::ReadModifyWrite => "khonsu rmw log",
        }
    }
}

/// One measured cell.
#[derive(Clone, Copy, Debug)]
pub struct LogCell {
    /// Committed appends.
    pub commits: u64,
    /// Aborted attempts (conflicts `atomically` retried).
    pub aborts: u64,
    /// Wall time of the cell.
    pub elapsed: Duration,
    /// Rows in the log at the end.
    pub rows: usize,
}

impl LogCell {
    /// Committed appends per second.
    #[must_use]
    pub fn tx_per_s(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            #[expect(clippy::cast_precision_loss, reason = "a rate")]
            let commits = self.commits as f64;
            commits / secs
        } else {
            0.0
        }
    }
}

fn trade(n: i64) -> Result<RecordBatch> {
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![n])) as _),
        ("qty", Arc::new(Int64Array::from(vec![n % 100 + 1])) as _),
    ])
    .context(ArrowSnafu { what: "trade" })
}

/// Runs one cell: `threads` threads append for `duration` to a log that
/// starts with `preload` rows.
///
/// # Errors
/// A Khonsu error other than a retried conflict, or a log whose length is
/// not the preload plus every committed append.
pub fn run_log_cell(
    mode: LogMode,
    threads: usize,
    duration: Duration,
    preload: usize,
) -> Result<LogCell> {
    let engine = mode.name();
    let db = Khonsu::builder()
        .isolation(TransactionIsolation::Serializable)
        .max_retries(u32::MAX)
        .build()
        .context(KhonsuSnafu {
            engine,
            operation: "build",
        })?;
    let ids: Vec<i64> = (0..i64::try_from(preload).unwrap_or(i64::MAX)).collect();
    let start = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids.clone())) as _),
        ("qty", Arc::new(Int64Array::from(ids)) as _),
    ])
    .context(ArrowSnafu { what: "log" })?;
    db.atomically(|t| t.write(LOG, start.clone()))
        .context(KhonsuSnafu {
            engine,
            operation: "preload",
        })?;
    let stop = AtomicBool::new(false);
    let commits = AtomicU64::new(0);
    let started = Instant::now();
    let outcome: Result<()> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let (db, stop, commits) = (&db, &stop, &commits);
                s.spawn(move || -> Result<()> {
                    let mut n = i64::try_from(thread).unwrap_or(0) << 40;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let row = trade(n)?;
                        let done = match mode {
                            LogMode::Append => db.atomically(|t| t.append(LOG, row.clone())),
                            LogMode::ReadModifyWrite => db.atomically(|t| {
                                let log = match t.read(LOG)? {
                                    Some(old) => khonsu::arrow_utils::append(&old, &row)?,
                                    None => row.clone(),
                                };
                                t.write(LOG, log)
                            }),
                        };
                        done.context(KhonsuSnafu {
                            engine,
                            operation: "append",
                        })?;
                        commits.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            match worker.join() {
                Ok(result) => result?,
                Err(_) => {
                    return InvariantSnafu {
                        engine,
                        message: "a worker panicked".to_owned(),
                    }
                    .fail();
                }
            }
        }
        Ok(())
    });
    let elapsed = started.elapsed();
    outcome?;
    let commits = commits.load(Ordering::Relaxed);
    let rows = db
        .start_transaction()
        .read(LOG)
        .context(KhonsuSnafu {
            engine,
            operation: "final read",
        })?
        .map_or(0, |log| log.num_rows());
    let expected = preload + usize::try_from(commits).unwrap_or(usize::MAX);
    if rows != expected {
        return InvariantSnafu {
            engine,
            message: format!("the log holds {rows} rows, expected {expected}"),
        }
        .fail();
    }
    let metrics = db.metrics();
    Ok(LogCell {
        commits,
        aborts: metrics.aborts.conflicts(),
        elapsed,
        rows,
    })
}

/// Runs every mode at every thread count and preload, `rounds` times with
/// the modes interleaved (order rotating), and prints the table with the
/// median round of each and the append ÷ read-modify-write ratio.
///
/// # Errors
/// As [`run_log_cell`].
pub fn run_and_print(
    threads: &[usize],
    preloads: &[usize],
    rounds: usize,
    duration: Duration,
) -> Result<()> {
    println!("## Hot log: appends to one key (Serializable, fresh database per cell)");
    println!(
        "each commit appends one fresh 2-column Int64 row to key `{LOG}`; `khonsu append` uses \
         Transaction::append, `khonsu rmw log` reads, appends (arrow_utils::append) and writes \
         back in atomically; {rounds} rounds x {} ms, modes interleaved; median round",
        duration.as_millis()
    );
    println!(
        "{:<16} {:>7} {:>8} {:>12} {:>8} {:>10} {:>10}",
        "mode", "threads", "preload", "appends/s", "abort%", "log rows", "÷rmw"
    );
    for &preload in preloads {
        for &thread_count in threads {
            let mut cells: Vec<Vec<LogCell>> = vec![Vec::new(); LogMode::ALL.len()];
            for round in 0..rounds {
                for offset in 0..LogMode::ALL.len() {
                    let index = (round + offset) % LogMode::ALL.len();
                    let (Some(&mode), Some(out)) = (LogMode::ALL.get(index), cells.get_mut(index))
                    else {
                        continue;
                    };
                    out.push(run_log_cell(mode, thread_count, duration, preload)?);
                }
            }
            let median = |cells: &mut Vec<LogCell>| {
                cells.sort_by(|a, b| a.tx_per_s().total_cmp(&b.tx_per_s()));
                cells.get(cells.len() / 2).copied()
            };
            let medians: Vec<Option<LogCell>> = cells.iter_mut().map(median).collect();
            let rmw = medians.get(1).copied().flatten().map(|c| c.tx_per_s());
            for (mode, cell) in LogMode::ALL.iter().zip(&medians) {
                let Some(cell) = cell else { continue };
                let attempts = cell.commits + cell.aborts;
                #[expect(clippy::cast_precision_loss, reason = "a percentage")]
                let abort_pct = if attempts == 0 {
                    0.0
                } else {
                    100.0 * cell.aborts as f64 / attempts as f64
                };
                let ratio = rmw
                    .filter(|r| *r > 0.0)
                    .map_or_else(|| "-".to_owned(), |r| format!("{:.2}", cell.tx_per_s() / r));
                println!(
                    "{:<16} {:>7} {:>8} {:>12.0} {:>7.1}% {:>10} {:>10}",
                    mode.name(),
                    thread_count,
                    preload,
                    cell.tx_per_s(),
                    abort_pct,
                    cell.rows,
                    ratio
                );
            }
        }
    }
    println!();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes_keep_every_row() {
        for mode in LogMode::ALL {
            let cell = run_log_cell(mode, 2, Duration::from_millis(20), 10).unwrap();
            assert!(cell.commits > 0, "{mode:?}");
            assert_eq!(cell.rows, 10 + usize::try_from(cell.commits).unwrap());
        }
        assert_eq!(
            run_log_cell(LogMode::Append, 1, Duration::ZERO, 0)
                .unwrap()
                .aborts,
            0
        );
    }
}
