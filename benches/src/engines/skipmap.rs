//! The raw `crossbeam_skiplist::SkipMap`, the structure Khonsu's buffer is
//! built on, with no transactions: the floor every engine is measured
//! against.
//!
//! A "transaction" is just its operations, one after another, with no
//! atomicity or isolation between them. `rmw1` is a plain `get` then
//! `insert`, so concurrent increments can be lost; the driver does not
//! check its counter.
//!
//! Overwriting is not atomic either: `SkipMap::insert` unlinks the old
//! node before it links the new one, so a `get` racing an overwrite of the
//! same key can find nothing. Reads retry such a miss (spinning, then
//! yielding and sleeping for a descheduled writer, a few milliseconds at
//! most) and count each retry as an abort; the driver accepts a read that
//! still misses from this engine.

use std::sync::Arc;

use arrow_array::RecordBatch;
use crossbeam_skiplist::SkipMap;
use crossbeam_skiplist::map::Entry;
use snafu::OptionExt;

use super::{Done, Engine, batch_rows};
use crate::error::{NotACounterSnafu, Result};
use crate::values::{Counter, ValuePool};
use crate::workloads::Op;

const NAME: &str = "skipmap";

/// Tries of a `get` that finds nothing before the key counts as absent.
const MISS_TRIES: u64 = 200;

/// A `SkipMap<u64, Arc<RecordBatch>>`.
#[derive(Debug)]
pub struct SkipMapEngine {
    map: SkipMap<u64, Arc<RecordBatch>>,
}

impl SkipMapEngine {
    /// A map loaded with keys `0..keys`.
    #[must_use]
    pub fn new(keys: u64, pool: &ValuePool) -> Self {
        let map = SkipMap::new();
        for key in 0..keys {
            map.insert(key, Arc::clone(pool.for_key(key)));
        }
        Self { map }
    }

    /// The entry of `key`, retrying a miss that may be a racing
    /// overwrite; also returns the retries.
    fn entry(&self, key: u64) -> (Option<Entry<'_, u64, Arc<RecordBatch>>>, u64) {
        for retries in 0..MISS_TRIES {
            if let Some(entry) = self.map.get(&key) {
                return (Some(entry), retries);
            }
            // The writer may have been descheduled mid-overwrite: let it run.
            match retries {
                0..16 => std::hint::spin_loop(),
                16..64 => std::thread::yield_now(),
                _ => std::thread::sleep(std::time::Duration::from_micros(10)),
            }
        }
        (None, MISS_TRIES)
    }

    /// A read of `key`: its rows and the retries.
    fn read(&self, key: u64) -> Done {
        let (entry, aborts) = self.entry(key);
        Done {
            rows: entry.map_or(0, |entry| batch_rows(entry.value())),
            aborts,
        }
    }
}

impl Engine for SkipMapEngine {
    fn name(&self) -> &'static str {
        NAME
    }

    fn is_transactional(&self) -> bool {
        false
    }

    fn get(&self, key: u64) -> Result<Done> {
        Ok(self.read(key))
    }

    fn put(&self, key: u64, value: &Arc<RecordBatch>) -> Result<Done> {
        self.map.insert(key, Arc::clone(value));
        Ok(Done::default())
    }

    fn increment(&self, key: u64, counter: &Counter) -> Result<Done> {
        // Not atomic: another thread may write between the get and the insert.
        let (entry, aborts) = self.entry(key);
        let n = entry
            .and_then(|entry| Counter::value(entry.value()))
            .context(NotACounterSnafu { engine: NAME, key })?;
        self.map.insert(key, Arc::new(counter.batch(n + 1)?));
        Ok(Done { rows: 1, aborts })
    }

    fn execute(&self, ops: &[Op<'_>]) -> Result<Done> {
        let mut done = Done::default();
        for op in ops {
            match *op {
                Op::Read(key) => {
                    let read = self.read(key);
                    done.rows += read.rows;
                    done.aborts += read.aborts;
                }
                Op::Update(key, value) => {
                    self.map.insert(key, Arc::clone(value));
                }
            }
        }
        Ok(done)
    }

    fn scan(&self, start: u64, len: u64) -> Result<Done> {
        let rows = self
            .map
            .range(start..start.saturating_add(len))
            .map(|entry| batch_rows(entry.value()))
            .sum();
        Ok(Done { rows, aborts: 0 })
    }

    fn read_counter(&self, key: u64) -> Result<i64> {
        self.map
            .get(&key)
            .and_then(|entry| Counter::value(entry.value()))
            .context(NotACounterSnafu { engine: NAME, key })
    }
}
