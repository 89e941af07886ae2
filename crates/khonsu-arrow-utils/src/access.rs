//! Typed access to batches: one scalar by column name with its type checked ([`value`]), rows
//! found by a key column's value ([`find_rows`]), and one-row batches built from typed values
//! ([`one_row`], [`RowBuilder`]) — without downcasts or hand-built arrays, and with errors
//! instead of panics.

use std::fmt;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array,
    Int64Array, LargeStringArray, RecordBatch, StringArray, StringViewArray, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array, new_null_array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use snafu::{ResultExt, ensure};

use crate::error::{
    BuildRowSnafu, ColumnNotFoundSnafu, MissingValueSnafu, NullValueSnafu, Result,
    RowOutOfBoundsSnafu, TypeMismatchSnafu,
};

/// One typed value: what [`one_row`] and [`RowBuilder`] put in a cell and [`find_rows`] looks
/// for. Built with `From` from the Rust types (`5_i64.into()`, `"ACME".into()`,
/// `None::<i64>.into()` is [`Scalar::Null`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Scalar {
    /// A null (of whatever type the column has).
    Null,
    /// `Boolean`.
    Boolean(bool),
    /// `Int8`.
    Int8(i8),
    /// `Int16`.
    Int16(i16),
    /// `Int32`.
    Int32(i32),
    /// `Int64`.
    Int64(i64),
    /// `UInt8`.
    UInt8(u8),
    /// `UInt16`.
    UInt16(u16),
    /// `UInt32`.
    UInt32(u32),
    /// `UInt64`.
    UInt64(u64),
    /// `Float32`.
    Float32(f32),
    /// `Float64`.
    Float64(f64),
    /// A string: `Utf8` in [`one_row`]; matches `Utf8`, `LargeUtf8` and `Utf8View` columns.
    Utf8(String),
}

impl Scalar {
    /// The Arrow type [`one_row`] gives this value's column (`Null` for [`Scalar::Null`]).
    #[must_use]
    pub fn data_type(&self) -> DataType {
        match self {
            Self::Null => DataType::Null,
            Self::Boolean(_) => DataType::Boolean,
            Self::Int8(_) => DataType::Int8,
            Self::Int16(_) => DataType::Int16,
            Self::Int32(_) => DataType::Int32,
            Self::Int64(_) => DataType::Int64,
            Self::UInt8(_) => DataType::UInt8,
            Self::UInt16(_) => DataType::UInt16,
            Self::UInt32(_) => DataType::UInt32,
            Self::UInt64(_) => DataType::UInt64,
            Self::Float32(_) => DataType::Float32,
            Self::Float64(_) => DataType::Float64,
            Self::Utf8(_) => DataType::Utf8,
        }
    }

    /// Whether a column of `data_type` can hold this value (a null fits any column).
    #[must_use]
    pub fn fits(&self, data_type: &DataType) -> bool {
        match self {
            Self::Null => true,
            Self::Utf8(_) => is_string(data_type),
            other => other.data_type() == *data_type,
        }
    }

