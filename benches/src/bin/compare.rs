//! The engine comparison driver: the same workloads on Khonsu and its peers,
//! in one process, engines interleaved, one table.
//!
//! ```text
//! cargo run --release -p khonsu-benches --bin compare -- \
//!     [--quick] [--threads 1,2] [--json PATH] [--engines a,b] [--workloads a,b]
//! ```
//!
//! For each workload and thread count it runs several short rounds; each
//! round runs every engine once, rotating which goes first, so that a noisy
//! moment or a CPU frequency change hits every engine alike. Rows report the
//! median round. See `--help`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use khonsu_benches::report::{self, Machine, Row};
use khonsu_benches::{
    CellSpec, Engine, EngineKind, Error, Measurement, Setup, Workload, cpu, run_cell,
    workloads::DEFAULT_KEYS,
};
use snafu::Report;

const USAGE: &str = "\
compare: run the same workloads on Khonsu and its peers, engines interleaved

USAGE:
    cargo run --release -p khonsu-benches --bin compare -- [OPTIONS]

OPTIONS:
    --quick              3 rounds x 100 ms per cell (default: 5 rounds x 200 ms)
    --threads LIST       worker thread counts, e.g. 1,2 (default 1,2)
    --json PATH          also write the rows as a JSON array to PATH
    --engines LIST       engines to run (default all); `khonsu` and `skipdb`
                         name their groups
    --workloads LIST     workloads to run (default all)
    --rounds N           rounds per cell (overrides the mode)
    --cell-ms MS         duration of one engine's run in a round, in ms
    --keys N             keys loaded in every engine (default 100000)
    --seed N             seed of the key generators (default 42)
    --log-preload LIST   rows in the hot log at the start of its cells
                         (default 0,10000); `none` skips the hot-log section
    -h, --help           this text

ENGINES:   khonsu-rc khonsu-rr khonsu-ser khonsu-ser-conservative skipdb-optimistic
           skipdb-serializable stm mutex-btreemap skipmap
WORKLOADS: r1 w1 rmw1 ycsb-a ycsb-b ycsb-c scan100 skew matcher
           (skew and matcher: Khonsu's engines only)
";

/// Parsed command line.
#[derive(Debug)]
struct Options {
    quick: bool,
    threads: Vec<usize>,
    json: Option<PathBuf>,
    engines: Vec<EngineKind>,
    workloads: Vec<Workload>,
    rounds: usize,
    cell: Duration,
    keys: u64,
    seed: u64,
    log_preloads: Vec<usize>,
    help: bool,
}

impl Options {
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, Error> {
        let mut options = Self {
            quick: false,
            threads: vec![1, 2],
            json: None,
            engines: EngineKind::ALL.to_vec(),
            workloads: Workload::ALL.to_vec(),
            rounds: 0,
            cell: Duration::ZERO,
            keys: DEFAULT_KEYS,
            seed: 42,
            log_preloads: vec![0, 10_000],
            help: false,
        };
        let mut rounds = None;
        let mut cell_ms = None;
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
                "--quick" => options.quick = true,
                "-h" | "--help" => options.help = true,
                "--threads" => options.threads = parse_list(&value()?, "--threads", parse_number)?,
                "--json" => options.json = Some(PathBuf::from(value()?)),
                "--engines" => options.engines = parse_engines(&value()?)?,
                "--workloads" => {
                    options.workloads = parse_list(&value()?, "--workloads", |name| {
                        Workload::parse(name).ok_or_else(|| format!("unknown workload `{name}`"))
                    })?;
                }
                "--rounds" => rounds = Some(parse_one(&value()?, "--rounds")?),
                "--cell-ms" => cell_ms = Some(parse_one(&value()?, "--cell-ms")?),
                "--keys" => options.keys = parse_one(&value()?, "--keys")?,
                "--seed" => options.seed = parse_one(&value()?, "--seed")?,
                "--log-preload" => {
                    let text = value()?;
                    options.log_preloads = if text == "none" {
                        Vec::new()
                    } else {
                        parse_list(&text, "--log-preload", parse_number)?
                    };
                }
                other => {
                    return Err(Error::usage(format!(
                        "unknown argument `{other}`\n\n{USAGE}"
                    )));
                }
            }
        }
        let (default_rounds, default_ms) = if options.quick { (3, 100) } else { (5, 200) };
        options.rounds = rounds.unwrap_or(default_rounds).max(1);
        options.cell = Duration::from_millis(cell_ms.unwrap_or(default_ms).max(1));
        if options.threads.is_empty() || options.threads.contains(&0) {
            return Err(Error::usage("--threads needs positive thread counts"));
        }
        Ok(options)
    }

    fn mode(&self) -> &'static str {
        if self.quick { "quick" } else { "full" }
    }
}

