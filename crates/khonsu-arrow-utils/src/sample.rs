//! Sample columns of every Arrow data type, for tests of code that handles
//! arbitrary batches: this crate's own helper tests, the storage adapters'
//! round-trip tests, and the conformance checks of a user's adapter.
//!
//! Row `i` of a column made from `seed` holds a value derived from
//! `seed + i`, or null when `(seed + i) % 4 == 1`; every nested type has
//! nulls at more than one level, strings longer than 12 bytes (stored out of
//! line by the view types) alternate with short ones.
//!
//! ```
//! use khonsu_arrow_utils::sample;
//!
//! for kind in sample::types() {
//!     let column = kind.column(7, 5)?;
//!     assert_eq!(column.len(), 5, "{}", kind.name());
//!     let batch = kind.batch(7, 5)?; // [id: Int64 not null, v: <type> nullable]
//!     assert_eq!(batch.num_columns(), 2);
//! }
//! # Ok::<(), arrow_schema::ArrowError>(())
//! ```

use std::sync::Arc;

use arrow_array::builder::{
    Int32Builder, LargeListBuilder, LargeListViewBuilder, ListViewBuilder, MapBuilder,
    PrimitiveDictionaryBuilder, PrimitiveRunBuilder, StringBuilder, StringRunBuilder,
};
use arrow_array::types::{
    ArrowPrimitiveType, Date32Type, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type,
    Decimal256Type, DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType,
    DurationSecondType, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, IntervalDayTimeType, IntervalMonthDayNanoType, IntervalYearMonthType,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{
    ArrayRef, BinaryArray, BinaryViewArray, BooleanArray, DictionaryArray, FixedSizeBinaryArray,
    FixedSizeListArray, Int32Array, Int64Array, LargeBinaryArray, LargeStringArray, ListArray,
    NullArray, PrimitiveArray, RecordBatch, StringArray, StringViewArray, StructArray, UnionArray,
};
use arrow_buffer::{ArrowNativeType, NullBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, UnionFields};

type Make = fn(usize, usize) -> Result<ArrayRef, ArrowError>;

/// One data type of the sample set: its name and a maker of columns.
#[derive(Clone, Copy)]
pub struct SampleType {
    name: &'static str,
    make: Make,
}

impl std::fmt::Debug for SampleType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SampleType").field(&self.name).finish()
    }
}

impl SampleType {
    /// The type's name, e.g. `"Dictionary<Int8, Utf8>"`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A column of `len` rows from `seed`.
    ///
    /// # Errors
    /// Arrow's error if the column cannot be built (it can for every type
    /// listed; the `Result` keeps this module free of panics).
    pub fn column(&self, seed: usize, len: usize) -> Result<ArrayRef, ArrowError> {
        (self.make)(seed, len)
    }

    /// A batch `[id: Int64 not null, v: <this type> nullable]` of `len`
    /// rows, ids `seed..seed + len`.
    ///
    /// # Errors
    /// As for [`column`](Self::column).
    pub fn batch(&self, seed: usize, len: usize) -> Result<RecordBatch, ArrowError> {
        let ids = (seed..seed + len)
            .map(i64::usize_as)
            .collect::<Int64Array>();
        with_ids(Arc::new(ids), self.column(seed, len)?)
    }
}

/// A batch `[id, v]` of the given id column and typed column.
///
/// # Errors
/// Arrow's error when the lengths differ or `ids` is not `Int64`.
pub fn with_ids(ids: ArrayRef, column: ArrayRef) -> Result<RecordBatch, ArrowError> {
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", column.data_type().clone(), true),
    ]);
    RecordBatch::try_new(Arc::new(schema), vec![ids, column])
}

fn values(seed: usize, len: usize) -> impl Iterator<Item = Option<usize>> {
    (seed..seed + len).map(|v| (v % 4 != 1).then_some(v % 97))
}

fn text(v: usize) -> String {
    if v.is_multiple_of(3) {
        // Longer than 12 bytes, so view types store it out of line.
        format!("a rather long string value number {v}")
    } else {
        format!("v{v}")
    }
}

