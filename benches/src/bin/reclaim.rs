//! The reclamation benchmark (issue 10): memory and commit latency while
//! long-lived readers stay open, in the scenario a user reported — two
//! threads updating 16 position keys at full speed while one read-only
//! snapshot (an auditor, a report, a slow consumer) stays open.
//!
//! ```text
//! cargo run --release -p khonsu-benches --bin reclaim                  # (a), (b) 60 s, the rest 20 s
//! cargo run --release -p khonsu-benches --bin reclaim -- --quick       # CI smoke, < 40 s
//! cargo run --release -p khonsu-benches --bin reclaim -- --duration 20 --json target/reclaim.json
//! ```
//!
//! # Method
//!
//! Every scenario runs in a fresh child process (the binary re-runs itself
//! with `--child SCENARIO ...`), so that memory one scenario freed cannot be
//! reused by the next and hide its cost. RSS is `VmRSS` and peak RSS
//! `VmHWM` from `/proc/self/status` of the child.
//!
//! The child preloads 16 keys (`u64`, big-endian) with a position each, then
//! two writer threads run `Khonsu::atomically` back to back at the default
//! isolation (`Serializable`): each call picks a key uniformly at random,
//! reads its position and writes a *fresh* one-row batch (`id: Int64`,
//! `qty: Int64`, `price: Float64`, the column arrays built for that write;
//! only the schema `Arc` is shared) with `qty + 1`. A batch shared by every
//! version would hide about a kilobyte per version. Each `atomically` call
//! is timed with `Instant` (retries included) into a log-linear histogram of
//! its own (64 sub-buckets per power of two, under 1.6 % error; the maximum
//! is exact); a call that returns a conflict after its retries is a
//! *give-up*; any other error fails the run. At the end the quantities must
//! sum to the number of committed calls (no lost or invented update).
//!
//! The child's main thread samples every second: RSS, peak RSS,
//! `Khonsu::stats()` (keys and versions; versions per key = versions ÷
//! keys), commits per second and the latency quantiles of that second. It
//! checks RSS every 50 ms and stops the scenario when it passes
//! `--max-rss-mib` (default 4096): an engine that keeps every version under
//! a held snapshot would otherwise exhaust the machine. Such a run is
//! reported as capped, and its targets as MISS.
//!
//! # Scenarios
//!
//! * **(a) `a-baseline`**: the writers alone, for `--duration` seconds.
//! * **(b) `b-held`**: the same, with one read-only snapshot
//!   (`TransactionOptions::new().read_only(true)`) opened after the preload
//!   and before the writers start, held for the whole run; at the end it
//!   must still read the preloaded position of every key (else the run
//!   fails).
//! * **(c) `c-staggered`**: `--snapshots` (100) read-only snapshots, one
//!   opened every duration ÷ 100 (each reads every key when it opens), all
//!   held till the end, when each must read again what it read at first.
//! * **(d)** after (b) and (c): every snapshot closes, the writers keep
//!   writing for `--settle` seconds (5), and the versions per key at the end
//!   are reported (the target is 1–2; no `collect_garbage` call).
//! * **(e) `e-gc`**: (a) with a thread calling `Khonsu::collect_garbage` in
//!   a loop (back to back, or every `--gc-interval-ms`), and
//!   **`e-gc-held`**: the same with (b)'s held snapshot.
//!
//! (c) and (e) run for `--short-duration` (20 s, at most `--duration`).
//!
//! # Report
//!
//! A row per second and per scenario; then the *held-snapshot table*, the
//! issue's targets with PASS/MISS — (b)'s peak RSS within 1.5× of (a)'s,
//! at most 3 versions per key with one snapshot held (maximum over the
//! samples), at most 101 with 100 staggered snapshots, 1–2 after they all
//! close — a memory table and a latency table (p50 / p99 / p99.9 / max per
//! scenario, beside the share of the scenario's time in which some task of
//! the machine waited for a CPU, from `/proc/pressure/cpu`: the noise).
//! `--json PATH` writes every figure, per-second samples included. The
//! exit status is non-zero when a run fails (a snapshot read something
//! else, an update was lost, a child crashed), and with `--check` also
//! when a target is missed.

use std::fmt::{self, Write as _};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use khonsu::{Key, Khonsu, Transaction, TransactionOptions};
use khonsu_benches::SplitMix64;
use khonsu_benches::report::{Machine, utc_now};
use snafu::{OptionExt, ResultExt, Snafu, ensure};

const USAGE: &str = "\
reclaim: memory and commit latency of full-speed overwrites while long-lived
read-only snapshots stay open (issue 10)

USAGE:
    cargo run --release -p khonsu-benches --bin reclaim -- [OPTIONS]

OPTIONS:
    --duration SECS        length of (a) no snapshot and (b) one held snapshot (default 60)
    --short-duration SECS  length of (c) staggered snapshots and (e) collect_garbage
                           loops (default 20, at most --duration)
    --settle SECS          writing after the snapshots close, (d) (default 5)
    --quick                3 s for (a) and (b), 2 s for the rest, 1 s to settle (CI smoke)
    --max-rss-mib MIB      stop a scenario whose RSS passes this (default 4096)
    --keys N               position keys (default 16)
    --writers N            writer threads (default 2)
    --snapshots N          snapshots of (c) (default 100)
    --gc-interval-ms MS    pause between collect_garbage calls in (e) (default 0: back to back)
    --only LIST            scenarios to run, e.g. a-baseline,b-held (default all)
    --json PATH            also write every figure as JSON to PATH
    --check                exit non-zero when a target is missed
    -h, --help             this text

SCENARIOS: a-baseline b-held c-staggered e-gc e-gc-held
";

/// Peak RSS with one held snapshot over peak RSS without, at most.
const MAX_RSS_RATIO: f64 = 1.5;
/// Versions per key with one snapshot held, at most.
const MAX_HELD_VERSIONS_PER_KEY: f64 = 3.0;
/// Versions per key after every snapshot closed, at most.
const MAX_SETTLED_VERSIONS_PER_KEY: f64 = 2.0;
/// How often the child checks RSS against the cap.
const GUARD_EVERY: Duration = Duration::from_millis(50);
/// How often the child prints a row.
const ROW_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Snafu)]
enum Error {
    #[snafu(display("Khonsu failed to {step}"))]
    Khonsu {
        step: &'static str,
        // Boxed: Khonsu's error is large and this one is returned everywhere.
        #[snafu(source(from(khonsu::Error, Box::new)))]
        source: Box<khonsu::Error>,
    },
    #[snafu(display("cannot read /proc/self/status"))]
    ReadStatus {
        #[snafu(source)]
        error: std::io::Error,
    },
    #[snafu(display("/proc/self/status has no readable {field} line"))]
    StatusField { field: &'static str },
    #[snafu(display("{message} (see --help)"))]
    Usage { message: String },
    #[snafu(display("cannot run the child process for {scenario}"))]
    Spawn {
        scenario: &'static str,
        #[snafu(source)]
        error: std::io::Error,
    },
    #[snafu(display("the child process for {scenario} failed ({status}); its error is above"))]
    Child {
        scenario: &'static str,
        status: ExitStatus,
    },
    #[snafu(display(
        "{scenario}: snapshot {snapshot} read {found} at key {key}, expected {expected}"
    ))]
    SnapshotChanged {
        scenario: &'static str,
        snapshot: usize,
        key: u64,
        expected: String,
        found: String,
    },
    #[snafu(display("{scenario}: key {key} does not hold a 1-row (id, qty, price) position"))]
    NotAPosition { scenario: &'static str, key: u64 },
    #[snafu(display("{scenario}: the quantities sum to {sum} after {commits} committed updates"))]
    LostUpdate {
        scenario: &'static str,
        sum: i64,
        commits: u64,
    },
    #[snafu(display("{scenario}: a {role} thread panicked"))]
    Panicked {
        scenario: &'static str,
        role: &'static str,
    },
    #[snafu(display("writing {} failed", path.display()))]
    WriteJson {
        path: PathBuf,
        #[snafu(source)]
        error: std::io::Error,
    },
}

