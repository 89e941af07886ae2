//! Read-your-writes: a transaction sees its own uncommitted writes and deletes in point reads,
//! `scan` and `scan_prefix` (merged in key order with the committed state), at every level;
//! other transactions do not see them until commit.

use khonsu::prelude::*;
use khonsu_tests::*;

fn setup(iso: TransactionIsolation) -> Khonsu {
    let db = db(iso, ConflictResolution::Fail);
    seed_values(
        &db,
        &[("a", 1), ("c", 3), ("e", 5), ("p/1", 11), ("p/3", 13)],
    );
    db
}

#[test]
fn read_sees_own_write_others_do_not() {
    for iso in LEVELS {
        let db = setup(iso);
        let mut t = db.start_transaction();
        let mut other = db.start_transaction();
        write(&mut t, "a", 100);
        write(&mut t, "b", 200);
        assert_eq!(read(&mut t, "a"), Some(100), "{iso:?}: own overwrite");
        assert_eq!(read(&mut t, "b"), Some(200), "{iso:?}: own insert");
        assert_eq!(read(&mut other, "a"), Some(1), "{iso:?}");
        assert_eq!(read(&mut other, "b"), None, "{iso:?}");
        // A second write replaces the first.
        write(&mut t, "a", 101);
        assert_eq!(read(&mut t, "a"), Some(101), "{iso:?}");
        commit(t);
        other.rollback();
        assert_eq!(committed(&db, "a"), Some(101), "{iso:?}");
        assert_eq!(committed(&db, "b"), Some(200), "{iso:?}");
    }
}

#[test]
fn scan_merges_own_writes_in_key_order() {
    for iso in LEVELS {
        let db = setup(iso);
        let mut t = db.start_transaction();
        write(&mut t, "d", 4); // insert between committed keys
        write(&mut t, "c", 30); // overwrite a committed key
        write(&mut t, "0", 0); // insert before everything
        write(&mut t, "z", 26); // insert after everything
        assert_eq!(
            scan(&mut t, ..),
            vec![
                (key("0"), 0),
                (key("a"), 1),
                (key("c"), 30),
                (key("d"), 4),
                (key("e"), 5),
                (key("p/1"), 11),
                (key("p/3"), 13),
                (key("z"), 26),
            ],
            "{iso:?}"
        );
        assert_eq!(
            scan(&mut t, key("b")..key("e")),
            vec![(key("c"), 30), (key("d"), 4)],
            "{iso:?}: bounded scan"
        );
        assert_eq!(
            scan(&mut t, key("b")..=key("e")),
            vec![(key("c"), 30), (key("d"), 4), (key("e"), 5)],
            "{iso:?}: inclusive scan"
        );
        // Own writes outside the range stay out of it.
        assert_eq!(scan(&mut t, ..key("a")), vec![(key("0"), 0)], "{iso:?}");
        t.rollback();
    }
}

#[test]
fn scan_prefix_merges_own_writes() {
    for iso in LEVELS {
        let db = setup(iso);
        let mut t = db.start_transaction();
        write(&mut t, "p/2", 12);
        write(&mut t, "p/3", 33);
        write(&mut t, "p", 99); // not under "p/"
        write(&mut t, "p0", 98); // not under "p/"
        assert_eq!(
            scan_prefix(&mut t, "p/"),
            vec![(key("p/1"), 11), (key("p/2"), 12), (key("p/3"), 33)],
            "{iso:?}"
        );
        delete(&mut t, "p/1");
        assert_eq!(
            scan_prefix(&mut t, "p/"),
            vec![(key("p/2"), 12), (key("p/3"), 33)],
            "{iso:?}"
        );
        commit(t);
        let mut fresh = db.start_transaction();
        assert_eq!(
            scan_prefix(&mut fresh, "p"),
            vec![
                (key("p"), 99),
                (key("p/2"), 12),
                (key("p/3"), 33),
                (key("p0"), 98)
            ],
            "{iso:?}"
        );
    }
}

#[test]
fn delete_then_read_and_scan() {
    for iso in LEVELS {
        let db = setup(iso);
        let mut t = db.start_transaction();
        delete(&mut t, "c");
        assert_eq!(read(&mut t, "c"), None, "{iso:?}: own delete");
        assert_eq!(
            scan(&mut t, key("a")..key("f")),
            vec![(key("a"), 1), (key("e"), 5)],
            "{iso:?}: own delete hidden from scan"
        );
        // Deleting a key that does not exist is fine and stays absent.
        delete(&mut t, "nope");
        assert_eq!(read(&mut t, "nope"), None, "{iso:?}");
        // Others still see c until commit.
        assert_eq!(committed(&db, "c"), Some(3), "{iso:?}");
        commit(t);
        assert_eq!(committed(&db, "c"), None, "{iso:?}");
        assert_eq!(committed(&db, "nope"), None, "{iso:?}");
    }
}