fn int32(v: usize) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn prim<T: ArrowPrimitiveType>(seed: usize, len: usize) -> ArrayRef {
    Arc::new(
        values(seed, len)
            .map(|v| v.map(T::Native::usize_as))
            .collect::<PrimitiveArray<T>>(),
    )
}

fn strings(seed: usize, len: usize) -> Vec<Option<String>> {
    values(seed, len).map(|v| v.map(text)).collect()
}

fn bytes(seed: usize, len: usize) -> impl Iterator<Item = Option<Vec<u8>>> {
    strings(seed, len)
        .into_iter()
        .map(|s| s.map(String::into_bytes))
}

fn utf8(seed: usize, len: usize) -> ArrayRef {
    Arc::new(strings(seed, len).into_iter().collect::<StringArray>())
}

fn large_utf8(seed: usize, len: usize) -> ArrayRef {
    Arc::new(strings(seed, len).into_iter().collect::<LargeStringArray>())
}

fn utf8_view(seed: usize, len: usize) -> ArrayRef {
    Arc::new(strings(seed, len).into_iter().collect::<StringViewArray>())
}

fn binary(seed: usize, len: usize) -> ArrayRef {
    Arc::new(bytes(seed, len).collect::<BinaryArray>())
}

fn large_binary(seed: usize, len: usize) -> ArrayRef {
    Arc::new(bytes(seed, len).collect::<LargeBinaryArray>())
}

fn binary_view(seed: usize, len: usize) -> ArrayRef {
    Arc::new(bytes(seed, len).collect::<BinaryViewArray>())
}

fn fixed_size_binary(seed: usize, len: usize) -> Result<ArrayRef, ArrowError> {
    let rows = values(seed, len).map(|v| v.map(|v| [u8::try_from(v).unwrap_or(u8::MAX), 1, 2]));
    Ok(Arc::new(
        FixedSizeBinaryArray::try_from_sparse_iter_with_size(rows, 3)?,
    ))
}

fn boolean(seed: usize, len: usize) -> ArrayRef {
    Arc::new(
        values(seed, len)
            .map(|v| v.map(|v| v % 2 == 0))
            .collect::<BooleanArray>(),
    )
}

fn null(_seed: usize, len: usize) -> ArrayRef {
    Arc::new(NullArray::new(len))
}

fn timestamp_with_zone(seed: usize, len: usize) -> ArrayRef {
    let array = values(seed, len)
        .map(|v| v.map(i64::usize_as))
        .collect::<PrimitiveArray<TimestampNanosecondType>>()
        .with_timezone("Europe/Paris");
    Arc::new(array)
}

fn decimal128(seed: usize, len: usize) -> Result<ArrayRef, ArrowError> {
    let array = values(seed, len)
        .map(|v| v.map(i128::usize_as))
        .collect::<PrimitiveArray<Decimal128Type>>()
        .with_precision_and_scale(10, 2)?;
    Ok(Arc::new(array))
}

fn list(seed: usize, len: usize) -> ArrayRef {
    let rows = values(seed, len).map(|v| v.map(|v| vec![Some(int32(v)), None, Some(1)]));
    Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(rows))
}

fn large_list(seed: usize, len: usize) -> ArrayRef {
    let mut builder = LargeListBuilder::new(StringBuilder::new());
    for v in values(seed, len) {
        match v {
            Some(v) => {
                builder.values().append_value(text(v));
                builder.values().append_null();
                builder.append(true);
            }
            None => builder.append(false),
        }
    }
    Arc::new(builder.finish())
}

fn fixed_size_list(seed: usize, len: usize) -> ArrayRef {
    let rows = values(seed, len).map(|v| v.map(|v| vec![Some(int32(v)), None]));
    Arc::new(FixedSizeListArray::from_iter_primitive::<Int32Type, _, _>(
        rows, 2,
    ))
}

fn list_view(seed: usize, len: usize) -> ArrayRef {
    let mut builder = ListViewBuilder::new(Int32Builder::new());
    for v in values(seed, len) {
        builder.append_option(v.map(|v| vec![Some(int32(v)), None]));
    }
    Arc::new(builder.finish())
}

