//! The engines compared, behind one [`Engine`] trait.
//!
//! Each engine is loaded with the same keys and the same `Arc<RecordBatch>`
//! values (a [`ValuePool`]) before timing starts. Every method is one whole
//! transaction: it begins, does its operations, commits, and retries on a
//! conflict, reporting how many attempts aborted. Adding an engine is one
//! module implementing [`Engine`] plus one [`EngineKind`] variant.

mod khonsu;
mod locked;
mod skipdb;
mod skipmap;
mod stm;

use std::fmt;
use std::sync::Arc;

use arrow_array::RecordBatch;

pub use self::khonsu::KhonsuEngine;
pub use self::locked::MutexBTreeMapEngine;
pub use self::skipdb::{SkipdbOptimisticEngine, SkipdbSerializableEngine};
pub use self::skipmap::SkipMapEngine;
pub use self::stm::StmEngine;
use crate::error::Result;
use crate::values::{Counter, ValuePool};
use crate::workloads::Op;

/// Keys written per transaction while loading an engine.
const LOAD_BATCH: u64 = 1_000;

/// What one committed transaction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Done {
    /// Rows of the values read by the attempt that committed.
    pub rows: u64,
    /// Attempts that aborted (conflicts) before the one that committed.
    pub aborts: u64,
}

/// A store that runs the comparison's transactions.
///
/// Every method runs one complete transaction (retrying conflicts until it
/// commits) and must be callable from many threads at once.
pub trait Engine: Send + Sync {
    /// The engine's name in reports and on the command line.
    fn name(&self) -> &'static str;

    /// Whether operations grouped in one call are atomic and isolated. The
    /// raw `SkipMap` floor is not: its `rmw1` can lose updates.
    fn is_transactional(&self) -> bool {
        true
    }

    /// A read-only transaction reading `key`.
    ///
    /// # Errors
    /// The engine's failure, other than a retried conflict.
    fn get(&self, key: u64) -> Result<Done>;

    /// A transaction blindly writing `value` under `key`.
    ///
    /// # Errors
    /// The engine's failure, other than a retried conflict.
    fn put(&self, key: u64, value: &Arc<RecordBatch>) -> Result<Done>;

    /// A transaction reading the counter under `key` and writing it plus
    /// one, retried until it commits.
    ///
    /// # Errors
    /// [`Error::NotACounter`](crate::Error::NotACounter) if `key` holds
    /// no counter, or the engine's failure.
    fn increment(&self, key: u64, counter: &Counter) -> Result<Done>;

    /// One transaction running `ops` in order (a read-only transaction when
    /// every op is a read).
    ///
    /// # Errors
    /// The engine's failure, other than a retried conflict.
    fn execute(&self, ops: &[Op<'_>]) -> Result<Done>;

    /// A read-only transaction reading the `len` keys from `start` on.
    ///
    /// # Errors
    /// The engine's failure.
    fn scan(&self, start: u64, len: u64) -> Result<Done>;

    /// The counter under `key`, read in its own transaction.
    ///
    /// # Errors
    /// [`Error::NotACounter`](crate::Error::NotACounter) if `key` holds no
    /// counter, or the engine's failure.
    fn read_counter(&self, key: u64) -> Result<i64>;

    /// Housekeeping run between measurements, outside timing (skipdb's
    /// version compaction). Engines that reclaim as they go do nothing.
    fn maintain(&self) {}

    /// Whether the engine runs `workload` (the precision workloads are
    /// Khonsu's own).
    fn supports(&self, workload: crate::workloads::Workload) -> bool {
        !workload.khonsu_only()
    }

    /// `skew`: a transaction reading `read` and `write`, then writing
    /// `value` under `write`.
    ///
    /// # Errors
    /// [`Error::Unsupported`](crate::Error::Unsupported) unless the engine
    /// runs it, or the engine's failure.
    fn skew(&self, write: u64, read: u64, value: &Arc<RecordBatch>) -> Result<Done> {
        let _ = (write, read, value);
        crate::error::UnsupportedSnafu {
            engine: self.name(),
            workload: "skew",
        }
        .fail()
    }

    /// `matcher`'s matching transaction: scan keys `0..levels`, write
    /// `value` under `fill`.
    ///
    /// # Errors
    /// [`Error::Unsupported`](crate::Error::Unsupported) unless the engine
    /// runs it, or the engine's failure.
    fn match_order(&self, levels: u64, fill: u64, value: &Arc<RecordBatch>) -> Result<Done> {
        let _ = (levels, fill, value);
        crate::error::UnsupportedSnafu {
            engine: self.name(),
            workload: "matcher",
        }
        .fail()
    }
}

/// The engines the driver knows, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// Khonsu at `ReadCommitted`.
    KhonsuReadCommitted,
    /// Khonsu at `RepeatableRead` (snapshot isolation).
    KhonsuRepeatableRead,
    /// Khonsu at `Serializable`: the reference of every ratio.
    KhonsuSerializable,
    /// Khonsu at `Serializable` with the conservative validation.
    KhonsuSerializableConservative,
    /// skipdb's `OptimisticDb` (write transactions track reads by hash).
    SkipdbOptimistic,
    /// skipdb's `SerializableDb` with `serializable_write` transactions.
    SkipdbSerializable,
    /// rust-stm, one `TVar` per key.
    Stm,
    /// A `Mutex<BTreeMap>`: one lock around the whole store.
    MutexBTreeMap,
    /// The raw `crossbeam_skiplist::SkipMap`, no transactions: the floor.
    SkipMap,
}

impl EngineKind {
    /// Every engine, in report order.
    pub const ALL: [Self; 9] = [
        Self::KhonsuReadCommitted,
        Self::KhonsuRepeatableRead,
        Self::KhonsuSerializable,
        Self::KhonsuSerializableConservative,
        Self::SkipdbOptimistic,
        Self::SkipdbSerializable,
        Self::Stm,
        Self::MutexBTreeMap,
        Self::SkipMap,
    ];

