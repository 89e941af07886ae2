//! What Khonsu accepts, it can read back: a value that Arrow IPC encodes but its decoder
//! refuses (a `List` or `Struct` nested about 62 levels deep) is refused at `write`, on every
//! durable store; a store that already holds one (written by an earlier build) fails to open
//! with an error naming the key and saying that its bytes are intact, and `inspect` reports it
//! as undecodable, not as damage. Regression of issue 16, item 3: such a value committed, and
//! every later open of the store failed with a damage report about an intact file.

use std::sync::Arc;

use khonsu::arrow_utils::sample;
use khonsu::prelude::*;
use khonsu::storage::{self, CommitRecord, Storage, StorageMutation, WriteGroup};
use khonsu_tests::durable::{Adapter, storage_error};
use khonsu_tests::*;

/// One row, a column of `Int64` wrapped in `depth` lists.
fn nested_list(depth: usize) -> RecordBatch {
    must(sample::nested_list(depth), "nested lists")
}

/// One row, a column of `Int64` wrapped in `depth` one-field structs.
fn nested_struct(depth: usize) -> RecordBatch {
    must(sample::nested_struct(depth), "nested structs")
}

fn adapters() -> Vec<Adapter> {
    if cfg!(feature = "fjall") {
        vec![Adapter::Redb, Adapter::Fjall]
    } else {
        vec![Adapter::Redb]
    }
}

/// For nestings around the decoder's limit, on every durable store: a value `write` accepts
/// commits and is read back after a reopen; a value it refuses is an `Unstorable` error that
/// stages nothing, and the transaction (and the store) go on. Both outcomes occur.
#[test]
fn what_write_accepts_recovery_reads_back() {
    for adapter in adapters() {
        for (shape, make) in [
            ("list", nested_list as fn(usize) -> RecordBatch),
            ("struct", nested_struct),
        ] {
            let dir = must(tempfile::tempdir(), "tempdir");
            let (mut accepted, mut refused) = (Vec::new(), Vec::new());
            {
                let db = must(adapter.open(dir.path()), "open");
                for depth in [1, 20, 40, 55, 60, 61, 62, 63, 64, 70, 100] {
                    let mut t = db.start_transaction();
                    let key = format!("{shape}{depth}");
                    match t.write(key.as_str(), make(depth)) {
                        Ok(()) => {
                            commit(t);
                            accepted.push((key, depth));
                        }
                        Err(err) => {
                            assert!(
                                matches!(err, Error::Unstorable { .. }),
                                "{adapter:?} {shape} {depth}: {err}"
                            );
                            assert!(
                                err.to_string().contains(key.as_str())
                                    || snafu::Report::from_error(&err)
                                        .to_string()
                                        .contains("decode"),
                                "{}",
                                snafu::Report::from_error(&err)
                            );
                            // The transaction goes on; nothing was staged.
                            write(&mut t, "after", 1);
                            commit(t);
                            refused.push(depth);
                        }
                    }
                }
            }
            assert!(
                !accepted.is_empty() && !refused.is_empty(),
                "{accepted:?} {refused:?}"
            );
            assert!(
                refused.iter().all(|d| *d >= 55),
                "{shape}: refused {refused:?}"
            );
            // Everything accepted is read back after a reopen.
            let db = must(adapter.open(dir.path()), "reopen after the accepted writes");
            for (key, depth) in &accepted {
                let mut t = db.start_transaction();
                let got = ok(t.read(key.as_str()), "read back");
                assert_eq!(got.as_deref(), Some(&make(*depth)), "{adapter:?} {key}");
            }
            assert_eq!(committed(&db, "after"), Some(1));
        }
    }
}

/// A store holding a value that does not decode (written through the storage API, as a build
/// without the check could): opening it fails naming the key and saying the bytes are intact;
/// `inspect` counts it as undecodable, not damaged.
#[test]
fn an_undecodable_value_is_reported_by_key_as_intact_not_as_damage() {
    for adapter in adapters() {
        let dir = must(tempfile::tempdir(), "tempdir");
        {
            let store = must(adapter.storage(dir.path()), "store");
            let record = CommitRecord {
                commit_ts: 3,
                mutations: vec![
                    must(StorageMutation::put("fine", Arc::new(batch(1))), "put"),
                    must(
                        StorageMutation::put("too-deep", Arc::new(nested_list(100))),
                        "put",
                    ),
                ],
            };
            must(store.write(WriteGroup::new(&[&record])), "write");
        }
        let err = must_fail(adapter.open(dir.path()), "open a store holding it");
        let found = storage_error(&err);
        assert!(
            matches!(found, Some(storage::Error::Undecodable { .. })),
            "{adapter:?}: {}",
            snafu::Report::from_error(&err)
        );
        let text = snafu::Report::from_error(&err).to_string();
        assert!(text.contains("too-deep"), "names the key: {text}");
        assert!(text.contains("intact"), "says the bytes are intact: {text}");

        let report = must(storage::inspect(dir.path()), "inspect");
        assert_eq!((report.damaged, report.undecodable), (0, 1), "{report:?}");
        assert!(!report.is_healthy() && !report.is_damaged(), "{report:?}");
        assert_eq!(report.keys, 1, "the other value decodes");
    }
}
