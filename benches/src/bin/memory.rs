//! The memory benchmark: what Khonsu costs per key, and whether reclamation
//! keeps memory bounded under endless overwrites, with and without a
//! long-lived snapshot.
//!
//! ```text
//! cargo run --release -p khonsu-benches --bin memory            # full: 1M keys, 1M→10M overwrites
//! cargo run --release -p khonsu-benches --bin memory -- --quick # 100k keys, 200k→2M overwrites
//! ```
//!
//! Three parts, each in its own child process (the binary re-runs itself
//! with `--child ...`) so that memory one part freed cannot be reused by the
//! next and hide its cost:
//!
//! * **(a) bytes per key.** Resident set size (`VmRSS` in
//!   `/proc/self/status`) is read after the empty store and the one value
//!   are built and again after loading N keys. Every key holds the *same*
//!   `Arc<RecordBatch>`, whose column buffers are therefore counted once
//!   and before the first reading: the difference divided by N is the
//!   store's own cost per key beyond the payload. Khonsu is compared with a
//!   bare `crossbeam_skiplist::SkipMap<u64, Arc<RecordBatch>>` holding
//!   clones of that `Arc` (the floor); Khonsu is given the same `Arc`
//!   (`write(key, Arc<RecordBatch>)` stores it as is). A `SkipMap` holding a
//!   fresh `Arc` of a `RecordBatch` clone per key shows what writing by
//!   value (`write(key, RecordBatch)`) adds per key.
//! * **(b) overwrites.** 10,000 keys, overwritten uniformly at random by
//!   single-write transactions on one thread. Peak RSS (`VmHWM`) after the
//!   first and after the last checkpoint must be within 1.2× of each other;
//!   `Khonsu::stats()` shows the versions held at each checkpoint.
//! * **(c) a long-lived snapshot.** The same, with a read-only transaction
//!   opened before the overwrites: versions (and RSS) grow while it is open;
//!   `collect_garbage` while it is open trims them to what the snapshot can
//!   see; after it closes, commits and `collect_garbage` bring the version
//!   count back to one per key, and a further burst of overwrites does not
//!   grow RSS past the earlier peak (the allocator reuses the freed memory
//!   rather than returning it to the OS, so RSS itself need not fall).
//!
//! Exits non-zero when the 1.2× check of (b) fails in full mode.

use std::fmt::Write as _;
use std::hint::black_box;
use std::process::{Command, ExitCode, ExitStatus};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Int64Array, RecordBatch};
use crossbeam_skiplist::SkipMap;
use khonsu::{Khonsu, Stats, TransactionOptions};
use snafu::{OptionExt, ResultExt, Snafu, ensure};

/// Peak RSS after the last overwrite checkpoint over after the first.
const MAX_PEAK_RATIO: f64 = 1.2;
/// Keys written per transaction while loading part (a).
const LOAD_CHUNK: u64 = 1_000;

#[derive(Debug, Snafu)]
enum Error {
    #[snafu(display("cannot read /proc/self/status"))]
    ReadStatus {
        #[snafu(source)]
        error: std::io::Error,
    },
    #[snafu(display("/proc/self/status has no readable {field} line"))]
    StatusField { field: &'static str },
    #[snafu(display("Khonsu failed to {step}"))]
    Khonsu {
        step: &'static str,
        // Boxed: Khonsu's error is large and this one is returned everywhere.
        #[snafu(source(from(khonsu::Error, Box::new)))]
        source: Box<khonsu::Error>,
    },
    #[snafu(display("cannot build a batch"))]
    Arrow {
        #[snafu(source)]
        error: arrow_schema::ArrowError,
    },
    #[snafu(display("cannot run the child process for {phase}"))]
    Spawn {
        phase: String,
        #[snafu(source)]
        error: std::io::Error,
    },
    #[snafu(display("the child process for {phase} failed ({status}): {stderr}"))]
    Child {
        phase: String,
        status: ExitStatus,
        stderr: String,
    },
    #[snafu(display("the child process for {phase} did not report {field}"))]
    ChildField { phase: String, field: String },
    #[snafu(display("bad arguments: {why} (usage: memory [--quick])"))]
    Usage { why: String },
    #[snafu(display("the snapshot read {rows} rows at key {key}, expected 1 (its own version)"))]
    SnapshotBroken { key: u64, rows: usize },
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// Sizes for one run.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Keys loaded in part (a).
    load_keys: u64,
    /// Keys overwritten in parts (b) and (c).
    hot_keys: u64,
    /// Overwrites between checkpoints in part (b); the first checkpoint.
    step: u64,
    /// Overwrites in total in part (b).
    total: u64,
    /// Overwrites with the snapshot open in part (c).
    snapshot_overwrites: u64,
}

impl Plan {
    const FULL: Self = Self {
        load_keys: 1_000_000,
        hot_keys: 10_000,
        step: 1_000_000,
        total: 10_000_000,
        snapshot_overwrites: 1_000_000,
    };
    const QUICK: Self = Self {
        load_keys: 100_000,
        hot_keys: 10_000,
        step: 200_000,
        total: 2_000_000,
        snapshot_overwrites: 200_000,
    };
}

/// Resident memory of this process, in KiB.
#[derive(Clone, Copy, Debug)]
struct Mem {
    rss: u64,
    hwm: u64,
}

fn mem() -> Result<Mem> {
    let status = std::fs::read_to_string("/proc/self/status").context(ReadStatusSnafu)?;
    let field = |name: &'static str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .context(StatusFieldSnafu { field: name })
    };
    Ok(Mem {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
    })
}

