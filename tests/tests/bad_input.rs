//! Bad or unusual input is an error or a well-defined result, never a panic: mismatched schemas
//! under Append, writes on read-only transactions, empty and inverted scan ranges, missing keys,
//! huge and empty keys, odd bytes in keys and prefixes, empty batches.

use std::ops::Bound;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch};
use khonsu::prelude::*;
use khonsu_tests::*;

fn populated() -> Khonsu {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    seed_values(&db, &[("a", 1), ("b", 2), ("c", 3)]);
    db
}

#[test]
fn append_with_mismatched_schemas_is_an_error() {
    let two_cols = RecordBatch::try_from_iter(vec![
        ("v", Arc::new(Int64Array::from(vec![1_i64])) as ArrayRef),
        ("w", Arc::new(Int64Array::from(vec![2_i64])) as ArrayRef),
    ])
    .unwrap();
    let other_name = RecordBatch::try_from_iter(vec![(
        "u",
        Arc::new(Int64Array::from(vec![1_i64])) as ArrayRef,
    )])
    .unwrap();
    let other_type = RecordBatch::try_from_iter(vec![(
        "v",
        Arc::new(Int32Array::from(vec![1_i32])) as ArrayRef,
    )])
    .unwrap();
    for (name, bad) in [
        ("utf8", utf8_batch("s")),
        ("two columns", two_cols),
        ("other name", other_name),
        ("int32", other_type),
    ] {
        let db = db(
            TransactionIsolation::RepeatableRead,
            ConflictResolution::Append,
        );
        seed_values(&db, &[("x", 1)]);
        let mut t = db.start_transaction();
        seed_values(&db, &[("x", 2)]);
        ok(t.write("x", bad), name);
        let err = expect_err(t.commit(), name);
        assert!(!err.is_conflict(), "{name}: {err:?}");
        assert!(is_append_error(&err), "{name}: {err:?}");
        assert_eq!(committed_rows(&db, "x"), Some(vec![2]), "{name}");
    }
}

#[test]
fn write_on_read_only_transaction_is_an_error() {
    for iso in LEVELS {
        let db = populated();
        let mut t =
            db.start_transaction_with(TransactionOptions::new().isolation(iso).read_only(true));
        let err = expect_err(t.write("a", batch(10)), "write on read-only");
        assert!(!err.is_conflict(), "{iso:?}: {err:?}");
        assert!(
            matches!(err, khonsu::Error::ReadOnly { .. }),
            "{iso:?}: {err:?}"
        );
        let err = expect_err(t.delete("b"), "delete on read-only");
        assert!(!err.is_conflict(), "{iso:?}: {err:?}");
        // The transaction is still usable for reads and commits as read-only.
        assert_eq!(read(&mut t, "a"), Some(1), "{iso:?}");
        assert_eq!(read(&mut t, "b"), Some(2), "{iso:?}");
        let c = commit(t);
        assert!(c.read_only, "{iso:?}");
        assert_eq!(
            committed_all(&db),
            vec![(key("a"), 1), (key("b"), 2), (key("c"), 3)]
        );
    }
}

#[test]
fn empty_and_inverted_ranges_return_empty_or_error() {
    let db = populated();
    let mut t = db.start_transaction();
    write(&mut t, "bb", 22); // an own write inside the odd ranges must not leak out either
    let ranges: Vec<(Bound<Key>, Bound<Key>)> = vec![
        (Bound::Included(key("b")), Bound::Excluded(key("b"))),
        (Bound::Excluded(key("b")), Bound::Excluded(key("b"))),
        (Bound::Excluded(key("b")), Bound::Included(key("b"))),
        (Bound::Included(key("c")), Bound::Included(key("a"))),
        (Bound::Included(key("c")), Bound::Excluded(key("a"))),
        (Bound::Excluded(key("c")), Bound::Excluded(key("a"))),
        (Bound::Unbounded, Bound::Excluded(key(""))),
    ];
    for r in ranges {
        let what = format!("{r:?}");
        match t.scan(r) {
            Ok(rows) => assert!(rows.is_empty(), "{what}: {:?}", pairs(&rows)),
            Err(e) => assert!(!e.is_conflict(), "{what}: {e:?}"),
        }
    }
    // A single-key inclusive range works.
    assert_eq!(scan(&mut t, key("b")..=key("b")), vec![(key("b"), 2)]);
    // The transaction is still healthy.
    assert_eq!(read(&mut t, "bb"), Some(22));
    commit(t);
}

#[test]
fn missing_key_reads_none() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        let mut t = db.start_transaction();
        assert_eq!(read(&mut t, "missing"), None, "{iso:?}: empty db");
        t.rollback();
        let db = populated();
        let mut t = db.start_transaction();
        assert_eq!(read(&mut t, "aa"), None, "{iso:?}: between keys");
        assert_eq!(read(&mut t, "0"), None, "{iso:?}: before all");
        assert_eq!(read(&mut t, "zzz"), None, "{iso:?}: after all");
        assert!(scan_prefix(&mut t, "nothing/").is_empty());
        commit(t);
    }
}

