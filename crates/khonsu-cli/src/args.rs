//! Command-line arguments of the `khonsu` binary (clap derive): what the user
//! typed, before [`config`](crate::config) resolves it.
//!
//! Every field's doc comment is its `--help` text, so the help output and this
//! file cannot drift apart.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use khonsu::{ConflictResolution, TransactionIsolation};

/// The default `--data-dir`, relative to the current directory.
pub(crate) const DEFAULT_DATA_DIR: &str = "khonsu-data";
/// The default `--accounts` of a new bank.
pub(crate) const DEFAULT_ACCOUNTS: u64 = 1000;
/// The default `--initial-balance` of a new bank.
pub(crate) const DEFAULT_INITIAL_BALANCE: i64 = 1000;

/// Exit codes, shown under `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  success: every invariant held (inspect: the store is healthy)
  1  an error other than a retryable conflict, printed with its cause chain: the
     data directory is open in another process, is not a Khonsu store or not a
     demo bank, cannot be read or recovered, or the engine failed
  2  invalid command line (also: --storage fjall in a binary built without the
     fjall feature, --data-dir with --storage memory)
  3  an invariant was violated: the total was not conserved, an audit at
     repeatable-read/serializable saw an inconsistent total, or a read-only
     transaction aborted
  4  inspect: the store is damaged: a value's bytes are damaged or the store's
     contents do not match its own records (each damaged key is listed), or its
     files are too damaged to open
  5  inspect: the files are intact, but a value cannot be decoded by this build
     (each such key is listed)";

/// Notes on the demo workload, shown under `khonsu demo --help`.
const DEMO_NOTES: &str = "\
Workload:
  Every account is one RecordBatch {account: UInt64, balance: Int64} under the key
  Key::from(account id), and all accounts are created in one transaction. Each worker
  thread repeatedly picks two distinct random accounts, reads both, moves a random
  amount from one to the other and commits. Balances never go below zero: the amount is
  capped at the payer's balance (a transfer from an empty account moves 0). A
  transaction that loses a conflict is rolled back, counted by conflict kind and
  retried until it commits. Auditor threads run read-only transactions that scan all
  accounts and check that the total equals the total at the start of the run; at the
  end, the total must equal the one the bank was created with. (Only --resolution append
  can leave several rows in an account's batch; its balance is then the last row.)

  At repeatable-read and serializable a read-modify-write that races a concurrent
  commit always aborts, so the total must be conserved whatever --resolution says.
  At read-committed only --resolution fail prevents lost updates; replace, ignore and
  append let transfers overwrite, drop or merge concurrent writes, so the total may
  drift and the run then exits with code 3 on purpose.

Persistence:
  By default the bank lives in the data directory ./khonsu-data (--data-dir), in the
  embedded redb store; every commit returns only once it is synced to disk, and
  concurrent commits share one write and one sync (group commit). The directory is
  created on the first run. A later run on the same directory resumes the bank: it
  recovers the accounts and their balances as the last run left them, and checks
  conservation against the total the bank was created with. The bank's own record
  (account count, initial balance and total, runs started) is the key \"demo/meta\",
  written in the transaction that creates the accounts; accounts are the 8-byte keys.
  A resumed bank keeps its account count and initial balance: --accounts and
  --initial-balance only shape a new bank, and a different value given for a resumed
  one is ignored with a note. A directory holding a Khonsu store that is not a demo
  bank, or other files, is refused (exit code 1); so is a directory that another
  process has open. --in-memory keeps nothing and creates no directory.
  `khonsu inspect DIR` shows what a data directory holds.";

/// Notes on `khonsu inspect`, shown under `khonsu inspect --help`.
const INSPECT_NOTES: &str = "\
Inspect opens the store as the engine does (it takes the directory's lock, so it
fails while a demo runs on it, and repairs the file if the last process crashed),
reads every value back and checks its checksum and Arrow encoding, and checks the
store's key count and digest against its own records. It never creates a store.";

/// Khonsu: a software transactional memory whose values are Apache Arrow `RecordBatch`es.
#[derive(Debug, Parser)]
#[command(name = "khonsu", version, about, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands of `khonsu`.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the bank-transfer workload: concurrent transfers between accounts, audited
    /// for conservation of the total balance, with a summary of throughput, aborts and
    /// commit latency.
    #[command(after_help = format!("{DEMO_NOTES}\n\n{EXIT_CODES}"))]
    Demo(DemoArgs),

    /// Show what a data directory's store holds (adapter, keys, rows, value bytes,
    /// last commit timestamp, bytes on disk, repair after an unclean shutdown) and
    /// verify that every value decodes; exits with 4 when the store is damaged.
    #[command(after_help = format!("{INSPECT_NOTES}\n\n{EXIT_CODES}"))]
    Inspect(InspectArgs),
}

