//! What `khonsu demo` prints: the header line before a run, the bank line once
//! the bank is open (with a note when flags were ignored), and the result of the
//! run ([`Summary`]), its verdict and its plain-text rendering.

use std::fmt;
use std::time::Duration;

use crate::args::{Isolation, Resolution};
use crate::bank::BankState;
use crate::config::{DemoConfig, NewBank, StorageChoice, Workload};
use crate::stats::{AbortCounts, DurableCounters, LatencyHistogram};

/// What an audit saw: how many accounts and their total balance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Holdings {
    /// Number of accounts visible.
    pub(crate) accounts: u64,
    /// Sum of their balances (`i128`, so no sum of `i64` balances can overflow).
    pub(crate) total: i128,
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    /// What the threads were asked to do (isolation, resolution, threads, seed, stop).
    pub(crate) workload: Workload,
    /// Where the bank lives.
    pub(crate) storage: StorageChoice,
    /// The bank's record and the state this run started from.
    pub(crate) bank: BankState,
    /// Wall-clock time from starting the threads to the last transfer.
    pub(crate) elapsed: Duration,
    /// Committed transfers.
    pub(crate) committed: u64,
    /// Aborted (and retried) transfer attempts, by conflict kind.
    pub(crate) aborts: AbortCounts,
    /// Latency of each successful `commit` call.
    pub(crate) commit_latency: LatencyHistogram,
    /// Latency of each committed transfer from its first attempt (retries included).
    pub(crate) transfer_latency: LatencyHistogram,
    /// Audits completed by the auditor threads.
    pub(crate) audits: u64,
    /// Audits that saw a different account count or total than this run's start.
    pub(crate) inconsistent_audits: u64,
    /// Read-only audit transactions that failed with a conflict.
    pub(crate) read_only_aborts: u64,
    /// State after every thread stopped.
    pub(crate) final_state: Holdings,
    /// Live keys in the engine's buffer after the run (the bank's record included).
    pub(crate) buffer_keys: usize,
    /// Live versions in the engine's buffer after the run.
    pub(crate) buffer_versions: usize,
    /// What the storage did during the transfers; `None` in memory.
    pub(crate) durable: Option<DurableCounters>,
}

/// The line printed before the bank is opened.
pub(crate) fn header(config: &DemoConfig) -> String {
    let w = &config.workload;
    format!(
        "khonsu demo: isolation {}, resolution {}, transfer threads {}, auditor threads {}, \
         stop after {}, seed {}, storage {}",
        w.isolation, w.resolution, w.threads, w.auditors, w.stop, w.seed, config.storage
    )
}

/// The line printed once the bank is open: created or resumed, and its shape.
pub(crate) fn bank_line(state: &BankState) -> String {
    let meta = &state.meta;
    let shape = format!(
        "{} accounts created with {} each (total {})",
        meta.accounts, meta.initial_balance, meta.initial_total
    );
    if state.resumed() {
        format!(
            "bank: resumed after {} earlier {} (this is run {}): {shape}, holding {} in {} \
             accounts now",
            state.runs_before,
            plural(state.runs_before, "run", "runs"),
            meta.runs,
            state.start.total,
            state.start.accounts
        )
    } else {
        format!("bank: new, {shape}")
    }
}

/// The one-line note when a resumed bank's shape differs from the flags given
/// for it (`None` when nothing was ignored).
pub(crate) fn ignored_flags_note(state: &BankState, asked: NewBank) -> Option<String> {
    if !state.resumed() {
        return None;
    }
    let meta = &state.meta;
    let mut ignored = Vec::new();
    if let Some(accounts) = asked.asked_accounts.filter(|a| *a != meta.accounts) {
        ignored.push(format!("--accounts {accounts}"));
    }
    if let Some(balance) = asked.asked_balance.filter(|b| *b != meta.initial_balance) {
        ignored.push(format!("--initial-balance {balance}"));
    }
    (!ignored.is_empty()).then(|| {
        format!(
            "note: resuming the stored bank of {} accounts with initial balance {}; {} only \
             {} a new bank and {} ignored (give another --data-dir for a new bank)",
            meta.accounts,
            meta.initial_balance,
            ignored.join(" and "),
            plural(ignored.len() as u64, "shapes", "shape"),
            plural(ignored.len() as u64, "is", "are"),
        )
    })
}

