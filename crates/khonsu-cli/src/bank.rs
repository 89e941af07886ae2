//! The bank: accounts as Arrow batches in a Khonsu database, the bank's own
//! record, and the operations on them — create or resume the bank
//! ([`Bank::open`]), one transfer attempt, one audit. The threads that run
//! them live in [`run`](crate::run).
//!
//! # Data model
//!
//! Account `id` (`0..accounts`) is stored under `Key::from(id)` (8 big-endian
//! bytes, so a scan visits accounts in id order) as a one-row batch
//! `{account: UInt64, balance: Int64}`. Only `ConflictResolution::Append` can make
//! a batch hold several rows (our rows after the concurrently committed ones); the
//! account's balance is then its **last** row, the most recently appended one.
//!
//! The bank's record, [`BankMeta`], is the one-row batch
//! `{accounts: UInt64, initial_balance: Int64, initial_total: Int64, runs: UInt64}`
//! under [`META_KEY`] (`b"demo/meta"`: 9 bytes, never an account key), written in
//! the transaction that creates the accounts, so a store holds either a whole
//! bank or none. Audits scan the key range `Key::from(0)..Key::from(accounts)`,
//! which holds exactly the accounts: every id below `2^56` starts with a zero
//! byte, and the record's key starts with `d`, so it sorts after the range.
//!
//! # Opening
//!
//! [`Bank::open`] runs one transaction: it reads the record and scans the
//! store. Without a record, the store must be empty: the accounts are created
//! with the record (`runs` 1). With one, every key must be the record or one of
//! its accounts, each account's batch must decode, and `runs` is incremented;
//! the balances are those the last run left. Anything else is an error, never a
//! half-adopted store.
//!
//! # Transfers
//!
//! A transfer reads both accounts, moves `min(amount, payer's balance)` (so no
//! balance ever goes below zero) and writes both. On a retryable conflict the
//! caller drops the transaction (rolls back), counts the abort by kind, and
//! retries the same transfer with fresh reads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::types::{Int64Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, Int64Array, PrimitiveArray, RecordBatch, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use khonsu::prelude::*;
use khonsu::storage::display_key;
use snafu::{OptionExt, ResultExt, ensure};

use crate::config::{NewBank, StorageChoice};
use crate::error::{
    AuditSnafu, BalanceOverflowSnafu, BankTooLargeSnafu, BuildBatchSnafu, BuildMetaSnafu,
    DamagedBankSnafu, MalformedAccountSnafu, MissingAccountSnafu, NotABankSnafu, OpenBankSnafu,
    Result, TransferSnafu, UnexpectedKeySnafu,
};
use crate::report::Holdings;

/// The key of the bank's record: 9 bytes, so no account key (8 bytes) equals it.
pub(crate) const META_KEY: &[u8] = b"demo/meta";

/// The bank's own record, stored under [`META_KEY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BankMeta {
    /// Number of accounts, `0..accounts`.
    pub(crate) accounts: u64,
    /// Starting balance of each account when the bank was created.
    pub(crate) initial_balance: i64,
    /// `accounts * initial_balance`: the total every run must conserve.
    pub(crate) initial_total: i64,
    /// Runs started on this bank, this one included.
    pub(crate) runs: u64,
}

impl BankMeta {
    /// The record of a new bank, created by its first run.
    fn new(accounts: u64, initial_balance: i64) -> Result<Self> {
        let initial_total = i64::try_from(accounts)
            .ok()
            .and_then(|n| n.checked_mul(initial_balance))
            .context(BankTooLargeSnafu {
                accounts,
                initial_balance,
            })?;
        Ok(Self {
            accounts,
            initial_balance,
            initial_total,
            runs: 1,
        })
    }

    /// What an audit of the bank as created sees.
    pub(crate) fn initial(&self) -> Holdings {
        Holdings {
            accounts: self.accounts,
            total: i128::from(self.initial_total),
        }
    }

