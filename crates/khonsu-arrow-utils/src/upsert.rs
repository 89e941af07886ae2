//! Upsert: merge update rows into a base batch by a key column.
//!
//! The merge is planned on the key column alone, as a list of `(batch, row)` picks (batch 0 is
//! `base`, batch 1 is `updates`), and then every column is gathered at once with
//! `arrow-select`'s `interleave_record_batch`. Keys are compared by value through a `HashMap`
//! borrowing the key column's values, so no key is copied.
//!
//! The result is the same as upserting the update rows one at a time, in order: a key already in
//! `base` is replaced in place, a new key is appended where it first appears in `updates`, and a
//! later update of the same key replaces the earlier one.

use std::collections::HashMap;
use std::hash::Hash;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use arrow_select::interleave::interleave_record_batch;
use snafu::{OptionExt, ResultExt};

use crate::error::{
    InterleaveSnafu, KeyColumnArraySnafu, KeyColumnNotFoundSnafu, NullKeySnafu, Result,
    UnsupportedKeyTypeSnafu,
};
use crate::guard::run_kernel;
use crate::schema::ensure_same_schema;

/// Index of `base` in the interleave input.
const BASE: usize = 0;
/// Index of `updates` in the interleave input.
const UPDATES: usize = 1;

/// Merges `updates` into `base` by the value of `key_column`.
///
/// - A row of `base` whose key appears in `updates` is replaced, in place, by the **last** row of
///   `updates` with that key. If `base` holds the key several times, each of those rows is
///   replaced (like SQL `MERGE ... WHEN MATCHED THEN UPDATE`).
/// - Keys of `updates` not in `base` are appended after the base rows, in the order in which each
///   key first appears in `updates`, with the values of its last row.
///
/// This equals applying the update rows one at a time. The result has `base`'s schema.
///
/// Supported key types: all signed and unsigned integers, `Utf8`, `LargeUtf8`, `Utf8View`,
/// `Binary`, `LargeBinary`, `BinaryView`, `FixedSizeBinary`, `Boolean`, `Date32`, `Date64` and
/// `Timestamp` of every unit and time zone. Floats are not keys (`NaN != NaN`, `-0.0 == 0.0`),
/// nor are nested, dictionary, run-end encoded, decimal, interval or null types.
///
/// # Errors
///
/// - [`Error::SchemaMismatch`](crate::Error::SchemaMismatch) if the schemas differ.
/// - [`Error::KeyColumnNotFound`](crate::Error::KeyColumnNotFound) if there is no column named
///   `key_column`.
/// - [`Error::UnsupportedKeyType`](crate::Error::UnsupportedKeyType) naming the key column's type
///   if it is not in the list above.
/// - [`Error::NullKey`](crate::Error::NullKey) naming the batch and row of the first null key
///   (`updates` is checked before `base`).
/// - [`Error::Interleave`](crate::Error::Interleave) if Arrow cannot gather the result columns.
///
/// # Example
///
/// ```
/// # use std::sync::Arc;
/// # use arrow_array::{Int64Array, RecordBatch, StringArray};
/// # use arrow_schema::{DataType, Field, Schema};
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("id", DataType::Int64, false),
///     Field::new("name", DataType::Utf8, true),
/// ]));
/// let rows = |ids: Vec<i64>, names: Vec<&str>| {
///     RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(names))])
/// };
/// let base = rows(vec![1, 2, 3], vec!["a", "b", "c"])?;
/// let updates = rows(vec![4, 2, 2], vec!["d", "b1", "b2"])?;
/// let merged = khonsu_arrow_utils::upsert_by_key(&base, &updates, "id")?;
/// assert!(khonsu_arrow_utils::batches_equal(&merged, &rows(vec![1, 2, 3, 4], vec!["a", "b2", "c", "d"])?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn upsert_by_key(
    base: &RecordBatch,
    updates: &RecordBatch,
    key_column: &str,
) -> Result<RecordBatch> {
    ensure_same_schema(base.schema_ref(), updates.schema_ref())?;
    // Equal schemas, so the key column sits at the same index in both batches.
    let (base_keys, update_keys) = base
        .schema_ref()
        .index_of(key_column)
        .ok()
        .and_then(|index| Some((base.columns().get(index)?, updates.columns().get(index)?)))
        .with_context(|| KeyColumnNotFoundSnafu {
            column: key_column,
            columns: base
                .schema_ref()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect::<Vec<_>>(),
        })?;
    let picks = plan_column(key_column, base_keys.as_ref(), update_keys.as_ref())?;
    if updates.num_rows() == 0 {
        return Ok(base.clone());
    }
    run_kernel("upsert by key", || {
        interleave_record_batch(&[base, updates], &picks)
    })?
    .context(InterleaveSnafu {
        column: key_column,
        num_rows: picks.len(),
    })
}