fn large_list_view(seed: usize, len: usize) -> ArrayRef {
    let mut builder = LargeListViewBuilder::new(Int32Builder::new());
    for v in values(seed, len) {
        builder.append_option(v.map(|v| vec![Some(int32(v))]));
    }
    Arc::new(builder.finish())
}

fn structure(seed: usize, len: usize) -> Result<ArrayRef, ArrowError> {
    let fields = Fields::from(vec![
        Field::new("n", DataType::Int32, true),
        Field::new("s", DataType::Utf8, true),
    ]);
    let rows: Vec<Option<usize>> = values(seed, len).collect();
    let n = rows.iter().map(|v| v.map(int32)).collect::<Int32Array>();
    // The string child has its own nulls, independent of the struct's.
    let s = (seed..seed + len)
        .map(|v| (v % 5 != 0).then(|| text(v)))
        .collect::<StringArray>();
    let nulls = rows.iter().map(Option::is_some).collect::<NullBuffer>();
    Ok(Arc::new(StructArray::try_new(
        fields,
        vec![Arc::new(n), Arc::new(s)],
        Some(nulls),
    )?))
}

fn map(seed: usize, len: usize) -> Result<ArrayRef, ArrowError> {
    let mut builder = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
    for v in values(seed, len) {
        match v {
            Some(v) => {
                builder.keys().append_value(text(v));
                builder.values().append_value(int32(v));
                builder.keys().append_value("other");
                builder.values().append_null();
                builder.append(true)?;
            }
            None => builder.append(false)?,
        }
    }
    Ok(Arc::new(builder.finish()))
}

fn dictionary_utf8(seed: usize, len: usize) -> ArrayRef {
    let rows = strings(seed, len);
    Arc::new(
        rows.iter()
            .map(Option::as_deref)
            .collect::<DictionaryArray<Int8Type>>(),
    )
}

fn dictionary_int64(seed: usize, len: usize) -> ArrayRef {
    let mut builder = PrimitiveDictionaryBuilder::<UInt16Type, Int64Type>::new();
    for v in values(seed, len) {
        builder.append_option(v.map(|v| i64::usize_as(v % 3)));
    }
    Arc::new(builder.finish())
}

fn run_end_utf8(seed: usize, len: usize) -> ArrayRef {
    let mut builder = StringRunBuilder::<Int32Type>::new();
    // Pairs of equal neighbours make real runs; nulls stay where `values` puts them.
    for (i, v) in values(seed, len).enumerate() {
        builder.append_option(v.map(|_| text(seed + i / 2)));
    }
    Arc::new(builder.finish())
}

fn run_end_int64(seed: usize, len: usize) -> ArrayRef {
    let mut builder = PrimitiveRunBuilder::<Int16Type, Int64Type>::new();
    for (i, v) in values(seed, len).enumerate() {
        builder.append_option(v.map(|_| i64::usize_as((seed + i) / 3)));
    }
    Arc::new(builder.finish())
}

