//! rust-stm 0.4: the classic Rust STM, one `TVar` per key.
//!
//! There is no map: key `k` is `vars[k]`, a scan reads consecutive `TVar`s.
//! rust-stm retries a transaction whose reads went stale by itself; the
//! engine counts the extra runs of the body as aborts. The body never calls
//! `retry` except to give up on a missing key, which the control function
//! turns into an abort.

use std::cell::Cell;
use std::sync::Arc;

use arrow_array::RecordBatch;
use snafu::OptionExt;
use stm::{StmResult, TVar, Transaction, TransactionControl};

use super::{Done, Engine, batch_rows};
use crate::error::{Error, MissingKeySnafu, NotACounterSnafu, Result};
use crate::values::{Counter, ValuePool};
use crate::workloads::Op;

const NAME: &str = "stm";

/// A `Vec<TVar<Arc<RecordBatch>>>` indexed by key.
pub struct StmEngine {
    vars: Vec<TVar<Arc<RecordBatch>>>,
}

impl std::fmt::Debug for StmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StmEngine")
            .field("keys", &self.vars.len())
            .finish_non_exhaustive()
    }
}

impl StmEngine {
    /// One `TVar` per key in `0..keys`.
    #[must_use]
    pub fn new(keys: u64, pool: &ValuePool) -> Self {
        Self {
            vars: (0..keys)
                .map(|key| TVar::new(Arc::clone(pool.for_key(key))))
                .collect(),
        }
    }

    fn var(&self, key: u64) -> Option<&TVar<Arc<RecordBatch>>> {
        usize::try_from(key).ok().and_then(|i| self.vars.get(i))
    }

    fn missing(key: u64) -> Error {
        MissingKeySnafu { engine: NAME, key }.build()
    }

    /// Runs `body` atomically; `Ok(None)` when the body gave up by
    /// calling `retry` (a missing key or a bad counter). Counts the body's
    /// runs in `attempts`.
    fn atomically<T>(
        attempts: &Cell<u64>,
        body: impl Fn(&mut Transaction) -> StmResult<T>,
    ) -> Option<T> {
        Transaction::with_control(
            |_| TransactionControl::Abort,
            |txn| {
                attempts.set(attempts.get() + 1);
                body(txn)
            },
        )
    }
}

impl Engine for StmEngine {
    fn name(&self) -> &'static str {
        NAME
    }

    fn get(&self, key: u64) -> Result<Done> {
        let Some(var) = self.var(key) else {
            return Ok(Done::default()); // an absent key reads as nothing
        };
        let attempts = Cell::new(0);
        let rows = Self::atomically(&attempts, |txn| Ok(batch_rows(&*var.read(txn)?)))
            .with_context(|| MissingKeySnafu { engine: NAME, key })?;
        Ok(Done {
            rows,
            aborts: attempts.get().saturating_sub(1),
        })
    }

    fn put(&self, key: u64, value: &Arc<RecordBatch>) -> Result<Done> {
        let var = self
            .var(key)
            .with_context(|| MissingKeySnafu { engine: NAME, key })?;
        let attempts = Cell::new(0);
        Self::atomically(&attempts, |txn| var.write(txn, Arc::clone(value)))
            .with_context(|| MissingKeySnafu { engine: NAME, key })?;
        Ok(Done {
            rows: 0,
            aborts: attempts.get().saturating_sub(1),
        })
    }

    fn increment(&self, key: u64, counter: &Counter) -> Result<Done> {
        let var = self
            .var(key)
            .with_context(|| MissingKeySnafu { engine: NAME, key })?;
        let attempts = Cell::new(0);
        let failure: Cell<Option<Error>> = Cell::new(None);
        let committed = Self::atomically(&attempts, |txn| {
            let current = var.read(txn)?;
            let next = Counter::value(&current)
                .context(NotACounterSnafu { engine: NAME, key })
                .and_then(|n| counter.batch(n + 1));
            match next {
                Ok(batch) => var.write(txn, Arc::new(batch)),
                Err(error) => {
                    failure.set(Some(error));
                    stm::retry()
                }
            }
        });
        if let Some(error) = failure.take() {
            return Err(error);
        }
        committed.with_context(|| NotACounterSnafu { engine: NAME, key })?;
        Ok(Done {
            rows: 1,
            aborts: attempts.get().saturating_sub(1),
        })
    }

    fn execute(&self, ops: &[Op<'_>]) -> Result<Done> {
        let attempts = Cell::new(0);
        let rows = Self::atomically(&attempts, |txn| {
            let mut rows = 0;
            for op in ops {
                match (*op, self.var(op.key())) {
                    (Op::Read(_), Some(var)) => rows += batch_rows(&*var.read(txn)?),
                    (Op::Read(_), None) => {} // an absent key reads as nothing
                    (Op::Update(_, value), Some(var)) => var.write(txn, Arc::clone(value))?,
                    (Op::Update(..), None) => return stm::retry(), // no TVar to write: give up
                }
            }
            Ok(rows)
        });
        let Some(rows) = rows else {
            let key = ops
                .iter()
                .filter(|op| !op.is_read())
                .map(Op::key)
                .find(|key| self.var(*key).is_none())
                .unwrap_or_default();
            return Err(Self::missing(key));
        };
        Ok(Done {
            rows,
            aborts: attempts.get().saturating_sub(1),
        })
    }

    fn scan(&self, start: u64, len: u64) -> Result<Done> {
        let end = start.saturating_add(len);
        let first = usize::try_from(start).unwrap_or(usize::MAX);
        let last = usize::try_from(end).unwrap_or(usize::MAX);
        let vars = self
            .vars
            .get(first..last.min(self.vars.len()))
            .with_context(|| MissingKeySnafu {
                engine: NAME,
                key: start,
            })?;
        let attempts = Cell::new(0);
        let rows = Self::atomically(&attempts, |txn| {
            let mut rows = 0;
            for var in vars {
                rows += batch_rows(&*var.read(txn)?);
            }
            Ok(rows)
        })
        .with_context(|| MissingKeySnafu {
            engine: NAME,
            key: start,
        })?;
        Ok(Done {
            rows,
            aborts: attempts.get().saturating_sub(1),
        })
    }

    fn read_counter(&self, key: u64) -> Result<i64> {
        let var = self
            .var(key)
            .with_context(|| MissingKeySnafu { engine: NAME, key })?;
        Counter::value(&var.read_atomic()).context(NotACounterSnafu { engine: NAME, key })
    }
}
