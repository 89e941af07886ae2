//! Khonsu at one isolation level.

use std::sync::Arc;

use ::khonsu::{
    Key, Khonsu, SerializableValidation, Transaction, TransactionIsolation, TransactionOptions,
};
use arrow_array::RecordBatch;
use snafu::{OptionExt, ResultExt};

use super::{Done, Engine, load_chunks, rows_of};
use crate::error::{Error, KhonsuSnafu, NotACounterSnafu, Result};
use crate::values::{Counter, ValuePool};
use crate::workloads::{Op, is_read_only};

/// Retries of `atomically` before a conflict is reported as a failure:
/// effectively "until it commits", but bounded so a livelock fails loudly.
const MAX_RETRIES: u32 = 100_000;

/// Khonsu with every transaction at one isolation level and the default
/// `Fail` conflict resolution. Reads that need no writes run in read-only
/// transactions; writers go through [`Khonsu::atomically`], the library's
/// own retry loop with backoff.
#[derive(Debug)]
pub struct KhonsuEngine {
    name: &'static str,
    db: Khonsu,
    read_only: TransactionOptions,
}

impl KhonsuEngine {
    /// A Khonsu engine called `name` at `isolation`, loaded with keys
    /// `0..keys`.
    ///
    /// # Errors
    /// [`Error::Khonsu`] if building or loading fails.
    pub fn new(
        name: &'static str,
        isolation: TransactionIsolation,
        keys: u64,
        pool: &ValuePool,
    ) -> Result<Self> {
        Self::with_validation(name, isolation, SerializableValidation::Precise, keys, pool)
    }

    /// As [`new`](Self::new), with `Serializable` validating as
    /// `validation` says.
    ///
    /// # Errors
    /// [`Error::Khonsu`] if building or loading fails.
    pub fn with_validation(
        name: &'static str,
        isolation: TransactionIsolation,
        validation: SerializableValidation,
        keys: u64,
        pool: &ValuePool,
    ) -> Result<Self> {
        let db = Khonsu::builder()
            .isolation(isolation)
            .serializable_validation(validation)
            .max_retries(MAX_RETRIES)
            .build()
            .context(KhonsuSnafu {
                engine: name,
                operation: "build",
            })?;
        for (start, end) in load_chunks(keys) {
            let mut txn = db.start_transaction();
            for key in start..end {
                txn.write(Key::from(key), Arc::clone(pool.for_key(key)))
                    .context(KhonsuSnafu {
                        engine: name,
                        operation: "load",
                    })?;
            }
            txn.commit().context(KhonsuSnafu {
                engine: name,
                operation: "load",
            })?;
        }
        Ok(Self {
            name,
            db,
            read_only: TransactionOptions::new().read_only(true),
        })
    }

    /// The database handle.
    #[must_use]
    pub fn db(&self) -> &Khonsu {
        &self.db
    }

    /// Runs `body` in a read-only transaction and commits it.
    fn read_txn<T>(
        &self,
        operation: &'static str,
        body: impl FnOnce(&mut Transaction) -> ::khonsu::Result<T>,
    ) -> Result<T> {
        let mut txn = self.db.start_transaction_with(self.read_only);
        let value = body(&mut txn).context(KhonsuSnafu {
            engine: self.name,
            operation,
        })?;
        txn.commit().context(KhonsuSnafu {
            engine: self.name,
            operation,
        })?;
        Ok(value)
    }

    /// Runs `body` in `atomically` and counts its aborted attempts.
    fn write_txn(
        &self,
        operation: &'static str,
        mut body: impl FnMut(&mut Transaction) -> ::khonsu::Result<u64>,
    ) -> Result<Done> {
        let mut attempts = 0_u64;
        let rows = self
            .db
            .atomically(|txn| {
                attempts += 1;
                body(txn)
            })
            .context(KhonsuSnafu {
                engine: self.name,
                operation,
            })?;
        Ok(Done {
            rows,
            aborts: attempts.saturating_sub(1),
        })
    }
}