    /// A one-element array of `data_type` holding this value; `None` when it does not fit.
    fn to_array(&self, data_type: &DataType) -> Option<ArrayRef> {
        if !self.fits(data_type) {
            return None;
        }
        let array: ArrayRef = match self {
            Self::Null => new_null_array(data_type, 1),
            Self::Boolean(v) => Arc::new(BooleanArray::from(vec![*v])),
            Self::Int8(v) => Arc::new(Int8Array::from(vec![*v])),
            Self::Int16(v) => Arc::new(Int16Array::from(vec![*v])),
            Self::Int32(v) => Arc::new(Int32Array::from(vec![*v])),
            Self::Int64(v) => Arc::new(Int64Array::from(vec![*v])),
            Self::UInt8(v) => Arc::new(UInt8Array::from(vec![*v])),
            Self::UInt16(v) => Arc::new(UInt16Array::from(vec![*v])),
            Self::UInt32(v) => Arc::new(UInt32Array::from(vec![*v])),
            Self::UInt64(v) => Arc::new(UInt64Array::from(vec![*v])),
            Self::Float32(v) => Arc::new(Float32Array::from(vec![*v])),
            Self::Float64(v) => Arc::new(Float64Array::from(vec![*v])),
            Self::Utf8(v) => match data_type {
                DataType::LargeUtf8 => Arc::new(LargeStringArray::from(vec![v.as_str()])),
                DataType::Utf8View => Arc::new(StringViewArray::from(vec![v.as_str()])),
                _ => Arc::new(StringArray::from(vec![v.as_str()])),
            },
        };
        Some(array)
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("null"),
            Self::Boolean(v) => write!(f, "{v}"),
            Self::Int8(v) => write!(f, "{v}"),
            Self::Int16(v) => write!(f, "{v}"),
            Self::Int32(v) => write!(f, "{v}"),
            Self::Int64(v) => write!(f, "{v}"),
            Self::UInt8(v) => write!(f, "{v}"),
            Self::UInt16(v) => write!(f, "{v}"),
            Self::UInt32(v) => write!(f, "{v}"),
            Self::UInt64(v) => write!(f, "{v}"),
            Self::Float32(v) => write!(f, "{v}"),
            Self::Float64(v) => write!(f, "{v}"),
            Self::Utf8(v) => write!(f, "{v:?}"),
        }
    }
}

fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// `From` for every scalar type, and for `Option` of it.
macro_rules! scalar_from {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for Scalar {
            fn from(v: $t) -> Self {
                Self::$variant(v.into())
            }
        }
        impl From<Option<$t>> for Scalar {
            fn from(v: Option<$t>) -> Self {
                v.map_or(Self::Null, Self::from)
            }
        }
    )*};
}

scalar_from!(
    bool => Boolean, i8 => Int8, i16 => Int16, i32 => Int32, i64 => Int64,
    u8 => UInt8, u16 => UInt16, u32 => UInt32, u64 => UInt64,
    f32 => Float32, f64 => Float64, String => Utf8, &str => Utf8,
);

/// A Rust type [`value`] can read out of an Arrow column: the integers, floats, `bool`,
/// `String`, and `Option` of each (which reads a null as `None`).
pub trait ArrowValue: Sized {
    /// The name errors give the type.
    const NAME: &'static str;

    /// Whether columns of `data_type` hold this type.
    fn accepts(data_type: &DataType) -> bool;

    /// Row `row` (valid, in bounds) of `array`; `None` when the array is not of this type.
    fn read(array: &dyn Array, row: usize) -> Option<Self>;

    /// What a null reads as: `None` when a null is an error.
    #[must_use]
    fn from_null() -> Option<Self> {
        None
    }
}

fn primitive<T: ArrowPrimitiveType>(array: &dyn Array, row: usize) -> Option<T::Native> {
    array
        .as_primitive_opt::<T>()
        .filter(|a| row < a.len())
        .map(|a| a.value(row))
}

/// `ArrowValue` for the primitive types.
macro_rules! primitive_value {
    ($($t:ty => $arrow:ty, $dt:ident);* $(;)?) => {$(
        impl ArrowValue for $t {
            const NAME: &'static str = stringify!($t);
            fn accepts(data_type: &DataType) -> bool {
                *data_type == DataType::$dt
            }
            fn read(array: &dyn Array, row: usize) -> Option<Self> {
                primitive::<$arrow>(array, row)
            }
        }
    )*};
}

primitive_value!(
    i8 => Int8Type, Int8; i16 => Int16Type, Int16; i32 => Int32Type, Int32;
    i64 => Int64Type, Int64; u8 => UInt8Type, UInt8; u16 => UInt16Type, UInt16;
    u32 => UInt32Type, UInt32; u64 => UInt64Type, UInt64; f32 => Float32Type, Float32;
    f64 => Float64Type, Float64;
);

impl ArrowValue for bool {
    const NAME: &'static str = "bool";
    fn accepts(data_type: &DataType) -> bool {
        *data_type == DataType::Boolean
    }
    fn read(array: &dyn Array, row: usize) -> Option<Self> {
        array
            .as_boolean_opt()
            .filter(|a| row < a.len())
            .map(|a| a.value(row))
    }
}

