//! Schema compatibility: what "the same schema" means for every helper of this crate.
//!
//! Two schemas are the same when they have the same number of fields and, position by position,
//! the same field name, the same [`DataType`] (compared with `==`, so nested field names,
//! nullability and metadata inside `List`, `Struct`, `Map`, ... count) and the same nullability.
//! Top-level field metadata and schema metadata are ignored: they describe the data, they do not
//! change how rows combine. Results of the helpers carry the schema of their first input.

use std::fmt;

use arrow_schema::{DataType, Schema};

use crate::error::{Result, SchemaMismatchSnafu};

/// The first difference between an expected and an actual schema.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaDifference {
    /// The schemas have different numbers of fields.
    FieldCount {
        /// Field names of the expected schema.
        expected: Vec<String>,
        /// Field names of the actual schema.
        actual: Vec<String>,
    },
    /// The field at `index` has a different name.
    Name {
        /// Position of the field.
        index: usize,
        /// Expected name.
        expected: String,
        /// Actual name.
        actual: String,
    },
    /// The field at `index` has a different data type.
    DataType {
        /// Position of the field.
        index: usize,
        /// Field name (equal in both schemas).
        name: String,
        /// Expected type.
        expected: DataType,
        /// Actual type.
        actual: DataType,
    },
    /// The field at `index` differs in nullability.
    Nullability {
        /// Position of the field.
        index: usize,
        /// Field name (equal in both schemas).
        name: String,
        /// Whether the expected field is nullable.
        expected: bool,
        /// Whether the actual field is nullable.
        actual: bool,
    },
}

impl fmt::Display for SchemaDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FieldCount { expected, actual } => write!(
                f,
                "expected {} [{}], found {} [{}]",
                count(expected.len()),
                expected.join(", "),
                count(actual.len()),
                actual.join(", ")
            ),
            Self::Name {
                index,
                expected,
                actual,
            } => write!(
                f,
                "field {index}: expected name `{expected}`, found `{actual}`"
            ),
            Self::DataType {
                index,
                name,
                expected,
                actual,
            } => write!(
                f,
                "field {index} `{name}`: expected type {expected}, found {actual}"
            ),
            Self::Nullability {
                index,
                name,
                expected,
                actual,
            } => write!(
                f,
                "field {index} `{name}`: expected {}, found {}",
                nullability(*expected),
                nullability(*actual)
            ),
        }
    }
}

fn count(fields: usize) -> String {
    if fields == 1 {
        "1 field".to_owned()
    } else {
        format!("{fields} fields")
    }
}

fn nullability(nullable: bool) -> &'static str {
    if nullable { "nullable" } else { "non-nullable" }
}

/// Returns the first difference between `expected` and `actual`, or `None` if they are the same
/// in the sense of this crate (see the [module docs](self)).
pub(crate) fn first_difference(expected: &Schema, actual: &Schema) -> Option<SchemaDifference> {
    let (expected, actual) = (expected.fields(), actual.fields());
    if expected.len() != actual.len() {
        let names = |fields: &arrow_schema::Fields| {
            fields.iter().map(|f| f.name().clone()).collect::<Vec<_>>()
        };
        return Some(SchemaDifference::FieldCount {
            expected: names(expected),
            actual: names(actual),
        });
    }
    expected
        .iter()
        .zip(actual.iter())
        .enumerate()
        .find_map(|(index, (e, a))| {
            if e.name() != a.name() {
                Some(SchemaDifference::Name {
                    index,
                    expected: e.name().clone(),
                    actual: a.name().clone(),
                })
            } else if e.data_type() != a.data_type() {
                Some(SchemaDifference::DataType {
                    index,
                    name: e.name().clone(),
                    expected: e.data_type().clone(),
                    actual: a.data_type().clone(),
                })
            } else if e.is_nullable() != a.is_nullable() {
                Some(SchemaDifference::Nullability {
                    index,
                    name: e.name().clone(),
                    expected: e.is_nullable(),
                    actual: a.is_nullable(),
                })
            } else {
                None
            }
        })
}

/// Checks that `actual` has the same fields as `expected`: same count and, position by position,
/// same name, data type and nullability. Metadata is ignored.
///
/// # Errors
///
/// [`Error::SchemaMismatch`](crate::Error::SchemaMismatch) carrying the first
/// [`SchemaDifference`]: the field count if it differs, otherwise the first field whose name,
/// type or nullability differs.
///
/// # Example
///
/// ```
/// use arrow_schema::{DataType, Field, Schema};
/// use khonsu_arrow_utils::{SchemaDifference, ensure_same_schema};
///
/// let expected = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
/// let actual = Schema::new(vec![Field::new("id", DataType::Int32, false)]);
/// let error = ensure_same_schema(&expected, &actual).unwrap_err();
/// assert!(matches!(
///     error.schema_difference(),
///     Some(SchemaDifference::DataType { index: 0, .. })
/// ));
/// assert!(ensure_same_schema(&expected, &expected).is_ok());
/// ```
pub fn ensure_same_schema(expected: &Schema, actual: &Schema) -> Result<()> {
    match first_difference(expected, actual) {
        None => Ok(()),
        Some(difference) => SchemaMismatchSnafu { difference }.fail(),
    }
}

