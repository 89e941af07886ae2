//! Helpers shared by the property tests of this crate.

use proptest::prelude::ProptestConfig;
use proptest::test_runner::RngSeed;

/// 256 cases from a fixed seed (reproducible in CI), unless
/// `PROPTEST_RNG_SEED` asks for another one; no failure files.
pub(crate) fn config(seed: u64) -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: 256,
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            default.rng_seed
        } else {
            RngSeed::Fixed(seed)
        },
        failure_persistence: None,
        ..default
    }
}
