//! The durable-storage benchmark: durable commits per second of Khonsu on
//! redb (with and without group commit, with quick repair) and on fjall,
//! beside raw redb (one commit per transaction and hand-batched), fjall,
//! canopydb and an `fdatasync` loop, in one process, engines interleaved;
//! then recovery time, RSS and bytes on disk, each reopen in a child
//! process, with and without a `kill -9` before it.
//!
//! ```text
//! cargo run --release -p khonsu-benches --bin durable -- --quick
//! cargo run --release -p khonsu-benches --bin durable -- [--dir PATH] [--json PATH]
//! ```
//!
//! See `--help` and `docs/benchmarks.md` ("Durable storage").

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use khonsu_benches::durable::engines::GroupCounters;
use khonsu_benches::durable::fsync::{FsyncLayout, run_fsync_cell};
use khonsu_benches::durable::recovery::{self, Reports};
use khonsu_benches::durable::{
    DEFAULT_ACCOUNTS, DurableCell, DurableEngine, DurableKind, DurableWorkload, START_BALANCE,
    run_durable_cell,
};
use khonsu_benches::report::{self, Machine, Row, median};
use khonsu_benches::{Error, Measurement};
use snafu::Report;

const USAGE: &str = "\
durable: durable commits/s of Khonsu and the stores a user would pick instead,
engines interleaved, then recovery time, RSS and bytes on disk

USAGE:
    cargo run --release -p khonsu-benches --bin durable -- [OPTIONS]

OPTIONS:
    --quick              3 rounds x 100 ms per cell, 2,000 accounts, small
                         recovery stores (default: 5 rounds x 600 ms,
                         10,000 accounts, 1M keys and 1,000 x 100k rows)
    --threads LIST       committer thread counts (default 1,2,8)
    --engines LIST       engines to run (default all, see below)
    --workloads LIST     blind,transfer (default both)
    --rounds N           rounds (every round runs each engine at each thread count)
    --cell-ms MS         duration of one engine's run in a round
    --accounts N         accounts (and blind-write keys) per engine
    --dir PATH           where the stores go (default: the current directory;
                         must be a real disk, not a tmpfs)
    --json PATH          also write every result as JSON to PATH
    --no-fsync           skip the fdatasync floor
    --no-recovery        skip the recovery part
    --only-recovery      run only the recovery part
    --one-row-keys N     recovery case (a): keys of one row (default 1000000)
    --big-keys N         recovery case (b): keys ... (default 1000)
    --big-rows N         ... of this many rows each (default 100000)
    --seed N             seed of the key generators (default 42)
    -h, --help           this text

ENGINES:   khonsu-redb khonsu-redb-nogc khonsu-redb-nogather khonsu-redb-qr khonsu-fjall
           redb redb-batch64 fjall canopydb
";

/// Which parts of the benchmark run.
#[derive(Clone, Copy, Debug)]
struct Parts {
    throughput: bool,
    fsync: bool,
    recovery: bool,
}

#[derive(Debug)]
struct Options {
    quick: bool,
    threads: Vec<usize>,
    engines: Vec<DurableKind>,
    workloads: Vec<DurableWorkload>,
    rounds: usize,
    cell: Duration,
    accounts: u64,
    dir: PathBuf,
    json: Option<PathBuf>,
    parts: Parts,
    one_row_keys: u64,
    big_keys: u64,
    big_rows: u64,
    seed: u64,
    help: bool,
}

fn parse_one<T: std::str::FromStr>(text: &str, flag: &str) -> Result<T, Error> {
    text.trim()
        .parse()
        .map_err(|_| Error::usage(format!("{flag}: `{text}` is not a number")))
}

fn parse_list<T: PartialEq>(
    text: &str,
    flag: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, Error> {
    let mut items = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let item = parse(part)
            .ok_or_else(|| Error::usage(format!("{flag}: unknown `{part}` (see --help)")))?;
        if !items.contains(&item) {
            items.push(item);
        }
    }
    Ok(items)
}