/// Dispatches on the key column's type and plans the merge on its values.
fn plan_column(column: &str, base: &dyn Array, updates: &dyn Array) -> Result<Vec<(usize, usize)>> {
    // Downcast both key arrays with `$cast` and plan on their value iterators.
    macro_rules! plan_with {
        ($cast:expr) => {{
            let base = downcast(column, base, $cast)?;
            let updates = downcast(column, updates, $cast)?;
            plan(column, base.iter(), updates.iter())
        }};
    }
    match base.data_type() {
        DataType::Int8 => plan_with!(|a| a.as_primitive_opt::<Int8Type>()),
        DataType::Int16 => plan_with!(|a| a.as_primitive_opt::<Int16Type>()),
        DataType::Int32 => plan_with!(|a| a.as_primitive_opt::<Int32Type>()),
        DataType::Int64 => plan_with!(|a| a.as_primitive_opt::<Int64Type>()),
        DataType::UInt8 => plan_with!(|a| a.as_primitive_opt::<UInt8Type>()),
        DataType::UInt16 => plan_with!(|a| a.as_primitive_opt::<UInt16Type>()),
        DataType::UInt32 => plan_with!(|a| a.as_primitive_opt::<UInt32Type>()),
        DataType::UInt64 => plan_with!(|a| a.as_primitive_opt::<UInt64Type>()),
        DataType::Date32 => plan_with!(|a| a.as_primitive_opt::<Date32Type>()),
        DataType::Date64 => plan_with!(|a| a.as_primitive_opt::<Date64Type>()),
        DataType::Timestamp(TimeUnit::Second, _) => {
            plan_with!(|a| a.as_primitive_opt::<TimestampSecondType>())
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            plan_with!(|a| a.as_primitive_opt::<TimestampMillisecondType>())
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            plan_with!(|a| a.as_primitive_opt::<TimestampMicrosecondType>())
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            plan_with!(|a| a.as_primitive_opt::<TimestampNanosecondType>())
        }
        DataType::Boolean => plan_with!(|a| a.as_boolean_opt()),
        DataType::Utf8 => plan_with!(|a| a.as_string_opt::<i32>()),
        DataType::LargeUtf8 => plan_with!(|a| a.as_string_opt::<i64>()),
        DataType::Utf8View => plan_with!(|a| a.as_string_view_opt()),
        DataType::Binary => plan_with!(|a| a.as_binary_opt::<i32>()),
        DataType::LargeBinary => plan_with!(|a| a.as_binary_opt::<i64>()),
        DataType::BinaryView => plan_with!(|a| a.as_binary_view_opt()),
        DataType::FixedSizeBinary(_) => plan_with!(|a| a.as_fixed_size_binary_opt()),
        other => UnsupportedKeyTypeSnafu {
            column,
            data_type: other.clone(),
        }
        .fail(),
    }
}

/// Downcasts a key column to its concrete array type.
fn downcast<'a, T: ?Sized>(
    column: &str,
    array: &'a dyn Array,
    cast: impl FnOnce(&'a dyn Array) -> Option<&'a T>,
) -> Result<&'a T> {
    cast(array).context(KeyColumnArraySnafu {
        column,
        data_type: array.data_type().clone(),
    })
}

/// One distinct key of `updates`.
struct Slot {
    /// Row of the last update with this key: its values win.
    last: usize,
    /// Whether some base row has this key (then it is replaced there, not appended).
    matched: bool,
}

