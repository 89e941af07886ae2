//! Appending and concatenating batches of the same schema.

use arrow_array::RecordBatch;
use arrow_select::concat::concat_batches;
use snafu::{OptionExt, ResultExt};

use crate::error::{ConcatSchemaMismatchSnafu, ConcatSnafu, EmptyConcatSnafu, Result};
use crate::guard::run_kernel;
use crate::schema::{ensure_same_schema, first_difference};

/// Returns the rows of `base` followed by the rows of `extra`, nulls preserved.
///
/// The result has `base`'s schema. When one side has no rows the other is returned as is
/// (sharing its buffers); otherwise the columns are concatenated with `arrow-select`.
///
/// # Errors
///
/// - [`Error::SchemaMismatch`](crate::Error::SchemaMismatch) if the schemas differ (see
///   [`ensure_same_schema`]).
/// - [`Error::Concat`](crate::Error::Concat) if Arrow cannot concatenate the columns, e.g. a
///   `Utf8` column whose combined values exceed `i32` offsets (use `LargeUtf8`).
///
/// # Example
///
/// ```
/// # use std::sync::Arc;
/// # use arrow_array::{Int64Array, RecordBatch};
/// # use arrow_schema::{DataType, Field, Schema};
/// let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
/// let a = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![Some(1), None]))])?;
/// let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![Some(3)]))])?;
/// let both = khonsu_arrow_utils::append(&a, &b)?;
/// assert_eq!(both.column(0).as_ref(), &Int64Array::from(vec![Some(1), None, Some(3)]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn append(base: &RecordBatch, extra: &RecordBatch) -> Result<RecordBatch> {
    ensure_same_schema(base.schema_ref(), extra.schema_ref())?;
    if extra.num_rows() == 0 {
        return Ok(base.clone());
    }
    if base.num_rows() == 0 {
        // Same fields, so the columns fit `base`'s schema; only metadata may differ.
        return concat_same_schema(base, &[extra]);
    }
    concat_same_schema(base, &[base, extra])
}

/// Concatenates `batches` in order into one batch with the schema of the first.
///
/// A single batch is returned as is (sharing its buffers).
///
/// # Errors
///
/// - [`Error::EmptyConcat`](crate::Error::EmptyConcat) if `batches` is empty: there is no schema
///   to give the result.
/// - [`Error::ConcatSchemaMismatch`](crate::Error::ConcatSchemaMismatch) naming the first batch
///   whose schema differs from the first batch's (see [`ensure_same_schema`]).
/// - [`Error::Concat`](crate::Error::Concat) if Arrow cannot concatenate the columns.
///
/// # Example
///
/// ```
/// # use std::sync::Arc;
/// # use arrow_array::{RecordBatch, StringArray};
/// # use arrow_schema::{DataType, Field, Schema};
/// let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
/// let batch = |v: Vec<Option<&str>>| RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(v))]);
/// let all = khonsu_arrow_utils::concat(&[batch(vec![Some("a")])?, batch(vec![None])?, batch(vec![Some("c")])?])?;
/// assert_eq!(all.num_rows(), 3);
/// assert!(khonsu_arrow_utils::concat(&[]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn concat(batches: &[RecordBatch]) -> Result<RecordBatch> {
    let first = batches.first().context(EmptyConcatSnafu)?;
    if let Some((index, difference)) = batches
        .iter()
        .enumerate()
        .skip(1)
        .find_map(|(i, b)| first_difference(first.schema_ref(), b.schema_ref()).map(|d| (i, d)))
    {
        return ConcatSchemaMismatchSnafu { index, difference }.fail();
    }
    if batches.len() == 1 {
        return Ok(first.clone());
    }
    let inputs: Vec<&RecordBatch> = batches.iter().collect();
    concat_same_schema(first, &inputs)
}