impl Options {
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, Error> {
        let mut o = Self {
            quick: false,
            threads: vec![1, 2, 8],
            engines: DurableKind::ALL.to_vec(),
            workloads: DurableWorkload::ALL.to_vec(),
            rounds: 0,
            cell: Duration::ZERO,
            accounts: 0,
            dir: PathBuf::from("."),
            json: None,
            parts: Parts {
                throughput: true,
                fsync: true,
                recovery: true,
            },
            one_row_keys: 0,
            big_keys: 0,
            big_rows: 0,
            seed: 42,
            help: false,
        };
        let (mut rounds, mut cell_ms, mut accounts) = (None, None, None);
        let (mut one_row, mut big_keys, mut big_rows) = (None, None, None);
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| Error::usage(format!("{flag} needs a value (see --help)")))
            };
            match flag.as_str() {
                "--quick" => o.quick = true,
                "-h" | "--help" => o.help = true,
                "--threads" => {
                    o.threads = parse_list(&value()?, "--threads", |t| t.parse().ok())?;
                }
                "--engines" => o.engines = parse_list(&value()?, "--engines", DurableKind::parse)?,
                "--workloads" => {
                    o.workloads = parse_list(&value()?, "--workloads", DurableWorkload::parse)?;
                }
                "--rounds" => rounds = Some(parse_one(&value()?, "--rounds")?),
                "--cell-ms" => cell_ms = Some(parse_one(&value()?, "--cell-ms")?),
                "--accounts" => accounts = Some(parse_one(&value()?, "--accounts")?),
                "--dir" => o.dir = PathBuf::from(value()?),
                "--json" => o.json = Some(PathBuf::from(value()?)),
                "--no-fsync" => o.parts.fsync = false,
                "--no-recovery" => o.parts.recovery = false,
                "--only-recovery" => o.parts.throughput = false,
                "--one-row-keys" => one_row = Some(parse_one(&value()?, "--one-row-keys")?),
                "--big-keys" => big_keys = Some(parse_one(&value()?, "--big-keys")?),
                "--big-rows" => big_rows = Some(parse_one(&value()?, "--big-rows")?),
                "--seed" => o.seed = parse_one(&value()?, "--seed")?,
                other => {
                    return Err(Error::usage(format!(
                        "unknown argument `{other}`\n\n{USAGE}"
                    )));
                }
            }
        }
        let (d_rounds, d_ms, d_accounts, d_one, d_big, d_rows) = if o.quick {
            (3, 100, 2_000, 20_000, 20, 10_000)
        } else {
            (5, 600, DEFAULT_ACCOUNTS, 1_000_000, 1_000, 100_000)
        };
        o.rounds = rounds.unwrap_or(d_rounds).max(1);
        o.cell = Duration::from_millis(cell_ms.unwrap_or(d_ms).max(1));
        o.accounts = accounts.unwrap_or(d_accounts).max(2);
        o.one_row_keys = one_row.unwrap_or(d_one).max(1);
        o.big_keys = big_keys.unwrap_or(d_big).max(1);
        o.big_rows = big_rows.unwrap_or(d_rows).max(2);
        if o.threads.is_empty() || o.threads.contains(&0) {
            return Err(Error::usage("--threads needs positive thread counts"));
        }
        Ok(o)
    }

    fn mode(&self) -> &'static str {
        if self.quick { "quick" } else { "full" }
    }
}

fn io_error(what: impl Into<String>, error: std::io::Error) -> Error {
    Error::io(what, error)
}

fn invariant(engine: &'static str, message: impl Into<String>) -> Error {
    Error::invariant(engine, message)
}

// ---------------------------------------------------------------------------
// The header.

fn git_commit() -> Option<String> {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let commit = run(&["rev-parse", "--short", "HEAD"])?;
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}+dirty")
    } else {
        commit
    })
}