impl Engine for KhonsuEngine {
    fn name(&self) -> &'static str {
        self.name
    }

    fn get(&self, key: u64) -> Result<Done> {
        let rows = self.read_txn("read", |txn| {
            Ok(rows_of(txn.read(key.to_be_bytes())?.as_deref()))
        })?;
        Ok(Done { rows, aborts: 0 })
    }

    fn put(&self, key: u64, value: &Arc<RecordBatch>) -> Result<Done> {
        // The pool's `Arc` itself is stored, as in every other engine.
        self.write_txn("write", |txn| {
            txn.write(Key::from(key), Arc::clone(value))?;
            Ok(0)
        })
    }

    fn increment(&self, key: u64, counter: &Counter) -> Result<Done> {
        let mut failure: Option<Error> = None;
        let done = self.write_txn("increment", |txn| {
            let current = txn.read(key.to_be_bytes())?;
            let next = current
                .as_deref()
                .and_then(Counter::value)
                .context(NotACounterSnafu {
                    engine: self.name,
                    key,
                })
                .and_then(|n| counter.batch(n + 1));
            match next {
                Ok(batch) => {
                    txn.write(Key::from(key), batch)?;
                    Ok(1)
                }
                Err(error) => {
                    failure = Some(error);
                    Err(::khonsu::Error::abort("increment: no counter to increment"))
                }
            }
        });
        match failure {
            Some(error) => Err(error),
            None => done,
        }
    }

    fn execute(&self, ops: &[Op<'_>]) -> Result<Done> {
        if is_read_only(ops) {
            let rows = self.read_txn("ycsb read", |txn| {
                let mut rows = 0;
                for op in ops {
                    rows += rows_of(txn.read(op.key().to_be_bytes())?.as_deref());
                }
                Ok(rows)
            })?;
            return Ok(Done { rows, aborts: 0 });
        }
        self.write_txn("ycsb", |txn| {
            let mut rows = 0;
            for op in ops {
                match *op {
                    Op::Read(key) => rows += rows_of(txn.read(key.to_be_bytes())?.as_deref()),
                    Op::Update(key, value) => {
                        txn.write(Key::from(key), Arc::clone(value))?;
                    }
                }
            }
            Ok(rows)
        })
    }

    fn scan(&self, start: u64, len: u64) -> Result<Done> {
        let rows = self.read_txn("scan", |txn| {
            let found = txn.scan(Key::from(start)..Key::from(start.saturating_add(len)))?;
            Ok(found.iter().map(|(_, batch)| rows_of(Some(batch))).sum())
        })?;
        Ok(Done { rows, aborts: 0 })
    }

    fn supports(&self, _workload: crate::workloads::Workload) -> bool {
        true
    }

    fn skew(&self, write: u64, read: u64, value: &Arc<RecordBatch>) -> Result<Done> {
        self.write_txn("skew", |txn| {
            let rows = rows_of(txn.read(write.to_be_bytes())?.as_deref())
                + rows_of(txn.read(read.to_be_bytes())?.as_deref());
            txn.write(Key::from(write), Arc::clone(value))?;
            Ok(rows)
        })
    }

    fn match_order(&self, levels: u64, fill: u64, value: &Arc<RecordBatch>) -> Result<Done> {
        self.write_txn("match", |txn| {
            let book = txn.scan(Key::from(0_u64)..Key::from(levels))?;
            let rows = book.iter().map(|(_, batch)| rows_of(Some(batch))).sum();
            txn.write(Key::from(fill), Arc::clone(value))?;
            Ok(rows)
        })
    }

    fn read_counter(&self, key: u64) -> Result<i64> {
        let value = self.read_txn("read counter", |txn| txn.read(key.to_be_bytes()))?;
        value
            .as_deref()
            .and_then(Counter::value)
            .context(NotACounterSnafu {
                engine: self.name,
                key,
            })
    }
}