    /// The schema of the record's batch.
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("accounts", DataType::UInt64, false),
            Field::new("initial_balance", DataType::Int64, false),
            Field::new("initial_total", DataType::Int64, false),
            Field::new("runs", DataType::UInt64, false),
        ]))
    }

    /// The record as a one-row batch.
    fn to_batch(self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(vec![self.accounts])),
            Arc::new(Int64Array::from(vec![self.initial_balance])),
            Arc::new(Int64Array::from(vec![self.initial_total])),
            Arc::new(UInt64Array::from(vec![self.runs])),
        ];
        RecordBatch::try_new(Self::schema(), columns).context(BuildMetaSnafu)
    }

    /// Reads a record back, or says what is wrong with the batch.
    fn from_batch(batch: &RecordBatch) -> Result<Self, String> {
        if batch.num_rows() != 1 {
            return Err(format!(
                "its record has {} rows instead of 1",
                batch.num_rows()
            ));
        }
        let meta = Self {
            accounts: only_value::<UInt64Type>(batch, "accounts")?,
            initial_balance: only_value::<Int64Type>(batch, "initial_balance")?,
            initial_total: only_value::<Int64Type>(batch, "initial_total")?,
            runs: only_value::<UInt64Type>(batch, "runs")?,
        };
        let consistent = Self::new(meta.accounts, meta.initial_balance)
            .is_ok_and(|new| new.initial_total == meta.initial_total);
        if meta.accounts < 2 || meta.initial_balance < 0 || !consistent || meta.runs == 0 {
            return Err(format!("its record is inconsistent: {meta:?}"));
        }
        Ok(meta)
    }
}

/// The value of the one-row, non-null column `name` of Arrow type `T` in `batch`.
fn only_value<T: ArrowPrimitiveType>(batch: &RecordBatch, name: &str) -> Result<T::Native, String> {
    let column = batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<PrimitiveArray<T>>())
        .ok_or_else(|| format!("its record has no {} column `{name}`", T::DATA_TYPE))?;
    column
        .iter()
        .next()
        .flatten()
        .filter(|_| column.len() == 1)
        .ok_or_else(|| format!("its record's `{name}` is not one value"))
}

/// What [`Bank::open`] found: the bank's record and the state this run starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BankState {
    /// The record, with this run counted.
    pub(crate) meta: BankMeta,
    /// Runs started on this bank before this one (0: this run created it).
    pub(crate) runs_before: u64,
    /// What an audit saw when this run started: the bank as the last run left it.
    pub(crate) start: Holdings,
}

impl BankState {
    /// Whether this run resumed a bank that an earlier run created.
    pub(crate) fn resumed(&self) -> bool {
        self.runs_before > 0
    }
}

/// The Arrow schema of an account batch.
fn account_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("account", DataType::UInt64, false),
        Field::new("balance", DataType::Int64, false),
    ]))
}

/// The account id stored under `key` (the inverse of `Key::from(u64)`).
fn account_of(key: &Key) -> Result<u64> {
    <[u8; 8]>::try_from(key.as_bytes())
        .ok()
        .map(u64::from_be_bytes)
        .context(UnexpectedKeySnafu {
            key: key.as_bytes().to_vec(),
        })
}

/// The balance of `account` held in `batch`: its last row (see the module docs).
/// Errors instead of panicking on any batch this binary did not write.
pub(crate) fn balance_of(account: u64, batch: &RecordBatch) -> Result<i64> {
    let ids = batch
        .column_by_name("account")
        .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
        .context(MalformedAccountSnafu {
            account,
            reason: "it has no UInt64 column `account`",
        })?;
    let balances = batch
        .column_by_name("balance")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .context(MalformedAccountSnafu {
            account,
            reason: "it has no Int64 column `balance`",
        })?;
    ensure!(
        ids.iter().all(|id| id == Some(account)),
        MalformedAccountSnafu {
            account,
            reason: "its `account` column holds other ids",
        }
    );
    balances
        .iter()
        .last()
        .flatten()
        .context(MalformedAccountSnafu {
            account,
            reason: "it has no rows or a null balance",
        })
}

/// The database plus the account table's shape.
pub(crate) struct Bank {
    /// The engine.
    db: Khonsu,
    /// Schema of every account batch.
    schema: SchemaRef,
    /// Number of accounts, `0..accounts`.
    accounts: u64,
}

