//! skipdb 0.2: `OptimisticDb` and `SerializableDb`, the closest peer — a
//! transactional MVCC store on a crossbeam `SkipMap`.
//!
//! Writers use skipdb's write transactions (which track reads and validate
//! them at commit), readers its read transactions. skipdb never reclaims old
//! versions by itself; [`Engine::maintain`] calls its `compact` between
//! measurements, outside timing.

use std::convert::Infallible;
use std::ops::Range;
use std::sync::Arc;

use arrow_array::RecordBatch;
use skipdb::optimistic::{OptimisticDb, OptimisticTransaction};
use skipdb::serializable::{SerializableDb, SerializableTransaction};
use snafu::{OptionExt, ResultExt};
use txn::error::{TransactionError, WtmError};

use super::{Done, Engine, backoff, batch_rows, load_chunks, rows_of};
use crate::error::{NotACounterSnafu, Result, SkipdbSnafu};
use crate::values::{Counter, ValuePool};
use crate::workloads::{Op, is_read_only};

type Value = Arc<RecordBatch>;
type TxnError = TransactionError<Infallible, Infallible>;
type CommitError = WtmError<Infallible, Infallible, Infallible>;

/// What the engine needs of a skipdb write transaction; both flavours
/// implement it with their inherent methods.
trait WriteTxn {
    fn read_value(&mut self, key: u64) -> Result<Option<Value>, TxnError>;
    fn write_value(&mut self, key: u64, value: Value) -> Result<(), TxnError>;
    fn commit_txn(&mut self) -> Result<(), CommitError>;
}

/// Both skipdb write transactions expose the same calls under their own types.
macro_rules! skipdb_write_txn {
    ($txn:ident) => {
        impl WriteTxn for $txn<u64, Value> {
            fn read_value(&mut self, key: u64) -> Result<Option<Value>, TxnError> {
                Ok(self.get(&key)?.map(|entry| Arc::clone(&entry.value())))
            }

            fn write_value(&mut self, key: u64, value: Value) -> Result<(), TxnError> {
                self.insert(key, value)
            }

            fn commit_txn(&mut self) -> Result<(), CommitError> {
                self.commit()
            }
        }
    };
}

skipdb_write_txn!(OptimisticTransaction);
skipdb_write_txn!(SerializableTransaction);

