//! The durable engines: Khonsu over its storage adapters and the raw
//! stores a user would pick instead, each committing durably (its commit
//! returns after the data is synced).
//!
//! | engine | a commit |
//! |---|---|
//! | `khonsu-redb` | a Khonsu transaction over `RedbStorage`, group commit on: concurrent commits share one redb write transaction and one sync |
//! | `khonsu-redb-nogc` | the same with group commit off: one redb write transaction per commit |
//! | `khonsu-redb-nogather` | group commit on, but the leader does not wait for open writers (`group_commit_gather(false)`) |
//! | `khonsu-redb-qr` | `khonsu-redb` with redb's quick repair (`RedbOptions::quick_repair`) |
//! | `khonsu-fjall` | a Khonsu transaction over `FjallStorage` (group commit on; one fjall batch with `PersistMode::SyncAll` per group) |
//! | `redb` | one raw redb write transaction, `Durability::Immediate`, per commit |
//! | `redb-batch64` | raw redb, 64 commits hand-batched into one write transaction (not a per-commit guarantee: the floor a batching application reaches) |
//! | `fjall` | a raw fjall write batch (blind writes) or an optimistic transaction (transfers), `PersistMode::SyncAll` |
//! | `canopydb` | a canopydb concurrent write transaction, `commit_with(true)` (WAL, synced, group commit) |
//!
//! The raw engines store exactly the bytes Khonsu stores for the same
//! mutation (key: 8 big-endian bytes; value: Khonsu's codec, a 24-byte
//! header and the Arrow IPC stream of a fresh one-row batch), and encode
//! them inside the measured loop, as Khonsu does.

use std::path::Path;
use std::sync::Arc;

use khonsu::storage::{FjallStorage, RedbOptions};
use khonsu::{Key, Khonsu, RedbStorage, Storage, TransactionOptions};
use snafu::ResultExt;

use super::{
    Accounts, BLIND_BASE, HAND_BATCH, START_BALANCE, backend, decode_balance, key_bytes,
    sum_balances,
};
use crate::error::{KhonsuSnafu, MissingKeySnafu, NotACounterSnafu, Result};

/// Keys per transaction while loading an engine (before timing).
const LOAD_CHUNK: u64 = 1_000;

/// One transfer of the bank workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The account debited.
    pub from: u64,
    /// The account credited (never `from`).
    pub to: u64,
    /// The amount moved.
    pub amount: i64,
}

/// How a Khonsu engine grouped its commits so far (from
/// [`Khonsu::durability_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCounters {
    /// Storage writes issued.
    pub groups: u64,
    /// Commits those writes carried.
    pub commits: u64,
    /// The most commits one write carried since the engine was built (a
    /// running maximum: [`since`](Self::since) keeps the later value).
    pub largest: u64,
    /// Syncs the adapter counted (redb: `fdatasync`s of its file; fjall
    /// does not count them: 0).
    pub syncs: u64,
}

impl GroupCounters {
    /// The counters accumulated between `before` and `self`.
    #[must_use]
    pub fn since(self, before: Self) -> Self {
        Self {
            groups: self.groups.saturating_sub(before.groups),
            commits: self.commits.saturating_sub(before.commits),
            largest: self.largest,
            syncs: self.syncs.saturating_sub(before.syncs),
        }
    }
}

/// A store that commits durably, driven by [`run_durable_cell`](super::run_durable_cell).
pub trait DurableEngine: Send + Sync {
    /// The engine's name in tables.
    fn name(&self) -> &'static str;

    /// Commits one call to [`blind`](Self::blind) or
    /// [`transfer`](Self::transfer) should carry: 1, or the hand-batch size.
    fn batch(&self) -> usize {
        1
    }

    /// Writes each `(key, balance)` as a fresh one-row batch, one durable
    /// commit each (or one per [`batch`](Self::batch)); returns the aborted
    /// and retried attempts.
    ///
    /// # Errors
    /// The store's failure.
    fn blind(&self, accounts: &Accounts, writes: &[(u64, i64)]) -> Result<u64>;

    /// Runs each transfer in its own durable transaction (or one per
    /// [`batch`](Self::batch)), retrying conflicts; returns the aborted
    /// attempts.
    ///
    /// # Errors
    /// The store's failure, or an account that is missing.
    fn transfer(&self, accounts: &Accounts, moves: &[Transfer]) -> Result<u64>;