fn union_fields() -> Result<UnionFields, ArrowError> {
    UnionFields::try_new(
        [0, 1],
        [
            Field::new("i", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ],
    )
}

fn sparse_union(seed: usize, len: usize) -> Result<ArrayRef, ArrowError> {
    let rows: Vec<Option<usize>> = values(seed, len).collect();
    let type_ids: ScalarBuffer<i8> = (seed..seed + len).map(|v| i8::from(v % 2 == 0)).collect();
    let ints = rows.iter().map(|v| v.map(int32)).collect::<Int32Array>();
    let strs = rows.iter().map(|v| v.map(text)).collect::<StringArray>();
    Ok(Arc::new(UnionArray::try_new(
        union_fields()?,
        type_ids,
        None,
        vec![Arc::new(ints), Arc::new(strs)],
    )?))
}

fn dense_union(seed: usize, len: usize) -> Result<ArrayRef, ArrowError> {
    let mut type_ids = Vec::new();
    let mut offsets = Vec::new();
    let mut ints = Vec::new();
    let mut strs = Vec::new();
    for (i, v) in values(seed, len).enumerate() {
        if (seed + i).is_multiple_of(2) {
            type_ids.push(1_i8);
            offsets.push(int32(strs.len()));
            strs.push(v.map(text));
        } else {
            type_ids.push(0_i8);
            offsets.push(int32(ints.len()));
            ints.push(v.map(int32));
        }
    }
    Ok(Arc::new(UnionArray::try_new(
        union_fields()?,
        type_ids.into(),
        Some(offsets.into()),
        vec![
            Arc::new(Int32Array::from(ints)),
            Arc::new(StringArray::from(strs)),
        ],
    )?))
}

const fn sample(name: &'static str, make: Make) -> SampleType {
    SampleType { name, make }
}

/// A one-row batch whose column `v` is an `Int64` wrapped in `depth` lists:
/// for tests of nesting limits (Arrow IPC writes a `List` nested 100 deep,
/// and its reader refuses it past a depth of about 62).
///
/// ```
/// let batch = khonsu_arrow_utils::sample::nested_list(3)?;
/// assert_eq!(batch.schema().field(0).data_type().to_string(), "List(List(List(Int64)))");
/// # Ok::<(), arrow_schema::ArrowError>(())
/// ```
///
/// # Errors
/// None in practice (Arrow's constructors check their inputs).
pub fn nested_list(depth: usize) -> Result<RecordBatch, ArrowError> {
    nested(depth, |array| {
        let field = Arc::new(Field::new("item", array.data_type().clone(), true));
        let offsets = arrow_buffer::OffsetBuffer::from_lengths([array.len()]);
        Ok(Arc::new(ListArray::try_new(field, offsets, array, None)?))
    })
}

/// Like [`nested_list`], with one-field structs (`f`) instead of lists.
///
/// # Errors
/// None in practice (Arrow's constructors check their inputs).
pub fn nested_struct(depth: usize) -> Result<RecordBatch, ArrowError> {
    nested(depth, |array| {
        let fields = Fields::from(vec![Field::new("f", array.data_type().clone(), true)]);
        Ok(Arc::new(StructArray::try_new(fields, vec![array], None)?))
    })
}

fn nested(
    depth: usize,
    wrap: impl Fn(ArrayRef) -> Result<ArrayRef, ArrowError>,
) -> Result<RecordBatch, ArrowError> {
    let mut array: ArrayRef = Arc::new(Int64Array::from(vec![7]));
    for _ in 0..depth {
        array = wrap(array)?;
    }
    RecordBatch::try_from_iter([("v", array)])
}

/// Every data type of the sample set: each primitive, temporal and decimal
/// type, the string and binary types with their large and view forms,
/// lists (plain, large, fixed-size, view), struct, map, dictionaries, run-end
/// encodings and both unions.
#[must_use]
pub fn types() -> Vec<SampleType> {
    vec![
        sample("Null", |s, l| Ok(null(s, l))),
        sample("Boolean", |s, l| Ok(boolean(s, l))),
        sample("Int8", |s, l| Ok(prim::<Int8Type>(s, l))),
        sample("Int16", |s, l| Ok(prim::<Int16Type>(s, l))),
        sample("Int32", |s, l| Ok(prim::<Int32Type>(s, l))),
        sample("Int64", |s, l| Ok(prim::<Int64Type>(s, l))),
        sample("UInt8", |s, l| Ok(prim::<UInt8Type>(s, l))),
        sample("UInt16", |s, l| Ok(prim::<UInt16Type>(s, l))),
        sample("UInt32", |s, l| Ok(prim::<UInt32Type>(s, l))),
        sample("UInt64", |s, l| Ok(prim::<UInt64Type>(s, l))),
        sample("Float16", |s, l| Ok(prim::<Float16Type>(s, l))),
        sample("Float32", |s, l| Ok(prim::<Float32Type>(s, l))),
        sample("Float64", |s, l| Ok(prim::<Float64Type>(s, l))),
        sample("Utf8", |s, l| Ok(utf8(s, l))),
        sample("LargeUtf8", |s, l| Ok(large_utf8(s, l))),
        sample("Utf8View", |s, l| Ok(utf8_view(s, l))),
        sample("Binary", |s, l| Ok(binary(s, l))),
        sample("LargeBinary", |s, l| Ok(large_binary(s, l))),
        sample("BinaryView", |s, l| Ok(binary_view(s, l))),
        sample("FixedSizeBinary", fixed_size_binary),
        sample("Date32", |s, l| Ok(prim::<Date32Type>(s, l))),
        sample("Date64", |s, l| Ok(prim::<Date64Type>(s, l))),
        sample("Time32(s)", |s, l| Ok(prim::<Time32SecondType>(s, l))),
        sample("Time32(ms)", |s, l| Ok(prim::<Time32MillisecondType>(s, l))),
        sample("Time64(us)", |s, l| Ok(prim::<Time64MicrosecondType>(s, l))),
        sample("Time64(ns)", |s, l| Ok(prim::<Time64NanosecondType>(s, l))),
        sample("Timestamp(s)", |s, l| Ok(prim::<TimestampSecondType>(s, l))),
        sample("Timestamp(ms)", |s, l| {
            Ok(prim::<TimestampMillisecondType>(s, l))
        }),
        sample("Timestamp(us)", |s, l| {
            Ok(prim::<TimestampMicrosecondType>(s, l))
        }),
        sample("Timestamp(ns)", |s, l| {
            Ok(prim::<TimestampNanosecondType>(s, l))
        }),
        sample("Timestamp(ns, tz)", |s, l| Ok(timestamp_with_zone(s, l))),
        sample("Duration(s)", |s, l| Ok(prim::<DurationSecondType>(s, l))),
        sample("Duration(ms)", |s, l| {
            Ok(prim::<DurationMillisecondType>(s, l))
        }),
        sample("Duration(us)", |s, l| {
            Ok(prim::<DurationMicrosecondType>(s, l))
        }),
        sample("Duration(ns)", |s, l| {
            Ok(prim::<DurationNanosecondType>(s, l))
        }),
        sample("Interval(YearMonth)", |s, l| {
            Ok(prim::<IntervalYearMonthType>(s, l))
        }),
        sample("Interval(DayTime)", |s, l| {
            Ok(prim::<IntervalDayTimeType>(s, l))
        }),
        sample("Interval(MonthDayNano)", |s, l| {
            Ok(prim::<IntervalMonthDayNanoType>(s, l))
        }),
        sample("Decimal32", |s, l| Ok(prim::<Decimal32Type>(s, l))),
        sample("Decimal64", |s, l| Ok(prim::<Decimal64Type>(s, l))),
        sample("Decimal128(10, 2)", decimal128),
        sample("Decimal256", |s, l| Ok(prim::<Decimal256Type>(s, l))),
        sample("List<Int32>", |s, l| Ok(list(s, l))),
        sample("LargeList<Utf8>", |s, l| Ok(large_list(s, l))),
        sample("FixedSizeList<Int32, 2>", |s, l| Ok(fixed_size_list(s, l))),
        sample("ListView<Int32>", |s, l| Ok(list_view(s, l))),
        sample("LargeListView<Int32>", |s, l| Ok(large_list_view(s, l))),
        sample("Struct", structure),
        sample("Map<Utf8, Int32>", map),
        sample("Dictionary<Int8, Utf8>", |s, l| Ok(dictionary_utf8(s, l))),
        sample("Dictionary<UInt16, Int64>", |s, l| {
            Ok(dictionary_int64(s, l))
        }),
        sample("RunEndEncoded<Int32, Utf8>", |s, l| Ok(run_end_utf8(s, l))),
        sample("RunEndEncoded<Int16, Int64>", |s, l| {
            Ok(run_end_int64(s, l))
        }),
        sample("Union(Sparse)", sparse_union),
        sample("Union(Dense)", dense_union),
    ]
}
