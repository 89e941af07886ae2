//! Selecting rows: keep by mask, take by index, delete by mask.

use arrow_array::{Array, BooleanArray, RecordBatch, UInt64Array};
use arrow_buffer::BooleanBuffer;
use arrow_select::filter::filter_record_batch;
use arrow_select::take::take_record_batch;
use snafu::{ResultExt, ensure};

use crate::error::{FilterSnafu, IndexOutOfBoundsSnafu, MaskLengthSnafu, Result, TakeSnafu};
use crate::guard::run_kernel;

/// Returns the rows of `batch` where `keep` is `true`, in order. A null in `keep` drops the row
/// (SQL `WHERE` semantics).
///
/// # Errors
///
/// - [`Error::MaskLength`](crate::Error::MaskLength) if `keep.len() != batch.num_rows()`.
/// - [`Error::Filter`](crate::Error::Filter) if Arrow cannot filter a column.
///
/// # Example
///
/// ```
/// # use std::sync::Arc;
/// # use arrow_array::{BooleanArray, Int64Array, RecordBatch};
/// # use arrow_schema::{DataType, Field, Schema};
/// let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
/// let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))])?;
/// let kept = khonsu_arrow_utils::filter_rows(&batch, &BooleanArray::from(vec![Some(true), None, Some(true)]))?;
/// assert_eq!(kept.column(0).as_ref(), &Int64Array::from(vec![1, 3]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn filter_rows(batch: &RecordBatch, keep: &BooleanArray) -> Result<RecordBatch> {
    filter_checked(batch, keep, "filter rows")
}

/// Returns `batch` without the rows where `delete` is `true`. A null in `delete` keeps the row:
/// only a definite `true` deletes.
///
/// # Errors
///
/// - [`Error::MaskLength`](crate::Error::MaskLength) if `delete.len() != batch.num_rows()`.
/// - [`Error::Filter`](crate::Error::Filter) if Arrow cannot filter a column.
///
/// # Example
///
/// ```
/// # use std::sync::Arc;
/// # use arrow_array::{BooleanArray, Int64Array, RecordBatch};
/// # use arrow_schema::{DataType, Field, Schema};
/// let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
/// let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))])?;
/// let rest = khonsu_arrow_utils::delete_rows(&batch, &BooleanArray::from(vec![Some(true), None, Some(false)]))?;
/// assert_eq!(rest.column(0).as_ref(), &Int64Array::from(vec![2, 3]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn delete_rows(batch: &RecordBatch, delete: &BooleanArray) -> Result<RecordBatch> {
    // A row is deleted only where the mask is valid and true; keep the complement.
    let deleted: BooleanBuffer = match delete.nulls() {
        Some(nulls) => delete.values() & nulls.inner(),
        None => delete.values().clone(),
    };
    let keep = BooleanArray::new(!&deleted, None);
    filter_checked(batch, &keep, "delete rows")
}

fn filter_checked(
    batch: &RecordBatch,
    keep: &BooleanArray,
    operation: &'static str,
) -> Result<RecordBatch> {
    let num_rows = batch.num_rows();
    ensure!(
        keep.len() == num_rows,
        MaskLengthSnafu {
            operation,
            mask_len: keep.len(),
            num_rows,
        }
    );
    run_kernel(operation, || filter_record_batch(batch, keep))?.context(FilterSnafu { num_rows })
}