/// Plans the merge: the `(batch, row)` of every result row, in result order.
fn plan<K: Hash + Eq>(
    column: &str,
    base: impl IntoIterator<Item = Option<K>>,
    updates: impl IntoIterator<Item = Option<K>>,
) -> Result<Vec<(usize, usize)>> {
    // Distinct update keys in order of first appearance, and where each lives in `slots`.
    let mut slots: Vec<Slot> = Vec::new();
    let mut slot_of: HashMap<K, usize> = HashMap::new();
    for (row, key) in updates.into_iter().enumerate() {
        let key = key.context(NullKeySnafu {
            column,
            batch: "updates",
            row,
        })?;
        let next = slots.len();
        let index = *slot_of.entry(key).or_insert(next);
        match slots.get_mut(index) {
            Some(slot) => slot.last = row,
            None => slots.push(Slot {
                last: row,
                matched: false,
            }),
        }
    }

    let mut picks = Vec::new();
    for (row, key) in base.into_iter().enumerate() {
        let key = key.context(NullKeySnafu {
            column,
            batch: "base",
            row,
        })?;
        let replacement = slot_of.get(&key).and_then(|&index| slots.get_mut(index));
        picks.push(match replacement {
            Some(slot) => {
                slot.matched = true;
                (UPDATES, slot.last)
            }
            None => (BASE, row),
        });
    }
    picks.extend(
        slots
            .iter()
            .filter(|slot| !slot.matched)
            .map(|slot| (UPDATES, slot.last)),
    );
    Ok(picks)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        BooleanArray, FixedSizeBinaryArray, Float64Array, Int64Array, ListArray, StringArray,
        StringViewArray, StructArray, TimestampNanosecondArray,
    };
    use arrow_schema::{Field, Fields, Schema, SchemaRef};

    use super::*;
    use crate::{Error, batches_equal};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn rows(ids: &[Option<i64>], names: &[Option<&str>]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap()
    }

    fn ids(ids: &[i64], names: &[Option<&str>]) -> RecordBatch {
        rows(&ids.iter().copied().map(Some).collect::<Vec<_>>(), names)
    }

    #[test]
    fn replaces_in_place_and_appends_new_keys() {
        let base = ids(&[1, 2, 3], &[Some("a"), Some("b"), Some("c")]);
        let updates = ids(&[5, 2, 4], &[Some("e"), None, Some("d")]);
        let out = upsert_by_key(&base, &updates, "id").unwrap();
        let expected = ids(
            &[1, 2, 3, 5, 4],
            &[Some("a"), None, Some("c"), Some("e"), Some("d")],
        );
        assert!(batches_equal(&out, &expected), "{out:?}");
    }

    #[test]
    fn last_duplicate_update_wins() {
        let base = ids(&[1, 2], &[Some("a"), Some("b")]);
        let updates = ids(
            &[2, 7, 2, 7, 8],
            &[Some("b1"), Some("x1"), Some("b2"), Some("x2"), Some("y")],
        );
        let out = upsert_by_key(&base, &updates, "id").unwrap();
        // 7 first appears before 8, so it is appended first, with its last values.
        let expected = ids(
            &[1, 2, 7, 8],
            &[Some("a"), Some("b2"), Some("x2"), Some("y")],
        );
        assert!(batches_equal(&out, &expected), "{out:?}");
    }

    #[test]
    fn duplicate_base_keys_are_each_replaced() {
        let base = ids(&[1, 2, 1], &[Some("a"), Some("b"), Some("a2")]);
        let updates = ids(&[1], &[Some("z")]);
        let out = upsert_by_key(&base, &updates, "id").unwrap();
        assert!(batches_equal(
            &out,
            &ids(&[1, 2, 1], &[Some("z"), Some("b"), Some("z")])
        ));
    }

    #[test]
    fn empty_sides() {
        let base = ids(&[1, 2], &[Some("a"), None]);
        let empty = ids(&[], &[]);
        assert!(batches_equal(
            &upsert_by_key(&base, &empty, "id").unwrap(),
            &base
        ));
        assert!(batches_equal(
            &upsert_by_key(&empty, &base, "id").unwrap(),
            &base
        ));
        assert_eq!(upsert_by_key(&empty, &empty, "id").unwrap().num_rows(), 0);
    }

    #[test]
    fn null_keys_are_errors() {
        let good = ids(&[1], &[None]);
        let with_null = rows(&[Some(1), None], &[None, None]);
        let error = upsert_by_key(&with_null, &good, "id").unwrap_err();
        assert!(
            matches!(&error, Error::NullKey { batch: "base", row: 1, column, .. } if column == "id"),
            "{error:?}"
        );
        let error = upsert_by_key(&good, &with_null, "id").unwrap_err();
        assert!(
            matches!(
                &error,
                Error::NullKey {
                    batch: "updates",
                    row: 1,
                    ..
                }
            ),
            "{error:?}"
        );
        // Also when the updates are empty: a null key in base is invalid input either way.
        assert!(upsert_by_key(&with_null, &ids(&[], &[]), "id").is_err());
    }

    #[test]
    fn missing_key_column() {
        let b = ids(&[1], &[None]);
        let error = upsert_by_key(&b, &b, "nope").unwrap_err();
        assert!(
            matches!(&error, Error::KeyColumnNotFound { column, columns, .. }
                if column == "nope" && columns == &["id".to_owned(), "name".to_owned()]),
            "{error:?}"
        );
        assert!(error.to_string().contains("[id, name]"), "{error}");
    }

    #[test]
    fn schema_mismatch() {
        let b = ids(&[1], &[None]);
        let other = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![1]))],
        )
        .unwrap();
        assert!(matches!(
            upsert_by_key(&b, &other, "id"),
            Err(Error::SchemaMismatch { .. })
        ));
    }

    fn single(field: Field, column: Arc<dyn Array>) -> RecordBatch {
        RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![column]).unwrap()
    }

    #[test]
    fn unsupported_key_types_are_named() {
        let list = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(1)])]);
        let list_batch = single(
            Field::new("k", list.data_type().clone(), true),
            Arc::new(list),
        );
        let inner = Fields::from(vec![Field::new("x", DataType::Int64, true)]);
        let strukt = StructArray::new(
            inner.clone(),
            vec![Arc::new(Int64Array::from(vec![1]))],
            None,
        );
        let struct_batch = single(
            Field::new("k", DataType::Struct(inner), true),
            Arc::new(strukt),
        );
        let float_batch = single(
            Field::new("k", DataType::Float64, true),
            Arc::new(Float64Array::from(vec![1.0])),
        );
        for batch in [list_batch, struct_batch, float_batch] {
            let error = upsert_by_key(&batch, &batch, "k").unwrap_err();
            let expected_type = batch.schema().field(0).data_type().clone();
            assert!(
                matches!(&error, Error::UnsupportedKeyType { data_type, column, .. }
                    if *data_type == expected_type && column == "k"),
                "{error:?}"
            );
            assert!(
                error.to_string().contains(&expected_type.to_string()),
                "{error}"
            );
        }
    }

    #[test]
    fn string_view_boolean_timestamp_and_fixed_binary_keys() {
        let view = |keys: Vec<&str>| {
            let n = keys.len();
            RecordBatch::try_new(
                Arc::new(Schema::new(vec![
                    Field::new("k", DataType::Utf8View, false),
                    Field::new("v", DataType::Int64, false),
                ])),
                vec![
                    Arc::new(StringViewArray::from(keys)),
                    Arc::new(Int64Array::from_iter_values(0..i64::try_from(n).unwrap())),
                ],
            )
            .unwrap()
        };
        let out = upsert_by_key(
            &view(vec!["a long string value over twelve bytes", "b"]),
            &view(vec!["b", "c", "a long string value over twelve bytes"]),
            "k",
        )
        .unwrap();
        assert_eq!(
            out.column(1).as_primitive::<Int64Type>().values().to_vec(),
            vec![2, 0, 1]
        );

        let flags = single(
            Field::new("k", DataType::Boolean, false),
            Arc::new(BooleanArray::from(vec![true, false])),
        );
        let flip = single(
            Field::new("k", DataType::Boolean, false),
            Arc::new(BooleanArray::from(vec![false])),
        );
        assert_eq!(upsert_by_key(&flags, &flip, "k").unwrap().num_rows(), 2);

        let ts = |v: Vec<i64>| {
            let array = TimestampNanosecondArray::from(v).with_timezone("+01:00");
            single(
                Field::new("k", array.data_type().clone(), false),
                Arc::new(array),
            )
        };
        let out = upsert_by_key(&ts(vec![1, 2]), &ts(vec![2, 3]), "k").unwrap();
        assert!(batches_equal(&out, &ts(vec![1, 2, 3])));

        let fsb = |v: Vec<[u8; 2]>| {
            let array = FixedSizeBinaryArray::try_from_iter(v.into_iter()).unwrap();
            single(
                Field::new("k", DataType::FixedSizeBinary(2), false),
                Arc::new(array),
            )
        };
        let out =
            upsert_by_key(&fsb(vec![*b"ab", *b"cd"]), &fsb(vec![*b"cd", *b"ef"]), "k").unwrap();
        assert!(batches_equal(&out, &fsb(vec![*b"ab", *b"cd", *b"ef"])));
    }

    #[test]
    fn plan_matches_sequential_model() {
        // Hand-checked plan: base keys [1, 2, 1], updates [3, 1, 3, 4].
        let picks = plan(
            "k",
            [Some(1), Some(2), Some(1)],
            [Some(3), Some(1), Some(3), Some(4)],
        )
        .unwrap();
        assert_eq!(
            picks,
            vec![
                (UPDATES, 1),
                (BASE, 1),
                (UPDATES, 1),
                (UPDATES, 2),
                (UPDATES, 3)
            ]
        );
    }
}
