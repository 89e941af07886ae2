//! Every adapter against the `Storage` contract (`khonsu_storage::conformance`), and the
//! damage an adapter must report rather than trust: foreign files, other adapters' stores,
//! a second open, a missing data file.

use std::sync::Arc;

use khonsu_storage::{Error, MemoryStorage, RedbStorage, Storage, conformance};

fn report(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[test]
fn redb_conforms() {
    let dir = tempfile::tempdir().unwrap();
    if let Err(e) = conformance::check_adapter(|| RedbStorage::open(dir.path())) {
        panic!("{e}");
    }
}

#[cfg(feature = "fjall")]
#[test]
fn fjall_conforms() {
    let dir = tempfile::tempdir().unwrap();
    if let Err(e) = conformance::check_adapter(|| khonsu_storage::FjallStorage::open(dir.path())) {
        panic!("{e}");
    }
}

#[test]
fn memory_conforms() {
    // A restart of the memory store is the same instance handed over again.
    let store = Arc::new(MemoryStorage::new());
    if let Err(e) = conformance::check_adapter(|| Ok(Arc::clone(&store))) {
        panic!("{e}");
    }
}

#[test]
fn a_second_open_of_one_directory_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = RedbStorage::open(dir.path()).unwrap();
    let err = RedbStorage::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
    drop(first);
    RedbStorage::open(dir.path()).unwrap();
}

#[test]
fn a_directory_of_other_files_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let err = RedbStorage::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::NotAStore { .. }), "{}", report(&err));
    assert!(err.to_string().contains("notes.txt"), "{err}");
    // Nothing was created beside the user's file.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);
}

#[test]
fn a_foreign_file_in_place_of_the_database_is_refused() {
    let mut noise = b"definitely not a redb file, just some bytes".to_vec();
    noise.extend(std::iter::repeat_n(0xa5_u8, 8192));
    for contents in [
        &b"definitely not a redb file, just some bytes"[..],
        &noise[..],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.redb");
        std::fs::write(&file, contents).unwrap();
        let err = RedbStorage::open(dir.path()).unwrap_err();
        assert!(err.is_corruption(), "{}", report(&err));
        assert!(report(&err).contains("data.redb"), "{}", report(&err));
        assert_eq!(
            std::fs::read(&file).unwrap(),
            contents,
            "the foreign file was changed"
        );
    }
}

/// A new store's file is built as `data.redb.tmp` and renamed into place: a crash while redb
/// laid it out (found by the crash tests: the next open refused a half-written header forever)
/// leaves only the temporary file, which the next open replaces.
#[test]
fn an_interrupted_creation_is_started_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut half_made = vec![0_u8; 73_728];
    half_made[9..64].fill(0x5a);
    std::fs::write(dir.path().join("data.redb.tmp"), half_made).unwrap();
    std::fs::write(dir.path().join("LOCK"), b"").unwrap();
    let store = RedbStorage::open(dir.path()).unwrap();
    assert!(store.recover().unwrap().is_empty());
    assert!(dir.path().join("KHONSU").exists());
    assert!(!dir.path().join("data.redb.tmp").exists());
}

/// A zero-filled `data.redb` in a directory without a manifest is nobody's Khonsu store (ours are
/// renamed into place whole): refused, untouched.
#[test]
fn a_zero_filled_database_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.redb");
    std::fs::write(&file, [0_u8; 8192]).unwrap();
    let err = RedbStorage::open(dir.path()).unwrap_err();
    assert!(err.is_corruption(), "{}", report(&err));
    assert_eq!(std::fs::read(&file).unwrap(), [0_u8; 8192]);
}

#[test]
fn a_foreign_redb_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.redb");
    {
        let db = redb::Database::create(&file).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let table: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("users");
            txn.open_table(table).unwrap().insert("ada", 1).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = RedbStorage::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::NotAStore { .. }), "{}", report(&err));
    assert!(err.to_string().contains("users"), "{err}");
}