    /// The sum of the balances of accounts `0..accounts`, read in one
    /// transaction.
    ///
    /// # Errors
    /// The store's failure, or an account that is missing.
    fn total_balance(&self, accounts: u64) -> Result<i64>;

    /// Writes every `(key, balance)` in one durable commit (loading, before
    /// timing).
    ///
    /// # Errors
    /// The store's failure.
    fn load_bulk(&self, accounts: &Accounts, writes: &[(u64, i64)]) -> Result<()>;

    /// Khonsu's group-commit counters; `None` for the raw stores.
    fn group_counters(&self) -> Option<GroupCounters> {
        None
    }
}

/// The engines of the durable benchmark, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DurableKind {
    /// Khonsu on redb, group commit on (the reference).
    KhonsuRedb,
    /// Khonsu on redb, group commit off.
    KhonsuRedbNoGroup,
    /// Khonsu on redb, group commit on without gathering open writers.
    KhonsuRedbNoGather,
    /// Khonsu on redb, group commit on, redb's quick repair on.
    KhonsuRedbQuickRepair,
    /// Khonsu on fjall, group commit on.
    KhonsuFjall,
    /// Raw redb, one write transaction per commit.
    Redb,
    /// Raw redb, [`HAND_BATCH`] commits per write transaction.
    RedbBatched,
    /// Raw fjall.
    Fjall,
    /// Raw canopydb.
    Canopydb,
}

impl DurableKind {
    /// Every engine, in report order.
    pub const ALL: [Self; 9] = [
        Self::KhonsuRedb,
        Self::KhonsuRedbNoGroup,
        Self::KhonsuRedbNoGather,
        Self::KhonsuRedbQuickRepair,
        Self::KhonsuFjall,
        Self::Redb,
        Self::RedbBatched,
        Self::Fjall,
        Self::Canopydb,
    ];

    /// The engine ratios are taken against.
    pub const REFERENCE: Self = Self::KhonsuRedb;

    /// The engine's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::KhonsuRedb => "khonsu-redb",
            Self::KhonsuRedbNoGroup => "khonsu-redb-nogc",
            Self::KhonsuRedbNoGather => "khonsu-redb-nogather",
            Self::KhonsuRedbQuickRepair => "khonsu-redb-qr",
            Self::KhonsuFjall => "khonsu-fjall",
            Self::Redb => "redb",
            Self::RedbBatched => "redb-batch64",
            Self::Fjall => "fjall",
            Self::Canopydb => "canopydb",
        }
    }

    /// The engine named `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Whether it is Khonsu (as opposed to a peer).
    #[must_use]
    pub fn is_khonsu(self) -> bool {
        matches!(
            self,
            Self::KhonsuRedb
                | Self::KhonsuRedbNoGroup
                | Self::KhonsuRedbNoGather
                | Self::KhonsuRedbQuickRepair
                | Self::KhonsuFjall
        )
    }

    /// One line on what a commit is.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::KhonsuRedb => "Khonsu on RedbStorage, group commit on (default options)",
            Self::KhonsuRedbNoGroup => {
                "Khonsu on RedbStorage, group commit off: a redb write txn per commit"
            }
            Self::KhonsuRedbNoGather => {
                "Khonsu on RedbStorage, group commit on without gathering open writers"
            }
            Self::KhonsuRedbQuickRepair => {
                "Khonsu on RedbStorage, group commit on, RedbOptions::quick_repair"
            }
            Self::KhonsuFjall => {
                "Khonsu on FjallStorage, group commit on (a SyncAll batch per group)"
            }
            Self::Redb => "raw redb: one write txn (Durability::Immediate) per commit",
            Self::RedbBatched => "raw redb: 64 commits hand-batched per write txn (Immediate)",
            Self::Fjall => {
                "raw fjall: a SyncAll write batch (blind) / optimistic tx with SyncAll (transfer)"
            }
            Self::Canopydb => {
                "raw canopydb: a concurrent write txn, commit_with(true) (WAL fsync, group commit)"
            }
        }
    }

    /// Opens the engine in the empty directory `dir` and loads accounts
    /// `0..accounts` with [`START_BALANCE`] and the blind-write keys
    /// `BLIND_BASE..BLIND_BASE + accounts` with 0, durably, before timing.
    ///
    /// # Errors
    /// The store's failure to open or load.
    pub fn build(self, dir: &Path, accounts: u64) -> Result<Box<dyn DurableEngine>> {
        let name = self.name();
        let engine: Box<dyn DurableEngine> = match self {
            Self::KhonsuRedb
            | Self::KhonsuRedbNoGroup
            | Self::KhonsuRedbNoGather
            | Self::KhonsuRedbQuickRepair => {
                let mut options = RedbOptions::default();
                options.quick_repair = self == Self::KhonsuRedbQuickRepair;
                let storage = RedbStorage::open_with(dir, options)
                    .map_err(|e| backend(name, "open RedbStorage", &e))?;
                Box::new(KhonsuDurable::new(
                    name,
                    Arc::new(storage),
                    self != Self::KhonsuRedbNoGroup,
                    self != Self::KhonsuRedbNoGather,
                )?)
            }
            Self::KhonsuFjall => {
                let storage =
                    FjallStorage::open(dir).map_err(|e| backend(name, "open FjallStorage", &e))?;
                Box::new(KhonsuDurable::new(name, Arc::new(storage), true, true)?)
            }
            Self::Redb => Box::new(RawRedb::open(name, dir, 1)?),
            Self::RedbBatched => Box::new(RawRedb::open(name, dir, HAND_BATCH)?),
            Self::Fjall => Box::new(RawFjall::open(name, dir)?),
            Self::Canopydb => Box::new(RawCanopy::open(name, dir)?),
        };
        load(engine.as_ref(), accounts)?;
        Ok(engine)
    }
}

