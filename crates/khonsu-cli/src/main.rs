//! `khonsu`: the command line of Khonsu, a software transactional memory whose
//! values are Apache Arrow `RecordBatch`es.
//!
//! `khonsu demo` runs the project's main job, a bank-transfer workload: worker
//! threads move money between accounts in transactions, auditors check in
//! read-only transactions that no money appears or disappears, and a summary
//! reports throughput, aborts by conflict kind, commit latency percentiles and
//! whether the total was conserved. See `khonsu demo --help`.
//!
//! Modules: [`args`] (flags), [`bank`] (the workload), [`report`] (summary and
//! verdict), [`stats`] (counters, latency histogram), [`error`].

mod args;
mod bank;
mod error;
mod report;
mod stats;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::{Cli, Command, DemoArgs, StopAfter};
use crate::bank::BankConfig;

/// Exit code when an invariant was violated (1 is an engine error, 2 a usage error).
const EXIT_INVARIANT_VIOLATED: u8 = 3;

fn main() -> ExitCode {
    // clap prints usage errors and exits with 2, and `--help` with 0.
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo(&args),
    }
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
    let seed = args.seed.unwrap_or_else(clock_seed);
    let config = BankConfig::new(args, seed);
    println!(
        "khonsu demo: isolation {}, resolution {}, {} accounts, transfer threads {}, \
         auditor threads {}, stop after {}, seed {seed}",
        config.isolation,
        config.resolution,
        config.accounts,
        config.threads,
        config.auditors,
        config.stop
    );
    let visible = !args.no_progress && std::io::stdout().is_terminal();
    let progress = progress_bar(config.stop, visible);
    let outcome = bank::run(&config, &progress);
    progress.finish_and_clear();
    match outcome {
        Ok(summary) => {
            print!("{summary}");
            if summary.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_INVARIANT_VIOLATED)
            }
        }
        Err(error) => {
            eprintln!("Error: {}", snafu::Report::from_error(error));
            ExitCode::FAILURE
        }
    }
}