fn parse_number(text: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not a number"))
}

fn parse_one<T: std::str::FromStr>(text: &str, flag: &str) -> Result<T, Error> {
    text.trim()
        .parse()
        .map_err(|_| Error::usage(format!("{flag}: `{text}` is not a number")))
}

fn parse_list<T: PartialEq>(
    text: &str,
    flag: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, Error> {
    let mut items = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let item =
            parse(part).map_err(|why| Error::usage(format!("{flag}: {why} (see --help)")))?;
        if !items.contains(&item) {
            items.push(item);
        }
    }
    Ok(items)
}

fn parse_engines(text: &str) -> Result<Vec<EngineKind>, Error> {
    let groups = parse_list(text, "--engines", |name| {
        let group: Vec<EngineKind> = EngineKind::ALL
            .into_iter()
            .filter(|kind| kind.name() == name || kind.name().starts_with(&format!("{name}-")))
            .collect();
        if group.is_empty() {
            Err(format!("unknown engine `{name}`"))
        } else {
            Ok(group)
        }
    })?;
    // Keep report order whatever the order on the command line.
    Ok(EngineKind::ALL
        .into_iter()
        .filter(|kind| groups.iter().any(|group| group.contains(kind)))
        .collect())
}

/// The short git commit of the working tree, `+dirty` when it has changes.
fn git_commit() -> Option<String> {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
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

/// `arg` quoted for a POSIX shell when it needs it.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./,=:+@%".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Prints what was run, where, and how to read the table. `args` is the
/// command line, program first, quoted for a shell.
fn print_header(options: &Options, args: &[String], setup: &Setup) {
    let machine = Machine::detect();
    let reference = EngineKind::REFERENCE.name();
    let flags = args.get(1..).unwrap_or_default().join(" ");
    println!("# Khonsu engine comparison");
    println!("command:  {}", args.join(" "));
    println!("rerun:    cargo run --release -p khonsu-benches --bin compare -- {flags}");
    println!(
        "date:     {}   commit: {}",
        report::utc_now(),
        git_commit().unwrap_or_else(|| "unknown".to_owned())
    );
    println!(
        "machine:  {} logical CPUs, {}, Linux {}",
        machine.nproc, machine.model, machine.kernel
    );
    println!(
        "mode:     {}: {} rounds x {} ms per engine, workload and thread count; every round runs \
         each engine once, order rotating (engines interleaved)",
        options.mode(),
        options.rounds,
        options.cell.as_millis()
    );
    println!(
        "data:     keys 0..{} (u64) loaded in every engine; values are Arc<RecordBatch> from a \
         pool of {} one-row batches built before timing",
        setup.keys,
        Setup::POOL_SIZE
    );
    println!("tx/s:     committed transactions per second of wall time, median round");
    println!(
        "CPU:      on-CPU time (user+sys) per committed transaction of the worker threads plus the \
         engine's own background threads (skipdb's watermarks), from /proc/*/schedstat (ns), \
         median round"
    );
    println!("abort%:   aborted attempts / all attempts; conflicts are retried until commit");
    println!(
        "ratios:   ÷{reference} = value / Khonsu Serializable's on the same workload and thread \
         count (tx/s: >1 is faster than Khonsu; CPU: <1 is cheaper)"
    );
    println!("engines:");
    for kind in &options.engines {
        println!("  {:<20} {}", kind.name(), kind.describe());
    }
    println!("workloads:");
    for workload in &options.workloads {
        println!("  {:<20} {}", workload.name(), workload.describe());
    }
    println!();
}

/// A caveat for rows of engines that are not transactional.
fn note_for(engine: &dyn Engine, workload: Workload) -> Option<&'static str> {
    if engine.is_transactional() {
        return None;
    }
    match workload {
        Workload::Rmw1 => Some("not atomic: get+insert, counter not checked"),
        Workload::YcsbA | Workload::YcsbB | Workload::YcsbC | Workload::Scan100 => {
            Some("no isolation between ops")
        }
        Workload::R1 | Workload::W1 | Workload::Skew | Workload::Matcher => None,
    }
}

fn cell_seed(base: u64, workload: usize, threads: usize, round: usize) -> u64 {
    let mix = |x: usize| u64::try_from(x).unwrap_or(u64::MAX);
    base ^ mix(workload).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ mix(threads).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ mix(round).wrapping_mul(0x1656_67B1_9E37_79F9)
}

