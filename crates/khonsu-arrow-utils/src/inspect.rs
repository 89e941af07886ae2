//! Looking at batches without changing them: logical equality and memory size.

use arrow_array::{Array, RecordBatch};

use crate::schema::same_schema;

/// True if `a` and `b` have the same schema (see [`crate::ensure_same_schema`]; metadata is
/// ignored) and the same rows: equal values and nulls in the same places.
///
/// Equality is logical, through Arrow's `ArrayData` equality: a sliced batch equals a fresh batch
/// with the same values, a dictionary column compares its decoded values, a run-end encoded column
/// its logical rows. Values hidden under a null slot are not compared. Floats compare by their
/// total order bits, so `NaN` equals `NaN` with the same payload, and `0.0` differs from `-0.0`.
///
/// # Example
///
/// ```
/// # use std::sync::Arc;
/// # use arrow_array::{Int64Array, RecordBatch};
/// # use arrow_schema::{DataType, Field, Schema};
/// let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
/// let batch = |v: Vec<Option<i64>>| RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(v))]);
/// let long = batch(vec![Some(0), Some(1), None])?;
/// assert!(khonsu_arrow_utils::batches_equal(&long.slice(1, 2), &batch(vec![Some(1), None])?));
/// assert!(!khonsu_arrow_utils::batches_equal(&long, &batch(vec![Some(0), Some(1), Some(2)])?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn batches_equal(a: &RecordBatch, b: &RecordBatch) -> bool {
    same_schema(a.schema_ref(), b.schema_ref())
        && a.num_rows() == b.num_rows()
        && a.columns()
            .iter()
            .zip(b.columns())
            .all(|(x, y)| x.data_type() == y.data_type() && x.to_data() == y.to_data())
}

/// Bytes of memory held by the batch's buffers: the sum of
/// [`Array::get_array_memory_size`] over its columns.
///
/// This counts whole buffers, including capacity and the parts a sliced batch no longer shows,
/// and counts a buffer shared by two columns twice. It is the memory the batch keeps alive, not
/// the size it would take once serialized.
///
/// # Example
///
/// ```
/// # use std::sync::Arc;
/// # use arrow_array::{Int64Array, RecordBatch};
/// # use arrow_schema::{DataType, Field, Schema};
/// let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
/// let small = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from_iter_values(0..10))])?;
/// let large = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..1000))])?;
/// assert!(khonsu_arrow_utils::byte_size(&large) > khonsu_arrow_utils::byte_size(&small));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn byte_size(batch: &RecordBatch) -> usize {
    batch.get_array_memory_size()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        DictionaryArray, Float64Array, Int32Array, Int64Array, StringArray, types::Int8Type,
    };
    use arrow_schema::{Field, Schema};

    use super::*;

    fn one(name: &str, nullable: bool, column: Arc<dyn Array>) -> RecordBatch {
        let field = Field::new(name, column.data_type().clone(), nullable);
        RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![column]).unwrap()
    }

    #[test]
    fn equal_values_and_nulls() {
        let a = one("v", true, Arc::new(Int64Array::from(vec![Some(1), None])));
        let b = one("v", true, Arc::new(Int64Array::from(vec![Some(1), None])));
        assert!(batches_equal(&a, &b));
        assert!(batches_equal(&a, &a));
    }

    #[test]
    fn different_values_nulls_lengths_or_schemas() {
        let a = one("v", true, Arc::new(Int64Array::from(vec![Some(1), None])));
        let value = one("v", true, Arc::new(Int64Array::from(vec![Some(2), None])));
        let null_moved = one("v", true, Arc::new(Int64Array::from(vec![None, Some(1)])));
        let no_null = one(
            "v",
            true,
            Arc::new(Int64Array::from(vec![Some(1), Some(0)])),
        );
        let shorter = a.slice(0, 1);
        let renamed = one("w", true, Arc::new(Int64Array::from(vec![Some(1), None])));
        let retyped = one("v", true, Arc::new(Int32Array::from(vec![Some(1), None])));
        for other in [value, null_moved, no_null, shorter, renamed, retyped] {
            assert!(!batches_equal(&a, &other), "{other:?}");
            assert!(!batches_equal(&other, &a), "{other:?}");
        }
        let required = one("v", false, Arc::new(Int64Array::from(vec![1, 2])));
        let optional = one("v", true, Arc::new(Int64Array::from(vec![1, 2])));
        assert!(!batches_equal(&required, &optional));
    }

    #[test]
    fn equality_is_logical() {
        let long = one(
            "s",
            true,
            Arc::new(StringArray::from(vec![Some("x"), Some("a"), None])),
        );
        let fresh = one(
            "s",
            true,
            Arc::new(StringArray::from(vec![Some("a"), None])),
        );
        assert!(batches_equal(&long.slice(1, 2), &fresh));

        let dict_a: DictionaryArray<Int8Type> = vec!["p", "q", "p"].into_iter().collect();
        let dict_b = DictionaryArray::<Int8Type>::try_new(
            vec![1_i8, 0, 1].into(),
            Arc::new(StringArray::from(vec!["q", "p"])),
        )
        .unwrap();
        assert!(batches_equal(
            &one("d", false, Arc::new(dict_a)),
            &one("d", false, Arc::new(dict_b))
        ));
    }

    #[test]
    fn float_equality_is_bitwise() {
        let nan = one("f", false, Arc::new(Float64Array::from(vec![f64::NAN])));
        assert!(batches_equal(&nan, &nan.clone()));
        let zero = one("f", false, Arc::new(Float64Array::from(vec![0.0])));
        let negative_zero = one("f", false, Arc::new(Float64Array::from(vec![-0.0])));
        assert!(!batches_equal(&zero, &negative_zero));
    }

    #[test]
    fn byte_size_grows_with_rows() {
        let size = |n: i64| {
            byte_size(&one(
                "v",
                false,
                Arc::new(Int64Array::from_iter_values(0..n)),
            ))
        };
        assert!(size(0) < size(100));
        assert!(size(100) < size(10_000));
        assert!(size(10_000) >= 10_000 * 8);
        let strings = |n: usize| {
            byte_size(&one(
                "s",
                false,
                Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                    "abcdef", n,
                ))),
            ))
        };
        assert!(strings(10) < strings(1_000));
    }
}
