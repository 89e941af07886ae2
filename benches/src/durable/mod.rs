//! The durable-storage benchmark's parts: durable commits per second of
//! Khonsu on redb and fjall against the raw stores a user would pick
//! instead, the `fdatasync` floor, and recovery.
//!
//! The driver is `src/bin/durable.rs`:
//!
//! ```text
//! cargo run --release -p khonsu-benches --bin durable -- --quick
//! ```
//!
//! * [`engines`]: the [`DurableEngine`] trait and one implementation per
//!   store — Khonsu over [`RedbStorage`](khonsu::RedbStorage) with and
//!   without group commit (and with redb's quick repair), Khonsu over
//!   [`FjallStorage`](khonsu::FjallStorage), raw redb one commit per
//!   transaction and hand-batched, fjall, canopydb. Every engine commits
//!   durably: its commit returns after `fdatasync`.
//! * [`cell`]: one measurement — committer threads started on a barrier, a
//!   fixed duration, per-thread CPU clocks.
//! * [`fsync`]: the physical floor, an append-and-`fdatasync` loop.
//! * [`recovery`]: the child-process phases of the recovery benchmark
//!   (fill a store, reopen it, write until killed).
//!
//! Every engine stores the same bytes for the same mutation: a fresh
//! one-row [`Accounts`] batch per write, encoded by Khonsu's own
//! [`codec`](khonsu::storage::codec) (checksummed header and Arrow IPC
//! stream), under the key's 8 big-endian bytes.

pub mod cell;
pub mod engines;
pub mod fsync;
pub mod recovery;

use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use khonsu::storage::codec::EncodedValue;
use snafu::ResultExt;

pub use cell::{DurableCell, run_durable_cell};
pub use engines::{DurableEngine, DurableKind, GroupCounters};

use crate::error::{ArrowSnafu, BackendSnafu, Result};

/// Accounts of the bank-transfer workload: keys `0..accounts`.
pub const DEFAULT_ACCOUNTS: u64 = 10_000;

/// The balance every account starts with.
pub const START_BALANCE: i64 = 1_000;

/// Keys of the blind-write workload start here (a range of their own, so
/// that blind writes never disturb the bank's invariant).
pub const BLIND_BASE: u64 = 1 << 32;

/// Commits per redb transaction of the hand-batched raw redb engine.
pub const HAND_BATCH: usize = 64;

/// The two durable workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DurableWorkload {
    /// One key per transaction, written without reading it, a fresh batch.
    Blind,
    /// Read two accounts, move an amount from one to the other, write both.
    Transfer,
}

impl DurableWorkload {
    /// Both, in report order.
    pub const ALL: [Self; 2] = [Self::Blind, Self::Transfer];

    /// The workload's name in tables and on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Blind => "blind",
            Self::Transfer => "transfer",
        }
    }

    /// The workload named `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == name)
    }

    /// One line on what a transaction does.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::Blind => {
                "one blind write per transaction: a fresh 1-row batch to a uniform key of its own range"
            }
            Self::Transfer => {
                "bank transfer: read two uniform accounts, write both (sum of balances checked)"
            }
        }
    }
}

/// The schema and batches of the benchmark: one row `{account: UInt64,
/// balance: Int64}` per key.
///
/// ```
/// use khonsu_benches::durable::Accounts;
///
/// let accounts = Accounts::new();
/// let batch = accounts.batch(7, -3)?;
/// assert_eq!(Accounts::balance(&batch), Some(-3));
/// assert!(accounts.stored(7, -3, 1)?.len() > 500);
/// # Ok::<(), khonsu_benches::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Accounts {
    schema: SchemaRef,
}

impl Default for Accounts {
    fn default() -> Self {
        Self::new()
    }
}

impl Accounts {
    /// The schema `{account: UInt64, balance: Int64}`, both non-null.
    #[must_use]
    pub fn new() -> Self {
        Self {
            schema: Arc::new(Schema::new(vec![
                Field::new("account", DataType::UInt64, false),
                Field::new("balance", DataType::Int64, false),
            ])),
        }
    }

    /// A fresh one-row batch (new column buffers every call).
    ///
    /// # Errors
    /// [`Error::Arrow`](crate::Error::Arrow) if the batch cannot be built.
    pub fn batch(&self, account: u64, balance: i64) -> Result<RecordBatch> {
        RecordBatch::try_new(
            Arc::clone(&self.schema),
            vec![
                Arc::new(UInt64Array::from(vec![account])),
                Arc::new(Int64Array::from(vec![balance])),
            ],
        )
        .context(ArrowSnafu { what: "account" })
    }