impl std::fmt::Display for DurableKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Loads the accounts and the blind keys, [`LOAD_CHUNK`] keys of each
/// per durable commit.
fn load(engine: &dyn DurableEngine, accounts: u64) -> Result<()> {
    let values = Accounts::new();
    let mut start = 0;
    while start < accounts {
        let end = (start + LOAD_CHUNK).min(accounts);
        let chunk: Vec<(u64, i64)> = (start..end)
            .map(|k| (k, START_BALANCE))
            .chain((start..end).map(|k| (BLIND_BASE + k, 0)))
            .collect();
        engine.load_bulk(&values, &chunk)?;
        start = end;
    }
    Ok(())
}

/// Retries of `atomically` before a conflict is reported as a failure:
/// effectively "until it commits", but bounded so a livelock fails loudly.
const MAX_RETRIES: u32 = 100_000;

/// Khonsu over a durable storage adapter.
struct KhonsuDurable {
    name: &'static str,
    db: Khonsu,
}

impl KhonsuDurable {
    fn new(
        name: &'static str,
        storage: Arc<dyn Storage>,
        group_commit: bool,
        gather: bool,
    ) -> Result<Self> {
        let db = Khonsu::builder()
            .storage(storage)
            .group_commit(group_commit)
            .group_commit_gather(gather)
            .max_retries(MAX_RETRIES)
            .build()
            .context(KhonsuSnafu {
                engine: name,
                operation: "build",
            })?;
        Ok(Self { name, db })
    }

    /// The balance of `account` read in `txn`.
    fn balance(txn: &mut khonsu::Transaction, account: u64) -> ::khonsu::Result<Option<i64>> {
        Ok(txn
            .read(Key::from(account))?
            .and_then(|batch| Accounts::balance(&batch)))
    }
}

