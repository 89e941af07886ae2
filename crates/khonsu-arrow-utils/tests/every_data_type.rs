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

use arrow_array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_schema::DataType;
type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

use khonsu_arrow_utils::sample::{self, SampleType};
use khonsu_arrow_utils::{
    Error, append, batches_equal, byte_size, concat, delete_rows, filter_rows, take_rows,
    upsert_by_key,
};

/// Whether the column's type is a supported upsert key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Key {
    Supported,
    Unsupported,
}

struct Case {
    name: &'static str,
    sample: SampleType,
    key: Key,
}

/// The types whose column is a supported upsert key.
const KEY_TYPES: &[&str] = &[
    "Boolean",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "UInt8",
    "UInt16",
    "UInt32",
    "UInt64",
    "Utf8",
    "LargeUtf8",
    "Utf8View",
    "Binary",
    "LargeBinary",
    "BinaryView",
    "FixedSizeBinary",
    "Date32",
    "Date64",
    "Timestamp(s)",
    "Timestamp(ms)",
    "Timestamp(us)",
    "Timestamp(ns)",
    "Timestamp(ns, tz)",
];

fn cases() -> Vec<Case> {
    sample::types()
        .into_iter()
        .map(|sample| Case {
            name: sample.name(),
            sample,
            key: if KEY_TYPES.contains(&sample.name()) {
                Key::Supported
            } else {
                Key::Unsupported
            },
        })
        .collect()
}

/// A batch `[id: Int64 not null, v: <type> nullable]`.
fn batch(ids: impl IntoIterator<Item = i64>, column: ArrayRef) -> TestResult<RecordBatch> {
    let ids: Int64Array = ids.into_iter().collect();
    Ok(sample::with_ids(Arc::new(ids), column)?)
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
    let make = |seed, len| case.sample.column(seed, len);
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
        .map(|case| case.sample.column(0, 1).unwrap().data_type().clone())
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
