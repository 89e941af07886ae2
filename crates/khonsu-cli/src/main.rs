//! `khonsu`: the command line of Khonsu, a software transactional memory whose
//! values are Apache Arrow `RecordBatch`es.
//!
//! `khonsu demo` runs the project's main job, a bank-transfer workload: worker
//! threads move money between accounts in transactions, auditors check in
//! read-only transactions that no money appears or disappears, and a summary
//! reports throughput, aborts by conflict kind, commit latency percentiles, the
//! storage's writes and syncs, and whether the total was conserved. The bank
//! persists in `./khonsu-data` (redb) by default, and a second run resumes it.
//! `khonsu inspect DIR` shows what a data directory holds and verifies it. See
//! `khonsu demo --help` and `khonsu inspect --help`.
//!
//! Modules, in the order a run uses them: [`args`] (flags), [`config`] (flags
//! resolved into a run's configuration), [`store`] (opening the database,
//! inspecting a store), [`bank`] (the accounts: create or resume, transfer,
//! audit), [`run`] (the threads), [`report`] and [`inspection`] (what is
//! printed), [`stats`] (counters, latency histogram), [`error`].

mod args;
mod bank;
mod config;
mod error;
mod inspection;
mod report;
mod run;
mod stats;
mod store;

use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::{Cli, Command, DemoArgs, InspectArgs, StopAfter};
use crate::bank::Bank;
use crate::config::DemoConfig;
use crate::error::{Error, Result};
use crate::inspection::InspectionReport;
use crate::report::Summary;

/// Exit code of an error (opening a store, the engine, anything but a conflict).
const EXIT_ERROR: u8 = 1;
/// Exit code of a usage error (clap's own, and flags this build cannot run).
const EXIT_USAGE: u8 = 2;
/// Exit code when an invariant was violated.
const EXIT_INVARIANT_VIOLATED: u8 = 3;
/// Exit code of `inspect` on a damaged store.
const EXIT_DAMAGED: u8 = 4;
/// Exit code of `inspect` on an intact store holding values this build
/// cannot decode.
const EXIT_UNDECODABLE: u8 = 5;

fn main() -> ExitCode {
    // clap prints usage errors and exits with 2, and `--help` with 0.
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo(&args),
        Command::Inspect(args) => inspect(&args),
    }
}

/// Writes `text` to stdout. A closed stdout (`khonsu demo | head`) is not an
/// error worth a panic, as `print!` would raise: the text has no reader left,
/// and the exit code still tells the outcome.
fn emit(text: &dyn std::fmt::Display) {
    let _ignored = write!(std::io::stdout().lock(), "{text}");
}

/// Prints `error` with its cause chain and returns its exit code.
fn fail(error: &Error) -> ExitCode {
    eprintln!("Error: {}", snafu::Report::from_error(error));
    ExitCode::from(if error.is_usage() {
        EXIT_USAGE
    } else if error.is_damaged_store() {
        EXIT_DAMAGED
    } else {
        EXIT_ERROR
    })
}

/// A seed from the clock and the process id, for runs without `--seed`.
fn clock_seed() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (now.as_secs() << 30) ^ u64::from(now.subsec_nanos()) ^ (u64::from(std::process::id()) << 16)
}

/// The live progress line: a bar over the transfers or over the time, drawn on
/// stderr, hidden when `visible` is false.
fn progress_bar(stop: StopAfter, visible: bool) -> ProgressBar {
    let (length, template) = match stop {
        StopAfter::Transfers(n) => (n, "{bar:30} {pos}/{len} transfers  {msg}"),
        StopAfter::Elapsed(limit) => (
            u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
            "{bar:30} {elapsed:>3}  {msg}",
        ),
    };
    let target = if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(length), target);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Runs `khonsu demo` and turns its outcome into the process's exit code.
fn demo(args: &DemoArgs) -> ExitCode {
    match run_demo(args) {
        Ok(summary) => {
            emit(&summary);
            if summary.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_INVARIANT_VIOLATED)
            }
        }
        Err(error) => fail(&error),
    }
}

/// The phases of a demo: resolve the flags, open the database, create or
/// resume the bank, run the threads. Prints the header and bank lines as it goes.
fn run_demo(args: &DemoArgs) -> Result<Summary> {
    let seed = args.seed.unwrap_or_else(clock_seed);
    let config = DemoConfig::resolve(args, seed)?;
    emit(&format_args!("{}\n", report::header(&config)));
    let db = store::open(&config.storage, &config.workload)?;
    let (bank, state) = Bank::open(db, config.new_bank, &config.storage)?;
    emit(&format_args!("{}\n", report::bank_line(&state)));
    if let Some(note) = report::ignored_flags_note(&state, config.new_bank) {
        emit(&format_args!("{note}\n"));
    }
    let visible = !args.no_progress && std::io::stdout().is_terminal();
    let progress = progress_bar(config.workload.stop, visible);
    let outcome = run::run(&bank, &config, state, &progress);
    progress.finish_and_clear();
    outcome
}

/// Runs `khonsu inspect`: 0 for a healthy store, 4 for a damaged one (damaged
/// values, or a file too damaged to open), 5 for intact files holding values
/// this build cannot decode, 1 when it cannot be opened (no store, locked by
/// another process, an I/O error).
fn inspect(args: &InspectArgs) -> ExitCode {
    match store::inspect(&args.dir) {
        Ok(inspection) => {
            let report = InspectionReport(&inspection);
            emit(&report);
            match report.damage_line() {
                None => ExitCode::SUCCESS,
                Some(line) => {
                    eprintln!("Error: {line}");
                    ExitCode::from(if report.damaged() {
                        EXIT_DAMAGED
                    } else {
                        EXIT_UNDECODABLE
                    })
                }
            }
        }
        Err(error) => fail(&error),
    }
}