/// Returns the rows of `batch` at `indices`, in the order given. Indices may repeat.
///
/// # Errors
///
/// - [`Error::IndexOutOfBounds`](crate::Error::IndexOutOfBounds) naming the first index that is
///   not smaller than `batch.num_rows()`.
/// - [`Error::Take`](crate::Error::Take) if Arrow cannot take from a column, e.g. repeating large
///   `Utf8` values past `i32` offsets.
///
/// # Example
///
/// ```
/// # use std::sync::Arc;
/// # use arrow_array::{Int64Array, RecordBatch};
/// # use arrow_schema::{DataType, Field, Schema};
/// let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
/// let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![10, 20, 30]))])?;
/// let picked = khonsu_arrow_utils::take_rows(&batch, &[2, 0, 2])?;
/// assert_eq!(picked.column(0).as_ref(), &Int64Array::from(vec![30, 10, 30]));
/// assert!(khonsu_arrow_utils::take_rows(&batch, &[3]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn take_rows(batch: &RecordBatch, indices: &[usize]) -> Result<RecordBatch> {
    let num_rows = batch.num_rows();
    if let Some((position, &index)) = indices.iter().enumerate().find(|(_, i)| **i >= num_rows) {
        return IndexOutOfBoundsSnafu {
            position,
            index,
            num_rows,
        }
        .fail();
    }
    // Every index is below `num_rows`, a `usize`, so it fits in `u64` on all supported targets.
    let index_array: UInt64Array = indices.iter().map(|&i| i as u64).collect();
    run_kernel("take rows", || take_record_batch(batch, &index_array))?.context(TakeSnafu {
        num_indices: indices.len(),
        num_rows,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int32Array, RecordBatchOptions, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::{Error, batches_equal};

    fn batch(ids: &[i32], names: &[Option<&str>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap()
    }

    fn sample() -> RecordBatch {
        batch(&[1, 2, 3, 4], &[Some("a"), None, Some("c"), Some("d")])
    }

    #[test]
    fn filter_drops_false_and_null() {
        let keep = BooleanArray::from(vec![Some(true), Some(true), None, Some(false)]);
        let out = filter_rows(&sample(), &keep).unwrap();
        assert!(batches_equal(&out, &batch(&[1, 2], &[Some("a"), None])));
    }

    /// A mask whose null slots have their value bit set: only validity says "null".
    fn mask(values: &[bool], valid: &[bool]) -> BooleanArray {
        BooleanArray::new(
            BooleanBuffer::from(values.to_vec()),
            Some(arrow_buffer::NullBuffer::from(valid.to_vec())),
        )
    }

    #[test]
    fn null_slots_with_set_value_bits() {
        let m = mask(&[true, true, true, false], &[true, false, true, true]);
        let kept = filter_rows(&sample(), &m).unwrap();
        assert!(batches_equal(
            &kept,
            &batch(&[1, 3], &[Some("a"), Some("c")])
        ));
        let rest = delete_rows(&sample(), &m).unwrap();
        assert!(batches_equal(&rest, &batch(&[2, 4], &[None, Some("d")])));
    }

    #[test]
    fn filter_all_and_none() {
        let all = filter_rows(&sample(), &BooleanArray::from(vec![true; 4])).unwrap();
        assert!(batches_equal(&all, &sample()));
        let none = filter_rows(&sample(), &BooleanArray::from(vec![None; 4])).unwrap();
        assert_eq!(none.num_rows(), 0);
        assert_eq!(none.schema(), sample().schema());
    }

    #[test]
    fn filter_rejects_wrong_mask_length() {
        for len in [0, 3, 5] {
            let keep = BooleanArray::from(vec![true; len]);
            let error = filter_rows(&sample(), &keep).unwrap_err();
            assert!(
                matches!(
                    error,
                    Error::MaskLength { mask_len, num_rows: 4, operation: "filter rows", .. } if mask_len == len
                ),
                "{error:?}"
            );
        }
    }

    #[test]
    fn filter_with_a_sliced_mask_and_batch() {
        let mask = BooleanArray::from(vec![false, true, false, true, true]).slice(1, 4);
        let input = batch(
            &[0, 1, 2, 3, 4],
            &[None, Some("a"), None, Some("c"), Some("d")],
        )
        .slice(1, 4);
        let out = filter_rows(&input, &mask).unwrap();
        assert!(batches_equal(
            &out,
            &batch(&[1, 3, 4], &[Some("a"), Some("c"), Some("d")])
        ));
    }

    #[test]
    fn delete_removes_true_and_keeps_null() {
        let delete = BooleanArray::from(vec![Some(true), None, Some(false), Some(true)]);
        let out = delete_rows(&sample(), &delete).unwrap();
        assert!(batches_equal(&out, &batch(&[2, 3], &[None, Some("c")])));
    }

    #[test]
    fn delete_with_a_sliced_mask() {
        let delete =
            BooleanArray::from(vec![Some(true), None, Some(true), Some(false), Some(true)])
                .slice(1, 4);
        let out = delete_rows(&sample(), &delete).unwrap();
        assert!(batches_equal(
            &out,
            &batch(&[1, 3], &[Some("a"), Some("c")])
        ));
    }

    #[test]
    fn delete_rejects_wrong_mask_length() {
        let error = delete_rows(&sample(), &BooleanArray::from(vec![true])).unwrap_err();
        assert!(
            matches!(
                error,
                Error::MaskLength {
                    operation: "delete rows",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn take_reorders_and_repeats() {
        let out = take_rows(&sample(), &[3, 1, 1, 0]).unwrap();
        assert!(batches_equal(
            &out,
            &batch(&[4, 2, 2, 1], &[Some("d"), None, None, Some("a")])
        ));
        assert_eq!(take_rows(&sample(), &[]).unwrap().num_rows(), 0);
    }

    #[test]
    fn take_rejects_out_of_range() {
        let error = take_rows(&sample(), &[0, 4, 9]).unwrap_err();
        assert!(
            matches!(
                error,
                Error::IndexOutOfBounds {
                    position: 1,
                    index: 4,
                    num_rows: 4,
                    ..
                }
            ),
            "{error:?}"
        );
        let empty = batch(&[], &[]);
        assert!(matches!(
            take_rows(&empty, &[0]),
            Err(Error::IndexOutOfBounds {
                index: 0,
                num_rows: 0,
                ..
            })
        ));
        assert!(matches!(
            take_rows(&sample(), &[usize::MAX]),
            Err(Error::IndexOutOfBounds { .. })
        ));
    }

    #[test]
    fn batches_without_columns() {
        let options = RecordBatchOptions::new().with_row_count(Some(3));
        let b =
            RecordBatch::try_new_with_options(Arc::new(Schema::empty()), vec![], &options).unwrap();
        assert_eq!(take_rows(&b, &[2, 2]).unwrap().num_rows(), 2);
        assert!(take_rows(&b, &[3]).is_err());
        let keep = BooleanArray::from(vec![true, false, true]);
        assert_eq!(filter_rows(&b, &keep).unwrap().num_rows(), 2);
        assert_eq!(delete_rows(&b, &keep).unwrap().num_rows(), 1);
    }
}
