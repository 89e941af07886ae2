//! Result rows, their ratios to the reference engine, and the table, JSON
//! and machine description the driver prints.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::runner::Measurement;

/// One line of the comparison: an engine on a workload at a thread count,
/// summarised over rounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The engine's name.
    pub engine: &'static str,
    /// The workload's name.
    pub workload: &'static str,
    /// Worker threads.
    pub threads: usize,
    /// Committed transactions, all rounds.
    pub txns: u64,
    /// Aborted (and retried) attempts, all rounds.
    pub aborts: u64,
    /// Committed transactions per second: the median over rounds.
    pub tx_per_s: f64,
    /// CPU time (workers plus the engine's background threads) per
    /// committed transaction, in µs: the median over rounds; `None` without
    /// thread CPU clocks.
    pub cpu_us_per_txn: Option<f64>,
    /// `tx_per_s` ÷ the reference engine's on the same workload and
    /// thread count (above 1: faster than the reference).
    pub ratio: Option<f64>,
    /// `cpu_us_per_txn` ÷ the reference engine's (below 1: cheaper).
    pub cpu_ratio: Option<f64>,
    /// A caveat shown beside the row.
    pub note: Option<&'static str>,
}

impl Row {
    /// Summarises the rounds of one engine, workload and thread count.
    #[must_use]
    pub fn from_rounds(
        engine: &'static str,
        workload: &'static str,
        threads: usize,
        rounds: &[Measurement],
    ) -> Self {
        let mut rates: Vec<f64> = rounds
            .iter()
            .filter(|m| !m.wall.is_zero())
            .map(|m| as_f64(m.txns) / m.wall.as_secs_f64())
            .collect();
        let mut cpu: Vec<f64> = rounds
            .iter()
            .filter(|m| m.txns > 0)
            .filter_map(|m| Some(m.cpu?.as_secs_f64() * 1e6 / as_f64(m.txns)))
            .collect();
        Self {
            engine,
            workload,
            threads,
            txns: rounds.iter().map(|m| m.txns).sum(),
            aborts: rounds.iter().map(|m| m.aborts).sum(),
            tx_per_s: median(&mut rates).unwrap_or(0.0),
            cpu_us_per_txn: median(&mut cpu),
            ratio: None,
            cpu_ratio: None,
            note: None,
        }
    }