impl DurableEngine for KhonsuDurable {
    fn name(&self) -> &'static str {
        self.name
    }

    // Both workloads go through `Khonsu::atomically`, the library's retry
    // loop with backoff, as a user would write them; the attempts beyond
    // the first are the aborts.
    fn blind(&self, accounts: &Accounts, writes: &[(u64, i64)]) -> Result<u64> {
        let mut aborts = 0;
        for &(key, balance) in writes {
            let batch = accounts.batch(key, balance)?;
            let mut attempts = 0_u64;
            self.db
                .atomically(|txn| {
                    attempts += 1;
                    txn.write(Key::from(key), batch.clone())
                })
                .context(KhonsuSnafu {
                    engine: self.name,
                    operation: "commit a blind write",
                })?;
            aborts += attempts.saturating_sub(1);
        }
        Ok(aborts)
    }

    fn transfer(&self, accounts: &Accounts, moves: &[Transfer]) -> Result<u64> {
        let mut aborts = 0;
        for m in moves {
            let mut attempts = 0_u64;
            self.db
                .atomically(|txn| {
                    attempts += 1;
                    let (Some(from), Some(to)) =
                        (Self::balance(txn, m.from)?, Self::balance(txn, m.to)?)
                    else {
                        return Err(::khonsu::Error::abort("an account is missing"));
                    };
                    let batch = |account, balance| {
                        accounts
                            .batch(account, balance)
                            .map_err(|e| ::khonsu::Error::abort(e.to_string()))
                    };
                    txn.write(Key::from(m.from), batch(m.from, from - m.amount)?)?;
                    txn.write(Key::from(m.to), batch(m.to, to + m.amount)?)
                })
                .context(KhonsuSnafu {
                    engine: self.name,
                    operation: "commit a transfer",
                })?;
            aborts += attempts.saturating_sub(1);
        }
        Ok(aborts)
    }

    fn total_balance(&self, accounts: u64) -> Result<i64> {
        let mut txn = self
            .db
            .start_transaction_with(TransactionOptions::new().read_only(true));
        let mut total = 0_i64;
        for account in 0..accounts {
            let balance = Self::balance(&mut txn, account).context(KhonsuSnafu {
                engine: self.name,
                operation: "read a balance",
            })?;
            total += balance.ok_or_else(|| {
                NotACounterSnafu {
                    engine: self.name,
                    key: account,
                }
                .build()
            })?;
        }
        Ok(total)
    }

    fn load_bulk(&self, accounts: &Accounts, writes: &[(u64, i64)]) -> Result<()> {
        let mut txn = self.db.start_transaction();
        for &(key, balance) in writes {
            txn.write(Key::from(key), accounts.batch(key, balance)?)
                .context(KhonsuSnafu {
                    engine: self.name,
                    operation: "load",
                })?;
        }
        txn.commit().context(KhonsuSnafu {
            engine: self.name,
            operation: "load",
        })?;
        Ok(())
    }

    fn group_counters(&self) -> Option<GroupCounters> {
        self.db.durability_stats().map(|stats| GroupCounters {
            groups: stats.group.groups,
            commits: stats.group.commits,
            largest: stats.group.largest_group,
            syncs: stats.storage.syncs,
        })
    }
}

/// redb's table of the raw engine: key bytes → stored value.
const REDB_TABLE: ::redb::TableDefinition<'static, &[u8], &[u8]> =
    ::redb::TableDefinition::new("data");

/// The page cache of the raw redb engine: the same as `RedbStorage`'s.
pub(crate) const REDB_CACHE: usize = 64 << 20;

/// Raw redb: `batch` commits per write transaction, `Durability::Immediate`.
struct RawRedb {
    name: &'static str,
    db: ::redb::Database,
    batch: usize,
}

impl RawRedb {
    fn open(name: &'static str, dir: &Path, batch: usize) -> Result<Self> {
        let db = ::redb::Builder::new()
            .set_cache_size(REDB_CACHE)
            .create(dir.join("raw.redb"))
            .map_err(|e| backend(name, "create a redb database", &e))?;
        Ok(Self { name, db, batch })
    }

    fn begin(&self) -> Result<::redb::WriteTransaction> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| backend(self.name, "begin a write transaction", &e))?;
        txn.set_durability(::redb::Durability::Immediate)
            .map_err(|e| backend(self.name, "set Durability::Immediate", &e))?;
        Ok(txn)
    }

    fn commit(&self, txn: ::redb::WriteTransaction) -> Result<()> {
        txn.commit()
            .map_err(|e| backend(self.name, "commit a write transaction", &e))
    }

    /// Writes encoded `(key, value)` pairs in one write transaction.
    fn put_all(&self, pairs: &[([u8; 8], Vec<u8>)]) -> Result<()> {
        let txn = self.begin()?;
        {
            let mut table = txn
                .open_table(REDB_TABLE)
                .map_err(|e| backend(self.name, "open the table", &e))?;
            for (key, value) in pairs {
                table
                    .insert(key.as_slice(), value.as_slice())
                    .map_err(|e| backend(self.name, "insert", &e))?;
            }
        }
        self.commit(txn)
    }
}