type Result<T, E = Error> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------
// Conversions (display and statistics only).

#[expect(
    clippy::cast_precision_loss,
    reason = "statistics: counts far below 2^53 convert exactly"
)]
fn as_f64(n: u64) -> f64 {
    n as f64
}

fn usize_f64(n: usize) -> f64 {
    as_f64(u64::try_from(n).unwrap_or(u64::MAX))
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a non-negative, finite value rounded up; saturates"
)]
fn ceil_u64(x: f64) -> u64 {
    x.max(0.0).ceil() as u64
}

fn mib(kib: u64) -> f64 {
    as_f64(kib) / 1024.0
}

fn us(ns: u64) -> f64 {
    as_f64(ns) / 1_000.0
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------
// Memory.

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
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .context(StatusFieldSnafu { field: name })
    };
    Ok(Mem {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
    })
}

// ---------------------------------------------------------------------------
// The data: one position per key.

/// What a position batch holds; the price follows from id and quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    id: i64,
    qty: i64,
    price_bits: u64,
}

impl Position {
    fn new(id: i64, qty: i64) -> Self {
        // Cents as an integer, then a float: the same bits every time.
        let cents = 10_000_i64
            .saturating_add(id.saturating_mul(100))
            .saturating_add(qty % 10_000);
        #[expect(clippy::cast_precision_loss, reason = "cents far below 2^53")]
        let price = cents as f64 / 100.0;
        Self {
            id,
            qty,
            price_bits: price.to_bits(),
        }
    }

    fn initial(id: u64) -> Self {
        Self::new(i64::try_from(id).unwrap_or(i64::MAX), 0)
    }

    fn next(self) -> Self {
        Self::new(self.id, self.qty.saturating_add(1))
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("qty", DataType::Int64, false),
            Field::new("price", DataType::Float64, false),
        ]))
    }

    /// A fresh batch: three new column arrays, the schema shared.
    fn batch(self, schema: &SchemaRef) -> Result<RecordBatch, arrow_schema::ArrowError> {
        RecordBatch::try_new(
            Arc::clone(schema),
            vec![
                Arc::new(Int64Array::from(vec![self.id])),
                Arc::new(Int64Array::from(vec![self.qty])),
                Arc::new(Float64Array::from(vec![f64::from_bits(self.price_bits)])),
            ],
        )
    }

    fn decode(batch: &RecordBatch) -> Option<Self> {
        if batch.num_rows() != 1 {
            return None;
        }
        let columns = batch.columns();
        let int = |i: usize| {
            let array = columns.get(i)?.as_any().downcast_ref::<Int64Array>()?;
            array.is_valid(0).then(|| array.value(0))
        };
        let price = columns.get(2)?.as_any().downcast_ref::<Float64Array>()?;
        Some(Self {
            id: int(0)?,
            qty: int(1)?,
            price_bits: price.is_valid(0).then(|| price.value(0).to_bits())?,
        })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(id {}, qty {}, price {})",
            self.id,
            self.qty,
            f64::from_bits(self.price_bits)
        )
    }
}

// ---------------------------------------------------------------------------
// Latency histogram: log-linear buckets, 64 per power of two.

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Group 0 holds 0..64 exactly; group g ≥ 1 holds [2^(g+5), 2^(g+6)).
const BUCKETS: usize = 59 * 64;

fn bucket_of(ns: u64) -> usize {
    let index = if ns < SUB {
        ns
    } else {
        let shift = ns.ilog2() - SUB_BITS;
        (u64::from(shift) + 1) * SUB + ((ns >> shift) - SUB)
    };
    usize::try_from(index).map_or(BUCKETS - 1, |i| i.min(BUCKETS - 1))
}

/// The middle of bucket `index`.
fn bucket_value(index: usize) -> u64 {
    let index = u64::try_from(index).unwrap_or(u64::MAX);
    let (group, offset) = (index / SUB, index % SUB);
    if group == 0 {
        return offset;
    }
    let shift = u32::try_from(group - 1).unwrap_or(63).min(57);
    ((SUB + offset) << shift).saturating_add((1_u64 << shift) >> 1)
}

/// One thread's latencies; only that thread records, the sampler reads.
struct Histogram {
    buckets: Box<[AtomicU64]>,
    max: AtomicU64,
    /// The largest since the sampler last took it.
    interval_max: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
            interval_max: AtomicU64::new(0),
        }
    }

    fn record(&self, ns: u64) {
        if let Some(bucket) = self.buckets.get(bucket_of(ns)) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.max.fetch_max(ns, Ordering::Relaxed);
        self.interval_max.fetch_max(ns, Ordering::Relaxed);
    }

    fn add_to(&self, counts: &mut Counts) {
        for (sum, bucket) in counts.0.iter_mut().zip(self.buckets.iter()) {
            *sum += bucket.load(Ordering::Relaxed);
        }
    }
}

/// A copy of histogram counts, summed over threads.
#[derive(Clone, Debug)]
struct Counts(Vec<u64>);

impl Counts {
    fn new() -> Self {
        Self(vec![0; BUCKETS])
    }

    fn minus(&self, earlier: &Self) -> Self {
        Self(
            self.0
                .iter()
                .zip(&earlier.0)
                .map(|(now, then)| now.saturating_sub(*then))
                .collect(),
        )
    }

    fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    fn quantile(&self, q: f64) -> u64 {
        let total = self.total();
        if total == 0 {
            return 0;
        }
        let rank = ceil_u64(q * as_f64(total)).clamp(1, total);
        let mut seen = 0;
        for (index, count) in self.0.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_value(index);
            }
        }
        0
    }
}

/// Latency quantiles, in ns.
#[derive(Clone, Copy, Debug, Default)]
struct Latency {
    count: u64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

impl Latency {
    /// Quantiles of `counts`, none above the exact maximum `max`.
    fn of(counts: &Counts, max: u64) -> Self {
        Self {
            count: counts.total(),
            p50: counts.quantile(0.5).min(max),
            p99: counts.quantile(0.99).min(max),
            p999: counts.quantile(0.999).min(max),
            max,
        }
    }

    fn json(&self) -> String {
        format!(
            "{{\"count\": {}, \"p50_us\": {:.2}, \"p99_us\": {:.2}, \"p999_us\": {:.2}, \"max_us\": {:.2}}}",
            self.count,
            us(self.p50),
            us(self.p99),
            us(self.p999),
            us(self.max)
        )
    }
}

// ---------------------------------------------------------------------------
// Scenarios and configuration.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Baseline,
    Held,
    Staggered,
    Gc,
    GcHeld,
}

