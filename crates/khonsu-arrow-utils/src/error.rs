//! The error type of this crate.
//!
//! Every fallible helper returns [`Error`]. Variants name the failed operation and the facts a
//! caller needs to act on it (which field differs, which index is out of range, which key is
//! null). Errors raised by `arrow-select` are wrapped with the operation that called it.

use arrow_schema::{ArrowError, DataType};
use snafu::{Location, Snafu};

use crate::schema::SchemaDifference;

/// Errors returned by the `RecordBatch` helpers of this crate.
#[derive(Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// Two schemas that must be equal are not (see [`crate::ensure_same_schema`]).
    #[snafu(display("Schema mismatch: {difference}"))]
    SchemaMismatch {
        /// The first difference found.
        difference: SchemaDifference,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A batch given to [`crate::concat()`] does not have the schema of the first batch.
    #[snafu(display(
        "Failed to concat batches: batch {index} does not match the schema of batch 0: {difference}"
    ))]
    ConcatSchemaMismatch {
        /// Position of the offending batch in the input slice.
        index: usize,
        /// The first difference between its schema and the schema of batch 0.
        difference: SchemaDifference,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// [`crate::concat()`] was given no batches, so the result's schema is unknown.
    #[snafu(display("Failed to concat batches: no batches given, the result schema is unknown"))]
    EmptyConcat {
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A row mask does not have one entry per row of the batch.
    #[snafu(display(
        "Failed to {operation}: the mask has {mask_len} entries but the batch has {num_rows} rows"
    ))]
    MaskLength {
        /// The operation that was given the mask (`filter rows` or `delete rows`).
        operation: &'static str,
        /// Length of the mask.
        mask_len: usize,
        /// Number of rows in the batch.
        num_rows: usize,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A row index given to [`crate::take_rows`] is not smaller than the batch's row count.
    #[snafu(display(
        "Failed to take rows: index {index} at position {position} is out of bounds for a batch of {num_rows} rows"
    ))]
    IndexOutOfBounds {
        /// Position of the offending index in the index slice.
        position: usize,
        /// The offending index.
        index: usize,
        /// Number of rows in the batch.
        num_rows: usize,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A column named by a typed accessor ([`crate::value`], [`crate::find_rows`],
    /// [`crate::RowBuilder::set`]) is not in the batch.
    #[snafu(display(
        "Failed to {operation}: column `{column}` not found; the schema has columns [{}]",
        columns.join(", ")
    ))]
    ColumnNotFound {
        /// The accessor (`read a value`, `find rows`, `build a row`).
        operation: &'static str,
        /// The requested column.
        column: String,
        /// The names of the columns the schema does have.
        columns: Vec<String>,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// [`crate::value`] was asked for a row the batch does not have.
    #[snafu(display(
        "Failed to read a value: row {row} of column `{column}` is out of bounds for a batch of {num_rows} rows"
    ))]
    RowOutOfBounds {
        /// The column.
        column: String,
        /// The requested row.
        row: usize,
        /// Rows in the batch.
        num_rows: usize,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A column's Arrow type does not hold the Rust type (or scalar) asked for.
    #[snafu(display("Failed to {operation}: column `{column}` has type {actual}, not {expected}"))]
    TypeMismatch {
        /// The accessor (`read a value`, `find rows`, `build a row`).
        operation: &'static str,
        /// The column.
        column: String,
        /// What was asked for (a Rust type or a scalar's Arrow type).
        expected: String,
        /// The column's type.
        actual: DataType,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// [`crate::value`] found a null where a non-optional type was asked for (ask for an
    /// `Option<T>` to read nulls as `None`), or a row builder was given a null for a
    /// non-nullable column.
    #[snafu(display(
        "Failed to {operation}: column `{column}` is null at row {row} and not optional"
    ))]
    NullValue {
        /// The accessor.
        operation: &'static str,
        /// The column.
        column: String,
        /// The row.
        row: usize,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A [`crate::RowBuilder`] was built without a value for a non-nullable column.
    #[snafu(display("Failed to build a row: non-nullable column `{column}` has no value"))]
    MissingValue {
        /// The column.
        column: String,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// Arrow refused the one-row batch (a duplicate column name, for example).
    #[snafu(display("Failed to build a row: {error}"))]
    BuildRow {
        /// Arrow's error.
        #[snafu(source)]
        error: ArrowError,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// The key column named in [`crate::upsert_by_key`] is not in the schema.
    #[snafu(display(
        "Failed to upsert by key: key column `{column}` not found; the schema has columns [{}]",
        columns.join(", ")
    ))]
    KeyColumnNotFound {
        /// The requested key column.
        column: String,
        /// The names of the columns the schema does have.
        columns: Vec<String>,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// The key column's type cannot be used as an upsert key.
    #[snafu(display(
        "Failed to upsert by key: key column `{column}` has type {data_type}, which is not a supported key type \
         (integers, Utf8/LargeUtf8/Utf8View, Binary/LargeBinary/BinaryView/FixedSizeBinary, Boolean, Date32/Date64, Timestamp)"
    ))]
    UnsupportedKeyType {
        /// The key column.
        column: String,
        /// Its data type.
        data_type: DataType,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A key column holds a null; null keys cannot be matched.
    #[snafu(display(
        "Failed to upsert by key: key column `{column}` is null at row {row} of the {batch} batch"
    ))]
    NullKey {
        /// The key column.
        column: String,
        /// Which input holds the null: `base` or `updates`.
        batch: &'static str,
        /// Row of the null within that batch.
        row: usize,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A key column's array is not of the type its schema field declares. `RecordBatch` rules
    /// this out, so seeing this error means a batch was built around Arrow's own validation.
    #[snafu(display(
        "Failed to upsert by key: key column `{column}` does not hold the {data_type} array its schema declares"
    ))]
    KeyColumnArray {
        /// The key column.
        column: String,
        /// The declared data type.
        data_type: DataType,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// `arrow-select` failed to concatenate the batches (e.g. offset overflow, differing nested
    /// column types).
    #[snafu(display("Failed to concat {num_batches} batches"))]
    Concat {
        /// Number of batches being concatenated.
        num_batches: usize,
        /// The error reported by Arrow.
        #[snafu(source)]
        error: ArrowError,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// `arrow-select` failed to filter the batch.
    #[snafu(display("Failed to filter a batch of {num_rows} rows"))]
    Filter {
        /// Number of rows in the batch.
        num_rows: usize,
        /// The error reported by Arrow.
        #[snafu(source)]
        error: ArrowError,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// `arrow-select` failed to take rows from the batch (e.g. offset overflow when repeating
    /// large string values).
    #[snafu(display("Failed to take {num_indices} rows from a batch of {num_rows} rows"))]
    Take {
        /// Number of indices requested.
        num_indices: usize,
        /// Number of rows in the batch.
        num_rows: usize,
        /// The error reported by Arrow.
        #[snafu(source)]
        error: ArrowError,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// `arrow-select` failed to interleave base and update rows during an upsert.
    #[snafu(display(
        "Failed to upsert by key `{column}`: interleaving {num_rows} result rows failed"
    ))]
    Interleave {
        /// The key column.
        column: String,
        /// Number of rows of the result.
        num_rows: usize,
        /// The error reported by Arrow.
        #[snafu(source)]
        error: ArrowError,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// An `arrow-select` kernel panicked. The panic was caught and turned into this error so that
    /// no input can crash the caller; please report it with the data type involved.
    #[snafu(display("Failed to {operation}: an arrow-select kernel panicked: {message}"))]
    KernelPanic {
        /// The operation that called the kernel.
        operation: &'static str,
        /// The panic message.
        message: String,
        /// Where in this crate the error was raised.
        #[snafu(implicit)]
        location: Location,
    },
}

// Debug shows the Display chain plus the location, as GreptimeDB does; `{:?}` in a test failure
// then reads like an error report rather than a struct dump.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")?;
        write!(f, ", at {}", self.location())?;
        let mut source = std::error::Error::source(self);
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

impl Error {
    /// The first schema difference, if this error is a schema mismatch (from
    /// [`crate::ensure_same_schema`], [`crate::append`], [`crate::concat()`] or
    /// [`crate::upsert_by_key`]).
    #[must_use]
    pub fn schema_difference(&self) -> Option<&SchemaDifference> {
        match self {
            Self::SchemaMismatch { difference, .. }
            | Self::ConcatSchemaMismatch { difference, .. } => Some(difference),
            _ => None,
        }
    }

    /// Where in this crate the error was raised.
    #[must_use]
    pub fn location(&self) -> &Location {
        match self {
            Self::SchemaMismatch { location, .. }
            | Self::ConcatSchemaMismatch { location, .. }
            | Self::EmptyConcat { location }
            | Self::MaskLength { location, .. }
            | Self::IndexOutOfBounds { location, .. }
            | Self::ColumnNotFound { location, .. }
            | Self::RowOutOfBounds { location, .. }
            | Self::TypeMismatch { location, .. }
            | Self::NullValue { location, .. }
            | Self::MissingValue { location, .. }
            | Self::BuildRow { location, .. }
            | Self::KeyColumnNotFound { location, .. }
            | Self::UnsupportedKeyType { location, .. }
            | Self::NullKey { location, .. }
            | Self::KeyColumnArray { location, .. }
            | Self::Concat { location, .. }
            | Self::Filter { location, .. }
            | Self::Take { location, .. }
            | Self::Interleave { location, .. }
            | Self::KernelPanic { location, .. } => location,
        }
    }
}

/// Result type of this crate, defaulting to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, RecordBatch};
    use arrow_schema::{Field, Schema};
    use snafu::IntoError;

    use super::*;

    #[test]
    fn error_is_send_sync_static() {
        fn assert_bounds<T: std::error::Error + Send + Sync + 'static>() {}
        assert_bounds::<Error>();
    }

    #[test]
    fn debug_shows_message_location_and_cause() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
        let error = crate::take_rows(&batch, &[2]).unwrap_err();
        let debug = format!("{error:?}");
        assert!(debug.starts_with(&error.to_string()), "{debug}");
        assert!(debug.contains("rows.rs"), "{debug}");
        assert!(error.location().file().ends_with("rows.rs"));

        let wrapped = ConcatSnafu {
            num_batches: 2_usize,
        }
        .into_error(ArrowError::ComputeError("offset overflow".into()));
        assert!(
            format!("{wrapped:?}").ends_with(": Compute error: offset overflow"),
            "{wrapped:?}"
        );
        assert!(wrapped.schema_difference().is_none());
    }
}
