//! Property: `upsert_by_key` equals upserting the update rows one at a time into a plain
//! `Vec` of rows (replace every row with an equal key, or append), for integer and string keys.
//!
//! Keys come from a small domain so that matches and duplicates are common. Seeded: a fixed seed
//! unless `PROPTEST_RNG_SEED` is set; proptest prints the minimal failing input.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use khonsu_arrow_utils::{batches_equal, upsert_by_key};
use proptest::prelude::*;

mod common;

type Row = (u8, Option<String>);

/// The model: apply each update row in turn.
fn sequential(base: &[Row], updates: &[Row]) -> Vec<Row> {
    let mut out = base.to_vec();
    for update in updates {
        let mut found = false;
        for row in &mut out {
            if row.0 == update.0 {
                row.clone_from(update);
                found = true;
            }
        }
        if !found {
            out.push(update.clone());
        }
    }
    out
}

/// `[k: <key type> not null, v: Utf8 nullable]`, the key as an `Int64` or as its decimal string.
fn batch(rows: &[Row], string_key: bool) -> Result<RecordBatch, ArrowError> {
    let key: ArrayRef = if string_key {
        Arc::new(
            rows.iter()
                .map(|r| Some(format!("key-{}", r.0)))
                .collect::<StringArray>(),
        )
    } else {
        Arc::new(
            rows.iter()
                .map(|r| Some(i64::from(r.0)))
                .collect::<Int64Array>(),
        )
    };
    let schema = Schema::new(vec![
        Field::new("k", key.data_type().clone(), false),
        Field::new("v", DataType::Utf8, true),
    ]);
    let v: StringArray = rows.iter().map(|r| r.1.as_deref()).collect();
    RecordBatch::try_new(Arc::new(schema), vec![key, Arc::new(v)])
}

fn rows() -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec((0_u8..8, prop::option::of("[a-z]{0,3}")), 0..12)
}

proptest! {
    #![proptest_config(common::config(0x7570_7365_7274))]

    #[test]
    fn upsert_equals_one_row_at_a_time(base in rows(), updates in rows(), string_key in any::<bool>()) {
        let out = upsert_by_key(&batch(&base, string_key)?, &batch(&updates, string_key)?, "k")?;
        let expected = batch(&sequential(&base, &updates), string_key)?;
        prop_assert!(batches_equal(&out, &expected), "got {:?}\nexpected {:?}", out, expected);
    }

    #[test]
    fn upsert_is_idempotent_for_distinct_update_keys(base in rows(), updates in rows()) {
        // With distinct update keys, applying the same updates twice changes nothing more.
        let mut seen = std::collections::HashSet::new();
        let updates: Vec<Row> = updates.into_iter().filter(|r| seen.insert(r.0)).collect();
        let (base, updates) = (batch(&base, false)?, batch(&updates, false)?);
        let once = upsert_by_key(&base, &updates, "k")?;
        let twice = upsert_by_key(&once, &updates, "k")?;
        prop_assert!(batches_equal(&once, &twice));
    }
}
