//! A `Mutex<BTreeMap>`: the simplest correct transactional store. Each
//! transaction holds the one lock from its first operation to its last, so
//! it is serializable and never aborts, and threads never run in parallel.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arrow_array::RecordBatch;
use snafu::OptionExt;

use super::{Done, Engine, rows_of};
use crate::error::{NotACounterSnafu, PoisonedSnafu, Result};
use crate::values::{Counter, ValuePool};
use crate::workloads::Op;

const NAME: &str = "mutex-btreemap";

/// A `std::sync::Mutex<BTreeMap<u64, Arc<RecordBatch>>>`.
#[derive(Debug)]
pub struct MutexBTreeMapEngine {
    map: Mutex<BTreeMap<u64, Arc<RecordBatch>>>,
}

impl MutexBTreeMapEngine {
    /// A map loaded with keys `0..keys`.
    #[must_use]
    pub fn new(keys: u64, pool: &ValuePool) -> Self {
        Self {
            map: Mutex::new(
                (0..keys)
                    .map(|key| (key, Arc::clone(pool.for_key(key))))
                    .collect(),
            ),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, BTreeMap<u64, Arc<RecordBatch>>>> {
        self.map.lock().ok().context(PoisonedSnafu { engine: NAME })
    }
}

impl Engine for MutexBTreeMapEngine {
    fn name(&self) -> &'static str {
        NAME
    }

    fn get(&self, key: u64) -> Result<Done> {
        let map = self.lock()?;
        Ok(Done {
            rows: rows_of(map.get(&key).map(AsRef::as_ref)),
            aborts: 0,
        })
    }

    fn put(&self, key: u64, value: &Arc<RecordBatch>) -> Result<Done> {
        let previous = self.lock()?.insert(key, Arc::clone(value));
        drop(previous); // outside the lock
        Ok(Done::default())
    }

    fn increment(&self, key: u64, counter: &Counter) -> Result<Done> {
        let mut map = self.lock()?;
        let n = map
            .get(&key)
            .and_then(|batch| Counter::value(batch))
            .context(NotACounterSnafu { engine: NAME, key })?;
        let previous = map.insert(key, Arc::new(counter.batch(n + 1)?));
        drop(map);
        drop(previous);
        Ok(Done { rows: 1, aborts: 0 })
    }

    fn execute(&self, ops: &[Op<'_>]) -> Result<Done> {
        let mut map = self.lock()?;
        let mut rows = 0;
        for op in ops {
            match *op {
                Op::Read(key) => rows += rows_of(map.get(&key).map(AsRef::as_ref)),
                Op::Update(key, value) => {
                    map.insert(key, Arc::clone(value));
                }
            }
        }
        Ok(Done { rows, aborts: 0 })
    }

    fn scan(&self, start: u64, len: u64) -> Result<Done> {
        let map = self.lock()?;
        let rows = map
            .range(start..start.saturating_add(len))
            .map(|(_, batch)| rows_of(Some(batch)))
            .sum();
        Ok(Done { rows, aborts: 0 })
    }

    fn read_counter(&self, key: u64) -> Result<i64> {
        self.lock()?
            .get(&key)
            .and_then(|batch| Counter::value(batch))
            .context(NotACounterSnafu { engine: NAME, key })
    }
}
