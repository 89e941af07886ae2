//! The values every engine holds: a [`ValuePool`] of `Arc<RecordBatch>`es
//! built once before timing, and the [`Counter`] batch of `rmw1`.

use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use snafu::ResultExt;

use crate::error::{ArrowSnafu, Result};
use crate::rng::SplitMix64;

/// The key `rmw1` increments (inside the loaded keyspace).
pub const COUNTER_KEY: u64 = 0;

/// Distinct one-row batches shared by every engine, so that engines store
/// and return the same `Arc<RecordBatch>`es and no timing includes
/// building a value.
///
/// Each batch has its own schema `Arc`, so that threads cloning different
/// batches never bump one shared reference count.
///
/// ```
/// use khonsu_benches::ValuePool;
///
/// let pool = ValuePool::new(4)?;
/// assert_eq!(pool.len(), 4);
/// assert_eq!(pool.for_key(6).num_rows(), 1);
/// # Ok::<(), khonsu_benches::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ValuePool {
    batches: Vec<Arc<RecordBatch>>,
    first: Arc<RecordBatch>,
}

impl ValuePool {
    /// A pool of `count` (at least one) distinct one-row batches with the
    /// columns `id: Int64` and `name: Utf8`.
    ///
    /// # Errors
    /// [`Error::Arrow`](crate::Error::Arrow) if a batch cannot be built.
    pub fn new(count: usize) -> Result<Self> {
        let first = Arc::new(value_batch(0)?);
        let mut batches = Vec::with_capacity(count.max(1));
        batches.push(Arc::clone(&first));
        for i in 1..count {
            batches.push(Arc::new(value_batch(i)?));
        }
        Ok(Self { batches, first })
    }

    /// The number of distinct batches.
    #[must_use]
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    /// Always false: a pool holds at least one batch.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// The batch at `index` modulo the pool's size.
    #[must_use]
    pub fn get(&self, index: usize) -> &Arc<RecordBatch> {
        self.batches
            .get(index % self.batches.len().max(1))
            .unwrap_or(&self.first)
    }

    /// The batch loaded under `key`.
    #[must_use]
    pub fn for_key(&self, key: u64) -> &Arc<RecordBatch> {
        let len = u64::try_from(self.batches.len()).unwrap_or(1).max(1);
        self.get(usize::try_from(key % len).unwrap_or(0))
    }

    /// A batch chosen at random.
    pub fn pick(&self, rng: &mut SplitMix64) -> &Arc<RecordBatch> {
        let len = u64::try_from(self.batches.len()).unwrap_or(1);
        self.get(usize::try_from(rng.below(len)).unwrap_or(0))
    }
}

/// Value batch number `i`, with a schema `Arc` of its own.
fn value_batch(i: usize) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let id = i64::try_from(i).unwrap_or(i64::MAX);
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![id])),
            Arc::new(StringArray::from(vec![format!("value-{i:04}")])),
        ],
    )
    .context(ArrowSnafu { what: "value" })
}

/// The one-row `Int64` counter batch that `rmw1` reads and rewrites.
///
/// ```
/// use khonsu_benches::Counter;
///
/// let counter = Counter::new();
/// let batch = counter.batch(41)?;
/// assert_eq!(Counter::value(&batch), Some(41));
/// # Ok::<(), khonsu_benches::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Counter {
    schema: SchemaRef,
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

impl Counter {
    /// The counter's schema: one non-null `n: Int64` column.
    #[must_use]
    pub fn new() -> Self {
        Self {
            schema: Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)])),
        }
    }

    /// A counter batch holding `n`.
    ///
    /// # Errors
    /// [`Error::Arrow`](crate::Error::Arrow) if the batch cannot be built.
    pub fn batch(&self, n: i64) -> Result<RecordBatch> {
        RecordBatch::try_new(
            Arc::clone(&self.schema),
            vec![Arc::new(Int64Array::from(vec![n]))],
        )
        .context(ArrowSnafu { what: "counter" })
    }

    /// The value of a counter batch; `None` if `batch` is not one.
    #[must_use]
    pub fn value(batch: &RecordBatch) -> Option<i64> {
        if batch.num_rows() != 1 || batch.num_columns() != 1 {
            return None;
        }
        let column = batch.columns().first()?;
        let ints = column.as_any().downcast_ref::<Int64Array>()?;
        (ints.len() == 1 && ints.is_valid(0)).then(|| ints.value(0))
    }
}