#[expect(clippy::cast_precision_loss, reason = "display only")]
fn as_f64(n: u64) -> f64 {
    n as f64
}

/// A count printed with thousands separators (`1,000,000`).
#[derive(Clone, Copy)]
struct Count(u64);

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.0.to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        f.pad(&out)
    }
}

fn mib(kib: u64) -> f64 {
    as_f64(kib) / 1024.0
}

/// A one-column batch of `rows` rows.
fn batch(rows: i64) -> Result<RecordBatch> {
    RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from_iter_values(0..rows)) as _)])
        .context(ArrowSnafu)
}

/// splitmix64: a fixed, uniform-looking key sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Writes `value` to each key of `keys`, `chunk` keys per transaction.
fn load(
    db: &Khonsu,
    keys: impl Iterator<Item = u64>,
    chunk: u64,
    value: &Arc<RecordBatch>,
) -> Result<()> {
    let mut t = db.start_transaction();
    let mut staged = 0;
    for k in keys {
        t.write(k, Arc::clone(value)).context(KhonsuSnafu {
            step: "stage a write",
        })?;
        staged += 1;
        if staged == chunk {
            t.commit().context(KhonsuSnafu { step: "commit" })?;
            t = db.start_transaction();
            staged = 0;
        }
    }
    t.commit().context(KhonsuSnafu { step: "commit" })?;
    Ok(())
}