/// The stored bytes of each `(key, balance)`, encoded as Khonsu would.
fn encode_all(accounts: &Accounts, writes: &[(u64, i64)]) -> Result<Vec<([u8; 8], Vec<u8>)>> {
    writes
        .iter()
        .map(|&(key, balance)| Ok((key_bytes(key), accounts.stored(key, balance, 1)?)))
        .collect()
}

impl DurableEngine for RawRedb {
    fn name(&self) -> &'static str {
        self.name
    }

    fn batch(&self) -> usize {
        self.batch
    }

    fn blind(&self, accounts: &Accounts, writes: &[(u64, i64)]) -> Result<u64> {
        for chunk in writes.chunks(self.batch.max(1)) {
            // Encoded before the write lock, as Khonsu encodes before its
            // commit joins a group.
            let pairs = encode_all(accounts, chunk)?;
            self.put_all(&pairs)?;
        }
        Ok(0)
    }

    fn transfer(&self, accounts: &Accounts, moves: &[Transfer]) -> Result<u64> {
        use ::redb::ReadableTable;
        for chunk in moves.chunks(self.batch.max(1)) {
            let txn = self.begin()?;
            {
                let mut table = txn
                    .open_table(REDB_TABLE)
                    .map_err(|e| backend(self.name, "open the table", &e))?;
                for m in chunk {
                    let balance = |account: u64| -> Result<i64> {
                        let guard = table
                            .get(key_bytes(account).as_slice())
                            .map_err(|e| backend(self.name, "get", &e))?
                            .ok_or_else(|| {
                                MissingKeySnafu {
                                    engine: self.name,
                                    key: account,
                                }
                                .build()
                            })?;
                        decode_balance(self.name, guard.value())
                    };
                    let (from, to) = (balance(m.from)?, balance(m.to)?);
                    for (account, value) in [(m.from, from - m.amount), (m.to, to + m.amount)] {
                        let stored = accounts.stored(account, value, 1)?;
                        table
                            .insert(key_bytes(account).as_slice(), stored.as_slice())
                            .map_err(|e| backend(self.name, "insert", &e))?;
                    }
                }
            }
            self.commit(txn)?;
        }
        Ok(0)
    }

    fn total_balance(&self, accounts: u64) -> Result<i64> {
        use ::redb::ReadableDatabase;
        let txn = self
            .db
            .begin_read()
            .map_err(|e| backend(self.name, "begin a read transaction", &e))?;
        let table = txn
            .open_table(REDB_TABLE)
            .map_err(|e| backend(self.name, "open the table", &e))?;
        sum_balances(self.name, accounts, |key| {
            table
                .get(key)
                .map(|guard| guard.map(|g| g.value().to_vec()))
                .map_err(|e| backend(self.name, "get", &e))
        })
    }

    fn load_bulk(&self, accounts: &Accounts, writes: &[(u64, i64)]) -> Result<()> {
        self.put_all(&encode_all(accounts, writes)?)
    }
}

/// Raw fjall: blind writes as `SyncAll` write batches on a plain database,
/// transfers as optimistic transactions with `SyncAll` on a transactional
/// one (fjall's plain database has no read-write transactions).
struct RawFjall {
    name: &'static str,
    plain: ::fjall::Database,
    plain_data: ::fjall::Keyspace,
    tx: ::fjall::OptimisticTxDatabase,
    tx_data: ::fjall::OptimisticTxKeyspace,
}

impl RawFjall {
    fn open(name: &'static str, dir: &Path) -> Result<Self> {
        let plain = ::fjall::Database::builder(dir.join("plain"))
            .open()
            .map_err(|e| backend(name, "open a fjall database", &e))?;
        let plain_data = plain
            .keyspace("data", ::fjall::KeyspaceCreateOptions::default)
            .map_err(|e| backend(name, "open a keyspace", &e))?;
        let tx = ::fjall::OptimisticTxDatabase::builder(dir.join("tx"))
            .open()
            .map_err(|e| backend(name, "open a fjall transactional database", &e))?;
        let tx_data = tx
            .keyspace("data", ::fjall::KeyspaceCreateOptions::default)
            .map_err(|e| backend(name, "open a keyspace", &e))?;
        Ok(Self {
            name,
            plain,
            plain_data,
            tx,
            tx_data,
        })
    }