impl Scenario {
    const ALL: [Self; 5] = [
        Self::Baseline,
        Self::Held,
        Self::Staggered,
        Self::Gc,
        Self::GcHeld,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Baseline => "a-baseline",
            Self::Held => "b-held",
            Self::Staggered => "c-staggered",
            Self::Gc => "e-gc",
            Self::GcHeld => "e-gc-held",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    fn label(self, cfg: &Config) -> String {
        match self {
            Self::Baseline => "(a) no snapshot".to_owned(),
            Self::Held => "(b) 1 held snapshot".to_owned(),
            Self::Staggered => format!("(c) {} staggered snapshots", cfg.snapshots),
            Self::Gc => "(e) collect_garbage loop".to_owned(),
            Self::GcHeld => "(e) collect_garbage loop + held snapshot".to_owned(),
        }
    }

    fn held(self) -> bool {
        matches!(self, Self::Held | Self::GcHeld)
    }

    fn gc(self) -> bool {
        matches!(self, Self::Gc | Self::GcHeld)
    }

    /// Whether (d) follows: the snapshots close and the writers go on.
    fn settles(self) -> bool {
        matches!(self, Self::Held | Self::Staggered)
    }

    fn duration(self, cfg: &Config) -> Duration {
        match self {
            Self::Baseline | Self::Held => cfg.long,
            Self::Staggered | Self::Gc | Self::GcHeld => cfg.short,
        }
    }

    fn seed(self) -> u64 {
        let index = Self::ALL.iter().position(|s| *s == self).unwrap_or(0);
        0x5EED_0000 + u64::try_from(index).unwrap_or(0) * 64
    }
}

/// What every child gets on its command line.
#[derive(Clone, Copy, Debug)]
struct Config {
    long: Duration,
    short: Duration,
    settle: Duration,
    keys: u64,
    writers: usize,
    snapshots: usize,
    max_rss_mib: u64,
    gc_interval: Duration,
}

impl Config {
    fn to_args(self, scenario: Scenario) -> Vec<String> {
        vec![
            scenario.name().to_owned(),
            millis(self.long).to_string(),
            millis(self.short).to_string(),
            millis(self.settle).to_string(),
            self.keys.to_string(),
            self.writers.to_string(),
            self.snapshots.to_string(),
            self.max_rss_mib.to_string(),
            millis(self.gc_interval).to_string(),
        ]
    }