/// `n` single-write transactions on keys drawn uniformly from `0..keys`.
fn overwrite(
    db: &Khonsu,
    rng: &mut Rng,
    keys: u64,
    n: u64,
    value: &Arc<RecordBatch>,
) -> Result<()> {
    for _ in 0..n {
        let mut t = db.start_transaction();
        t.write(rng.next() % keys, Arc::clone(value))
            .context(KhonsuSnafu {
                step: "stage a write",
            })?;
        t.commit().context(KhonsuSnafu {
            step: "commit an overwrite",
        })?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Child phases. Each prints `@name value` lines for the parent and free text.

fn report(name: &str, value: impl std::fmt::Display) {
    println!("@{name} {value}");
}

/// Part (a): load `n` keys into one engine, report RSS before and after.
fn child_load(engine: &str, n: u64) -> Result<()> {
    let value = Arc::new(batch(1)?);
    match engine {
        "khonsu" => {
            let db = Khonsu::builder()
                .build()
                .context(KhonsuSnafu { step: "build" })?;
            let before = mem()?;
            load(&db, 0..n, LOAD_CHUNK, &value)?;
            let after = mem()?;
            let stats = db.stats();
            report("before", before.rss);
            report("after", after.rss);
            report("versions", stats.versions);
            black_box(&db);
        }
        "skipmap" | "skipmap_own_arc" => {
            let map: SkipMap<u64, Arc<RecordBatch>> = SkipMap::new();
            let before = mem()?;
            for k in 0..n {
                let v = if engine == "skipmap" {
                    Arc::clone(&value)
                } else {
                    Arc::new((*value).clone())
                };
                map.insert(k, v);
            }
            let after = mem()?;
            report("before", before.rss);
            report("after", after.rss);
            report("versions", map.len());
            black_box(&map);
        }
        other => {
            return UsageSnafu {
                why: format!("unknown engine {other}"),
            }
            .fail();
        }
    }
    Ok(())
}

fn row(label: &str, m: Mem, stats: Stats, secs: f64) -> String {
    format!(
        "  {label:<44} {:>9.1} {:>9.1} {:>8} {:>10} {secs:>8.2}",
        mib(m.rss),
        mib(m.hwm),
        Count(u64::try_from(stats.keys).unwrap_or(u64::MAX)),
        Count(u64::try_from(stats.versions).unwrap_or(u64::MAX)),
    )
}

fn header() -> String {
    format!(
        "  {:<44} {:>9} {:>9} {:>8} {:>10} {:>8}",
        "step", "RSS MiB", "peak MiB", "keys", "versions", "secs"
    )
}

/// Part (b): overwrite `keys` keys `total` times, a checkpoint every `step`.
fn child_churn(keys: u64, step: u64, total: u64) -> Result<()> {
    let db = Khonsu::builder()
        .build()
        .context(KhonsuSnafu { step: "build" })?;
    let value = Arc::new(batch(1)?);
    let start = Instant::now();
    load(&db, 0..keys, LOAD_CHUNK, &value)?;
    println!("{}", header());
    let loaded = mem()?;
    println!(
        "{}",
        row(
            &format!("preloaded {} keys", Count(keys)),
            loaded,
            db.stats(),
            start.elapsed().as_secs_f64()
        )
    );
    report("loaded_rss", loaded.rss);
    let mut rng = Rng(1);
    let mut done = 0;
    let mut first = None;
    let mut last = loaded;
    while done < total {
        let n = step.min(total - done);
        let start = Instant::now();
        overwrite(&db, &mut rng, keys, n, &value)?;
        done += n;
        let secs = start.elapsed().as_secs_f64();
        last = mem()?;
        first.get_or_insert(last);
        println!(
            "{}",
            row(
                &format!("{} overwrites", Count(done)),
                last,
                db.stats(),
                secs
            )
        );
        report(&format!("tx_per_s_{done}"), (as_f64(n) / secs).round());
    }
    let first = first.unwrap_or(loaded);
    report("first_hwm", first.hwm);
    report("last_hwm", last.hwm);
    report("first_rss", first.rss);
    report("last_rss", last.rss);
    Ok(())
}

/// Checks that the snapshot still sees the preloaded 1-row value everywhere.
fn check_snapshot(snapshot: &mut khonsu::Transaction, keys: u64) -> Result<()> {
    for k in 0..keys {
        let rows = snapshot
            .read(k.to_be_bytes())
            .context(KhonsuSnafu {
                step: "read in the snapshot",
            })?
            .map_or(0, |b| b.num_rows());
        ensure!(rows == 1, SnapshotBrokenSnafu { key: k, rows });
    }
    Ok(())
}

/// Part (c): overwrites with one long-lived snapshot open, then closed.
fn child_snapshot(keys: u64, overwrites: u64) -> Result<()> {
    let db = Khonsu::builder()
        .build()
        .context(KhonsuSnafu { step: "build" })?;
    // Preloaded values have 1 row, overwrites 2: the snapshot must keep
    // reading 1-row batches.
    let old = Arc::new(batch(1)?);
    let new = Arc::new(batch(2)?);
    let mut rng = Rng(2);
    println!("{}", header());
    let timed = |label: String, body: &mut dyn FnMut() -> Result<()>| -> Result<Mem> {
        let start = Instant::now();
        body()?;
        let secs = start.elapsed().as_secs_f64();
        let m = mem()?;
        println!("{}", row(&label, m, db.stats(), secs));
        Ok(m)
    };
    let loaded = timed(format!("preloaded {} keys", Count(keys)), &mut || {
        load(&db, 0..keys, LOAD_CHUNK, &old)
    })?;
    report("loaded_rss", loaded.rss);
    let mut snapshot = db.start_transaction_with(TransactionOptions::new().read_only(true));
    let open = timed(
        format!("+{} overwrites, snapshot open", Count(overwrites)),
        &mut || overwrite(&db, &mut rng, keys, overwrites, &new),
    )?;
    report("open_rss", open.rss);
    report("open_versions", db.stats().versions);
    timed("collect_garbage, snapshot open".to_owned(), &mut || {
        db.collect_garbage();
        Ok(())
    })?;
    report("open_gc_versions", db.stats().versions);
    check_snapshot(&mut snapshot, keys)?;
    println!(
        "  (the snapshot still reads its own 1-row version of all {} keys)",
        Count(keys)
    );
    drop(snapshot);
    let commits = keys * 10;
    timed(
        format!("snapshot closed, +{} overwrites", Count(commits)),
        &mut || overwrite(&db, &mut rng, keys, commits, &new),
    )?;
    report("closed_versions", db.stats().versions);
    timed("collect_garbage".to_owned(), &mut || {
        db.collect_garbage();
        Ok(())
    })?;
    report("closed_gc_versions", db.stats().versions);
    let again = timed(
        format!("+{} overwrites, no snapshot", Count(overwrites)),
        &mut || overwrite(&db, &mut rng, keys, overwrites, &new),
    )?;
    report("again_rss", again.rss);
    report("again_hwm", again.hwm);
    report("again_versions", db.stats().versions);
    Ok(())
}

fn parse_u64(value: &str, what: &str) -> Result<u64> {
    value.parse().ok().context(UsageSnafu {
        why: format!("{what} needs a number"),
    })
}

fn run_child(args: &[String]) -> Result<()> {
    match args {
        [phase, engine, n] if phase == "load" => child_load(engine, parse_u64(n, "load")?),
        [phase, keys, step, total] if phase == "churn" => child_churn(
            parse_u64(keys, "churn keys")?,
            parse_u64(step, "churn step")?,
            parse_u64(total, "churn total")?,
        ),
        [phase, keys, n] if phase == "snapshot" => child_snapshot(
            parse_u64(keys, "snapshot keys")?,
            parse_u64(n, "snapshot overwrites")?,
        ),
        _ => UsageSnafu {
            why: format!("unknown child phase {args:?}"),
        }
        .fail(),
    }
}

// ---------------------------------------------------------------------------
// Parent: runs the phases as child processes and prints the report.

/// What a child printed: free text, and its `@name value` reports.
struct ChildOutput {
    phase: String,
    text: String,
    values: Vec<(String, String)>,
}

impl ChildOutput {
    fn count(&self, field: &str) -> Result<Count> {
        self.values
            .iter()
            .find(|(name, _)| name == field)
            .and_then(|(_, v)| v.parse().ok())
            .map(Count)
            .context(ChildFieldSnafu {
                phase: self.phase.clone(),
                field,
            })
    }

    fn get(&self, field: &str) -> Result<f64> {
        self.values
            .iter()
            .find(|(name, _)| name == field)
            .and_then(|(_, v)| v.parse().ok())
            .context(ChildFieldSnafu {
                phase: self.phase.clone(),
                field,
            })
    }
}

fn spawn(args: &[String]) -> Result<ChildOutput> {
    let phase = args.join(" ");
    let exe = std::env::current_exe().context(SpawnSnafu {
        phase: phase.clone(),
    })?;
    let output = Command::new(exe)
        .arg("--child")
        .args(args)
        .output()
        .context(SpawnSnafu {
            phase: phase.clone(),
        })?;
    ensure!(
        output.status.success(),
        ChildSnafu {
            phase,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut text = String::new();
    let mut values = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix('@') {
            if let Some((name, value)) = rest.split_once(' ') {
                values.push((name.to_owned(), value.to_owned()));
            }
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    Ok(ChildOutput {
        phase,
        text,
        values,
    })
}

fn strings<const N: usize>(args: [&str; N]) -> Vec<String> {
    args.iter().map(|&s| s.to_owned()).collect()
}

fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{nproc} CPUs, {model}")
}

/// Part (a). Returns the report text.
fn part_a(plan: Plan) -> Result<String> {
    let n = plan.load_keys;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "(a) bytes per key beyond the payload, {} u64 keys, every key holding one shared 1-row batch",
        Count(n)
    );
    let _ = writeln!(
        out,
        "  {:<44} {:>10} {:>10} {:>10}",
        "engine", "RSS before", "RSS after", "bytes/key"
    );
    let mut per_key = Vec::new();
    for (engine, label) in [
        ("skipmap", "SkipMap<u64, Arc<RecordBatch>> (same Arc)"),
        (
            "skipmap_own_arc",
            "SkipMap, own Arc<RecordBatch> clone per key",
        ),
        ("khonsu", "Khonsu (1,000 writes per transaction)"),
    ] {
        let child = spawn(&strings(["load", engine, &n.to_string()]))?;
        let before = child.get("before")?;
        let after = child.get("after")?;
        let bytes = (after - before) * 1024.0 / as_f64(n);
        per_key.push(bytes);
        let _ = writeln!(
            out,
            "  {label:<44} {:>6.1} MiB {:>6.1} MiB {bytes:>10.1}",
            before / 1024.0,
            after / 1024.0
        );
    }
    if let [floor, own_arc, khonsu] = per_key.as_slice() {
        let _ = writeln!(
            out,
            "  Khonsu / SkipMap: {:.2}x ({:+.1} bytes per key); Khonsu / SkipMap with own Arc: {:.2}x",
            khonsu / floor,
            khonsu - floor,
            khonsu / own_arc
        );
    }
    Ok(out)
}

/// Part (b). Returns the report text and whether the check passed.
fn part_b(plan: Plan) -> Result<(String, bool)> {
    let child = spawn(&strings([
        "churn",
        &plan.hot_keys.to_string(),
        &plan.step.to_string(),
        &plan.total.to_string(),
    ]))?;
    let first = child.get("first_hwm")?;
    let last = child.get("last_hwm")?;
    let loaded = child.get("loaded_rss")?;
    let ratio = last / first;
    let pass = ratio <= MAX_PEAK_RATIO;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "(b) {} keys overwritten {} times by single-write Serializable transactions, one thread",
        Count(plan.hot_keys),
        Count(plan.total)
    );
    out.push_str(&child.text);
    let _ = writeln!(
        out,
        "  peak RSS after {} / after {} overwrites: {:.1} / {:.1} MiB = {ratio:.3} (limit {MAX_PEAK_RATIO}): {}",
        Count(plan.total),
        Count(plan.step),
        last / 1024.0,
        first / 1024.0,
        if pass { "PASS" } else { "FAIL" }
    );
    let _ = writeln!(
        out,
        "  growth over the preloaded store: {:.1} MiB after {}, {:.1} MiB after {}",
        (first - loaded) / 1024.0,
        Count(plan.step),
        (last - loaded) / 1024.0,
        Count(plan.total)
    );
    Ok((out, pass))
}

/// Part (c). Returns the report text.
fn part_c(plan: Plan) -> Result<String> {
    let child = spawn(&strings([
        "snapshot",
        &plan.hot_keys.to_string(),
        &plan.snapshot_overwrites.to_string(),
    ]))?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "(c) the same {} keys, {} overwrites with one read-only snapshot open from before the first",
        Count(plan.hot_keys),
        Count(plan.snapshot_overwrites)
    );
    out.push_str(&child.text);
    let loaded = child.get("loaded_rss")?;
    let open = child.get("open_rss")?;
    let again = child.get("again_hwm")?;
    let retained = child
        .count("open_versions")?
        .0
        .saturating_sub(plan.hot_keys);
    let _ = writeln!(
        out,
        "  the open snapshot made RSS grow by {:.1} MiB for {} retained versions ({:.0} bytes each)",
        (open - loaded) / 1024.0,
        Count(retained),
        (open - loaded) * 1024.0 / as_f64(retained.max(1)),
    );
    let _ = writeln!(
        out,
        "  versions: {} with the snapshot open, {} after collect_garbage with it open,\n  \
         {} after it closed and {} more commits, {} after collect_garbage, {} after the last burst",
        child.count("open_versions")?,
        child.count("open_gc_versions")?,
        child.count("closed_versions")?,
        Count(plan.hot_keys * 10),
        child.count("closed_gc_versions")?,
        child.count("again_versions")?,
    );
    let _ = writeln!(
        out,
        "  RSS is not handed back to the OS (the allocator keeps freed chunks for reuse): the last\n  \
         {} overwrites raised peak RSS by {:.1} MiB over the RSS with the snapshot open ({:.1} MiB),\n  \
         against the {:.1} MiB the snapshot cost",
        Count(plan.snapshot_overwrites),
        (again - open) / 1024.0,
        open / 1024.0,
        (open - loaded) / 1024.0,
    );
    Ok(out)
}

fn run_parent(quick: bool) -> Result<bool> {
    let plan = if quick { Plan::QUICK } else { Plan::FULL };
    println!(
        "Khonsu memory benchmark ({} mode) on {}",
        if quick { "quick" } else { "full" },
        machine()
    );
    println!(
        "Method: each part runs in a fresh child process; RSS is VmRSS and peak RSS VmHWM from\n\
         /proc/self/status. All keys share one Arc<RecordBatch>, built before the first reading,\n\
         so the payload is counted once and (a)'s bytes/key is the store's own overhead.\n"
    );
    let start = Instant::now();
    println!("{}", part_a(plan)?);
    let (b, pass) = part_b(plan)?;
    println!("{b}");
    println!("{}", part_c(plan)?);
    println!("total {:.1} s", start.elapsed().as_secs_f64());
    Ok(pass || quick)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.split_first() {
        Some((flag, rest)) if flag == "--child" => run_child(rest).map(|()| true),
        Some((flag, [])) if flag == "--quick" => run_parent(true),
        None => run_parent(false),
        Some(_) => UsageSnafu {
            why: format!("unexpected {args:?}"),
        }
        .fail(),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("memory: peak RSS grew more than {MAX_PEAK_RATIO}x under overwrites");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{}", snafu::Report::from_error(error));
            ExitCode::FAILURE
        }
    }
}
