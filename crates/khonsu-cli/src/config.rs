//! The resolved configuration of a `khonsu demo` run: the command line's flags
//! turned into the [`Workload`] the threads run, the [`NewBank`] to create when
//! the store holds no bank yet, and the [`StorageChoice`] to open.
//!
//! Resolving does no I/O: whether the data directory already holds a bank is
//! found out when it is opened ([`Bank::open`](crate::bank::Bank::open)).

use std::fmt;
use std::path::PathBuf;

use snafu::ensure;

use crate::args::{
    DEFAULT_ACCOUNTS, DEFAULT_DATA_DIR, DEFAULT_INITIAL_BALANCE, DemoArgs, Isolation, Resolution,
    StopAfter, StorageKind,
};
use crate::error::{DataDirWithoutPersistenceSnafu, Result};

/// Everything a `khonsu demo` run needs, resolved from its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DemoConfig {
    /// What the threads do.
    pub(crate) workload: Workload,
    /// The bank to create if the store holds none.
    pub(crate) new_bank: NewBank,
    /// Where the bank persists.
    pub(crate) storage: StorageChoice,
}

/// What the transfer and auditor threads do (everything but the bank's shape,
/// which a resumed bank brings along).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Workload {
    /// Isolation level of every transaction.
    pub(crate) isolation: Isolation,
    /// Write-write conflict resolution.
    pub(crate) resolution: Resolution,
    /// Transfer threads.
    pub(crate) threads: u32,
    /// Auditor threads.
    pub(crate) auditors: u32,
    /// Largest amount one transfer moves (at least 1).
    pub(crate) max_amount: i64,
    /// When the workers stop.
    pub(crate) stop: StopAfter,
    /// Seed of the workers' random choices.
    pub(crate) seed: u64,
}

/// The bank the command line asks for: used as is when the store holds no bank,
/// compared with the stored one (for a note) when it does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NewBank {
    /// `--accounts`, if given.
    pub(crate) asked_accounts: Option<u64>,
    /// `--initial-balance`, if given.
    pub(crate) asked_balance: Option<i64>,
}

impl NewBank {
    /// Number of accounts of a new bank.
    pub(crate) fn accounts(self) -> u64 {
        self.asked_accounts.unwrap_or(DEFAULT_ACCOUNTS)
    }

    /// Starting balance of each account of a new bank.
    pub(crate) fn initial_balance(self) -> i64 {
        self.asked_balance.unwrap_or(DEFAULT_INITIAL_BALANCE)
    }
}

/// Where a run's bank lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StorageChoice {
    /// Nowhere: the engine runs without storage and nothing outlives the process.
    Memory,
    /// In the store of `adapter` in the data directory `dir`.
    Durable {
        /// The embedded store.
        adapter: Adapter,
        /// The data directory (created if missing).
        dir: PathBuf,
    },
}

/// A durable store this binary was built with. `fjall` exists only in a build
/// with the `fjall` feature, so a resolved configuration cannot name an adapter
/// the binary lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Adapter {
    /// redb, the embedded default.
    Redb,
    /// fjall, behind the `fjall` feature.
    #[cfg(feature = "fjall")]
    Fjall,
}

impl Adapter {
    /// The adapter's name, as its manifest and `--storage` spell it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Redb => StorageKind::Redb.name(),
            #[cfg(feature = "fjall")]
            Self::Fjall => StorageKind::Fjall.name(),
        }
    }
}

impl fmt::Display for StorageChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory (nothing persists)"),
            Self::Durable { adapter, dir } => {
                write!(f, "{} in {}", adapter.name(), dir.display())
            }
        }
    }
}

