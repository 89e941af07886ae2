//! A positions service with an append-only trade log: the program a trading
//! desk writes first on Khonsu.
//!
//! Trader threads book trades. Each trade is one transaction that reads the
//! symbol's position, refuses the trade if it would break the risk limit
//! (an application error, kept as the abort's cause), writes the new
//! position (it must abort on a conflict: `Fail`, the default) and appends
//! the trade to the symbol's log (an append never conflicts). At the end
//! every position must equal the sum of its log, and the run prints the
//! database's metrics.
//!
//! ```text
//! cargo run --release -p khonsu --example positions -- [--trades N] [--threads N] [--dir PATH]
//! ```
//!
//! Without `--dir` it runs on a durable store in a temporary directory.

use std::fmt;

use khonsu::arrow_utils::{self, Scalar, one_row};
use khonsu::prelude::*;

const SYMBOLS: [&str; 4] = ["ACME", "GLOBEX", "INITECH", "UMBRELLA"];
/// A position may not exceed this many shares either way.
const RISK_LIMIT: i64 = 500;

/// The trade a risk check refused: the cause of the abort.
#[derive(Debug)]
struct RiskLimit {
    symbol: &'static str,
    would_be: i64,
}

impl fmt::Display for RiskLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} would be at {} shares, over the limit of {RISK_LIMIT}",
            self.symbol, self.would_be
        )
    }
}

impl std::error::Error for RiskLimit {}

fn position_key(symbol: &str) -> Key {
    Key::builder().str("position").str(symbol).build()
}

fn log_key(symbol: &str) -> Key {
    Key::builder().str("trades").str(symbol).build()
}

/// Books one trade: position update and log append, atomically.
fn book(db: &Khonsu, trader: u64, seq: u64, symbol: &'static str, qty: i64) -> Result<()> {
    db.atomically(|t| {
        let held = match t.read(position_key(symbol))? {
            Some(position) => arrow_utils::value::<i64>(&position, "qty", 0)?,
            None => 0,
        };
        let would_be = held + qty;
        if would_be.abs() > RISK_LIMIT {
            return Err(Error::abort(RiskLimit { symbol, would_be }));
        }
        t.write(
            position_key(symbol),
            one_row([
                ("symbol", Scalar::from(symbol)),
                ("qty", Scalar::from(would_be)),
            ])?,
        )?;
        t.append(
            log_key(symbol),
            one_row([
                ("trader", Scalar::from(trader)),
                ("seq", Scalar::from(seq)),
                ("qty", Scalar::from(qty)),
            ])?,
        )
    })
}

struct Args {
    trades: u64,
    threads: u64,
    dir: Option<std::path::PathBuf>,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = Args {
        trades: 2_000,
        threads: 2,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--trades" => args.trades = value()?.parse().map_err(|_| "--trades: not a number")?,
            "--threads" => {
                args.threads = value()?.parse().map_err(|_| "--threads: not a number")?;
            }
            "--dir" => args.dir = Some(value()?.into()),
            other => {
                return Err(format!(
                    "unknown argument {other}; see the file's doc comment"
                ));
            }
        }
    }
    Ok(args)
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let temp = tempfile::tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let db = Khonsu::open(&dir)?;
    println!(
        "positions: {} trades on {} threads, store {}",
        args.trades,
        args.threads,
        dir.display()
    );

    let refused = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..args.threads)
            .map(|trader| {
                let (db, refused) = (&db, &refused);
                let per_thread = args.trades / args.threads.max(1);
                s.spawn(move || -> Result<()> {
                    // A deterministic mix of buys and sells per trader.
                    let mut x = trader.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    for seq in 0..per_thread {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let symbol = SYMBOLS
                            .get(usize::try_from(x % 4).unwrap_or(0))
                            .copied()
                            .unwrap_or("ACME");
                        let qty = i64::try_from(x % 200).unwrap_or(0) - 99;
                        match book(db, trader, seq, symbol, qty) {
                            Ok(()) => {}
                            Err(err) if err.user_error::<RiskLimit>().is_some() => {
                                refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(err) => return Err(err),
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| Error::abort("a trader thread panicked"))??;
        }
        Ok(())
    })?;

    // Every position is the sum of its log, and the logs hold every booked trade.
    let mut t = db.start_transaction_with(TransactionOptions::new().read_only(true));
    let mut booked = 0;
    for symbol in SYMBOLS {
        let position = match t.read(position_key(symbol))? {
            Some(p) => arrow_utils::value::<i64>(&p, "qty", 0)?,
            None => 0,
        };
        let (rows, sum) = match t.read(log_key(symbol))? {
            Some(log) => {
                let mut sum = 0;
                for row in 0..log.num_rows() {
                    sum += arrow_utils::value::<i64>(&log, "qty", row)?;
                }
                (log.num_rows(), sum)
            }
            None => (0, 0),
        };
        println!("  {symbol:<9} position {position:>5}   log {rows:>5} trades, sum {sum:>5}");
        if position != sum || position.abs() > RISK_LIMIT {
            return Err(format!("{symbol}: position {position} but the log sums to {sum}").into());
        }
        booked += rows;
    }
    let refused = refused.into_inner();
    let expected = args.trades / args.threads.max(1) * args.threads;
    println!("booked {booked}, refused by the risk limit {refused} (of {expected})");
    if u64::try_from(booked)? + refused != expected {
        return Err("a trade was lost or booked twice".into());
    }
    // A refusal's message says why, in one line.
    if let Err(err) = book(&db, 99, 0, "ACME", 10 * RISK_LIMIT) {
        let cause = err.user_error::<RiskLimit>().map(|r| r.would_be);
        println!("a refused trade: {err} (the cause, downcast: would be {cause:?})");
    }
    println!("metrics: {}", db.metrics());
    Ok(())
}