/// Arguments of `khonsu inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub(crate) struct InspectArgs {
    /// The data directory, e.g. khonsu-data.
    #[arg(value_name = "DIR")]
    pub(crate) dir: PathBuf,
}

/// `--storage` values: where the bank persists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StorageKind {
    /// The embedded redb store (a B-tree in one file, DIR/data.redb).
    Redb,
    /// The embedded fjall store (an LSM tree, DIR/fjall/); only in a binary built
    /// with `--features fjall`.
    Fjall,
    /// No persistence: the bank lives and dies with the process.
    Memory,
}

impl StorageKind {
    /// The flag value, e.g. `redb`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Redb => "redb",
            Self::Fjall => "fjall",
            Self::Memory => "memory",
        }
    }
}

impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Flags of `khonsu demo`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub(crate) struct DemoArgs {
    /// Isolation level of every transaction.
    #[arg(long, value_enum, default_value_t = Isolation::Serializable)]
    pub(crate) isolation: Isolation,

    /// How a write-write conflict on a blindly written key is resolved. At
    /// repeatable-read and serializable a transfer reads both accounts first, so a
    /// conflict on them always aborts; the resolution matters at read-committed.
    #[arg(long, value_enum, default_value_t = Resolution::Fail)]
    pub(crate) resolution: Resolution,

    /// Number of worker threads running transfers.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) threads: u32,

    /// Number of accounts of a new bank: at least 2 (a transfer needs two distinct
    /// accounts), at most 1000000 (each account costs about 1 KB of memory).
    /// [default: 1000; a resumed bank keeps its own, see below]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
    pub(crate) accounts: Option<u64>,

    /// Run for this many seconds (fractions allowed, e.g. 0.5). Ignored when
    /// --transfers is given.
    #[arg(long, value_name = "S", default_value = "5", value_parser = parse_seconds)]
    pub(crate) seconds: Duration,

    /// Stop after this many committed transfers in total across all threads, instead
    /// of after --seconds. Wins over --seconds when both are given.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) transfers: Option<u64>,

    /// Seed of the random account and amount choices; printed at start so a run can be
    /// repeated (thread interleavings still vary). Default: derived from the clock.
    #[arg(long)]
    pub(crate) seed: Option<u64>,

    /// Number of auditor threads running read-only transactions that check the total.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub(crate) auditors: u32,

    /// Starting balance of every account of a new bank. [default: 1000; a resumed
    /// bank keeps its own]
    #[arg(long, value_name = "AMOUNT", value_parser = clap::value_parser!(i64).range(0..=1_000_000_000))]
    pub(crate) initial_balance: Option<i64>,

    /// Largest amount one transfer moves (each transfer picks 1..=this, capped at the
    /// payer's balance).
    #[arg(long, value_name = "AMOUNT", default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=1_000_000_000))]
    pub(crate) max_amount: i64,

    /// Do not draw the live progress line (it is also hidden when stdout is not a
    /// terminal).
    #[arg(long)]
    pub(crate) no_progress: bool,

    /// The data directory the bank persists in, created if missing; a second run
    /// on it resumes the bank. [default: khonsu-data, in the current directory]
    #[arg(long, value_name = "DIR", conflicts_with = "in_memory")]
    pub(crate) data_dir: Option<PathBuf>,

    /// Where the bank persists: redb (the embedded default), fjall (needs a binary
    /// built with `--features fjall`), or memory (nothing persists).
    #[arg(long, value_name = "STORE", value_enum, default_value_t = StorageKind::Redb)]
    pub(crate) storage: StorageKind,

    /// Keep nothing: shorthand for --storage memory (no data directory is created
    /// or read).
    #[arg(long, conflicts_with = "storage")]
    pub(crate) in_memory: bool,
}

/// When the workers stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopAfter {
    /// After this many committed transfers in total.
    Transfers(u64),
    /// After this much wall-clock time.
    Elapsed(Duration),
}

impl DemoArgs {
    /// The stop condition: `--transfers` wins over `--seconds`.
    pub(crate) fn stop_after(&self) -> StopAfter {
        match self.transfers {
            Some(n) => StopAfter::Transfers(n),
            None => StopAfter::Elapsed(self.seconds),
        }
    }