/// Row `row` of a string column (any of the three string types).
fn string_at(array: &dyn Array, row: usize) -> Option<&str> {
    if row >= array.len() {
        return None;
    }
    match array.data_type() {
        DataType::Utf8 => array.as_string_opt::<i32>().map(|a| a.value(row)),
        DataType::LargeUtf8 => array.as_string_opt::<i64>().map(|a| a.value(row)),
        DataType::Utf8View => array.as_string_view_opt().map(|a| a.value(row)),
        _ => None,
    }
}

impl ArrowValue for String {
    const NAME: &'static str = "String";
    fn accepts(data_type: &DataType) -> bool {
        is_string(data_type)
    }
    fn read(array: &dyn Array, row: usize) -> Option<Self> {
        string_at(array, row).map(str::to_owned)
    }
}

impl<T: ArrowValue> ArrowValue for Option<T> {
    const NAME: &'static str = T::NAME;
    fn accepts(data_type: &DataType) -> bool {
        T::accepts(data_type)
    }
    fn read(array: &dyn Array, row: usize) -> Option<Self> {
        T::read(array, row).map(Some)
    }
    fn from_null() -> Option<Self> {
        Some(None)
    }
}

/// The column named `column`, or an error listing the columns there are.
fn column<'a>(
    batch: &'a RecordBatch,
    column: &str,
    operation: &'static str,
) -> Result<&'a ArrayRef> {
    batch.column_by_name(column).ok_or_else(|| {
        ColumnNotFoundSnafu {
            operation,
            column,
            columns: column_names(batch.schema_ref()),
        }
        .build()
    })
}

fn column_names(schema: &Schema) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// Row `row` of column `column`, as a `T`, with the column's type checked.
///
/// ```
/// use khonsu_arrow_utils::{Scalar, one_row, value};
///
/// let row = one_row([("sym", Scalar::from("ACME")), ("qty", Scalar::from(10_i64)), ("px", Scalar::Null)])?;
/// assert_eq!(value::<i64>(&row, "qty", 0)?, 10);
/// assert_eq!(value::<String>(&row, "sym", 0)?, "ACME");
/// assert_eq!(value::<Option<f64>>(&row, "px", 0).ok(), None); // px is a Null column, not f64
/// assert!(value::<i32>(&row, "qty", 0).is_err());  // Int64 is not i32
/// assert!(value::<i64>(&row, "qty", 1).is_err());  // no row 1
/// assert!(value::<i64>(&row, "size", 0).is_err()); // no such column
/// # Ok::<(), khonsu_arrow_utils::Error>(())
/// ```
///
/// # Errors
/// [`Error::ColumnNotFound`](crate::Error::ColumnNotFound),
/// [`Error::RowOutOfBounds`](crate::Error::RowOutOfBounds),
/// [`Error::TypeMismatch`](crate::Error::TypeMismatch) (the column's type does not hold a
/// `T`), [`Error::NullValue`](crate::Error::NullValue) (a null, and `T` is not an `Option`).
pub fn value<T: ArrowValue>(batch: &RecordBatch, column: &str, row: usize) -> Result<T> {
    const OPERATION: &str = "read a value";
    let array = self::column(batch, column, OPERATION)?;
    ensure!(
        row < array.len(),
        RowOutOfBoundsSnafu {
            column,
            row,
            num_rows: array.len()
        }
    );
    let mismatch = || {
        TypeMismatchSnafu {
            operation: OPERATION,
            column,
            expected: T::NAME,
            actual: array.data_type().clone(),
        }
        .build()
    };
    if !T::accepts(array.data_type()) {
        return Err(mismatch());
    }
    if array.is_null(row) {
        return T::from_null().ok_or_else(|| {
            NullValueSnafu {
                operation: OPERATION,
                column,
                row,
            }
            .build()
        });
    }
    T::read(array.as_ref(), row).ok_or_else(mismatch)
}