/// `one` when `n` is 1, else `many`.
fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// A byte count with a binary unit, 3 significant digits (`812 B`, `1.23 MiB`).
pub(crate) fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = as_f64(bytes) / 1024.0;
    let mut unit = "KiB";
    for next in UNITS.iter().skip(1) {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    if value < 10.0 {
        format!("{value:.2} {unit}")
    } else if value < 100.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

/// `count` per second over `elapsed` (0 for an empty interval).
pub(crate) fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        as_f64(count) / secs
    } else {
        0.0
    }
}

/// A counter as a float, for rates.
fn as_f64(count: u64) -> f64 {
    #[expect(
        clippy::cast_precision_loss,
        reason = "counters beyond 2^53 only lose digits nobody reads in a rate"
    )]
    let value = count as f64;
    value
}

/// A latency with a unit that keeps 3 significant digits (`-` when absent).
pub(crate) fn format_latency(latency: Option<Duration>) -> String {
    let Some(latency) = latency else {
        return "-".to_owned();
    };
    let nanos = latency.as_secs_f64() * 1e9;
    if nanos < 1e3 {
        format!("{nanos:.0} ns")
    } else if nanos < 1e6 {
        format!("{:.1} µs", nanos / 1e3)
    } else if nanos < 1e9 {
        format!("{:.2} ms", nanos / 1e6)
    } else {
        format!("{:.3} s", nanos / 1e9)
    }
}

impl Summary {
    /// Whether the final state has every account and the total the bank was
    /// created with (by this run or the first one on its data directory).
    pub(crate) fn conserved(&self) -> bool {
        self.final_state == self.bank.meta.initial()
    }

    /// Whether this run started from another total than the bank was created
    /// with (an earlier run lost or made money).
    fn started_drifted(&self) -> bool {
        self.bank.start != self.bank.meta.initial()
    }

    /// At read-committed with a resolution other than `fail`, concurrent
    /// read-modify-writes are resolved instead of aborted, so transfers can lose or
    /// duplicate money by design.
    pub(crate) fn lost_updates_allowed(&self) -> bool {
        self.workload.isolation == Isolation::ReadCommitted
            && self.workload.resolution != Resolution::Fail
    }

    /// Whether every audit must see the initial total: at repeatable-read and
    /// serializable an audit reads one snapshot, so anything else is a bug.
    pub(crate) fn audits_must_be_consistent(&self) -> bool {
        self.workload.isolation != Isolation::ReadCommitted
    }

    /// The violated invariants, empty when the run passed.
    pub(crate) fn violations(&self) -> Vec<String> {
        let mut violations = Vec::new();
        if !self.conserved() {
            let initial = self.bank.meta.initial();
            let drifted = if self.started_drifted() {
                format!(
                    " (this run started from {} in {} accounts: an earlier run had already \
                     changed it)",
                    self.bank.start.total, self.bank.start.accounts
                )
            } else {
                String::new()
            };
            violations.push(format!(
                "total not conserved: {} accounts holding {} at the end, {} holding {} when \
                 the bank was created{drifted}",
                self.final_state.accounts, self.final_state.total, initial.accounts, initial.total
            ));
        }
        if self.audits_must_be_consistent() && self.inconsistent_audits > 0 {
            violations.push(format!(
                "{} of {} audits saw an inconsistent total at {}",
                self.inconsistent_audits, self.audits, self.workload.isolation
            ));
        }
        if self.read_only_aborts > 0 {
            violations.push(format!(
                "{} read-only audit transactions aborted (the engine promises none)",
                self.read_only_aborts
            ));
        }
        violations
    }

    /// Whether every invariant held.
    pub(crate) fn passed(&self) -> bool {
        self.violations().is_empty()
    }

    /// Aborted attempts as a fraction of all attempts (0 when there were none).
    pub(crate) fn abort_rate(&self) -> f64 {
        let aborted = self.aborts.total();
        let attempts = aborted.saturating_add(self.committed);
        if attempts == 0 {
            0.0
        } else {
            as_f64(aborted) / as_f64(attempts)
        }
    }

    /// Committed transfers per second.
    pub(crate) fn throughput(&self) -> f64 {
        per_second(self.committed, self.elapsed)
    }
}

/// Percentiles of a latency histogram on one line.
struct Percentiles<'a>(&'a LatencyHistogram);

