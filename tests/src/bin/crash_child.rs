//! `crash-child DIR redb|fjall SEED THREADS ACCOUNTS`: the process the crash tests kill.
//!
//! Opens the store in `DIR` with the given adapter (recovering it), creates the bank of
//! `ACCOUNTS` accounts if the store has none (see `khonsu_tests::durable`), prints `ready`, then
//! runs bank transfers on `THREADS` threads until it is killed. Each transfer moves money between
//! 2–3 accounts and bumps its thread's sequence key in one transaction; after its `commit`
//! returned, the thread prints `ack THREAD SEQ COMMIT_TS` (one line, written and flushed under
//! the stdout lock, so lines never interleave). Exits non-zero with the error's report on stderr
//! when anything fails, including a write to stdout once the parent is gone.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::channel;

use khonsu_tests::Rng;
use khonsu_tests::durable::{Adapter, DurableError, ensure_bank, transfer};

/// The parsed command line.
struct Args {
    dir: PathBuf,
    adapter: Adapter,
    seed: u64,
    threads: usize,
    accounts: usize,
}

fn usage(message: impl Into<String>) -> DurableError {
    DurableError::Usage {
        message: message.into(),
    }
}

fn parse_args() -> Result<Args, DurableError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, adapter, seed, threads, accounts] = args.as_slice() else {
        return Err(usage(format!("expected 5 arguments, got {}", args.len())));
    };
    let number = |what: &str, s: &str| {
        s.parse::<u64>()
            .map_err(|_| usage(format!("{what} must be a number, got {s:?}")))
    };
    let count = |what: &str, s: &str| {
        s.parse::<usize>()
            .map_err(|_| usage(format!("{what} must be a number, got {s:?}")))
    };
    let parsed = Args {
        dir: PathBuf::from(dir),
        adapter: Adapter::parse(adapter)
            .ok_or_else(|| usage(format!("unknown adapter {adapter:?}")))?,
        seed: number("SEED", seed)?,
        threads: count("THREADS", threads)?,
        accounts: count("ACCOUNTS", accounts)?,
    };
    if parsed.threads == 0 || parsed.accounts < 3 {
        return Err(usage("THREADS must be at least 1 and ACCOUNTS at least 3"));
    }
    Ok(parsed)
}

/// Prints one line and flushes it, under the stdout lock.
fn say(line: &str) -> Result<(), DurableError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|source| DurableError::Stdout { source })
}

fn run() -> Result<(), DurableError> {
    let args = parse_args()?;
    let db = args.adapter.build(&args.dir)?;
    ensure_bank(&db, args.accounts)?;
    say("ready")?;
    let (failed, failure) = channel();
    for thread in 0..args.threads {
        let (db, failed) = (db.clone(), failed.clone());
        let mut rng = Rng::new(args.seed.wrapping_add(thread as u64));
        let accounts = args.accounts;
        std::thread::spawn(move || {
            let error = loop {
                let done = match transfer(&db, thread, accounts, &mut rng) {
                    Ok(done) => done,
                    Err(e) => break e,
                };
                if let Err(e) = say(&format!("ack {thread} {} {}", done.seq, done.commit_ts)) {
                    break e;
                }
            };
            let _ = failed.send(error);
        });
    }
    drop(failed);
    match failure.recv() {
        Ok(error) => Err(error),
        // Unreachable: the threads run until one fails.
        Err(_) => Ok(()),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crash-child: {}", snafu::Report::from_error(e));
            ExitCode::FAILURE
        }
    }
}