/// Row `row` of string column `column`, borrowed (`Utf8`, `LargeUtf8` or `Utf8View`).
///
/// # Errors
/// As [`value`].
pub fn value_str<'a>(batch: &'a RecordBatch, column: &str, row: usize) -> Result<&'a str> {
    const OPERATION: &str = "read a value";
    let array = self::column(batch, column, OPERATION)?;
    ensure!(
        row < array.len(),
        RowOutOfBoundsSnafu {
            column,
            row,
            num_rows: array.len()
        }
    );
    ensure!(
        !array.is_null(row),
        NullValueSnafu {
            operation: OPERATION,
            column,
            row
        }
    );
    string_at(array.as_ref(), row).ok_or_else(|| {
        TypeMismatchSnafu {
            operation: OPERATION,
            column,
            expected: "str",
            actual: array.data_type().clone(),
        }
        .build()
    })
}

/// The rows where a primitive column equals `wanted`.
fn matching_primitive<T: ArrowPrimitiveType>(array: &dyn Array, wanted: T::Native) -> Vec<usize>
where
    T::Native: PartialEq,
{
    array.as_primitive_opt::<T>().map_or_else(Vec::new, |a| {
        (0..a.len())
            .filter(|&i| a.is_valid(i) && a.value(i) == wanted)
            .collect()
    })
}

/// Indices of the rows whose `column` equals `wanted`, in row order. Nulls never match (and
/// looking for [`Scalar::Null`] finds nothing); floats compare with `==` (`NaN` matches
/// nothing).
///
/// ```
/// use khonsu_arrow_utils::{Scalar, append, find_row, find_rows, one_row};
///
/// let row = |sym: &str, qty: i64| one_row([("sym", Scalar::from(sym)), ("qty", Scalar::from(qty))]);
/// let book = append(&append(&row("ACME", 1)?, &row("INIT", 2)?)?, &row("ACME", 3)?)?;
/// assert_eq!(find_rows(&book, "sym", "ACME")?, vec![0, 2]);
/// assert_eq!(find_row(&book, "qty", 2_i64)?, Some(1));
/// assert_eq!(find_row(&book, "sym", "NONE")?, None);
/// assert!(find_rows(&book, "qty", "ACME").is_err()); // a string in an Int64 column
/// # Ok::<(), khonsu_arrow_utils::Error>(())
/// ```
///
/// # Errors
/// [`Error::ColumnNotFound`](crate::Error::ColumnNotFound), or
/// [`Error::TypeMismatch`](crate::Error::TypeMismatch) when the column cannot hold `wanted`.
pub fn find_rows(
    batch: &RecordBatch,
    column: &str,
    wanted: impl Into<Scalar>,
) -> Result<Vec<usize>> {
    const OPERATION: &str = "find rows";
    let wanted = wanted.into();
    let array = self::column(batch, column, OPERATION)?;
    ensure!(
        wanted.fits(array.data_type()),
        TypeMismatchSnafu {
            operation: OPERATION,
            column,
            expected: format!("{} ({wanted})", wanted.data_type()),
            actual: array.data_type().clone(),
        }
    );
    let array = array.as_ref();
    Ok(match wanted {
        Scalar::Null => Vec::new(),
        Scalar::Boolean(v) => array.as_boolean_opt().map_or_else(Vec::new, |a| {
            (0..a.len())
                .filter(|&i| a.is_valid(i) && a.value(i) == v)
                .collect()
        }),
        Scalar::Int8(v) => matching_primitive::<Int8Type>(array, v),
        Scalar::Int16(v) => matching_primitive::<Int16Type>(array, v),
        Scalar::Int32(v) => matching_primitive::<Int32Type>(array, v),
        Scalar::Int64(v) => matching_primitive::<Int64Type>(array, v),
        Scalar::UInt8(v) => matching_primitive::<UInt8Type>(array, v),
        Scalar::UInt16(v) => matching_primitive::<UInt16Type>(array, v),
        Scalar::UInt32(v) => matching_primitive::<UInt32Type>(array, v),
        Scalar::UInt64(v) => matching_primitive::<UInt64Type>(array, v),
        Scalar::Float32(v) => matching_primitive::<Float32Type>(array, v),
        Scalar::Float64(v) => matching_primitive::<Float64Type>(array, v),
        Scalar::Utf8(v) => (0..array.len())
            .filter(|&i| array.is_valid(i) && string_at(array, i) == Some(v.as_str()))
            .collect(),
    })
}