    /// Aborted attempts ÷ all attempts.
    #[must_use]
    pub fn abort_rate(&self) -> f64 {
        let attempts = self.txns + self.aborts;
        if attempts == 0 {
            0.0
        } else {
            as_f64(self.aborts) / as_f64(attempts)
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` when empty. Sorts `values`.
#[must_use]
pub fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values.get(mid).copied()
    } else {
        Some((values.get(mid.checked_sub(1)?)? + values.get(mid)?) / 2.0)
    }
}

/// Fills `ratio` and `cpu_ratio` of every row against the row of engine
/// `reference` with the same workload and thread count (left `None` where
/// that row is missing).
pub fn add_ratios(rows: &mut [Row], reference: &str) {
    let bases: Vec<(&'static str, usize, f64, Option<f64>)> = rows
        .iter()
        .filter(|row| row.engine == reference)
        .map(|row| (row.workload, row.threads, row.tx_per_s, row.cpu_us_per_txn))
        .collect();
    for row in rows.iter_mut() {
        let base = bases
            .iter()
            .find(|(workload, threads, ..)| *workload == row.workload && *threads == row.threads);
        if let Some(&(_, _, rate, cpu)) = base {
            row.ratio = (rate > 0.0).then(|| row.tx_per_s / rate);
            row.cpu_ratio = cpu
                .zip(row.cpu_us_per_txn)
                .and_then(|(base, own)| (base > 0.0).then(|| own / base));
        }
    }
}

/// The rows as an aligned text table, a blank line between workload and
/// thread-count groups.
#[must_use]
pub fn table(rows: &[Row], reference: &str) -> String {
    let mut out = String::new();
    let ref_label = format!("÷{reference}");
    let _ = writeln!(
        out,
        "{:<20} {:<8} {:>3} {:>11} {:>12} {:>10} {:>7} {:>14} {:>14}  note",
        "engine",
        "workload",
        "thr",
        "txns",
        "tx/s",
        "CPU µs/txn",
        "abort%",
        format!("tx/s {ref_label}"),
        format!("CPU {ref_label}"),
    );
    let mut previous: Option<(&str, usize)> = None;
    for row in rows {
        if previous.is_some_and(|group| group != (row.workload, row.threads)) {
            out.push('\n');
        }
        previous = Some((row.workload, row.threads));
        let _ = writeln!(
            out,
            "{:<20} {:<8} {:>3} {:>11} {:>12} {:>10} {:>6.2}% {:>14} {:>14}  {}",
            row.engine,
            row.workload,
            row.threads,
            grouped(row.txns),
            grouped(round_to_u64(row.tx_per_s)),
            row.cpu_us_per_txn
                .map_or_else(|| "-".to_owned(), |us| format!("{us:.3}")),
            row.abort_rate() * 100.0,
            row.ratio
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
            row.cpu_ratio
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
            row.note.unwrap_or(""),
        );
    }
    out
}

/// Thread scaling that Khonsu must keep: on these workloads, two threads
/// at least this many times one thread's tx/s (issue 3's target; issue 16
/// found it lost: `w1` fell to 0.32x when pruning moved into the publish
/// window).
pub const SCALING_TARGET: f64 = 1.7;

/// Workloads with a scaling target: a read and a blind write touch no
/// shared key, so nothing but the engine stops them scaling.
pub const SCALING_WORKLOADS: [&str; 2] = ["r1", "w1"];

/// The scaling lines: for each engine and workload that ran at one thread
/// and at more, tx/s at the most threads ÷ at one; for `reference` on the
/// [`SCALING_WORKLOADS`] at two threads, PASS or MISS against
/// [`SCALING_TARGET`], beside `floor`'s scaling in the same run (the raw
/// `SkipMap`: what the host allowed).
#[must_use]
pub fn scaling(rows: &[Row], reference: &str, floor: &str) -> String {
    let rate = |engine: &str, workload: &str, threads: usize| {
        rows.iter()
            .find(|r| r.engine == engine && r.workload == workload && r.threads == threads)
            .map(|r| r.tx_per_s)
            .filter(|rate| *rate > 0.0)
    };
    let mut out = String::new();
    let most = rows.iter().map(|r| r.threads).max().unwrap_or(1);
    if most < 2 {
        return out;
    }
    let _ = writeln!(
        out,
        "scaling (tx/s at {most} threads / at 1 thread, median rounds):"
    );
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for row in rows {
        let pair = (row.engine, row.workload);
        if seen.contains(&pair) {
            continue;
        }
        seen.push(pair);
        if let (Some(one), Some(many)) = (
            rate(row.engine, row.workload, 1),
            rate(row.engine, row.workload, most),
        ) {
            let _ = writeln!(
                out,
                "  {:<20} {:<8} {:.2}x",
                row.engine,
                row.workload,
                many / one
            );
        }
    }
    for workload in SCALING_WORKLOADS {
        let ours = rate(reference, workload, 2).zip(rate(reference, workload, 1));
        let Some((two, one)) = ours else {
            continue;
        };
        let scaled = two / one;
        let host = rate(floor, workload, 2)
            .zip(rate(floor, workload, 1))
            .map_or_else(String::new, |(two, one)| {
                format!(" ({floor} scaled {:.2}x in this run)", two / one)
            });
        let _ = writeln!(
            out,
            "target: {reference} {workload} 2 threads >= {SCALING_TARGET}x 1 thread: {scaled:.2}x \
             {}{host}",
            if scaled >= SCALING_TARGET {
                "PASS"
            } else {
                "MISS"
            },
        );
    }
    out
}

/// The rows as a JSON array of objects with the keys `engine`,
/// `workload`, `threads`, `txns`, `tx_per_s`, `cpu_us_per_txn`, `aborts`
/// (a count), and also `abort_rate`, `ratio`, `cpu_ratio` and `note`
/// (`null` when unknown).
#[must_use]
pub fn json(rows: &[Row]) -> String {
    let mut out = String::from("[\n");
    for (i, row) in rows.iter().enumerate() {
        let _ = write!(
            out,
            "  {{\"engine\": {}, \"workload\": {}, \"threads\": {}, \"txns\": {}, \
             \"tx_per_s\": {}, \"cpu_us_per_txn\": {}, \"aborts\": {}, \
             \"abort_rate\": {}, \"ratio\": {}, \"cpu_ratio\": {}, \"note\": {}}}",
            json_string(row.engine),
            json_string(row.workload),
            row.threads,
            row.txns,
            json_number(Some(row.tx_per_s), 1),
            json_number(row.cpu_us_per_txn, 4),
            row.aborts,
            json_number(Some(row.abort_rate()), 6),
            json_number(row.ratio, 4),
            json_number(row.cpu_ratio, 4),
            row.note.map_or_else(|| "null".to_owned(), json_string),
        );
        out.push_str(if i + 1 == rows.len() { "\n" } else { ",\n" });
    }
    out.push_str("]\n");
    out
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_number(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "null".to_owned(),
    }
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[expect(
    clippy::cast_precision_loss,
    reason = "statistics: counts far below 2^53 convert exactly, larger ones lose nothing that matters"
)]
fn as_f64(n: u64) -> f64 {
    n as f64
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "display only: a non-negative rate rounded to a whole number"
)]
fn round_to_u64(x: f64) -> u64 {
    x.max(0.0).round() as u64
}

/// The machine a run happens on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// Logical CPUs available to the process.
    pub nproc: usize,
    /// The CPU's model name from `/proc/cpuinfo`.
    pub model: String,
    /// The kernel release from `/proc/sys/kernel/osrelease`.
    pub kernel: String,
}

impl Machine {
    /// Reads the machine's description (`"unknown"` for what cannot be
    /// read).
    #[must_use]
    pub fn detect() -> Self {
        let nproc = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned());
        Self {
            nproc,
            model,
            kernel,
        }
    }
}

/// The current time in UTC as `YYYY-MM-DD HH:MM:SS UTC`.
#[must_use]
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_from_unix(secs)
}

/// `secs` since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC` (Howard
/// Hinnant's `civil_from_days`).
fn utc_from_unix(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Row, add_ratios, grouped, json, median, utc_from_unix};
    use crate::runner::Measurement;

    fn row(engine: &'static str, tx_per_s: f64, cpu: f64) -> Row {
        Row {
            engine,
            workload: "r1",
            threads: 1,
            txns: 10,
            aborts: 0,
            tx_per_s,
            cpu_us_per_txn: Some(cpu),
            ratio: None,
            cpu_ratio: None,
            note: None,
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn rows_summarise_rounds() {
        let round = |txns, ms, cpu_ms| Measurement {
            txns,
            aborts: 1,
            wall: Duration::from_millis(ms),
            cpu: Some(Duration::from_millis(cpu_ms)),
            background_cpu: Some(Duration::ZERO),
        };
        let row = Row::from_rounds(
            "e",
            "r1",
            2,
            &[
                round(100, 100, 50),
                round(300, 100, 100),
                round(200, 100, 400),
            ],
        );
        assert_eq!(row.txns, 600);
        assert_eq!(row.aborts, 3);
        assert!((row.tx_per_s - 2_000.0).abs() < 1e-6);
        // per round: 500, 333.3, 2000 µs per transaction
        assert!((row.cpu_us_per_txn.unwrap_or_default() - 500.0).abs() < 1e-6);
        assert!((row.abort_rate() - 3.0 / 603.0).abs() < 1e-12);
    }

    #[test]
    fn ratios_are_against_the_reference() {
        let mut rows = vec![row("a", 200.0, 1.0), row("ref", 100.0, 2.0)];
        add_ratios(&mut rows, "ref");
        assert_eq!(rows.first().and_then(|r| r.ratio), Some(2.0));
        assert_eq!(rows.first().and_then(|r| r.cpu_ratio), Some(0.5));
        assert_eq!(rows.get(1).and_then(|r| r.ratio), Some(1.0));
    }

    #[test]
    fn json_has_the_keys() {
        let text = json(&[row("a\"b", 1.5, 0.25)]);
        for key in [
            "\"engine\": \"a\\\"b\"",
            "\"workload\": \"r1\"",
            "\"threads\": 1",
            "\"txns\": 10",
            "\"tx_per_s\": 1.5",
            "\"cpu_us_per_txn\": 0.25",
            "\"aborts\": 0",
            "\"ratio\": null",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        assert!(text.starts_with('[') && text.trim_end().ends_with(']'));
    }

    #[test]
    fn formatting_helpers() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(utc_from_unix(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_from_unix(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_from_unix(1_735_689_599), "2024-12-31 23:59:59 UTC");
    }
}