    fn put_plain(&self, pairs: Vec<([u8; 8], Vec<u8>)>) -> Result<()> {
        let mut batch = self
            .plain
            .batch()
            .durability(Some(::fjall::PersistMode::SyncAll));
        for (key, value) in pairs {
            batch.insert(&self.plain_data, key.to_vec(), value);
        }
        batch
            .commit()
            .map_err(|e| backend(self.name, "commit a write batch", &e))
    }
}

impl DurableEngine for RawFjall {
    fn name(&self) -> &'static str {
        self.name
    }

    fn blind(&self, accounts: &Accounts, writes: &[(u64, i64)]) -> Result<u64> {
        for &write in writes {
            self.put_plain(encode_all(accounts, &[write])?)?;
        }
        Ok(0)
    }

    fn transfer(&self, accounts: &Accounts, moves: &[Transfer]) -> Result<u64> {
        use ::fjall::Readable;
        let mut aborts = 0;
        for m in moves {
            loop {
                let mut txn = self
                    .tx
                    .write_tx()
                    .map_err(|e| backend(self.name, "begin a transaction", &e))?
                    .durability(Some(::fjall::PersistMode::SyncAll));
                let balance = |account: u64| -> Result<i64> {
                    let value = txn
                        .get(&self.tx_data, key_bytes(account))
                        .map_err(|e| backend(self.name, "get", &e))?
                        .ok_or_else(|| {
                            MissingKeySnafu {
                                engine: self.name,
                                key: account,
                            }
                            .build()
                        })?;
                    decode_balance(self.name, &value)
                };
                let (from, to) = (balance(m.from)?, balance(m.to)?);
                for (account, value) in [(m.from, from - m.amount), (m.to, to + m.amount)] {
                    txn.insert(
                        &self.tx_data,
                        key_bytes(account).to_vec(),
                        accounts.stored(account, value, 1)?,
                    );
                }
                let committed = txn
                    .commit()
                    .map_err(|e| backend(self.name, "commit a transaction", &e))?;
                if committed.is_ok() {
                    break;
                }
                aborts += 1;
                std::thread::yield_now();
            }
        }
        Ok(aborts)
    }

    fn total_balance(&self, accounts: u64) -> Result<i64> {
        use ::fjall::Readable;
        let snapshot = self.tx.read_tx();
        sum_balances(self.name, accounts, |key| {
            snapshot
                .get(&self.tx_data, key)
                .map_err(|e| backend(self.name, "get", &e))
        })
    }

    fn load_bulk(&self, accounts: &Accounts, writes: &[(u64, i64)]) -> Result<()> {
        let pairs = encode_all(accounts, writes)?;
        let mut txn = self
            .tx
            .write_tx()
            .map_err(|e| backend(self.name, "begin a transaction", &e))?
            .durability(Some(::fjall::PersistMode::SyncAll));
        for (key, value) in &pairs {
            txn.insert(&self.tx_data, key.to_vec(), value.clone());
        }
        match txn
            .commit()
            .map_err(|e| backend(self.name, "commit a transaction", &e))?
        {
            Ok(()) => {}
            Err(::fjall::Conflict) => {
                return Err(backend(
                    self.name,
                    "load",
                    &std::io::Error::other("a conflict while loading alone"),
                ));
            }
        }
        self.put_plain(pairs)
    }
}

/// canopydb's tree of the raw engine.
const CANOPY_TREE: &[u8] = b"data";

/// Raw canopydb: concurrent write transactions committed with
/// `commit_with(true)` (appended to its write-ahead log and synced; its
/// group commit shares the sync).
struct RawCanopy {
    name: &'static str,
    db: ::canopydb::Database,
}

impl RawCanopy {
    fn open(name: &'static str, dir: &Path) -> Result<Self> {
        let mut env = ::canopydb::EnvOptions::new(dir);
        // The crate's default can be flipped at build time by an
        // environment variable: ask for syncs explicitly.
        env.disable_fsync = false;
        let db = ::canopydb::Database::with_options(env, ::canopydb::DbOptions::default())
            .map_err(|e| backend(name, "open a canopydb database", &e))?;
        let txn = db
            .begin_write()
            .map_err(|e| backend(name, "begin a write transaction", &e))?;
        drop(
            txn.get_or_create_tree(CANOPY_TREE)
                .map_err(|e| backend(name, "create the tree", &e))?,
        );
        txn.commit_with(true)
            .map_err(|e| backend(name, "commit", &e))?;
        Ok(Self { name, db })
    }