/// Keys at the edges of the key contract (1 to 65,535 bytes): the shortest and the longest
/// work like any other; an empty key and a 1 MB key are refused at write (see
/// `key_contract.rs`) and deleting them is a no-op.
#[test]
fn keys_at_the_edges_of_the_contract() {
    let db = populated();
    let longest: Vec<u8> = (0..khonsu::MAX_KEY_LEN)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let huge: Vec<u8> = (0..1_000_000_u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let mut t = db.start_transaction();
    write(&mut t, vec![0_u8], -1);
    write(&mut t, longest.clone(), 65_535);
    assert!(t.write(Vec::<u8>::new(), batch(0)).is_err());
    assert!(t.write(huge.clone(), batch(0)).is_err());
    assert_eq!(read(&mut t, [0_u8]), Some(-1));
    assert_eq!(read(&mut t, &longest), Some(65_535));
    commit(t);

    let mut t = db.start_transaction();
    assert_eq!(read(&mut t, [0_u8]), Some(-1));
    assert_eq!(read(&mut t, &longest), Some(65_535));
    assert_eq!(read(&mut t, b""), None);
    let all = scan(&mut t, ..);
    assert_eq!(all.len(), 5);
    // [0] sorts first; the longest key (starting with 0x00 0x01) right after it.
    assert_eq!(all[0], (key(vec![0_u8]), -1));
    assert_eq!(all[1], (key(longest.clone()), 65_535));
    assert_eq!(
        scan_prefix(&mut t, b"").len(),
        5,
        "the empty prefix matches everything"
    );
    assert_eq!(scan_prefix(&mut t, &longest[..1000]).len(), 1);
    delete(&mut t, longest.clone());
    delete(&mut t, vec![0_u8]);
    delete(&mut t, Vec::<u8>::new());
    delete(&mut t, huge);
    commit(t);
    assert_eq!(
        committed_all(&db),
        vec![(key("a"), 1), (key("b"), 2), (key("c"), 3)]
    );
}

#[test]
fn u64_keys_sort_numerically() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    let nums = [u64::MAX, 65_536, 256, 10, 2, 1, 0, 255, 1 << 40];
    let mut t = db.start_transaction();
    for n in nums {
        write(&mut t, n, i64::try_from(n % 1_000_000).unwrap());
    }
    commit(t);
    let mut sorted = nums.to_vec();
    sorted.sort_unstable();
    let mut t = db.start_transaction();
    let got: Vec<Key> = scan(&mut t, ..).into_iter().map(|(k, _)| k).collect();
    let want: Vec<Key> = sorted.iter().map(|n| key(*n)).collect();
    assert_eq!(got, want);
    let mid: Vec<Key> = scan(&mut t, key(2_u64)..key(300_u64))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        mid,
        vec![key(2_u64), key(10_u64), key(255_u64), key(256_u64)]
    );
    let top: Vec<Key> = scan(&mut t, key(1_u64 << 40)..)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(top, vec![key(1_u64 << 40), key(u64::MAX)]);
    commit(t);
}

/// Prefixes made of 0xff bytes have no finite successor; a prefix scan must still be exact.
#[test]
fn prefix_of_ff_bytes() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    let keys: [&[u8]; 6] = [
        b"\xfe",
        b"\xfe\xff",
        b"\xff",
        b"\xff\xff",
        b"\xff\xff\x00",
        b"\xff\xff\xff\xff",
    ];
    let mut t = db.start_transaction();
    for (i, k) in keys.iter().enumerate() {
        write(&mut t, k.to_vec(), i64::try_from(i).unwrap());
    }
    commit(t);
    let mut t = db.start_transaction();
    let got: Vec<i64> = scan_prefix(&mut t, b"\xff\xff")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(got, vec![3, 4, 5]);
    let got: Vec<i64> = scan_prefix(&mut t, b"\xff")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(got, vec![2, 3, 4, 5]);
    let got: Vec<i64> = scan_prefix(&mut t, b"\xfe")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(got, vec![0, 1]);
    commit(t);
}

#[test]
fn empty_batches_and_many_rows() {
    let db = db(
        TransactionIsolation::Serializable,
        ConflictResolution::Append,
    );
    let mut t = db.start_transaction();
    ok(t.write("empty", batch_of(&[])), "write empty batch");
    let big: Vec<i64> = (0..100_000).collect();
    ok(t.write("big", batch_of(&big)), "write big batch");
    commit(t);
    assert_eq!(committed_rows(&db, "empty"), Some(vec![]));
    assert_eq!(committed_rows(&db, "big").map(|v| v.len()), Some(100_000));
    // Append onto an empty batch concurrently.
    let mut t = db.start_transaction();
    seed_values(&db, &[("e2", 1)]);
    ok(t.write("e2", batch_of(&[])), "append empty");
    commit(t);
    assert_eq!(committed_rows(&db, "e2"), Some(vec![1]));
}

/// A value's schema may change between versions of a key (only Append requires equal schemas).
#[test]
fn schema_may_change_between_versions() {
    let db = populated();
    let mut t = db.start_transaction();
    ok(t.write("a", utf8_batch("now a string")), "write");
    commit(t);
    let mut t = db.start_transaction();
    let b = ok(t.read("a"), "read").unwrap();
    assert_eq!(
        b.schema().field(0).data_type(),
        &arrow_schema::DataType::Utf8
    );
    commit(t);
}
