//! Through the facade, as a user would: every Arrow data type written in transactions to a
//! durable database comes back unchanged after a restart, and a value the store cannot encode is
//! refused by the `write` that stages it (a clear error, the transaction still usable), not at
//! commit.

use std::sync::Arc;

use arrow_array::{DictionaryArray, Int8Array, RecordBatch, types::Int8Type};
use khonsu::arrow_utils::sample;
use khonsu::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn every_type_round_trips(open: &dyn Fn() -> khonsu::Result<Khonsu>) -> TestResult {
    let kinds = sample::types();
    let mut expected: Vec<(String, RecordBatch)> = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        expected.push((format!("type/{}", kind.name()), kind.batch(i, 6)?));
    }
    {
        let db = open()?;
        // Half in one transaction, the rest one per transaction.
        let (together, alone) = expected.split_at(expected.len() / 2);
        let mut t = db.start_transaction();
        for (key, batch) in together {
            t.write(key.as_str(), batch.clone())?;
        }
        t.commit()?;
        for (key, batch) in alone {
            db.atomically(|t| t.write(key.as_str(), batch.clone()))?;
        }
    }
    let db = open()?;
    let mut t = db.start_transaction();
    for (key, batch) in &expected {
        let got = t.read(key)?.unwrap_or_else(|| panic!("{key} lost"));
        assert_eq!(&*got, batch, "{key} changed");
    }
    assert_eq!(t.scan_prefix("type/")?.len(), kinds.len());
    Ok(())
}

#[test]
fn every_type_round_trips_through_redb_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    every_type_round_trips(&|| Khonsu::open(dir.path())).unwrap();
}

#[cfg(feature = "fjall")]
#[test]
fn every_type_round_trips_through_fjall_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    every_type_round_trips(&|| {
        let storage = khonsu::FjallStorage::open(dir.path()).unwrap();
        Khonsu::builder().storage(Arc::new(storage)).build()
    })
    .unwrap();
}

#[test]
fn an_unencodable_value_is_refused_at_write_not_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = Khonsu::open(dir.path()).unwrap();
    let inner: DictionaryArray<Int8Type> = ["a", "b"].into_iter().collect();
    let nested =
        DictionaryArray::<Int8Type>::try_new(Int8Array::from(vec![0, 1]), Arc::new(inner)).unwrap();
    let bad = RecordBatch::try_from_iter([("d", Arc::new(nested) as _)]).unwrap();
    let good = sample::types()[5].batch(0, 2).unwrap();

    let mut t = db.start_transaction();
    t.write("good", good.clone()).unwrap();
    let err = t.write("bad", bad).unwrap_err();
    assert!(matches!(err, khonsu::Error::Unstorable { .. }), "{err:?}");
    assert!(!err.is_conflict());
    let report = snafu::Report::from_error(&err).to_string();
    assert!(
        report.contains("key bad:") && report.contains("dictionary"),
        "{report}"
    );
    // Nothing was staged for the refused key; the rest commits.
    assert!(t.read("bad").unwrap().is_none());
    t.commit().unwrap();
    drop(db);
    let db = Khonsu::open(dir.path()).unwrap();
    let mut t = db.start_transaction();
    assert_eq!(*t.read("good").unwrap().unwrap(), good);
    assert!(t.read("bad").unwrap().is_none());
}