    fn from_args(args: &[String]) -> Result<(Scenario, Self)> {
        let [name, long, short, settle, keys, writers, snapshots, cap, gc] = args else {
            return UsageSnafu {
                message: format!("bad child arguments {args:?}"),
            }
            .fail();
        };
        let scenario = Scenario::parse(name).context(UsageSnafu {
            message: format!("unknown scenario `{name}`"),
        })?;
        let ms = |text: &str| parse_one(text, "child").map(Duration::from_millis);
        Ok((
            scenario,
            Self {
                long: ms(long)?,
                short: ms(short)?,
                settle: ms(settle)?,
                keys: parse_one(keys, "child")?,
                writers: parse_one(writers, "child")?,
                snapshots: parse_one(snapshots, "child")?,
                max_rss_mib: parse_one(cap, "child")?,
                gc_interval: ms(gc)?,
            },
        ))
    }
}

fn parse_one<T: std::str::FromStr>(text: &str, flag: &str) -> Result<T> {
    text.trim().parse().ok().context(UsageSnafu {
        message: format!("{flag}: `{text}` is not a number"),
    })
}

// ---------------------------------------------------------------------------
// Child: threads.

/// One writer's counters, on cache lines of their own.
#[repr(align(128))]
struct Lane {
    latency: Histogram,
    commits: AtomicU64,
    give_ups: AtomicU64,
    /// Attempts beyond the first of each `atomically` call.
    retries: AtomicU64,
}

impl Lane {
    fn new() -> Self {
        Self {
            latency: Histogram::new(),
            commits: AtomicU64::new(0),
            give_ups: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }
}

/// What the threads of a child share.
struct Ctx<'a> {
    db: &'a Khonsu,
    keys: &'a [Key],
    schema: &'a SchemaRef,
    cfg: &'a Config,
    scenario: Scenario,
}

/// Read-modify-writes of random keys until `stop`.
fn writer(ctx: &Ctx<'_>, lane: &Lane, stop: &AtomicBool, seed: u64) -> Result<()> {
    let mut rng = SplitMix64::new(seed);
    let n = u64::try_from(ctx.keys.len()).unwrap_or(u64::MAX);
    while !stop.load(Ordering::Relaxed) {
        let index = rng.below(n);
        let Some(key) = usize::try_from(index).ok().and_then(|i| ctx.keys.get(i)) else {
            continue;
        };
        let mut attempts = 0_u64;
        let started = Instant::now();
        let outcome = ctx.db.atomically(|t| {
            attempts += 1;
            let old = match t.read(key)? {
                Some(batch) => Position::decode(&batch)
                    .ok_or_else(|| khonsu::Error::abort("not a position batch"))?,
                None => Position::initial(index),
            };
            let batch = old
                .next()
                .batch(ctx.schema)
                .map_err(|e| khonsu::Error::abort(format!("cannot build a batch: {e}")))?;
            t.write(key.clone(), batch)
        });
        lane.latency.record(nanos(started.elapsed()));
        lane.retries
            .fetch_add(attempts.saturating_sub(1), Ordering::Relaxed);
        match outcome {
            Ok(()) => lane.commits.fetch_add(1, Ordering::Relaxed),
            Err(error) if error.is_conflict() => lane.give_ups.fetch_add(1, Ordering::Relaxed),
            Err(error) => {
                stop.store(true, Ordering::Relaxed);
                return Err(error).context(KhonsuSnafu {
                    step: "commit a position update",
                });
            }
        };
    }
    Ok(())
}

/// `collect_garbage` in a loop until `stop`, each call timed.
fn collector(db: &Khonsu, stop: &AtomicBool, latency: &Histogram, pause: Duration) {
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        db.collect_garbage();
        latency.record(nanos(started.elapsed()));
        let until = Instant::now() + pause;
        while !pause.is_zero() && !stop.load(Ordering::Relaxed) && Instant::now() < until {
            std::thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(GUARD_EVERY),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Child: snapshots.

/// An open read-only snapshot and what it must keep reading.
struct Held {
    txn: Transaction,
    expected: Vec<Position>,
}

/// The snapshots a scenario holds, and when the next staggered one opens.
struct Readers {
    open: Vec<Held>,
    planned: usize,
    every: Duration,
}

impl Readers {
    fn none() -> Self {
        Self {
            open: Vec::new(),
            planned: 0,
            every: Duration::ZERO,
        }
    }

    fn read_only(db: &Khonsu) -> Transaction {
        db.start_transaction_with(TransactionOptions::new().read_only(true))
    }

    /// When the next staggered snapshot is due, if one is.
    fn next_due(&self, start: Instant) -> Option<Instant> {
        let opened = u32::try_from(self.open.len()).unwrap_or(u32::MAX);
        (self.open.len() < self.planned).then(|| start + self.every * opened)
    }

    /// Opens the staggered snapshots due by `now`; each reads every key.
    fn open_due(&mut self, ctx: &Ctx<'_>, start: Instant, now: Instant) -> Result<()> {
        while self.next_due(start).is_some_and(|due| due <= now) {
            let mut txn = Self::read_only(ctx.db);
            let expected = read_all(ctx, &mut txn)?;
            self.open.push(Held { txn, expected });
        }
        Ok(())
    }

    /// Checks that every snapshot still reads what it must; returns how many.
    fn verify(&mut self, ctx: &Ctx<'_>) -> Result<usize> {
        for (snapshot, held) in self.open.iter_mut().enumerate() {
            let found = read_all(ctx, &mut held.txn)?;
            for ((key, want), got) in (0_u64..).zip(&held.expected).zip(&found) {
                ensure!(
                    want == got,
                    SnapshotChangedSnafu {
                        scenario: ctx.scenario.name(),
                        snapshot,
                        key,
                        expected: want.to_string(),
                        found: got.to_string(),
                    }
                );
            }
        }
        Ok(self.open.len())
    }
}

/// Every key's position as `txn` sees it.
fn read_all(ctx: &Ctx<'_>, txn: &mut Transaction) -> Result<Vec<Position>> {
    let mut positions = Vec::with_capacity(ctx.keys.len());
    for (key, k) in (0_u64..).zip(ctx.keys) {
        let batch = txn.read(k).context(KhonsuSnafu {
            step: "read a position",
        })?;
        let position = batch
            .as_deref()
            .and_then(Position::decode)
            .context(NotAPositionSnafu {
                scenario: ctx.scenario.name(),
                key,
            })?;
        positions.push(position);
    }
    Ok(positions)
}

// ---------------------------------------------------------------------------
// Child: sampling and phases.

/// One row: the state at `t` and what happened since the previous row.
#[derive(Clone, Copy, Debug)]
struct Sample {
    t: f64,
    mem: Mem,
    keys: usize,
    versions: usize,
    commits_per_s: f64,
    latency: Latency,
    give_ups: u64,
    snapshots: usize,
}

impl Sample {
    fn versions_per_key(&self) -> f64 {
        usize_f64(self.versions) / usize_f64(self.keys.max(1))
    }

    fn json(&self) -> String {
        format!(
            "{{\"t_s\": {:.3}, \"rss_mib\": {:.1}, \"peak_rss_mib\": {:.1}, \"keys\": {}, \
             \"versions\": {}, \"versions_per_key\": {:.3}, \"commits_per_s\": {:.0}, \
             \"latency\": {}, \"give_ups\": {}, \"snapshots_open\": {}}}",
            self.t,
            mib(self.mem.rss),
            mib(self.mem.hwm),
            self.keys,
            self.versions,
            self.versions_per_key(),
            self.commits_per_s,
            self.latency.json(),
            self.give_ups,
            self.snapshots
        )
    }
}

fn row_header() -> String {
    format!(
        "  {:<11} {:>6} {:>8} {:>8} {:>10} {:>9} {:>10} {:>8} {:>8} {:>9} {:>10} {:>8} {:>5}",
        "phase",
        "t s",
        "RSS MiB",
        "peak MiB",
        "versions",
        "ver/key",
        "commits/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "give-ups",
        "snaps"
    )
}

fn print_row(phase: &str, s: &Sample) {
    println!(
        "  {phase:<11} {:>6.1} {:>8.1} {:>8.1} {:>10} {:>9.2} {:>10.0} {:>8.1} {:>8.1} {:>9.1} {:>10.1} {:>8} {:>5}",
        s.t,
        mib(s.mem.rss),
        mib(s.mem.hwm),
        s.versions,
        s.versions_per_key(),
        s.commits_per_s,
        us(s.latency.p50),
        us(s.latency.p99),
        us(s.latency.p999),
        us(s.latency.max),
        s.give_ups,
        s.snapshots
    );
    let _ = std::io::stdout().flush();
}

/// Takes rows from the writers' counters.
struct Sampler<'a> {
    lanes: &'a [Lane],
    start: Instant,
    previous: Counts,
    previous_commits: u64,
    previous_t: f64,
    samples: Vec<Sample>,
}

impl<'a> Sampler<'a> {
    fn new(lanes: &'a [Lane], start: Instant) -> Self {
        Self {
            lanes,
            start,
            previous: Counts::new(),
            previous_commits: 0,
            previous_t: 0.0,
            samples: Vec::new(),
        }
    }

    fn counts(&self) -> Counts {
        let mut counts = Counts::new();
        for lane in self.lanes {
            lane.latency.add_to(&mut counts);
        }
        counts
    }

    fn sum(&self, field: impl Fn(&Lane) -> &AtomicU64) -> u64 {
        self.lanes
            .iter()
            .map(|lane| field(lane).load(Ordering::Relaxed))
            .sum()
    }

    fn sample(&mut self, db: &Khonsu, snapshots: usize) -> Result<Sample> {
        let t = self.start.elapsed().as_secs_f64();
        let counts = self.counts();
        let interval_max = self
            .lanes
            .iter()
            .map(|lane| lane.latency.interval_max.swap(0, Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let commits = self.sum(|lane| &lane.commits);
        let stats = db.stats();
        let mem = mem()?;
        let span = (t - self.previous_t).max(1e-9);
        let sample = Sample {
            t,
            mem,
            keys: stats.keys,
            versions: stats.versions,
            commits_per_s: as_f64(commits - self.previous_commits) / span,
            latency: Latency::of(&counts.minus(&self.previous), interval_max),
            give_ups: self.sum(|lane| &lane.give_ups),
            snapshots,
        };
        self.previous = counts;
        self.previous_commits = commits;
        self.previous_t = t;
        self.samples.push(sample);
        Ok(sample)
    }
}

/// What one phase (the run, or the writes after the snapshots closed)
/// measured.
struct Phase {
    samples: Vec<Sample>,
    secs: f64,
    commits: u64,
    give_ups: u64,
    retries: u64,
    latency: Latency,
    /// When RSS passed the cap and the phase stopped, in seconds.
    cap_hit: Option<f64>,
    /// `collect_garbage` calls and their durations.
    gc: Option<Latency>,
}

impl Phase {
    fn end(&self) -> Option<&Sample> {
        self.samples.last()
    }

    fn max_versions_per_key(&self) -> f64 {
        self.samples
            .iter()
            .map(Sample::versions_per_key)
            .fold(0.0, f64::max)
    }

    fn commits_per_s(&self) -> f64 {
        as_f64(self.commits) / self.secs.max(1e-9)
    }

    fn json(&self) -> String {
        let samples: Vec<String> = self.samples.iter().map(Sample::json).collect();
        format!(
            "{{\"secs\": {:.3}, \"commits\": {}, \"commits_per_s\": {:.0}, \"give_ups\": {}, \
             \"retries\": {}, \"latency\": {}, \"rss_cap_hit_at_s\": {}, \"end\": {}, \
             \"max_versions_per_key\": {:.3}, \"collect_garbage\": {}, \"samples\": [{}]}}",
            self.secs,
            self.commits,
            self.commits_per_s(),
            self.give_ups,
            self.retries,
            self.latency.json(),
            self.cap_hit
                .map_or_else(|| "null".to_owned(), |t| format!("{t:.3}")),
            self.end().map_or_else(|| "null".to_owned(), Sample::json),
            self.max_versions_per_key(),
            self.gc.map_or_else(|| "null".to_owned(), |gc| gc.json()),
            samples.join(", ")
        )
    }
}

/// Runs the writers (and the collector with `gc`) for `duration`, opening
/// `readers`' staggered snapshots as they fall due; a row every second.
///
/// Three jobs, three threads, so that none delays another: this one keeps
/// time (the deadline, the RSS cap, the snapshots' openings), a sampler
/// prints the rows (`Khonsu::stats` may walk the whole buffer, which takes
/// seconds when it holds millions of versions), and the writers write.
fn run_phase(
    ctx: &Ctx<'_>,
    name: &str,
    duration: Duration,
    gc: bool,
    readers: &mut Readers,
    seed: u64,
) -> Result<Phase> {
    let lanes: Vec<Lane> = (0..ctx.cfg.writers).map(|_| Lane::new()).collect();
    let gc_latency = Histogram::new();
    let stop = AtomicBool::new(false);
    let open = AtomicUsize::new(readers.open.len());
    std::thread::scope(|s| {
        let start = Instant::now();
        let writers: Vec<_> = (0_u64..)
            .zip(&lanes)
            .map(|(i, lane)| {
                let stop = &stop;
                s.spawn(move || writer(ctx, lane, stop, seed.wrapping_add(i)))
            })
            .collect();
        let collector =
            gc.then(|| s.spawn(|| collector(ctx.db, &stop, &gc_latency, ctx.cfg.gc_interval)));
        let rows = Sampler::new(&lanes, start);
        let (stop_flag, open_count) = (&stop, &open);
        let sampler = s.spawn(move || sample_rows(ctx, name, rows, stop_flag, open_count));
        let kept = keep_time(ctx, name, start, duration, readers, &stop, &open);
        stop.store(true, Ordering::Relaxed);
        let mut failure = None;
        for handle in writers {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(error)) => failure = failure.or(Some(error)),
                Err(_) => failure = failure.or(Some(panicked(ctx, "writer"))),
            }
        }
        // The writers' last calls may end well after the deadline.
        let secs = start.elapsed().as_secs_f64();
        if collector.is_some_and(|handle| handle.join().is_err()) {
            failure = failure.or(Some(panicked(ctx, "collect_garbage")));
        }
        let sampler = sampler
            .join()
            .unwrap_or_else(|_| Err(panicked(ctx, "sampler")));
        let cap_hit = kept?;
        if let Some(error) = failure {
            return Err(error);
        }
        let mut sampler = sampler?;
        let last = sampler.sample(ctx.db, readers.open.len())?;
        print_row(name, &last);
        let counts = sampler.counts();
        let max = lanes
            .iter()
            .map(|lane| lane.latency.max.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let mut gc_counts = Counts::new();
        gc_latency.add_to(&mut gc_counts);
        Ok(Phase {
            commits: sampler.sum(|lane| &lane.commits),
            give_ups: sampler.sum(|lane| &lane.give_ups),
            retries: sampler.sum(|lane| &lane.retries),
            samples: sampler.samples,
            secs,
            latency: Latency::of(&counts, max),
            cap_hit,
            gc: gc.then(|| Latency::of(&gc_counts, gc_latency.max.load(Ordering::Relaxed))),
        })
    })
}

fn panicked(ctx: &Ctx<'_>, role: &'static str) -> Error {
    PanickedSnafu {
        scenario: ctx.scenario.name(),
        role,
    }
    .build()
}

/// The timekeeper: until `end`, a writer failed, or RSS passed the cap
/// (returns when, in seconds), opening the staggered snapshots on time.
fn keep_time(
    ctx: &Ctx<'_>,
    name: &str,
    start: Instant,
    duration: Duration,
    readers: &mut Readers,
    stop: &AtomicBool,
    open: &AtomicUsize,
) -> Result<Option<f64>> {
    let end = start + duration;
    let cap_kib = ctx.cfg.max_rss_mib.saturating_mul(1024);
    let mut next_guard = start;
    loop {
        let now = Instant::now();
        if now >= end || stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        readers.open_due(ctx, start, now)?;
        open.store(readers.open.len(), Ordering::Relaxed);
        if now >= next_guard {
            next_guard = now + GUARD_EVERY;
            let m = mem()?;
            if m.rss > cap_kib {
                let t = start.elapsed().as_secs_f64();
                println!(
                    "  {name:<11} RSS {:.1} MiB passed the cap of {} MiB at {t:.1} s: stopping this scenario",
                    mib(m.rss),
                    ctx.cfg.max_rss_mib
                );
                return Ok(Some(t));
            }
        }
        let mut wake = end.min(next_guard);
        if let Some(due) = readers.next_due(start) {
            wake = wake.min(due);
        }
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
}

/// The sampler: a row every second until `stop` (rows that a slow
/// `Khonsu::stats` made late are not made up for).
fn sample_rows<'a>(
    ctx: &Ctx<'_>,
    name: &str,
    mut sampler: Sampler<'a>,
    stop: &AtomicBool,
    open: &AtomicUsize,
) -> Result<Sampler<'a>> {
    let mut next_row = sampler.start + ROW_EVERY;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next_row {
            while next_row <= now {
                next_row += ROW_EVERY;
            }
            match sampler.sample(ctx.db, open.load(Ordering::Relaxed)) {
                Ok(sample) => print_row(name, &sample),
                Err(error) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(error);
                }
            }
            continue;
        }
        std::thread::sleep(next_row.saturating_duration_since(now).min(GUARD_EVERY));
    }
    Ok(sampler)
}