    /// The engine every ratio is taken against.
    pub const REFERENCE: Self = Self::KhonsuSerializable;

    /// The engine's name in reports and on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::KhonsuReadCommitted => "khonsu-rc",
            Self::KhonsuRepeatableRead => "khonsu-rr",
            Self::KhonsuSerializable => "khonsu-ser",
            Self::KhonsuSerializableConservative => "khonsu-ser-conservative",
            Self::SkipdbOptimistic => "skipdb-optimistic",
            Self::SkipdbSerializable => "skipdb-serializable",
            Self::Stm => "stm",
            Self::MutexBTreeMap => "mutex-btreemap",
            Self::SkipMap => "skipmap",
        }
    }

    /// The engine called `name`, if any.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// One line saying what the engine is.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::KhonsuReadCommitted => "Khonsu, ReadCommitted",
            Self::KhonsuRepeatableRead => "Khonsu, RepeatableRead (snapshot isolation)",
            Self::KhonsuSerializable => "Khonsu, Serializable (the ratio reference)",
            Self::KhonsuSerializableConservative => {
                "Khonsu, Serializable with the conservative validation"
            }
            Self::SkipdbOptimistic => "skipdb 0.2 OptimisticDb, write()/read() transactions",
            Self::SkipdbSerializable => {
                "skipdb 0.2 SerializableDb, serializable_write()/read() transactions"
            }
            Self::Stm => "rust-stm 0.4, one TVar per key",
            Self::MutexBTreeMap => "Mutex<BTreeMap>, each transaction under the lock",
            Self::SkipMap => "raw crossbeam SkipMap, no transactions (the floor)",
        }
    }

    /// Builds the engine and loads keys `0..keys`, key `k` holding
    /// `pool.for_key(k)`.
    ///
    /// # Errors
    /// The engine's failure while loading.
    pub fn build(self, keys: u64, pool: &ValuePool) -> Result<Box<dyn Engine>> {
        use ::khonsu::TransactionIsolation;
        Ok(match self {
            Self::KhonsuReadCommitted => Box::new(KhonsuEngine::new(
                self.name(),
                TransactionIsolation::ReadCommitted,
                keys,
                pool,
            )?),
            Self::KhonsuRepeatableRead => Box::new(KhonsuEngine::new(
                self.name(),
                TransactionIsolation::RepeatableRead,
                keys,
                pool,
            )?),
            Self::KhonsuSerializable => Box::new(KhonsuEngine::new(
                self.name(),
                TransactionIsolation::Serializable,
                keys,
                pool,
            )?),
            Self::KhonsuSerializableConservative => Box::new(KhonsuEngine::with_validation(
                self.name(),
                TransactionIsolation::Serializable,
                ::khonsu::SerializableValidation::Conservative,
                keys,
                pool,
            )?),
            Self::SkipdbOptimistic => Box::new(SkipdbOptimisticEngine::new(keys, pool)?),
            Self::SkipdbSerializable => Box::new(SkipdbSerializableEngine::new(keys, pool)?),
            Self::Stm => Box::new(StmEngine::new(keys, pool)),
            Self::MutexBTreeMap => Box::new(MutexBTreeMapEngine::new(keys, pool)),
            Self::SkipMap => Box::new(SkipMapEngine::new(keys, pool)),
        })
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Rows of an optional value (`0` when the key is absent).
fn rows_of(value: Option<&RecordBatch>) -> u64 {
    value.map_or(0, batch_rows)
}

/// Rows of a value.
fn batch_rows(batch: &RecordBatch) -> u64 {
    u64::try_from(batch.num_rows()).unwrap_or(u64::MAX)
}

/// Backoff between attempts of an engine without its own: spin briefly,
/// then yield. (Khonsu's `atomically` and rust-stm bring their own.)
fn backoff(attempt: u64) {
    if attempt < 6 {
        for _ in 0..(1_u32 << attempt) * 8 {
            std::hint::spin_loop();
        }
    } else {
        std::thread::yield_now();
    }
}

/// The half-open key ranges `[start, end)` of at most [`LOAD_BATCH`] keys
/// covering `0..keys`: one loading transaction each.
fn load_chunks(keys: u64) -> impl Iterator<Item = (u64, u64)> {
    (0..keys.div_ceil(LOAD_BATCH)).map(move |chunk| {
        let start = chunk * LOAD_BATCH;
        (start, (start + LOAD_BATCH).min(keys))
    })
}

#[cfg(test)]
mod tests;