/// True if the two schemas are the same in the sense of this crate.
pub(crate) fn same_schema(a: &Schema, b: &Schema) -> bool {
    first_difference(a, b).is_none()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow_schema::{Field, Fields};

    use super::*;
    use crate::Error;

    fn schema(fields: Vec<Field>) -> Schema {
        Schema::new(fields)
    }

    fn difference(expected: &Schema, actual: &Schema) -> SchemaDifference {
        match ensure_same_schema(expected, actual) {
            Err(Error::SchemaMismatch { difference, .. }) => difference,
            other => panic!("expected a schema mismatch, got {other:?}"),
        }
    }

    #[test]
    fn equal_schemas_pass() {
        let s = schema(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, true),
        ]);
        ensure_same_schema(&s, &s.clone()).unwrap();
        ensure_same_schema(&Schema::empty(), &Schema::empty()).unwrap();
    }

    #[test]
    fn metadata_is_ignored() {
        let plain = schema(vec![Field::new("a", DataType::Int64, false)]);
        let annotated = Schema::new_with_metadata(
            vec![
                Field::new("a", DataType::Int64, false)
                    .with_metadata(HashMap::from([("k".to_owned(), "v".to_owned())])),
            ],
            HashMap::from([("origin".to_owned(), "test".to_owned())]),
        );
        ensure_same_schema(&plain, &annotated).unwrap();
    }

    #[test]
    fn differing_name_is_named() {
        let e = schema(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Int64, false),
        ]);
        let a = schema(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("c", DataType::Int64, false),
        ]);
        assert_eq!(
            difference(&e, &a),
            SchemaDifference::Name {
                index: 1,
                expected: "b".into(),
                actual: "c".into()
            }
        );
        let message = ensure_same_schema(&e, &a).unwrap_err().to_string();
        assert!(message.contains("field 1"), "{message}");
        assert!(
            message.contains("`b`") && message.contains("`c`"),
            "{message}"
        );
    }

    #[test]
    fn differing_type_is_named() {
        let e = schema(vec![Field::new("a", DataType::Int64, false)]);
        let a = schema(vec![Field::new("a", DataType::Utf8, false)]);
        assert_eq!(
            difference(&e, &a),
            SchemaDifference::DataType {
                index: 0,
                name: "a".into(),
                expected: DataType::Int64,
                actual: DataType::Utf8
            }
        );
        let message = ensure_same_schema(&e, &a).unwrap_err().to_string();
        assert!(
            message.contains("Int64") && message.contains("Utf8"),
            "{message}"
        );
    }

    #[test]
    fn differing_nested_type_is_a_type_difference() {
        let inner = |nullable| {
            DataType::Struct(Fields::from(vec![Field::new(
                "x",
                DataType::Int32,
                nullable,
            )]))
        };
        let e = schema(vec![Field::new("s", inner(true), true)]);
        let a = schema(vec![Field::new("s", inner(false), true)]);
        assert!(matches!(
            difference(&e, &a),
            SchemaDifference::DataType { index: 0, .. }
        ));
    }

    #[test]
    fn differing_nullability_is_named() {
        let e = schema(vec![Field::new("a", DataType::Int64, false)]);
        let a = schema(vec![Field::new("a", DataType::Int64, true)]);
        assert_eq!(
            difference(&e, &a),
            SchemaDifference::Nullability {
                index: 0,
                name: "a".into(),
                expected: false,
                actual: true
            }
        );
        let message = ensure_same_schema(&e, &a).unwrap_err().to_string();
        assert!(
            message.contains("expected non-nullable, found nullable"),
            "{message}"
        );
    }

    #[test]
    fn differing_field_count_is_named() {
        let e = schema(vec![Field::new("a", DataType::Int64, false)]);
        let a = schema(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Int64, false),
        ]);
        assert_eq!(
            difference(&e, &a),
            SchemaDifference::FieldCount {
                expected: vec!["a".into()],
                actual: vec!["a".into(), "b".into()]
            }
        );
        let message = ensure_same_schema(&e, &a).unwrap_err().to_string();
        assert!(
            message.contains("expected 1 field [a], found 2 fields [a, b]"),
            "{message}"
        );
    }
}
