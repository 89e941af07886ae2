//! [`Metrics`]: what the database has done since it was opened — commits,
//! aborts by kind, `atomically` retries, commit latency.
//!
//! Counters are striped: each thread adds to one of [`STRIPES`] cache-padded
//! sets (picked once per thread), so counting costs a few uncontended
//! relaxed additions per commit, and [`Khonsu::metrics`](crate::Khonsu::metrics)
//! sums the stripes. Totals are exact once no commit runs; while commits
//! run, a sum may miss the ones in progress.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use khonsu_concurrency::ConflictKind;

use crate::Error;

/// Counter stripes (threads share one when there are more).
const STRIPES: usize = 16;

/// Latency buckets: bucket `i` counts commits that took less than `2^i`
/// microseconds (and at least `2^(i-1)`); the last one counts the rest
/// (a minute and more).
pub const LATENCY_BUCKETS: usize = 27;

/// Why a commit did not happen, as [`Metrics::aborts`] counts it.
#[derive(Clone, Copy, Debug)]
enum AbortKind {
    WriteWrite,
    StaleRead,
    Phantom,
    Busy,
    DangerousStructure,
    Append,
    Storage,
    SnapshotTooOld,
    Application,
    Other,
}

const ABORT_KINDS: usize = 10;

impl AbortKind {
    fn of(error: &Error) -> Self {
        if let Some(conflict) = error.conflict() {
            return match conflict.kind {
                ConflictKind::WriteWrite => Self::WriteWrite,
                ConflictKind::StaleRead => Self::StaleRead,
                ConflictKind::Phantom => Self::Phantom,
                ConflictKind::DangerousStructure => Self::DangerousStructure,
                _ => Self::Busy,
            };
        }
        match error {
            Error::Aborted { .. } | Error::Append { .. } => Self::Append,
            Error::Storage { .. }
            | Error::StorageOutcomeUnknown { .. }
            | Error::StorageUnusable { .. }
            | Error::Unstorable { .. } => Self::Storage,
            Error::SnapshotTooOld { .. } => Self::SnapshotTooOld,
            Error::User { .. } | Error::Batch { .. } => Self::Application,
            _ => Self::Other,
        }
    }
}

/// One stripe of counters.
#[derive(Default)]
struct Stripe {
    commits: AtomicU64,
    read_only_commits: AtomicU64,
    aborts: [AtomicU64; ABORT_KINDS],
    retries: AtomicU64,
    exhausted: AtomicU64,
    latency: [AtomicU64; LATENCY_BUCKETS],
    latency_nanos: AtomicU64,
}

/// The database's counters.
pub(crate) struct Counters {
    stripes: [CachePadded<Stripe>; STRIPES],
}

/// Hands each thread its stripe.
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: usize = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn sum(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0, u64::wrapping_add)
}

/// The bucket of a commit that took `nanos`.
fn bucket(nanos: u64) -> usize {
    let micros = nanos / 1_000;
    // `micros < 2^i`: the number of bits of `micros`.
    let bits = (u64::BITS - micros.leading_zeros()) as usize;
    bits.min(LATENCY_BUCKETS - 1)
}

impl Counters {
    pub(crate) fn new() -> Self {
        Self {
            stripes: std::array::from_fn(|_| CachePadded::new(Stripe::default())),
        }
    }

    fn stripe(&self) -> &Stripe {
        let index = STRIPE.try_with(|s| *s).unwrap_or(0);
        let [first, ..] = &self.stripes;
        // `index < STRIPES`: the fallback is never taken.
        self.stripes.get(index).unwrap_or(first)
    }

    /// A commit of a transaction that wrote something, which took `elapsed`.
    pub(crate) fn committed(&self, elapsed: Duration) {
        let stripe = self.stripe();
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        add(&stripe.commits, 1);
        if let Some(b) = stripe.latency.get(bucket(nanos)) {
            add(b, 1);
        }
        add(&stripe.latency_nanos, nanos);
    }