impl fmt::Display for Percentiles<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {}, p99 {}, max {}",
            format_latency(self.0.quantile(0.50)),
            format_latency(self.0.quantile(0.99)),
            format_latency(self.0.max()),
        )
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.aborts;
        let w = &self.workload;
        let meta = &self.bank.meta;
        writeln!(f, "isolation:            {}", w.isolation)?;
        writeln!(f, "resolution:           {}", w.resolution)?;
        writeln!(f, "transfer threads:     {}", w.threads)?;
        writeln!(f, "auditor threads:      {}", w.auditors)?;
        writeln!(f, "storage:              {}", self.storage)?;
        if self.bank.resumed() {
            writeln!(
                f,
                "bank:                 resumed after {} earlier {} (this is run {})",
                self.bank.runs_before,
                plural(self.bank.runs_before, "run", "runs"),
                meta.runs
            )?;
        } else {
            writeln!(f, "bank:                 new, created by this run")?;
        }
        writeln!(
            f,
            "accounts:             {} (initial balance {} each)",
            meta.accounts, meta.initial_balance
        )?;
        writeln!(f, "seed:                 {}", w.seed)?;
        writeln!(f, "stop after:           {}", w.stop)?;
        writeln!(
            f,
            "duration:             {:.3} s",
            self.elapsed.as_secs_f64()
        )?;
        writeln!(f, "committed transfers:  {}", self.committed)?;
        writeln!(
            f,
            "aborted (retried):    {} (write-write {}, stale-read {}, phantom {}, busy {}, dangerous structure {}, other {})",
            a.total(),
            a.write_write,
            a.stale_read,
            a.phantom,
            a.busy,
            a.dangerous,
            a.other
        )?;
        writeln!(
            f,
            "abort rate:           {:.2} % of attempts",
            self.abort_rate() * 100.0
        )?;
        writeln!(f, "throughput:           {:.0} tx/s", self.throughput())?;
        let what_commit_measures = if self.durable.is_some() {
            " (the commit call, which includes the durable write and its sync)"
        } else {
            ""
        };
        writeln!(
            f,
            "commit latency:       {}{what_commit_measures}",
            Percentiles(&self.commit_latency)
        )?;
        writeln!(
            f,
            "transfer latency:     {} (retries included)",
            Percentiles(&self.transfer_latency)
        )?;
        if let Some(d) = &self.durable {
            write_durable(f, d)?;
        }
        writeln!(
            f,
            "audits:               {} (inconsistent: {})",
            self.audits, self.inconsistent_audits
        )?;
        writeln!(f, "read-only aborts:     {}", self.read_only_aborts)?;
        writeln!(
            f,
            "engine buffer:        {} keys, {} live versions",
            self.buffer_keys, self.buffer_versions
        )?;
        self.write_totals(f)?;
        self.write_notes_and_verdict(f)
    }
}

impl Summary {
    /// Writes the bank's totals: as created, at this run's start (when resumed),
    /// at the end, and whether the total was conserved.
    fn write_totals(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let initial = self.bank.meta.initial();
        writeln!(
            f,
            "initial total:        {} in {} accounts (when the bank was created)",
            initial.total, initial.accounts
        )?;
        if self.bank.resumed() {
            writeln!(
                f,
                "start total:          {} in {} accounts (as the last run left it)",
                self.bank.start.total, self.bank.start.accounts
            )?;
        }
        writeln!(
            f,
            "final total:          {} in {} accounts",
            self.final_state.total, self.final_state.accounts
        )?;
        writeln!(
            f,
            "total conserved: {}",
            if self.conserved() { "yes" } else { "no" }
        )
    }
}

/// A ratio with two decimals, `-` when absent.
fn format_ratio(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"))
}

/// The storage lines of a durable run.
fn write_durable(f: &mut fmt::Formatter<'_>, d: &DurableCounters) -> fmt::Result {
    writeln!(
        f,
        "storage writes:       {} for {} commits, {} syncs, {} written ({} adapter, this run)",
        d.writes,
        d.commits,
        d.syncs,
        format_bytes(d.bytes),
        d.adapter
    )?;
    let grouping = if d.group_commit {
        format!("group commit on, largest group {}", d.largest_group)
    } else {
        "group commit off".to_owned()
    };
    writeln!(
        f,
        "commits per write:    {} ({grouping})",
        format_ratio(d.commits_per_write())
    )?;
    writeln!(
        f,
        "commits per sync:     {}",
        format_ratio(d.commits_per_sync())
    )
}