/// One skipdb database flavour: its write and read transactions.
trait Flavor: Send + Sync {
    type Write: WriteTxn;
    const NAME: &'static str;
    fn begin_write(&self) -> Self::Write;
    /// Rows of `key` in a read transaction.
    fn read_rows(&self, key: u64) -> u64;
    /// Rows of every key in `range`, in one read transaction.
    fn scan_rows(&self, range: Range<u64>) -> u64;
    /// Rows of every read in `ops`, in one read transaction.
    fn read_all(&self, ops: &[Op<'_>]) -> u64;
    /// The value of `key` in a read transaction.
    fn read_value(&self, key: u64) -> Option<Value>;
    fn compact(&self);
}

/// The two skipdb databases share their read API; only the write
/// transaction, its constructor and the name differ.
macro_rules! skipdb_flavor {
    ($db:ident, $write:ident, $begin:ident, $name:literal) => {
        impl Flavor for $db<u64, Value> {
            type Write = $write<u64, Value>;
            const NAME: &'static str = $name;

            fn begin_write(&self) -> Self::Write {
                self.$begin()
            }

            fn read_rows(&self, key: u64) -> u64 {
                let txn = self.read();
                txn.get(&key).map_or(0, |entry| batch_rows(&entry.value()))
            }

            fn scan_rows(&self, range: Range<u64>) -> u64 {
                let txn = self.read();
                txn.range(range)
                    .map(|entry| batch_rows(&entry.value()))
                    .sum()
            }

            fn read_all(&self, ops: &[Op<'_>]) -> u64 {
                let txn = self.read();
                ops.iter()
                    .filter(|op| op.is_read())
                    .map(|op| {
                        txn.get(&op.key())
                            .map_or(0, |entry| batch_rows(&entry.value()))
                    })
                    .sum()
            }

            fn read_value(&self, key: u64) -> Option<Value> {
                let txn = self.read();
                txn.get(&key).map(|entry| Arc::clone(&entry.value()))
            }

            fn compact(&self) {
                $db::compact(self);
            }
        }
    };
}

skipdb_flavor!(
    OptimisticDb,
    OptimisticTransaction,
    write,
    "skipdb-optimistic"
);
skipdb_flavor!(
    SerializableDb,
    SerializableTransaction,
    serializable_write,
    "skipdb-serializable"
);

/// A skipdb engine over flavour `D`.
struct Skipdb<D> {
    db: D,
}

impl<D: Flavor> Skipdb<D> {
    fn load(db: D, keys: u64, pool: &ValuePool) -> Result<Self> {
        let engine = Self { db };
        for (start, end) in load_chunks(keys) {
            engine.write_txn("load", |txn| {
                for key in start..end {
                    txn.write_value(key, Arc::clone(pool.for_key(key)))
                        .context(SkipdbSnafu {
                            engine: D::NAME,
                            operation: "load",
                        })?;
                }
                Ok(0)
            })?;
        }
        Ok(engine)
    }

    /// Runs `body` in a write transaction and commits, retrying conflicts.
    fn write_txn(
        &self,
        operation: &'static str,
        mut body: impl FnMut(&mut D::Write) -> Result<u64>,
    ) -> Result<Done> {
        let mut aborts = 0;
        loop {
            let mut txn = self.db.begin_write();
            let rows = body(&mut txn)?;
            match txn.commit_txn() {
                Ok(()) => return Ok(Done { rows, aborts }),
                Err(WtmError::Transaction(TransactionError::Conflict)) => {
                    aborts += 1;
                    backoff(aborts);
                }
                Err(WtmError::Transaction(error)) => {
                    return Err(error).context(SkipdbSnafu {
                        engine: D::NAME,
                        operation,
                    });
                }
                Err(WtmError::Commit(never)) => match never {},
            }
        }
    }

    fn get(&self, key: u64) -> Done {
        Done {
            rows: self.db.read_rows(key),
            aborts: 0,
        }
    }

    fn put(&self, key: u64, value: &Value) -> Result<Done> {
        self.write_txn("write", |txn| {
            txn.write_value(key, Arc::clone(value))
                .context(SkipdbSnafu {
                    engine: D::NAME,
                    operation: "write",
                })?;
            Ok(0)
        })
    }

    fn increment(&self, key: u64, counter: &Counter) -> Result<Done> {
        self.write_txn("increment", |txn| {
            let context = SkipdbSnafu {
                engine: D::NAME,
                operation: "increment",
            };
            let current = txn.read_value(key).context(context)?;
            let n = current
                .as_deref()
                .and_then(Counter::value)
                .context(NotACounterSnafu {
                    engine: D::NAME,
                    key,
                })?;
            let next = Arc::new(counter.batch(n + 1)?);
            txn.write_value(key, next).context(context)?;
            Ok(1)
        })
    }

    fn execute(&self, ops: &[Op<'_>]) -> Result<Done> {
        if is_read_only(ops) {
            return Ok(Done {
                rows: self.db.read_all(ops),
                aborts: 0,
            });
        }
        self.write_txn("ycsb", |txn| {
            let context = SkipdbSnafu {
                engine: D::NAME,
                operation: "ycsb",
            };
            let mut rows = 0;
            for op in ops {
                match *op {
                    Op::Read(key) => {
                        rows += rows_of(txn.read_value(key).context(context)?.as_deref());
                    }
                    Op::Update(key, value) => {
                        txn.write_value(key, Arc::clone(value)).context(context)?;
                    }
                }
            }
            Ok(rows)
        })
    }

    fn scan(&self, start: u64, len: u64) -> Done {
        Done {
            rows: self.db.scan_rows(start..start.saturating_add(len)),
            aborts: 0,
        }
    }

    fn read_counter(&self, key: u64) -> Result<i64> {
        self.db
            .read_value(key)
            .as_deref()
            .and_then(Counter::value)
            .context(NotACounterSnafu {
                engine: D::NAME,
                key,
            })
    }
}

/// Implements [`Engine`] for a public wrapper around `Skipdb<flavour>`.
macro_rules! skipdb_engine {
    ($(#[$doc:meta])* $engine:ident, $flavor:ty) => {
        $(#[$doc])*
        pub struct $engine(Skipdb<$flavor>);

        impl $engine {
            /// A new database loaded with keys `0..keys`.
            ///
            /// # Errors
            /// [`Error::Skipdb`](crate::Error::Skipdb) if loading fails.
            pub fn new(keys: u64, pool: &ValuePool) -> Result<Self> {
                Ok(Self(Skipdb::load(<$flavor>::new(), keys, pool)?))
            }
        }

        impl std::fmt::Debug for $engine {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($engine))
                    .field("version", &self.0.db.version())
                    .finish_non_exhaustive()
            }
        }

        impl Engine for $engine {
            fn name(&self) -> &'static str {
                <$flavor as Flavor>::NAME
            }

            fn get(&self, key: u64) -> Result<Done> {
                Ok(self.0.get(key))
            }

            fn put(&self, key: u64, value: &Arc<RecordBatch>) -> Result<Done> {
                self.0.put(key, value)
            }

            fn increment(&self, key: u64, counter: &Counter) -> Result<Done> {
                self.0.increment(key, counter)
            }

            fn execute(&self, ops: &[Op<'_>]) -> Result<Done> {
                self.0.execute(ops)
            }

            fn scan(&self, start: u64, len: u64) -> Result<Done> {
                Ok(self.0.scan(start, len))
            }

            fn read_counter(&self, key: u64) -> Result<i64> {
                self.0.read_counter(key)
            }

            fn maintain(&self) {
                <$flavor as Flavor>::compact(&self.0.db);
            }
        }
    };
}

skipdb_engine!(
    /// skipdb's `OptimisticDb`: write transactions detect direct read-write
    /// conflicts on hashed keys.
    SkipdbOptimisticEngine,
    OptimisticDb<u64, Value>
);

skipdb_engine!(
    /// skipdb's `SerializableDb` with `serializable_write` transactions:
    /// full serializable snapshot isolation (ranges included).
    SkipdbSerializableEngine,
    SerializableDb<u64, Value>
);