/// The first row whose `column` equals `wanted` (see [`find_rows`]).
///
/// # Errors
/// As [`find_rows`].
pub fn find_row(
    batch: &RecordBatch,
    column: &str,
    wanted: impl Into<Scalar>,
) -> Result<Option<usize>> {
    Ok(find_rows(batch, column, wanted)?.first().copied())
}

/// A one-row batch from `(column, value)` pairs, in order: each column takes its value's type
/// ([`Scalar::data_type`]) and is non-nullable, except a [`Scalar::Null`] one (type `Null`,
/// nullable). To build rows of an existing schema (nullable columns, `LargeUtf8`, ...) use
/// [`RowBuilder`].
///
/// ```
/// use khonsu_arrow_utils::{Scalar, one_row};
///
/// let trade = one_row([("sym", Scalar::from("ACME")), ("qty", Scalar::from(5_i64))])?;
/// assert_eq!(trade.num_rows(), 1);
/// assert_eq!(trade.schema().field(1).data_type(), &arrow_schema::DataType::Int64);
/// # Ok::<(), khonsu_arrow_utils::Error>(())
/// ```
///
/// # Errors
/// [`Error::BuildRow`](crate::Error::BuildRow) when Arrow refuses the batch (no columns, or
/// a column name given twice).
pub fn one_row<'a>(values: impl IntoIterator<Item = (&'a str, Scalar)>) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (name, scalar) in values {
        if fields.iter().any(|f: &Field| f.name() == name) {
            return Err(arrow_schema::ArrowError::InvalidArgumentError(format!(
                "column `{name}` is given twice"
            )))
            .context(BuildRowSnafu);
        }
        let data_type = scalar.data_type();
        let nullable = matches!(scalar, Scalar::Null);
        if let Some(array) = scalar.to_array(&data_type) {
            fields.push(Field::new(name, data_type, nullable));
            columns.push(array);
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).context(BuildRowSnafu)
}

/// Builds a one-row batch of a given schema from typed values, checked against each field:
/// unset nullable columns are null, unset non-nullable ones an error.
///
/// ```
/// use std::sync::Arc;
/// use arrow_schema::{DataType, Field, Schema};
/// use khonsu_arrow_utils::{RowBuilder, value};
///
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("user", DataType::UInt64, false),
///     Field::new("score", DataType::Float64, true),
///     Field::new("segment", DataType::LargeUtf8, true),
/// ]));
/// let row = RowBuilder::new(&schema).set("user", 42_u64)?.set("segment", "gold")?.build()?;
/// assert_eq!(value::<u64>(&row, "user", 0)?, 42);
/// assert_eq!(value::<Option<f64>>(&row, "score", 0)?, None);
/// assert!(RowBuilder::new(&schema).set("user", "42").is_err());   // a string for a UInt64
/// assert!(RowBuilder::new(&schema).set("score", 1.0).unwrap().build().is_err()); // user unset
/// # Ok::<(), khonsu_arrow_utils::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RowBuilder {
    schema: SchemaRef,
    values: Vec<Option<ArrayRef>>,
}

impl RowBuilder {
    /// A row of `schema` with no value set.
    #[must_use]
    pub fn new(schema: &SchemaRef) -> Self {
        Self {
            schema: Arc::clone(schema),
            values: vec![None; schema.fields().len()],
        }
    }

