//! Every helper on every Arrow data type: correct results, or a clean error, never a panic.
//!
//! Each case builds a nullable column of one type and runs append, concat, filter, delete, take,
//! upsert (by an `Int64` id column, and by the typed column itself) and equality on it, fresh and
//! sliced. Results are checked row by row against the inputs with 1-row slices and
//! `batches_equal`, which uses no `arrow-select` kernel, so the oracle is independent of the code
//! under test. Each case runs under `catch_unwind`; the test fails listing every case that
//! panicked or produced a wrong result.

use std::panic::{self, AssertUnwindSafe};
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
    Array, ArrayRef, BinaryArray, BinaryViewArray, BooleanArray, DictionaryArray,
    FixedSizeBinaryArray, FixedSizeListArray, Int32Array, Int64Array, LargeBinaryArray,
    LargeStringArray, ListArray, NullArray, PrimitiveArray, RecordBatch, StringArray,
    StringViewArray, StructArray, UnionArray,
};
use arrow_buffer::{ArrowNativeType, BooleanBuffer, NullBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Fields, Schema, UnionFields};
type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

use khonsu_arrow_utils::{
    Error, append, batches_equal, byte_size, concat, delete_rows, filter_rows, take_rows,
    upsert_by_key,
};

/// Builds an array of `len` values from `seed`: row `i` holds a value derived from `seed + i`,
/// or null when `(seed + i) % 4 == 1`.
type Make = fn(usize, usize) -> TestResult<ArrayRef>;

/// Whether the column's type is a supported upsert key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Key {
    Supported,
    Unsupported,
}

struct Case {
    name: &'static str,
    make: Make,
    key: Key,
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
    Arc::new(
        strings(seed, len)
            .into_iter()
            .map(|s| s.map(String::into_bytes))
            .collect::<BinaryArray>(),
    )
}

fn large_binary(seed: usize, len: usize) -> ArrayRef {
    Arc::new(
        strings(seed, len)
            .into_iter()
            .map(|s| s.map(String::into_bytes))
            .collect::<LargeBinaryArray>(),
    )
}

fn binary_view(seed: usize, len: usize) -> ArrayRef {
    Arc::new(
        strings(seed, len)
            .into_iter()
            .map(|s| s.map(String::into_bytes))
            .collect::<BinaryViewArray>(),
    )
}