#[test]
fn a_store_whose_data_file_is_gone_is_not_silently_empty() {
    let dir = tempfile::tempdir().unwrap();
    drop(RedbStorage::open(dir.path()).unwrap());
    std::fs::remove_file(dir.path().join("data.redb")).unwrap();
    let err = RedbStorage::open(dir.path()).unwrap_err();
    assert!(err.is_corruption(), "{}", report(&err));
    assert!(err.to_string().contains("missing"), "{err}");
}

#[cfg(feature = "fjall")]
#[test]
fn a_store_of_one_adapter_is_not_opened_by_another() {
    let dir = tempfile::tempdir().unwrap();
    drop(RedbStorage::open(dir.path()).unwrap());
    let err = khonsu_storage::FjallStorage::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("redb store"), "{}", report(&err));
    let dir = tempfile::tempdir().unwrap();
    drop(khonsu_storage::FjallStorage::open(dir.path()).unwrap());
    let err = RedbStorage::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("fjall store"), "{}", report(&err));
}

#[test]
fn a_manifest_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(RedbStorage::open(dir.path()).unwrap());
    std::fs::write(
        dir.path().join("KHONSU"),
        "khonsu data directory\nformat 99\nadapter redb\n",
    )
    .unwrap();
    let err = RedbStorage::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("format is 99"), "{err}");
}

#[test]
fn unencodable_values_are_refused_by_check_value() {
    let store = MemoryStorage::new();
    let inner: arrow_array::DictionaryArray<arrow_array::types::Int8Type> =
        ["a"].into_iter().collect();
    let nested = arrow_array::DictionaryArray::<arrow_array::types::Int8Type>::try_new(
        arrow_array::Int8Array::from(vec![0]),
        Arc::new(inner),
    )
    .unwrap();
    let batch = arrow_array::RecordBatch::try_from_iter([("d", Arc::new(nested) as _)]).unwrap();
    let err = store.check_value(&batch).unwrap_err();
    assert!(matches!(err, Error::Unencodable { .. }), "{err:?}");
}

/// A new fjall store is built in `fjall.tmp/` and renamed into place: a crash while fjall laid it
/// out (found by the crash tests: fjall then refused its own half-made directory forever) leaves
/// only the temporary directory, which the next open replaces. A `fjall/` directory without the
/// format record was never made by Khonsu: refused.
#[cfg(feature = "fjall")]
#[test]
fn an_interrupted_fjall_creation_is_started_over() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("fjall.tmp")).unwrap();
    std::fs::write(dir.path().join("fjall.tmp/lock"), b"").unwrap();
    std::fs::write(dir.path().join("fjall.tmp/0.jnl"), vec![0_u8; 4096]).unwrap();
    let store = khonsu_storage::FjallStorage::open(dir.path()).unwrap();
    assert!(store.recover().unwrap().is_empty());
    assert!(dir.path().join("KHONSU").exists());
    assert!(!dir.path().join("fjall.tmp").exists());
    drop(store);

    let dir = tempfile::tempdir().unwrap();
    {
        let db = fjall::Database::builder(dir.path().join("fjall"))
            .open()
            .unwrap();
        for name in ["khonsu_meta", "khonsu_data"] {
            db.keyspace(name, fjall::KeyspaceCreateOptions::default)
                .unwrap();
        }
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let err = khonsu_storage::FjallStorage::open(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("format record"),
        "{}",
        report(&err)
    );
}

/// A fjall store whose data keyspace is gone is not silently empty.
#[cfg(feature = "fjall")]
#[test]
fn a_fjall_store_missing_its_data_keyspace_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(khonsu_storage::FjallStorage::open(dir.path()).unwrap());
    {
        let db = fjall::Database::builder(dir.path().join("fjall"))
            .open()
            .unwrap();
        let data = db
            .keyspace("khonsu_data", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        db.delete_keyspace(data).unwrap();
    }
    let err = khonsu_storage::FjallStorage::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("khonsu_data"), "{}", report(&err));
}