    /// The storage asked for: `--in-memory` is `--storage memory`.
    pub(crate) fn storage_kind(&self) -> StorageKind {
        if self.in_memory {
            StorageKind::Memory
        } else {
            self.storage
        }
    }
}

impl fmt::Display for StopAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transfers(n) => write!(f, "{n} transfers"),
            Self::Elapsed(d) => write!(f, "{} s", d.as_secs_f64()),
        }
    }
}

/// Parses `--seconds`: a positive, finite number of seconds (at most a week).
fn parse_seconds(text: &str) -> Result<Duration, String> {
    const WEEK: f64 = 7.0 * 24.0 * 3600.0;
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|e| format!("`{text}` is not a number of seconds: {e}"))?;
    if !(secs > 0.0 && secs <= WEEK) {
        return Err(format!(
            "`{text}` is out of range: give a number of seconds above 0 and at most {WEEK}"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{text}` is not a valid duration: {e}"))
}

/// `--isolation` values (a local mirror of [`TransactionIsolation`] so clap can derive
/// the value names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Isolation {
    /// Every read sees the latest committed value; read skew, write skew and (unless
    /// --resolution fail) lost updates are allowed.
    ReadCommitted,
    /// Snapshot isolation: reads see the start snapshot; first committer wins.
    RepeatableRead,
    /// Serializable: every anomaly is prevented.
    Serializable,
}

impl Isolation {
    /// The engine's level.
    pub(crate) fn to_khonsu(self) -> TransactionIsolation {
        match self {
            Self::ReadCommitted => TransactionIsolation::ReadCommitted,
            Self::RepeatableRead => TransactionIsolation::RepeatableRead,
            Self::Serializable => TransactionIsolation::Serializable,
        }
    }

    /// The flag value, e.g. `repeatable-read` (the engine's name for the level).
    pub(crate) fn name(self) -> &'static str {
        self.to_khonsu().name()
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `--resolution` values (a local mirror of [`ConflictResolution`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Resolution {
    /// Abort the transaction on a write-write conflict.
    Fail,
    /// Install this write over the concurrently committed one.
    Replace,
    /// Drop this transaction's write of the conflicting key, commit the rest.
    Ignore,
    /// Append this batch's rows after the concurrently committed batch's rows.
    Append,
}

impl Resolution {
    /// The engine's resolution.
    pub(crate) fn to_khonsu(self) -> ConflictResolution {
        match self {
            Self::Fail => ConflictResolution::Fail,
            Self::Replace => ConflictResolution::Replace,
            Self::Ignore => ConflictResolution::Ignore,
            Self::Append => ConflictResolution::Append,
        }
    }

    /// The flag value, e.g. `replace` (the engine's name for the resolution).
    pub(crate) fn name(self) -> &'static str {
        self.to_khonsu().name()
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn demo(args: &[&str]) -> Result<DemoArgs, clap::Error> {
        let command_line = ["khonsu", "demo"].iter().chain(args);
        Cli::try_parse_from(command_line).map(|cli| match cli.command {
            Command::Demo(demo) => demo,
            Command::Inspect(args) => panic!("parsed as inspect: {args:?}"),
        })
    }

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_documentation() {
        let args = demo(&[]).unwrap();
        assert_eq!(args.isolation, Isolation::Serializable);
        assert_eq!(args.resolution, Resolution::Fail);
        assert_eq!(args.threads, 2);
        assert_eq!(args.accounts, None);
        assert_eq!(args.initial_balance, None);
        assert_eq!(args.auditors, 1);
        assert_eq!(args.seed, None);
        assert!(!args.no_progress);
        assert_eq!(args.data_dir, None);
        assert_eq!(args.storage, StorageKind::Redb);
        assert!(!args.in_memory);
        assert_eq!(args.storage_kind(), StorageKind::Redb);
        assert_eq!(
            args.stop_after(),
            StopAfter::Elapsed(Duration::from_secs(5))
        );
    }

    #[test]
    fn every_flag_parses() {
        let args = demo(&[
            "--isolation",
            "read-committed",
            "--resolution",
            "replace",
            "--threads",
            "8",
            "--accounts",
            "50",
            "--seconds",
            "0.5",
            "--seed",
            "42",
            "--auditors",
            "0",
            "--initial-balance",
            "7",
            "--max-amount",
            "3",
            "--no-progress",
            "--data-dir",
            "some/dir",
            "--storage",
            "fjall",
        ])
        .unwrap();
        assert_eq!(args.data_dir, Some(PathBuf::from("some/dir")));
        assert_eq!(args.storage_kind(), StorageKind::Fjall);
        assert_eq!(args.isolation, Isolation::ReadCommitted);
        assert_eq!(args.resolution, Resolution::Replace);
        assert_eq!(args.threads, 8);
        assert_eq!(args.accounts, Some(50));
        assert_eq!(args.seed, Some(42));
        assert_eq!(args.auditors, 0);
        assert_eq!(args.initial_balance, Some(7));
        assert_eq!(args.max_amount, 3);
        assert!(args.no_progress);
        assert_eq!(
            args.stop_after(),
            StopAfter::Elapsed(Duration::from_millis(500))
        );
    }

    #[test]
    fn all_isolation_and_resolution_names_parse() {
        for level in Isolation::value_variants() {
            let args = demo(&["--isolation", level.name()]).unwrap();
            assert_eq!(args.isolation, *level);
        }
        for resolution in Resolution::value_variants() {
            let args = demo(&["--resolution", resolution.name()]).unwrap();
            assert_eq!(args.resolution, *resolution);
        }
        assert_eq!(
            Isolation::RepeatableRead.to_khonsu(),
            TransactionIsolation::RepeatableRead
        );
        assert_eq!(Resolution::Append.to_khonsu(), ConflictResolution::Append);
    }

    #[test]
    fn transfers_win_over_seconds() {
        let args = demo(&["--seconds", "9", "--transfers", "2000"]).unwrap();
        assert_eq!(args.stop_after(), StopAfter::Transfers(2000));
    }

    #[test]
    fn bad_values_are_clap_errors() {
        let bad: &[&[&str]] = &[
            &["--isolation", "snapshot"],
            &["--resolution", "merge"],
            &["--threads", "0"],
            &["--threads", "-1"],
            &["--threads", "many"],
            &["--accounts", "1"],
            &["--accounts", "0"],
            &["--accounts", "1000001"],
            &["--seconds", "0"],
            &["--seconds", "-3"],
            &["--seconds", "NaN"],
            &["--seconds", "inf"],
            &["--seconds", "soon"],
            &["--seconds", "1e300"],
            &["--transfers", "0"],
            &["--seed", "-1"],
            &["--auditors", "65"],
            &["--initial-balance", "-5"],
            &["--max-amount", "0"],
            &["--no-such-flag"],
            &["--storage", "sqlite"],
            &["--storage"],
            &["--data-dir"],
        ];
        for args in bad {
            let err = demo(args).unwrap_err();
            assert!(
                matches!(
                    err.kind(),
                    ErrorKind::InvalidValue
                        | ErrorKind::ValueValidation
                        | ErrorKind::UnknownArgument
                ),
                "{args:?}: {:?}",
                err.kind()
            );
        }
    }

    #[test]
    fn every_storage_name_parses() {
        for kind in StorageKind::value_variants() {
            let args = demo(&["--storage", kind.name()]).unwrap();
            assert_eq!(args.storage_kind(), *kind);
        }
    }

    #[test]
    fn in_memory_is_storage_memory() {
        let args = demo(&["--in-memory"]).unwrap();
        assert!(args.in_memory);
        assert_eq!(args.storage_kind(), StorageKind::Memory);
        assert_eq!(args.data_dir, None);
    }

    #[test]
    fn in_memory_conflicts_with_storage_and_data_dir() {
        for args in [
            &["--in-memory", "--storage", "redb"][..],
            &["--storage", "memory", "--in-memory"],
            &["--in-memory", "--data-dir", "d"],
        ] {
            let err = demo(args).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ArgumentConflict, "{args:?}");
        }
    }

    #[test]
    fn inspect_takes_a_directory() {
        let cli = Cli::try_parse_from(["khonsu", "inspect", "khonsu-data"]).unwrap();
        match cli.command {
            Command::Inspect(args) => assert_eq!(args.dir, PathBuf::from("khonsu-data")),
            Command::Demo(args) => panic!("parsed as demo: {args:?}"),
        }
        let err = Cli::try_parse_from(["khonsu", "inspect"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let err = Cli::try_parse_from(["khonsu", "inspect", "a", "b"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownArgument);
    }

    #[test]
    fn a_subcommand_is_required() {
        assert!(Cli::try_parse_from(["khonsu"]).is_err());
    }
}