impl Bank {
    /// Creates the bank `new` describes in `db`, or resumes the bank `db` already
    /// holds (see the module docs); `store` names where it lives, for errors.
    ///
    /// # Errors
    /// [`Error::NotABank`] when `db` holds keys but no bank record,
    /// [`Error::DamagedBank`] when its keys do not match its record, and engine
    /// errors of the opening transaction.
    pub(crate) fn open(
        db: Khonsu,
        new: NewBank,
        store: &StorageChoice,
    ) -> Result<(Self, BankState)> {
        let label = store.to_string();
        let step = |step: &'static str| OpenBankSnafu {
            store: label.clone(),
            step,
        };
        let schema = account_schema();
        let mut t = db.start_transaction();
        let record = t.read(META_KEY).context(step("read the record of"))?;
        let keys = t.scan(..).context(step("scan"))?;
        let state = match record {
            None => {
                if let Some((first, _)) = keys.first() {
                    return NotABankSnafu {
                        store: label.clone(),
                        keys: keys.len(),
                        meta_key: display_key(META_KEY),
                        first_key: display_key(first.as_bytes()),
                    }
                    .fail();
                }
                let meta = BankMeta::new(new.accounts(), new.initial_balance())?;
                for account in 0..meta.accounts {
                    let batch = account_batch(&schema, account, meta.initial_balance)?;
                    t.write(Key::from(account), batch).context(step("write"))?;
                }
                t.write(Key::from(META_KEY), meta.to_batch()?)
                    .context(step("write"))?;
                BankState {
                    meta,
                    runs_before: 0,
                    start: meta.initial(),
                }
            }
            Some(record) => {
                let damaged = |reason: String| {
                    DamagedBankSnafu {
                        store: label.clone(),
                        reason,
                    }
                    .build()
                };
                let stored = BankMeta::from_batch(&record).map_err(damaged)?;
                let start = sum_accounts(&keys, stored.accounts).map_err(damaged)?;
                let meta = BankMeta {
                    runs: stored.runs.saturating_add(1),
                    ..stored
                };
                t.write(Key::from(META_KEY), meta.to_batch()?)
                    .context(step("write"))?;
                BankState {
                    meta,
                    runs_before: stored.runs,
                    start,
                }
            }
        };
        t.commit().context(step("commit"))?;
        let accounts = state.meta.accounts;
        Ok((
            Self {
                db,
                schema,
                accounts,
            },
            state,
        ))
    }

    /// The engine.
    pub(crate) fn db(&self) -> &Khonsu {
        &self.db
    }

    /// Number of accounts, `0..accounts`.
    pub(crate) fn accounts(&self) -> u64 {
        self.accounts
    }

    /// The one-row batch of `account` holding `balance`.
    fn batch(&self, account: u64, balance: i64) -> Result<RecordBatch> {
        account_batch(&self.schema, account, balance)
    }

    /// One attempt at moving up to `wanted` from `from` to `to`. Returns how long
    /// the successful `commit` call took (with persistence, the durable write and
    /// its sync included).
    pub(crate) fn transfer_once(&self, from: u64, to: u64, wanted: i64) -> Result<Duration> {
        let mut t = self.db.start_transaction();
        let mut read = |account: u64| -> Result<i64> {
            let batch = t
                .read(Key::from(account))
                .context(TransferSnafu {
                    from,
                    to,
                    step: "read",
                })?
                .context(MissingAccountSnafu { account })?;
            balance_of(account, &batch)
        };
        let from_balance = read(from)?;
        let to_balance = read(to)?;
        // Never below zero: an empty (or, impossibly, negative) payer moves 0.
        let amount = wanted.min(from_balance).max(0);
        let to_new = to_balance
            .checked_add(amount)
            .context(BalanceOverflowSnafu { account: to })?;
        for (account, balance) in [(from, from_balance - amount), (to, to_new)] {
            let batch = self.batch(account, balance)?;
            t.write(Key::from(account), batch).context(TransferSnafu {
                from,
                to,
                step: "write",
            })?;
        }
        let commit_started = Instant::now();
        t.commit().context(TransferSnafu {
            from,
            to,
            step: "commit",
        })?;
        Ok(commit_started.elapsed())
    }

    /// A read-only transaction that scans every account (and nothing else) and
    /// sums the balances.
    pub(crate) fn audit(&self) -> Result<Holdings> {
        let mut t = self.db.start_transaction_with(
            TransactionOptions::new()
                .isolation(self.db.isolation())
                .conflict_resolution(self.db.conflict_resolution())
                .read_only(true),
        );
        let rows = t
            .scan(Key::from(0_u64)..Key::from(self.accounts))
            .context(AuditSnafu { step: "scan" })?;
        let mut holdings = Holdings::default();
        for (key, batch) in &rows {
            let account = account_of(key)?;
            holdings.accounts += 1;
            holdings.total += i128::from(balance_of(account, batch)?);
        }
        t.commit().context(AuditSnafu { step: "commit" })?;
        Ok(holdings)
    }
}