#[test]
fn write_over_own_delete() {
    for iso in LEVELS {
        let db = setup(iso);
        let mut t = db.start_transaction();
        delete(&mut t, "c");
        write(&mut t, "c", 300);
        assert_eq!(read(&mut t, "c"), Some(300), "{iso:?}");
        assert!(scan(&mut t, ..).contains(&(key("c"), 300)), "{iso:?}");
        // insert, delete, insert again on a fresh key
        write(&mut t, "n", 1);
        delete(&mut t, "n");
        assert_eq!(read(&mut t, "n"), None, "{iso:?}");
        write(&mut t, "n", 2);
        assert_eq!(read(&mut t, "n"), Some(2), "{iso:?}");
        commit(t);
        assert_eq!(committed(&db, "c"), Some(300), "{iso:?}");
        assert_eq!(committed(&db, "n"), Some(2), "{iso:?}");
    }
}

#[test]
fn delete_over_own_write_of_committed_key() {
    for iso in LEVELS {
        let db = setup(iso);
        let mut t = db.start_transaction();
        write(&mut t, "a", 100);
        delete(&mut t, "a");
        assert_eq!(read(&mut t, "a"), None, "{iso:?}");
        assert!(
            !scan(&mut t, ..).iter().any(|(k, _)| k == &key("a")),
            "{iso:?}"
        );
        commit(t);
        assert_eq!(committed(&db, "a"), None, "{iso:?}");
    }
}

/// Own writes win over concurrent commits at every level: at `ReadCommitted` a read returns the
/// own write even after another transaction committed the same key.
#[test]
fn own_write_shadows_concurrent_commit() {
    for iso in LEVELS {
        let db = setup(iso);
        let mut t = db.start_transaction();
        write(&mut t, "a", 100);
        let mut other = db.start_transaction();
        write(&mut other, "a", 7);
        write(&mut other, "b", 8);
        commit(other);
        assert_eq!(read(&mut t, "a"), Some(100), "{iso:?}");
        let b = read(&mut t, "b");
        if iso == TransactionIsolation::ReadCommitted {
            assert_eq!(b, Some(8), "{iso:?}");
        } else {
            assert_eq!(b, None, "{iso:?}");
        }
        t.rollback();
    }
}

/// The key types all name the same key.
#[test]
fn key_conversions_agree() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    let mut t = db.start_transaction();
    write(&mut t, "k", 1);
    assert_eq!(read(&mut t, "k"), Some(1));
    assert_eq!(read(&mut t, b"k"), Some(1));
    assert_eq!(read(&mut t, String::from("k")), Some(1));
    assert_eq!(read(&mut t, key(b"k".as_slice())), Some(1));
    assert_eq!(read(&mut t, key(vec![b'k'])), Some(1));
    write(&mut t, 7u64, 7);
    assert_eq!(read(&mut t, 7u64.to_be_bytes()), Some(7));
    assert_eq!(key(7u64).as_bytes(), 7u64.to_be_bytes().as_slice());
    commit(t);
}

/// Keys longer than the inline limit (looked up by bytes) and short ones (looked up as
/// keys) both see their own writes and deletes, next to keys past the 32-key point where
/// the write set changes representation.
#[test]
fn own_writes_of_long_keys_and_large_write_sets() {
    for iso in LEVELS {
        let db = setup(iso);
        let long = "a-key-well-over-twenty-two-bytes/1";
        let mut t = db.start_transaction();
        write(&mut t, long, 7);
        assert_eq!(read(&mut t, long), Some(7), "{iso:?}: long key");
        for i in 0..40 {
            write(&mut t, format!("k{i:02}"), i);
        }
        t.delete("a").expect("delete");
        assert_eq!(read(&mut t, long), Some(7), "{iso:?}: long key, large set");
        assert_eq!(read(&mut t, "k00"), Some(0), "{iso:?}");
        assert_eq!(read(&mut t, "k39"), Some(39), "{iso:?}");
        assert_eq!(read(&mut t, "a"), None, "{iso:?}: own delete");
        assert_eq!(
            read(&mut t, "c"),
            Some(3),
            "{iso:?}: committed, not written"
        );
        commit(t);
        assert_eq!(committed(&db, long), Some(7), "{iso:?}");
        assert_eq!(committed(&db, "k17"), Some(17), "{iso:?}");
        assert_eq!(committed(&db, "a"), None, "{iso:?}");
    }
}