    /// Runs `body` in concurrent write transactions until one commits;
    /// returns the conflicts.
    fn concurrent(
        &self,
        mut body: impl FnMut(&mut ::canopydb::Tree<'_>) -> Result<()>,
    ) -> Result<u64> {
        let mut aborts = 0;
        loop {
            let txn = self
                .db
                .begin_write_concurrent()
                .map_err(|e| backend(self.name, "begin a write transaction", &e))?;
            {
                let mut tree = txn
                    .get_tree(CANOPY_TREE)
                    .map_err(|e| backend(self.name, "open the tree", &e))?
                    .ok_or_else(|| {
                        backend(
                            self.name,
                            "open the tree",
                            &std::io::Error::other("no tree"),
                        )
                    })?;
                body(&mut tree)?;
            }
            match txn.commit_with(true) {
                Ok(_) => return Ok(aborts),
                Err(::canopydb::Error::WriteConflict) => {
                    aborts += 1;
                    std::thread::yield_now();
                }
                Err(e) => return Err(backend(self.name, "commit", &e)),
            }
        }
    }
}

impl DurableEngine for RawCanopy {
    fn name(&self) -> &'static str {
        self.name
    }

    fn blind(&self, accounts: &Accounts, writes: &[(u64, i64)]) -> Result<u64> {
        let mut aborts = 0;
        for &write in writes {
            let pairs = encode_all(accounts, &[write])?;
            aborts += self.concurrent(|tree| {
                for (key, value) in &pairs {
                    tree.insert(key, value)
                        .map_err(|e| backend(self.name, "insert", &e))?;
                }
                Ok(())
            })?;
        }
        Ok(aborts)
    }

    fn transfer(&self, accounts: &Accounts, moves: &[Transfer]) -> Result<u64> {
        let mut aborts = 0;
        for m in moves {
            aborts += self.concurrent(|tree| {
                let balance = |tree: &::canopydb::Tree<'_>, account: u64| -> Result<i64> {
                    let value = tree
                        .get(&key_bytes(account))
                        .map_err(|e| backend(self.name, "get", &e))?
                        .ok_or_else(|| {
                            MissingKeySnafu {
                                engine: self.name,
                                key: account,
                            }
                            .build()
                        })?;
                    decode_balance(self.name, &value)
                };
                let (from, to) = (balance(tree, m.from)?, balance(tree, m.to)?);
                for (account, value) in [(m.from, from - m.amount), (m.to, to + m.amount)] {
                    tree.insert(&key_bytes(account), &accounts.stored(account, value, 1)?)
                        .map_err(|e| backend(self.name, "insert", &e))?;
                }
                Ok(())
            })?;
        }
        Ok(aborts)
    }

    fn total_balance(&self, accounts: u64) -> Result<i64> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| backend(self.name, "begin a read transaction", &e))?;
        let tree = txn
            .get_tree(CANOPY_TREE)
            .map_err(|e| backend(self.name, "open the tree", &e))?
            .ok_or_else(|| {
                backend(
                    self.name,
                    "open the tree",
                    &std::io::Error::other("no tree"),
                )
            })?;
        sum_balances(self.name, accounts, |key| {
            tree.get(key).map_err(|e| backend(self.name, "get", &e))
        })
    }

    fn load_bulk(&self, accounts: &Accounts, writes: &[(u64, i64)]) -> Result<()> {
        let pairs = encode_all(accounts, writes)?;
        let txn = self
            .db
            .begin_write()
            .map_err(|e| backend(self.name, "begin a write transaction", &e))?;
        {
            let mut tree = txn
                .get_tree(CANOPY_TREE)
                .map_err(|e| backend(self.name, "open the tree", &e))?
                .ok_or_else(|| {
                    backend(
                        self.name,
                        "open the tree",
                        &std::io::Error::other("no tree"),
                    )
                })?;
            for (key, value) in &pairs {
                tree.insert(key, value)
                    .map_err(|e| backend(self.name, "insert", &e))?;
            }
        }
        txn.commit_with(true)
            .map_err(|e| backend(self.name, "commit", &e))?;
        Ok(())
    }
}