/// The one-row batch of `account` holding `balance`.
fn account_batch(schema: &SchemaRef, account: u64, balance: i64) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(vec![account])),
        Arc::new(Int64Array::from(vec![balance])),
    ];
    RecordBatch::try_new(Arc::clone(schema), columns).context(BuildBatchSnafu { account })
}

/// Sums the accounts among `keys` (a scan of the whole store), checking that
/// every key is the record or an account below `accounts`, that each account's
/// batch decodes, and that all `accounts` are there; else says what is wrong.
fn sum_accounts(keys: &[(Key, Arc<RecordBatch>)], accounts: u64) -> Result<Holdings, String> {
    let mut holdings = Holdings::default();
    for (key, batch) in keys {
        if key.as_bytes() == META_KEY {
            continue;
        }
        let account = account_of(key).map_err(|_| {
            format!(
                "it holds the key {}, which is neither an account nor the bank's record",
                display_key(key.as_bytes())
            )
        })?;
        if account >= accounts {
            return Err(format!(
                "it holds account {account}, but its record says accounts 0..{accounts}"
            ));
        }
        let balance = balance_of(account, batch).map_err(|e| e.to_string())?;
        holdings.accounts += 1;
        holdings.total += i128::from(balance);
    }
    if holdings.accounts != accounts {
        return Err(format!(
            "it holds {} of the {accounts} accounts its record names",
            holdings.accounts
        ));
    }
    Ok(holdings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Adapter;
    use crate::error::Error;

    fn asked(accounts: u64, balance: i64) -> NewBank {
        NewBank {
            asked_accounts: Some(accounts),
            asked_balance: Some(balance),
        }
    }

    fn durable(dir: &std::path::Path) -> StorageChoice {
        StorageChoice::Durable {
            adapter: Adapter::Redb,
            dir: dir.to_path_buf(),
        }
    }

    fn balance(db: &Khonsu, account: u64) -> i64 {
        let batch = db
            .start_transaction()
            .read(Key::from(account))
            .unwrap()
            .unwrap();
        balance_of(account, &batch).unwrap()
    }

    #[test]
    fn a_new_bank_has_its_accounts_and_record() {
        let db = Khonsu::builder().build().unwrap();
        let (bank, state) = Bank::open(db, asked(20, 100), &StorageChoice::Memory).unwrap();
        assert!(!state.resumed());
        assert_eq!(
            state.meta,
            BankMeta {
                accounts: 20,
                initial_balance: 100,
                initial_total: 2000,
                runs: 1
            }
        );
        assert_eq!(state.start, state.meta.initial());
        // The audit sees the accounts only, not the record.
        assert_eq!(bank.audit().unwrap(), state.start);
        assert_eq!(bank.db().stats().keys, 21);
    }

    #[test]
    fn a_second_open_resumes_the_bank_as_it_was_left() {
        let dir = tempfile::tempdir().unwrap();
        let store = durable(dir.path());
        {
            let db = Khonsu::open(dir.path()).unwrap();
            let (bank, _) = Bank::open(db, asked(20, 100), &store).unwrap();
            bank.transfer_once(3, 4, 60).unwrap();
            bank.transfer_once(3, 5, 60).unwrap(); // capped at the 40 left
        }
        let db = Khonsu::open(dir.path()).unwrap();
        // Other flags: the stored bank wins.
        let (bank, state) = Bank::open(db, asked(50, 7), &store).unwrap();
        assert!(state.resumed());
        assert_eq!(state.runs_before, 1);
        assert_eq!(state.meta.runs, 2);
        assert_eq!((state.meta.accounts, state.meta.initial_total), (20, 2000));
        assert_eq!(state.start, state.meta.initial());
        assert_eq!(bank.accounts(), 20);
        assert_eq!(
            [3, 4, 5].map(|a| balance(bank.db(), a)),
            [0, 160, 140],
            "the balances the first run left"
        );
        drop(bank);
        let db = Khonsu::open(dir.path()).unwrap();
        let (_, state) = Bank::open(db, NewBank::default(), &store).unwrap();
        assert_eq!((state.runs_before, state.meta.runs), (2, 3));
    }

    #[test]
    fn a_store_without_a_record_is_not_a_bank() {
        let db = Khonsu::builder().build().unwrap();
        let mut t = db.start_transaction();
        t.write("x", account_batch(&account_schema(), 0, 1).unwrap())
            .unwrap();
        t.commit().unwrap();
        let err = Bank::open(db, asked(20, 100), &StorageChoice::Memory)
            .err()
            .unwrap();
        assert!(matches!(err, Error::NotABank { keys: 1, .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("does not hold a khonsu demo bank"), "{text}");
        assert!(text.contains("\"demo/meta\""), "{text}");
        assert!(text.contains("\"x\""), "{text}");
    }

    #[test]
    fn a_bank_whose_keys_do_not_match_its_record_is_damaged() {
        type Damage = fn(&mut Transaction);
        let cases: [(Damage, &str); 3] = [
            (
                |t| t.delete(Key::from(3_u64)).unwrap(),
                "holds 19 of the 20 accounts",
            ),
            (
                |t| {
                    t.write(
                        Key::from(25_u64),
                        account_batch(&account_schema(), 25, 1).unwrap(),
                    )
                    .unwrap();
                },
                "holds account 25",
            ),
            (
                |t| {
                    t.write("other", account_batch(&account_schema(), 0, 1).unwrap())
                        .unwrap();
                },
                "neither an account nor the bank's record",
            ),
        ];
        for (damage, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            let store = durable(dir.path());
            drop(Bank::open(Khonsu::open(dir.path()).unwrap(), asked(20, 100), &store).unwrap());
            {
                let db = Khonsu::open(dir.path()).unwrap();
                let mut t = db.start_transaction();
                damage(&mut t);
                t.commit().unwrap();
            }
            let err = Bank::open(Khonsu::open(dir.path()).unwrap(), asked(20, 100), &store)
                .err()
                .unwrap();
            assert!(matches!(err, Error::DamagedBank { .. }), "{err:?}");
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn the_record_round_trips_and_inconsistent_records_are_refused() {
        let meta = BankMeta::new(20, 100).unwrap();
        assert_eq!(BankMeta::from_batch(&meta.to_batch().unwrap()), Ok(meta));
        let bad = BankMeta {
            initial_total: 1999,
            ..meta
        };
        let err = BankMeta::from_batch(&bad.to_batch().unwrap()).unwrap_err();
        assert!(err.contains("inconsistent"), "{err}");
        let account = account_batch(&account_schema(), 0, 1).unwrap();
        let err = BankMeta::from_batch(&account).unwrap_err();
        assert!(err.contains("no UInt64 column `accounts`"), "{err}");
        assert!(BankMeta::new(1_000_000, i64::MAX).is_err());
    }

    fn batch(ids: Vec<u64>, balances: Vec<Option<i64>>) -> RecordBatch {
        RecordBatch::try_new(
            account_schema(),
            vec![
                Arc::new(UInt64Array::from(ids)),
                Arc::new(Int64Array::from(balances)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn balance_is_the_last_row() {
        assert_eq!(balance_of(3, &batch(vec![3], vec![Some(10)])).unwrap(), 10);
        assert_eq!(
            balance_of(3, &batch(vec![3, 3], vec![Some(10), Some(4)])).unwrap(),
            4
        );
    }

    #[test]
    fn malformed_batches_are_errors() {
        assert!(balance_of(3, &batch(vec![], vec![])).is_err());
        assert!(balance_of(3, &batch(vec![4], vec![Some(1)])).is_err());
        let other = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(vec![1]))],
        )
        .unwrap();
        assert!(balance_of(0, &other).is_err());
    }

    #[test]
    fn keys_round_trip() {
        assert_eq!(account_of(&Key::from(42_u64)).unwrap(), 42);
        assert!(account_of(&Key::from("acct/1")).is_err());
        assert!(account_of(&Key::from(META_KEY)).is_err());
        // The record sorts after every account key an audit scans.
        assert!(Key::from(META_KEY) > Key::from(1_000_000_u64));
    }
}