/// Concatenates `inputs`, whose schemas have been checked to match `like`'s, into a batch with
/// `like`'s schema.
fn concat_same_schema(like: &RecordBatch, inputs: &[&RecordBatch]) -> Result<RecordBatch> {
    let schema = like.schema();
    run_kernel("concat batches", || {
        concat_batches(&schema, inputs.iter().copied())
    })?
    .context(ConcatSnafu {
        num_batches: inputs.len(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use arrow_array::{Array, Int32Array, RecordBatchOptions, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::{Error, SchemaDifference, batches_equal};

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn batch(ids: &[i32], names: &[Option<&str>]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int32Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn append_keeps_order_and_nulls() {
        let a = batch(&[1, 2], &[Some("a"), None]);
        let b = batch(&[3, 4], &[None, Some("d")]);
        let out = append(&a, &b).unwrap();
        let expected = batch(&[1, 2, 3, 4], &[Some("a"), None, None, Some("d")]);
        assert!(batches_equal(&out, &expected));
        assert_eq!(out.column(1).null_count(), 2);
        assert!(out.column(1).is_null(1) && out.column(1).is_null(2));
    }

    #[test]
    fn append_with_an_empty_side() {
        let a = batch(&[1], &[None]);
        let empty = batch(&[], &[]);
        assert!(batches_equal(&append(&a, &empty).unwrap(), &a));
        assert!(batches_equal(&append(&empty, &a).unwrap(), &a));
        assert_eq!(append(&empty, &empty).unwrap().num_rows(), 0);
    }

    #[test]
    fn append_result_has_base_schema() {
        let annotated = Arc::new(
            schema()
                .as_ref()
                .clone()
                .with_metadata(HashMap::from([("k".to_owned(), "v".to_owned())])),
        );
        let a = batch(&[1], &[None]).with_schema(annotated.clone()).unwrap();
        let b = batch(&[2], &[Some("b")]);
        assert_eq!(append(&a, &b).unwrap().schema(), annotated);
        assert_eq!(append(&b, &a).unwrap().schema(), schema());
        let empty = batch(&[], &[]).with_schema(annotated.clone()).unwrap();
        assert_eq!(append(&empty, &b).unwrap().schema(), annotated);
    }

    #[test]
    fn append_rejects_a_different_schema() {
        let a = batch(&[1], &[None]);
        let other = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::LargeUtf8, true),
        ]));
        let b = RecordBatch::try_new(
            other,
            vec![
                Arc::new(Int32Array::from(vec![1])),
                Arc::new(arrow_array::LargeStringArray::from(vec!["x"])),
            ],
        )
        .unwrap();
        let error = append(&a, &b).unwrap_err();
        assert!(
            matches!(
                &error,
                Error::SchemaMismatch {
                    difference: SchemaDifference::DataType { index: 1, .. },
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn append_batches_without_columns() {
        let options = RecordBatchOptions::new().with_row_count(Some(2));
        let a =
            RecordBatch::try_new_with_options(Arc::new(Schema::empty()), vec![], &options).unwrap();
        assert_eq!(append(&a, &a).unwrap().num_rows(), 4);
        assert_eq!(concat(&[a.clone(), a.clone(), a]).unwrap().num_rows(), 6);
    }

    #[test]
    fn concat_in_order() {
        let parts = [
            batch(&[1], &[Some("a")]),
            batch(&[], &[]),
            batch(&[2, 3], &[None, Some("c")]),
        ];
        let out = concat(&parts).unwrap();
        assert!(batches_equal(
            &out,
            &batch(&[1, 2, 3], &[Some("a"), None, Some("c")])
        ));
        assert!(batches_equal(&concat(&parts[..1]).unwrap(), &parts[0]));
    }

    #[test]
    fn concat_of_nothing_is_an_error() {
        assert!(matches!(concat(&[]), Err(Error::EmptyConcat { .. })));
    }

    #[test]
    fn concat_names_the_mismatching_batch() {
        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)]));
        let odd = RecordBatch::try_new(other, vec![Arc::new(Int32Array::from(vec![1]))]).unwrap();
        let parts = [batch(&[1], &[None]), batch(&[2], &[None]), odd];
        let error = concat(&parts).unwrap_err();
        assert!(
            matches!(
                &error,
                Error::ConcatSchemaMismatch {
                    index: 2,
                    difference: SchemaDifference::FieldCount { .. },
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("batch 2"), "{error}");
        assert!(error.schema_difference().is_some());
    }
}