/// The table, then each engine's thread scaling and the scaling targets.
fn print_results(rows: &[Row], reference: &str) {
    print!("{}", report::table(rows, reference));
    println!();
    print!(
        "{}",
        report::scaling(rows, reference, EngineKind::SkipMap.name())
    );
    println!();
}

fn run(options: &Options) -> Result<(), Error> {
    let started = Instant::now();
    let cpu_at_start = cpu::process_cpu_time();
    let args: Vec<String> = std::env::args().map(|arg| shell_quote(&arg)).collect();
    let setup = Setup::new(options.keys)?;
    print_header(options, &args, &setup);

    let load_started = Instant::now();
    let mut engines: Vec<Box<dyn Engine>> = Vec::with_capacity(options.engines.len());
    for kind in &options.engines {
        engines.push(kind.build(setup.keys, &setup.pool)?);
    }
    eprintln!(
        "loaded {} engines x {} keys in {:.1} s",
        engines.len(),
        setup.keys,
        load_started.elapsed().as_secs_f64()
    );

    let mut rows: Vec<Row> = Vec::new();
    let mut measured_cpu = Duration::ZERO;
    let mut background_cpu = vec![Duration::ZERO; engines.len()];
    for (workload_index, &workload) in options.workloads.iter().enumerate() {
        for &threads in &options.threads {
            let group_started = Instant::now();
            let mut rounds: Vec<Vec<Measurement>> = vec![Vec::new(); engines.len()];
            for round in 0..options.rounds {
                let cell = CellSpec {
                    workload,
                    threads,
                    duration: options.cell,
                    seed: cell_seed(options.seed, workload_index, threads, round),
                };
                let first = round % engines.len().max(1);
                for offset in 0..engines.len() {
                    let index = (first + offset) % engines.len();
                    let (Some(engine), Some(measurements)) =
                        (engines.get(index), rounds.get_mut(index))
                    else {
                        continue;
                    };
                    if !engine.supports(workload) {
                        continue;
                    }
                    let measured = run_cell(engine.as_ref(), &setup, &cell)?;
                    measured_cpu += measured.cpu.unwrap_or_default();
                    if let Some(total) = background_cpu.get_mut(index) {
                        *total += measured.background_cpu.unwrap_or_default();
                    }
                    measurements.push(measured);
                }
            }
            for (engine, measurements) in engines.iter().zip(&rounds) {
                engine.maintain();
                if measurements.is_empty() {
                    continue;
                }
                let mut row =
                    Row::from_rounds(engine.name(), workload.name(), threads, measurements);
                row.note = note_for(engine.as_ref(), workload);
                rows.push(row);
            }
            eprintln!(
                "{:<8} x{threads}: {} engines x {} rounds in {:.1} s",
                workload.name(),
                engines.len(),
                options.rounds,
                group_started.elapsed().as_secs_f64()
            );
        }
    }

    let reference = EngineKind::REFERENCE.name();
    report::add_ratios(&mut rows, reference);
    print_results(&rows, reference);
    if !options.log_preloads.is_empty() {
        khonsu_benches::hot_log::run_and_print(
            &options.threads,
            &options.log_preloads,
            options.rounds,
            options.cell,
        )?;
    }
    let process_cpu = cpu::process_cpu_time()
        .zip(cpu_at_start)
        .map(|(end, start)| end.saturating_sub(start));
    println!(
        "run took {:.1} s; process CPU {} s (/proc/self/stat, 10 ms ticks; includes loading), \
         measured CPU {:.1} s",
        started.elapsed().as_secs_f64(),
        process_cpu.map_or_else(|| "-".to_owned(), |cpu| format!("{:.1}", cpu.as_secs_f64())),
        measured_cpu.as_secs_f64()
    );
    print_background(&engines, &background_cpu);
    if let Some(path) = &options.json {
        std::fs::write(path, report::json(&rows))
            .map_err(|error| Error::write_report(path, error))?;
        println!("rows written to {}", path.display());
    }
    Ok(())
}

/// The CPU time each engine's own threads used.
fn print_background(engines: &[Box<dyn Engine>], background_cpu: &[Duration]) {
    let background = engines
        .iter()
        .zip(background_cpu)
        .map(|(engine, cpu)| format!("{} {:.2} s", engine.name(), cpu.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ");
    println!("of which engines' background threads: {background}");
}

fn main() -> Report<Error> {
    Report::capture(|| {
        let options = Options::parse(std::env::args().skip(1))?;
        if options.help {
            print!("{USAGE}");
            return Ok(());
        }
        run(&options)
    })
}