// ---------------------------------------------------------------------------
// Child: a scenario.

fn report(name: &str, value: impl fmt::Display) {
    println!("@{name} {value}");
}

fn report_phase(prefix: &str, phase: &Phase) {
    let end = phase.end();
    report(&format!("{prefix}secs"), format!("{:.3}", phase.secs));
    report(&format!("{prefix}commits"), phase.commits);
    report(
        &format!("{prefix}commits_per_s"),
        format!("{:.0}", phase.commits_per_s()),
    );
    report(&format!("{prefix}give_ups"), phase.give_ups);
    report(&format!("{prefix}retries"), phase.retries);
    for (name, ns) in [
        ("p50_us", phase.latency.p50),
        ("p99_us", phase.latency.p99),
        ("p999_us", phase.latency.p999),
        ("max_us", phase.latency.max),
    ] {
        report(&format!("{prefix}{name}"), format!("{:.2}", us(ns)));
    }
    if let Some(end) = end {
        report(
            &format!("{prefix}rss_mib"),
            format!("{:.1}", mib(end.mem.rss)),
        );
        report(
            &format!("{prefix}peak_rss_mib"),
            format!("{:.1}", mib(end.mem.hwm)),
        );
        report(&format!("{prefix}versions"), end.versions);
        report(
            &format!("{prefix}vpk_end"),
            format!("{:.3}", end.versions_per_key()),
        );
    }
    report(
        &format!("{prefix}vpk_max"),
        format!("{:.3}", phase.max_versions_per_key()),
    );
    if let Some(t) = phase.cap_hit {
        report(&format!("{prefix}cap_hit_s"), format!("{t:.1}"));
    }
    if let Some(gc) = phase.gc {
        report(&format!("{prefix}gc_calls"), gc.count);
        report(&format!("{prefix}gc_p50_us"), format!("{:.1}", us(gc.p50)));
        report(&format!("{prefix}gc_max_us"), format!("{:.1}", us(gc.max)));
    }
}

/// Writes every key's initial position in one transaction.
fn preload(db: &Khonsu, keys: &[Key], schema: &SchemaRef) -> Result<()> {
    db.atomically(|t| {
        for (id, key) in (0_u64..).zip(keys) {
            let batch = Position::initial(id)
                .batch(schema)
                .map_err(|e| khonsu::Error::abort(format!("cannot build a batch: {e}")))?;
            t.write(key.clone(), batch)?;
        }
        Ok(())
    })
    .context(KhonsuSnafu {
        step: "preload the positions",
    })
}

/// Reports the figures of a scenario to the parent.
fn report_scenario(
    scenario: Scenario,
    cfg: &Config,
    rss_after_preload: u64,
    checked: usize,
    run: &Phase,
    settle: Option<&Phase>,
) {
    report_phase("", run);
    report("snapshots_checked", checked);
    if let Some(phase) = settle {
        report_phase("settle_", phase);
    }
    report(
        "json",
        format!(
            "{{\"scenario\": {:?}, \"description\": {:?}, \"duration_s\": {:.3}, \
             \"rss_after_preload_mib\": {:.1}, \"snapshots_checked\": {checked}, \"run\": {}, \
             \"after_close\": {}}}",
            scenario.name(),
            scenario.label(cfg),
            scenario.duration(cfg).as_secs_f64(),
            mib(rss_after_preload),
            run.json(),
            settle.map_or_else(|| "null".to_owned(), Phase::json)
        ),
    );
}