fn fixed_size_binary(seed: usize, len: usize) -> TestResult<ArrayRef> {
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

fn decimal128(seed: usize, len: usize) -> TestResult<ArrayRef> {
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

fn structure(seed: usize, len: usize) -> TestResult<ArrayRef> {
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

fn map(seed: usize, len: usize) -> TestResult<ArrayRef> {
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

fn union_fields() -> TestResult<UnionFields> {
    Ok(UnionFields::try_new(
        [0, 1],
        [
            Field::new("i", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ],
    )?)
}

fn sparse_union(seed: usize, len: usize) -> TestResult<ArrayRef> {
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

fn dense_union(seed: usize, len: usize) -> TestResult<ArrayRef> {
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

/// `case!(name, make, key)` for an infallible `make`, `case!(try name, make, key)` for one that
/// returns a `TestResult`.
macro_rules! case {
    (try $name:literal, $make:expr, $key:ident) => {
        Case {
            name: $name,
            make: $make,
            key: Key::$key,
        }
    };
    ($name:literal, $make:expr, $key:ident) => {
        Case {
            name: $name,
            make: |seed, len| Ok($make(seed, len)),
            key: Key::$key,
        }
    };
}

fn cases() -> Vec<Case> {
    vec![
        case!("Null", null, Unsupported),
        case!("Boolean", boolean, Supported),
        case!("Int8", prim::<Int8Type>, Supported),
        case!("Int16", prim::<Int16Type>, Supported),
        case!("Int32", prim::<Int32Type>, Supported),
        case!("Int64", prim::<Int64Type>, Supported),
        case!("UInt8", prim::<UInt8Type>, Supported),
        case!("UInt16", prim::<UInt16Type>, Supported),
        case!("UInt32", prim::<UInt32Type>, Supported),
        case!("UInt64", prim::<UInt64Type>, Supported),
        case!("Float16", prim::<Float16Type>, Unsupported),
        case!("Float32", prim::<Float32Type>, Unsupported),
        case!("Float64", prim::<Float64Type>, Unsupported),
        case!("Utf8", utf8, Supported),
        case!("LargeUtf8", large_utf8, Supported),
        case!("Utf8View", utf8_view, Supported),
        case!("Binary", binary, Supported),
        case!("LargeBinary", large_binary, Supported),
        case!("BinaryView", binary_view, Supported),
        case!(try "FixedSizeBinary", fixed_size_binary, Supported),
        case!("Date32", prim::<Date32Type>, Supported),
        case!("Date64", prim::<Date64Type>, Supported),
        case!("Time32(s)", prim::<Time32SecondType>, Unsupported),
        case!("Time32(ms)", prim::<Time32MillisecondType>, Unsupported),
        case!("Time64(us)", prim::<Time64MicrosecondType>, Unsupported),
        case!("Time64(ns)", prim::<Time64NanosecondType>, Unsupported),
        case!("Timestamp(s)", prim::<TimestampSecondType>, Supported),
        case!("Timestamp(ms)", prim::<TimestampMillisecondType>, Supported),
        case!("Timestamp(us)", prim::<TimestampMicrosecondType>, Supported),
        case!("Timestamp(ns)", prim::<TimestampNanosecondType>, Supported),
        case!("Timestamp(ns, tz)", timestamp_with_zone, Supported),
        case!("Duration(s)", prim::<DurationSecondType>, Unsupported),
        case!("Duration(ms)", prim::<DurationMillisecondType>, Unsupported),
        case!("Duration(us)", prim::<DurationMicrosecondType>, Unsupported),
        case!("Duration(ns)", prim::<DurationNanosecondType>, Unsupported),
        case!(
            "Interval(YearMonth)",
            prim::<IntervalYearMonthType>,
            Unsupported
        ),
        case!(
            "Interval(DayTime)",
            prim::<IntervalDayTimeType>,
            Unsupported
        ),
        case!(
            "Interval(MonthDayNano)",
            prim::<IntervalMonthDayNanoType>,
            Unsupported
        ),
        case!("Decimal32", prim::<Decimal32Type>, Unsupported),
        case!("Decimal64", prim::<Decimal64Type>, Unsupported),
        case!(try "Decimal128(10, 2)", decimal128, Unsupported),
        case!("Decimal256", prim::<Decimal256Type>, Unsupported),
        case!("List<Int32>", list, Unsupported),
        case!("LargeList<Utf8>", large_list, Unsupported),
        case!("FixedSizeList<Int32, 2>", fixed_size_list, Unsupported),
        case!("ListView<Int32>", list_view, Unsupported),
        case!("LargeListView<Int32>", large_list_view, Unsupported),
        case!(try "Struct", structure, Unsupported),
        case!(try "Map<Utf8, Int32>", map, Unsupported),
        case!("Dictionary<Int8, Utf8>", dictionary_utf8, Unsupported),
        case!("Dictionary<UInt16, Int64>", dictionary_int64, Unsupported),
        case!("RunEndEncoded<Int32, Utf8>", run_end_utf8, Unsupported),
        case!("RunEndEncoded<Int16, Int64>", run_end_int64, Unsupported),
        case!(try "Union(Sparse)", sparse_union, Unsupported),
        case!(try "Union(Dense)", dense_union, Unsupported),
    ]
}

/// A batch `[id: Int64 not null, v: <type> nullable]`.
fn batch(ids: impl IntoIterator<Item = i64>, column: ArrayRef) -> TestResult<RecordBatch> {
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", column.data_type().clone(), true),
    ]);
    let ids: Int64Array = ids.into_iter().collect();
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(ids), column],
    )?)
}

/// Asserts that row `i` of `out` equals `expected[i]` (a row of some input batch).
fn assert_rows(what: &str, out: &RecordBatch, expected: &[(&RecordBatch, usize)]) {
    assert_eq!(out.num_rows(), expected.len(), "{what}: row count");
    for (i, (source, row)) in expected.iter().enumerate() {
        assert!(
            batches_equal(&out.slice(i, 1), &source.slice(*row, 1)),
            "{what}: row {i} differs from source row {row}"
        );
    }
}

fn rows_of(batch: &RecordBatch) -> Vec<(&RecordBatch, usize)> {
    (0..batch.num_rows()).map(|row| (batch, row)).collect()
}

fn key_equal(a: &RecordBatch, i: usize, b: &RecordBatch, j: usize) -> bool {
    a.column(1).slice(i, 1).to_data() == b.column(1).slice(j, 1).to_data()
}

/// Upsert by applying update rows one at a time, over references to input rows.
fn sequential_upsert<'a>(
    base: &'a RecordBatch,
    updates: &'a RecordBatch,
) -> Vec<(&'a RecordBatch, usize)> {
    let mut out = rows_of(base);
    for j in 0..updates.num_rows() {
        let mut found = false;
        for slot in &mut out {
            if key_equal(slot.0, slot.1, updates, j) {
                *slot = (updates, j);
                found = true;
            }
        }
        if !found {
            out.push((updates, j));
        }
    }
    out
}

/// A boolean mask with explicit value bits and validity.
fn mask(values: &[bool], valid: &[bool]) -> BooleanArray {
    BooleanArray::new(
        BooleanBuffer::from(values.to_vec()),
        Some(NullBuffer::from(valid.to_vec())),
    )
}

fn check_pair(case: &Case, a: &RecordBatch, b: &RecordBatch) -> TestResult {
    let name = case.name;

    // append / concat keep order and nulls.
    let ab = append(a, b)?;
    let mut expected = rows_of(a);
    expected.extend(rows_of(b));
    assert_rows(&format!("{name} append"), &ab, &expected);
    assert_eq!(
        ab.column(1).logical_null_count(),
        a.column(1).logical_null_count() + b.column(1).logical_null_count(),
        "{name} append: null count"
    );
    let aba = concat(&[a.clone(), b.clone(), a.clone()])?;
    expected.extend(rows_of(a));
    assert_rows(&format!("{name} concat"), &aba, &expected);

    // filter: true keeps, false and null drop. The null slot's value bit is set, so a helper
    // that ignored validity would keep it.
    let keep = mask(
        &[true, true, false, true, true],
        &[true, false, true, true, true],
    );
    let kept = filter_rows(a, &keep)?;
    assert_rows(&format!("{name} filter"), &kept, &[(a, 0), (a, 3), (a, 4)]);

    // delete: true deletes, null keeps (again with the null slot's value bit set).
    let delete = mask(
        &[true, true, false, true, false],
        &[true, false, true, true, true],
    );
    let rest = delete_rows(a, &delete)?;
    assert_rows(&format!("{name} delete"), &rest, &[(a, 1), (a, 2), (a, 4)]);

    // take: reorder and repeat; out of range is an error.
    let taken = take_rows(a, &[4, 0, 0, 2])?;
    assert_rows(
        &format!("{name} take"),
        &taken,
        &[(a, 4), (a, 0), (a, 0), (a, 2)],
    );
    assert!(matches!(
        take_rows(a, &[1, 5]),
        Err(Error::IndexOutOfBounds { index: 5, .. })
    ));

    // equality.
    assert!(batches_equal(a, &a.clone()), "{name}: a == a");
    assert!(!batches_equal(a, b), "{name}: a != b (lengths differ)");
    let swapped = take_rows(a, &[1, 0, 2, 3, 4])?;
    assert!(!batches_equal(a, &swapped), "{name}: rows 0 and 1 swapped");

    // upsert by the id column: replaces ids 3 and 0 in place, appends 10 and 11.
    let updates = batch([3, 10, 0, 11], b.column(1).clone())?;
    let merged = upsert_by_key(a, &updates, "id")?;
    assert_rows(
        &format!("{name} upsert by id"),
        &merged,
        &[
            (&updates, 2),
            (a, 1),
            (a, 2),
            (&updates, 0),
            (a, 4),
            (&updates, 1),
            (&updates, 3),
        ],
    );

    // upsert by the typed column itself.
    match (case.key, upsert_by_key(a, b, "v")) {
        (Key::Supported, Err(Error::NullKey { .. })) => {}
        (Key::Unsupported, Err(Error::UnsupportedKeyType { data_type, .. })) => {
            assert_eq!(&data_type, a.schema().field(1).data_type(), "{name}");
        }
        (key, other) => panic!("{name}: upsert by v ({key:?}) gave {other:?}"),
    }
    if case.key == Key::Supported {
        // Without the nulls, the result equals upserting one row at a time.
        let not_null = |x: &RecordBatch| {
            let mask = (0..x.num_rows())
                .map(|i| Some(x.column(1).is_valid(i)))
                .collect::<BooleanArray>();
            filter_rows(x, &mask)
        };
        let (base, updates) = (not_null(&aba)?, not_null(&append(b, a)?)?);
        let merged = upsert_by_key(&base, &updates, "v")?;
        assert_rows(
            &format!("{name} upsert by v"),
            &merged,
            &sequential_upsert(&base, &updates),
        );
    }

    assert!(byte_size(&ab) > 0, "{name}: byte size");
    Ok(())
}

fn check_case(case: &Case) -> TestResult {
    let make = case.make;
    let fresh = batch(0..5, make(0, 5)?)?;
    let b = batch(100..104, make(100, 4)?)?;
    check_pair(case, &fresh, &b)?;
    // The same on sliced inputs, whose arrays have non-zero offsets.
    // Ids are chosen so that the sliced batches hold ids 0..5 and 100..104 again.
    let sliced = batch(-2..7, make(0, 9)?)?.slice(2, 5);
    let sliced_b = batch(97..107, make(100, 10)?)?.slice(3, 4);
    check_pair(case, &sliced, &sliced_b)
}

#[test]
fn every_helper_on_every_data_type() {
    let cases = cases();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(
            |case| match panic::catch_unwind(AssertUnwindSafe(|| check_case(case))) {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(format!("{}: returned an error: {error}", case.name)),
                Err(payload) => {
                    let message = payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    Some(format!("{}: panicked: {message}", case.name))
                }
            },
        )
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn cases_cover_the_listed_types() {
    let types: Vec<DataType> = cases()
        .iter()
        .map(|case| (case.make)(0, 1).unwrap().data_type().clone())
        .collect();
    for wanted in [
        DataType::Null,
        DataType::Utf8View,
        DataType::BinaryView,
        DataType::FixedSizeBinary(3),
        DataType::Decimal128(10, 2),
    ] {
        assert!(types.contains(&wanted), "missing {wanted}");
    }
    let has = |f: fn(&DataType) -> bool| types.iter().any(f);
    assert!(has(|t| matches!(t, DataType::List(_))));
    assert!(has(|t| matches!(t, DataType::LargeList(_))));
    assert!(has(|t| matches!(t, DataType::Struct(_))));
    assert!(has(|t| matches!(t, DataType::Map(..))));
    assert!(has(|t| matches!(t, DataType::Dictionary(..))));
    assert!(has(|t| matches!(t, DataType::RunEndEncoded(..))));
    assert!(has(|t| matches!(t, DataType::Union(..))));
}