    /// Sets `column` to `value` (again: the last value wins).
    ///
    /// # Errors
    /// [`Error::ColumnNotFound`](crate::Error::ColumnNotFound),
    /// [`Error::TypeMismatch`](crate::Error::TypeMismatch) when the field's type cannot hold
    /// the value (types must match exactly, but a string fits any string type), or
    /// [`Error::NullValue`](crate::Error::NullValue) for a null in a non-nullable field.
    pub fn set(mut self, column: &str, value: impl Into<Scalar>) -> Result<Self> {
        const OPERATION: &str = "build a row";
        let value = value.into();
        let Some((index, field)) = self.schema.column_with_name(column) else {
            return ColumnNotFoundSnafu {
                operation: OPERATION,
                column,
                columns: column_names(&self.schema),
            }
            .fail();
        };
        ensure!(
            field.is_nullable() || value != Scalar::Null,
            NullValueSnafu {
                operation: OPERATION,
                column,
                row: 0_usize
            }
        );
        let array = value.to_array(field.data_type()).ok_or_else(|| {
            TypeMismatchSnafu {
                operation: OPERATION,
                column,
                expected: format!("{} ({value})", value.data_type()),
                actual: field.data_type().clone(),
            }
            .build()
        })?;
        if let Some(slot) = self.values.get_mut(index) {
            *slot = Some(array);
        }
        Ok(self)
    }