fn child(scenario: Scenario, cfg: Config) -> Result<()> {
    let db = Khonsu::builder()
        .build()
        .context(KhonsuSnafu { step: "build" })?;
    let schema = Position::schema();
    let keys: Vec<Key> = (0..cfg.keys).map(Key::from).collect();
    preload(&db, &keys, &schema)?;
    let ctx = Ctx {
        db: &db,
        keys: &keys,
        schema: &schema,
        cfg: &cfg,
        scenario,
    };
    let duration = scenario.duration(&cfg);
    let mut readers = Readers::none();
    if scenario.held() {
        readers.open.push(Held {
            txn: Readers::read_only(&db),
            expected: (0..cfg.keys).map(Position::initial).collect(),
        });
    }
    if scenario == Scenario::Staggered {
        readers.planned = cfg.snapshots;
        readers.every = duration / u32::try_from(cfg.snapshots.max(1)).unwrap_or(u32::MAX);
    }
    let at_start = mem()?;
    println!(
        "{}: {} writers, {} keys, {:.0} s; RSS {:.1} MiB after the preload",
        scenario.label(&cfg),
        cfg.writers,
        cfg.keys,
        duration.as_secs_f64(),
        mib(at_start.rss)
    );
    println!("{}", row_header());
    let run = run_phase(
        &ctx,
        "run",
        duration,
        scenario.gc(),
        &mut readers,
        scenario.seed(),
    )?;
    let checked = readers.verify(&ctx)?;
    if checked > 0 {
        println!("  all {checked} snapshots still read the positions they saw when they opened");
    }
    drop(readers);
    let settle = if scenario.settles() {
        let phase = run_phase(
            &ctx,
            "after-close",
            cfg.settle,
            false,
            &mut Readers::none(),
            scenario.seed() + 32,
        )?;
        Some(phase)
    } else {
        None
    };
    let commits = run.commits + settle.as_ref().map_or(0, |p| p.commits);
    let mut check = db.start_transaction_with(TransactionOptions::new().read_only(true));
    let sum: i64 = read_all(&ctx, &mut check)?.iter().map(|p| p.qty).sum();
    ensure!(
        u64::try_from(sum).ok() == Some(commits),
        LostUpdateSnafu {
            scenario: scenario.name(),
            sum,
            commits,
        }
    );
    println!("  the quantities sum to the {commits} committed updates");
    report_scenario(scenario, &cfg, at_start.rss, checked, &run, settle.as_ref());
    Ok(())
}

// ---------------------------------------------------------------------------
// Parent: options.

#[derive(Debug)]
struct Options {
    cfg: Config,
    quick: bool,
    only: Vec<Scenario>,
    json: Option<PathBuf>,
    check: bool,
    help: bool,
}

impl Options {
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Self> {
        let mut long = None;
        let mut short = None;
        let mut settle = None;
        let mut o = Self {
            cfg: Config {
                long: Duration::ZERO,
                short: Duration::ZERO,
                settle: Duration::ZERO,
                keys: 16,
                writers: 2,
                snapshots: 100,
                max_rss_mib: 4096,
                gc_interval: Duration::ZERO,
            },
            quick: false,
            only: Scenario::ALL.to_vec(),
            json: None,
            check: false,
            help: false,
        };
        let secs = |text: &str, flag: &str| {
            let s: f64 = parse_one(text, flag)?;
            ensure!(
                s.is_finite() && s > 0.0,
                UsageSnafu {
                    message: format!("{flag} needs a positive number of seconds")
                }
            );
            Ok::<_, Error>(Duration::from_secs_f64(s))
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg.clone(), None),
            };
            let mut value = || {
                inline.clone().or_else(|| args.next()).context(UsageSnafu {
                    message: format!("{flag} needs a value"),
                })
            };
            match flag.as_str() {
                "--quick" => o.quick = true,
                "--check" => o.check = true,
                "-h" | "--help" => o.help = true,
                "--duration" => long = Some(secs(&value()?, "--duration")?),
                "--short-duration" => short = Some(secs(&value()?, "--short-duration")?),
                "--settle" => settle = Some(secs(&value()?, "--settle")?),
                "--max-rss-mib" => o.cfg.max_rss_mib = parse_one(&value()?, "--max-rss-mib")?,
                "--keys" => o.cfg.keys = parse_one(&value()?, "--keys")?,
                "--writers" => o.cfg.writers = parse_one(&value()?, "--writers")?,
                "--snapshots" => o.cfg.snapshots = parse_one(&value()?, "--snapshots")?,
                "--gc-interval-ms" => {
                    o.cfg.gc_interval =
                        Duration::from_millis(parse_one(&value()?, "--gc-interval-ms")?);
                }
                "--json" => o.json = Some(PathBuf::from(value()?)),
                "--only" => {
                    let text = value()?;
                    let mut only = Vec::new();
                    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        only.push(Scenario::parse(name).context(UsageSnafu {
                            message: format!("--only: unknown scenario `{name}`"),
                        })?);
                    }
                    o.only = Scenario::ALL
                        .into_iter()
                        .filter(|s| only.contains(s))
                        .collect();
                }
                other => {
                    return UsageSnafu {
                        message: format!("unknown argument `{other}`"),
                    }
                    .fail();
                }
            }
        }
        let (default_long, default_short, default_settle) = if o.quick {
            (3.0, 2.0, 1.0)
        } else {
            (60.0, 20.0, 5.0)
        };
        o.cfg.long = long.unwrap_or(Duration::from_secs_f64(default_long));
        o.cfg.short = short.unwrap_or(Duration::from_secs_f64(default_short).min(o.cfg.long));
        o.cfg.settle = settle.unwrap_or(Duration::from_secs_f64(default_settle));
        ensure!(
            o.cfg.keys > 0 && o.cfg.writers > 0 && o.cfg.snapshots > 0 && !o.only.is_empty(),
            UsageSnafu {
                message: "--keys, --writers, --snapshots and --only need at least one"
            }
        );
        Ok(o)
    }
}

// ---------------------------------------------------------------------------
// Parent: children.

/// What a child reported: `@name value` lines and its JSON object.
struct Outcome {
    scenario: Scenario,
    values: Vec<(String, String)>,
    json: String,
    /// The share of the child's wall time in which some task of this
    /// machine waited for a CPU (`/proc/pressure/cpu`, "some").
    cpu_wait: Option<f64>,
}

impl Outcome {
    fn num(&self, name: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.parse().ok())
    }
}

/// Time this machine spent with some task waiting for a CPU so far, in µs
/// (`/proc/pressure/cpu`, the "some" line).
fn cpu_pressure() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    text.lines()
        .find(|line| line.starts_with("some"))?
        .split_whitespace()
        .find_map(|field| field.strip_prefix("total="))?
        .parse()
        .ok()
}

