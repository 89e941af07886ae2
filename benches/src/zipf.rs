//! [`Zipfian`]: YCSB's skewed key chooser.
//!
//! The rank generator is YCSB's `ZipfianGenerator` (Gray et al., "Quickly
//! generating billion-record synthetic databases", SIGMOD 1994): rank `0` is
//! the most popular, with probability `1 / zeta(n, θ)`, rank `i` has
//! probability proportional to `1 / (i + 1)^θ`. Like YCSB's
//! `ScrambledZipfianGenerator`, ranks are then scattered over the keyspace
//! so that the hot keys are not neighbours; here by the bijection
//! `key = (rank · m + offset) mod n` with `gcd(m, n) = 1`, which keeps the
//! distribution exactly Zipfian over keys.

use crate::rng::SplitMix64;

/// YCSB's default skew.
pub const YCSB_THETA: f64 = 0.99;

/// Golden-ratio multiplier for the scramble; adjusted until coprime to `n`.
const SCRAMBLE_MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// Draws keys in `0..n` with a scrambled Zipfian distribution.
///
/// Built once (computing `zeta(n, θ)` walks all `n` ranks) and shared by
/// every thread; each thread draws with its own [`SplitMix64`].
///
/// ```
/// use khonsu_benches::{SplitMix64, Zipfian};
///
/// let zipf = Zipfian::new(1_000, 0.99);
/// let mut rng = SplitMix64::new(42);
/// assert!(zipf.sample(&mut rng) < 1_000);
/// ```
#[derive(Clone, Debug)]
pub struct Zipfian {
    n: u64,
    n_f64: f64,
    theta: f64,
    alpha: f64,
    zeta_n: f64,
    eta: f64,
    half_pow_theta: f64,
    multiplier: u64,
    offset: u64,
}

impl Zipfian {
    /// A generator over `0..n` (at least one key) with skew `theta` in
    /// `(0, 1)`; YCSB uses [`YCSB_THETA`].
    #[must_use]
    pub fn new(n: u64, theta: f64) -> Self {
        let n = n.max(1);
        let n_f64 = as_f64(n);
        let zeta_n = zeta(n, theta);
        let zeta_2 = zeta(2.min(n), theta);
        let eta = (1.0 - (2.0 / n_f64).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n);
        let mut multiplier = SCRAMBLE_MULTIPLIER % n;
        while gcd(multiplier, n) != 1 {
            multiplier += 1;
        }
        Self {
            n,
            n_f64,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta_n,
            eta,
            half_pow_theta: 0.5_f64.powf(theta),
            multiplier,
            offset: (SCRAMBLE_MULTIPLIER >> 17) % n,
        }
    }

    /// The number of keys.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Always false: a generator has at least one key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The skew.
    #[must_use]
    pub fn theta(&self) -> f64 {
        self.theta
    }

    /// A popularity rank in `0..n`; `0` is the hottest.
    pub fn rank(&self, rng: &mut SplitMix64) -> u64 {
        let u = rng.unit();
        let uz = u * self.zeta_n;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + self.half_pow_theta {
            return 1.min(self.n - 1);
        }
        let scaled = self.n_f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha);
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a non-negative float below n, truncated to an integer rank on purpose"
        )]
        let rank = scaled as u64;
        rank.min(self.n - 1)
    }

    /// The key of popularity rank `rank` (a bijection of `0..n`).
    #[must_use]
    pub fn key_of_rank(&self, rank: u64) -> u64 {
        let product = u128::from(rank) * u128::from(self.multiplier) + u128::from(self.offset);
        let key = product % u128::from(self.n);
        u64::try_from(key).unwrap_or(0)
    }

    /// A key in `0..n`.
    pub fn sample(&self, rng: &mut SplitMix64) -> u64 {
        self.key_of_rank(self.rank(rng))
    }
}

/// `zeta(n, θ) = Σ_{i=1..n} 1 / i^θ`.
fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / as_f64(i).powf(theta)).sum()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[expect(
    clippy::cast_precision_loss,
    reason = "key counts are far below 2^53, so the conversion is exact"
)]
fn as_f64(n: u64) -> f64 {
    n as f64
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{YCSB_THETA, Zipfian};
    use crate::rng::SplitMix64;

    #[test]
    fn keys_stay_in_range() {
        for n in [1, 2, 3, 10, 1_000] {
            let zipf = Zipfian::new(n, YCSB_THETA);
            let mut rng = SplitMix64::new(n);
            for _ in 0..10_000 {
                assert!(zipf.sample(&mut rng) < n, "n = {n}");
            }
        }
    }

    #[test]
    fn scramble_is_a_bijection() {
        let n = 100_000;
        let zipf = Zipfian::new(n, YCSB_THETA);
        let mut seen = vec![false; 100_000];
        for rank in 0..n {
            let key = usize::try_from(zipf.key_of_rank(rank)).unwrap_or(usize::MAX);
            let slot = seen.get_mut(key);
            assert!(
                slot.as_ref().is_some_and(|s| !**s),
                "rank {rank} hit key {key} twice"
            );
            if let Some(s) = slot {
                *s = true;
            }
        }
    }

    #[test]
    fn distribution_is_skewed_like_ycsb() {
        let n = 100_000;
        let samples = 200_000;
        let zipf = Zipfian::new(n, YCSB_THETA);
        let mut rng = SplitMix64::new(0x5EED);
        let mut counts: HashMap<u64, u64> = HashMap::new();
        for _ in 0..samples {
            *counts.entry(zipf.sample(&mut rng)).or_default() += 1;
        }
        // Rank 0 has probability 1/zeta(100k, 0.99) ≈ 8%; uniform would give 0.001%.
        let hottest = counts.get(&zipf.key_of_rank(0)).copied().unwrap_or(0);
        assert!(
            hottest > samples / 20 && hottest < samples / 8,
            "hottest key drawn {hottest} times out of {samples}"
        );
        // Rank 1 is about half as popular as rank 0.
        let second = counts.get(&zipf.key_of_rank(1)).copied().unwrap_or(0);
        assert!(
            second * 3 > hottest && second * 3 < hottest * 2,
            "{second} vs {hottest}"
        );
        // The 100 hottest keys take about 41% of draws, yet many keys are touched.
        let mut sorted: Vec<u64> = counts.values().copied().collect();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let top_100: u64 = sorted.iter().take(100).sum();
        assert!(top_100 > samples / 3, "top 100 keys: {top_100}");
        assert!(counts.len() > 10_000, "distinct keys: {}", counts.len());
    }
}
