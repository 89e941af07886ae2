//! Property: the row helpers move rows without changing them.
//!
//! - `append(a, b)` then `take_rows` of `a`'s range and of `b`'s range gives back `a` and `b`.
//! - `concat` of the pieces of a batch split anywhere gives back the batch.
//! - `filter_rows(m)` and `delete_rows(m)` split a batch: together they hold every row once,
//!   rows where `m` is null going to `delete_rows`'s side.
//!
//! Seeded: a fixed seed unless `PROPTEST_RNG_SEED` is set; proptest prints the minimal failing
//! input.

use std::sync::Arc;

use arrow_array::{BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use khonsu_arrow_utils::{append, batches_equal, concat, delete_rows, filter_rows, take_rows};
use proptest::prelude::*;

mod common;

type Row = (Option<i64>, Option<String>);

fn batch(rows: &[Row]) -> Result<RecordBatch, ArrowError> {
    let schema = Schema::new(vec![
        Field::new("n", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]);
    let n: Int64Array = rows.iter().map(|r| r.0).collect();
    let s: StringArray = rows.iter().map(|r| r.1.as_deref()).collect();
    RecordBatch::try_new(Arc::new(schema), vec![Arc::new(n), Arc::new(s)])
}

fn rows() -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec(
        (
            prop::option::of(any::<i64>()),
            prop::option::of("[a-z]{0,20}"),
        ),
        0..40,
    )
}

proptest! {
    #![proptest_config(common::config(0x6b68_6f6e_7375))]

    #[test]
    fn append_then_take_gives_back_the_inputs(a in rows(), b in rows()) {
        let (ba, bb) = (batch(&a)?, batch(&b)?);
        let both = append(&ba, &bb)?;
        prop_assert!(batches_equal(&both, &batch(&[a.clone(), b.clone()].concat())?));
        let first: Vec<usize> = (0..a.len()).collect();
        let second: Vec<usize> = (a.len()..a.len() + b.len()).collect();
        prop_assert!(batches_equal(&take_rows(&both, &first)?, &ba));
        prop_assert!(batches_equal(&take_rows(&both, &second)?, &bb));
    }

    #[test]
    fn concat_of_pieces_gives_back_the_batch(
        all in rows(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
    ) {
        let whole = batch(&all)?;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(all.len() + 1)).collect();
        cuts.push(0);
        cuts.push(all.len());
        cuts.sort_unstable();
        let pieces: Vec<RecordBatch> = cuts
            .windows(2)
            .map(|w| whole.slice(w[0], w[1] - w[0]))
            .collect();
        prop_assert!(batches_equal(&concat(&pieces)?, &whole));
    }

    #[test]
    fn filter_and_delete_split_the_rows(
        (all, mask) in rows().prop_flat_map(|all| {
            let n = all.len();
            (Just(all), prop::collection::vec(prop::option::of(any::<bool>()), n))
        })
    ) {
        let whole = batch(&all)?;
        let mask = BooleanArray::from(mask);
        let kept = filter_rows(&whole, &mask)?;
        let rest = delete_rows(&whole, &mask)?;
        let expected_kept: Vec<Row> = all
            .iter()
            .zip(mask.iter())
            .filter(|(_, m)| *m == Some(true))
            .map(|(r, _)| r.clone())
            .collect();
        let expected_rest: Vec<Row> = all
            .iter()
            .zip(mask.iter())
            .filter(|(_, m)| *m != Some(true))
            .map(|(r, _)| r.clone())
            .collect();
        prop_assert!(batches_equal(&kept, &batch(&expected_kept)?));
        prop_assert!(batches_equal(&rest, &batch(&expected_rest)?));
    }
}
