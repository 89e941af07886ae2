//! Counters and a latency histogram collected by the workload threads, and the
//! storage's counters over a run.
//!
//! Each thread keeps its own [`AbortCounts`] and [`LatencyHistogram`] and the
//! coordinator merges them after the join, so the hot path touches no shared
//! memory beyond two relaxed progress counters. [`DurableCounters`] is the
//! difference of the engine's [`DurabilityStats`] before and after the threads
//! ran, so the bank's setup commit is not counted.

use std::time::Duration;

use khonsu::{ConflictKind, DurabilityStats};

/// Sub-buckets per power of two: 16, so a bucket's width is at most 1/16 of its
/// lower bound and a reported percentile is within 6.25 % above the true sample.
const SUBS: u64 = 16;
/// `log2(SUBS)`.
const SUB_BITS: u32 = SUBS.ilog2();
/// Bucket count covering every `u64`: one exact bucket for each value below
/// [`SUBS`], then [`SUBS`] buckets for each power of two from `2^SUB_BITS` to `2^63`:
/// `16 + 60 * 16`.
const BUCKETS: usize = 976;

/// A log-linear histogram of durations in nanoseconds (the HDR-histogram idea in
/// fifty lines): constant memory however long the run, bounded relative error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LatencyHistogram {
    /// Sample count per bucket.
    counts: Vec<u64>,
    /// Number of samples.
    total: u64,
    /// Largest sample, exact.
    max: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

impl LatencyHistogram {
    /// The bucket holding `nanos`.
    fn bucket_of(nanos: u64) -> usize {
        if nanos < SUBS {
            // Exact buckets for tiny values; `nanos < 16` always fits.
            return usize::try_from(nanos).unwrap_or(0);
        }
        let shift = u64::from(nanos.ilog2() - SUB_BITS); // ilog2 >= SUB_BITS here
        let mantissa = (nanos >> shift) - SUBS; // 0..SUBS
        usize::try_from(SUBS + shift * SUBS + mantissa).unwrap_or(BUCKETS - 1)
    }

    /// The largest value that falls in `bucket` (inclusive upper bound).
    fn upper_bound(bucket: usize) -> u64 {
        let bucket = bucket as u64;
        if bucket < SUBS {
            return bucket;
        }
        let shift = (bucket - SUBS) / SUBS;
        let mantissa = (bucket - SUBS) % SUBS;
        // (SUBS + mantissa + 1) << shift reaches 2^64 for the last bucket: widen.
        let end = u128::from(SUBS + mantissa + 1) << shift;
        u64::try_from(end - 1).unwrap_or(u64::MAX)
    }

    /// Records one sample.
    pub(crate) fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        if let Some(count) = self.counts.get_mut(Self::bucket_of(nanos)) {
            *count += 1;
        }
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    /// Adds every sample of `other`.
    pub(crate) fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Number of samples.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.total
    }

    /// The largest sample, exact; `None` when empty.
    pub(crate) fn max(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_nanos(self.max))
    }

    /// The `q`-quantile (`0.0..=1.0`, e.g. `0.99`): the smallest bucket bound that at
    /// least `ceil(q * len)` samples do not exceed, capped at the exact maximum.
    /// `None` when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = rank_for(q, self.total);
        let mut seen = 0_u64;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_nanos(
                    Self::upper_bound(bucket).min(self.max),
                ));
            }
        }
        Some(Duration::from_nanos(self.max))
    }
}

/// The 1-based rank of the `q`-quantile among `total` samples: `ceil(q * total)`
/// clamped to `1..=total` (nearest-rank method).
fn rank_for(q: f64, total: u64) -> u64 {
    let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
    #[expect(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a rank only needs to be approximately right for totals above 2^53; the product is in 0..=total"
    )]
    let rank = (q * total as f64).ceil() as u64;
    rank.clamp(1, total)
}

/// Why transactions were aborted (and retried), by the engine's conflict kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AbortCounts {
    /// A key this transaction wrote was committed by another transaction after its
    /// snapshot (or after the version it read).
    pub(crate) write_write: u64,
    /// A key this transaction read was overwritten by a later commit (serializable).
    pub(crate) stale_read: u64,
    /// A range this transaction scanned changed (serializable).
    pub(crate) phantom: u64,
    /// A key was being committed by another transaction at that instant.
    pub(crate) busy: u64,
    /// Committing would have closed a dangerous structure (serializable).
    pub(crate) dangerous: u64,
    /// A conflict of a kind this binary does not know (the engine's enum is
    /// non-exhaustive) or without details.
    pub(crate) other: u64,
}