/// The file system holding `dir` (`df -T` output, last line).
fn file_system(dir: &Path) -> String {
    Command::new("df")
        .arg("-T")
        .arg(dir)
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn print_header(options: &Options, dir: &Path) -> Result<(), Error> {
    let machine = Machine::detect();
    let args: Vec<String> = std::env::args().collect();
    let flags = args.get(1..).unwrap_or_default().join(" ");
    let fs = file_system(dir);
    println!("# Khonsu durable-storage benchmark");
    println!("command:  {}", args.join(" "));
    println!("rerun:    cargo run --release -p khonsu-benches --bin durable -- {flags}");
    println!(
        "date:     {}   commit: {}",
        report::utc_now(),
        git_commit().unwrap_or_else(|| "unknown".to_owned())
    );
    println!(
        "machine:  {} logical CPUs, {}, Linux {}",
        machine.nproc, machine.model, machine.kernel
    );
    println!("disk:     {} (df -T: {fs})", dir.display());
    if fs.contains("tmpfs") {
        let warning = format!(
            "{} is on a tmpfs: fdatasync is free there; pass --dir on a real disk",
            dir.display()
        );
        // A smoke run (CI) still checks that everything runs; a measurement refuses.
        if !options.quick {
            return Err(Error::usage(warning));
        }
        println!("warning:  {warning} (--quick goes on; its figures mean nothing)");
    }
    println!(
        "mode:     {}: {} rounds x {} ms per engine, workload and thread count; every round runs \
         every thread count and, at each, every engine once, both orders rotating (engines and \
         thread counts interleaved); medians of rounds",
        options.mode(),
        options.rounds,
        options.cell.as_millis()
    );
    println!(
        "data:     {} accounts {{account: UInt64, balance: Int64}}, one row each, plus {} blind-write \
         keys; every write a fresh batch, stored as Khonsu's codec (24-byte header + Arrow IPC, \
         608 bytes) under 8-byte big-endian keys, by every engine",
        options.accounts, options.accounts
    );
    println!(
        "commits/s: durable commits per second of wall time (commit returned after fdatasync)"
    );
    println!(
        "CPU:      on-CPU µs per commit, committers plus the engines' background threads \
         (/proc/*/schedstat)"
    );
    println!(
        "ratios:   ÷{} = commits/s over Khonsu-on-redb's (group commit) at the same workload and \
         thread count",
        DurableKind::REFERENCE.name()
    );
    println!("engines:");
    for kind in &options.engines {
        println!("  {:<18} {}", kind.name(), kind.describe());
    }
    if options.parts.fsync {
        println!(
            "  {:<18} every thread appends 608 bytes to ONE shared file, then File::sync_data",
            FsyncLayout::Shared.name()
        );
        println!(
            "  {:<18} every thread appends 608 bytes to a file of its OWN, then File::sync_data",
            FsyncLayout::Own.name()
        );
    }
    println!("workloads:");
    for workload in &options.workloads {
        println!("  {:<18} {}", workload.name(), workload.describe());
    }
    println!();
    Ok(())
}

// ---------------------------------------------------------------------------
// Throughput.

fn cell_seed(base: u64, workload: usize, threads: usize, round: usize) -> u64 {
    let mix = |x: usize| u64::try_from(x).unwrap_or(u64::MAX);
    base ^ mix(workload).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ mix(threads).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ mix(round).wrapping_mul(0x1656_67B1_9E37_79F9)
}

/// One entry of a round: an engine or an fdatasync layout.
enum Runner<'a> {
    Engine(&'a dyn DurableEngine),
    Fsync(FsyncLayout),
}

/// How Khonsu grouped one engine's commits at one workload and thread
/// count: medians over rounds.
struct GroupRow {
    engine: &'static str,
    workload: &'static str,
    threads: usize,
    mean_group: f64,
    syncs_per_commit: f64,
}

struct Throughput {
    rows: Vec<Row>,
    groups: Vec<GroupRow>,
}

fn run_throughput(options: &Options, dir: &Path) -> Result<Throughput, Error> {
    let load_started = Instant::now();
    let mut dirs = Vec::new();
    let mut engines: Vec<Box<dyn DurableEngine>> = Vec::new();
    for kind in &options.engines {
        let engine_dir = tempfile::Builder::new()
            .prefix(&format!("durable-{}-", kind.name()))
            .tempdir_in(dir)
            .map_err(|e| io_error(format!("creating a directory in {}", dir.display()), e))?;
        engines.push(kind.build(engine_dir.path(), options.accounts)?);
        dirs.push(engine_dir);
    }
    eprintln!(
        "loaded {} engines x {} accounts + {} blind keys in {:.1} s",
        engines.len(),
        options.accounts,
        options.accounts,
        load_started.elapsed().as_secs_f64()
    );
    let mut rows = Vec::new();
    let mut fsync_rows = Vec::new();
    let mut groups = Vec::new();
    for (workload_index, &workload) in options.workloads.iter().enumerate() {
        let started = Instant::now();
        let mut runners: Vec<Runner<'_>> = engines
            .iter()
            .map(|engine| Runner::Engine(engine.as_ref()))
            .collect();
        if options.parts.fsync && workload == DurableWorkload::Blind {
            runners.extend(FsyncLayout::ALL.into_iter().map(Runner::Fsync));
        }
        let per_threads = run_rounds(&runners, options, dir, workload, workload_index)?;
        for (&threads, (measured, grouped)) in options.threads.iter().zip(&per_threads) {
            for ((runner, rounds), group_rounds) in runners.iter().zip(measured).zip(grouped) {
                match runner {
                    Runner::Engine(engine) => {
                        let mut row =
                            Row::from_rounds(engine.name(), workload.name(), threads, rounds);
                        if engine.batch() > 1 {
                            row.note = Some("64 commits per redb transaction");
                        }
                        rows.push(row);
                        if let Some(group) =
                            group_row(engine.name(), workload, threads, group_rounds)
                        {
                            groups.push(group);
                        }
                    }
                    Runner::Fsync(layout) => {
                        let mut row = Row::from_rounds(layout.name(), "fdatasync", threads, rounds);
                        row.note = Some(match layout {
                            FsyncLayout::Shared => "syncs/s; one file shared by all threads",
                            FsyncLayout::Own => "syncs/s; one file per thread",
                        });
                        fsync_rows.push(row);
                    }
                }
            }
        }
        if workload == DurableWorkload::Transfer {
            for engine in &engines {
                check_balance(engine.as_ref(), options.accounts)?;
            }
        }
        eprintln!(
            "{:<9}: {} entries x {} thread counts x {} rounds in {:.1} s",
            workload.name(),
            runners.len(),
            options.threads.len(),
            options.rounds,
            started.elapsed().as_secs_f64()
        );
    }
    rows.extend(fsync_rows);
    report::add_ratios(&mut rows, DurableKind::REFERENCE.name());
    drop(engines);
    for engine_dir in dirs {
        engine_dir
            .close()
            .map_err(|e| io_error("removing an engine directory", e))?;
    }
    Ok(Throughput { rows, groups })
}

/// Per entry, its measurements and (Khonsu) group counters, one of each
/// per round.
type Rounds = (Vec<Vec<Measurement>>, Vec<Vec<GroupCounters>>);

/// Every round of one workload: each round runs every thread count (their
/// order rotating) and, at each, every entry (the first rotating), so that
/// a noisy moment hits every engine and every thread count alike. Returns
/// one [`Rounds`] per thread count, in `options.threads` order.
fn run_rounds(
    runners: &[Runner<'_>],
    options: &Options,
    dir: &Path,
    workload: DurableWorkload,
    workload_index: usize,
) -> Result<Vec<Rounds>, Error> {
    let mut out: Vec<Rounds> = options
        .threads
        .iter()
        .map(|_| {
            (
                vec![Vec::new(); runners.len()],
                vec![Vec::new(); runners.len()],
            )
        })
        .collect();
    let counts = options.threads.len().max(1);
    for round in 0..options.rounds {
        for t_offset in 0..counts {
            let t_index = (round + t_offset) % counts;
            let (Some(&threads), Some((measured, grouped))) =
                (options.threads.get(t_index), out.get_mut(t_index))
            else {
                continue;
            };
            let cell = DurableCell {
                workload,
                threads,
                duration: options.cell,
                seed: cell_seed(options.seed, workload_index, threads, round),
                accounts: options.accounts,
            };
            let first = (round + t_index) % runners.len().max(1);
            for offset in 0..runners.len() {
                let index = (first + offset) % runners.len();
                let (Some(runner), Some(into), Some(group_into)) = (
                    runners.get(index),
                    measured.get_mut(index),
                    grouped.get_mut(index),
                ) else {
                    continue;
                };
                match runner {
                    Runner::Engine(engine) => {
                        let m = run_durable_cell(*engine, &cell)?;
                        into.push(m.measurement);
                        group_into.extend(m.group);
                    }
                    Runner::Fsync(layout) => {
                        into.push(run_fsync_cell(dir, *layout, threads, 608, options.cell)?);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Fails unless the balances of `accounts` still sum to what was loaded.
fn check_balance(engine: &dyn DurableEngine, accounts: u64) -> Result<(), Error> {
    let expected = i64::try_from(accounts).unwrap_or(0) * START_BALANCE;
    let total = engine.total_balance(accounts)?;
    if total == expected {
        Ok(())
    } else {
        Err(invariant(
            engine.name(),
            format!("transfers changed the sum of balances: {total}, expected {expected}"),
        ))
    }
}

fn group_row(
    engine: &'static str,
    workload: DurableWorkload,
    threads: usize,
    rounds: &[GroupCounters],
) -> Option<GroupRow> {
    if rounds.is_empty() {
        return None;
    }
    let mut mean: Vec<f64> = rounds
        .iter()
        .filter(|g| g.groups > 0)
        .map(|g| as_f64(g.commits) / as_f64(g.groups))
        .collect();
    let mut syncs: Vec<f64> = rounds
        .iter()
        .filter(|g| g.commits > 0)
        .map(|g| as_f64(g.syncs) / as_f64(g.commits))
        .collect();
    Some(GroupRow {
        engine,
        workload: workload.name(),
        threads,
        mean_group: median(&mut mean)?,
        syncs_per_commit: median(&mut syncs).unwrap_or(0.0),
    })
}

#[expect(
    clippy::cast_precision_loss,
    reason = "statistics: counts far below 2^53 convert exactly"
)]
fn as_f64(n: u64) -> f64 {
    n as f64
}

fn rate(rows: &[Row], engine: &str, workload: &str, threads: usize) -> Option<f64> {
    rows.iter()
        .find(|r| r.engine == engine && r.workload == workload && r.threads == threads)
        .map(|r| r.tx_per_s)
        .filter(|r| *r > 0.0)
}

/// Commits/s side by side: one line per engine and workload, one column per
/// thread count, then the scaling from the fewest to the most threads.
fn side_by_side(rows: &[Row], threads: &[usize]) -> String {
    let mut out = String::new();
    let (Some(&low), Some(&high)) = (threads.iter().min(), threads.iter().max()) else {
        return out;
    };
    let _ = write!(out, "{:<18} {:<9}", "engine", "workload");
    for t in threads {
        let _ = write!(out, " {:>10}", format!("{t} thr"));
    }
    for t in threads {
        let _ = write!(out, " {:>9}", format!("÷ref@{t}"));
    }
    let _ = writeln!(out, " {:>9}", format!("{high}÷{low}"));
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for row in rows {
        if seen.contains(&(row.engine, row.workload)) {
            continue;
        }
        seen.push((row.engine, row.workload));
        let _ = write!(out, "{:<18} {:<9}", row.engine, row.workload);
        for &t in threads {
            let cell = rate(rows, row.engine, row.workload, t)
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.0}"));
            let _ = write!(out, " {cell:>10}");
        }
        for &t in threads {
            let ratio = rows
                .iter()
                .find(|r| r.engine == row.engine && r.workload == row.workload && r.threads == t)
                .and_then(|r| r.ratio)
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"));
            let _ = write!(out, " {ratio:>9}");
        }
        let scaling = rate(rows, row.engine, row.workload, high)
            .zip(rate(rows, row.engine, row.workload, low))
            .map_or_else(|| "-".to_owned(), |(h, l)| format!("{:.2}", h / l));
        let _ = writeln!(out, " {scaling:>9}");
    }
    out
}

fn group_table(groups: &[GroupRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:<9} {:>3} {:>16} {:>14}",
        "engine", "workload", "thr", "commits/write", "syncs/commit"
    );
    for g in groups {
        let _ = writeln!(
            out,
            "{:<18} {:<9} {:>3} {:>16.2} {:>14.2}",
            g.engine, g.workload, g.threads, g.mean_group, g.syncs_per_commit
        );
    }
    out
}

/// A target checked in this run.
struct Target {
    name: String,
    measured: Option<f64>,
    limit: f64,
    /// `true`: pass when measured ≥ limit; `false`: when ≤ limit.
    at_least: bool,
    detail: String,
}

impl Target {
    fn verdict(&self) -> &'static str {
        match self.measured {
            None => "n/a",
            Some(m)
                if (self.at_least && m >= self.limit) || (!self.at_least && m <= self.limit) =>
            {
                "PASS"
            }
            Some(_) => "MISS",
        }
    }
}

fn targets(rows: &[Row], threads: &[usize], workloads: &[DurableWorkload]) -> Vec<Target> {
    let reference = DurableKind::REFERENCE.name();
    let (Some(&low), Some(&high)) = (threads.iter().min(), threads.iter().max()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for workload in workloads {
        let w = workload.name();
        let khonsu_low = rate(rows, reference, w, low);
        let khonsu_high = rate(rows, reference, w, high);
        let redb_low = rate(rows, "redb", w, low);
        out.push(Target {
            name: format!("{w}: raw redb ÷ Khonsu+redb at {low} committer (≤ 1.3)"),
            measured: redb_low.zip(khonsu_low).map(|(r, k)| r / k),
            limit: 1.3,
            at_least: false,
            detail: format!(
                "redb {} vs khonsu-redb {} commits/s",
                fmt_rate(redb_low),
                fmt_rate(khonsu_low)
            ),
        });
        out.push(Target {
            name: format!("{w}: Khonsu+redb {high} committers ÷ {low} (≥ 5)"),
            measured: khonsu_high.zip(khonsu_low).map(|(h, l)| h / l),
            limit: 5.0,
            at_least: true,
            detail: format!(
                "{} vs {} commits/s",
                fmt_rate(khonsu_high),
                fmt_rate(khonsu_low)
            ),
        });
        let peers = ["fjall", "canopydb", "redb"];
        let best = peers
            .iter()
            .filter_map(|p| rate(rows, p, w, high).map(|r| (*p, r)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        out.push(Target {
            name: format!("{w}: Khonsu+redb ÷ best peer at {high} committers (≥ 2)"),
            measured: khonsu_high.zip(best).map(|(k, (_, b))| k / b),
            limit: 2.0,
            at_least: true,
            detail: best.map_or_else(
                || "no peer measured".to_owned(),
                |(peer, r)| {
                    format!(
                        "best peer {peer} {r:.0} vs khonsu-redb {} commits/s",
                        fmt_rate(khonsu_high)
                    )
                },
            ),
        });
    }
    out
}

fn fmt_rate(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |r| format!("{r:.0}"))
}

fn quick_repair_line(rows: &[Row], threads: &[usize]) -> String {
    let mut out = String::new();
    for w in DurableWorkload::ALL {
        for &t in threads {
            if let Some((qr, off)) = rate(rows, "khonsu-redb-qr", w.name(), t).zip(rate(
                rows,
                DurableKind::REFERENCE.name(),
                w.name(),
                t,
            )) {
                let _ = writeln!(
                    out,
                    "  {:<9} {t} thr: quick_repair on {qr:.0} vs off {off:.0} commits/s = {:.2}x",
                    w.name(),
                    qr / off
                );
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Recovery: the parent side.

struct ChildOutput {
    phase: String,
    values: Reports,
}

impl ChildOutput {
    fn text(&self, field: &str) -> Result<&str, Error> {
        self.values
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| invariant("recovery", format!("{} did not report {field}", self.phase)))
    }

    fn number(&self, field: &str) -> Result<f64, Error> {
        self.text(field)?.parse().map_err(|_| {
            invariant(
                "recovery",
                format!("{}: {field} is not a number", self.phase),
            )
        })
    }
}

/// The names a child may report (so that parsed names are `'static`).
const FIELDS: [&str; 13] = [
    "secs",
    "bytes_on_disk",
    "data_file",
    "open_secs",
    "build_secs",
    "repaired",
    "keys",
    "rss_before_kib",
    "rss_kib",
    "hwm_kib",
    "ready",
    "error",
    "note",
];

fn parse_reports(stdout: &str) -> Reports {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix('@'))
        .filter_map(|rest| rest.split_once(' '))
        .filter_map(|(name, value)| {
            FIELDS
                .iter()
                .find(|f| **f == name)
                .map(|f| (*f, value.to_owned()))
        })
        .collect()
}

fn exe() -> Result<PathBuf, Error> {
    std::env::current_exe().map_err(|e| io_error("finding this executable", e))
}

fn spawn(args: &[String]) -> Result<ChildOutput, Error> {
    let phase = args.join(" ");
    let output = Command::new(exe()?)
        .arg("--child")
        .args(args)
        .output()
        .map_err(|e| io_error(format!("running the child {phase}"), e))?;
    if !output.status.success() {
        return Err(invariant(
            "recovery",
            format!(
                "the child {phase} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        ));
    }
    Ok(ChildOutput {
        values: parse_reports(&String::from_utf8_lossy(&output.stdout)),
        phase,
    })
}

/// Runs the writer child until it reports `@ready`, lets it write for
/// `write_for`, then kills it with `SIGKILL` (`Child::kill`).
fn kill_mid_write(args: &[String], write_for: Duration) -> Result<(), Error> {
    let phase = args.join(" ");
    let mut child = Command::new(exe()?)
        .arg("--child")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| io_error(format!("running the child {phase}"), e))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| invariant("recovery", "the writer child has no stdout"))?;
    let mut ready = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| io_error("reading the writer's output", e))?;
        if line.starts_with("@ready") {
            ready = true;
            break;
        }
    }
    if !ready {
        let status = child
            .wait()
            .map_err(|e| io_error("waiting for the writer", e))?;
        return Err(invariant(
            "recovery",
            format!("the writer {phase} exited ({status}) before it was ready"),
        ));
    }
    std::thread::sleep(write_for);
    // On Unix `kill` sends SIGKILL: no destructor, no clean close.
    child
        .kill()
        .map_err(|e| io_error("killing the writer", e))?;
    let status = child
        .wait()
        .map_err(|e| io_error("waiting for the writer", e))?;
    if status.success() {
        return Err(invariant(
            "recovery",
            "the writer exited cleanly before the kill",
        ));
    }
    Ok(())
}

/// A recovery case: keys of a given number of rows.
#[derive(Clone, Copy, Debug)]
struct Case {
    label: &'static str,
    keys: u64,
    rows: u64,
    chunk: u64,
    writers: usize,
}

struct ReopenRow {
    case: &'static str,
    keys: u64,
    rows: u64,
    scenario: &'static str,
    quick_repair: bool,
    open_secs: f64,
    build_secs: f64,
    repaired: bool,
    rss_mib: f64,
    hwm_mib: f64,
}

struct BytesRow {
    case: &'static str,
    keys: u64,
    rows: u64,
    khonsu_dir: f64,
    khonsu_file: f64,
    raw_file: f64,
    fill_khonsu_secs: f64,
    fill_raw_secs: f64,
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|&s| s.to_owned()).collect()
}

fn run_case(
    case: Case,
    dir: &Path,
    write_for: Duration,
) -> Result<(Vec<ReopenRow>, BytesRow), Error> {
    let case_dir = tempfile::Builder::new()
        .prefix(&format!("durable-recovery-{}-", case.label))
        .tempdir_in(dir)
        .map_err(|e| io_error(format!("creating a directory in {}", dir.display()), e))?;
    let store = case_dir.path().join("khonsu");
    let raw = case_dir.path().join("raw");
    std::fs::create_dir_all(&raw)
        .map_err(|e| io_error(format!("creating {}", raw.display()), e))?;
    let store_arg = store.display().to_string();
    let raw_arg = raw.display().to_string();
    let (keys, rows, chunk) = (
        case.keys.to_string(),
        case.rows.to_string(),
        case.chunk.to_string(),
    );
    let started = Instant::now();
    let filled = spawn(&strings(&[
        "fill", &store_arg, "khonsu", &keys, &rows, &chunk,
    ]))?;
    let filled_raw = spawn(&strings(&["fill", &raw_arg, "raw", &keys, &rows, &chunk]))?;
    eprintln!(
        "recovery ({}): filled {} keys x {} rows twice in {:.1} s",
        case.label,
        case.keys,
        case.rows,
        started.elapsed().as_secs_f64()
    );
    let bytes = BytesRow {
        case: case.label,
        keys: case.keys,
        rows: case.rows,
        khonsu_dir: filled.number("bytes_on_disk")?,
        khonsu_file: filled.number("data_file")?,
        raw_file: filled_raw.number("data_file")?,
        fill_khonsu_secs: filled.number("secs")?,
        fill_raw_secs: filled_raw.number("secs")?,
    };
    let mut reopens = Vec::new();
    let reopen = |scenario: &'static str, quick_repair: bool| -> Result<ReopenRow, Error> {
        let qr = quick_repair.to_string();
        let child = spawn(&strings(&["reopen", &store_arg, &qr, &keys]))?;
        Ok(ReopenRow {
            case: case.label,
            keys: case.keys,
            rows: case.rows,
            scenario,
            quick_repair,
            open_secs: child.number("open_secs")?,
            build_secs: child.number("build_secs")?,
            repaired: child.text("repaired")? == "true",
            rss_mib: child.number("rss_kib")? / 1024.0,
            hwm_mib: child.number("hwm_kib")? / 1024.0,
        })
    };
    reopens.push(reopen("clean close", false)?);
    for quick_repair in [false, true] {
        let qr = quick_repair.to_string();
        let writers = case.writers.to_string();
        kill_mid_write(
            &strings(&["crash", &store_arg, &qr, &keys, &rows, &writers]),
            write_for,
        )?;
        reopens.push(reopen("after kill -9", quick_repair)?);
    }
    case_dir
        .close()
        .map_err(|e| io_error("removing the recovery directory", e))?;
    Ok((reopens, bytes))
}

fn reopen_table(rows: &[ReopenRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<4} {:>9} {:>7} {:<14} {:>5} {:>10} {:>11} {:>9} {:>9} {:>9} {:>10}",
        "case",
        "keys",
        "rows",
        "reopen",
        "qr",
        "open s",
        "recover s",
        "total s",
        "repaired",
        "RSS MiB",
        "peak MiB"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<4} {:>9} {:>7} {:<14} {:>5} {:>10.3} {:>11.3} {:>9.3} {:>9} {:>9.1} {:>10.1}",
            r.case,
            r.keys,
            r.rows,
            r.scenario,
            if r.quick_repair { "on" } else { "off" },
            r.open_secs,
            r.build_secs,
            r.open_secs + r.build_secs,
            if r.repaired { "yes" } else { "no" },
            r.rss_mib,
            r.hwm_mib
        );
    }
    out
}

fn bytes_table(rows: &[BytesRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<4} {:>9} {:>7} {:>14} {:>14} {:>14} {:>10} {:>10} {:>10} {:>9} {:>9}",
        "case",
        "keys",
        "rows",
        "khonsu dir B",
        "data.redb B",
        "raw redb B",
        "khonsu B/k",
        "raw B/k",
        "khonsu÷raw",
        "fill s",
        "raw s"
    );
    for b in rows {
        let keys = as_f64(b.keys);
        let _ = writeln!(
            out,
            "{:<4} {:>9} {:>7} {:>14.0} {:>14.0} {:>14.0} {:>10.1} {:>10.1} {:>10.3} {:>9.2} {:>9.2}",
            b.case,
            b.keys,
            b.rows,
            b.khonsu_dir,
            b.khonsu_file,
            b.raw_file,
            b.khonsu_dir / keys,
            b.raw_file / keys,
            b.khonsu_dir / b.raw_file,
            b.fill_khonsu_secs,
            b.fill_raw_secs
        );
    }
    out
}