    /// The one-row batch.
    ///
    /// # Errors
    /// [`Error::MissingValue`](crate::Error::MissingValue) for an unset non-nullable column.
    pub fn build(self) -> Result<RecordBatch> {
        let mut columns = Vec::with_capacity(self.values.len());
        for (field, value) in self.schema.fields().iter().zip(self.values) {
            match value {
                Some(array) => columns.push(array),
                None if field.is_nullable() => columns.push(new_null_array(field.data_type(), 1)),
                None => {
                    return MissingValueSnafu {
                        column: field.name().clone(),
                    }
                    .fail();
                }
            }
        }
        RecordBatch::try_new(self.schema, columns).context(BuildRowSnafu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn sample() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("sym", DataType::Utf8, true),
            Field::new("qty", DataType::Int64, true),
            Field::new("big", DataType::LargeUtf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("A"),
                    None,
                    Some("B"),
                    Some("A"),
                ])),
                Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(1)])),
                Arc::new(LargeStringArray::from(vec![
                    Some("x"),
                    Some("y"),
                    Some("x"),
                    None,
                ])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn every_type_round_trips_through_one_row() {
        let row = one_row([
            ("b", Scalar::from(true)),
            ("i8", Scalar::from(-8_i8)),
            ("i16", Scalar::from(-16_i16)),
            ("i32", Scalar::from(-32_i32)),
            ("i64", Scalar::from(-64_i64)),
            ("u8", Scalar::from(8_u8)),
            ("u16", Scalar::from(16_u16)),
            ("u32", Scalar::from(32_u32)),
            ("u64", Scalar::from(64_u64)),
            ("f32", Scalar::from(1.5_f32)),
            ("f64", Scalar::from(2.5_f64)),
            ("s", Scalar::from("text")),
            ("owned", Scalar::from(String::from("owned"))),
            ("none", Scalar::from(None::<i64>)),
        ])
        .unwrap();
        assert!(value::<bool>(&row, "b", 0).unwrap());
        assert_eq!(value::<i8>(&row, "i8", 0).unwrap(), -8);
        assert_eq!(value::<i16>(&row, "i16", 0).unwrap(), -16);
        assert_eq!(value::<i32>(&row, "i32", 0).unwrap(), -32);
        assert_eq!(value::<i64>(&row, "i64", 0).unwrap(), -64);
        assert_eq!(value::<u8>(&row, "u8", 0).unwrap(), 8);
        assert_eq!(value::<u16>(&row, "u16", 0).unwrap(), 16);
        assert_eq!(value::<u32>(&row, "u32", 0).unwrap(), 32);
        assert_eq!(value::<u64>(&row, "u64", 0).unwrap(), 64);
        assert!((value::<f32>(&row, "f32", 0).unwrap() - 1.5).abs() < f32::EPSILON);
        assert!((value::<f64>(&row, "f64", 0).unwrap() - 2.5).abs() < f64::EPSILON);
        assert_eq!(value::<String>(&row, "s", 0).unwrap(), "text");
        assert_eq!(value_str(&row, "owned", 0).unwrap(), "owned");
        assert_eq!(value::<Option<i64>>(&row, "i64", 0).unwrap(), Some(-64));
        assert_eq!(
            row.schema().field_with_name("none").unwrap().data_type(),
            &DataType::Null
        );
    }

    #[test]
    fn nulls_and_string_types() {
        let batch = sample();
        assert_eq!(value::<Option<String>>(&batch, "sym", 1).unwrap(), None);
        assert_eq!(value::<Option<i64>>(&batch, "qty", 2).unwrap(), None);
        assert_eq!(value::<String>(&batch, "big", 1).unwrap(), "y");
        let err = value::<i64>(&batch, "qty", 2).unwrap_err();
        assert!(matches!(err, Error::NullValue { row: 2, .. }), "{err}");
        assert!(err.to_string().contains("`qty`"), "{err}");
        assert!(matches!(
            value_str(&batch, "sym", 1),
            Err(Error::NullValue { .. })
        ));
    }

    #[test]
    fn each_mistake_is_its_own_error() {
        let batch = sample();
        let err = value::<i64>(&batch, "price", 0).unwrap_err();
        assert!(matches!(err, Error::ColumnNotFound { .. }), "{err}");
        assert!(err.to_string().contains("[sym, qty, big]"), "{err}");
        let err = value::<i64>(&batch, "qty", 4).unwrap_err();
        assert!(
            matches!(
                err,
                Error::RowOutOfBounds {
                    row: 4,
                    num_rows: 4,
                    ..
                }
            ),
            "{err}"
        );
        let err = value::<String>(&batch, "qty", 0).unwrap_err();
        assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
        assert!(err.to_string().contains("Int64, not String"), "{err}");
        let err = value::<i32>(&batch, "qty", 0).unwrap_err();
        assert!(err.to_string().contains("`qty`"), "{err}");
        assert!(matches!(
            value_str(&batch, "qty", 0),
            Err(Error::TypeMismatch { .. })
        ));
        assert!(matches!(
            one_row([("a", Scalar::from(1_i64)), ("a", Scalar::from(2_i64))]),
            Err(Error::BuildRow { .. })
        ));
    }

    #[test]
    fn find_rows_matches_values_never_nulls() {
        let batch = sample();
        assert_eq!(find_rows(&batch, "sym", "A").unwrap(), vec![0, 3]);
        assert_eq!(find_rows(&batch, "qty", 1_i64).unwrap(), vec![0, 3]);
        assert_eq!(find_rows(&batch, "big", "x").unwrap(), vec![0, 2]);
        assert_eq!(
            find_rows(&batch, "sym", Scalar::Null).unwrap(),
            Vec::<usize>::new()
        );
        assert_eq!(find_row(&batch, "sym", "Z").unwrap(), None);
        assert_eq!(find_row(&batch, "qty", 2_i64).unwrap(), Some(1));
        let err = find_rows(&batch, "qty", 1_i32).unwrap_err();
        assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
        let err = find_rows(&batch, "nope", 1_i64).unwrap_err();
        assert!(matches!(err, Error::ColumnNotFound { .. }), "{err}");
        let floats = one_row([("f", Scalar::from(f64::NAN))]).unwrap();
        assert!(find_rows(&floats, "f", f64::NAN).unwrap().is_empty());
    }

    #[test]
    fn row_builder_checks_every_field() {
        let schema = sample().schema();
        let row = RowBuilder::new(&schema)
            .set("sym", "C")
            .unwrap()
            .set("big", "large")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(value::<String>(&row, "big", 0).unwrap(), "large");
        assert_eq!(value::<Option<i64>>(&row, "qty", 0).unwrap(), None);
        // Rows of the schema append to batches of it.
        assert_eq!(crate::append(&sample(), &row).unwrap().num_rows(), 5);
        assert!(matches!(
            RowBuilder::new(&schema).set("qty", "1"),
            Err(Error::TypeMismatch { .. })
        ));
        assert!(matches!(
            RowBuilder::new(&schema).set("nope", 1_i64),
            Err(Error::ColumnNotFound { .. })
        ));
        let strict = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        assert!(matches!(
            RowBuilder::new(&strict).set("id", None::<i64>),
            Err(Error::NullValue { .. })
        ));
        assert!(matches!(
            RowBuilder::new(&strict).build(),
            Err(Error::MissingValue { .. })
        ));
    }
}