    /// A commit of a transaction that wrote nothing.
    pub(crate) fn committed_read_only(&self) {
        add(&self.stripe().read_only_commits, 1);
    }

    /// A commit, or an `atomically` body, that failed with `error`.
    pub(crate) fn aborted(&self, error: &Error) {
        if let Some(counter) = self.stripe().aborts.get(AbortKind::of(error) as usize) {
            add(counter, 1);
        }
    }

    /// `atomically` retried after a conflict.
    pub(crate) fn retried(&self) {
        add(&self.stripe().retries, 1);
    }

    /// `atomically` gave up: retries or time budget exhausted.
    pub(crate) fn exhausted(&self) {
        add(&self.stripe().exhausted, 1);
    }

    pub(crate) fn snapshot(&self, open_transactions: usize) -> Metrics {
        let stripes = || self.stripes.iter().map(|s| &**s);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let abort =
            |kind: AbortKind| sum(stripes().map(|s| s.aborts.get(kind as usize).map_or(0, load)));
        let mut buckets = [0_u64; LATENCY_BUCKETS];
        for stripe in stripes() {
            for (total, b) in buckets.iter_mut().zip(&stripe.latency) {
                *total = total.wrapping_add(load(b));
            }
        }
        Metrics {
            commits: sum(stripes().map(|s| load(&s.commits))),
            read_only_commits: sum(stripes().map(|s| load(&s.read_only_commits))),
            aborts: Aborts {
                write_write: abort(AbortKind::WriteWrite),
                stale_read: abort(AbortKind::StaleRead),
                phantom: abort(AbortKind::Phantom),
                busy: abort(AbortKind::Busy),
                dangerous_structure: abort(AbortKind::DangerousStructure),
                append: abort(AbortKind::Append),
                storage: abort(AbortKind::Storage),
                snapshot_too_old: abort(AbortKind::SnapshotTooOld),
                application: abort(AbortKind::Application),
                other: abort(AbortKind::Other),
            },
            atomically_retries: sum(stripes().map(|s| load(&s.retries))),
            atomically_exhausted: sum(stripes().map(|s| load(&s.exhausted))),
            commit_latency: LatencyHistogram {
                buckets,
                total_nanos: sum(stripes().map(|s| load(&s.latency_nanos))),
            },
            open_transactions,
        }
    }
}

/// What [`Khonsu::metrics`](crate::Khonsu::metrics) reports: counts since
/// the database was built (not persisted across restarts).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Commits of transactions that wrote something.
    pub commits: u64,
    /// Commits of transactions that wrote nothing.
    pub read_only_commits: u64,
    /// Failed commits (and `atomically` bodies that gave up), by why.
    pub aborts: Aborts,
    /// Times [`Khonsu::atomically`](crate::Khonsu::atomically) ran a body
    /// again after a conflict.
    pub atomically_retries: u64,
    /// Times `atomically` gave up: out of retries or out of its time
    /// budget (the last conflict was returned).
    pub atomically_exhausted: u64,
    /// How long commits of transactions that wrote took, from `commit`
    /// to its return (validation, the storage sync, publication).
    pub commit_latency: LatencyHistogram,
    /// Transactions (and snapshot pins) open now.
    pub open_transactions: usize,
}

/// Failed commits by kind (see [`Metrics::aborts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Aborts {
    /// Write-write conflicts ([`ConflictKind::WriteWrite`]).
    pub write_write: u64,
    /// Stale reads at `Serializable` ([`ConflictKind::StaleRead`]).
    pub stale_read: u64,
    /// Phantoms in scanned ranges ([`ConflictKind::Phantom`]).
    pub phantom: u64,
    /// Write intents held too long by others ([`ConflictKind::Busy`]).
    pub busy: u64,
    /// Dangerous structures at precise `Serializable`
    /// ([`ConflictKind::DangerousStructure`]).
    pub dangerous_structure: u64,
    /// Appended rows that did not fit the key's batch.
    pub append: u64,
    /// Storage failures (and values the storage could not hold).
    pub storage: u64,
    /// Transactions older than the maximum snapshot age.
    pub snapshot_too_old: u64,
    /// `atomically` bodies that gave up ([`Error::abort`], a batch helper's
    /// error).
    pub application: u64,
    /// Anything else (an engine invariant, the clock).
    pub other: u64,
}