/// The kind of a retryable abort, as counted by [`AbortCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AbortKind {
    /// [`ConflictKind::WriteWrite`].
    WriteWrite,
    /// [`ConflictKind::StaleRead`].
    StaleRead,
    /// [`ConflictKind::Phantom`].
    Phantom,
    /// [`ConflictKind::Busy`].
    Busy,
    /// [`ConflictKind::DangerousStructure`].
    Dangerous,
    /// A kind this binary does not know, or a conflict without details.
    Other,
}

impl AbortKind {
    /// Classifies an engine conflict (`None`: the engine gave no details).
    pub(crate) fn of(kind: Option<&ConflictKind>) -> Self {
        match kind {
            Some(ConflictKind::WriteWrite) => Self::WriteWrite,
            Some(ConflictKind::StaleRead) => Self::StaleRead,
            Some(ConflictKind::Phantom) => Self::Phantom,
            Some(ConflictKind::Busy) => Self::Busy,
            Some(ConflictKind::DangerousStructure) => Self::Dangerous,
            _ => Self::Other,
        }
    }
}

impl AbortCounts {
    /// Counts one abort of `kind`.
    pub(crate) fn count(&mut self, kind: AbortKind) {
        let slot = match kind {
            AbortKind::WriteWrite => &mut self.write_write,
            AbortKind::StaleRead => &mut self.stale_read,
            AbortKind::Phantom => &mut self.phantom,
            AbortKind::Busy => &mut self.busy,
            AbortKind::Dangerous => &mut self.dangerous,
            AbortKind::Other => &mut self.other,
        };
        *slot += 1;
    }

    /// Sum over all kinds.
    pub(crate) fn total(&self) -> u64 {
        self.write_write + self.stale_read + self.phantom + self.busy + self.dangerous + self.other
    }

    /// Adds `other`'s counts.
    pub(crate) fn merge(&mut self, other: &Self) {
        self.write_write += other.write_write;
        self.stale_read += other.stale_read;
        self.phantom += other.phantom;
        self.busy += other.busy;
        self.dangerous += other.dangerous;
        self.other += other.other;
    }
}

/// What the storage did during a run's transfers (from
/// [`khonsu::Khonsu::durability_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DurableCounters {
    /// The adapter, e.g. `redb`.
    pub(crate) adapter: &'static str,
    /// Whether concurrent commits shared storage writes.
    pub(crate) group_commit: bool,
    /// Successful storage writes.
    pub(crate) writes: u64,
    /// Commits those writes carried.
    pub(crate) commits: u64,
    /// Syncs to stable storage those writes issued.
    pub(crate) syncs: u64,
    /// Bytes of keys and encoded values written.
    pub(crate) bytes: u64,
    /// The most commits one write carried since the database was opened.
    pub(crate) largest_group: u64,
}

impl DurableCounters {
    /// The counters between the snapshots `before` and `after` (the largest
    /// group is `after`'s: a maximum cannot be subtracted, and the setup commits
    /// before the run are groups of one).
    pub(crate) fn between(before: &DurabilityStats, after: &DurabilityStats) -> Self {
        let (b, a) = (&before.storage, &after.storage);
        Self {
            adapter: after.adapter,
            group_commit: after.group_commit,
            writes: a.writes.saturating_sub(b.writes),
            commits: a.commits.saturating_sub(b.commits),
            syncs: a.syncs.saturating_sub(b.syncs),
            bytes: a.bytes.saturating_sub(b.bytes),
            largest_group: after.group.largest_group,
        }
    }

    /// Commits per storage write (`None` without writes).
    pub(crate) fn commits_per_write(&self) -> Option<f64> {
        ratio(self.commits, self.writes)
    }

    /// Commits per sync (`None` without syncs).
    pub(crate) fn commits_per_sync(&self) -> Option<f64> {
        ratio(self.commits, self.syncs)
    }
}

