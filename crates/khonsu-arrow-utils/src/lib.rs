//! `RecordBatch` helpers for Khonsu.
//!
//! Khonsu's values are Arrow [`RecordBatch`]es. The layers above (transactions, conflict
//! resolution, storage) need a few row-level operations on them, and they need those operations
//! to fail with an error, never a panic, whatever the column types. This crate provides them on
//! top of `arrow-select`'s kernels (`concat`, `filter`, `take`, `interleave`), with the checks
//! those kernels leave to the caller done first.
//!
//! | helper | does |
//! |---|---|
//! | [`ensure_same_schema`] | checks two schemas field by field (name, type, nullability) and names the first difference |
//! | [`append`], [`concat()`] | rows of one batch then the other(s); schemas must be the same |
//! | [`filter_rows`] | keeps rows where a mask is `true` (null drops) |
//! | [`delete_rows`] | removes rows where a mask is `true` (null keeps) |
//! | [`take_rows`] | picks rows by index, bounds-checked |
//! | [`upsert_by_key`] | replaces rows with equal key, appends new keys |
//! | [`batches_equal`] | logical equality of schema, values and nulls |
//! | [`byte_size`] | memory held by a batch's buffers |
//! | [`value`], [`value_str`] | one scalar by column name and row, its type checked (`value::<i64>(&b, "qty", 0)`) |
//! | [`find_rows`], [`find_row`] | rows whose column equals a value (`find_row(&b, "sym", "ACME")`) |
//! | [`one_row`], [`RowBuilder`] | a one-row batch from typed values ([`Scalar`]), inferred or of a given schema |
//! | [`sample`] | columns of every Arrow data type, for tests of code that stores or transforms batches |
//!
//! # Guarantees
//!
//! - **Nulls are preserved**: a null stays a null at its row's new position.
//! - **Same schema** means the same fields in the same order with equal names, data types and
//!   nullability; metadata is ignored. Results carry the schema of the first (base) input.
//! - **No panics on user input**: schema differences, mask lengths, out-of-range indices, null or
//!   unsupported keys and Arrow kernel failures are [`Error`]s. As a last line of defence each
//!   kernel call runs under `catch_unwind`, so a bug in a kernel surfaces as
//!   [`Error::KernelPanic`] rather than unwinding through the caller (unless the binary is built
//!   with `panic = "abort"`). All Arrow data types work with every row helper; only
//!   [`upsert_by_key`] restricts the *key* column's type.
//! - **Cheap when nothing changes**: appending an empty batch or concatenating one batch returns
//!   the input, sharing its buffers.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//!
//! use arrow_array::{BooleanArray, Int64Array, RecordBatch, StringArray};
//! use arrow_schema::{DataType, Field, Schema};
//! use khonsu_arrow_utils as au;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("id", DataType::Int64, false),
//!     Field::new("name", DataType::Utf8, true),
//! ]));
//! let rows = |ids: Vec<i64>, names: Vec<Option<&str>>| {
//!     RecordBatch::try_new(
//!         schema.clone(),
//!         vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(names))],
//!     )
//! };
//!
//! let base = rows(vec![1, 2], vec![Some("ada"), None])?;
//! let more = rows(vec![3], vec![Some("cy")])?;
//! let all = au::append(&base, &more)?;
//! assert!(au::batches_equal(&all, &rows(vec![1, 2, 3], vec![Some("ada"), None, Some("cy")])?));
//!
//! // Replace id 2, add id 4.
//! let updates = rows(vec![2, 4], vec![Some("bo"), Some("di")])?;
//! let merged = au::upsert_by_key(&all, &updates, "id")?;
//! let expected = rows(vec![1, 2, 3, 4], vec![Some("ada"), Some("bo"), Some("cy"), Some("di")])?;
//! assert!(au::batches_equal(&merged, &expected));
//!
//! // Delete id 1; the null in the mask keeps its row.
//! let gone = au::delete_rows(&merged, &BooleanArray::from(vec![Some(true), None, Some(false), Some(false)]))?;
//! assert_eq!(gone.num_rows(), 3);
//! assert_eq!(au::take_rows(&gone, &[2, 0])?.num_rows(), 2);
//!
//! // Mistakes are errors that say what is wrong.
//! let error = au::take_rows(&gone, &[7]).unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     "Failed to take rows: index 7 at position 0 is out of bounds for a batch of 3 rows"
//! );
//! let error = au::upsert_by_key(&base, &updates, "email").unwrap_err();
//! println!("{}", snafu::Report::from_error(error));
//! # Ok(())
//! # }
//! ```
//!
//! # Typed access
//!
//! Reading a cell, finding rows by a key column and building a one-row batch need no downcasts
//! and no hand-built arrays; a wrong column name, type, row or a null is an [`Error`] that names
//! the column.
//!
//! ```
//! use khonsu_arrow_utils::{Error, Scalar, append, find_row, find_rows, one_row, value, value_str};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let trade = |sym: &str, qty: i64| one_row([("sym", Scalar::from(sym)), ("qty", Scalar::from(qty))]);
//! let book = append(&append(&trade("ACME", 5)?, &trade("INIT", 7)?)?, &trade("ACME", 2)?)?;
//!
//! assert_eq!(find_rows(&book, "sym", "ACME")?, vec![0, 2]);
//! let row = find_row(&book, "sym", "INIT")?.ok_or("INIT is in the book")?;
//! assert_eq!(value::<i64>(&book, "qty", row)?, 7);
//! assert_eq!(value_str(&book, "sym", row)?, "INIT");
//!
//! let error = value::<i32>(&book, "qty", 0).unwrap_err(); // the column is Int64
//! assert!(matches!(error, Error::TypeMismatch { .. }));
//! assert_eq!(error.to_string(), "Failed to read a value: column `qty` has type Int64, not i32");
//! # Ok(())
//! # }
//! ```
//!
//! [`RecordBatch`]: arrow_array::RecordBatch

mod access;
mod combine;
mod error;
mod guard;
mod inspect;
mod rows;
pub mod sample;
mod schema;
mod upsert;

pub use access::{ArrowValue, RowBuilder, Scalar, find_row, find_rows, one_row, value, value_str};
pub use combine::{append, concat};
pub use error::{Error, Result};
pub use inspect::{batches_equal, byte_size};
pub use rows::{delete_rows, filter_rows, take_rows};
pub use schema::{SchemaDifference, ensure_same_schema};
pub use upsert::upsert_by_key;