/// Runs `scenario` in a child, printing its rows as they come.
fn spawn(scenario: Scenario, cfg: Config) -> Result<Outcome> {
    let name = scenario.name();
    let started = Instant::now();
    let pressure_before = cpu_pressure();
    let exe = std::env::current_exe().context(SpawnSnafu { scenario: name })?;
    let mut child = Command::new(exe)
        .arg("--child")
        .args(cfg.to_args(scenario))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context(SpawnSnafu { scenario: name })?;
    let mut values = Vec::new();
    let mut json = "null".to_owned();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context(SpawnSnafu { scenario: name })?;
            match line.strip_prefix('@').and_then(|rest| rest.split_once(' ')) {
                Some(("json", value)) => value.clone_into(&mut json),
                Some((field, value)) => values.push((field.to_owned(), value.to_owned())),
                None => {
                    println!("{line}");
                    let _ = std::io::stdout().flush();
                }
            }
        }
    }
    let status = child.wait().context(SpawnSnafu { scenario: name })?;
    ensure!(
        status.success(),
        ChildSnafu {
            scenario: name,
            status
        }
    );
    let wall_us = started.elapsed().as_secs_f64() * 1e6;
    let cpu_wait = pressure_before
        .zip(cpu_pressure())
        .map(|(before, after)| as_f64(after.saturating_sub(before)) / wall_us.max(1.0));
    if let Some(share) = cpu_wait {
        println!(
            "  noise: some task of this machine waited for a CPU {:.0}% of the time \
             (/proc/pressure/cpu; this benchmark's own threads included)",
            share * 100.0
        );
    }
    // The child's object, with the noise figure added in front.
    if let Some(rest) = json.strip_prefix('{') {
        json = format!(
            "{{\"cpu_wait_share\": {}, {rest}",
            cpu_wait.map_or_else(|| "null".to_owned(), |w| format!("{w:.3}"))
        );
    }
    Ok(Outcome {
        scenario,
        values,
        json,
        cpu_wait,
    })
}

// ---------------------------------------------------------------------------
// Parent: targets and tables.

/// One of the issue's targets.
struct Target {
    name: String,
    measured: Option<f64>,
    shown: String,
    limit: f64,
    pass: bool,
    note: String,
}

impl Target {
    fn verdict(&self) -> &'static str {
        if self.pass { "PASS" } else { "MISS" }
    }
}

fn find(outcomes: &[Outcome], scenario: Scenario) -> Option<&Outcome> {
    outcomes.iter().find(|o| o.scenario == scenario)
}

fn capped(o: &Outcome, prefix: &str) -> Option<String> {
    o.num(&format!("{prefix}cap_hit_s")).map(|t| {
        format!(
            "{} stopped at the RSS cap after {t:.1} s",
            o.scenario.name()
        )
    })
}

fn vpk_target(name: String, o: &Outcome, prefix: &str, limit: f64, max: bool) -> Target {
    let end = o.num(&format!("{prefix}vpk_end"));
    let top = o.num(&format!("{prefix}vpk_max"));
    let measured = if max { top } else { end };
    let cap = capped(o, prefix);
    Target {
        name,
        measured,
        shown: format!(
            "end {}, max {}",
            end.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
            top.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
        ),
        limit,
        pass: cap.is_none() && measured.is_some_and(|m| m <= limit),
        note: cap.unwrap_or_default(),
    }
}

fn targets(cfg: &Config, outcomes: &[Outcome]) -> Vec<Target> {
    let mut out = Vec::new();
    let held = find(outcomes, Scenario::Held);
    if let (Some(a), Some(b)) = (find(outcomes, Scenario::Baseline), held) {
        let (pa, pb) = (a.num("peak_rss_mib"), b.num("peak_rss_mib"));
        let ratio = pa.zip(pb).map(|(pa, pb)| pb / pa);
        let cap = capped(b, "").or_else(|| capped(a, ""));
        out.push(Target {
            name: "(b) peak RSS with 1 snapshot held / (a) without".to_owned(),
            measured: ratio,
            shown: match (pa, pb, ratio) {
                (Some(pa), Some(pb), Some(r)) => format!("{pb:.1} / {pa:.1} MiB = {r:.2}x"),
                _ => "-".to_owned(),
            },
            limit: MAX_RSS_RATIO,
            pass: cap.is_none() && ratio.is_some_and(|r| r <= MAX_RSS_RATIO),
            note: cap.map_or_else(String::new, |c| format!("{c}: a lower bound")),
        });
    }
    if let Some(b) = held {
        out.push(vpk_target(
            "(b) versions per key, 1 snapshot held (max over samples)".to_owned(),
            b,
            "",
            MAX_HELD_VERSIONS_PER_KEY,
            true,
        ));
    }
    let staggered = find(outcomes, Scenario::Staggered);
    if let Some(c) = staggered {
        out.push(vpk_target(
            format!(
                "(c) versions per key, {} staggered snapshots (max)",
                cfg.snapshots
            ),
            c,
            "",
            usize_f64(cfg.snapshots) + 1.0,
            true,
        ));
    }
    for (o, what) in [(held, "(b)'s snapshot"), (staggered, "(c)'s snapshots")] {
        if let Some(o) = o {
            out.push(vpk_target(
                format!(
                    "(d) versions per key {:.0} s after {what} closed (end)",
                    cfg.settle.as_secs_f64()
                ),
                o,
                "settle_",
                MAX_SETTLED_VERSIONS_PER_KEY,
                false,
            ));
        }
    }
    out
}

fn fmt_num(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn target_table(targets: &[Target]) -> String {
    let mut out = String::from("held-snapshot table (issue 10 targets)\n");
    let _ = writeln!(
        out,
        "  {:<60} {:<30} {:>7}  verdict",
        "target", "measured", "limit"
    );
    for t in targets {
        let _ = writeln!(
            out,
            "  {:<60} {:<30} {:>7}  {}{}",
            t.name,
            t.shown,
            format!("<= {}", t.limit),
            t.verdict(),
            if t.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", t.note)
            }
        );
    }
    out
}

/// The phases shown in the memory and latency tables: each scenario's run
/// and, after (b) and (c), its settle phase.
fn phases<'a>(cfg: &Config, outcomes: &'a [Outcome]) -> Vec<(String, &'a Outcome, &'static str)> {
    let mut rows = Vec::new();
    for o in outcomes {
        rows.push((o.scenario.label(cfg), o, ""));
        if o.num("settle_secs").is_some() {
            rows.push((
                format!("(d) after {} closed", o.scenario.label(cfg)),
                o,
                "settle_",
            ));
        }
    }
    rows
}

fn memory_table(cfg: &Config, outcomes: &[Outcome]) -> String {
    let mut out = String::from("memory table\n");
    let _ = writeln!(
        out,
        "  {:<52} {:>6} {:>9} {:>9} {:>10} {:>8} {:>8}  note",
        "scenario", "secs", "RSS MiB", "peak MiB", "versions", "ver/key", "max v/k"
    );
    for (label, o, p) in phases(cfg, outcomes) {
        let n = |f: &str| o.num(&format!("{p}{f}"));
        let _ = writeln!(
            out,
            "  {label:<52} {:>6} {:>9} {:>9} {:>10} {:>8} {:>8}  {}",
            fmt_num(n("secs"), 1),
            fmt_num(n("rss_mib"), 1),
            fmt_num(n("peak_rss_mib"), 1),
            fmt_num(n("versions"), 0),
            fmt_num(n("vpk_end"), 2),
            fmt_num(n("vpk_max"), 2),
            n("cap_hit_s").map_or_else(String::new, |t| format!("RSS cap hit at {t:.1} s"))
        );
    }
    out
}

