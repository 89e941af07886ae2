//! The result of a run ([`Summary`]), its verdict, and its plain-text rendering.

use std::fmt;
use std::time::Duration;

use crate::args::{Isolation, Resolution};
use crate::bank::BankConfig;
use crate::stats::{AbortCounts, LatencyHistogram};

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
    /// What the run was asked to do (isolation, resolution, threads, accounts, seed, stop).
    pub(crate) config: BankConfig,
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
    /// Audits that saw a different account count or total than the initial state.
    pub(crate) inconsistent_audits: u64,
    /// Read-only audit transactions that failed with a conflict.
    pub(crate) read_only_aborts: u64,
    /// State right after the accounts were created.
    pub(crate) initial: Holdings,
    /// State after every thread stopped.
    pub(crate) final_state: Holdings,
    /// Live keys in the engine's buffer after the run.
    pub(crate) buffer_keys: usize,
    /// Live versions in the engine's buffer after the run.
    pub(crate) buffer_versions: usize,
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
    /// Whether the final state has every account and the initial total.
    pub(crate) fn conserved(&self) -> bool {
        self.final_state == self.initial
    }

    /// At read-committed with a resolution other than `fail`, concurrent
    /// read-modify-writes are resolved instead of aborted, so transfers can lose or
    /// duplicate money by design.
    pub(crate) fn lost_updates_allowed(&self) -> bool {
        self.config.isolation == Isolation::ReadCommitted
            && self.config.resolution != Resolution::Fail
    }

    /// Whether every audit must see the initial total: at repeatable-read and
    /// serializable an audit reads one snapshot, so anything else is a bug.
    pub(crate) fn audits_must_be_consistent(&self) -> bool {
        self.config.isolation != Isolation::ReadCommitted
    }

    /// The violated invariants, empty when the run passed.
    pub(crate) fn violations(&self) -> Vec<String> {
        let mut violations = Vec::new();
        if !self.conserved() {
            violations.push(format!(
                "total not conserved: {} accounts holding {} at the end, {} holding {} at the start",
                self.final_state.accounts,
                self.final_state.total,
                self.initial.accounts,
                self.initial.total
            ));
        }
        if self.audits_must_be_consistent() && self.inconsistent_audits > 0 {
            violations.push(format!(
                "{} of {} audits saw an inconsistent total at {}",
                self.inconsistent_audits, self.audits, self.config.isolation
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
        writeln!(f, "isolation:            {}", self.config.isolation)?;
        writeln!(f, "resolution:           {}", self.config.resolution)?;
        writeln!(f, "transfer threads:     {}", self.config.threads)?;
        writeln!(f, "auditor threads:      {}", self.config.auditors)?;
        writeln!(
            f,
            "accounts:             {} (initial balance {} each)",
            self.config.accounts, self.config.initial_balance
        )?;
        writeln!(f, "seed:                 {}", self.config.seed)?;
        writeln!(f, "stop after:           {}", self.config.stop)?;
        writeln!(
            f,
            "duration:             {:.3} s",
            self.elapsed.as_secs_f64()
        )?;
        writeln!(f, "committed transfers:  {}", self.committed)?;
        writeln!(
            f,
            "aborted (retried):    {} (write-write {}, stale-read {}, phantom {}, busy {}, other {})",
            a.total(),
            a.write_write,
            a.stale_read,
            a.phantom,
            a.busy,
            a.other
        )?;
        writeln!(
            f,
            "abort rate:           {:.2} % of attempts",
            self.abort_rate() * 100.0
        )?;
        writeln!(f, "throughput:           {:.0} tx/s", self.throughput())?;
        writeln!(
            f,
            "commit latency:       {}",
            Percentiles(&self.commit_latency)
        )?;
        writeln!(
            f,
            "transfer latency:     {} (retries included)",
            Percentiles(&self.transfer_latency)
        )?;
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
        writeln!(
            f,
            "initial total:        {} in {} accounts",
            self.initial.total, self.initial.accounts
        )?;
        writeln!(
            f,
            "final total:          {} in {} accounts",
            self.final_state.total, self.final_state.accounts
        )?;
        writeln!(
            f,
            "total conserved: {}",
            if self.conserved() { "yes" } else { "no" }
        )?;
        self.write_notes_and_verdict(f)
    }
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
                self.config.isolation, self.config.resolution
            )?;
        }
        if !self.audits_must_be_consistent() && self.inconsistent_audits > 0 {
            let why = if self.lost_updates_allowed() {
                "audits compare with the initial total, which lost updates change"
            } else {
                "each read sees the latest commit, so a scan may mix states: read skew"
            };
            writeln!(
                f,
                "note: inconsistent audits are allowed at {} ({why})",
                self.config.isolation
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

    fn summary() -> Summary {
        let holdings = Holdings {
            accounts: 10,
            total: 10_000,
        };
        let mut commit_latency = LatencyHistogram::default();
        commit_latency.record(Duration::from_micros(12));
        Summary {
            config: BankConfig {
                isolation: Isolation::Serializable,
                resolution: Resolution::Fail,
                threads: 2,
                auditors: 1,
                accounts: 10,
                initial_balance: 1000,
                max_amount: 100,
                stop: StopAfter::Transfers(300),
                seed: 99,
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
            initial: holdings,
            final_state: holdings,
            buffer_keys: 10,
            buffer_versions: 12,
        }
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
            "committed transfers:  300",
            "write-write 60, stale-read 40",
            "abort rate:           25.00 %",
            "throughput:           150 tx/s",
            "p50 12.0 µs, p99 12.0 µs, max 12.0 µs",
            "audits:               5 (inconsistent: 0)",
            "initial total:        10000",
            "final total:          10000",
            "total conserved: yes",
            "result: ok",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("lost updates"));
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
    }

    #[test]
    fn lost_updates_are_explained_at_read_committed() {
        let mut s = summary();
        s.config.isolation = Isolation::ReadCommitted;
        s.config.resolution = Resolution::Replace;
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
        s.config.isolation = Isolation::RepeatableRead;
        s.inconsistent_audits = 1;
        assert!(!s.passed());
        s.inconsistent_audits = 0;
        s.read_only_aborts = 1;
        assert!(!s.passed());
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