impl Summary {
    /// Writes the notes explaining allowed anomalies, then the verdict.
    fn write_notes_and_verdict(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lost_updates_allowed() {
            writeln!(
                f,
                "note: at {} with --resolution {}, a transfer that races a concurrent commit \
                 is resolved instead of aborted: lost updates are allowed at this \
                 level/resolution, so the total need not be conserved",
                self.workload.isolation, self.workload.resolution
            )?;
        }
        if !self.audits_must_be_consistent() && self.inconsistent_audits > 0 {
            let why = if self.lost_updates_allowed() {
                "audits compare with the total at the start of the run, which lost updates change"
            } else {
                "each read sees the latest commit, so a scan may mix states: read skew"
            };
            writeln!(
                f,
                "note: inconsistent audits are allowed at {} ({why})",
                self.workload.isolation
            )?;
        }
        if self.started_drifted() && self.lost_updates_allowed() {
            writeln!(
                f,
                "note: this run started from a total an earlier run had already changed"
            )?;
        }
        let violations = self.violations();
        if violations.is_empty() {
            writeln!(f, "result: ok")
        } else {
            writeln!(f, "result: FAILED")?;
            for violation in violations {
                writeln!(f, "  - {violation}")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::StopAfter;
    use crate::bank::BankMeta;
    use crate::config::Adapter;

    fn summary() -> Summary {
        let holdings = Holdings {
            accounts: 10,
            total: 10_000,
        };
        let mut commit_latency = LatencyHistogram::default();
        commit_latency.record(Duration::from_micros(12));
        Summary {
            workload: Workload {
                isolation: Isolation::Serializable,
                resolution: Resolution::Fail,
                threads: 2,
                auditors: 1,
                max_amount: 100,
                stop: StopAfter::Transfers(300),
                seed: 99,
            },
            storage: StorageChoice::Memory,
            bank: BankState {
                meta: BankMeta {
                    accounts: 10,
                    initial_balance: 1000,
                    initial_total: 10_000,
                    runs: 1,
                },
                runs_before: 0,
                start: holdings,
            },
            elapsed: Duration::from_secs(2),
            committed: 300,
            aborts: AbortCounts {
                write_write: 60,
                stale_read: 40,
                ..AbortCounts::default()
            },
            transfer_latency: commit_latency.clone(),
            commit_latency,
            audits: 5,
            inconsistent_audits: 0,
            read_only_aborts: 0,
            final_state: holdings,
            buffer_keys: 10,
            buffer_versions: 12,
            durable: None,
        }
    }

    /// `summary()` as the third run on a redb data directory.
    fn durable_summary() -> Summary {
        let mut s = summary();
        s.storage = StorageChoice::Durable {
            adapter: Adapter::Redb,
            dir: "bank-dir".into(),
        };
        s.bank.runs_before = 2;
        s.bank.meta.runs = 3;
        s.durable = Some(DurableCounters {
            adapter: "redb",
            group_commit: true,
            writes: 120,
            commits: 300,
            syncs: 240,
            bytes: 3 << 20,
            largest_group: 7,
        });
        s
    }

    #[test]
    fn rates() {
        let s = summary();
        assert!((s.abort_rate() - 0.25).abs() < 1e-9);
        assert!((s.throughput() - 150.0).abs() < 1e-9);
        assert!((per_second(5, Duration::ZERO)).abs() < f64::EPSILON);
    }

    #[test]
    fn passing_summary_renders_every_field() {
        let text = summary().to_string();
        for needle in [
            "isolation:            serializable",
            "resolution:           fail",
            "storage:              memory (nothing persists)",
            "bank:                 new, created by this run",
            "committed transfers:  300",
            "write-write 60, stale-read 40",
            "abort rate:           25.00 %",
            "throughput:           150 tx/s",
            "p50 12.0 µs, p99 12.0 µs, max 12.0 µs\n",
            "audits:               5 (inconsistent: 0)",
            "initial total:        10000 in 10 accounts (when the bank was created)",
            "final total:          10000",
            "total conserved: yes",
            "result: ok",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        for absent in ["lost updates", "storage writes", "start total", "sync"] {
            assert!(!text.contains(absent), "{absent:?} in\n{text}");
        }
    }

    #[test]
    fn durable_summary_renders_storage_figures() {
        let text = durable_summary().to_string();
        for needle in [
            "storage:              redb in bank-dir",
            "bank:                 resumed after 2 earlier runs (this is run 3)",
            "(the commit call, which includes the durable write and its sync)",
            "storage writes:       120 for 300 commits, 240 syncs, 3.00 MiB written (redb adapter, this run)",
            "commits per write:    2.50 (group commit on, largest group 7)",
            "commits per sync:     1.25",
            "start total:          10000 in 10 accounts (as the last run left it)",
            "result: ok",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn conservation_is_checked_against_the_bank_as_created() {
        // An earlier run (at read-committed with a lossy resolution) lost 50; this
        // run conserved what it started from, but the bank did not.
        let mut s = durable_summary();
        s.bank.start.total -= 50;
        s.final_state.total -= 50;
        assert!(!s.conserved());
        let violations = s.violations();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].contains("an earlier run had already changed it"),
            "{violations:?}"
        );
        assert!(s.to_string().contains("result: FAILED"));
    }

    #[test]
    fn lost_money_fails() {
        let mut s = summary();
        s.final_state.total -= 1;
        assert!(!s.conserved());
        assert!(!s.passed());
        let text = s.to_string();
        assert!(text.contains("total conserved: no"), "{text}");
        assert!(text.contains("result: FAILED"), "{text}");
        assert!(text.contains("when the bank was created"), "{text}");
    }

    #[test]
    fn lost_updates_are_explained_at_read_committed() {
        let mut s = summary();
        s.workload.isolation = Isolation::ReadCommitted;
        s.workload.resolution = Resolution::Replace;
        s.final_state.total += 50;
        s.inconsistent_audits = 2;
        let text = s.to_string();
        assert!(
            text.contains("lost updates are allowed at this level/resolution"),
            "{text}"
        );
        assert!(text.contains("inconsistent audits are allowed"), "{text}");
        // Not conserved is still a failure (exit code 3), inconsistent audits are not.
        assert_eq!(s.violations().len(), 1);
    }

    #[test]
    fn inconsistent_audits_fail_above_read_committed() {
        let mut s = summary();
        s.workload.isolation = Isolation::RepeatableRead;
        s.inconsistent_audits = 1;
        assert!(!s.passed());
        s.inconsistent_audits = 0;
        s.read_only_aborts = 1;
        assert!(!s.passed());
    }

    #[test]
    fn bank_lines() {
        let new = summary().bank;
        assert_eq!(
            bank_line(&new),
            "bank: new, 10 accounts created with 1000 each (total 10000)"
        );
        let resumed = durable_summary().bank;
        assert_eq!(
            bank_line(&resumed),
            "bank: resumed after 2 earlier runs (this is run 3): 10 accounts created with \
             1000 each (total 10000), holding 10000 in 10 accounts now"
        );
    }

    #[test]
    fn flags_that_differ_from_a_resumed_bank_get_one_note() {
        let resumed = durable_summary().bank;
        let asked = |accounts, balance| NewBank {
            asked_accounts: accounts,
            asked_balance: balance,
        };
        assert_eq!(ignored_flags_note(&resumed, asked(None, None)), None);
        assert_eq!(
            ignored_flags_note(&resumed, asked(Some(10), Some(1000))),
            None
        );
        let note = ignored_flags_note(&resumed, asked(Some(30), None)).unwrap();
        assert!(
            note.starts_with("note: resuming the stored bank of 10 accounts"),
            "{note}"
        );
        assert!(
            note.contains("--accounts 30 only shapes a new bank and is ignored"),
            "{note}"
        );
        let note = ignored_flags_note(&resumed, asked(Some(30), Some(5))).unwrap();
        assert!(
            note.contains(
                "--accounts 30 and --initial-balance 5 only shape a new bank and are ignored"
            ),
            "{note}"
        );
        // A new bank is made from the flags: nothing to note.
        let new = summary().bank;
        assert_eq!(ignored_flags_note(&new, asked(Some(30), Some(5))), None);
    }

    #[test]
    fn byte_units() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1024), "1.00 KiB");
        assert_eq!(format_bytes(1536 * 1024), "1.50 MiB");
        assert_eq!(format_bytes(50 << 30), "50.0 GiB");
        assert_eq!(format_bytes(300 << 40), "300 TiB");
        assert_eq!(format_bytes(u64::MAX), "16384 PiB");
    }

    #[test]
    fn latency_units() {
        assert_eq!(format_latency(None), "-");
        assert_eq!(format_latency(Some(Duration::from_nanos(850))), "850 ns");
        assert_eq!(
            format_latency(Some(Duration::from_nanos(12_345))),
            "12.3 µs"
        );
        assert_eq!(
            format_latency(Some(Duration::from_micros(4_560))),
            "4.56 ms"
        );
        assert_eq!(
            format_latency(Some(Duration::from_millis(1_234))),
            "1.234 s"
        );
    }
}