/// `numerator / denominator` as a float, `None` for a zero denominator.
fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    #[expect(
        clippy::cast_precision_loss,
        reason = "counters beyond 2^53 only lose digits nobody reads in a ratio"
    )]
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram_of(nanos: impl IntoIterator<Item = u64>) -> LatencyHistogram {
        let mut h = LatencyHistogram::default();
        for n in nanos {
            h.record(Duration::from_nanos(n));
        }
        h
    }

    fn nanos(d: Option<Duration>) -> u64 {
        u64::try_from(d.unwrap().as_nanos()).unwrap()
    }

    #[test]
    fn empty_histogram_has_no_percentiles() {
        let h = LatencyHistogram::default();
        assert_eq!(h.len(), 0);
        assert_eq!(h.quantile(0.5), None);
        assert_eq!(h.max(), None);
    }

    #[test]
    fn small_values_are_exact() {
        let h = histogram_of(1..=10);
        assert_eq!(nanos(h.quantile(0.5)), 5);
        assert_eq!(nanos(h.quantile(0.9)), 9);
        assert_eq!(nanos(h.quantile(1.0)), 10);
        assert_eq!(nanos(h.quantile(0.0)), 1);
        assert_eq!(nanos(h.max()), 10);
    }

    #[test]
    fn nearest_rank_percentiles_within_relative_error() {
        // 1..=100_000 ns: true p50 = 50_000, p99 = 99_000.
        let h = histogram_of(1..=100_000);
        assert_eq!(h.len(), 100_000);
        for (q, exact) in [(0.5, 50_000_u64), (0.99, 99_000), (0.999, 99_900)] {
            let got = nanos(h.quantile(q));
            assert!(got >= exact, "q={q}: {got} < {exact}");
            assert!(
                got <= exact + exact / 16,
                "q={q}: {got} too far above {exact}"
            );
        }
        assert_eq!(nanos(h.quantile(1.0)), 100_000);
        assert_eq!(nanos(h.max()), 100_000);
    }

    #[test]
    fn skewed_distribution() {
        // 98 fast samples, 2 slow: p50 fast, p99 slow, max exact.
        let h = histogram_of((0..98).map(|_| 1_000).chain([5_000_000, 7_000_123]));
        assert!((1_000..=1_063).contains(&nanos(h.quantile(0.5))));
        assert!((5_000_000..=5_312_500).contains(&nanos(h.quantile(0.99))));
        assert_eq!(nanos(h.max()), 7_000_123);
    }

    #[test]
    fn extreme_values_do_not_panic() {
        let mut h = histogram_of([0, u64::MAX, u64::MAX - 1]);
        h.record(Duration::MAX);
        assert_eq!(h.len(), 4);
        assert_eq!(nanos(h.quantile(0.01)), 0);
        assert_eq!(nanos(h.quantile(1.0)), u64::MAX);
        assert_eq!(nanos(h.quantile(f64::NAN)), u64::MAX);
        assert_eq!(nanos(h.quantile(-1.0)), 0);
    }

    #[test]
    fn bucket_count_matches_the_layout() {
        assert_eq!(BUCKETS as u64, SUBS + (64 - u64::from(SUB_BITS)) * SUBS);
        assert_eq!(LatencyHistogram::bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn buckets_are_monotonic_and_cover_their_values() {
        let mut previous = 0;
        for bucket in 0..BUCKETS {
            let upper = LatencyHistogram::upper_bound(bucket);
            assert!(bucket == 0 || upper > previous, "bucket {bucket}");
            assert_eq!(LatencyHistogram::bucket_of(upper), bucket);
            if bucket > 0 {
                assert_eq!(LatencyHistogram::bucket_of(previous + 1), bucket);
            }
            previous = upper;
        }
        assert_eq!(previous, u64::MAX);
    }

    #[test]
    fn merge_adds_samples() {
        let mut a = histogram_of(1..=50);
        let b = histogram_of(51..=100);
        a.merge(&b);
        assert_eq!(a, histogram_of(1..=100));
    }

    #[test]
    fn durable_counters_are_the_difference_of_two_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let db = khonsu::Khonsu::open(dir.path()).unwrap();
        let batch = arrow_array::RecordBatch::try_from_iter([(
            "v",
            std::sync::Arc::new(arrow_array::Int64Array::from(vec![1])) as _,
        )])
        .unwrap();
        let commit = |key: &str| {
            let mut t = db.start_transaction();
            t.write(key, batch.clone()).unwrap();
            t.commit().unwrap();
        };
        commit("setup");
        let before = db.durability_stats().unwrap();
        commit("a");
        commit("b");
        let after = db.durability_stats().unwrap();
        let counters = DurableCounters::between(&before, &after);
        assert_eq!(counters.adapter, "redb");
        assert!(counters.group_commit);
        assert_eq!((counters.writes, counters.commits), (2, 2));
        assert!(counters.syncs >= 2, "{counters:?}");
        assert!(counters.bytes > 0);
        assert_eq!(counters.largest_group, 1);
        assert_eq!(counters.commits_per_write(), Some(1.0));
        let none = DurableCounters::between(&after, &after);
        assert_eq!(none.commits_per_write(), None);
        assert_eq!(none.commits_per_sync(), None);
    }

    #[test]
    fn abort_counts_by_kind() {
        let mut counts = AbortCounts::default();
        for kind in [
            ConflictKind::WriteWrite,
            ConflictKind::WriteWrite,
            ConflictKind::StaleRead,
            ConflictKind::Phantom,
            ConflictKind::Busy,
        ] {
            counts.count(AbortKind::of(Some(&kind)));
        }
        counts.count(AbortKind::of(None));
        assert_eq!(counts.write_write, 2);
        assert_eq!(counts.total(), 6);
        let mut sum = AbortCounts::default();
        sum.merge(&counts);
        sum.merge(&counts);
        assert_eq!(sum.total(), 12);
        assert_eq!(sum.other, 2);
    }
}