fn latency_table(cfg: &Config, outcomes: &[Outcome]) -> String {
    let mut out = String::from("latency table (each `atomically` call, retries included)\n");
    let _ = writeln!(
        out,
        "  {:<52} {:>10} {:>8} {:>8} {:>9} {:>10} {:>8} {:>8} {:>9}",
        "scenario",
        "commits/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "give-ups",
        "retries",
        "CPU wait"
    );
    for (label, o, p) in phases(cfg, outcomes) {
        let n = |f: &str| o.num(&format!("{p}{f}"));
        let _ = writeln!(
            out,
            "  {label:<52} {:>10} {:>8} {:>8} {:>9} {:>10} {:>8} {:>8} {:>9}",
            fmt_num(n("commits_per_s"), 0),
            fmt_num(n("p50_us"), 1),
            fmt_num(n("p99_us"), 1),
            fmt_num(n("p999_us"), 1),
            fmt_num(n("max_us"), 1),
            fmt_num(n("give_ups"), 0),
            fmt_num(n("retries"), 0),
            if p.is_empty() {
                fmt_num(o.cpu_wait.map(|w| w * 100.0), 0) + "%"
            } else {
                String::new()
            },
        );
        if let (Some(calls), Some(p50), Some(max)) = (n("gc_calls"), n("gc_p50_us"), n("gc_max_us"))
        {
            let _ = writeln!(
                out,
                "  {:<52} {calls:>10.0} calls of collect_garbage, p50 {p50:.1} µs, max {max:.1} µs",
                ""
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Parent: the run.

/// The short git commit of the working tree, `+dirty` when it has changes.
fn git_commit() -> String {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let Some(commit) = run(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".to_owned();
    };
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{commit}+dirty")
    } else {
        commit
    }
}

fn json_targets(targets: &[Target]) -> String {
    let items: Vec<String> = targets
        .iter()
        .map(|t| {
            format!(
                "{{\"target\": {:?}, \"measured\": {}, \"limit\": {}, \"verdict\": {:?}, \"note\": {:?}}}",
                t.name,
                t.measured
                    .filter(|m| m.is_finite())
                    .map_or_else(|| "null".to_owned(), |m| format!("{m:.4}")),
                t.limit,
                t.verdict(),
                t.note
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn run(o: &Options) -> Result<bool> {
    let started = Instant::now();
    let machine = Machine::detect();
    let cfg = o.cfg;
    let command: Vec<String> = std::env::args().collect();
    let commit = git_commit();
    let date = utc_now();
    println!("# Khonsu reclamation benchmark (issue 10)");
    println!("command:  {}", command.join(" "));
    println!("date:     {date}   commit: {commit}");
    println!(
        "machine:  {} logical CPUs, {}, Linux {}",
        machine.nproc, machine.model, machine.kernel
    );
    println!(
        "workload: {} writers, each an `atomically` read-modify-write of one of {} keys (uniform), \
         default isolation, a fresh 1-row (id Int64, qty Int64, price Float64) batch per write",
        cfg.writers, cfg.keys
    );
    println!(
        "lengths:  (a),(b) {:.0} s; (c),(e) {:.0} s; (d) {:.0} s of writes after the snapshots close; \
         RSS cap {} MiB; collect_garbage pause {} ms",
        cfg.long.as_secs_f64(),
        cfg.short.as_secs_f64(),
        cfg.settle.as_secs_f64(),
        cfg.max_rss_mib,
        millis(cfg.gc_interval)
    );
    println!(
        "method:   each scenario in a fresh child process; RSS = VmRSS, peak = VmHWM; versions from \
         Khonsu::stats(); latency per `atomically` call\n"
    );
    let mut outcomes = Vec::new();
    for scenario in &o.only {
        outcomes.push(spawn(*scenario, cfg)?);
        println!();
    }
    let checked = targets(&cfg, &outcomes);
    print!("{}", target_table(&checked));
    println!();
    print!("{}", memory_table(&cfg, &outcomes));
    println!();
    print!("{}", latency_table(&cfg, &outcomes));
    println!();
    println!("run took {:.1} s", started.elapsed().as_secs_f64());
    if let Some(path) = &o.json {
        let scenarios: Vec<&str> = outcomes.iter().map(|o| o.json.as_str()).collect();
        let text = format!(
            "{{\n\"benchmark\": \"reclaim\",\n\"command\": {:?},\n\"date\": {date:?},\n\"commit\": {commit:?},\n\
             \"machine\": {{\"nproc\": {}, \"model\": {:?}, \"kernel\": {:?}}},\n\
             \"config\": {{\"duration_s\": {:.3}, \"short_duration_s\": {:.3}, \"settle_s\": {:.3}, \
             \"keys\": {}, \"writers\": {}, \"snapshots\": {}, \"max_rss_mib\": {}, \"gc_interval_ms\": {}}},\n\
             \"targets\": {},\n\"scenarios\": [\n{}\n]\n}}\n",
            command.join(" "),
            machine.nproc,
            machine.model,
            machine.kernel,
            cfg.long.as_secs_f64(),
            cfg.short.as_secs_f64(),
            cfg.settle.as_secs_f64(),
            cfg.keys,
            cfg.writers,
            cfg.snapshots,
            cfg.max_rss_mib,
            millis(cfg.gc_interval),
            json_targets(&checked),
            scenarios.join(",\n")
        );
        std::fs::write(path, text).context(WriteJsonSnafu { path: path.clone() })?;
        println!("results written to {}", path.display());
    }
    Ok(checked.iter().all(|t| t.pass))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.split_first() {
        Some((flag, rest)) if flag == "--child" => {
            Config::from_args(rest).and_then(|(scenario, cfg)| child(scenario, cfg).map(|()| true))
        }
        _ => Options::parse(args).and_then(|o| {
            if o.help {
                print!("{USAGE}");
                Ok(true)
            } else {
                run(&o).map(|met| met || !o.check)
            }
        }),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("reclaim: a target was missed (--check)");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{}", snafu::Report::from_error(error));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{BUCKETS, Counts, Histogram, Options, Position, as_f64, bucket_of, bucket_value};

    #[test]
    fn buckets_are_within_two_percent() {
        for ns in [
            0,
            1,
            63,
            64,
            65,
            127,
            128,
            1_000,
            123_456,
            9_999_999_999,
            u64::MAX,
        ] {
            let index = bucket_of(ns);
            assert!(index < BUCKETS, "{ns} -> {index}");
            let value = bucket_value(index);
            let error = as_f64(value.abs_diff(ns)) / as_f64(ns.max(1));
            assert!(error <= 0.016, "{ns} -> {value} ({error})");
        }
        let indices: Vec<usize> = (0..10_000).map(bucket_of).collect();
        assert!(indices.windows(2).all(|w| w[0] <= w[1]), "monotonic");
    }

    #[test]
    fn quantiles() {
        let h = Histogram::new();
        for ns in 1..=1_000 {
            h.record(ns * 1_000);
        }
        let mut counts = Counts::new();
        h.add_to(&mut counts);
        let p50 = as_f64(counts.quantile(0.5));
        let p99 = as_f64(counts.quantile(0.99));
        assert!((p50 / 500_000.0 - 1.0).abs() < 0.02, "{p50}");
        assert!((p99 / 990_000.0 - 1.0).abs() < 0.02, "{p99}");
        assert_eq!(Counts::new().quantile(0.5), 0);
        assert_eq!(counts.minus(&counts).total(), 0);
    }

    #[test]
    fn positions_round_trip() {
        let schema = Position::schema();
        let p = Position::initial(7).next().next();
        assert_eq!(p.qty, 2);
        let batch = p.batch(&schema).unwrap();
        assert_eq!(batch.num_columns(), 3);
        assert_eq!(Position::decode(&batch), Some(p));
    }

    #[test]
    fn quick_mode_is_short() {
        let o = Options::parse(["--quick".to_owned()]).unwrap();
        let total = 2 * o.cfg.long + 3 * o.cfg.short + 2 * o.cfg.settle;
        assert!(total.as_secs() <= 20, "{total:?}");
        let o = Options::parse(["--duration".to_owned(), "10".to_owned()]).unwrap();
        assert_eq!(o.cfg.short.as_secs(), 10);
    }
}