// ---------------------------------------------------------------------------
// JSON.

fn json_targets(targets: &[Target]) -> String {
    let items: Vec<String> = targets
        .iter()
        .map(|t| {
            format!(
                "{{\"target\": {:?}, \"measured\": {}, \"limit\": {}, \"verdict\": {:?}}}",
                t.name,
                t.measured
                    .map_or_else(|| "null".to_owned(), |m| format!("{m:.4}")),
                t.limit,
                t.verdict()
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn json_groups(groups: &[GroupRow]) -> String {
    let items: Vec<String> = groups
        .iter()
        .map(|g| {
            format!(
                "{{\"engine\": {:?}, \"workload\": {:?}, \"threads\": {}, \"commits_per_write\": \
                 {:.3}, \"syncs_per_commit\": {:.3}}}",
                g.engine, g.workload, g.threads, g.mean_group, g.syncs_per_commit
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn json_reopens(rows: &[ReopenRow]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"case\": {:?}, \"keys\": {}, \"rows\": {}, \"reopen\": {:?}, \"quick_repair\": \
                 {}, \"open_secs\": {:.4}, \"recover_secs\": {:.4}, \"repaired\": {}, \
                 \"rss_mib\": {:.1}, \"peak_rss_mib\": {:.1}}}",
                r.case,
                r.keys,
                r.rows,
                r.scenario,
                r.quick_repair,
                r.open_secs,
                r.build_secs,
                r.repaired,
                r.rss_mib,
                r.hwm_mib
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn json_bytes(rows: &[BytesRow]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|b| {
            format!(
                "{{\"case\": {:?}, \"keys\": {}, \"rows\": {}, \"khonsu_bytes_on_disk\": {:.0}, \
                 \"khonsu_data_file\": {:.0}, \"raw_redb_file\": {:.0}}}",
                b.case, b.keys, b.rows, b.khonsu_dir, b.khonsu_file, b.raw_file
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

// ---------------------------------------------------------------------------

/// Time this machine spent stalled so far, in µs, by `/proc/pressure/KIND`
/// ("some": at least one task waiting for the CPU or for I/O).
fn pressure(kind: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/pressure/{kind}")).ok()?;
    text.lines()
        .find(|line| line.starts_with("some"))?
        .split_whitespace()
        .find_map(|field| field.strip_prefix("total="))?
        .parse()
        .ok()
}

/// Prints the throughput tables and the targets; returns the targets.
fn print_throughput(options: &Options, throughput: &Throughput) -> Vec<Target> {
    let reference = DurableKind::REFERENCE.name();
    println!("## Durable commits");
    print!("{}", report::table(&throughput.rows, reference));
    println!();
    println!(
        "## Side by side (commits/s, median of {} rounds)",
        options.rounds
    );
    print!("{}", side_by_side(&throughput.rows, &options.threads));
    println!();
    if !throughput.groups.is_empty() {
        println!("## Khonsu's group commit (medians over rounds)");
        print!("{}", group_table(&throughput.groups));
        println!();
    }
    let qr = quick_repair_line(&throughput.rows, &options.threads);
    if !qr.is_empty() {
        println!("## What quick_repair costs per commit");
        print!("{qr}");
        println!();
    }
    let checked = targets(&throughput.rows, &options.threads, &options.workloads);
    println!("## Targets (this run)");
    for t in &checked {
        println!(
            "  {:<4} {:<62} {:>7}  ({})",
            t.verdict(),
            t.name,
            t.measured
                .map_or_else(|| "-".to_owned(), |m| format!("{m:.2}x")),
            t.detail
        );
    }
    println!();
    checked
}

/// Runs and prints the recovery part.
fn run_recovery(options: &Options, dir: &Path) -> Result<(Vec<ReopenRow>, Vec<BytesRow>), Error> {
    let mut reopens = Vec::new();
    let mut bytes = Vec::new();
    let big_value = options.big_rows.saturating_mul(16);
    let cases = [
        Case {
            label: "a",
            keys: options.one_row_keys,
            rows: 1,
            chunk: 1_000,
            writers: 4,
        },
        Case {
            label: "b",
            keys: options.big_keys,
            rows: options.big_rows,
            // About 32 MiB of values per commit.
            chunk: ((32_u64 << 20) / big_value.max(1)).max(1),
            writers: 2,
        },
    ];
    let write_for = Duration::from_millis(if options.quick { 100 } else { 500 });
    for case in cases {
        let (r, b) = run_case(case, dir, write_for)?;
        reopens.extend(r);
        bytes.push(b);
    }
    println!("## Recovery: Khonsu::open (RedbStorage) in a fresh process; RSS after recovery");
    println!(
        "(open s = RedbStorage::open_with, where redb repairs after a crash; recover s = \
         building Khonsu: read, verify and decode every key; after kill -9 = a writer with \
         4 (a) / 2 (b) committers was SIGKILLed {} ms into overwriting random keys; full rep. = \
         redb ran its full repair)",
        write_for.as_millis()
    );
    print!("{}", reopen_table(&reopens));
    println!();
    println!(
        "## Bytes on disk: Khonsu (RedbStorage::bytes_on_disk, the whole data directory) vs \
         raw redb holding the same keys and stored bytes, same commits"
    );
    print!("{}", bytes_table(&bytes));
    println!();
    Ok((reopens, bytes))
}

fn run(options: &Options) -> Result<(), Error> {
    let started = Instant::now();
    let dir = options
        .dir
        .canonicalize()
        .map_err(|e| io_error(format!("resolving {}", options.dir.display()), e))?;
    print_header(options, &dir)?;
    let mut throughput = Throughput {
        rows: Vec::new(),
        groups: Vec::new(),
    };
    let mut checked = Vec::new();
    if options.parts.throughput {
        let measured = Instant::now();
        let before = (pressure("cpu"), pressure("io"));
        throughput = run_throughput(options, &dir)?;
        let wall = measured.elapsed().as_secs_f64() * 1e6;
        let share = |b: Option<u64>, a: Option<u64>| {
            b.zip(a).map_or_else(
                || "-".to_owned(),
                |(b, a)| format!("{:.0}%", as_f64(a.saturating_sub(b)) * 100.0 / wall),
            )
        };
        checked = print_throughput(options, &throughput);
        println!(
            "noise: while measuring, some task of this machine waited for a CPU {} and for I/O {} \
             of the time (/proc/pressure, \"some\"; this benchmark's own waits included)",
            share(before.0, pressure("cpu")),
            share(before.1, pressure("io"))
        );
        println!();
    }
    let (reopens, bytes) = if options.parts.recovery {
        run_recovery(options, &dir)?
    } else {
        (Vec::new(), Vec::new())
    };
    println!("run took {:.1} s", started.elapsed().as_secs_f64());
    if let Some(path) = &options.json {
        let text = format!(
            "{{\n\"rows\": {},\n\"groups\": {},\n\"targets\": {},\n\"recovery\": {},\n\"bytes\": {}\n}}\n",
            report::json(&throughput.rows).trim_end(),
            json_groups(&throughput.groups),
            json_targets(&checked),
            json_reopens(&reopens),
            json_bytes(&bytes)
        );
        std::fs::write(path, text).map_err(|error| Error::write_report(path, error))?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

fn parse_bool(text: &str) -> Result<bool, Error> {
    text.parse()
        .map_err(|_| Error::usage(format!("`{text}` is not true or false")))
}

fn run_child(args: &[String]) -> Result<(), Error> {
    let reports = match args {
        [phase, dir, kind, keys, rows, chunk] if phase == "fill" => recovery::fill(
            Path::new(dir),
            kind == "khonsu",
            parse_one(keys, "keys")?,
            parse_one(rows, "rows")?,
            parse_one(chunk, "chunk")?,
        )?,
        [phase, dir, qr, keys] if phase == "reopen" => {
            recovery::reopen(Path::new(dir), parse_bool(qr)?, parse_one(keys, "keys")?)?
        }
        [phase, dir, qr, keys, rows, threads] if phase == "crash" => {
            recovery::write_until_killed(
                Path::new(dir),
                parse_bool(qr)?,
                parse_one(keys, "keys")?,
                parse_one(rows, "rows")?,
                parse_one(threads, "threads")?,
            )?;
            Vec::new()
        }
        _ => return Err(Error::usage(format!("unknown child phase {args:?}"))),
    };
    for (name, value) in reports {
        println!("@{name} {value}");
    }
    Ok(())
}

fn main() -> Report<Error> {
    Report::capture(|| {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if let Some((flag, rest)) = args.split_first()
            && flag == "--child"
        {
            return run_child(rest);
        }
        let options = Options::parse(args)?;
        if options.help {
            print!("{USAGE}");
            return Ok(());
        }
        run(&options)
    })
}

#[cfg(test)]
mod tests {
    use super::Options;

    #[test]
    fn quick_mode_is_small() -> Result<(), khonsu_benches::Error> {
        let o = Options::parse(["--quick".to_owned()])?;
        assert_eq!(o.threads, vec![1, 2, 8]);
        assert_eq!(o.rounds, 3);
        assert!(o.one_row_keys <= 20_000 && o.big_keys * o.big_rows <= 1_000_000);
        Ok(())
    }
}