impl StorageChoice {
    /// What `--storage`/`--in-memory` and `--data-dir` ask for.
    ///
    /// # Errors
    /// [`Error::FjallNotBuilt`](crate::error::Error) for `--storage fjall` in a
    /// build without the `fjall` feature, and
    /// [`Error::DataDirWithoutPersistence`](crate::error::Error) for `--data-dir`
    /// with `--storage memory` (a directory that would silently stay empty).
    fn resolve(kind: StorageKind, data_dir: Option<&PathBuf>) -> Result<Self> {
        let adapter = match kind {
            StorageKind::Memory => {
                ensure!(
                    data_dir.is_none(),
                    DataDirWithoutPersistenceSnafu {
                        dir: data_dir.cloned().unwrap_or_default(),
                    }
                );
                return Ok(Self::Memory);
            }
            StorageKind::Redb => Adapter::Redb,
            #[cfg(feature = "fjall")]
            StorageKind::Fjall => Adapter::Fjall,
            #[cfg(not(feature = "fjall"))]
            StorageKind::Fjall => return crate::error::FjallNotBuiltSnafu.fail(),
        };
        let dir = data_dir
            .cloned()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        Ok(Self::Durable { adapter, dir })
    }
}

impl DemoConfig {
    /// The configuration `args` ask for, with `seed` for the random choices.
    ///
    /// # Errors
    /// As for the storage choice: see [`StorageChoice`]'s `resolve`; both are
    /// usage errors (exit code 2).
    pub(crate) fn resolve(args: &DemoArgs, seed: u64) -> Result<Self> {
        Ok(Self {
            workload: Workload {
                isolation: args.isolation,
                resolution: args.resolution,
                threads: args.threads,
                auditors: args.auditors,
                max_amount: args.max_amount,
                stop: args.stop_after(),
                seed,
            },
            new_bank: NewBank {
                asked_accounts: args.accounts,
                asked_balance: args.initial_balance,
            },
            storage: StorageChoice::resolve(args.storage_kind(), args.data_dir.as_ref())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use crate::error::Error;
    use clap::Parser;

    fn resolve(args: &[&str]) -> Result<DemoConfig> {
        let cli = Cli::try_parse_from(["khonsu", "demo"].iter().chain(args)).unwrap();
        let Command::Demo(demo) = cli.command else {
            panic!("not demo")
        };
        DemoConfig::resolve(&demo, 5)
    }

    #[test]
    fn default_is_redb_in_khonsu_data() {
        let config = resolve(&[]).unwrap();
        assert_eq!(
            config.storage,
            StorageChoice::Durable {
                adapter: Adapter::Redb,
                dir: PathBuf::from("khonsu-data"),
            }
        );
        assert_eq!(config.storage.to_string(), "redb in khonsu-data");
        assert_eq!(config.new_bank.accounts(), 1000);
        assert_eq!(config.new_bank.initial_balance(), 1000);
        assert_eq!(config.new_bank.asked_accounts, None);
        assert_eq!(config.workload.seed, 5);
    }

    #[test]
    fn data_dir_and_bank_flags_resolve() {
        let config = resolve(&[
            "--data-dir",
            "/tmp/bank",
            "--accounts",
            "20",
            "--initial-balance",
            "0",
        ])
        .unwrap();
        assert_eq!(
            config.storage,
            StorageChoice::Durable {
                adapter: Adapter::Redb,
                dir: PathBuf::from("/tmp/bank"),
            }
        );
        assert_eq!(config.new_bank.accounts(), 20);
        assert_eq!(config.new_bank.initial_balance(), 0);
    }

    #[test]
    fn in_memory_and_storage_memory_keep_nothing() {
        for args in [&["--in-memory"][..], &["--storage", "memory"]] {
            let config = resolve(args).unwrap();
            assert_eq!(config.storage, StorageChoice::Memory, "{args:?}");
        }
    }

    #[test]
    fn a_data_dir_without_persistence_is_a_usage_error() {
        let err = resolve(&["--storage", "memory", "--data-dir", "d"]).unwrap_err();
        assert!(
            matches!(err, Error::DataDirWithoutPersistence { .. }),
            "{err:?}"
        );
        assert!(err.is_usage());
    }

    #[cfg(not(feature = "fjall"))]
    #[test]
    fn fjall_without_the_feature_says_how_to_rebuild() {
        let err = resolve(&["--storage", "fjall"]).unwrap_err();
        assert!(err.is_usage());
        assert!(err.to_string().contains("--features fjall"), "{err}");
    }

    #[cfg(feature = "fjall")]
    #[test]
    fn fjall_with_the_feature_resolves() {
        let config = resolve(&["--storage", "fjall", "--data-dir", "f"]).unwrap();
        assert_eq!(config.storage.to_string(), "fjall in f");
    }
}