impl Aborts {
    /// Every abort that was a retryable conflict.
    #[must_use]
    pub fn conflicts(&self) -> u64 {
        self.write_write + self.stale_read + self.phantom + self.busy + self.dangerous_structure
    }

    /// Every abort.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.conflicts()
            + self.append
            + self.storage
            + self.snapshot_too_old
            + self.application
            + self.other
    }
}

/// Commit latencies in power-of-two buckets of microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// `buckets[i]`: commits that took less than `2^i` µs (and at least
    /// `2^(i-1)` µs); the last bucket also counts everything longer.
    pub buckets: [u64; LATENCY_BUCKETS],
    /// Sum of every commit's latency, in nanoseconds.
    pub total_nanos: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: [0; LATENCY_BUCKETS],
            total_nanos: 0,
        }
    }
}

impl LatencyHistogram {
    /// Commits counted.
    #[must_use]
    pub fn count(&self) -> u64 {
        sum(self.buckets.iter().copied())
    }

    /// The mean latency (zero without commits).
    #[must_use]
    pub fn mean(&self) -> Duration {
        match self.count() {
            0 => Duration::ZERO,
            n => Duration::from_nanos(self.total_nanos / n),
        }
    }

    /// An upper bound of the `q`-quantile (`0.5` the median, `0.99` the
    /// 99th percentile): the top of the bucket it falls in, so at most
    /// twice the true value. Zero without commits.
    #[must_use]
    pub fn quantile(&self, q: f64) -> Duration {
        let count = self.count();
        if count == 0 {
            return Duration::ZERO;
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "a rank among at most u64::MAX commits, clamped"
        )]
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_micros(1_u64 << i);
            }
        }
        Duration::from_micros(1_u64 << (LATENCY_BUCKETS - 1))
    }
}

impl fmt::Display for Metrics {
    /// One line: `commits 10 (read-only 2), aborts 1 (conflicts 1),
    /// retries 1, commit p50 ≤ 8µs p99 ≤ 64µs, open 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "commits {} (read-only {}), aborts {} (conflicts {}), retries {}, commit p50 <= {:?} p99 <= {:?}, open {}",
            self.commits,
            self.read_only_commits,
            self.aborts.total(),
            self.aborts.conflicts(),
            self.atomically_retries,
            self.commit_latency.quantile(0.5),
            self.commit_latency.quantile(0.99),
            self.open_transactions,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two_microseconds() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(999), 0);
        assert_eq!(bucket(1_000), 1);
        assert_eq!(bucket(1_999), 1);
        assert_eq!(bucket(2_000), 2);
        assert_eq!(bucket(3_999), 2);
        assert_eq!(bucket(u64::MAX), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn quantiles_come_from_the_buckets() {
        let counters = Counters::new();
        for micros in [1_u64, 1, 1, 100] {
            counters.committed(Duration::from_micros(micros));
        }
        let m = counters.snapshot(0);
        assert_eq!(m.commits, 4);
        assert_eq!(m.commit_latency.count(), 4);
        assert_eq!(m.commit_latency.quantile(0.5), Duration::from_micros(2));
        assert_eq!(m.commit_latency.quantile(1.0), Duration::from_micros(128));
        assert_eq!(m.commit_latency.mean(), Duration::from_nanos(103_000 / 4));
        assert_eq!(LatencyHistogram::default().quantile(0.5), Duration::ZERO);
    }
}
