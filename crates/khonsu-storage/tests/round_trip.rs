//! Property: every Arrow data type of `khonsu_arrow_utils::sample` (nested, dictionary, views,
//! run-end, unions, nulls at every level), in batches of any length, fresh or sliced, one type
//! per column or many side by side, round-trips through each adapter and a restart unchanged,
//! with its commit timestamp.
//!
//! Seeded: a fixed seed unless `PROPTEST_RNG_SEED` is set; proptest prints the minimal failing
//! input.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, Field, Schema};
use khonsu_arrow_utils::sample;
use khonsu_storage::{CommitRecord, RedbStorage, Storage, StorageMutation, WriteGroup};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// One value: which sample types (as columns), the seed of their rows, the rows, and a slice.
#[derive(Clone, Debug)]
struct Value {
    types: Vec<prop::sample::Index>,
    seed: usize,
    len: usize,
    slice: (prop::sample::Index, prop::sample::Index),
}

fn values() -> impl Strategy<Value = Vec<Value>> {
    let value = (
        prop::collection::vec(any::<prop::sample::Index>(), 1..6),
        0..1_000_usize,
        0..40_usize,
        (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
    )
        .prop_map(|(types, seed, len, slice)| Value {
            types,
            seed,
            len,
            slice,
        });
    prop::collection::vec(value, 1..8)
}

/// The batch a `Value` describes: one column per chosen type (named by position), sliced.
fn build(value: &Value) -> Result<RecordBatch, ArrowError> {
    let kinds = sample::types();
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (i, index) in value.types.iter().enumerate() {
        let kind = index.get(&kinds);
        let column = kind.column(value.seed + i, value.len)?;
        fields.push(Field::new(
            format!("c{i}"),
            column.data_type().clone(),
            true,
        ));
        columns.push(column);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let offset = value.slice.0.index(value.len + 1);
    let len = value.slice.1.index(value.len - offset + 1);
    Ok(batch.slice(offset, len))
}

fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: 48,
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            default.rng_seed
        } else {
            RngSeed::Fixed(0x6b68_6f6e_7375_0009)
        },
        failure_persistence: None,
        ..default
    }
}

/// Writes `batches` (one key each, two groups) through the store `open` opens, reopens it, and
/// compares what it recovers.
fn round_trip<S: Storage>(
    open: impl Fn() -> khonsu_storage::Result<S>,
    batches: &[RecordBatch],
) -> Result<(), TestCaseError> {
    let mutations: Vec<StorageMutation> = batches
        .iter()
        .enumerate()
        .map(|(i, b)| StorageMutation::put(format!("value/{i:03}"), Arc::new(b.clone())))
        .collect::<Result<_, _>>()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let half = mutations.len() / 2;
    let (early, late) = mutations.split_at(half);
    let first = CommitRecord {
        commit_ts: 7,
        mutations: early.to_vec(),
    };
    let second = CommitRecord {
        commit_ts: 8,
        mutations: late.to_vec(),
    };
    {
        let store = open().map_err(|e| TestCaseError::fail(e.to_string()))?;
        store
            .write(WriteGroup::new(&[&first, &second]))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    let store = open().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let state = store
        .recover()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(state.entries.len(), batches.len());
    prop_assert_eq!(state.last_commit_ts, 8);
    for (i, (entry, batch)) in state.entries.iter().zip(batches).enumerate() {
        prop_assert_eq!(entry.commit_ts, if i < half { 7 } else { 8 });
        prop_assert_eq!(&*entry.batch, batch, "value {} changed", i);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_type_round_trips_through_redb_and_a_restart(values in values()) {
        let batches: Vec<RecordBatch> = values.iter().map(build).collect::<Result<_, _>>()?;
        let dir = tempfile::tempdir()?;
        round_trip(|| RedbStorage::open(dir.path()), &batches)?;
    }

    #[cfg(feature = "fjall")]
    #[test]
    fn every_type_round_trips_through_fjall_and_a_restart(values in values()) {
        let batches: Vec<RecordBatch> = values.iter().map(build).collect::<Result<_, _>>()?;
        let dir = tempfile::tempdir()?;
        round_trip(|| khonsu_storage::FjallStorage::open(dir.path()), &batches)?;
    }
}

/// All sample types side by side in one batch, with schema and field metadata.
#[test]
fn a_batch_of_every_type_with_metadata_round_trips() {
    let kinds = sample::types();
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let column = kind.column(i, 9).unwrap();
        let field = Field::new(kind.name(), column.data_type().clone(), true).with_metadata(
            [("origin".to_owned(), format!("sample {i}"))]
                .into_iter()
                .collect::<std::collections::HashMap<String, String>>(),
        );
        fields.push(field);
        columns.push(column);
    }
    let schema = Schema::new(fields).with_metadata(
        [("table".to_owned(), "every type".to_owned())]
            .into_iter()
            .collect::<std::collections::HashMap<String, String>>(),
    );
    let batch = RecordBatch::try_new(Arc::new(schema), columns).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let result = round_trip(
        || RedbStorage::open(dir.path()),
        &[batch.clone(), batch.slice(3, 4)],
    );
    assert!(result.is_ok(), "{result:?}");
}