    /// A batch of `rows` rows (accounts `first..first + rows`, balance 1),
    /// for the recovery benchmark's large values.
    ///
    /// # Errors
    /// [`Error::Arrow`](crate::Error::Arrow) if the batch cannot be built.
    pub fn rows(&self, first: u64, rows: u64) -> Result<RecordBatch> {
        let len = usize::try_from(rows).unwrap_or(usize::MAX);
        RecordBatch::try_new(
            Arc::clone(&self.schema),
            vec![
                Arc::new(UInt64Array::from_iter_values(first..first + rows)),
                Arc::new(Int64Array::from(vec![1_i64; len])),
            ],
        )
        .context(ArrowSnafu { what: "large" })
    }

    /// The balance of a one-row account batch; `None` if `batch` is not one.
    #[must_use]
    pub fn balance(batch: &RecordBatch) -> Option<i64> {
        let column = batch.columns().get(1)?;
        let ints = column.as_any().downcast_ref::<Int64Array>()?;
        (ints.len() == 1 && ints.is_valid(0)).then(|| ints.value(0))
    }

    /// The bytes Khonsu stores for this account's batch at `commit_ts`
    /// (what the raw stores are given for the same mutation).
    ///
    /// # Errors
    /// [`Error::Arrow`](crate::Error::Arrow) or a codec failure.
    pub fn stored(&self, account: u64, balance: i64, commit_ts: u64) -> Result<Vec<u8>> {
        let batch = self.batch(account, balance)?;
        encode_stored(&batch, commit_ts)
    }
}

/// `batch` in Khonsu's stored encoding at `commit_ts`.
///
/// # Errors
/// [`Error::Backend`](crate::Error::Backend) if the codec refuses it.
pub fn encode_stored(batch: &RecordBatch, commit_ts: u64) -> Result<Vec<u8>> {
    EncodedValue::encode(batch)
        .map(|encoded| encoded.to_stored(commit_ts))
        .map_err(|e| backend("codec", "encode a value", &e))
}

/// The balance stored in `bytes` (Khonsu's encoding of a one-row batch).
///
/// # Errors
/// [`Error::Backend`](crate::Error::Backend) if the bytes do not decode to
/// an account batch.
/// The sum of the balances of accounts `0..accounts`, each read with `get`
/// (its stored value, or `None`: then the account is missing, an error).
///
/// # Errors
/// `get`'s error, a missing account, or a value that does not decode.
pub fn sum_balances<V: AsRef<[u8]>>(
    engine: &'static str,
    accounts: u64,
    mut get: impl FnMut(&[u8]) -> Result<Option<V>>,
) -> Result<i64> {
    let mut total = 0;
    for account in 0..accounts {
        let value = get(&key_bytes(account))?.ok_or_else(|| {
            crate::error::MissingKeySnafu {
                engine,
                key: account,
            }
            .build()
        })?;
        total += decode_balance(engine, value.as_ref())?;
    }
    Ok(total)
}

/// The balance a stored value holds.
///
/// # Errors
/// A value that does not decode, or holds no balance.
pub fn decode_balance(engine: &'static str, bytes: &[u8]) -> Result<i64> {
    let (_, batch) = khonsu::storage::codec::decode_stored(bytes).map_err(|error| {
        BackendSnafu {
            engine,
            operation: "decode a value",
            message: error.to_string(),
        }
        .build()
    })?;
    Accounts::balance(&batch).ok_or_else(|| {
        BackendSnafu {
            engine,
            operation: "read a balance",
            message: "the value is not a one-row account batch".to_owned(),
        }
        .build()
    })
}

/// A key's bytes as every engine stores them (Khonsu's `Key::from(u64)`:
/// big-endian).
#[must_use]
pub fn key_bytes(key: u64) -> [u8; 8] {
    key.to_be_bytes()
}

/// An error of store `engine` in `operation`, with its whole source chain.
pub(crate) fn backend(
    engine: &'static str,
    operation: &'static str,
    error: &dyn std::error::Error,
) -> crate::Error {
    BackendSnafu {
        engine,
        operation,
        message: error_chain(error),
    }
    .build()
}

/// `error` and its sources, joined by `: `.
#[must_use]
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let next = inner.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{Accounts, decode_balance, encode_stored, key_bytes};

    #[test]
    fn the_value_is_the_size_the_issue_names() -> Result<(), crate::Error> {
        let accounts = Accounts::new();
        let batch = accounts.batch(42, 1_000)?;
        let stored = encode_stored(&batch, 9)?;
        // 24-byte header + the IPC stream (schema, batch, end marker).
        assert_eq!(stored.len(), 24 + 584, "{}", stored.len());
        assert_eq!(decode_balance("t", &stored)?, 1_000);
        assert_eq!(
            khonsu::Key::from(42_u64).as_bytes(),
            key_bytes(42).as_slice()
        );
        Ok(())
    }
}
